"""The drift check on real NP history with real Evidently reports.

A store with NP's last 800 days is built once and copied per test. The clean week ending
2018-12-03 06:00 UTC is compared, without a champion, with the same season of the 730 days
before; copies of that store carry an injected regime change (prices x3, load +30%) or a stuck
wind series in the current week. A real NP model (``tests/registry_fixtures.trained_np``, smoke
budget) made champion gives the reference of the prediction report, and its forecasts of four
days, generated and stored as the forecast pipeline does, are its current window.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.markets import load_market
from core.settings import Settings
from drift import reports
from drift.monitor import champion_test_predictions, realized_forecasts, region_drift, rescored_test_predictions
from registry.models import champion
from registry.promotion import make_champion
from serving.forecasting import generate_forecast, prepare_request, seasonal_naive
from storage.database import create_store_engine
from storage.forecasts import ForecastStore
from storage.prices import PriceStore
from tests.market_frames import PROJECT_ROOT, store_with_history
from tests.registry_fixtures import MODEL_NAME, NP_LAST_PRICE, TrainedNP, trained_np
from training.features import day_ahead_origins

REGION = "NP"
AS_OF = pd.Timestamp("2018-12-03 06:00", tz="UTC")
CURRENT_START = AS_OF - pd.Timedelta(days=7)
HOUR = pd.Timedelta(hours=1)
NP_COLUMNS = [
    "price",
    "price_change_24h",
    "price_change_168h",
    "intraday_shape",
    "price_vs_hour_profile",
    "grid_load_forecast",
    "grid_load_forecast_change_24h",
    "wind_power_forecast",
    "wind_power_forecast_change_24h",
]


@pytest.fixture(scope="module")
def history_db(tmp_path_factory) -> Path:
    """A SQLite store holding NP's last 800 days (2016-11-14 .. 2018-12-24), copied by each test."""
    path = tmp_path_factory.mktemp("drift_history") / "prices.db"
    store_with_history(f"sqlite:///{path}", {REGION: 800}).engine.dispose()
    return path


@pytest.fixture
def np_store(history_db: Path, tmp_path: Path):
    copy = tmp_path / "prices.db"
    shutil.copy(history_db, copy)
    store = PriceStore(create_store_engine(f"sqlite:///{copy}"))
    yield store
    store.engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"EOPT_HOME": str(tmp_path / "home")})


def current_week() -> tuple[pd.DataFrame, pd.DataFrame]:
    """NP's real prices and exogenous rows of the current window, as stored."""
    history = load_market(REGION, PROJECT_ROOT / "data" / "markets").between(CURRENT_START, AS_OF)
    return history.prices.reset_index(drop=True), history.exogenous.reset_index(drop=True)


def json_content(path: str) -> dict:
    return json.loads(Path(path).read_text())


def json_share(path: str) -> float:
    counts = [m for m in json_content(path)["metrics"] if m["config"]["type"].endswith(":DriftedColumnsCount")]
    assert len(counts) == 1
    return counts[0]["value"]["share"]


# -- feature drift ---------------------------------------------------------------------------------


def test_region_drift__a_clean_np_week_is_ok_and_its_saved_reports_agree_with_the_result(np_store, settings, tmp_path):
    result = region_drift(settings, np_store, None, REGION, AS_OF, tmp_path / "out")

    assert (result.name, result.region, result.status) == ("drift", REGION, "ok")
    assert result.threshold is None  # the Evidently share is shown; the per-family rules decide
    details = result.details
    assert details["findings"] == [] and details["drift_share_threshold"] == 0.5
    assert {r["family"] for r in details["rules"]} == {
        "price_level",
        "price_scale",
        "intraday_shape",
        "price_stuck",
        "exogenous_level",
        "exogenous_frozen",
    }
    assert all(r["status"] == "ok" for r in details["rules"])
    assert list(details["columns"]) == NP_COLUMNS and details["excluded_columns"] == {}
    # the late-2018 price level is above the two years before it; nothing else moved
    assert details["drifted_columns"] == ["price_vs_hour_profile", "price"]
    assert result.value == pytest.approx(2 / 9)
    assert all(
        details["columns"][c] < settings.quality.drift_column_threshold for c in NP_COLUMNS[2:4] + NP_COLUMNS[5:]
    )
    assert result.message.startswith(
        "no rule past its threshold (8 statistics of 6 families against the 730 days before, same season). "
        "Evidently: 2 of 9 columns past normed Wasserstein 0.75: price_vs_hour_profile, price"
    )
    assert details["current"] == {
        "start": "2018-11-26T06:00:00+00:00",
        "end": "2018-12-03T06:00:00+00:00",
        "hours": 168,
    }
    # 2016-11-26 .. 2018-11-26 within 28 days of Nov 26 - Dec 3: 35 + 63 + 28 days
    assert details["reference"]["kind"] == "730 days before, same season"
    assert details["reference"]["hours"] == (35 + 63 + 28) * 24
    assert details["reference"]["note"] == "no champion (no model registry given): compared with the 730 days before"
    assert details["prediction"]["status"] == "skipped" and "no champion" in details["prediction"]["reason"]

    assert details["report_html"] == str(tmp_path / "out" / "drift_NP.html")
    assert details["report_json"] == str(tmp_path / "out" / "drift_NP.json")
    assert "Wasserstein" in Path(details["report_html"]).read_text()
    assert json_share(details["report_json"]) == pytest.approx(result.value)
    saved = reports.value_drift_scores(json_content(details["report_json"]))
    assert saved == pytest.approx(details["columns"])
    json.dumps(result.to_dict())  # travels between Airflow tasks and into quality_reports as JSON


