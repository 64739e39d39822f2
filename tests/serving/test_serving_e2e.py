"""`mlflow models serve` on the promoted NP model, called over loopback HTTP like any client would.

The module retrains NP once (smoke budget, short window; ``tests/registry_fixtures``), lets the
real promotion gate make it the champion, and starts the real scoring server as a subprocess on
``models:/electricity-price-NP@champion`` (and, for one test, a second one on
``models:/electricity-price-NP/Production``). Requests are raw: the hourly prices of the week
before an origin and the exogenous day-ahead forecasts, with the origin as a param
(``serving.model_request``), as ``eopt request`` prints them and ``forecast_generation`` sends them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from click.testing import CliRunner
from mlflow.types import DataType

import core.settings
from core.markets import get_market, register_market
from core.members import MEMBER_COLUMNS
from core.quantiles import QUANTILE_COLUMNS
from eopt.cli import cli
from pipelines import forecast_generation as flow
from registry.promotion import gate_candidate
from serving.forecasting import clear_model_cache, prepare_request
from serving.model_request import REQUEST_HISTORY_HOURS, ModelRequest, parse_request
from serving.model_server import ModelServer, ModelServerError, start_model_server
from serving.pyfunc import CODE_PACKAGES, PROJECT_ROOT, model_requirements
from storage.forecasts import ForecastStore
from storage.promotions import PromotionStore
from tests.registry_fixtures import MODEL_NAME, REGION, TrainedNP, cli_env, log_forecaster, trained_np
from training import tracking
from training.ensemble import EnsembleForecaster
from training.features import inference_frame
from training.lear import LearMember

pytestmark = pytest.mark.e2e

ORIGIN = pd.Timestamp("2018-12-20 13:00", tz="UTC")  # an hourly origin inside the history: actuals are known
MIDNIGHT = pd.Timestamp("2018-12-19 23:00", tz="UTC")  # 20 December, 00:00 in Oslo: LEAR forecasts (recalibrated)


def serve(model_uri: str, trained: TrainedNP, folder: Path) -> Iterator[ModelServer]:
    """The real ``mlflow models serve`` on a free loopback port; its whole process group stopped after use."""
    try:
        server = start_model_server(model_uri, trained.settings, folder / "serve.log", cwd=folder)
    except ModelServerError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def promoted(tmp_path_factory) -> TrainedNP:
    """NP retrained once and promoted by the real gate: version 1 is Production and champion."""
    trained = trained_np(tmp_path_factory, "serving")
    outcome = gate_candidate(
        trained.client,
        trained.settings,
        trained.store,
        PromotionStore(trained.store.engine),
        REGION,
        trained.outcome.candidate.version,
    )
    assert outcome.decision.promote, f"the smoke-trained NP model did not pass the gate: {outcome.decision.summary}"
    yield trained
    trained.store.engine.dispose()


@pytest.fixture(scope="module")
def champion_server(promoted, tmp_path_factory) -> Iterator[ModelServer]:
    yield from serve(f"models:/{MODEL_NAME}@champion", promoted, tmp_path_factory.mktemp("champion-server"))


@pytest.fixture
def production_server(promoted, tmp_path) -> Iterator[ModelServer]:
    yield from serve(f"models:/{MODEL_NAME}/Production", promoted, tmp_path)


def raw_request(trained: TrainedNP, origin: pd.Timestamp = ORIGIN) -> ModelRequest:
    """The origin's raw request from the store: what ``eopt request`` prints and forecast_generation sends."""
    return prepare_request(trained.store, REGION, origin)


def split(request: ModelRequest) -> dict:
    return request.body()


def records(request: ModelRequest) -> dict:
    return {"dataframe_records": request.table.to_dict(orient="records"), "params": request.params}


def predictions(response: requests.Response) -> pd.DataFrame:
    assert response.status_code == 200, response.text[:2000]
    return pd.DataFrame(response.json()["predictions"])


