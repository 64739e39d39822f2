"""MLflow tracking of a retraining: one parent run per region, a nested run per model and per trial.

Runs are addressed by id through ``MlflowClient``, not the fluent active-run stack, because the
DAG's tasks run in different processes: the parent run id travels in the retraining manifest.

Layout of one region's retraining:

    retrain NP 2018-12-24            parent: config, data window + sha256, ensemble/member/naive
    ├── xgboost                        test metrics, the pyfunc model, plot, model card
    │   ├── xgboost trial 0            best params, validation and test metrics, importances,
    │   └── ...                        Optuna history
    ├── lightgbm ...                 one nested run per Optuna trial: params, validation MAE, state
    └── cnn_lstm ...
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import mlflow
from mlflow import environment_variables as mlflow_variables
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from core.settings import Settings

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
MAX_PARAM_LENGTH = 6000
# The retraining's test-window forecasts (per hour: origin, target_ts, horizon, price, yhat, interval,
# quantiles), stored on its run: the reference the daily prediction-drift check reads for a champion.
TEST_FORECASTS_ARTIFACT = "test_forecasts.parquet"

# MLflow reads these settings of its own from the environment, in this process (an operator's own
# value is kept): no pip resolution of a model's requirements when logging it (the product's
# environment is its lock file, and a build machine may have no package index to ask), no progress
# bars in task logs, and a registry that is down fails a task in seconds, with its error, instead of
# after MLflow's default 7 retries with minutes of backoff.
MLFLOW_DEFAULTS = (
    (mlflow_variables.MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK, "true"),
    (mlflow_variables.MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR, "false"),
    (mlflow_variables.MLFLOW_HTTP_REQUEST_MAX_RETRIES, "2"),
    (mlflow_variables.MLFLOW_HTTP_REQUEST_TIMEOUT, "60"),
)


def configure_mlflow_defaults() -> None:
    """Apply ``MLFLOW_DEFAULTS`` where the operator set nothing (through MLflow's own setters)."""
    for variable, value in MLFLOW_DEFAULTS:
        if not variable.defined:
            variable.set(value)


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking store and registry, creating the embedded one."""
    if settings.stores.mlflow_tracking_uri.startswith("sqlite:"):
        settings.ensure_home()
    configure_mlflow_defaults()
    mlflow.set_tracking_uri(settings.stores.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.stores.mlflow_registry_uri)
    return MlflowClient(settings.stores.mlflow_tracking_uri, settings.stores.mlflow_registry_uri)


def experiment_id(
    client: MlflowClient,
    settings: Settings,
    name: str | None = None,
    purpose: str = "weekly retraining of the price forecasters",
) -> str:
    """The retraining experiment (or the experiment ``name``, e.g. data quality's); under
    ``mlflow run``, a retraining uses the experiment of that project run."""
    if settings.training.mlflow_run_id and name is None:
        return client.get_run(settings.training.mlflow_run_id).info.experiment_id
    name = name or settings.training.mlflow_experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A database tracking store keeps artifacts where the experiment says; without a location
    # MLflow would write ./mlruns under whatever folder the process started in.
    local = not settings.stores.mlflow_tracking_uri.startswith(("http://", "https://", "databricks"))
    location = settings.stores.mlflow_artifact_root.as_uri() if local and settings.stores.mlflow_artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location, tags={"eopt.purpose": purpose})
    except MlflowException as exc:
        # the regions of one run start at once on several workers (CeleryExecutor): another task
        # may have created the experiment between the lookup and the create; then use that one
        created = client.get_experiment_by_name(name) if exc.error_code == "RESOURCE_ALREADY_EXISTS" else None
        if created is None:
            raise
        return created.experiment_id


def start_run(
    client: MlflowClient, experiment: str, name: str, *, parent: str | None = None, tags: dict[str, str] | None = None
) -> str:
    all_tags = {RUN_NAME_TAG: name, **(tags or {})}
    if parent:
        all_tags[PARENT_TAG] = parent
    return client.create_run(experiment, tags=all_tags, run_name=name).info.run_id


def _clean(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_LENGTH]


def _log_in_batches(
    client: MlflowClient, run_id: str, *, params: Sequence[Param] = (), metrics: Sequence[Metric] = ()
) -> None:
    """MLflow caps one batch at 100 params and 1000 metrics: send them in slices below that."""
    for start in range(0, len(params), 90):
        client.log_batch(run_id, params=params[start : start + 90])
    for start in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[start : start + 900])


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    _log_in_batches(client, run_id, params=[Param(str(k), _clean(v)) for k, v in params.items()])


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float | None], step: int = 0) -> None:
    """Finite metrics only: MLflow refuses NaN in some stores, and a NaN says nothing a chart can show."""
    now = int(time.time() * 1000)
    _log_in_batches(
        client,
        run_id,
        metrics=[
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))
        ],
    )


def log_history(client: MlflowClient, run_id: str, key: str, values: Iterable[float], step_every: int = 1) -> None:
    now = int(time.time() * 1000)
    _log_in_batches(
        client,
        run_id,
        metrics=[
            Metric(key, float(v), now, (i + 1) * step_every) for i, v in enumerate(values) if math.isfinite(float(v))
        ],
    )


def log_artifacts(client: MlflowClient, run_id: str, paths: Iterable[Path], folder: str | None = None) -> None:
    for path in paths:
        client.log_artifact(run_id, str(path), folder)


Read = TypeVar("Read")


def read_artifact(client: MlflowClient, run_id: str, path: str, read: Callable[[Path], Read]) -> Read | None:
    """``read`` of the artifact ``path`` (e.g. ``promotion/holdout_errors_v3.json``) of ``run_id``, downloaded to
    a temporary folder removed afterwards; None when the run has no such artifact."""
    folder = str(PurePosixPath(path).parent)
    if path not in {a.path for a in client.list_artifacts(run_id, None if folder == "." else folder)}:
        return None
    with tempfile.TemporaryDirectory(prefix="eopt-artifact-") as local:
        return read(Path(client.download_artifacts(run_id, path, local)))


def finish(client: MlflowClient, run_id: str, ok: bool = True) -> None:
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED))


def trial_logger(client: MlflowClient, experiment: str, parent: str, model: str, region: str):
    """An Optuna callback that records each finished trial as a nested run of the model's run."""

    def record(trial: FrozenTrial) -> None:
        run_id = start_run(
            client,
            experiment,
            f"{model} trial {trial.number}",
            parent=parent,
            tags={
                "eopt.region": region,
                "eopt.model": model,
                "eopt.kind": "trial",
                "optuna.state": trial.state.name,
                "optuna.origin": str(trial.user_attrs.get("origin", "sampler")),
            },
        )
        log_params(client, run_id, trial.params)
        metrics = {"validation_mae": trial.value} if trial.value is not None else {}
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            last_step = max(trial.intermediate_values)
            metrics = {"validation_mae_at_prune": trial.intermediate_values[last_step], "pruned_at_step": last_step}
        for key in ("best_step", "fit_seconds"):
            if key in trial.user_attrs:
                metrics[key] = trial.user_attrs[key]
        log_metrics(client, run_id, metrics)
        status = {TrialState.COMPLETE: RunStatus.FINISHED, TrialState.PRUNED: RunStatus.KILLED}.get(
            trial.state, RunStatus.FAILED
        )
        client.set_terminated(run_id, RunStatus.to_string(status))

    return record
