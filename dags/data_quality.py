"""data_quality: daily at 06:00 UTC, check the data and the served models, report, alert, export metrics.

Thin wiring: each task calls the function of the same name in ``pipelines.data_quality`` (``eopt
quality`` runs the same checks and report); check results travel as small JSON lists through
XCom, reports as files in the run's folder (``$EOPT_HOME/quality/<run id>``).

- ``select_regions``: the run's regions (``conf={"regions": ["NP"]}`` narrows the run; an
  unknown region fails here, by name).
- ``check_data_freshness``, ``check_completeness``, ``check_price_range``, ``check_model_accuracy``,
  ``check_drift``: independent checks over the 7 days before the run (``quality.checks``,
  ``drift.monitor``), each mapped over the regions (the grid names each instance by its region),
  and ``check_api_health`` over every provider. A check that finds bad data does not fail: its
  result says warn/critical; a region it cannot check is ``skipped`` with the reason.
- ``generate_quality_report`` (``all_done``): one Markdown/HTML report with every result, the
  health score 0-100 and links to the Evidently drift reports; one ``quality_reports`` row per
  result; everything logged to the MLflow experiment ``data-quality``. A check that crashed for a
  region appears in the report as not checked, naming the task and the region.
- ``alert_on_critical``: Slack (connection ``slack_data_quality``, variable ``enable_slack_alerts``)
  and email (SMTP connection ``smtp_default``, ``EOPT_ALERT_EMAIL_TO``) with the critical items; a
  channel that cannot be reached is logged and does not stop the other.
- ``drift_retraining_needed`` -> ``trigger_model_retraining``: when ``retrain_on_drift`` is on
  (variable or ``EOPT_RETRAIN_ON_DRIFT``) and a region's drift is critical, ``model_retraining``
  is triggered for those regions; otherwise skipped.

Prometheus reads the stored results through ``eopt metrics serve`` (see ``quality.exporter``).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import TriggerRule, dag, get_current_context, task
from dag_defaults import REGION_LABEL, shared_dag_arguments
from pricing_api_hook import task_settings
from run_context import price_store, registry_client, run_conf, run_folder, run_hour

from core.settings import Settings

DAG_ID = "data_quality"
SETTINGS = Settings.from_env()


def _folder(settings: Settings):
    return run_folder(settings.quality_dir)


@dag(
    dag_id=DAG_ID,
    schedule="0 6 * * *",
    dagrun_timeout=timedelta(minutes=60),
    tags=["electricity-optimizer", "quality"],
    doc_md=__doc__,
    **shared_dag_arguments(SETTINGS),
)
def data_quality():
    @task
    def select_regions() -> list[str]:
        from pipelines.data_quality import select_regions

        return select_regions(task_settings(), run_conf().get("regions"))

    @task(map_index_template=REGION_LABEL)
    def check_data_freshness(region: str) -> list[dict]:
        from pipelines.data_quality import check_data_freshness

        settings = task_settings()
        return [r.to_dict() for r in check_data_freshness(price_store(settings), settings, region, run_hour())]

    @task(map_index_template=REGION_LABEL)
    def check_completeness(region: str) -> list[dict]:
        from pipelines.data_quality import check_completeness

        settings = task_settings()
        return [r.to_dict() for r in check_completeness(price_store(settings), settings, region, run_hour())]

    @task(map_index_template=REGION_LABEL)
    def check_price_range(region: str) -> list[dict]:
        from pipelines.data_quality import check_price_range

        settings = task_settings()
        return [r.to_dict() for r in check_price_range(price_store(settings), settings, region, run_hour())]

    @task
    def check_api_health() -> list[dict]:
        from pipelines.data_quality import check_api_health

        settings = task_settings()
        return [r.to_dict() for r in check_api_health(price_store(settings), settings, run_hour())]

    @task(map_index_template=REGION_LABEL)
    def check_model_accuracy(region: str) -> list[dict]:
        from pipelines.data_quality import check_model_accuracy

        settings = task_settings()
        results = check_model_accuracy(
            price_store(settings), registry_client(settings), settings, region, run_hour(), _folder(settings)
        )
        return [r.to_dict() for r in results]

    @task(map_index_template=REGION_LABEL)
    def check_drift(region: str) -> list[dict]:
        from pipelines.data_quality import check_drift

        settings = task_settings()
        results = check_drift(
            price_store(settings), registry_client(settings), settings, region, run_hour(), _folder(settings)
        )
        return [r.to_dict() for r in results]

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def generate_quality_report() -> dict:
        from pipelines.data_quality import expected_results, generate_quality_report

        settings = task_settings()
        ti, run_id = get_current_context()["ti"], get_current_context()["run_id"]
        try:
            client = registry_client(settings)
        except Exception as exc:  # the report is written without MLflow
            print(f"MLflow unavailable ({exc}); the report is written without it")
            client = None
        regions = ti.xcom_pull(task_ids="select_regions") or []
        payloads = {(t, r): ti.xcom_pull(task_ids=t, map_indexes=i) for t, r, i in expected_results(regions)}
        report = generate_quality_report(
            price_store(settings), client, settings, run_id, run_hour(), _folder(settings), payloads
        )
        return {"summary": report.summary(), "results": [r.to_dict() for r in report.results]}

    @task
    def alert_on_critical(report: dict) -> dict:
        from alert_channels import airflow_channels

        from core.check_results import CheckResult
        from pipelines.data_quality import alert_on_critical

        settings = task_settings()
        results = [CheckResult.from_dict(r) for r in report["results"]]
        return alert_on_critical(
            settings, results, airflow_channels(settings), report["summary"], get_current_context()
        )

    @task.short_circuit
    def drift_retraining_needed(report: dict):
        from pipelines.data_quality import drift_retraining_needed

        return drift_retraining_needed(task_settings(), report["results"]) or False

    regions = select_regions()
    checks = [
        check_data_freshness.expand(region=regions),
        check_completeness.expand(region=regions),
        check_price_range.expand(region=regions),
        check_api_health(),
        check_model_accuracy.expand(region=regions),
        check_drift.expand(region=regions),
    ]
    report = generate_quality_report()
    checks >> report
    alert_on_critical(report)
    needed = drift_retraining_needed(report)
    trigger = TriggerDagRunOperator(
        task_id="trigger_model_retraining",
        trigger_dag_id="model_retraining",
        conf="{{ ti.xcom_pull(task_ids='drift_retraining_needed') | tojson }}",
        wait_for_completion=False,
    )
    needed >> trigger


data_quality()
