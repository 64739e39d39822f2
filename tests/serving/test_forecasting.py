"""Forecast generation on real NP history: the forecast store, the origin rule, the model request, champion and fallback.

The champion tests share one real smoke-budget retraining of NP (a short window, so it takes
seconds per model), registered in a real MLflow registry and promoted to Production/champion
directly with ``MlflowClient``.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from core.markets import load_market
from core.quantiles import QUANTILE_COLUMNS
from core.settings import Settings
from pipelines.model_retraining import retrain_region
from registry.models import registered_model_name
from serving import forecasting
from serving.forecasting import (
    ForecastError,
    StaleDataError,
    alert_fallback,
    forecast_document,
    forecast_origin,
    generate_forecast,
    prepare_request,
)
from serving.model_request import REQUEST_HISTORY_HOURS, build_request, parse_request
from storage.database import create_store_engine, upgrade
from storage.forecasts import ForecastStore
from storage.prices import BatchRejected, PriceStore
from training.features import inference_frame
from training.tracking import configure

ROOT = Path(__file__).resolve().parents[2]
UTC = "UTC"
NP_LAST_PRICE = pd.Timestamp("2018-12-24 22:00", tz=UTC)  # the bundled NP history's newest hour
RUN = pd.Timestamp("2018-12-25 02:00", tz=UTC)

H = REQUEST_HISTORY_HOURS  # the hours before the origin a request carries (98 days)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


@pytest.fixture(scope="module")
def np_history():
    history = load_market("NP", ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    return history, prices, exogenous


@pytest.fixture(scope="module")
def np_store(tmp_path_factory, np_history) -> PriceStore:
    """An embedded store with NP's last 110 days (more than the 98 days a request carries)."""
    history, _, _ = np_history
    engine = create_store_engine(f"sqlite:///{tmp_path_factory.mktemp('np') / 'prices.db'}")
    upgrade(engine)
    store = PriceStore(engine)
    cut = history.between(NP_LAST_PRICE - pd.Timedelta(days=110), None)
    store.upsert_history(cut.prices, cut.exogenous)
    yield store
    engine.dispose()


def forecast_rows(
    region: str = "NP", issued: str = "2018-12-25 02:00", hours: int = 24, base: float = 40.0
) -> pd.DataFrame:
    targets = pd.date_range(ts(issued), periods=hours, freq="h")
    return pd.DataFrame(
        {
            "region": region,
            "issued_at": ts(issued),
            "target_ts": targets,
            "model_name": "electricity-price-NP",
            "model_version": "3",
            "yhat": base + np.arange(hours) * 0.5,
            "lower": base - 5 + np.arange(hours) * 0.5,
            "upper": base + 5 + np.arange(hours) * 0.5,
            "is_fallback": False,
        }
    )


# -- the forecast store (SQLite and PostgreSQL) -------------------------------------------------------


def test_forecast_store__rerunning_an_issue_changes_nothing_and_a_changed_hour_is_updated(store_engine):
    forecasts = ForecastStore(store_engine)
    rows = forecast_rows()
    first = forecasts.upsert_forecasts(rows)
    assert (first.inserted, first.updated, first.unchanged) == (24, 0, 0)
    again = forecasts.upsert_forecasts(rows)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 24)
    assert forecasts.count_forecasts("NP") == 24

    changed = rows.copy()
    changed.loc[5, "yhat"] = -3.25  # prices go negative
    result = forecasts.upsert_forecasts(changed)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 23)
    stored = forecasts.read_forecasts("NP")
    assert stored["yhat"].iloc[5] == -3.25 and stored["yhat"].iloc[6] == 43.0
    assert stored["target_ts"].iloc[0] == ts("2018-12-25 02:00") and str(stored["target_ts"].dt.tz) == "UTC"


def test_forecast_store__reads_the_newest_issue_unless_one_is_named_and_keeps_a_missing_interval_null(store_engine):
    forecasts = ForecastStore(store_engine)
    older = forecast_rows(issued="2018-12-25 02:00", base=40.0)
    newer = forecast_rows(issued="2018-12-25 03:00", base=50.0).assign(
        lower=np.nan, upper=np.nan, is_fallback=True, model_name="seasonal-naive", model_version="0"
    )
    forecasts.upsert_forecasts(pd.concat([older, newer, forecast_rows(region="PJM", issued="2018-12-25 04:00")]))

    assert forecasts.latest_issue("NP") == ts("2018-12-25 03:00")
    assert forecasts.latest_issue("BE") is None
    newest = forecasts.read_forecasts("NP")
    assert len(newest) == 24 and set(newest["issued_at"]) == {ts("2018-12-25 03:00")}
    assert newest["is_fallback"].all() and newest["lower"].isna().all() and newest["model_version"].iloc[0] == "0"
    named = forecasts.read_forecasts("NP", ts("2018-12-25 02:00"))
    assert named["yhat"].iloc[0] == 40.0 and not named["is_fallback"].any() and named["upper"].iloc[0] == 45.0
    assert forecasts.read_forecasts("BE").empty
    # rerunning the NULL-interval issue is a no-op too (NULL is not distinct from NULL)
    assert forecasts.upsert_forecasts(newer).unchanged == 24


