"""The raw model request on the bundled history of every market: the features the model builds from
it are the training builder's, on ordinary and DST-change days, and a price at or after the origin
cannot reach them. The served 400s are in ``test_serving_e2e``; here, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.markets import bundled_markets, load_market
from serving.model_request import REQUEST_HISTORY_HOURS, ModelRequest, RequestError, build_request, parse_request
from training.features import inference_frame

MARKETS = bundled_markets()  # the region catalogue's regions with a bundled history file

ROOT = Path(__file__).resolve().parents[2]


def _history(region: str) -> tuple[pd.Series, pd.DataFrame]:
    history = load_market(region, ROOT / "data" / "markets")
    return history.prices.set_index("ts")["price"], history.exogenous.pivot_table(
        index="ts", columns="variable", values="value"
    )


def _features(request: ModelRequest, region: str) -> pd.DataFrame:
    # through JSON and back, as a client's body reaches the model
    sent = ModelRequest.from_body(json.loads(json.dumps(request.body(), allow_nan=False)))
    prices, exogenous, origin = parse_request(sent.table, sent.params, region)
    return inference_frame(prices, exogenous, region, origin)


# the local midnights of the spring and autumn clock changes of 2016 (inside every bundled history),
# an hour in the afternoon, and a local midnight in summer
EUROPE = ["2016-03-26 23:00", "2016-10-29 22:00", "2016-06-14 13:00", "2016-07-31 22:00"]
ORIGINS = {
    "NP": EUROPE,
    "BE": EUROPE,
    "FR": EUROPE,
    "PJM": ["2016-03-13 05:00", "2016-11-06 04:00", "2016-06-14 13:00", "2016-08-01 04:00"],
}


def test_origins__cover_every_market():
    assert set(ORIGINS) == set(MARKETS)


@pytest.mark.parametrize("region", sorted(ORIGINS))
def test_model_request__the_model_builds_the_features_training_builds_on_dst_days(region):
    prices, exogenous = _history(region)
    for text in ORIGINS[region]:
        origin = pd.Timestamp(text, tz="UTC")
        request = build_request(prices, exogenous, region, origin)
        assert len(request.table) == 98 * 24 + 24 and request.table["ts"].is_unique
        built = _features(request, region)
        expected = inference_frame(prices, exogenous, region, origin)
        assert np.isfinite(built["lag_168h"].to_numpy()).all(), (region, text)
        pd.testing.assert_frame_equal(built.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)


def test_model_request__prices_at_or_after_the_origin_never_reach_the_features():
    prices, exogenous = _history("NP")
    origin = pd.Timestamp("2017-06-14 13:00", tz="UTC")
    request = build_request(prices, exogenous, "NP", origin)
    tampered = request.table.copy()
    future = pd.to_datetime(tampered["ts"], utc=True) >= origin
    tampered.loc[future, "price"] = 10_000.0  # a client sending actuals of the target hours
    pd.testing.assert_frame_equal(
        _features(ModelRequest(tampered, origin), "NP"), _features(request, "NP"), check_exact=True
    )


def test_model_request__an_unknown_price_is_a_null_row_and_a_missing_row_is_a_gap():
    prices, exogenous = _history("NP")
    origin = pd.Timestamp("2017-06-14 13:00", tz="UTC")
    request = build_request(prices, exogenous, "NP", origin)
    last = REQUEST_HISTORY_HOURS - 1  # origin - 1 h: the last price
    nulled = request.table.copy()
    nulled.loc[last, "price"] = None
    features = _features(ModelRequest(nulled, origin), "NP")
    assert features["last_price"].isna().all() and features["last_24h_mean"].isna().all()
    # lag_24h of the last target hour reads that hour; the 23 others are still known
    assert features["lag_24h"].isna().tolist() == [False] * 23 + [True]
    with pytest.raises(RequestError, match=r"^gap: no row for hour 2017-06-14T12:00:00Z \(1 hour\(s\) missing"):
        parse_request(request.table.drop(index=[last]).reset_index(drop=True), request.params, "NP")


def test_model_request__no_known_price_before_the_origin_is_refused():
    prices, exogenous = _history("NP")
    origin = pd.Timestamp("2017-06-14 13:00", tz="UTC")
    request = build_request(prices, exogenous, "NP", origin)
    with pytest.raises(RequestError, match=r"^no known price in the 168 hours before origin 2017-06-14T13:00:00Z"):
        parse_request(request.table.assign(price=None), request.params, "NP")


def test_model_request__an_origin_off_the_hour_is_refused():
    prices, exogenous = _history("NP")
    request = build_request(prices, exogenous, "NP", pd.Timestamp("2017-06-14 13:00", tz="UTC"))
    with pytest.raises(RequestError, match=r"^origin '2017-06-14T13:30:00Z' is not a whole hour"):
        parse_request(request.table, {"origin": "2017-06-14T13:30:00Z"}, "NP")


def test_model_request__the_history_a_model_reads_is_the_history_it_needs():
    prices, exogenous = _history("NP")
    origin = pd.Timestamp("2017-06-13 22:00", tz="UTC")  # a local midnight: LEAR recalibrates there
    week = build_request(prices, exogenous, "NP", origin).table.iloc[-192:].reset_index(drop=True)
    parsed, _, _ = parse_request(week, {"origin": "2017-06-13T22:00:00Z"}, "NP")  # the features' 168 h: enough
    assert len(parsed) == 192
    with pytest.raises(
        RequestError,
        match=r"^too little history: origin 2017-06-13T22:00:00Z needs the 2352 hours from 2017-03-07T22:00:00Z "
        r"\(prices before the origin\).* the rows start at 2017-06-06T22:00:00Z, 2184 hour\(s\) short$",
    ):
        parse_request(week, {"origin": "2017-06-13T22:00:00Z"}, "NP", history_hours=REQUEST_HISTORY_HOURS)