def test_serving__answers_ping_and_health(champion_server):
    assert requests.get(f"{champion_server.url}/ping", timeout=5).status_code == 200
    assert requests.get(f"{champion_server.url}/health", timeout=5).status_code == 200


def test_serving__a_raw_request_gets_the_24_hours_from_the_origin(champion_server, promoted):
    request = raw_request(promoted)
    assert request.table.columns.tolist() == ["ts", "price", "grid_load_forecast", "wind_power_forecast"]
    assert len(request.table) == 98 * 24 + 24  # the 98 days LEAR's recalibration reads, and the 24 target hours
    forecast = predictions(champion_server.invoke(split(request)))
    assert len(forecast) == 24
    hours = pd.date_range(ORIGIN, periods=24, freq="h")
    assert forecast["target_ts"].tolist() == [f"{t:%Y-%m-%dT%H:%M:%SZ}" for t in hours]
    assert set(forecast["origin"]) == {"2018-12-20T13:00:00Z"}
    assert forecast.columns[:12].tolist() == [
        "origin", "target_ts", "yhat", "lower", "upper", "q05", "q10", "q25", "q50", "q75", "q90", "q95"
    ]  # fmt: skip
    assert set(forecast.columns[12:]) == {"yhat_cnn_lstm", "yhat_xgboost", "yhat_lightgbm", "yhat_lear"}  # the members
    # the LEAR member's JSON, loaded on its own, forecasts the request's features as the served model does
    lear = LearMember.load(promoted.ensemble_folder / "members" / "lear")
    prices, exogenous, origin = parse_request(request.table, request.params, REGION)
    np.testing.assert_allclose(
        forecast["yhat_lear"].to_numpy(dtype=float), lear.predict(inference_frame(prices, exogenous, REGION, origin))
    )
    values = forecast[["yhat", "lower", "upper", *QUANTILE_COLUMNS]].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    assert (np.diff(forecast[list(QUANTILE_COLUMNS)].to_numpy(dtype=float), axis=1) >= 0).all()  # every row
    # the interval is the point forecast plus the validation's conformal residual quantiles of each horizon
    # (14 validation days: the extreme residuals, which need not straddle 0 at every horizon)
    intervals = promoted.ensemble().intervals
    np.testing.assert_allclose(forecast["upper"] - forecast["yhat"], intervals.upper, atol=1e-9)
    np.testing.assert_allclose(forecast["lower"] - forecast["yhat"], intervals.lower, atol=1e-9)
    # at the default 90% coverage the interval is the 0.05 and 0.95 quantiles
    assert (
        forecast["lower"].tolist() == forecast["q05"].tolist()
        and forecast["upper"].tolist() == forecast["q95"].tolist()
    )
    # a real forecast of real prices: closer to what happened than last week's prices were
    actual = promoted.prices().reindex(hours).to_numpy()
    naive = promoted.prices().reindex(hours - pd.Timedelta(hours=168)).to_numpy()
    assert np.mean(np.abs(forecast["yhat"].to_numpy() - actual)) < np.mean(np.abs(naive - actual))