def test_forecast_store__refuses_a_nan_yhat_naming_region_and_hour_and_writes_nothing(store_engine):
    forecasts = ForecastStore(store_engine)
    rows = forecast_rows()
    rows.loc[3, "yhat"] = np.nan
    with pytest.raises(BatchRejected, match=r"region=NP, target hour 2018-12-25 05:00:00\+00:00"):
        forecasts.upsert_forecasts(rows)
    rows.loc[3, "yhat"] = np.inf
    with pytest.raises(BatchRejected, match="no finite yhat"):
        forecasts.upsert_forecasts(rows)
    assert forecasts.count_forecasts() == 0


def test_forecast_store__refuses_naive_timestamps(store_engine):
    rows = forecast_rows()
    rows["issued_at"] = rows["issued_at"].dt.tz_localize(None)
    with pytest.raises(BatchRejected, match="'issued_at' holds naive timestamps"):
        ForecastStore(store_engine).upsert_forecasts(rows)


# -- the forecast origin ------------------------------------------------------------------------------


def test_forecast_origin__is_the_hour_after_the_newest_price(np_store):
    assert forecast_origin(np_store, "NP", RUN) == ts("2018-12-24 23:00")
    assert forecast_origin(np_store, "NP", ts("2018-12-25 02:37")) == ts("2018-12-24 23:00")


def test_forecast_origin__ignores_prices_published_ahead_of_the_run(np_store):
    # at 12:30 the day-ahead prices up to 22:00 are stored, but only the hours before 12:00 were known then
    assert forecast_origin(np_store, "NP", ts("2018-12-24 12:30")) == ts("2018-12-24 12:00")


