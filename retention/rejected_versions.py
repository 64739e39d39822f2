"""Rejected model versions past retention: their MLflow runs deleted through MLflow, then ``mlflow gc``.

A registered version of a product model (``electricity-price-<region>``) is rejected when it is
Archived, carries no alias, was never made champion (no promoted row in ``model_promotions``)
and is not kept by ``retention.protected``. Once it was registered more than
``retention.rejected_version_days`` before the maintenance run, the run behind it (its fitted
model, plots and metrics) and that run's nested runs (tuning trials) go, in an order a rerun can
finish:

1. each run is tagged ``eopt.retention=rejected-version`` and marked deleted (``delete_run``);
2. the registered version is deleted (``delete_model_version``): nothing points at the runs any more;
3. ``mlflow gc`` removes the runs' artifacts, then their rows.

An interruption after 1 leaves the version, whose runs the next run finds again; after 2, the
runs are found by their tag among the deleted runs and collected. No run ever loses its
artifacts while it remains, and no artifacts stay without their run. Runs behind kept versions,
and the promotion history, are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.settings import Settings
from registry.models import ARCHIVED
from retention.protected import MODEL_PREFIX, PARENT_TAG, Protected
from retention.quality_runs import (
    artifact_folder,
    collectable,
    garbage_collect,
    remove_empty_run_folder,
    server_gc_note,
)
from retention.removals import StepReport, size_of
from storage.promotions import PromotionStore

STEP = "remove_rejected_versions"
RETENTION_TAG = "eopt.retention"
REJECTED = "rejected-version"


def _promoted(promotions: PromotionStore) -> set[tuple[str, str]]:
    history = promotions.history()
    if history.empty:
        return set()
    made = history[history["promoted"].astype(bool)]
    return {
        (str(name), str(version)) for name, version in zip(made["model_name"], made["candidate_version"], strict=True)
    }


def _children(client: MlflowClient, run: Run, view: int) -> Iterator[Run]:
    """The runs nested under ``run`` (in its experiment), recursively."""
    pending = [run]
    while pending:
        parent = pending.pop()
        found = client.search_runs(
            [parent.info.experiment_id],
            f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'",
            run_view_type=view,
            max_results=1000,
        )
        yield from found
        pending.extend(found)


def remove_rejected_versions(
    client: MlflowClient,
    settings: Settings,
    promotions: PromotionStore,
    keep: Protected,
    as_of: pd.Timestamp,
    *,
    dry_run: bool,
) -> StepReport:
    """Delete the rejected versions registered before ``as_of`` minus the retention, their runs, and collect them."""
    report = StepReport(STEP, dry_run)
    cutoff_ms = int((as_of - pd.Timedelta(days=settings.retention.rejected_version_days)).timestamp() * 1000)
    promoted = _promoted(promotions)
    versions: list[tuple[str, str]] = []
    runs: dict[str, Run] = {}
    for model in client.search_registered_models(f"name LIKE '{MODEL_PREFIX}%'"):
        for version in client.search_model_versions(f"name = '{model.name}'"):
            number = str(version.version)
            rejected = (
                version.current_stage == ARCHIVED
                and not version.aliases
                and (model.name, number) not in promoted
                and number not in keep.versions.get(model.name, set())
                and (version.creation_timestamp or 0) < cutoff_ms
            )
            if not rejected:
                continue
            owned: list[Run] = []
            if version.run_id and version.run_id not in keep.runs:
                try:
                    run = client.get_run(version.run_id)
                except MlflowException:  # the run is gone already: only the version is left
                    run = None
                if run is not None:
                    owned = [run, *(r for r in _children(client, run, ViewType.ALL) if r.info.run_id not in keep.runs)]
            size = sum(size_of(folder) for r in owned if (folder := artifact_folder(r)) is not None)
            report.add(f"{model.name} version {number} (rejected) with {len(owned)} MLflow run(s)", size)
            versions.append((model.name, number))
            runs.update({r.info.run_id: r for r in owned})
    # runs an interrupted maintenance run deleted after their version: found by their tag
    for experiment in client.search_experiments():
        for run in client.search_runs(
            [experiment.experiment_id],
            f"tags.`{RETENTION_TAG}` = '{REJECTED}'",
            run_view_type=ViewType.DELETED_ONLY,
            max_results=1000,
        ):
            if run.info.run_id not in runs and run.info.run_id not in keep.runs:
                folder = artifact_folder(run)
                report.add(
                    f"MLflow run {run.info.run_id} of a removed rejected version", size_of(folder) if folder else 0
                )
                runs[run.info.run_id] = run
    tracking_uri = settings.stores.mlflow_tracking_uri
    if not collectable(tracking_uri):
        report.notes.append(server_gc_note(tracking_uri))
    if dry_run:
        return report.logged()
    for run_id, run in runs.items():
        if run.info.lifecycle_stage != "deleted":
            client.set_tag(run_id, RETENTION_TAG, REJECTED)
            client.delete_run(run_id)
    for name, number in versions:
        client.delete_model_version(name, number)
    if collectable(tracking_uri) and runs:
        garbage_collect(tracking_uri, list(runs))
        for run_id, run in runs.items():
            folder = artifact_folder(run)
            if folder is not None:
                remove_empty_run_folder(run_id, folder)
    return report.logged()
