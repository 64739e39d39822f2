"""The monthly connection test: every provider called once, its result and latency in ``api_health``.

Each configured source (``EOPT_INGESTION_SOURCES``) is called with its own configuration (inside
Airflow: ``PricingAPIHook``'s, so the connection's host and credentials are what is tested) at the
cheapest request its client makes: the prices of its first configured region for the one hour
before the check, in one attempt (no retries: a provider that needs one is reported). It goes
through ``ingestion.pipeline.fetch_source``, the ingestion's own provider boundary, so every HTTP
call writes its ``api_health`` row (status, HTTP status, latency) exactly as ingestion's do, and
no failure escapes: a refused key, an unreachable host or a malformed answer is a failed check
with its reason. A source that serves none of the configured regions (``EOPT_REGIONS``, the
connection's extra ``regions``) is not called, as ingestion does not call it: ``not called``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from core.settings import Settings
from ingestion.http import ProviderConfig
from ingestion.pipeline import fetch_source
from storage.health import ApiCallRecord, ApiHealthStore


@dataclass(frozen=True)
class ConnectionCheck:
    """One provider's check: ``status`` ``ok`` when every call answered and nothing failed, ``failed``, or
    ``not called`` (no configured region to ask for)."""

    source: str
    connection_id: str
    region: str | None
    status: str
    calls: int
    latency_ms: float
    http_status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        """Nothing failed (a source not called did not fail)."""
        return self.status != "failed"

    def line(self) -> str:
        outcome = {"ok": "ok", "failed": f"FAILED: {self.error}"}.get(self.status, f"{self.status}: {self.error}")
        status = f", HTTP {self.http_status}" if self.http_status is not None else ""
        return (
            f"{self.connection_id} ({self.source}, {self.region or 'no region'}): {outcome} "
            f"({self.calls} call(s), {self.latency_ms:.0f} ms{status})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


class _CollectingHealth(ApiHealthStore):
    """``api_health`` rows written as usual, and kept for the check's own result."""

    def __init__(self, health: ApiHealthStore) -> None:
        super().__init__(health.engine)
        self.calls: list[ApiCallRecord] = []

    def record(self, calls: Iterable[ApiCallRecord]) -> int:
        calls = list(calls)
        self.calls += calls
        return super().record(calls)


def check_connection(
    config: ProviderConfig, settings: Settings, health: ApiHealthStore, as_of: pd.Timestamp
) -> ConnectionCheck:
    """One call to ``config``'s provider: its first region's prices for the hour before ``as_of``."""
    region = next(iter(config.regions), None)
    recorded = _CollectingHealth(health)
    if region is None:
        reason = "it serves none of the configured regions (EOPT_REGIONS, the connection's extra regions)"
        return ConnectionCheck(config.source, config.connection_id, None, "not called", 0, 0.0, None, reason)
    once = replace(config, regions={region: config.regions[region]}, retry=replace(config.retry, max_attempts=1))
    end = pd.Timestamp(as_of).tz_convert("UTC").floor("h")
    outcome = fetch_source(once, settings, end - pd.Timedelta(hours=1), end, health=recorded)
    errors = [c for c in recorded.calls if c.status == "error"]
    failures = list(outcome.failures) or [c.error or "error" for c in errors]
    statuses = [c.http_status for c in recorded.calls if c.http_status is not None]
    return ConnectionCheck(
        source=config.source,
        connection_id=config.connection_id,
        region=region,
        status="failed" if failures else "ok",
        calls=len(recorded.calls),
        latency_ms=round(sum(c.latency_ms for c in recorded.calls), 2),
        http_status=statuses[-1] if statuses else None,
        error="; ".join(failures) if failures else None,
    )


def check_connections(
    configs: Mapping[str, ProviderConfig], settings: Settings, health: ApiHealthStore, as_of: pd.Timestamp
) -> list[ConnectionCheck]:
    """``check_connection`` of each source in ``configs``, in order; one failing never stops the others."""
    return [check_connection(config, settings, health, as_of) for config in configs.values()]