def test_serving__answers_what_forecast_generation_stores_for_the_same_origin(champion_server, promoted, tmp_path):
    # the DAG's own task functions for the run at a local midnight (LEAR recalibrated), on the same registry and store
    tracking.configure(promoted.settings)
    clear_model_cache()
    folder = tmp_path / "run"
    flow.prepare_features(promoted.store, [REGION], MIDNIGHT, folder)
    summary = flow.generate_forecasts(promoted.client, [REGION], folder, MIDNIGHT)
    assert summary["failed"] == {}
    assert summary["forecasts"][REGION]["is_fallback"] is False and summary["forecasts"][REGION]["version"] == "1"
    flow.store_forecasts(promoted.store, [REGION], folder)
    stored = ForecastStore(promoted.store.engine).read_forecasts(REGION)
    stored = stored[stored["issued_at"] == MIDNIGHT].sort_values("target_ts").reset_index(drop=True)
    assert len(stored) == 24 and set(stored["model_version"]) == {"1"}

    # a user's request, written by the command the README shows, posted as the file it wrote
    printed = CliRunner().invoke(
        cli, ["request", "--region", REGION, "--origin", "2018-12-19T23:00Z"], env=cli_env(promoted.settings)
    )
    assert printed.exit_code == 0, printed.output
    (tmp_path / "request.json").write_text(printed.stdout)
    assert json.loads(printed.stdout) == json.loads(flow.request_file(folder, REGION).read_text())  # one request
    served = predictions(champion_server.invoke((tmp_path / "request.json").read_text()))

    assert served["target_ts"].tolist() == [f"{t:%Y-%m-%dT%H:%M:%SZ}" for t in stored["target_ts"]]
    members = [c for c in MEMBER_COLUMNS if c in served.columns]  # each member's own forecast is stored too
    assert "yhat_lear" in members and len(members) >= 2
    for column in ("yhat", "lower", "upper", *QUANTILE_COLUMNS, *members):
        np.testing.assert_allclose(served[column].to_numpy(float), stored[column].to_numpy(float), rtol=1e-12)
    assert stored[[c for c in MEMBER_COLUMNS if c not in members]].isna().all().all()  # a member it lacks: NULL
    assert (np.diff(stored[list(QUANTILE_COLUMNS)].to_numpy(), axis=1) >= 0).all()


def test_serving__a_midnight_origin_gets_lear_recalibrated_on_the_98_days_before_it(champion_server, promoted):
    request = raw_request(promoted, MIDNIGHT)
    served = predictions(champion_server.invoke(split(request)))
    lear = LearMember.load(promoted.ensemble_folder / "members" / "lear")
    assert lear.model.recalibrates  # EOPT_LEAR_RECALIBRATE_DAILY's default
    prices, exogenous, origin = parse_request(request.table, request.params, REGION, lear.history_hours)
    features = inference_frame(prices, exogenous, REGION, origin)
    daily = lear.model.recalibrated(prices[prices.index < origin], exogenous, origin)  # as a user could check it
    np.testing.assert_allclose(served["yhat_lear"].to_numpy(float), LearMember.of(daily).predict(features), rtol=1e-12)
    assert not np.allclose(served["yhat_lear"].to_numpy(float), lear.predict(features))  # not the weekly fit's
    # a request of the week the features read is too short for this model: 400, saying from where to send
    week = request.table.iloc[-192:].reset_index(drop=True)
    response = champion_server.invoke(ModelRequest(week, MIDNIGHT).body())
    assert response.status_code == 400, response.text
    assert (
        "too little history: origin 2018-12-19T23:00:00Z needs the 2352 hours from 2018-09-12T23:00:00Z"
        in (response.json()["message"])
    )


def test_serving__answers_what_the_champion_loaded_in_process_answers(champion_server, promoted):
    request = raw_request(promoted)
    served = predictions(champion_server.invoke(split(request)))
    tracking.configure(promoted.settings)
    local = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1").predict(request.table, params=request.params)
    assert served.columns.tolist() == local.columns.tolist()
    assert served["target_ts"].tolist() == local["target_ts"].tolist()
    np.testing.assert_allclose(
        served[["yhat", "lower", "upper"]].to_numpy(float), local[["yhat", "lower", "upper"]].to_numpy(float), rtol=1e-9
    )