def test_region_drift__prices_tripled_and_load_raised_in_the_current_week_is_critical(np_store, settings, tmp_path):
    prices, exogenous = current_week()
    load = exogenous["variable"] == "grid_load_forecast"
    np_store.upsert_history(
        prices.assign(price=prices["price"] * 3),
        exogenous.assign(value=np.where(load, exogenous["value"] * 1.3, exogenous["value"])),
    )

    result = region_drift(settings, np_store, None, REGION, AS_OF, tmp_path / "out")

    assert result.status == "critical"
    assert result.value >= 0.5 and result.value == pytest.approx(json_share(result.details["report_json"]))
    drifted = result.details["drifted_columns"]
    assert {"price", "price_vs_hour_profile", "intraday_shape", "grid_load_forecast"} <= set(drifted)
    assert result.details["columns"]["price"] > 5  # a week at three times the price: many reference spreads away
    assert "wind_power_forecast" not in drifted  # the untouched series stays put
    critical = {(f["family"], f["subject"]) for f in result.details["findings"] if f["status"] == "critical"}
    assert {("price_level", None), ("exogenous_level", "grid_load_forecast")} <= critical
    assert not [f for f in result.details["findings"] if f["subject"] == "wind_power_forecast"]
    assert result.message.startswith("critical: price level: +")


def test_region_drift__a_constant_exogenous_series_is_a_frozen_finding_and_the_report_still_runs(
    np_store, settings, tmp_path
):
    _, exogenous = current_week()
    wind = exogenous["variable"] == "wind_power_forecast"
    np_store.upsert_history(None, exogenous[wind].assign(value=1234.0))

    result = region_drift(settings, np_store, None, REGION, AS_OF, tmp_path / "out")

    assert result.status == "critical"
    findings = result.details["findings"]
    assert (findings[0]["family"], findings[0]["subject"], findings[0]["status"]) == (
        "exogenous_frozen",
        "wind_power_forecast",
        "critical",
    )
    assert {f["subject"] for f in findings} == {"wind_power_forecast"}  # its level may move too; nothing else
    assert result.message.startswith("critical: exogenous wind_power_forecast: frozen 168 h in a row at 1234")
    excluded = result.details["excluded_columns"]
    assert excluded == {"wind_power_forecast": "constant in the current window (every value 1234): a stuck series?"}
    assert "wind_power_forecast" not in result.details["columns"] and len(result.details["columns"]) == 8
    assert result.value == pytest.approx(json_share(result.details["report_json"]))
    assert result.message.endswith("; 1 left out (wind_power_forecast)")


def test_region_drift__a_region_without_prices_is_skipped_and_writes_no_report(np_store, settings, tmp_path):
    result = region_drift(settings, np_store, None, "PJM", AS_OF, tmp_path / "out")

    assert result.status == "skipped" and result.region == "PJM" and result.value is None
    assert result.message.startswith("no prices in the last 7 days (2018-11-26 06:00 to 2018-12-03 06:00 UTC)")
    assert result.details["current"]["hours"] == 0
    assert not (tmp_path / "out").exists()


