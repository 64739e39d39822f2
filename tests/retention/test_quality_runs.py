"""Data-quality runs past retention go through MLflow: marked deleted, then ``mlflow gc`` (artifacts, then rows).

An interrupted step can leave only two states behind, because it marks runs deleted before
collecting them and ``mlflow gc`` removes a run's artifacts before its rows: runs marked deleted
but not collected, and a run marked deleted whose artifacts are gone. The next run finishes both,
and afterwards no run is left without its artifacts and no artifacts without their run. A run
behind a kept model version stays, even in the data-quality experiment.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow.entities import ViewType
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from core.settings import Settings
from registry.models import registered_model_name
from registry.promotion import make_champion
from retention.protected import protected
from retention.quality_runs import artifact_folder, remove_quality_runs
from storage.database import create_store_engine, upgrade
from storage.promotions import PromotionStore
from training import tracking

AS_OF = pd.Timestamp("2026-03-01 03:30", tz="UTC")
DAYS = (45, 40, 35, 31, 20, 5)  # four past the 30-day bound, two within


@pytest.fixture(scope="module")
def empty_mlflow_store(tmp_path_factory):
    """A migrated, empty embedded MLflow database (creating one takes seconds: each test copies it)."""
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path_factory.mktemp("mlflow"))})
    tracking.configure(settings).search_experiments()
    return settings.stores.home / "mlflow.db"


@pytest.fixture
def quality_runs(tmp_path, empty_mlflow_store):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path / "eopt")})
    settings.ensure_home()
    shutil.copy(empty_mlflow_store, settings.stores.home / "mlflow.db")
    client = tracking.configure(settings)
    experiment = tracking.experiment_id(client, settings, settings.quality.experiment)
    runs = {}
    for days in DAYS:
        started = int((AS_OF - pd.Timedelta(days=days)).timestamp() * 1000)
        run = client.create_run(experiment, start_time=started, run_name=f"data quality -{days}d").info.run_id
        report = tmp_path / f"drift_{days}.html"
        report.write_bytes(b"<html>" + b"x" * 1000 + b"</html>")
        client.log_artifact(run, str(report), "drift/NP")
        runs[days] = run
    engine = create_store_engine(settings.stores.database_url)
    upgrade(engine)
    yield settings, client, experiment, runs, PromotionStore(engine)
    engine.dispose()


def _consistent(settings: Settings, client, experiment: str) -> list[str]:
    """Runs whose artifacts are gone while the run remains, and artifact folders without their run."""
    problems = []
    runs = client.search_runs([experiment], "", run_view_type=ViewType.ALL, max_results=1000)
    for run in runs:
        folder = artifact_folder(run)
        if folder is None or not folder.is_dir():
            problems.append(f"run {run.info.run_id} without artifacts")
    known = {run.info.run_id for run in runs} | {r.info.run_id for r in client.search_runs(["0"], "")}
    with sa.create_engine(settings.stores.mlflow_tracking_uri).connect() as conn:
        known |= set(conn.execute(sa.text("SELECT run_uuid FROM runs")).scalars())
    root = settings.stores.mlflow_artifact_root
    problems += [f"artifacts of unknown run {p.name}" for p in root.iterdir() if p.is_dir() and p.name not in known]
    return problems


def test_an_interrupted_deletion__is_finished_by_the_next_run(quality_runs):
    settings, client, experiment, runs, promotions = quality_runs
    # what a killed step leaves: run -45d marked deleted only; run -40d marked deleted and its artifacts
    # removed by mlflow gc, which was killed before removing the run's rows
    client.delete_run(runs[45])
    client.delete_run(runs[40])
    get_artifact_repository(client.get_run(runs[40]).info.artifact_uri).delete_artifacts()
    keep = protected(client, promotions, settings.retention.archived_champions)

    dry = remove_quality_runs(client, settings, keep, AS_OF, dry_run=True)
    assert dry.count == 4 and dry.bytes == 3 * 1013  # -40d has no artifacts left to count
    assert sum("already marked deleted" in r.item for r in dry.removals) == 2

    real = remove_quality_runs(client, settings, keep, AS_OF, dry_run=False)
    assert real.removals == dry.removals
    left = client.search_runs([experiment], "", run_view_type=ViewType.ALL)
    assert sorted(r.info.run_id for r in left) == sorted([runs[20], runs[5]])
    assert _consistent(settings, client, experiment) == []
    assert remove_quality_runs(client, settings, keep, AS_OF, dry_run=False).count == 0


def test_a_run_behind_a_kept_model_version__is_never_removed(quality_runs):
    settings, client, _, runs, promotions = quality_runs
    name = registered_model_name("NP")
    client.create_registered_model(name)
    source = client.get_run(runs[45]).info.artifact_uri
    version = client.create_model_version(name, f"{source}/drift", run_id=runs[45]).version
    make_champion(client, name, str(version))
    keep = protected(client, promotions, settings.retention.archived_champions)
    assert keep.versions == {name: {str(version)}} and runs[45] in keep.runs

    report = remove_quality_runs(client, settings, keep, AS_OF, dry_run=False)
    assert report.count == 3
    assert any(runs[45] in note and "kept" in note for note in report.notes)
    assert client.get_run(runs[45]).info.lifecycle_stage == "active"
    assert artifact_folder(client.get_run(runs[45])).is_dir()
