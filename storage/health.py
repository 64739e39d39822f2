"""API-call health rows and the price quarantine: what went wrong, kept for operators."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.redaction import redact
from storage.schema import api_health, price_quarantine


class ApiCallRecord(Protocol):
    source: str
    endpoint: str
    status: str
    http_status: int | None
    latency_ms: float
    records: int
    error: str | None
    called_at: datetime


class ApiHealthStore:
    """One row per call to a provider; registered credentials are masked in what is stored."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, calls: Iterable[ApiCallRecord]) -> int:
        rows = [
            {
                "source": c.source,
                "endpoint": redact(c.endpoint)[:500],
                "status": c.status,
                "http_status": c.http_status,
                "latency_ms": c.latency_ms,
                "records": c.records,
                "error": (c.error or None) and redact(c.error)[:2000],
                "called_at": c.called_at,
            }
            for c in calls
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(api_health.insert(), rows)
        return len(rows)

    def read(self, since: datetime | None = None, source: str | None = None) -> pd.DataFrame:
        t = api_health
        query = sa.select(
            t.c.source, t.c.endpoint, t.c.status, t.c.http_status, t.c.latency_ms, t.c.records, t.c.error, t.c.called_at
        ).order_by(t.c.called_at, t.c.id)
        if since is not None:
            query = query.where(t.c.called_at >= since)
        if source is not None:
            query = query.where(t.c.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(
            rows, columns=["source", "endpoint", "status", "http_status", "latency_ms", "records", "error", "called_at"]
        )
        frame["called_at"] = pd.to_datetime(frame["called_at"], utc=True)
        return frame


@dataclass(frozen=True)
class QuarantinedRow:
    source: str
    reason: str
    region: str | None = None
    ts: datetime | None = None
    raw_value: str | None = None
    payload_ref: str | None = None

    def fingerprint(self) -> str:
        """What makes two quarantined rows the same one. An archived payload is named by its content
        (``storage.payload_archive``), so the same payload from the same source and region is the
        same row whatever the parser said about it this time."""
        ts = self.ts.isoformat() if self.ts is not None else ""
        if self.payload_ref:
            parts = ["payload", self.source, self.region or "", ts, self.payload_ref]
        else:
            parts = [self.source, self.region or "", ts, self.reason, self.raw_value or "", ""]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


QUARANTINE_COLUMNS = (
    "source",
    "region",
    "ts",
    "raw_value",
    "reason",
    "payload_ref",
    "quarantined_at",
    "repeat_count",
    "last_seen_at",
)


class QuarantineStore:
    """Rejected rows and payloads with their reason (registered credentials masked in the reason and
    the raw value); the same one quarantined again adds no row but counts a repeat
    (``repeat_count``, ``last_seen_at``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, rows: Iterable[QuarantinedRow]) -> int:
        """Quarantine rows: new ones are inserted, known ones count a repeat; returns how many were new.

        One statement per call (``INSERT ... ON CONFLICT (fingerprint) DO UPDATE``), so two
        processes quarantining the same row at once both count and neither fails.
        """
        now = datetime.now(UTC)
        masked = (
            replace(r, reason=redact(r.reason), raw_value=None if r.raw_value is None else redact(r.raw_value))
            for r in rows
        )
        records = {r.fingerprint(): r for r in masked}
        if not records:
            return 0
        t = price_quarantine
        values = [
            {
                "fingerprint": fp,
                "region": r.region,
                "source": r.source,
                "ts": r.ts,
                "raw_value": r.raw_value,
                "reason": r.reason,
                "payload_ref": r.payload_ref,
                "quarantined_at": now,
                "repeat_count": 0,
                "last_seen_at": now,
            }
            for fp, r in records.items()
        ]
        insert = sqlite_insert(t) if self.engine.dialect.name == "sqlite" else postgresql_insert(t)
        upsert = insert.on_conflict_do_update(
            index_elements=[t.c.fingerprint],
            set_={"repeat_count": t.c.repeat_count + 1, "last_seen_at": insert.excluded.last_seen_at},
        )
        with self.engine.begin() as conn:
            existing = set(conn.execute(sa.select(t.c.fingerprint).where(t.c.fingerprint.in_(list(records)))).scalars())
            conn.execute(upsert, values)
        return len(records) - len(existing)

    def read(self, source: str | None = None) -> pd.DataFrame:
        t = price_quarantine
        query = sa.select(*(t.c[name] for name in QUARANTINE_COLUMNS)).order_by(t.c.id)
        if source is not None:
            query = query.where(t.c.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(rows, columns=list(QUARANTINE_COLUMNS))
        for column in ("ts", "quarantined_at", "last_seen_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["repeat_count"] = frame["repeat_count"].astype("int64")
        return frame
