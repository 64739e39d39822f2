"""Data-quality MLflow runs past retention: deleted through MLflow, then garbage-collected by ``mlflow gc``.

Each daily data-quality run logs its report and every region's Evidently drift reports (the
largest artifacts the product writes). A run started more than ``retention.quality_run_days``
before the maintenance run is first marked deleted (``MlflowClient.delete_run``), then ``mlflow
gc`` removes its artifacts and, after them, the run's rows: the artifact folder is never removed
by hand ahead of the run. A run marked deleted whose garbage collection did not happen (an
interrupted maintenance run, an operator's delete in the UI) is collected by the next run, so a
rerun finishes the job. Runs behind kept model versions (``retention.protected``) are never
touched, whichever experiment they are in.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path

from core.settings import Settings
from retention.protected import Protected
from retention.removals import StepReport, size_of

log = logging.getLogger(__name__)

STEP = "remove_quality_runs"
GC_BATCH = 100  # run ids per `mlflow gc` call


def _runs(client: MlflowClient, experiment_id: str, view: int, started_before_ms: int) -> Iterator[Run]:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            f"attributes.start_time < {started_before_ms}",
            run_view_type=view,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def artifact_folder(run: Run) -> Path | None:
    """The run's artifact folder when it is on this machine's file system (None for a remote store)."""
    uri = run.info.artifact_uri or ""
    if uri.startswith("file:") or "://" not in uri:
        return Path(local_file_uri_to_path(uri))
    return None


def collectable(tracking_uri: str) -> bool:
    """``mlflow gc`` works on the backend database itself (SQLite, PostgreSQL), not through a tracking server."""
    return not tracking_uri.startswith(("http://", "https://", "databricks"))


def server_gc_note(tracking_uri: str) -> str:
    """What an operator must run where a tracking server's database is, since ``mlflow gc`` cannot go through it."""
    return (
        f"the tracking store {tracking_uri} is a server: runs are marked deleted here; run "
        "`mlflow gc --backend-store-uri <its database>` on the server to free their artifacts"
    )


def garbage_collect(tracking_uri: str, run_ids: list[str]) -> None:
    """``mlflow gc`` of runs already marked deleted: each run's artifacts, then its rows."""
    from mlflow.cli import gc

    for start in range(0, len(run_ids), GC_BATCH):
        batch = run_ids[start : start + GC_BATCH]
        printed = io.StringIO()
        with redirect_stdout(printed):  # one "permanently deleted" line per run: the step's log says it once
            gc.main(
                ["--backend-store-uri", tracking_uri, "--tracking-uri", tracking_uri, "--run-ids", ",".join(batch)],
                standalone_mode=False,
            )


def remove_quality_runs(
    client: MlflowClient, settings: Settings, keep: Protected, as_of: pd.Timestamp, *, dry_run: bool
) -> StepReport:
    """Delete and garbage-collect the data-quality runs started before ``as_of`` minus the retention."""
    report = StepReport(STEP, dry_run)
    name = settings.quality.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        report.notes.append(f"no MLflow experiment {name!r} yet: nothing to remove")
        return report.logged()
    cutoff = as_of - pd.Timedelta(days=settings.retention.quality_run_days)
    before_ms = int(cutoff.timestamp() * 1000)
    to_delete: list[str] = []
    to_collect: list[str] = []
    folders: dict[str, Path] = {}
    for view, pending in ((ViewType.ACTIVE_ONLY, to_delete), (ViewType.DELETED_ONLY, to_collect)):
        for run in _runs(client, experiment.experiment_id, view, before_ms):
            if run.info.run_id in keep.runs:
                report.notes.append(f"run {run.info.run_id} backs a kept model version: kept")
                continue
            folder = artifact_folder(run)
            if folder is not None:
                folders[run.info.run_id] = folder
            state = "" if view == ViewType.ACTIVE_ONLY else ", already marked deleted"
            started = pd.Timestamp(run.info.start_time, unit="ms", tz="UTC")
            report.add(
                f"MLflow run {run.info.run_id} ({run.info.run_name}, started {started:%Y-%m-%d %H:%M}{state})",
                size_of(folder) if folder is not None else 0,
            )
            pending.append(run.info.run_id)
    tracking_uri = settings.stores.mlflow_tracking_uri
    if not collectable(tracking_uri):
        report.notes.append(server_gc_note(tracking_uri))
    if dry_run:
        return report.logged()
    for run_id in to_delete:
        client.delete_run(run_id)
    if collectable(tracking_uri) and (to_delete or to_collect):
        garbage_collect(tracking_uri, to_delete + to_collect)
        for run_id, folder in folders.items():
            remove_empty_run_folder(run_id, folder)
    return report.logged()


def remove_empty_run_folder(run_id: str, artifacts: Path) -> None:
    """``mlflow gc`` removes ``<root>/<run id>/artifacts`` and leaves ``<root>/<run id>`` behind, empty:
    that folder goes too, and only when it is the run's own and empty."""
    run_folder = artifacts.parent
    if artifacts.name == "artifacts" and run_folder.name == run_id and run_folder.is_dir():
        with contextlib.suppress(OSError):  # not empty: something else is in it, leave it
            run_folder.rmdir()
