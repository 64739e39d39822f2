"""What every data-quality check returns, and the health score computed from a run's results.

A check never raises on bad data: a region with nothing to check gets ``skipped`` with the reason,
so the report can say what it could not check and why. Results travel between Airflow tasks as
plain dicts (``to_dict``/``from_dict``) and are stored one row each in ``quality_reports``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "critical", "skipped"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "critical", "skipped")
# How much a result counts towards the health score; skipped results are left out of it.
STATUS_SCORE: dict[str, float] = {"ok": 1.0, "warn": 0.5, "critical": 0.0}
# The number a Prometheus gauge shows for a status (alert rules compare against these).
STATUS_CODE: dict[str, int] = {"ok": 0, "warn": 1, "critical": 2, "skipped": -1}
ALL_REGIONS = "all"


@dataclass(frozen=True)
class CheckResult:
    name: str  # e.g. "completeness", "price_range", "api_health", "model_accuracy", "freshness", "drift"
    status: Status
    message: str  # one line a person can act on
    region: str = ALL_REGIONS  # or a region; provider checks put the provider in ``subject``
    subject: str | None = None  # what inside the region was checked (a source, a provider)
    value: float | None = None
    threshold: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name}: status {self.status!r} is not one of {', '.join(STATUSES)}")
        for what in ("value", "threshold"):
            number = getattr(self, what)
            if number is not None and not math.isfinite(float(number)):
                object.__setattr__(self, what, None)

    @property
    def key(self) -> str:
        """Unique within a run: the check, and its subject when it has one (``completeness:entsoe``)."""
        return self.name if self.subject is None else f"{self.name}:{self.subject}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**data)

    def line(self) -> str:
        where = self.region if self.subject is None else f"{self.region}/{self.subject}"
        return f"[{self.status.upper()}] {self.name} {where}: {self.message}"


def skipped(name: str, region: str, why: str, subject: str | None = None, **details: Any) -> CheckResult:
    return CheckResult(name, "skipped", why, region=region, subject=subject, details=details)


def health_score(results: Iterable[CheckResult]) -> float | None:
    """0-100: ok counts 1, warn 0.5, critical 0, averaged over the results that were checked.

    None when nothing could be checked (every result skipped): no number beats a made-up one."""
    scores = [STATUS_SCORE[r.status] for r in results if r.status != "skipped"]
    if not scores:
        return None
    return round(100.0 * sum(scores) / len(scores), 1)


def worst_status(results: Iterable[CheckResult]) -> Status:
    order = {"skipped": 0, "ok": 1, "warn": 2, "critical": 3}
    statuses = [r.status for r in results]
    return max(statuses, key=order.__getitem__) if statuses else "skipped"
