"""The store on SQLite and on the real PostgreSQL (each test runs on both dialects)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.markets import load_market
from core.settings import Settings
from storage.database import (
    StorageError,
    create_store_engine,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from storage.forecasts import ForecastStore
from storage.prices import BatchRejected, PriceStore
from storage.schema import HYPERTABLES, metadata
from storage.timescale import (
    COMPRESS_AFTER,
    TimescaleStatus,
    compression_statements,
    enable_compression,
    enable_hypertables,
    timescale_status,
)


def price_rows(region: str = "NP", start: str = "2024-03-01", hours: int = 48, base: float = 0.0) -> pd.DataFrame:
    ts = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    return pd.DataFrame(
        {
            "region": region,
            "source": "test-feed",
            "ts": ts,
            "price": [base + (i % 24) - 12 for i in range(hours)],  # includes negative and zero prices
            "currency": "EUR",
            "unit": "MWh",
            "resolution": "PT60M",
        }
    )


def stored_rows(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT region, source, ts, price, ingested_at FROM electricity_prices ORDER BY region, source, ts")
        ).all()


# -- schema and migrations -------------------------------------------------------------------


def test_migrations__create_exactly_the_tables_the_code_declares(store_engine):
    with store_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []
    assert set(sa.inspect(store_engine).get_table_names()) >= {
        "electricity_prices",
        "market_exogenous",
        "price_quarantine",
        "api_health",
        "forecasts",
        "quality_reports",
    }


def test_migrations__upgrade_twice_is_a_no_op(store_engine):
    assert current_revision(store_engine) == head_revision()
    assert upgrade(store_engine) == head_revision()


def catalogue_has(conn: sa.Connection, catalogue: str, column: str) -> bool:
    """Whether the server's own catalogue (schema-qualified, so nothing can shadow it) lists timescaledb."""
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(sa.text(f"SELECT 1 FROM pg_catalog.{catalogue} WHERE {column} = 'timescaledb'")).scalar())


def test_timescale__detected_from_the_catalogue_not_assumed(store_engine):
    with store_engine.connect() as conn:
        status = timescale_status(conn)
        offered = catalogue_has(conn, "pg_available_extensions", "name")
        created = catalogue_has(conn, "pg_extension", "extname")
    # Whatever the server is (this one has no TimescaleDB, the product's image has it), the status is the catalogue's.
    assert status.available is offered and status.installed is created
    # The migration creates the extension, and the hypertables, exactly when the server offers it.
    assert status.installed is offered
    assert status.hypertables == (tuple(sorted(table for table, _ in HYPERTABLES)) if offered else ())


# Stands in for what the extension provides, for a server that does not have it: a catalogue row for
# pg_available_extensions (a view over the control files on the server's disk, so it is shadowed by a
# view earlier on search_path), a row in pg_extension itself (so the server's own CREATE EXTENSION IF NOT
# EXISTS skips), create_hypertable recording its calls, and timescaledb_information.hypertables over them.
FAKE_TIMESCALEDB = """
CREATE SCHEMA eopt_fake_timescaledb;
CREATE VIEW eopt_fake_timescaledb.pg_available_extensions AS
    SELECT * FROM pg_catalog.pg_available_extensions
    UNION ALL SELECT 'timescaledb'::name, '2.17.2'::text, '2.17.2'::text, 'fake for the test'::text;
INSERT INTO pg_catalog.pg_extension (oid, extname, extowner, extnamespace, extrelocatable, extversion)
    VALUES (4000000001, 'timescaledb', (SELECT oid FROM pg_roles WHERE rolname = current_user),
            'public'::regnamespace, false, '2.17.2');
CREATE TABLE eopt_fake_timescaledb.calls (relation regclass, time_column name, if_not_exists boolean, migrate_data boolean);
CREATE FUNCTION eopt_fake_timescaledb.create_hypertable(
    relation regclass, time_column_name name, if_not_exists boolean DEFAULT false, migrate_data boolean DEFAULT false
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO eopt_fake_timescaledb.calls VALUES (relation, time_column_name, if_not_exists, migrate_data)
$$;
CREATE SCHEMA timescaledb_information;
CREATE VIEW timescaledb_information.hypertables AS
    SELECT c.relname AS hypertable_name FROM eopt_fake_timescaledb.calls JOIN pg_class c ON c.oid = calls.relation;
SET LOCAL search_path = eopt_fake_timescaledb, pg_catalog, public;
"""


