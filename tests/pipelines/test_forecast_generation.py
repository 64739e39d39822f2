"""pipelines.forecast_generation on one chunk of zones, on SQLite and PostgreSQL: the chunk's prices are read
in one query, its forecasts written in one upsert, and a zone that cannot be forecast is recorded and raised
only after the chunk's other zones are stored and cached. The DAG around these functions runs under
`airflow dags test` in ``tests/dags/test_dag_forecast.py``."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from core.markets import MarketHistory, load_market
from core.settings import PROJECT_ROOT
from pipelines import forecast_generation as flow
from serving.forecasting import forecast_origins
from storage.cache import PriceCache
from storage.forecasts import ForecastStore
from storage.prices import PriceStore

RUN = pd.Timestamp("2018-12-25T05:00:00Z")  # NP's history ends 2018-12-24 22:00 UTC, PJM's 2018-12-25 04:00, BE's 2016


@pytest.mark.parametrize(
    ("zones", "size", "lengths"),
    [
        (46, 25, [23, 23]),
        (50, 25, [25, 25]),
        (51, 25, [17, 17, 17]),
        (200, 25, [25] * 8),
        (4, 25, [4]),
        (3, 1, [1, 1, 1]),
        (0, 25, []),
    ],
)
def test_zone_chunks__split_the_zones_in_order_into_the_fewest_even_chunks_of_at_most_the_size(zones, size, lengths):
    codes = [f"Z{i:03d}" for i in range(zones)]
    chunks = flow.zone_chunks(codes, size)
    assert [len(c) for c in chunks] == lengths
    assert [code for chunk in chunks for code in chunk] == codes


def test_zone_chunks__refuses_a_chunk_of_no_zone():
    with pytest.raises(ValueError, match="at least one zone, not 0"):
        flow.zone_chunks(["NP"], 0)


@pytest.mark.parametrize("step", ["prepare_features", "generate_forecasts", "store_forecasts", "update_forecast_cache"])
def test_forecast_chunk__a_zone_code_given_as_a_string_is_refused_not_read_letter_by_letter(step, tmp_path):
    arguments = {
        "prepare_features": (None, "NP", RUN, tmp_path),
        "generate_forecasts": (None, "NP", tmp_path, RUN),
        "store_forecasts": (None, "NP", tmp_path),
        "update_forecast_cache": (None, None, "NP", tmp_path),
    }[step]
    with pytest.raises(TypeError, match=r"a chunk is a list of zones, e.g. \['NP'\]"):
        getattr(flow, step)(*arguments)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.fixture(scope="module")
def histories() -> list[MarketHistory]:
    """The last 20 days of NP, PJM and BE, read once."""
    out = []
    for region in ("NP", "PJM", "BE"):
        history = load_market(region, PROJECT_ROOT / "data" / "markets")
        out.append(history.between(history.prices["ts"].max() - pd.Timedelta(days=20), None))
    return out


@pytest.fixture
def chunk_store(store_engine, histories) -> PriceStore:
    store = PriceStore(store_engine)
    for history in histories:
        store.upsert_history(history.prices, history.exogenous)
    return store


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> MlflowClient:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return MlflowClient(uri, uri)  # no model registered: every zone falls back to the seasonal naive


def statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: seen.append(sql))
    return seen


def test_forecast_chunk__a_stale_zone_fails_the_chunk_after_its_other_zones_are_stored_and_cached(
    chunk_store, client, tmp_path
):
    zones, folder = ["NP", "BE", "PJM"], tmp_path / "run"
    cache = PriceCache.from_url(None, ttl_prices_s=60, ttl_forecasts_s=60)
    seen = statements(chunk_store.engine)

    prepared = flow.prepare_features(chunk_store, zones, RUN, folder)
    reads = [s for s in seen if "electricity_prices" in s or "market_exogenous" in s]
    assert len(reads) == 3  # every zone's newest price, then all their prices, then all their exogenous rows
    assert prepared["prepared"] == {"NP": "2018-12-24 23:00:00+00:00", "PJM": "2018-12-25 05:00:00+00:00"}
    assert list(prepared["failed"]) == ["BE"]
    assert prepared["failed"]["BE"].startswith("StaleDataError: BE: newest price is 2016-12-31 22:00:00+00:00")

    generated = flow.generate_forecasts(client, zones, folder, RUN)
    assert sorted(generated["forecasts"]) == ["NP", "PJM"] and generated["failed"] == {}  # BE failed before
    assert all(f["is_fallback"] and f["model"] == "seasonal-naive" for f in generated["forecasts"].values())

    seen.clear()
    stored = flow.store_forecasts(chunk_store, zones, folder)
    assert stored == {"stored": ["NP", "PJM"], "inserted": 48, "updated": 0, "unchanged": 0}
    assert sum(1 for s in seen if "INSERT INTO forecasts" in s) == 1  # one upsert (its merge statement)

    with pytest.raises(flow.ZonesNotForecast) as failure:
        flow.update_forecast_cache(chunk_store, cache, zones, folder)
    assert str(failure.value).startswith(
        "1 of 3 zone(s) not forecast (the other 2 stored and cached): BE in prepare_features: StaleDataError: BE: "
        "newest price is 2016-12-31 22:00:00+00:00, 17359 h before the run at 2018-12-25 05:00:00+00:00"
    )
    for zone in ("NP", "PJM"):  # cached before the chunk failed
        document = cache.latest_forecast(zone)
        assert document["issued_at"] == "2018-12-25T05:00:00+00:00" and len(document["points"]) == 24
    assert cache.latest_forecast("BE") is None
    store = ForecastStore(chunk_store.engine)
    assert (store.count_forecasts("NP"), store.count_forecasts("PJM"), store.count_forecasts("BE")) == (24, 24, 0)

    # a retry of the chunk starts clean and rewrites nothing: the same zones forecast, BE still named
    flow.prepare_features(chunk_store, zones, RUN, folder)
    flow.generate_forecasts(client, zones, folder, RUN)
    assert flow.store_forecasts(chunk_store, zones, folder) == {
        "stored": ["NP", "PJM"],
        "inserted": 0,
        "updated": 0,
        "unchanged": 48,
    }
    with pytest.raises(flow.ZonesNotForecast, match=r"^1 of 3 zone\(s\) not forecast .*: BE in prepare_features"):
        flow.update_forecast_cache(chunk_store, cache, zones, folder)


def test_forecast_chunk__without_a_failing_zone_caches_each_zones_newest_issue_and_returns(
    chunk_store, client, tmp_path
):
    zones, folder = ["NP", "PJM"], tmp_path / "run"
    cache = PriceCache.from_url(None, ttl_prices_s=60, ttl_forecasts_s=60)
    for hour in (RUN, RUN - pd.Timedelta(hours=1)):  # the older issue second: the cache keeps the newest
        flow.prepare_features(chunk_store, zones, hour, folder)
        flow.generate_forecasts(client, zones, folder, hour)
        flow.store_forecasts(chunk_store, zones, folder)
        cached = flow.update_forecast_cache(chunk_store, cache, zones, folder)["cached"]
    assert {z: (c["issued_at"], c["ok"]) for z, c in cached.items()} == dict.fromkeys(
        zones, ("2018-12-25 05:00:00+00:00", True)
    )
    assert cache.latest_forecast("PJM")["issued_at"] == "2018-12-25T05:00:00+00:00"


def test_forecast_origins__read_every_zones_newest_price_in_one_query_and_ignore_prices_after_the_run(chunk_store):
    seen = statements(chunk_store.engine)
    # PJM's prices reach 2018-12-25 04:00; a run at 02:00 knows those before 02:00 only
    origins, refused = forecast_origins(chunk_store, ["NP", "PJM", "BE", "XX"], pd.Timestamp("2018-12-25T02:00Z"))
    assert sum(1 for s in seen if "electricity_prices" in s) == 1
    assert origins == {"NP": pd.Timestamp("2018-12-24T23:00Z"), "PJM": pd.Timestamp("2018-12-25T02:00Z")}
    assert sorted(refused) == ["BE", "XX"]
    assert str(refused["XX"]).startswith("XX: no prices stored, nothing to forecast from")
    # prices only after the run, and none in the lag window before it: refused, saying so
    _, refused = forecast_origins(chunk_store, ["BE"], pd.Timestamp("2016-12-01T00:00Z"))
    assert str(refused["BE"]).startswith("BE: no price stored in the 168 h before the run at 2016-12-01 00:00:00+00:00")