def test_serving__a_zone_only_another_catalogue_names_is_served_without_that_catalogue(
    champion_server, promoted, tmp_path, monkeypatch
):
    """The registered model carries its market: a server whose catalogue lacks the zone still builds its features."""
    monkeypatch.setattr(core.settings, "_PROCESS_CATALOGUE", core.settings._PROCESS_CATALOGUE)
    zone = get_market(REGION).model_copy(update={"code": "NP_ELSEWHERE", "name": "NP under another code"})
    register_market(zone)  # this (training) process's catalogue names the zone; the server's will not
    champion = promoted.ensemble()
    relabelled = EnsembleForecaster(
        zone.code, champion.members, champion.decision, champion.intervals, champion.feature_columns
    )
    model_uri, _ = log_forecaster(promoted, relabelled, tmp_path / "model", "zone of another catalogue")
    core.settings.use_catalogue(None)
    request = raw_request(promoted)
    # the server's environment carries no EOPT_* setting: its catalogue is the bundled one, without the zone
    elsewhere = start_model_server(model_uri, promoted.settings, tmp_path / "serve.log", cwd=tmp_path)
    try:
        served = predictions(elsewhere.invoke(split(request)))
    finally:
        elsewhere.stop()
    # the same members on the same hours: the champion's forecast, to the last digit
    champion_served = predictions(champion_server.invoke(split(request)))
    assert served["target_ts"].tolist() == champion_served["target_ts"].tolist()
    columns = ["yhat", "lower", "upper", *QUANTILE_COLUMNS]
    np.testing.assert_allclose(served[columns].to_numpy(float), champion_served[columns].to_numpy(float), rtol=1e-12)


def test_serving__dataframe_records_and_dataframe_split_get_the_same_forecast(champion_server, promoted):
    request = raw_request(promoted)
    by_split = predictions(champion_server.invoke(split(request)))
    by_records = predictions(champion_server.invoke(json.dumps(records(request))))
    pd.testing.assert_frame_equal(by_split, by_records)


def test_serving__the_production_stage_serves_the_same_model_as_the_champion_alias(
    champion_server, production_server, promoted
):
    request = raw_request(promoted, pd.Timestamp("2018-12-22 23:00", tz="UTC"))
    pd.testing.assert_frame_equal(
        predictions(production_server.invoke(split(request))), predictions(champion_server.invoke(split(request)))
    )


def test_serving__unpublished_exogenous_forecasts_travel_as_null_and_still_get_a_forecast(champion_server, promoted):
    # the origin after the newest price (what the hourly forecast run sends): the next day's
    # load and wind forecasts are not in the history, so the target hours carry JSON null
    origin = promoted.prices().index.max() + pd.Timedelta(hours=1)
    request = raw_request(promoted, origin)
    body = split(request)
    assert all(row[3] is None for row in body["dataframe_split"]["data"][REQUEST_HISTORY_HOURS:])  # wind_power_forecast
    forecast = predictions(champion_server.invoke(body))
    assert forecast["target_ts"].iloc[0] == "2018-12-24T23:00:00Z" and len(forecast) == 24
    assert np.isfinite(forecast[["yhat", "lower", "upper"]].to_numpy(dtype=float)).all()


def _short_history(request: ModelRequest) -> dict:
    return split(ModelRequest(request.table.iloc[5:].reset_index(drop=True), request.origin))


def _gap(request: ModelRequest) -> dict:
    return split(ModelRequest(request.table.drop(index=[40, 41, 42]).reset_index(drop=True), request.origin))


def _unsorted(request: ModelRequest) -> dict:
    order = [*range(100), 101, 100, *range(102, len(request.table))]
    return split(ModelRequest(request.table.iloc[order].reset_index(drop=True), request.origin))


def _duplicate_hour(request: ModelRequest) -> dict:
    table = request.table
    return split(ModelRequest(pd.concat([table.iloc[:61], table.iloc[60:]]).reset_index(drop=True), request.origin))


def _missing_exogenous_series(request: ModelRequest) -> dict:
    return split(ModelRequest(request.table.drop(columns=["wind_power_forecast"]), request.origin))


def _no_origin(request: ModelRequest) -> dict:
    return {"dataframe_split": split(request)["dataframe_split"]}


def _invalid_origin(request: ModelRequest) -> dict:
    return {**split(request), "params": {"origin": "next tuesday"}}


def _non_numeric_price(request: ModelRequest) -> dict:
    body = split(request)
    body["dataframe_split"]["data"][3][1] = "abc"
    return body