@pytest.mark.integration
def test_timescale__present_turns_the_time_series_tables_into_hypertables(postgres_url):
    engine = create_store_engine(postgres_url)
    upgrade(engine)
    expected = tuple(sorted(table for table, _ in HYPERTABLES))
    with engine.connect() as conn, conn.begin() as transaction:  # rolled back: the fake leaves nothing behind
        really_offered = catalogue_has(conn, "pg_available_extensions", "name")
        if not really_offered:
            assert timescale_status(conn) == TimescaleStatus(False, False, ())
            conn.exec_driver_sql(FAKE_TIMESCALEDB)
            assert catalogue_has(conn, "pg_extension", "extname")  # the server's catalogue now says so too

        status = enable_hypertables(conn)

        assert status == TimescaleStatus(available=True, installed=True, hypertables=expected)
        if not really_offered:  # each table once, on its time column, keeping the rows already there
            calls = conn.execute(
                sa.text(
                    "SELECT relation::text, time_column::text, if_not_exists, migrate_data "
                    "FROM eopt_fake_timescaledb.calls ORDER BY 1"
                )
            ).all()
            assert calls == [(table, column, True, True) for table, column in sorted(HYPERTABLES)]
        transaction.rollback()
    with engine.connect() as conn:
        assert timescale_status(conn).available is really_offered
    engine.dispose()


def test_store__refuses_an_unmigrated_database_with_the_fix(store_url):
    engine = create_store_engine(store_url)
    with pytest.raises(StorageError, match=r"eopt db upgrade"):
        PriceStore(engine)


# -- writes ------------------------------------------------------------------------------------


def test_upsert__inserts_new_rows_and_reads_them_back_in_utc(store):
    batch = price_rows(hours=48)
    result = store.upsert_prices(batch)
    assert (result.inserted, result.updated, result.unchanged) == (48, 0, 0)

    back = store.read_prices("NP")
    assert len(back) == 48
    assert str(back["ts"].dt.tz) == "UTC"
    assert back["ts"].iloc[0] == pd.Timestamp("2024-03-01 00:00", tz="UTC")
    assert back["price"].tolist() == batch["price"].tolist()
    assert back["price"].min() == -12.0 and (back["price"] == 0).sum() == 2  # negative and zero are legal


def test_upsert__rerun_changes_nothing(store, store_engine):
    batch = price_rows(hours=72)
    store.upsert_prices(batch)
    before = stored_rows(store_engine)

    again = store.upsert_prices(batch)

    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 72)
    assert stored_rows(store_engine) == before  # ingested_at untouched too


def test_upsert__updates_only_the_rows_whose_price_changed(store):
    batch = price_rows(hours=24)
    store.upsert_prices(batch)
    revised = batch.copy()
    revised.loc[5, "price"] = 999.5

    result = store.upsert_prices(revised)

    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 23)
    back = store.read_prices("NP")
    assert back.loc[back["ts"] == batch.loc[5, "ts"], "price"].item() == 999.5


def test_upsert__naive_timestamps_are_refused_with_the_fix(store):
    batch = price_rows()
    batch["ts"] = batch["ts"].dt.tz_localize(None)
    with pytest.raises(BatchRejected, match=r"naive timestamps.*tz_localize"):
        store.upsert_prices(batch)
    assert store.count_prices() == 0


def test_upsert__non_utc_timestamps_are_refused(store):
    batch = price_rows()
    batch["ts"] = batch["ts"].dt.tz_convert("Europe/Oslo")
    with pytest.raises(BatchRejected, match=r"Europe/Oslo, not UTC"):
        store.upsert_prices(batch)
    assert store.count_prices() == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "12,5"])
def test_upsert__missing_or_non_numeric_prices_are_refused(store, bad):
    batch = price_rows().astype({"price": object})
    batch.loc[7, "price"] = bad
    with pytest.raises(BatchRejected, match=r"1 row\(s\) have a missing or non-numeric price.*quarantine"):
        store.upsert_prices(batch)
    assert store.count_prices() == 0


def test_upsert__duplicate_keys_in_a_batch_are_refused(store):
    batch = price_rows(hours=10)
    batch = pd.concat([batch, batch.iloc[[3]]], ignore_index=True)
    with pytest.raises(BatchRejected, match=r"2 rows share a key"):
        store.upsert_prices(batch)


def test_upsert__missing_columns_are_named(store):
    with pytest.raises(BatchRejected, match=r"missing column\(s\) currency, unit"):
        store.upsert_prices(price_rows().drop(columns=["currency", "unit"]))


