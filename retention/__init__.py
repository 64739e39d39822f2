"""Retention: what the ``maintenance`` DAG and ``eopt maintenance`` remove, and what they never touch.

Each step looks at one store, works out what is past its retention bound
(``settings.retention``), and either lists it (``dry_run``) or removes it; the returned
``StepReport`` names every item and its bytes either way, so a dry run lists exactly what the
real run would remove. Steps are idempotent (a second run finds nothing) and safe to interrupt:
each removal is complete on its own, and a rerun finishes what an interrupted run left.

- ``retention.quality_runs``: data-quality MLflow runs, deleted through MLflow then
  garbage-collected with ``mlflow gc`` (artifacts, then the run's rows).
- ``retention.files``: archived provider payloads (never one a kept quarantine row references),
  data-quality report folders, Airflow task logs.
- ``retention.store_rows``: quarantine rows, hourly forecasts thinned to their day-ahead issue,
  ``VACUUM`` of the product's store.
- ``retention.optuna_studies``: Optuna studies of superseded training windows.
- ``retention.airflow_metadata``: ``airflow db clean`` of the Airflow metadata database.
- ``retention.protected``: what is never removed: the registered model versions in Production or
  Staging, with an alias, or among the newest former champions, and the runs behind them.

Promotion history (``model_promotions``) and stored prices are never read for removal.
"""