def _infinite_forecast(request: ModelRequest) -> dict:
    body = split(request)
    for row in (2, 5):
        body["dataframe_split"]["data"][row][2] = float("inf")  # JSON ``Infinity``, as Python's json writes it
    return body


def _unexpected_column(request: ModelRequest) -> dict:
    return split(ModelRequest(request.table.assign(price_eur_kwh=0.05), request.origin))


def _no_rows(request: ModelRequest) -> dict:
    return split(ModelRequest(request.table.iloc[:0], request.origin))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            _short_history,
            "NP: too little history: origin 2018-12-20T13:00:00Z needs the 2352 hours from 2018-09-13T13:00:00Z "
            "(prices before the origin) and the 24 target hours up to 2018-12-21T12:00:00Z; the rows start at "
            "2018-09-13T18:00:00Z, 5 hour(s) short",
        ),
        (_gap, "NP: gap: no row for hour 2018-09-15T05:00:00Z (3 hour(s) missing before 2018-09-15T08:00:00Z)"),
        (_unsorted, "NP: hours not sorted: row 101 (2018-09-17T17:00:00Z) comes after 2018-09-17T18:00:00Z"),
        (_duplicate_hour, "NP: duplicate hour(s): 2018-09-16T01:00:00Z is sent more than once (1 duplicate row(s))"),
        (
            _missing_exogenous_series,
            "NP: missing exogenous series column(s) wind_power_forecast: the NP model needs grid_load_forecast, "
            "wind_power_forecast",
        ),
        (_no_origin, 'NP: no forecast origin: send it as a param beside the table, e.g. "params": {"origin": '),
        (_invalid_origin, "NP: origin 'next tuesday' is not an ISO-8601 UTC hour"),
        (_non_numeric_price, "NP: column 'price': 'abc' is not a number"),
        (_infinite_forecast, "NP: column 'grid_load_forecast': inf in 2 row(s) is not a finite number"),
        (_unexpected_column, "NP: unexpected column(s) price_eur_kwh; a request has the columns ts, price,"),
        (_no_rows, "NP: the request has no rows"),
    ],
    ids=[
        "too little history",
        "gap",
        "unsorted hours",
        "duplicate hour",
        "missing exogenous series",
        "no origin",
        "invalid origin",
        "non-numeric price",
        "infinite forecast",
        "unexpected column",
        "no rows",
    ],
)
def test_serving__a_bad_request_gets_400_saying_what_is_wrong_and_nothing_else(
    champion_server, promoted, make, message
):
    # the standard library's JSON, as a Python client writes it (infinity as ``Infinity``)
    response = champion_server.invoke(json.dumps(make(raw_request(promoted))))
    assert response.status_code == 400, response.text[:2000]
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in body["message"]
    # the message only: no stack trace of the server, in its own key or in the text
    assert "stack_trace" not in body
    assert "Traceback" not in response.text and ".py" not in response.text


def test_serving__a_body_without_a_known_input_key_gets_400(champion_server):
    response = champion_server.invoke({"rows": [[1, 2, 3]]})
    assert response.status_code == 400
    assert "dataframe_split" in response.json()["message"]


