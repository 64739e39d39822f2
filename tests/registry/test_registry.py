"""The registry around the gate, on a real SQLite-backed MLflow registry and real models.

NP is retrained once (smoke budget, short window; ``tests/registry_fixtures``) to version 1.
Further candidates are real models built from that retraining: the same ensemble (equal
quality), its weakest member alone (worse), and a LightGBM fitted on prices in EUR/kWh (worse
than the seasonal naive). The ``story`` fixture then walks the registry through a fixed sequence
of gate decisions and a manual promotion, recording what the registry said after each step:

    1. v1 gated, no champion yet                    -> promoted
    2. v2 (weakest member) promoted by hand         -> champion, v1 archived
    3. v3 (the ensemble) gated against champion v2  -> promoted, v2 archived
    4. v4 (weakest member) gated against v3         -> rejected: worse than the champion
    5. v5 (the ensemble again) gated against v3     -> rejected: only as good as the champion
    6. v6 (the ensemble) gated with a 1% threshold  -> rejected: MAPE above the threshold
    7. v7 (the EUR/kWh model) gated against v3      -> rejected: worse than the seasonal naive

Later tests (rollback, the CLI, a registry that is down, missing artifacts) register versions
of their own and check only what they changed, so they do not depend on each other's order.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from drift.performance import reference_of, stored_errors
from eopt.cli import cli
from registry.promotion import (
    PromotionOutcome,
    RegistryError,
    gate_candidate,
    holdout_errors_artifact,
    promote_version,
    rollback,
)
from storage.promotions import PromotionStore
from tests.registry_fixtures import (
    MODEL_NAME,
    REGION,
    TrainedNP,
    alias_version,
    cli_env,
    log_forecaster,
    production_version,
    register,
    stage_of,
    trained_np,
    unit_mixup_forecaster,
    weakest_member,
    with_thresholds,
)
from training.evaluation import Holdout, read_holdout
from training.features import TARGET_COLUMN

HOLDOUT_HOURS = 14 * 24  # EOPT_TEST_DAYS=14 of the fixture's settings


@dataclass
class Models:
    """Logged models the tests register versions of: (model URI, run id) each."""

    ensemble: tuple[str, str]
    weakest: tuple[str, str]
    weakest_name: str
    unit_mixup: tuple[str, str]


@dataclass
class Snapshot:
    """What the registry and the promotion history said right after one step."""

    production: str | None
    champion: str | None
    challenger: str | None
    stages: dict[str, str]
    tags: dict[str, str]  # of the step's version
    history: pd.DataFrame  # newest first


@dataclass
class Story:
    trained: TrainedNP
    models: Models
    promotions: PromotionStore
    outcomes: dict[int, PromotionOutcome] = field(default_factory=dict)
    snapshots: dict[int, Snapshot] = field(default_factory=dict)
    versions: dict[int, str] = field(default_factory=dict)
    rollback_after_first: object = None  # the CLI's answer to a rollback with nothing to roll back to


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedNP:
    trained = trained_np(tmp_path_factory, "registry")
    yield trained
    trained.store.engine.dispose()


@pytest.fixture(scope="module")
def models(trained: TrainedNP) -> Models:
    variants = trained.settings.stores.home / "variants"
    weakest_name, weakest = weakest_member(trained)
    return Models(
        ensemble=(trained.outcome.evaluation["model_uri"], trained.outcome.candidate.run_id),
        weakest=log_forecaster(trained, weakest, variants / "weakest", f"test: {weakest_name} alone"),
        weakest_name=weakest_name,
        unit_mixup=log_forecaster(trained, unit_mixup_forecaster(trained), variants / "unit_mixup", "test: EUR/kWh"),
    )


def snapshot(story: Story, version: str) -> Snapshot:
    client = story.trained.client
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    return Snapshot(
        production=production_version(client),
        champion=alias_version(client, "champion"),
        challenger=alias_version(client, "challenger"),
        stages={str(v.version): v.current_stage for v in versions},
        tags=dict(client.get_model_version(MODEL_NAME, version).tags),
        history=story.promotions.history(REGION),
    )


@pytest.fixture(scope="module")
def story(trained: TrainedNP, models: Models) -> Story:
    story = Story(trained, models, PromotionStore(trained.store.engine))
    client, settings, store = trained.client, trained.settings, trained.store

    def gate(step: int, version: str, step_settings=settings) -> None:
        story.versions[step] = version
        story.outcomes[step] = gate_candidate(client, step_settings, store, story.promotions, REGION, version)
        story.snapshots[step] = snapshot(story, version)

    gate(1, trained.outcome.candidate.version)
    story.rollback_after_first = CliRunner().invoke(
        cli, ["registry", "rollback", "--region", REGION], env=cli_env(settings)
    )
    story.versions[2] = register(trained, *models.weakest, "weakest")
    promote_version(
        client,
        story.promotions,
        REGION,
        story.versions[2],
        "test: start from the weaker single member",
        "registry test",
    )
    story.snapshots[2] = snapshot(story, story.versions[2])
    gate(3, register(trained, *models.ensemble, "ensemble"))
    gate(4, register(trained, *models.weakest, "weakest"))
    gate(5, register(trained, *models.ensemble, "ensemble"))
    gate(6, register(trained, *models.ensemble, "ensemble"), with_thresholds(settings, 1.0))
    gate(7, register(trained, *models.unit_mixup, "unit_mixup"))
    return story


def holdout(trained: TrainedNP) -> Holdout:
    return read_holdout(
        trained.store,
        REGION,
        trained.store.latest_ts(REGION) + pd.Timedelta(hours=1),
        trained.settings.training.test_days,
    )


def forecast_of(forecaster, window: Holdout) -> np.ndarray:
    """The forecaster's point forecasts of the holdout, each origin's as the served model answers it."""
    return forecaster.predict_each_origin(window.frame, window.prices, window.exogenous)["yhat"].to_numpy()


def mae_of(forecaster, window: Holdout) -> float:
    return float(np.mean(np.abs(forecast_of(forecaster, window) - window.frame[TARGET_COLUMN].to_numpy())))


def history_row(snap: Snapshot, version: str) -> pd.Series:
    rows = snap.history[snap.history["candidate_version"] == version]
    assert len(rows) == 1, f"expected one promotion row for version {version}, found {len(rows)}"
    return rows.iloc[0]


# -- the story: gate decisions -----------------------------------------------------------------


def test_gate_candidate__stores_the_promoted_versions_holdout_errors_on_its_run_and_drift_reads_them(story):
    trained, outcome = story.trained, story.outcomes[1]
    client = trained.client
    run_id = client.get_model_version(MODEL_NAME, story.versions[1]).run_id
    with tempfile.TemporaryDirectory() as folder:
        stored = json.loads(
            Path(client.download_artifacts(run_id, holdout_errors_artifact(story.versions[1]), folder)).read_text()
        )
    window = holdout(trained)
    frame = window.frame
    expected = np.abs(forecast_of(trained.ensemble(), window) - frame[TARGET_COLUMN].to_numpy())
    assert stored["version"] == story.versions[1] and len(stored["absolute_error"]) == HOLDOUT_HOURS
    assert stored["absolute_error"] == pytest.approx(list(expected), rel=1e-6)
    assert stored["target_ts"][0] == frame["target_ts"].iloc[0].isoformat()
    assert float(np.mean(stored["absolute_error"])) == pytest.approx(outcome.candidate.mae, rel=1e-9)

    read_back = stored_errors(client, run_id, story.versions[1])
    assert read_back is not None
    reference = reference_of(*read_back)

    assert reference.hours == HOLDOUT_HOURS and reference.days == 14
    assert reference.mean == pytest.approx(outcome.candidate.mae, rel=1e-9)
    assert reference.source.startswith("its holdout errors stored at promotion")


def test_gate_candidate__promotes_the_first_candidate_when_there_is_no_champion(story):
    outcome, snap = story.outcomes[1], story.snapshots[1]
    assert outcome.decision.promote is True
    assert outcome.champion is None and outcome.champion_version_before is None
    assert outcome.champion_version_after == "1"
    assert outcome.decision.reasons[-1] == "no champion yet"
    assert snap.production == snap.champion == "1"
    assert snap.challenger is None  # the challenger alias moved off the new champion
    assert snap.stages == {"1": "Production"}


def test_gate_candidate__scores_candidate_and_naive_on_the_last_14_days_of_real_prices(story):
    trained, outcome = story.trained, story.outcomes[1]
    prices = trained.prices()
    hours = prices.index[-HOLDOUT_HOURS:]
    # NP's day-ahead origins are local midnights (23:00 UTC in winter): the last 14 complete days
    assert hours[0] == pd.Timestamp("2018-12-10 23:00", tz="UTC") and hours[-1] == pd.Timestamp(
        "2018-12-24 22:00", tz="UTC"
    )
    naive_mae = float(
        np.mean(np.abs(prices.loc[hours].to_numpy() - prices.reindex(hours - pd.Timedelta(hours=168)).to_numpy()))
    )
    assert outcome.baseline.hours == outcome.candidate.hours == HOLDOUT_HOURS
    assert outcome.baseline.mae == pytest.approx(naive_mae, rel=1e-9)
    assert outcome.candidate.mae == pytest.approx(mae_of(trained.ensemble(), holdout(trained)), rel=1e-6)
    assert outcome.candidate.rmae == pytest.approx(outcome.candidate.mae / naive_mae, rel=1e-9)
    # the smoke-budget ensemble clears the Nord Pool gate: under 10% MAPE and well below the naive
    assert outcome.candidate.mape < 10.0 and outcome.candidate.rmae < 0.7


def test_gate_candidate__tags_the_version_with_decision_reasons_threshold_and_holdout(story):
    outcome, tags = story.outcomes[1], story.snapshots[1].tags
    assert tags["eopt.gate.decision"] == "promoted"
    assert tags["eopt.gate.reasons"] == "; ".join(outcome.decision.reasons)
    assert float(tags["eopt.gate.mape_threshold"]) == 10.0
    assert tags["eopt.gate.holdout"] == "2018-12-10 23:00:00+00:00 .. 2018-12-24 22:00:00+00:00 (336 h)"
    assert tags["eopt.gate.champion_version"] == "none"
    assert float(tags["eopt.gate.candidate_mae"]) == pytest.approx(outcome.candidate.mae, rel=1e-5)
    assert float(tags["eopt.gate.naive_mae"]) == pytest.approx(outcome.baseline.mae, rel=1e-5)
    assert "eopt.gate.champion_mae" not in tags
    assert pd.Timestamp(tags["eopt.gate.decided_at"]).tzinfo is not None


def test_gate_candidate__records_the_decision_with_its_metrics_in_the_promotion_history(story):
    outcome, snap = story.outcomes[1], story.snapshots[1]
    row = history_row(snap, "1")
    assert (row["action"], bool(row["promoted"]), row["champion_version"]) == ("gate", True, None)
    assert row["model_name"] == MODEL_NAME and row["actor"] == "model_retraining"
    assert list(row["reasons"]) == outcome.decision.reasons
    assert row["mape_threshold"] == 10.0
    metrics = row["metrics"] if isinstance(row["metrics"], dict) else json.loads(row["metrics"])
    assert set(metrics) == {"holdout", "candidate", "baseline"}
    assert metrics["candidate"]["mae"] == pytest.approx(outcome.candidate.mae)
    assert metrics["candidate"]["label"] == "candidate v1"
    assert metrics["baseline"]["mae"] == pytest.approx(outcome.baseline.mae)
    assert metrics["candidate"]["hours"] == metrics["baseline"]["hours"] == HOLDOUT_HOURS


def test_registry_rollback__with_only_the_first_champion_exits_1_saying_there_is_nothing_to_roll_back_to(story):
    result = story.rollback_after_first
    assert result.exit_code == 1
    assert "NP: electricity-price-NP version 1 replaced no earlier champion; nothing to roll back to" in result.output
    assert story.snapshots[1].history["action"].tolist() == ["gate"]  # the refusal recorded nothing


def test_promote_version__a_manual_promotion_records_actor_and_reason_and_archives_the_champion(story):
    snap, v2 = story.snapshots[2], story.versions[2]
    assert snap.production == snap.champion == v2 == "2"
    assert snap.stages == {"1": "Archived", "2": "Production"}
    row = history_row(snap, v2)
    assert (row["action"], bool(row["promoted"]), row["champion_version"]) == ("manual", True, "1")
    assert row["actor"] == "registry test"
    assert list(row["reasons"]) == ["manual: test: start from the weaker single member"]
    assert row["metrics"] is None and pd.isna(row["mape_threshold"])
    assert snap.tags["eopt.gate.decision"] == "promoted manually"
    assert snap.tags["eopt.gate.actor"] == "registry test"
    assert snap.tags["eopt.gate.reasons"] == "manual: test: start from the weaker single member"


def test_gate_candidate__promotes_a_better_candidate_and_archives_the_previous_champion(story):
    outcome, snap, v3 = story.outcomes[3], story.snapshots[3], story.versions[3]
    assert outcome.decision.promote is True
    assert outcome.champion_version_before == "2" and outcome.champion_version_after == v3 == "3"
    assert outcome.decision.reasons[-1] == (f"MAE {outcome.candidate.mae:.4f} < champion v2 {outcome.champion.mae:.4f}")
    assert snap.production == snap.champion == "3"
    assert snap.stages == {"1": "Archived", "2": "Archived", "3": "Production"}
    row = history_row(snap, v3)
    assert (row["action"], bool(row["promoted"]), row["champion_version"]) == ("gate", True, "2")


def test_gate_candidate__rescores_the_champion_on_the_candidates_hours(story):
    trained, outcome, snap = story.trained, story.outcomes[3], story.snapshots[3]
    # version 2 carries no test-metric tags: its MAE can only come from re-scoring it now
    assert not any(k.startswith("eopt.test_") for k in trained.client.get_model_version(MODEL_NAME, "2").tags)
    _, weakest = weakest_member(trained)
    assert outcome.champion.label == "champion v2"
    assert outcome.champion.hours == outcome.candidate.hours == HOLDOUT_HOURS
    assert outcome.champion.mae == pytest.approx(mae_of(weakest, holdout(trained)), rel=1e-6)
    assert outcome.champion.mae > outcome.candidate.mae
    metrics = history_row(snap, "3")["metrics"]
    assert set(metrics) == {"holdout", "candidate", "baseline", "champion"}
    assert metrics["champion"]["hours"] == metrics["candidate"]["hours"] == metrics["baseline"]["hours"]
    assert metrics["holdout"] == story.snapshots[1].tags["eopt.gate.holdout"]  # the same window as v1 was judged on
    assert float(snap.tags["eopt.gate.champion_mae"]) == pytest.approx(outcome.champion.mae, rel=1e-5)


def test_gate_candidate__rejects_a_candidate_worse_than_the_champion_naming_its_mae(story):
    outcome, snap, v4 = story.outcomes[4], story.snapshots[4], story.versions[4]
    champion_mae = story.outcomes[3].candidate.mae  # v3 is the same ensemble, scored on the same hours
    assert outcome.decision.promote is False
    assert outcome.decision.checks == {"mape_threshold": True, "beats_seasonal_naive": True, "beats_champion": False}
    assert outcome.champion.mae == pytest.approx(champion_mae, rel=1e-9)
    assert outcome.decision.reasons[-1] == f"MAE {outcome.candidate.mae:.4f} >= champion v3 {champion_mae:.4f}"
    assert outcome.candidate.mae == pytest.approx(story.outcomes[3].champion.mae, rel=1e-9)  # the weakest member again
    assert snap.stages[v4] == "Archived"
    assert snap.production == snap.champion == "3" and outcome.champion_version_after == "3"
    assert snap.challenger is None
    assert snap.tags["eopt.gate.decision"] == "rejected"
    assert snap.tags["eopt.gate.champion_version"] == "3"
    row = history_row(snap, v4)
    assert (row["action"], bool(row["promoted"]), row["champion_version"]) == ("gate", False, "3")
    assert list(row["reasons"]) == outcome.decision.reasons


def test_gate_candidate__rejects_a_candidate_only_as_good_as_the_champion(story):
    outcome, snap = story.outcomes[5], story.snapshots[5]
    assert outcome.candidate.mae == pytest.approx(outcome.champion.mae, rel=1e-9)
    assert outcome.decision.promote is False
    assert outcome.decision.checks["beats_champion"] is False
    assert outcome.decision.checks["mape_threshold"] and outcome.decision.checks["beats_seasonal_naive"]
    assert snap.stages[story.versions[5]] == "Archived" and snap.production == snap.champion == "3"


def test_gate_candidate__rejects_a_candidate_above_the_mape_threshold_with_the_mape_reason(story):
    outcome, snap, v6 = story.outcomes[6], story.snapshots[6], story.versions[6]
    assert outcome.decision.promote is False
    assert outcome.decision.checks["mape_threshold"] is False
    assert outcome.decision.reasons[0] == f"MAPE {outcome.candidate.mape:.2f}% >= threshold 1.00%"
    assert float(snap.tags["eopt.gate.mape_threshold"]) == 1.0
    assert history_row(snap, v6)["mape_threshold"] == 1.0
    assert snap.stages[v6] == "Archived" and snap.production == snap.champion == "3"


def test_gate_candidate__rejects_a_model_trained_on_the_wrong_unit_as_worse_than_the_seasonal_naive(story):
    outcome, snap, v7 = story.outcomes[7], story.snapshots[7], story.versions[7]
    assert outcome.decision.promote is False
    assert outcome.decision.checks["beats_seasonal_naive"] is False
    assert (
        outcome.decision.reasons[1] == f"MAE {outcome.candidate.mae:.4f} >= seasonal naive {outcome.baseline.mae:.4f}"
    )
    # forecasts in EUR/kWh are ~1000 times too small: the error is about the price level itself
    actual = holdout(story.trained).frame[TARGET_COLUMN].abs().mean()
    assert outcome.candidate.mae == pytest.approx(actual, rel=0.1)
    assert outcome.candidate.mae > 5 * outcome.baseline.mae
    assert snap.stages[v7] == "Archived" and snap.production == snap.champion == "3"


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5, 6, 7])
def test_registry__production_stage_and_champion_alias_name_the_same_single_version_after_every_step(story, step):
    snap = story.snapshots[step]
    assert snap.production is not None and snap.production == snap.champion
    assert [v for v, stage in snap.stages.items() if stage == "Production"] == [snap.production]


def test_registry__every_decision_is_in_the_history_newest_first(story):
    history = story.snapshots[7].history
    assert history["action"].tolist() == ["gate", "gate", "gate", "gate", "gate", "manual", "gate"]
    assert history["candidate_version"].tolist() == ["7", "6", "5", "4", "3", "2", "1"]
    assert history["promoted"].map(bool).tolist() == [False, False, False, False, True, True, True]


# -- rollback ----------------------------------------------------------------------------------


def test_rollback__restores_the_champion_it_replaced_and_a_second_rollback_walks_further_back(story):
    trained, promotions = story.trained, story.promotions
    client = trained.client
    before = production_version(client)
    a = register(trained, *story.models.ensemble, "ensemble")
    b = register(trained, *story.models.ensemble, "ensemble")
    promote_version(client, promotions, REGION, a, "test: rollback chain a", "registry test")
    promote_version(client, promotions, REGION, b, "test: rollback chain b", "registry test")
    assert production_version(client) == alias_version(client, "champion") == b

    assert rollback(client, promotions, REGION, "registry test", "b misbehaves") == (b, a)
    assert production_version(client) == alias_version(client, "champion") == a
    assert (stage_of(client, a), stage_of(client, b)) == ("Production", "Archived")
    row = promotions.history(REGION).iloc[0]
    assert (row["action"], row["candidate_version"], row["champion_version"]) == ("rollback", a, b)
    assert list(row["reasons"]) == [f"rollback from v{b}: b misbehaves"] and row["actor"] == "registry test"
    assert client.get_model_version(MODEL_NAME, a).tags["eopt.gate.decision"] == "restored by rollback"

    # not a toggle back to b: a's own predecessor returns
    assert rollback(client, promotions, REGION, "registry test") == (a, before)
    assert production_version(client) == alias_version(client, "champion") == before
    assert stage_of(client, a) == "Archived"


# -- the CLI -----------------------------------------------------------------------------------


def invoke(story: Story, *args: str):
    return CliRunner().invoke(cli, ["registry", *args], env=cli_env(story.trained.settings))


def test_cli_registry_status__lists_every_version_with_stage_aliases_and_gate_verdict(story):
    result = invoke(story, "status", "--region", "NP", "--history")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "region",
        "version",
        "stage",
        "aliases",
        "test_mae",
        "test_rmae",
        "test_mape",
        "gate",
        "created",
    ]
    champion = alias_version(story.trained.client, "champion")
    row = next(line.split() for line in lines[1:] if line.split()[:2] == ["NP", champion])
    assert row[2] == "Production" and "champion" in row[3]
    first = next(line for line in lines[1:] if line.split()[:2] == ["NP", "1"])
    assert "Archived" in first and "promoted" in first
    v1 = story.trained.client.get_model_version(MODEL_NAME, "1").tags
    assert v1["eopt.test_mae"] in first  # the retraining's test MAE, as tagged
    rejected = next(line for line in lines[1:] if line.split()[:2] == ["NP", story.versions[7]])
    assert "Archived" in rejected and "rejected" in rejected
    assert any("manual" in line and "manual: test: start from the weaker single member" in line for line in lines)
    assert any("no champion yet" in line for line in lines)


def test_cli_registry_status__a_region_without_a_model_says_how_to_train_one(story):
    result = invoke(story, "status", "--region", "BE")
    assert result.exit_code == 0
    assert "BE: no registered model yet (run eopt train --region BE)" in result.output


def test_cli_registry_promote_and_rollback__print_what_changed_and_audit_the_cli_user(story):
    trained, client = story.trained, story.trained.client
    before = production_version(client)
    version = register(trained, *story.models.ensemble, "ensemble")
    result = invoke(story, "promote", "--region", "np", "--version", version, "--reason", "cli test: hotfix")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"NP: version {version} is now the champion (Production); version {before} archived"
    assert production_version(client) == alias_version(client, "champion") == version
    row = story.promotions.history(REGION).iloc[0]
    assert (row["action"], row["candidate_version"], row["champion_version"]) == ("manual", version, before)
    assert row["actor"].startswith("eopt cli (") and list(row["reasons"]) == ["manual: cli test: hotfix"]

    result = invoke(story, "rollback", "--region", "NP", "--reason", "cli test: undo")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"NP: rolled back from version {version} to version {before} (now the champion)"
    assert production_version(client) == alias_version(client, "champion") == before
    assert list(story.promotions.history(REGION).iloc[0]["reasons"]) == [f"rollback from v{version}: cli test: undo"]


def test_cli_registry_promote__refuses_a_blank_or_missing_reason(story):
    before = production_version(story.trained.client)
    blank = invoke(story, "promote", "--region", "NP", "--version", "1", "--reason", "  ")
    assert blank.exit_code == 1
    assert "NP: a manual promotion needs a reason (--reason)" in blank.output
    missing = invoke(story, "promote", "--region", "NP", "--version", "1")
    assert missing.exit_code == 2  # click's usage error
    assert "Missing option '--reason'" in missing.output
    assert production_version(story.trained.client) == before


def test_cli_registry_promote__refuses_an_unknown_version_and_the_current_champion(story):
    client = story.trained.client
    before = production_version(client)
    unknown = invoke(story, "promote", "--region", "NP", "--version", "999", "--reason", "test")
    assert unknown.exit_code == 1
    assert "NP: reading electricity-price-NP version 999 failed" in unknown.output
    assert "Production is unchanged" in unknown.output
    again = invoke(story, "promote", "--region", "NP", "--version", before, "--reason", "test")
    assert again.exit_code == 1
    assert f"NP: electricity-price-NP version {before} is already the champion" in again.output
    assert production_version(client) == before


def test_cli_registry_rollback__a_region_without_a_champion_exits_1_naming_it(story):
    result = invoke(story, "rollback", "--region", "BE")
    assert result.exit_code == 1
    assert "BE: electricity-price-BE has no champion to roll back" in result.output


# -- failures leave Production alone -----------------------------------------------------------


def gate_rows(story: Story) -> int:
    return len(story.promotions.history(REGION))


def test_gate_candidate__an_unreachable_registry_raises_and_leaves_production_unchanged(story, monkeypatch):
    # MLflow's REST client retries a refused connection 7 times with backoff (~4 min) by default
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    trained, client = story.trained, story.trained.client
    version = register(trained, *story.models.ensemble, "ensemble")
    before, rows = production_version(client), gate_rows(story)
    down = trained.settings.with_overrides(
        mlflow_tracking_uri="http://127.0.0.1:1", mlflow_registry_uri="http://127.0.0.1:1"
    )
    with pytest.raises(
        RegistryError,
        match=rf"^NP: reading electricity-price-NP version {version} failed \(.*127\.0\.0\.1.*\); "
        r"Production is unchanged$",
    ):
        gate_candidate(
            MlflowClient(down.stores.mlflow_tracking_uri, down.stores.mlflow_registry_uri),
            down,
            trained.store,
            story.promotions,
            REGION,
            version,
        )
    assert production_version(client) == alias_version(client, "champion") == before
    assert stage_of(client, version) == "Staging" and alias_version(client, "challenger") == version
    assert not any(k.startswith("eopt.gate.") for k in client.get_model_version(MODEL_NAME, version).tags)
    assert gate_rows(story) == rows


def test_gate_candidate__a_candidate_whose_artifacts_are_gone_raises_and_leaves_production_unchanged(story):
    trained, client = story.trained, story.trained.client
    _, weakest = weakest_member(trained)
    uri, run = log_forecaster(
        trained, weakest, trained.settings.stores.home / "variants" / "doomed", "test: artifacts deleted"
    )
    version = register(trained, uri, run, "doomed")
    location = client.get_logged_model(uri.removeprefix("models:/")).artifact_location
    shutil.rmtree(Path(location.removeprefix("file://")))
    before, rows = production_version(client), gate_rows(story)
    with pytest.raises(
        RegistryError,
        match=rf"^NP: scoring electricity-price-NP version {version} failed \(.*\); "
        r"Production is unchanged$",
    ):
        gate_candidate(client, trained.settings, trained.store, story.promotions, REGION, version)
    assert production_version(client) == alias_version(client, "champion") == before
    assert stage_of(client, version) == "Staging"
    assert not any(k.startswith("eopt.gate.") for k in client.get_model_version(MODEL_NAME, version).tags)
    assert gate_rows(story) == rows

    # a champion that cannot be re-scored does not block a good candidate; the reasons say so
    promote_version(client, story.promotions, REGION, version, "test: a champion whose files are gone", "registry test")
    candidate = register(trained, *story.models.ensemble, "ensemble")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome = gate_candidate(client, trained.settings, trained.store, story.promotions, REGION, candidate)
    assert outcome.decision.promote is True and outcome.champion is None
    assert outcome.decision.reasons[-1].startswith(f"champion v{version} could not be re-scored (")
    assert outcome.decision.reasons[-1].endswith("judged without it")
    assert production_version(client) == alias_version(client, "champion") == candidate