def test_upsert__a_failing_batch_rolls_back_whole(store, store_engine):
    store.upsert_prices(price_rows(hours=24))
    before = stored_rows(store_engine)
    batch = price_rows(hours=48)
    batch["price"] += 1.0  # would update the 24 stored rows and add 24 more ...
    batch.loc[40, "region"] = "R" * 40  # ... but one row breaks the table's region constraint

    with pytest.raises(StorageError, match=r"rolled back, nothing was written"):
        store.upsert_prices(batch)

    assert stored_rows(store_engine) == before


def test_upsert_history__prices_and_exogenous_are_written_together_or_not_at_all(store):
    prices = price_rows(hours=24)
    exogenous = pd.DataFrame(
        {"region": "NP", "source": "test-feed", "ts": prices["ts"], "variable": "load_forecast", "value": 1000.0}
    )
    exogenous.loc[3, "region"] = "R" * 40

    with pytest.raises(StorageError):
        store.upsert_history(prices, exogenous)
    assert store.count_prices() == 0

    exogenous.loc[3, "region"] = "NP"
    result = store.upsert_history(prices, exogenous)
    assert (result.prices.inserted, result.exogenous.inserted) == (24, 24)
    wide = store.read_exogenous("NP")
    assert list(wide.columns) == ["load_forecast"] and len(wide) == 24 and str(wide.index.tz) == "UTC"


def test_read_prices__window_is_start_inclusive_end_exclusive(store):
    store.upsert_prices(price_rows(hours=48))
    start = pd.Timestamp("2024-03-01 10:00", tz="UTC")
    end = pd.Timestamp("2024-03-01 20:00", tz="UTC")
    window = store.read_prices("NP", start=start, end=end)
    assert len(window) == 10
    assert window["ts"].min() == start and window["ts"].max() == end - pd.Timedelta(hours=1)
    assert store.latest_ts("NP") == pd.Timestamp("2024-03-02 23:00", tz="UTC")
    assert store.latest_ts("FR") is None


def test_full_np_history__loads_once_and_reruns_as_a_no_op(store, market_data_dir):
    history = load_market("NP", market_data_dir)
    first = store.upsert_history(history.prices, history.exogenous)
    assert first.prices.inserted == 52_416 and first.exogenous.inserted == 2 * 52_416

    second = store.upsert_history(history.prices, history.exogenous)
    assert (second.prices.inserted, second.prices.updated, second.exogenous.inserted) == (0, 0, 0)
    assert store.count_prices("NP") == 52_416
    back = store.read_prices("NP", start=pd.Timestamp("2018-12-24", tz="UTC"))
    assert (
        back["price"].round(6).tolist()
        == history.prices.loc[history.prices["ts"] >= pd.Timestamp("2018-12-24", tz="UTC"), "price"].round(6).tolist()
    )


# -- connection errors -------------------------------------------------------------------------


def test_unreachable_database__names_the_url_without_the_password():
    with pytest.raises(StorageError) as caught:
        create_store_engine("postgresql://eopt:s3cret-pw@127.0.0.1:1/prices")
    message = str(caught.value)
    assert "127.0.0.1:1/prices" in message and "EOPT_DATABASE_URL" in message
    assert "s3cret-pw" not in message


@pytest.mark.parametrize("url", ["not a url", "mysql://root@127.0.0.1/db"])
def test_malformed_or_unsupported_database_url__is_refused(url):
    with pytest.raises(StorageError, match=r"not a database URL|unsupported store"):
        create_store_engine(url)


def test_timescale_compression__without_the_extension_the_migration_changes_nothing(store_engine):
    """Migration 0005 on plain PostgreSQL and SQLite (TimescaleDB is not installed here): at head, no
    statement ran; the SQL it runs where the hypertables exist is the one below."""
    assert current_revision(store_engine) == head_revision() == "0007"
    with store_engine.connect() as conn:
        assert enable_compression(conn) == []
        assert timescale_status(conn).installed is False
    assert compression_statements() == [
        "ALTER TABLE electricity_prices SET (timescaledb.compress, timescaledb.compress_segmentby = 'region, source')",
        "SELECT add_compression_policy('electricity_prices', INTERVAL '30 days', if_not_exists => TRUE)",
        "ALTER TABLE forecasts SET (timescaledb.compress, timescaledb.compress_segmentby = 'region')",
        "SELECT add_compression_policy('forecasts', INTERVAL '30 days', if_not_exists => TRUE)",
    ]
    # compression starts after the hourly forecasts were thinned to their day-ahead issue
    assert pd.Timedelta(COMPRESS_AFTER) > pd.Timedelta(days=Settings.from_env({}).retention.forecast_hourly_days)