def test_forecast_origin__accepts_a_newest_price_exactly_one_lag_window_old_but_warns_the_forecast_is_all_past(
    np_store, caplog
):
    with caplog.at_level(logging.WARNING, logger="serving.forecasting"):
        assert forecast_origin(np_store, "NP", NP_LAST_PRICE + pd.Timedelta(hours=168)) == ts("2018-12-24 23:00")
    assert [r.getMessage() for r in caplog.records] == [
        "NP: newest price is 2018-12-24 22:00:00+00:00, 168 h before the run at 2018-12-31 22:00:00+00:00: the "
        "forecast from the hour after it covers only hours before the run; check the electricity_price_ingestion DAG"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serving.forecasting"):
        forecast_origin(np_store, "NP", NP_LAST_PRICE + pd.Timedelta(hours=24))  # its last target hour is the run's
    assert not caplog.records


def test_forecast_origin__refuses_a_region_whose_newest_price_is_older_than_the_lag_window(np_store):
    with pytest.raises(StaleDataError) as failure:
        forecast_origin(np_store, "NP", NP_LAST_PRICE + pd.Timedelta(hours=169))
    message = str(failure.value)
    assert message.startswith("NP: newest price is 2018-12-24 22:00:00+00:00, 169 h before the run")
    assert "168 h lag window" in message and "check the electricity_price_ingestion DAG" in message


def test_forecast_origin__refuses_a_region_without_prices_saying_to_load_history(np_store):
    with pytest.raises(StaleDataError, match=r"BE: no prices stored.*eopt load-history --region BE.*ingestion"):
        forecast_origin(np_store, "BE", RUN)


def test_forecast_origin__refuses_a_run_before_the_stored_prices(np_store):
    with pytest.raises(
        StaleDataError,
        match=r"NP: no price stored in the 168 h before the run at 2018-01-01 .*"
        r"the newest stored, 2018-12-24 22:00:00\+00:00, lies after the run",
    ):
        forecast_origin(np_store, "NP", ts("2018-01-01 00:00"))


# -- the model request ----------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["2018-12-24 23:00", "2018-12-20 13:00"])
def test_prepare_request__gives_the_features_of_the_inference_frame_built_from_the_whole_history(
    np_store, np_history, origin
):
    _, prices, exogenous = np_history
    request = prepare_request(np_store, "NP", ts(origin))
    table = request.table
    assert request.origin == ts(origin) and len(table) == H + 24  # the 98 days LEAR's recalibration reads
    assert table["ts"].iloc[0] == f"{ts(origin) - pd.Timedelta(hours=H):%Y-%m-%dT%H:%M:%SZ}"
    assert table["price"].iloc[:H].notna().all() and table["price"].iloc[H:].isna().all()  # none from the origin on
    prices_sent, exogenous_sent, origin_sent = parse_request(table, request.params, "NP")
    built = inference_frame(prices_sent, exogenous_sent, "NP", origin_sent)
    expected = inference_frame(prices, exogenous, "NP", ts(origin))
    assert len(built) == 24 and np.isfinite(built[["lag_168h", "last_price", "same_hour_mean_7d"]].to_numpy()).all()
    pd.testing.assert_frame_equal(built.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


def test_prepare_request__after_the_last_exogenous_forecast_sends_null_and_warns_that_they_are_missing(
    np_store, caplog
):
    # the bundled day-ahead load and wind forecasts end with the prices, at 2018-12-24 22:00 UTC
    with caplog.at_level(logging.WARNING, logger="serving.forecasting"):
        request = prepare_request(np_store, "NP", ts("2018-12-24 23:00"))
    targets = request.table.iloc[H:]
    assert targets["wind_power_forecast"].isna().all() and targets["grid_load_forecast"].isna().all()
    # before the origin they were known (a day and a week earlier: features; the 98 days: LEAR's recalibration)
    assert request.table["grid_load_forecast"].iloc[:H].notna().all()
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == [
        "NP: inputs of origin 2018-12-24T23:00:00Z missing: grid_load_forecast unknown for 24 of 192 hour(s) read "
        "(first 2018-12-24T23:00:00Z); wind_power_forecast unknown for 24 of 192 hour(s) read (first "
        "2018-12-24T23:00:00Z); the model imputes them (its forecast is less sure)"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serving.forecasting"):
        prepare_request(np_store, "NP", ts("2018-12-20 13:00"))
    assert not caplog.records


def test_prepare_request__a_price_gap_in_the_store_is_a_null_row_named_in_the_warning(np_history, caplog):
    _, prices, exogenous = np_history
    origin = ts("2018-12-20 13:00")
    holed = prices.drop(index=[ts("2018-12-19 02:00"), ts("2018-12-19 03:00")])
    request = build_request(holed, exogenous, "NP", origin)
    assert len(request.table) == H + 24  # the hours are all there: a gap in the data is a null, not a missing row
    assert request.table.set_index("ts").loc[["2018-12-19T02:00:00Z", "2018-12-19T03:00:00Z"], "price"].isna().all()
    assert forecasting.unknown_inputs(request, "NP") == (
        "inputs of origin 2018-12-20T13:00:00Z missing: price unknown for 2 of 168 hour(s) read "
        "(first 2018-12-19T02:00:00Z)"
    )


# -- no champion: the seasonal-naive fallback --------------------------------------------------------


@pytest.fixture
def empty_registry(tmp_path) -> Iterator[MlflowClient]:
    """A registry without models; MLflow's process-wide URIs are put back afterwards."""
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield configure(Settings.from_env({"EOPT_HOME": str(tmp_path / "eopt")}))
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


def test_generate_forecast__without_a_champion_falls_back_to_the_price_a_week_earlier(
    np_store, np_history, empty_registry, caplog
):
    _, prices, _ = np_history
    origin = forecast_origin(np_store, "NP", RUN)
    request = prepare_request(np_store, "NP", origin)
    with caplog.at_level(logging.ERROR):
        forecast = generate_forecast(empty_registry, "NP", request, RUN)

    frame = forecast.frame
    targets = pd.date_range(ts("2018-12-24 23:00"), periods=24, freq="h")
    assert list(frame["target_ts"]) == list(targets)
    assert frame["yhat"].tolist() == prices.reindex(targets - pd.Timedelta(hours=168)).tolist()
    assert frame["yhat"].iloc[0] == prices[ts("2018-12-17 23:00")]
    assert frame["is_fallback"].all() and frame["lower"].isna().all() and frame["upper"].isna().all()
    assert set(frame["model_name"]) == {"seasonal-naive"} and set(frame["model_version"]) == {"0"}
    assert set(frame["issued_at"]) == {RUN} and set(frame["region"]) == {"NP"}
    assert forecast.is_fallback and forecast.fallback_reason.startswith("no Production model for NP: ")
    assert "electricity-price-NP" in forecast.fallback_reason
    assert any(r.levelno == logging.ERROR and "no Production model for NP" in r.getMessage() for r in caplog.records)


def test_alert_fallback__logs_an_error_on_the_alerts_logger_naming_region_and_reason(np_store, empty_registry, caplog):
    origin = forecast_origin(np_store, "NP", RUN)
    forecast = generate_forecast(empty_registry, "NP", prepare_request(np_store, "NP", origin), RUN)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="eopt.alerts"):
        assert alert_fallback(forecast) is True
    alerts = [r for r in caplog.records if r.name == "eopt.alerts"]
    assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR
    assert "NP" in alerts[0].getMessage() and "no Production model for NP" in alerts[0].getMessage()


def test_generate_forecast__refuses_a_fallback_without_the_price_a_week_earlier(np_store, empty_registry):
    origin = forecast_origin(np_store, "NP", RUN)
    request = prepare_request(np_store, "NP", origin)
    request.table.loc[H - 168 + 4, "price"] = np.nan  # 2018-12-18 03:00, a week before the fifth target hour
    with pytest.raises(
        ForecastError,
        match=r"NP: cannot fall back.*no price 168 h before 1 target hour\(s\) "
        r"\(2018-12-25 03:00:00\+00:00\)",
    ):
        generate_forecast(empty_registry, "NP", request, RUN)


def test_generate_forecast__an_unreachable_registry_falls_back_naming_the_error(np_store, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = MlflowClient("http://127.0.0.1:9", "http://127.0.0.1:9")
    origin = forecast_origin(np_store, "NP", RUN)
    forecast = generate_forecast(down, "NP", prepare_request(np_store, "NP", origin), RUN)
    assert forecast.is_fallback and len(forecast.frame) == 24
    assert forecast.fallback_reason.startswith("the model registry could not be read for NP: ")
    assert "127.0.0.1:9" in forecast.fallback_reason


def test_forecast_document__has_the_cache_shape_with_null_intervals_for_the_fallback(np_store, empty_registry):
    origin = forecast_origin(np_store, "NP", RUN)
    forecast = generate_forecast(empty_registry, "NP", prepare_request(np_store, "NP", origin), RUN)
    document = forecast_document(forecast)
    assert {k: v for k, v in document.items() if k != "points"} == {
        "region": "NP",
        "issued_at": "2018-12-25T02:00:00+00:00",
        "model_name": "seasonal-naive",
        "model_version": "0",
        "is_fallback": True,
    }
    assert len(document["points"]) == 24
    assert document["points"][0] == {
        "target_ts": "2018-12-24T23:00:00+00:00",
        "yhat": forecast.frame["yhat"].iloc[0],
        "lower": None,
        "upper": None,
        **dict.fromkeys(QUANTILE_COLUMNS),  # the fallback states no quantiles: null, not absent
    }
    assert forecast.frame[list(QUANTILE_COLUMNS)].isna().all().all()


def test_forecast_store_and_document__carry_the_quantiles_and_refuse_crossing_ones(store_engine):
    forecasts = ForecastStore(store_engine)
    rows = forecast_rows()
    for column, shift in zip(QUANTILE_COLUMNS, (-6.0, -4.0, -2.0, 0.25, 2.0, 4.0, 6.0), strict=True):
        rows[column] = rows["yhat"] + shift
    assert forecasts.upsert_forecasts(rows).inserted == 24
    stored = forecasts.read_forecasts("NP")
    np.testing.assert_array_equal(stored[list(QUANTILE_COLUMNS)].to_numpy(), rows[list(QUANTILE_COLUMNS)].to_numpy())
    document = forecast_document(forecasting.Forecast(stored))
    assert document["points"][1] == {
        "target_ts": "2018-12-25T03:00:00+00:00",
        "yhat": 40.5,
        "lower": 35.5,
        "upper": 45.5,
        "q05": 34.5,
        "q10": 36.5,
        "q25": 38.5,
        "q50": 40.75,
        "q75": 42.5,
        "q90": 44.5,
        "q95": 46.5,
    }
    crossing = forecast_rows(issued="2018-12-25 03:00").assign(**{c: rows[c] for c in QUANTILE_COLUMNS})
    crossing.loc[7, "q75"] = crossing.loc[7, "q25"] - 1
    with pytest.raises(
        BatchRejected,
        match=r"1 forecast hour\(s\) have quantiles that decrease with the level .*"
        r"target hour 2018-12-25 10:00:00\+00:00",
    ):
        forecasts.upsert_forecasts(crossing)
    assert forecasts.count_forecasts() == 24


# -- with a champion ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory, np_history):
    """NP retrained once (smoke budget, a 120-day window) and its version promoted to Production/champion."""
    history, _, _ = np_history
    home = tmp_path_factory.mktemp("champion")
    settings = Settings.from_env(
        {
            "EOPT_HOME": str(home),
            "EOPT_TRAINING_BUDGET": "smoke",
            "EOPT_TRAINING_WINDOW_DAYS": "120",
            "EOPT_VALIDATION_DAYS": "14",
            "EOPT_TEST_DAYS": "14",
            "EOPT_TRAINING_THREADS": "1",
        }
    )
    engine = create_store_engine(settings.stores.database_url)
    upgrade(engine)
    store = PriceStore(engine)
    cut = history.between(NP_LAST_PRICE - pd.Timedelta(days=140), None)
    store.upsert_history(cut.prices, cut.exogenous)
    outcome = retrain_region(settings, store, "NP")
    client = configure(settings)
    promote(client, outcome.candidate.name, outcome.candidate.version)
    forecasting.clear_model_cache()
    yield settings, store, client, outcome.candidate
    forecasting.clear_model_cache()
    engine.dispose()


def promote(client: MlflowClient, name: str, version: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version, "Production", archive_existing_versions=True)
    client.set_registered_model_alias(name, "champion", version)


@contextmanager
def champion_swapped(client: MlflowClient, name: str, version: str, back_to: str):
    """``version`` is the champion inside the block; ``back_to`` again afterwards."""
    promote(client, name, version)
    try:
        yield
    finally:
        promote(client, name, back_to)


def test_generate_forecast__with_a_champion_answers_its_24_hours_tagged_with_its_version(champion_home):
    _settings, store, client, candidate = champion_home
    origin = forecast_origin(store, "NP", RUN)
    request = prepare_request(store, "NP", origin)
    forecast = generate_forecast(client, "NP", request, RUN)

    frame = forecast.frame
    assert not forecast.is_fallback and forecast.fallback_reason is None and not frame["is_fallback"].any()
    assert set(frame["model_name"]) == {"electricity-price-NP"} and set(frame["model_version"]) == {candidate.version}
    assert len(frame) == 24 and np.isfinite(frame[["yhat", "lower", "upper", *QUANTILE_COLUMNS]].to_numpy()).all()
    assert (np.diff(frame[list(QUANTILE_COLUMNS)].to_numpy(), axis=1) >= 0).all()
    # the same numbers the registered model gives for these rows
    loaded = mlflow.pyfunc.load_model(f"models:/electricity-price-NP/{candidate.version}")
    direct = loaded.predict(request.table, params=request.params)
    for column in ("yhat", *QUANTILE_COLUMNS):
        np.testing.assert_allclose(frame[column].to_numpy(), direct[column].to_numpy(), rtol=1e-9)
    # the interval is the point forecast plus the validation's conformal residual quantiles of each horizon
    # (14 validation days here: the extreme residuals, which need not straddle 0 at every horizon)
    intervals = loaded.unwrap_python_model().forecaster.intervals
    np.testing.assert_allclose(frame["upper"] - frame["yhat"], intervals.upper, atol=1e-9)
    np.testing.assert_allclose(frame["lower"] - frame["yhat"], intervals.lower, atol=1e-9)
    # not the fallback: it differs from the price a week earlier
    assert not np.allclose(frame["yhat"].to_numpy(), request.table["price"].iloc[:24].to_numpy())

    stored = ForecastStore(store.engine)
    assert stored.upsert_forecasts(frame).inserted == 24
    assert stored.upsert_forecasts(generate_forecast(client, "NP", request, RUN).frame).unchanged == 24


def test_generate_forecast__loads_a_champion_version_once_per_process(champion_home):
    _settings, store, client, candidate = champion_home
    origin = forecast_origin(store, "NP", RUN)
    request = prepare_request(store, "NP", origin)
    generate_forecast(client, "NP", request, RUN)
    key = (candidate.name, candidate.version, candidate.run_id)
    loaded, cached = forecasting._MODELS[key], len(forecasting._MODELS)
    generate_forecast(client, "NP", request, RUN + pd.Timedelta(hours=1))  # the next hour's run
    assert forecasting._MODELS[key] is loaded and len(forecasting._MODELS) == cached  # not loaded again


def test_generate_forecast__a_new_champion_version_is_loaded_and_the_old_one_stays_cached(champion_home):
    _settings, store, client, candidate = champion_home
    origin = forecast_origin(store, "NP", RUN)
    request = prepare_request(store, "NP", origin)
    generate_forecast(client, "NP", request, RUN)
    old_key = (candidate.name, candidate.version, candidate.run_id)
    old = forecasting._MODELS[old_key]
    newer = client.copy_model_version(f"models:/{candidate.name}/{candidate.version}", candidate.name)
    with champion_swapped(client, candidate.name, str(newer.version), back_to=candidate.version):
        forecast = generate_forecast(client, "NP", request, RUN + pd.Timedelta(hours=1))
    new_key = (candidate.name, str(newer.version), newer.run_id)
    assert str(newer.version) != candidate.version and set(forecast.frame["model_version"]) == {str(newer.version)}
    assert not forecast.is_fallback
    assert forecasting._MODELS[new_key] is not old  # the new version was loaded, not served from the old entry
    assert forecasting._MODELS[old_key] is old  # and the old one was not reloaded


def test_generate_forecast__a_champion_whose_artifacts_are_gone_falls_back_with_the_load_error(champion_home, tmp_path):
    _settings, store, client, candidate = champion_home
    name = registered_model_name("NP")
    copy = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{candidate.version}", dst_path=str(tmp_path / "copy")
        )
    )
    broken = client.create_model_version(name, str(copy), run_id=candidate.run_id)
    origin = forecast_origin(store, "NP", RUN)
    request = prepare_request(store, "NP", origin)
    with champion_swapped(client, name, broken.version, back_to=candidate.version):
        shutil.rmtree(copy)  # the version's artifacts are gone from disk
        forecast = generate_forecast(client, "NP", request, RUN)
    assert forecast.is_fallback and len(forecast.frame) == 24
    week_before = request.table["price"].iloc[H - 168 : H - 168 + 24]
    assert forecast.frame["yhat"].tolist() == week_before.tolist()  # a week before each target
    assert forecast.fallback_reason.startswith(
        f"the Production model models:/{name}/{broken.version} of NP could not be loaded: "
    )
    assert forecast.fallback_reason.endswith("MlflowException: No such artifact: ''")  # MLflow's own words


NAN_MODEL = """
import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Broken(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame(ANSWER)


set_model(Broken())
"""
QUANTILES_ANSWER = {"yhat": [40.0] * 24, **{c: [40.0 + i] * 24 for i, c in enumerate(QUANTILE_COLUMNS)}}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"yhat": [np.nan] * 24, "lower": 0.0, "upper": 1.0}, "the model answered 24 non-finite yhat value(s)"),
        ({**QUANTILES_ANSWER, "q75": [30.0] * 24}, "the model answered quantiles that decrease with the level"),
        (
            {k: v for k, v in QUANTILES_ANSWER.items() if k != "q10"},
            "the model answered the quantile column(s) q05, q25, q50, q75, q90, q95 but not q10",
        ),
    ],
    ids=["nan", "crossing quantiles", "a missing quantile"],
)
def test_generate_forecast__a_champion_whose_answer_is_unusable_falls_back_saying_so(
    champion_home, tmp_path, answer, reason
):
    settings, store, client, candidate = champion_home
    name = registered_model_name("NP")
    code = tmp_path / "broken_model.py"
    code.write_text(NAN_MODEL.replace("ANSWER", repr(answer).replace("nan", "np.nan")))
    with mlflow.start_run(
        experiment_id=client.get_experiment_by_name(settings.training.mlflow_experiment).experiment_id
    ):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code))
    broken = client.create_model_version(name, info.model_uri, run_id=info.run_id)
    origin = forecast_origin(store, "NP", RUN)
    request = prepare_request(store, "NP", origin)
    with champion_swapped(client, name, broken.version, back_to=candidate.version):
        forecast = generate_forecast(client, "NP", request, RUN)
    assert forecast.is_fallback and forecast.model_name == "seasonal-naive"
    assert forecast.fallback_reason == (
        f"the Production model models:/{name}/{broken.version} of NP gave no usable forecast: ValueError: {reason}"
    )
    # and the real champion is back in charge
    assert not generate_forecast(client, "NP", request, RUN).is_fallback