def test_region_drift__refuses_a_naive_as_of(np_store, settings, tmp_path):
    with pytest.raises(ValueError, match="NP: drift as_of 2018-12-03 06:00:00 must be tz-aware"):
        region_drift(settings, np_store, None, REGION, AS_OF.tz_localize(None), tmp_path / "out")


def test_select_columns__leaves_out_columns_with_too_few_values_or_a_constant_reference(np_store):
    prices = np_store.read_canonical(REGION, CURRENT_START - pd.Timedelta(days=60), AS_OF).set_index("ts")["price"]
    exogenous = np_store.read_exogenous(REGION, CURRENT_START - pd.Timedelta(days=60), AS_OF)
    frame = reports.hourly_drift_columns(prices, exogenous)
    reference, current = frame[frame.index < CURRENT_START].copy(), frame[frame.index >= CURRENT_START].copy()
    current.loc[current.index[20:], "wind_power_forecast"] = np.nan  # the feed stopped after 20 hours
    reference["grid_load_forecast"] = 40000.0

    selection = reports.select_columns(reference, current, ["price", "wind_power_forecast", "grid_load_forecast"])

    assert selection.columns == ["price"]
    assert selection.excluded == {
        "wind_power_forecast": "only 20 of 168 current hours have a value (need 24)",
        "grid_load_forecast": "constant in the reference window (every value 40000)",
    }


# -- prediction drift --------------------------------------------------------------------------------


@pytest.fixture
def recent_store(store_url: str):
    """NP's last 30 days on SQLite and on PostgreSQL (``integration``)."""
    store = store_with_history(store_url, {REGION: 30})
    yield store
    store.engine.dispose()


def test_realized_forecasts__keeps_per_hour_the_models_day_ahead_issue(recent_store):
    store, target = recent_store, pd.Timestamp("2018-12-01 12:00", tz="UTC")  # NP's day began at 2018-11-30 23:00
    hours = pd.date_range(target, periods=3, freq="h")

    def issue(issued_at: str, yhat: float, fallback: bool = False, targets=hours) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "region": REGION,
                "issued_at": pd.Timestamp(issued_at, tz="UTC"),
                "target_ts": targets,
                "model_name": MODEL_NAME,
                "model_version": "1",
                "yhat": yhat,
                "lower": np.nan,
                "upper": np.nan,
                "is_fallback": fallback,
            }
        )

    forecasts = ForecastStore(store.engine)
    forecasts.upsert_forecasts(issue("2018-11-30 21:00", 5.0))  # an earlier issue
    forecasts.upsert_forecasts(issue("2018-11-30 22:00", 10.0))  # the model's last issue before the day began
    forecasts.upsert_forecasts(issue("2018-11-30 23:00", 99.0, fallback=True))  # a fallback is never the model's
    forecasts.upsert_forecasts(issue("2018-12-01 13:00", 20.0))  # in force at 13:00 and 14:00, but issued that day
    forecasts.upsert_forecasts(issue("2018-12-01 10:00", 5.0, targets=hours[:1] - HOUR))  # an hour before the window
    realized = store.read_canonical(REGION, target, target + 2 * HOUR).set_index("ts")["price"]  # 12:00, 13:00 known

    frame, forecast_hours = realized_forecasts(store, REGION, target, target + 3 * HOUR, realized)

    assert forecast_hours == 3  # 14:00 has a forecast but, here, no price yet
    assert list(frame["target_ts"]) == list(hours[:2])
    assert list(frame["prediction"]) == [10.0, 10.0]
    assert list(frame["target"]) == list(realized.to_numpy()) and len(realized) == 2
    assert set(frame["model"]) == {f"{MODEL_NAME}/1"}


@pytest.fixture(scope="module")
def champion_np(tmp_path_factory) -> TrainedNP:
    """NP retrained on its last 120 days (smoke budget) and made champion."""
    trained = trained_np(tmp_path_factory, "drift_champion")
    make_champion(trained.client, MODEL_NAME, trained.outcome.candidate.version)
    yield trained
    trained.store.engine.dispose()