def test_migration_0006__adds_the_quantile_columns_keeping_the_rows_and_its_downgrade_drops_only_them(store_engine):
    """Migration 0006 down to 0005 and up again, on SQLite and PostgreSQL, with a forecast stored."""
    quantile_columns = ["q05", "q10", "q25", "q50", "q75", "q90", "q95"]
    targets = pd.date_range("2024-03-01", periods=24, freq="h", tz="UTC")
    rows = pd.DataFrame(
        {
            "region": "NP",
            "issued_at": targets[0],
            "target_ts": targets,
            "model_name": "electricity-price-NP",
            "model_version": "1",
            "yhat": 40.0,
            "lower": 30.0,
            "upper": 50.0,
            "is_fallback": False,
            **{
                c: 30.0 + 20 * q for c, q in zip(quantile_columns, [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95], strict=True)
            },
        }
    )
    ForecastStore(store_engine).upsert_forecasts(rows)

    def columns() -> list[str]:
        return [c["name"] for c in sa.inspect(store_engine).get_columns("forecasts")]

    assert columns()[9:16] == quantile_columns
    assert downgrade(store_engine, "0005") == "0005"
    assert columns() == [
        "region", "issued_at", "target_ts", "model_name", "model_version", "yhat", "lower", "upper", "is_fallback"
    ]  # fmt: skip
    with store_engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT count(*), min(yhat), max(upper) FROM forecasts")).one()
    assert tuple(kept) == (24, 40.0, 50.0)

    assert upgrade(store_engine) == "0007"
    assert columns()[9:16] == quantile_columns
    stored = ForecastStore(store_engine).read_forecasts("NP")
    assert len(stored) == 24 and stored[quantile_columns].isna().all().all()  # rows from before 0006: NULL quantiles
    ForecastStore(store_engine).upsert_forecasts(rows)
    stored = ForecastStore(store_engine).read_forecasts("NP")
    assert stored[quantile_columns].iloc[0].tolist() == [31.0, 32.0, 35.0, 40.0, 45.0, 48.0, 49.0]
    with store_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_migration_0007__adds_the_member_columns_keeping_the_rows_and_its_downgrade_drops_only_them(store_engine):
    """Migration 0007 down to 0006 and up again, on SQLite and PostgreSQL, with a forecast and its members stored."""
    member_columns = ["yhat_xgboost", "yhat_lightgbm", "yhat_cnn_lstm", "yhat_lear"]
    targets = pd.date_range("2024-03-01", periods=24, freq="h", tz="UTC")
    rows = pd.DataFrame(
        {
            "region": "NP",
            "issued_at": targets[0],
            "target_ts": targets,
            "model_name": "electricity-price-NP",
            "model_version": "3",
            "yhat": 40.0,
            "lower": 30.0,
            "upper": 50.0,
            "is_fallback": False,
            "q05": 30.0,
            "q95": 50.0,
            "yhat_xgboost": 41.0,
            "yhat_lightgbm": np.inf,  # not a number: stored as NULL, as a member the model lacks
            "yhat_cnn_lstm": 39.5,
            "yhat_lear": 40.25,
        }
    )
    store = ForecastStore(store_engine)
    store.upsert_forecasts(rows)

    def columns() -> list[str]:
        return [c["name"] for c in sa.inspect(store_engine).get_columns("forecasts")]

    assert columns()[-4:] == member_columns
    assert store.read_forecasts("NP")[member_columns].iloc[0].tolist()[::2] == [41.0, 39.5]
    assert store.read_forecasts("NP")["yhat_lightgbm"].isna().all()
    assert downgrade(store_engine, "0006") == "0006"
    assert "yhat_lear" not in columns() and columns()[-7:] == ["q05", "q10", "q25", "q50", "q75", "q90", "q95"]
    with store_engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT count(*), min(yhat), max(q95) FROM forecasts")).one()
    assert tuple(kept) == (24, 40.0, 50.0)

    assert upgrade(store_engine) == "0007"
    stored = ForecastStore(store_engine).read_forecasts("NP")
    assert len(stored) == 24 and stored[member_columns].isna().all().all()  # rows from before 0007: NULL members
    assert ForecastStore(store_engine).upsert_forecasts(rows).updated == 24
    assert ForecastStore(store_engine).upsert_forecasts(rows).unchanged == 24  # the members count in "unchanged"
    assert ForecastStore(store_engine).read_forecasts("NP")["yhat_lear"].tolist() == [40.25] * 24
    with store_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []
