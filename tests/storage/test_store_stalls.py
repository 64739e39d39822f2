"""A stalled PostgreSQL (a real TCP proxy in front of the real server) fails the store step within its budget.

The proxy (``tests/postgres_proxy.py``) forwards the store's connection to the real server and,
when told, stops forwarding before the login, mid-upsert or after ``COMMIT``, or drops the
connection right after forwarding ``COMMIT`` (the server commits, its answer is lost). Budgets
are short here: login 2 s (libpq's least), statements 1 s, idle in transaction 3 s.
"""

from __future__ import annotations

import os
import socket
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from core.settings import Settings
from pipelines.electricity_price_ingestion import store_prices
from storage.database import StorageError, StoreTimeouts, create_store_engine, upgrade
from storage.forecasts import ForecastStore
from storage.postgres_connection import ANSWER_GRACE_S
from storage.prices import PriceStore
from tests.postgres_proxy import PostgresProxy, simple_query

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-never-shown"  # trust authentication ignores it; no message may carry it
SHORT = {
    "EOPT_DATABASE_CONNECT_TIMEOUT_S": "2",
    "EOPT_DATABASE_STATEMENT_TIMEOUT_S": "1",
    "EOPT_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_S": "3",
    "EOPT_DATABASE_KEEPALIVE_IDLE_S": "5",
    "EOPT_DATABASE_KEEPALIVE_INTERVAL_S": "2",
    "EOPT_DATABASE_KEEPALIVE_COUNT": "3",
}
TIMEOUTS = StoreTimeouts.from_settings(Settings.from_env(SHORT).stores)
# a rerun straight to the server, with room to wait for the stalled session's locks to go
PATIENT = StoreTimeouts(
    connect_s=5, statement_s=10, idle_in_transaction_s=10, keepalive_idle_s=5, keepalive_interval_s=2, keepalive_count=3
)
ROWS = 48
COMMIT = simple_query("COMMIT")


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """A migrated, empty store, its URL with a password in it."""
    url = sa.make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    engine = create_store_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def validated_path(tmp_path) -> str:
    """What the validation step hands the store step: 48 hours of prices in a parquet file."""
    ts = pd.date_range("2024-03-01", periods=ROWS, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {"region": "NP", "source": "entsoe", "ts": ts, "price": [40.0 + i for i in range(ROWS)], "currency": "EUR"}
    ).assign(unit="MWh", resolution="PT60M")
    path = tmp_path / "validated.parquet"
    frame.to_parquet(path, index=False)
    return str(path)


def stored(url: str) -> list[tuple]:
    engine = create_store_engine(url, PATIENT)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT region, source, ts, price FROM electricity_prices ORDER BY ts")).all()
    finally:
        engine.dispose()


def rerun(url: str, validated_path: str) -> tuple[dict, float]:
    store = PriceStore(create_store_engine(url, PATIENT))
    started = time.monotonic()
    try:
        return store_prices(store, validated_path), time.monotonic() - started
    finally:
        store.engine.dispose()


def waited_within_budget(started: float, proxy: PostgresProxy, ended: float) -> None:
    """The step gave up one answer deadline after the stall began, not later.

    Timed from the moment the proxy withheld the answer: the reading and sending before it
    depend on how busy the machine is, the wait after it only on the budget.
    """
    assert proxy.triggered_at is not None, "the proxy never stalled"
    assert started < proxy.triggered_at < ended
    waited = ended - proxy.triggered_at
    assert TIMEOUTS.answer_deadline_s - 0.1 < waited < TIMEOUTS.answer_deadline_s + 1.0, waited


def names_the_store_not_the_password(message: str, proxy: PostgresProxy, url: str) -> None:
    database = sa.make_url(url).database
    assert f"127.0.0.1:{proxy.port}/{database}" in message
    assert PASSWORD not in message


def test_settings__reach_the_server_and_the_socket(database_url):
    url = f"{database_url}?options=-c%20application_name%3Deopt-store-test"  # the URL's own options are kept
    engine = create_store_engine(url, TIMEOUTS)
    try:
        with engine.connect() as conn:
            shown = {
                name: conn.execute(sa.text(f"SHOW {name}")).scalar()
                for name in ("statement_timeout", "idle_in_transaction_session_timeout", "application_name")
            }
            descriptor = conn.connection.dbapi_connection.fileno()
            with socket.socket(fileno=os.dup(descriptor)) as sock:
                keepalive = {
                    "on": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    "idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    "interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    "count": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                    "user_timeout_ms": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
                }
    finally:
        engine.dispose()
    assert shown == {
        "statement_timeout": "1s",
        "idle_in_transaction_session_timeout": "3s",
        "application_name": "eopt-store-test",
    }
    assert keepalive == {"on": 1, "idle": 5, "interval": 2, "count": 3, "user_timeout_ms": 11000}


def test_a_server_that_never_answers_the_login_fails_within_the_connect_timeout(database_url):
    with PostgresProxy() as proxy:
        proxy.stall_new_connections()
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            create_store_engine(proxy.url(database_url), TIMEOUTS)
        elapsed = time.monotonic() - started
    assert TIMEOUTS.connect_s - 0.1 < elapsed < TIMEOUTS.connect_s + 1.5
    message = str(caught.value)
    assert "cannot reach the store" in message and "EOPT_DATABASE_CONNECT_TIMEOUT_S=2 s" in message
    names_the_store_not_the_password(message, proxy, database_url)


