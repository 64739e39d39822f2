"""Rows past retention on SQLite and PostgreSQL: quarantine rows by when they were last seen, forecasts
thinned to the day-ahead issue of each old hour; prices are never touched."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from retention.store_rows import (
    kept_payload_refs,
    remove_hourly_forecasts,
    remove_quarantine_rows,
    vacuum_stores,
)
from storage.forecasts import ForecastStore
from storage.health import QuarantinedRow, QuarantineStore
from storage.schema import forecasts, price_quarantine

AS_OF = pd.Timestamp("2026-03-01 03:30", tz="UTC")


def _issue(issued_at: pd.Timestamp, version: str) -> pd.DataFrame:
    targets = pd.date_range(issued_at + pd.Timedelta(hours=1), periods=24, freq="h")
    return pd.DataFrame(
        {
            "region": "NP",
            "issued_at": issued_at,
            "target_ts": targets,
            "model_name": "electricity-price-NP",
            "model_version": version,
            "yhat": 40.0,
            "lower": 30.0,
            "upper": 50.0,
            "is_fallback": False,
        }
    )


def test_remove_hourly_forecasts__old_hours_keep_their_day_ahead_issue__recent_hours_keep_all(store_engine):
    store = ForecastStore(store_engine)
    cutoff = AS_OF - pd.Timedelta(days=14)
    first = cutoff - pd.Timedelta(hours=30)  # its 24 hours all lie before the cutoff
    issues = [first + pd.Timedelta(hours=h) for h in (0, 6, 12, 28)]  # overlapping issues, the last straddles it
    for number, issued in enumerate(issues):
        store.upsert_forecasts(_issue(issued, str(number + 1)))

    dry = remove_hourly_forecasts(store_engine, cutoff, dry_run=True)
    with store_engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(sa.select(forecasts.c.issued_at, forecasts.c.target_ts)).all())
    rows["issued_at"], rows["target_ts"] = (
        pd.to_datetime(rows["issued_at"], utc=True),
        pd.to_datetime(rows["target_ts"], utc=True),
    )
    old = rows[rows["target_ts"] < cutoff]
    superseded = len(old) - old["target_ts"].nunique()
    assert dry.rows == superseded > 0
    assert store.count_forecasts() == len(rows)

    real = remove_hourly_forecasts(store_engine, cutoff, dry_run=False)
    assert (real.removals, real.rows) == (dry.removals, dry.rows)
    with store_engine.connect() as conn:
        left = pd.DataFrame(conn.execute(sa.select(forecasts.c.issued_at, forecasts.c.target_ts)).all())
    left["issued_at"], left["target_ts"] = (
        pd.to_datetime(left["issued_at"], utc=True),
        pd.to_datetime(left["target_ts"], utc=True),
    )
    kept_old = left[left["target_ts"] < cutoff].set_index("target_ts")["issued_at"]
    assert kept_old.index.is_unique
    assert (kept_old == old.groupby("target_ts")["issued_at"].min()).all()
    recent = rows[rows["target_ts"] >= cutoff]
    assert len(left[left["target_ts"] >= cutoff]) == len(recent)
    assert remove_hourly_forecasts(store_engine, cutoff, dry_run=False).rows == 0


def test_remove_quarantine_rows__by_last_seen__and_their_payloads_are_no_longer_kept(store_engine):
    quarantine = QuarantineStore(store_engine)
    rows = {
        "old": QuarantinedRow("entsoe", "junk", "NP", None, None, "/h/raw/entsoe/aaa.raw"),
        "seen_again": QuarantinedRow("entsoe", "junk", "BE", None, None, "/h/raw/entsoe/bbb.raw"),
        "new": QuarantinedRow("nrel", "price -9999", "PJM", None, "-9999", None),
    }
    quarantine.add(rows.values())
    seen = {"old": 120, "seen_again": 2, "new": 5}
    with store_engine.begin() as conn:
        for name, row in rows.items():
            when = (AS_OF - pd.Timedelta(days=seen[name])).to_pydatetime()
            conn.execute(
                sa.update(price_quarantine)
                .where(price_quarantine.c.fingerprint == row.fingerprint())
                .values(quarantined_at=(AS_OF - pd.Timedelta(days=150)).to_pydatetime(), last_seen_at=when)
            )
    cutoff = AS_OF - pd.Timedelta(days=90)
    assert sorted(kept_payload_refs(store_engine, cutoff)) == ["/h/raw/entsoe/bbb.raw"]

    dry = remove_quarantine_rows(store_engine, cutoff, dry_run=True)
    assert dry.count == 1 and dry.bytes == len("junk") + len("/h/raw/entsoe/aaa.raw") + 64
    real = remove_quarantine_rows(store_engine, cutoff, dry_run=False)
    assert real.removals == dry.removals
    assert sorted(quarantine.read()["source"] + "/" + quarantine.read()["region"]) == ["entsoe/BE", "nrel/PJM"]
    assert remove_quarantine_rows(store_engine, cutoff, dry_run=False).count == 0


def test_vacuum_stores__gives_the_deleted_rows_space_back(store_engine):
    store = ForecastStore(store_engine)
    for hour in range(48):
        store.upsert_forecasts(_issue(AS_OF - pd.Timedelta(days=30, hours=hour), "1"))
    remove_hourly_forecasts(store_engine, AS_OF, dry_run=False)
    kept = store.count_forecasts()

    assert vacuum_stores({"the price store": store_engine}, dry_run=True).count == 0
    report = vacuum_stores({"the price store": store_engine}, dry_run=False)
    assert report.notes[0].startswith("vacuumed the price store: ")
    if store_engine.dialect.name == "sqlite":  # the file shrinks; PostgreSQL keeps the space for new rows
        assert report.bytes > 0
    assert store.count_forecasts() == kept == 24 + 47
