"""`mlflow models serve` on the promoted NP model, called over loopback HTTP like any client would.

The module retrains NP once (smoke budget, short window; ``tests/registry_fixtures``), lets the
real promotion gate make it the champion, and starts the real scoring server as a subprocess on
``models:/electricity-price-NP@champion`` (and, for one test, a second one on
``models:/electricity-price-NP/Production``). Requests are the feature rows of one forecast
origin, built by ``training.features.inference_frame`` and ``core.model_input.to_model_input``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from core.model_input import to_model_input
from registry.promotion import gate_candidate
from serving.model_server import ModelServer, ModelServerError, start_model_server
from storage.promotions import PromotionStore
from tests.registry_fixtures import MODEL_NAME, REGION, TrainedNP, train_np
from training import tracking
from training.features import feature_columns, inference_frame

pytestmark = pytest.mark.e2e

ORIGIN = pd.Timestamp("2018-12-20 13:00", tz="UTC")  # an hourly origin inside the history: actuals are known


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
    trained = train_np(tmp_path_factory.mktemp("serving"))
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


def request_frame(trained: TrainedNP, origin: pd.Timestamp = ORIGIN) -> pd.DataFrame:
    return to_model_input(
        inference_frame(trained.prices(), trained.exogenous(), REGION, origin), feature_columns(REGION)
    )


def split(frame: pd.DataFrame) -> dict:
    body = frame.to_dict(orient="split")
    del body["index"]
    return {"dataframe_split": body}


def predictions(response: requests.Response) -> pd.DataFrame:
    assert response.status_code == 200, response.text[:2000]
    return pd.DataFrame(response.json()["predictions"])


def test_serving__answers_ping_and_health(champion_server):
    assert requests.get(f"{champion_server.url}/ping", timeout=5).status_code == 200
    assert requests.get(f"{champion_server.url}/health", timeout=5).status_code == 200


def test_serving__a_dataframe_split_request_gets_the_24_hours_from_the_origin(champion_server, promoted):
    frame = request_frame(promoted)
    forecast = predictions(champion_server.invoke(split(frame)))
    assert len(forecast) == 24
    hours = pd.date_range(ORIGIN, periods=24, freq="h")
    assert forecast["target_ts"].tolist() == [f"{t:%Y-%m-%dT%H:%M:%SZ}" for t in hours]
    assert set(forecast["origin"]) == {"2018-12-20T13:00:00Z"}
    values = forecast[["yhat", "lower", "upper"]].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    assert (forecast["lower"] <= forecast["yhat"]).all() and (forecast["yhat"] <= forecast["upper"]).all()
    # a real forecast of real prices: closer to what happened than last week's prices were
    actual = promoted.prices().reindex(hours).to_numpy()
    naive = frame["lag_168h"].to_numpy()
    assert np.mean(np.abs(forecast["yhat"].to_numpy() - actual)) < np.mean(np.abs(naive - actual))


def test_serving__answers_what_the_champion_loaded_in_process_answers(champion_server, promoted):
    frame = request_frame(promoted)
    served = predictions(champion_server.invoke(split(frame)))
    tracking.configure(promoted.settings)
    local = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1").predict(frame)
    assert served.columns.tolist() == local.columns.tolist()
    assert served["target_ts"].tolist() == local["target_ts"].tolist()
    np.testing.assert_allclose(
        served[["yhat", "lower", "upper"]].to_numpy(float), local[["yhat", "lower", "upper"]].to_numpy(float), rtol=1e-9
    )


def test_serving__dataframe_records_and_dataframe_split_get_the_same_forecast(champion_server, promoted):
    frame = request_frame(promoted)
    by_split = predictions(champion_server.invoke(split(frame)))
    by_records = predictions(champion_server.invoke({"dataframe_records": frame.to_dict(orient="records")}))
    pd.testing.assert_frame_equal(by_split, by_records)


def test_serving__the_production_stage_serves_the_same_model_as_the_champion_alias(
    champion_server, production_server, promoted
):
    frame = request_frame(promoted, pd.Timestamp("2018-12-22 23:00", tz="UTC"))
    pd.testing.assert_frame_equal(
        predictions(production_server.invoke(split(frame))), predictions(champion_server.invoke(split(frame)))
    )


def test_serving__unpublished_exogenous_forecasts_travel_as_null_and_still_get_a_forecast(champion_server, promoted):
    # the origin after the newest price (what the hourly forecast run sends): the next day's
    # load and wind forecasts are not in the history, so those features are NaN -> JSON null
    origin = promoted.prices().index.max() + pd.Timedelta(hours=1)
    frame = request_frame(promoted, origin)
    assert frame["wind_power_forecast"].isna().all()
    body = '{"dataframe_split": ' + frame.to_json(orient="split", index=False) + "}"
    forecast = predictions(champion_server.invoke(body))
    assert forecast["target_ts"].iloc[0] == "2018-12-24T23:00:00Z" and len(forecast) == 24
    assert np.isfinite(forecast[["yhat", "lower", "upper"]].to_numpy(dtype=float)).all()


def _missing_feature(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["lag_24h"])


def _unexpected_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(price_eur_kwh=0.05, lag_25h=1.0)


def _non_numeric_feature(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.astype({"lag_24h": object})
    bad.loc[3, "lag_24h"] = "abc"
    return bad


def _infinite_feature(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.copy()
    bad.loc[[2, 5], "lag_168h"] = np.inf  # JSON ``Infinity``, as Python's json writes it
    return bad


def _bad_timestamp(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.copy()
    bad.loc[0, "origin"] = "yesterday"
    return bad


def _no_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing_feature, "NP: missing column(s) lag_24h; build the rows with training.features.inference_frame"),
        (_unexpected_columns, "NP: unexpected column(s) price_eur_kwh, lag_25h; build the rows with"),
        (_non_numeric_feature, "NP: column 'lag_24h': 'abc' is not a number"),
        (_infinite_feature, "NP: column 'lag_168h': inf in 2 row(s) is not a finite number"),
        (_bad_timestamp, "NP: column 'origin': 'yesterday' is not an ISO-8601 timestamp (e.g. 2018-12-24T23:00:00Z)"),
        (_no_rows, "NP: the request has no rows"),
    ],
    ids=[
        "missing feature column",
        "unexpected columns",
        "non-numeric feature",
        "infinite feature",
        "bad timestamp",
        "no rows",
    ],
)
def test_serving__a_malformed_request_gets_400_saying_what_is_wrong_and_nothing_else(
    champion_server, promoted, make, message
):
    # the standard library's JSON, as a Python client writes it (infinity as ``Infinity``)
    response = champion_server.invoke(json.dumps(split(make(request_frame(promoted)))))
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


def test_serving__an_unexpected_column_is_refused_by_the_model_not_dropped_by_mlflow(champion_server, promoted):
    # MLflow's schema enforcement would drop a column the signature does not name and answer 200;
    # the signature declares the response only, so the model sees the request as sent.
    frame = request_frame(promoted)
    response = champion_server.invoke({"dataframe_records": frame.assign(price_eur_kwh=0.05).to_dict(orient="records")})
    assert response.status_code == 400
    assert "NP: unexpected column(s) price_eur_kwh" in response.json()["message"]
    assert "Found extra inputs" not in champion_server.log.read_text()
    tracking.configure(promoted.settings)
    model = mlflow.models.get_model_info(f"models:/{MODEL_NAME}@champion")
    assert model.signature.inputs is None and model.signature.outputs is not None
    assert model.metadata["request_columns"] == frame.columns.tolist()


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
