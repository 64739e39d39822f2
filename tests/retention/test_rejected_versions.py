"""Rejected model versions past retention, on the embedded MLflow store (``tests.maintenance_history``:
NP's v1 and v2 promoted, v3 rejected by the gate, v4 promoted then rolled back to v2).

The versions were registered minutes ago, so the step is run as of 40 days ahead (retention 30 days):
v3 and its run go (a tuning trial nested under its run with them); the champion v2, the rollback
target v1 and the former champion v4 stay and load, as do their runs. An interruption after the
runs were marked deleted but before ``mlflow gc`` leaves runs a rerun still collects.
"""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from core.settings import Settings
from pipelines.maintenance import remove_rejected_versions
from retention.quality_runs import artifact_folder
from retention.rejected_versions import REJECTED, RETENTION_TAG
from storage.promotions import PromotionStore
from tests.maintenance_history import MODEL, build_history
from training import tracking

AHEAD = pd.Timedelta(days=40)


@pytest.fixture
def history(tmp_path):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path / "home")})
    as_of = pd.Timestamp.now(tz="UTC").floor("h") + pd.Timedelta(minutes=30)
    history = build_history(settings, as_of, tmp_path / "logs")
    client = history.client()
    rejected_run = client.get_run(history.model_run_ids["3"])
    trial = tracking.start_run(
        client, rejected_run.info.experiment_id, "trial 0", parent=rejected_run.info.run_id, tags={"eopt.kind": "trial"}
    )
    tracking.finish(client, trial)
    return history, client, trial


def _versions(client) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{MODEL}'"))


def test_remove_rejected_versions__only_the_rejected_version_and_its_runs_go(history):
    history, client, trial = history
    store, settings = history.store, history.settings
    rejected = history.model_run_ids["3"]
    folder = artifact_folder(client.get_run(rejected))
    assert folder is not None and folder.is_dir()
    history_before = PromotionStore(store.engine).history().to_json()

    # within the retention: nothing
    assert remove_rejected_versions(store, client, settings, history.as_of, dry_run=False).count == 0

    dry = remove_rejected_versions(store, client, settings, history.as_of + AHEAD, dry_run=True)
    assert [r.item for r in dry.removals] == [f"{MODEL} version 3 (rejected) with 2 MLflow run(s)"]
    assert dry.bytes > 0 and _versions(client) == ["1", "2", "3", "4"]

    real = remove_rejected_versions(store, client, settings, history.as_of + AHEAD, dry_run=False)
    assert (real.removals, real.bytes) == (dry.removals, dry.bytes)
    assert _versions(client) == ["1", "2", "4"]
    for run_id in (rejected, trial):
        with pytest.raises(MlflowException):
            client.get_run(run_id)  # collected by `mlflow gc`: gone, not only marked deleted
    assert not folder.exists() and not folder.parent.exists()

    frame = pd.DataFrame({"x": [0.0]})
    for uri, price in ((f"models:/{MODEL}@champion", 2.0), (f"models:/{MODEL}/1", 1.0), (f"models:/{MODEL}/4", 4.0)):
        assert list(mlflow.pyfunc.load_model(uri).predict(frame)) == [price], uri
    for version in ("1", "2", "4"):
        assert client.get_run(history.model_run_ids[version]).info.lifecycle_stage == "active"
    assert PromotionStore(store.engine).history().to_json() == history_before
    assert remove_rejected_versions(store, client, settings, history.as_of + AHEAD, dry_run=False).count == 0


def test_remove_rejected_versions__a_rerun_collects_what_an_interrupted_run_marked_deleted(history):
    history, client, trial = history
    store, settings = history.store, history.settings
    rejected = history.model_run_ids["3"]
    folder = artifact_folder(client.get_run(rejected))
    # what a run killed after step 2 leaves: the runs tagged and marked deleted, the version gone, no gc
    for run_id in (rejected, trial):
        client.set_tag(run_id, RETENTION_TAG, REJECTED)
        client.delete_run(run_id)
    client.delete_model_version(MODEL, "3")
    assert folder is not None and folder.is_dir()  # artifacts of a run that is marked deleted, not yet collected

    rerun = remove_rejected_versions(store, client, settings, history.as_of + AHEAD, dry_run=False)
    assert sorted(r.item for r in rerun.removals) == sorted(
        f"MLflow run {run_id} of a removed rejected version" for run_id in (rejected, trial)
    )
    assert not folder.exists()
    experiment = client.get_run(history.model_run_ids["2"]).info.experiment_id
    assert client.search_runs([experiment], "", run_view_type=ViewType.DELETED_ONLY) == []
    assert _versions(client) == ["1", "2", "4"]
