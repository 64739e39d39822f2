"""One region's retraining end to end: real store, real MLflow tracking store and registry, real Optuna storage.

The module fixture retrains NP once with the ``smoke`` budget (seconds per model); the tests read
what it left in MLflow, in the registry and in the workspace.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from core.markets import load_market
from core.metrics import METRIC_NAMES
from core.settings import Settings
from eopt.cli import cli
from pipelines.model_retraining import Retraining, RetrainingError, retrain_region
from quality.checks import Window, served_member_forecasts
from registry.models import registered_model_name
from serving.model_request import build_request
from storage.forecasts import ForecastStore
from tests.market_frames import store_with_history
from training.dataset import TrainingData, TrainingDataError
from training.ensemble import calibrate_on_served
from training.features import day_ahead_origins
from training.tuning import TuningError

ROOT = Path(__file__).resolve().parents[2]
REGION = "NP"
WHO = ("ensemble", "xgboost", "lightgbm", "cnn_lstm", "lear", "seasonal_naive")


def _settings(home: Path, **env: str) -> Settings:
    return Settings.from_env({"EOPT_HOME": str(home), "EOPT_TRAINING_BUDGET": "smoke", **env})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("retraining")
    settings = _settings(home)
    store = store_with_history(settings.stores.database_url, {REGION: None})
    engine = store.engine
    history = load_market(REGION, ROOT / "data" / "markets")
    outcome = retrain_region(settings, store, REGION)
    client = MlflowClient(settings.stores.mlflow_tracking_uri, settings.stores.mlflow_registry_uri)
    yield settings, store, outcome, client, history
    engine.dispose()


def _runs(client: MlflowClient, settings: Settings):
    experiment = client.get_experiment_by_name(settings.training.mlflow_experiment)
    return client.search_runs([experiment.experiment_id], max_results=500)


def test_retraining__registers_a_staging_version_with_the_challenger_alias(trained):
    _, _, outcome, client, _ = trained
    name = registered_model_name(REGION)
    assert outcome.candidate.name == name == "electricity-price-NP"
    version = client.get_model_version(name, outcome.candidate.version)
    assert version.current_stage == "Staging"
    assert client.get_model_version_by_alias(name, "challenger").version == version.version
    assert version.run_id == outcome.candidate.run_id
    assert float(version.tags["eopt.test_mae"]) == pytest.approx(outcome.evaluation["test_mae"], rel=1e-5)


def test_retraining__logs_one_parent_run_with_nested_member_and_trial_runs(trained):
    settings, _, outcome, client, _ = trained
    runs = _runs(client, settings)
    as_of = client.get_run(outcome.candidate.run_id).data.tags["eopt.as_of"]
    # this retraining's parents (other tests of the module fail retrainings of other regions and weeks)
    parents = [
        r
        for r in runs
        if r.data.tags.get("eopt.kind") == "retraining"
        and (r.data.tags.get("eopt.region"), r.data.tags.get("eopt.as_of")) == (REGION, as_of)
    ]
    assert len(parents) == 1 and parents[0].info.run_id == outcome.candidate.run_id
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    members = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["eopt.model"] for r in members) == ["cnn_lstm", "lear", "lightgbm", "xgboost"]
    lear = next(r for r in members if r.data.tags["eopt.model"] == "lear")
    # LEAR is not tuned: its run holds what its criterion chose (the smoke budget: the 56-day window only)
    assert not [r for r in runs if r.data.tags.get("mlflow.parentRunId") == lear.info.run_id]
    assert lear.data.params["windows"] == "56" and lear.data.params["criterion"] == "aic"
    assert {f"alpha_w56_h{h:02d}" for h in range(24)} <= set(lear.data.metrics)
    assert all(lear.data.metrics[f"alpha_w56_h{h:02d}"] >= 0 for h in range(24))
    assert lear.data.metrics["fit_seconds"] > 0 and lear.data.metrics["validation_mae"] > 0
    assert {f"test_{m}" for m in ("mae", "rmae", "smape", "rmse")} <= set(lear.data.metrics)
    for member in members:
        if member is lear:
            continue
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == member.info.run_id]
        assert len(trials) == 2  # the smoke budget: 2 trials per model
        assert {r.data.tags["eopt.kind"] for r in trials} == {"trial"}
        assert all("validation_mae" in r.data.metrics or "validation_mae_at_prune" in r.data.metrics for r in trials)
        first = min(trials, key=lambda r: r.info.start_time)
        assert first.data.tags["optuna.origin"] == "default parameters"
        assert {f"test_{m}" for m in ("mae", "rmae", "smape", "rmse")} <= set(member.data.metrics)


def test_retraining__parent_run_holds_every_metric_for_members_ensemble_and_naive(trained):
    _, _, outcome, client, _ = trained
    metrics = client.get_run(outcome.candidate.run_id).data.metrics
    for who in WHO:
        for metric in ("mae", "rmae", "smape", "rmse", "mape"):
            assert f"{who}_test_{metric}" in metrics, f"{who}_test_{metric}"
    assert metrics["seasonal_naive_test_rmae"] == pytest.approx(1.0)
    assert metrics["test_rmae"] == pytest.approx(metrics["test_mae"] / metrics["seasonal_naive_test_mae"], rel=1e-9)
    # the NP history's last 8 weeks, even on the smoke budget, are forecast 40% better than seasonal naive
    assert metrics["test_rmae"] <= 0.6
    weights = [metrics[f"weight_{m}"] for m in ("xgboost", "lightgbm", "cnn_lstm", "lear")]
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1.0)
    # the default rule (EOPT_ENSEMBLE_WEIGHTS=lear_network): LEAR and the CNN-LSTM half and half, the trees at 0
    assert client.get_run(outcome.candidate.run_id).data.params["ensemble_weight_rule"] == "lear_network"
    assert weights == [0.0, 0.0, 0.5, 0.5]
    assert 0.75 <= metrics["interval_coverage_test"] <= 1.0


def test_retraining__logs_window_checksum_plot_card_and_member_artifacts(trained):
    settings, _store, outcome, client, history = trained
    run = client.get_run(outcome.candidate.run_id)
    end = history.prices["ts"].max() + pd.Timedelta(hours=1)
    prices = history.prices.set_index("ts")["price"]
    # the extract is LEAR's history (EOPT_LEAR_HISTORY_DAYS: 1456 days), whose last 730 the other members read
    extract_days = max(settings.training.window_days, settings.training.lear_history_days)
    assert extract_days == 1456
    window = prices[prices.index >= end - pd.Timedelta(days=extract_days)]
    exog = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    expected = TrainingData(
        REGION,
        window,
        exog[(exog.index >= window.index[0]) & (exog.index < end + pd.Timedelta(days=1))],
        window.index[0],
        end,
    )
    assert run.data.params["data_sha256"] == expected.checksum
    assert run.data.params["data_end"] == str(end)
    parent_files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"forecast_vs_actual.png", "MODEL_CARD.md", "evaluation.json", "data"} <= parent_files
    card = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="MODEL_CARD.md")).read_text()
    assert expected.checksum in card and "seasonal_naive" in card
    members = [r for r in _runs(client, settings) if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]
    for member in members:
        files = {f.path for f in client.list_artifacts(member.info.run_id)}
        if member.data.tags["eopt.model"] == "lear":
            assert files == {"member.json"}
            continue
        assert {"optuna_trials.csv", "optuna_history.png", "member.json"} <= files
        if member.data.tags["eopt.model"] != "cnn_lstm":
            assert {"feature_importance.csv", "feature_importance.png"} <= files


def test_registered_pyfunc__forecasts_24_hours_from_a_raw_request(trained):
    settings, _, _outcome, _, history = trained
    mlflow.set_tracking_uri(settings.stores.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.stores.mlflow_registry_uri)
    model = mlflow.pyfunc.load_model(f"models:/{registered_model_name(REGION)}@challenger")
    prices = history.prices.set_index("ts")["price"]
    exog = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    origin = pd.Timestamp("2018-12-20 13:00", tz="UTC")  # an hourly origin, not a midnight
    request = build_request(prices, exog, REGION, origin)
    forecast = model.predict(request.table, params=request.params)
    assert len(forecast) == 24
    assert list(forecast["target_ts"]) == [
        f"{t:%Y-%m-%dT%H:%M:%SZ}" for t in pd.date_range(origin, periods=24, freq="h")
    ]
    assert np.isfinite(forecast[["yhat", "lower", "upper"]].to_numpy()).all()
    # LEAR's models are day-aligned: from a 13:00 origin it abstains and the other members carry its weight
    assert forecast["yhat_lear"].isna().all()
    assert (forecast["lower"] <= forecast["yhat"]).all() and (forecast["yhat"] <= forecast["upper"]).all()
    actual = prices.reindex(pd.date_range(origin, periods=24, freq="h")).to_numpy()
    assert (
        np.mean(np.abs(forecast["yhat"].to_numpy() - actual))
        < np.mean(np.abs(request.table["price"].iloc[:24].to_numpy() - actual)) * 1.5  # the price a week earlier
    )


def test_registered_pyfunc__loads_from_code_and_plain_member_files_without_pickles(trained):
    _, _, outcome, client, _ = trained
    version = client.get_model_version(registered_model_name(REGION), outcome.candidate.version)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{version.name}/{version.version}"))
    mlmodel = (local / "MLmodel").read_text()
    assert "ensemble_model_code.py" in mlmodel and "signature:" in mlmodel
    files = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]
    assert any(f.endswith("members/xgboost/model.xgb.json") for f in files)
    assert any(f.endswith("members/lightgbm/model.lgb.txt") for f in files)
    assert any(f.endswith("members/cnn_lstm/weights.pt") for f in files)
    assert any(f.endswith("members/lear/lear.json") for f in files)
    assert (local / "input_example.json").is_file()


def test_retraining__a_retried_register_step_does_not_register_twice(trained):
    settings, store, outcome, client, _ = trained
    job = Retraining.open(settings, REGION, store.latest_ts(REGION) + pd.Timedelta(hours=1))
    again = job.register()
    assert again.version == outcome.candidate.version
    assert len(client.search_model_versions(f"name = '{registered_model_name(REGION)}'")) == 1


def test_retraining__a_region_without_data_fails_naming_it_and_registers_nothing(trained):
    settings, store, _, client, _ = trained
    with pytest.raises(TrainingDataError, match=r"BE: no prices in the store.*eopt load-history --region BE"):
        retrain_region(settings, store, "BE")
    assert not client.search_registered_models("name = 'electricity-price-BE'")


def test_retraining__evaluation_without_trained_members_fails_and_registers_nothing(trained):
    settings, store, outcome, client, _ = trained
    job = Retraining.open(settings, REGION, pd.Timestamp("2018-12-10", tz="UTC"))
    job.extract_training_data(store)
    job.engineer_features()
    with pytest.raises(RetrainingError, match="NP: member xgboost was not trained"):
        job.evaluate_ensemble()
    with pytest.raises(RetrainingError, match="NP: the candidate was not evaluated"):
        job.register()
    job.fail("test: evaluation refused")
    parent = client.get_run(job.manifest()["parent_run_id"])
    assert parent.info.status == "FAILED" and parent.data.tags["eopt.failure"] == "test: evaluation refused"
    versions = client.search_model_versions(f"name = '{registered_model_name(REGION)}'")
    assert [str(v.version) for v in versions] == [outcome.candidate.version]


def test_retraining__an_unreachable_study_storage_fails_the_member_with_its_masked_address(trained, tmp_path):
    settings, store, _outcome, client, _ = trained
    broken = settings.with_overrides(optuna_storage="postgresql+psycopg2://eopt:s3cret@127.0.0.1:1/optuna")
    job = Retraining.open(broken, REGION, pd.Timestamp("2018-12-03", tz="UTC"))
    job.extract_training_data(store)
    job.engineer_features()
    with pytest.raises(TuningError) as failure:
        job.train_member("lightgbm")
    assert "NP/lightgbm" in str(failure.value) and "s3cret" not in str(failure.value)
    assert "EOPT_OPTUNA_STORAGE" in str(failure.value)
    member_runs = [
        r for r in _runs(client, settings) if r.data.tags.get("mlflow.parentRunId") == job.manifest()["parent_run_id"]
    ]
    assert [r.info.status for r in member_runs] == ["FAILED"]


def test_cli_train__refuses_a_region_without_data_with_exit_1(trained, tmp_path):
    settings, *_ = trained
    env = {"EOPT_HOME": str(settings.stores.home), "EOPT_TRAINING_BUDGET": "smoke", "EOPT_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(cli, ["train", "--region", "PJM"], env=env)
    assert result.exit_code == 1
    assert "PJM: no prices in the store" in result.output


def test_retraining_metrics__names_match_the_metric_module(trained):
    _, _, _outcome, _, _ = trained
    evaluation = json.loads((outcome_folder(trained) / "ensemble" / "evaluation.json").read_text())
    for who in WHO:
        assert set(METRIC_NAMES) <= set(evaluation["metrics_test"][who])
    assert evaluation["model_uri"].startswith("models:/")


def outcome_folder(trained) -> Path:
    settings, store, _outcome, _, _ = trained
    latest = store.latest_ts(REGION) + pd.Timedelta(hours=1)
    return Retraining.open(settings, REGION, latest).folder


def test_cli_evaluate__rescores_the_challenger_on_its_own_test_window_to_the_same_mae(trained):
    settings, _, outcome, _, _ = trained
    env = {"EOPT_HOME": str(settings.stores.home), "EOPT_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(cli, ["evaluate", "--region", "NP", "--model", "challenger", "--days", "56"], env=env)
    assert result.exit_code == 0, result.output
    assert "(1344 h)" in result.output  # the 56 test days, 24 hours each
    mae = float(result.output.split("MAE ")[1].split(",")[0])
    assert mae == pytest.approx(outcome.evaluation["test_mae"], abs=5e-4)
    by_stage = CliRunner().invoke(cli, ["evaluate", "--region", "NP", "--model", "Staging", "--days", "7"], env=env)
    assert by_stage.exit_code == 0 and "(168 h)" in by_stage.output


def test_cli_evaluate__an_unknown_alias_fails_naming_the_model_uri(trained):
    settings, *_ = trained
    env = {"EOPT_HOME": str(settings.stores.home), "EOPT_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(cli, ["evaluate", "--region", "NP", "--model", "champion"], env=env)
    assert result.exit_code == 1
    assert "models:/electricity-price-NP@champion" in result.output


def test_cli_forecast__without_a_champion_stores_24_labelled_fallback_rows(trained):
    import sqlalchemy as sa

    settings, store, *_ = trained
    env = {"EOPT_HOME": str(settings.stores.home), "EOPT_LOG_LEVEL": "WARNING"}
    result = CliRunner().invoke(cli, ["forecast", "--region", "NP"], env=env)
    assert result.exit_code == 0, result.output
    assert "NP: FALLBACK seasonal naive: 2018-12-24 23:00 .. 22:00 UTC" in result.output and "24 new" in result.output
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT count(*), min(CAST(is_fallback AS INTEGER)), min(model_name) FROM forecasts WHERE region = 'NP'"
            )
        ).one()
    assert tuple(rows) == (24, 1, "seasonal-naive")
    again = CliRunner().invoke(cli, ["forecast", "--region", "NP"], env=env)
    assert "0 new, 0 updated" in again.output  # same issue hour: an idempotent rewrite


def test_retraining__the_weekly_run_eight_weeks_after_the_autumn_change_trains_and_registers(tmp_path):
    """BE as of Sunday 2016-12-25 02:00 UTC (the weekly DAG's time): its test window starts the Monday
    after the 2016-10-30 change, so the validation window ends at 02:00 local on the change day, in
    the repeated hour. That crashed with AmbiguousTimeError; it must retrain like any other week."""
    settings = _settings(tmp_path, EOPT_TRAINING_WINDOW_DAYS="180")
    store = store_with_history(settings.stores.database_url, {"BE": None})
    try:
        outcome = retrain_region(settings, store, "BE", as_of=pd.Timestamp("2016-12-25T02:00:00Z"))
    finally:
        store.engine.dispose()
    assert outcome.candidate.name == "electricity-price-BE" and outcome.candidate.version == "1"
    splits = json.loads(
        (Retraining.open(settings, "BE", pd.Timestamp("2016-12-25T02:00:00Z")).manifest_path).read_text()
    )["splits"]
    assert splits["test"]["first_target"] == "2016-10-30 23:00:00+00:00"  # Monday 2016-10-31 00:00 CET
    assert splits["validation"]["rows"] > 0 and splits["test"]["rows"] % 24 == 0


def test_retraining__weighs_the_members_on_the_forecasts_they_served_before_the_test_window(trained):
    """With EOPT_SERVED_WEIGHT_DAYS, the weights and intervals come from the day-ahead forecasts stored before
    the test window (there: LEAR sharp, the others off), not from the validation, and nothing after its start."""
    base, store, _outcome, _client, _ = trained
    settings = _settings(base.stores.home, EOPT_SERVED_WEIGHT_DAYS="40", EOPT_ENSEMBLE_WEIGHTS="validation")
    as_of = store.latest_ts(REGION) + pd.Timedelta(hours=1) - pd.Timedelta(days=7)  # a workspace of its own
    job = Retraining.open(settings, REGION, as_of)
    job.extract_training_data(store)
    job.engineer_features()
    for model in job.config.models:
        job.train_member(model)
    frame = job.features()
    test_start = pd.Timestamp(frame.loc[frame["split"] == "test", "origin"].min())
    prices = job.data().prices
    rng = np.random.default_rng(7)

    def served(first: pd.Timestamp, last: pd.Timestamp, lear_off: float) -> pd.DataFrame:
        issues = day_ahead_origins(REGION, first, last)
        rows = pd.DataFrame(
            {
                "issued_at": np.repeat(issues, 24),
                "target_ts": np.repeat(issues, 24) + pd.to_timedelta(np.tile(np.arange(24), len(issues)), unit="h"),
            }
        )
        actual = prices.reindex(pd.DatetimeIndex(rows["target_ts"])).to_numpy()
        members = {
            f"yhat_{m}": actual
            + rng.normal(0, 0.3 if m == "lear" else 4.0, len(rows))
            + (lear_off if m == "lear" else 0)
            for m in ("xgboost", "lightgbm", "cnn_lstm", "lear")
        }
        return rows.assign(
            region=REGION,
            model_name=registered_model_name(REGION),
            model_version="0",
            yhat=np.mean(list(members.values()), axis=0),
            lower=np.nan,
            upper=np.nan,
            is_fallback=False,
            **members,
        )

    forecasts = ForecastStore(store.engine)
    forecasts.upsert_forecasts(served(test_start - pd.Timedelta(days=40), test_start - pd.Timedelta(hours=23), 0.0))
    # the test window's served forecasts (LEAR far off there) must not reach the weights: the gate scores that window
    forecasts.upsert_forecasts(served(test_start, as_of - pd.Timedelta(days=1), 500.0))
    evaluation = job.evaluate_ensemble(store)

    stored = json.loads((job.folder / "ensemble" / "evaluation.json").read_text())
    assert stored["weighed_on"]["source"] == "served" and stored["weighed_on"]["served_days"] == 40
    window = Window(test_start - pd.Timedelta(days=40), test_start)
    expected = calibrate_on_served(
        served_member_forecasts(store.engine, REGION, window, prices), list(evaluation["weights"]), 0.9
    )
    assert expected is not None and evaluation["weights"] == expected.decision.weights
    assert evaluation["weights"]["lear"] > 0.9  # the sharp member served, whatever the validation said
    saved = json.loads((job.folder / "ensemble" / "model" / "ensemble.json").read_text())
    assert saved["intervals"] == json.loads(json.dumps(asdict(expected.intervals)))  # calibrated on the served rows
    assert stored["weighed_on"]["validation_weights"].keys() == evaluation["weights"].keys()