def test_region_drift__with_a_champion_compares_its_served_forecasts_with_its_own_test_window(champion_np, tmp_path):
    trained, as_of = champion_np, NP_LAST_PRICE + HOUR
    settings, store, client = trained.settings, trained.store, trained.client

    before = region_drift(settings, store, client, REGION, as_of, tmp_path / "before")

    assert before.status in ("ok", "critical") and len(before.details["columns"]) == 9
    assert Path(before.details["report_json"]).is_file()
    reference = before.details["reference"]
    assert reference["kind"] == "champion training window, same season"
    assert reference["champion"] == f"models:/{MODEL_NAME}/{trained.outcome.candidate.version}"
    params = client.get_run(trained.outcome.candidate.run_id).data.params
    assert (reference["start"], reference["end"]) == (
        pd.Timestamp(params["data_start"]).isoformat(),
        pd.Timestamp(params["data_end"]).isoformat(),
    )
    # the training window ends with the current week: its 28 days before it are the same season
    assert reference["hours"] == 28 * 24
    assert before.details["prediction"]["status"] == "skipped"
    assert before.details["prediction"]["reason"].startswith(
        "no forecast of NP realized in 2018-12-17 23:00 to 2018-12-24 23:00 UTC: the forecasts table holds no model"
    )
    assert not (tmp_path / "before" / "prediction_drift_NP.html").exists()

    forecasts = ForecastStore(store.engine)
    issued = []
    for origin in day_ahead_origins(REGION, as_of - pd.Timedelta(days=4), as_of - 23 * HOUR):
        request = prepare_request(store, REGION, origin)
        forecast = generate_forecast(client, REGION, request, origin)
        assert not forecast.is_fallback, forecast.fallback_reason
        forecasts.upsert_forecasts(forecast.frame)
        issued.append(forecast.frame)
        # a fallback issued an hour later for the same hours is not the model's forecast: left out
        forecasts.upsert_forecasts(seasonal_naive(REGION, request, origin + HOUR, "test: a fallback").frame)
    served = pd.concat(issued, ignore_index=True)
    realized = store.read_canonical(REGION, as_of - pd.Timedelta(days=7), as_of).set_index("ts")["price"]
    errors = served["yhat"].to_numpy() - realized.reindex(pd.DatetimeIndex(served["target_ts"])).to_numpy()

    after = region_drift(settings, store, client, REGION, as_of, tmp_path / "after")

    prediction = after.details["prediction"]
    assert prediction["status"] == "ok", prediction
    assert prediction["hours"] == len(served) == 4 * 24
    assert prediction["mae"] == pytest.approx(np.abs(errors).mean())
    assert prediction["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert prediction["models"] == {f"{MODEL_NAME}/{trained.outcome.candidate.version}": 96}
    # the reference is the champion's forecasts of the test window its retraining held out, as it stored them
    assert prediction["reference"]["kind"] == "champion's test-window forecasts, stored by its retraining"
    assert prediction["reference"]["hours"] == int(params["test_rows"])
    assert prediction["reference_mae"] == pytest.approx(
        client.get_run(trained.outcome.candidate.run_id).data.metrics["test_mae"], rel=1e-6
    )
    assert prediction["target_drift"] >= 0 and prediction["prediction_drift"] >= 0
    assert Path(prediction["report_html"]).name == "prediction_drift_NP.html"
    content = json_content(prediction["report_json"])
    saved = reports.value_drift_scores(content)
    assert saved == pytest.approx({"target": prediction["target_drift"], "prediction": prediction["prediction_drift"]})
    # the feature drift is the same comparison as before the forecasts were stored
    assert after.details["columns"] == pytest.approx(before.details["columns"])
    json.dumps(after.to_dict())


def test_champion_test_predictions__the_stored_test_forecasts_are_what_re_scoring_the_champion_gives(champion_np):
    trained = champion_np
    best = champion(trained.client, REGION)
    params = trained.client.get_run(best.run_id).data.params
    stored, source = champion_test_predictions(trained.settings, trained.store, best, params, REGION, trained.client)
    assert source == "champion's test-window forecasts, stored by its retraining"
    rescored = rescored_test_predictions(trained.settings, trained.store, best, params, REGION, trained.client)
    assert len(stored) == len(rescored) == int(params["test_rows"])  # 14 days of 24 hours
    assert stored["target_ts"].tolist() == pd.DatetimeIndex(rescored["target_ts"]).tolist()
    assert stored[reports.TARGET].tolist() == rescored[reports.TARGET].tolist()
    np.testing.assert_allclose(stored[reports.PREDICTION], rescored[reports.PREDICTION], rtol=1e-9, atol=1e-6)
    mae = np.abs(stored[reports.PREDICTION] - stored[reports.TARGET]).mean()
    assert mae == pytest.approx(trained.client.get_run(best.run_id).data.metrics["test_mae"], rel=1e-9)