@pytest.mark.parametrize(
    ("stall_after", "rerun_waits_s"),
    [
        # the server's statement_timeout (1 s) cancels the COPY that waits for its rows: the rerun
        # waits for nothing (well under the 10 s a lock wait would take it)
        (b"COPY", (0.0, 2.0)),
        # the merged rows stay locked by a session idle in its transaction until the server's
        # idle_in_transaction_session_timeout (3 s) ends it: the rerun, at 2 s, waits about 1 s
        (b"WITH merged AS", (0.5, 3.0)),
    ],
    ids=["while copying the rows in", "after the merge, its answer withheld"],
)
def test_a_stall_mid_upsert_fails_the_store_step_within_the_statement_budget_and_a_rerun_stores_once(
    database_url, validated_path, stall_after, rerun_waits_s
):
    with PostgresProxy() as proxy:
        store = PriceStore(create_store_engine(proxy.url(database_url), TIMEOUTS))
        proxy.stall_after(stall_after)
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            store_prices(store, validated_path)
        ended = time.monotonic()
        assert proxy.triggered.is_set()
        # The stall still holds the server's session (and, after the merge, the rows' locks): the
        # server's own timeouts end it, so a rerun goes through while the proxy still stalls.
        result, rerun_s = rerun(database_url, validated_path)
    waited_within_budget(started, proxy, ended)
    assert TIMEOUTS.answer_deadline_s == TIMEOUTS.statement_s + ANSWER_GRACE_S == 2.0
    message = str(caught.value)
    assert f"batch upsert of {ROWS} price rows into" in message
    assert "failed and was rolled back, nothing was written" in message
    assert "no answer from PostgreSQL" in message and "within 2 s" in message
    names_the_store_not_the_password(message, proxy, database_url)
    assert rerun_waits_s[0] < rerun_s < rerun_waits_s[1]
    assert (result["inserted"], result["updated"], result["unchanged"]) == (ROWS, 0, 0)
    assert len(stored(database_url)) == ROWS


def test_a_stall_after_commit_reports_an_unknown_outcome_and_a_rerun_stores_each_row_once(database_url, validated_path):
    with PostgresProxy() as proxy:
        store = PriceStore(create_store_engine(proxy.url(database_url), TIMEOUTS))
        proxy.stall_after(COMMIT)
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            store_prices(store, validated_path)
        ended = time.monotonic()
    waited_within_budget(started, proxy, ended)
    message = str(caught.value)
    assert "while committing" in message and "the outcome is unknown" in message and "A rerun is safe" in message
    assert "nothing was written" not in message
    names_the_store_not_the_password(message, proxy, database_url)
    assert len(stored(database_url)) == ROWS  # the server did commit
    result, _ = rerun(database_url, validated_path)
    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 0, ROWS)
    assert len(stored(database_url)) == ROWS


def test_a_lost_answer_to_commit_says_the_outcome_is_unknown_not_that_nothing_was_written(database_url, validated_path):
    with PostgresProxy() as proxy:
        store = PriceStore(create_store_engine(proxy.url(database_url), TIMEOUTS))
        proxy.drop_after(COMMIT)
        with pytest.raises(StorageError) as caught:
            store_prices(store, validated_path)
        assert proxy.server_finished.wait(5), "the server never answered the forwarded COMMIT"
    message = str(caught.value)
    assert "the connection was lost while committing (server closed the connection unexpectedly)" in message
    assert "the outcome is unknown" in message
    assert "A rerun is safe: the upsert is idempotent, so rerunning the step stores each row exactly once" in message
    assert "nothing was written" not in message
    names_the_store_not_the_password(message, proxy, database_url)
    before = stored(database_url)
    assert len(before) == ROWS  # every row was committed although the client never heard so
    result, _ = rerun(database_url, validated_path)
    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 0, ROWS)
    assert stored(database_url) == before  # exactly once, values untouched


def test_a_lost_answer_to_commit_of_a_forecast_is_an_unknown_outcome_too(database_url):
    issued = pd.Timestamp("2024-03-02 00:00", tz="UTC")
    frame = pd.DataFrame(
        {
            "region": "NP",
            "issued_at": issued,
            "target_ts": pd.date_range(issued, periods=24, freq="h"),
            "model_name": "electricity-price-NP",
            "model_version": "3",
            "yhat": [50.0 + h for h in range(24)],
            "lower": [45.0 + h for h in range(24)],
            "upper": [55.0 + h for h in range(24)],
            "is_fallback": False,
        }
    )
    with PostgresProxy() as proxy:
        forecasts = ForecastStore(create_store_engine(proxy.url(database_url), TIMEOUTS))
        proxy.drop_after(COMMIT)
        with pytest.raises(StorageError) as caught:
            forecasts.upsert_forecasts(frame)
        assert proxy.server_finished.wait(5)
    message = str(caught.value)
    assert message.startswith("forecast upsert of 24 rows into postgresql+psycopg2://postgres:***@127.0.0.1:")
    assert "the outcome is unknown" in message and "nothing was written" not in message
    names_the_store_not_the_password(message, proxy, database_url)
    direct = ForecastStore(create_store_engine(database_url, PATIENT))
    result = direct.upsert_forecasts(frame)
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 24)
    assert direct.count_forecasts() == 24
    direct.engine.dispose()


def test_sqlite_takes_the_same_call_and_ignores_the_postgresql_budgets(tmp_path, validated_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'prices.db'}", TIMEOUTS)
    upgrade(engine)
    store = PriceStore(engine)
    first, again = store_prices(store, validated_path), store_prices(store, validated_path)
    assert (first["inserted"], again["unchanged"]) == (ROWS, ROWS)
    assert store.count_prices() == ROWS
    engine.dispose()