def test_serving__a_misspelt_series_is_refused_by_the_model_not_dropped_by_mlflow(champion_server, promoted, tmp_path):
    # MLflow's schema enforcement would drop a column the signature does not name and answer 200;
    # the signature declares the response and the origin param only, so the model sees the request as sent.
    request = raw_request(promoted)
    table = request.table.rename(columns={"wind_power_forecast": "wind_forecast"})
    response = champion_server.invoke(split(ModelRequest(table, request.origin)))
    assert response.status_code == 400
    assert "NP: missing exogenous series column(s) wind_power_forecast" in response.json()["message"]
    assert "unexpected column(s) wind_forecast" in response.json()["message"]
    assert "Found extra inputs" not in champion_server.log.read_text()
    tracking.configure(promoted.settings)
    model = mlflow.models.get_model_info(f"models:/{MODEL_NAME}@champion")
    assert model.signature.inputs is None and model.signature.outputs is not None
    assert {c: t for c, t in zip(model.signature.outputs.input_names(), model.signature.outputs.input_types(), strict=True)
            if c in QUANTILE_COLUMNS} == dict.fromkeys(QUANTILE_COLUMNS, DataType.double)  # fmt: skip
    assert [(p.name, p.dtype.name, p.default) for p in model.signature.params.params] == [("origin", "string", None)]
    assert model.metadata["request"]["columns"] == request.table.columns.tolist()
    assert model.metadata["request"]["history_hours"] == REQUEST_HISTORY_HOURS  # LEAR recalibrates: 98 days
    # the input example is a raw request: its table and its origin
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/1", dst_path=str(tmp_path)))
    example = json.loads((folder / "serving_input_example.json").read_text())
    assert example["dataframe_split"]["columns"] == request.table.columns.tolist()
    assert len(example["dataframe_split"]["data"]) == REQUEST_HISTORY_HOURS + 24 and set(example["params"]) == {
        "origin"
    }


def test_serving__the_server_process_group_is_gone_after_teardown(promoted, tmp_path):
    generator = serve(f"models:/{MODEL_NAME}@champion", promoted, tmp_path)
    server = next(generator)
    started = time.monotonic()
    generator.close()
    assert time.monotonic() - started < 15  # stopped by SIGTERM within the grace period, not killed
    assert server.process.poll() is not None
    with pytest.raises(ProcessLookupError):  # uvicorn, the child that listens, is gone too
        os.killpg(server.process.pid, 0)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/ping", timeout=2)


# Loads the registered model in a fresh process and answers its input example, recording each module
# the shipped code (the model's code/ folder, or the checkout's copy of those packages) imports itself;
# prints the installed distributions of those modules.
IMPORTED_BY_THE_MODEL_CODE = """
import builtins, importlib.metadata, json, sys
from pathlib import Path
import mlflow, pandas
folder, packages = Path(sys.argv[1]), json.loads(sys.argv[2])
code = tuple(str(p) for p in [folder / "code", *packages])
direct = set()
real_import = builtins.__import__
def recording(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and str((globals or {}).get("__file__", "")).startswith(code):
        direct.add(name.split(".")[0])
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = recording
model = mlflow.pyfunc.load_model(str(folder))
example = json.loads((folder / "serving_input_example.json").read_text())
assert len(model.predict(pandas.DataFrame(**example["dataframe_split"]), params=example["params"])) == 24
installed = importlib.metadata.packages_distributions()
print(json.dumps(sorted({d for m in direct for d in installed.get(m, [])})))
"""


def test_logged_model__pins_every_library_its_code_imports_and_not_the_product(promoted, tmp_path):
    tracking.configure(promoted.settings)
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/1", dst_path=str(tmp_path)))
    pinned = dict(line.split("==") for line in (folder / "requirements.txt").read_text().split())
    assert tuple(f"{n}=={v}" for n, v in pinned.items()) == model_requirements()
    for library in ("torch", "xgboost", "lightgbm", "scikit-learn", "pandas", "numpy", "mlflow", "holidays"):
        assert pinned[library] == importlib.metadata.version(library).split("+")[0], library
    assert "electricity-optimizer" not in pinned  # the code travels in code_paths; it is not on PyPI
    packages = json.dumps([str(PROJECT_ROOT / p) for p in CODE_PACKAGES])
    env = {**os.environ, **cli_env(promoted.settings), "OMP_NUM_THREADS": "1"}
    loaded = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY_THE_MODEL_CODE, str(folder), packages],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    imported = set(json.loads(loaded.stdout.splitlines()[-1])) - {"electricity-optimizer"}
    assert {"torch", "xgboost", "lightgbm", "scikit-learn", "holidays"} <= imported  # the members, loaded and run
    assert imported <= set(pinned), sorted(imported - set(pinned))
