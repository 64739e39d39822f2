"""Freshness and continuity of an hourly series: how old its newest hour is, and where hours are missing."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class Freshness:
    region: str
    latest: pd.Timestamp | None  # newest stored hour, None when the region has no data
    as_of: pd.Timestamp
    max_staleness: pd.Timedelta

    @property
    def age(self) -> pd.Timedelta | None:
        return None if self.latest is None else self.as_of - self.latest

    @property
    def fresh(self) -> bool:
        return self.latest is not None and self.age <= self.max_staleness

    def problem(self) -> str | None:
        """Why the region is not fresh, in words a person can act on (None when it is)."""
        if self.latest is None:
            return f"{self.region}: no prices stored before {self.as_of}; load history (eopt load-history --region {self.region}) or run the ingestion DAG"
        if not self.fresh:
            hours = self.age / HOUR
            return (
                f"{self.region}: newest price is {self.latest} ({hours:.0f} h before {self.as_of}), "
                f"older than the allowed {self.max_staleness / HOUR:.0f} h; check the ingestion DAG for this region"
            )
        return None


@dataclass(frozen=True)
class Gap:
    first_missing: pd.Timestamp
    last_missing: pd.Timestamp

    @property
    def hours(self) -> int:
        return int((self.last_missing - self.first_missing) / HOUR) + 1


def find_gaps(index: pd.DatetimeIndex, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[Gap]:
    """Runs of missing hours in ``index`` between ``start`` and ``end`` (exclusive), oldest first."""
    present = pd.DatetimeIndex(index).sort_values().unique()
    if len(present) == 0:
        return []
    start = present[0] if start is None else pd.Timestamp(start)
    end = present[-1] + HOUR if end is None else pd.Timestamp(end)
    expected = pd.date_range(start, end, freq="h", inclusive="left")
    missing = expected.difference(present)
    if len(missing) == 0:
        return []
    breaks = (missing[1:] - missing[:-1]) != HOUR
    run_starts = [0, *(i + 1 for i in range(len(breaks)) if breaks[i])]
    run_ends = [*(i for i in range(len(breaks)) if breaks[i]), len(missing) - 1]
    return [Gap(missing[a], missing[b]) for a, b in zip(run_starts, run_ends, strict=False)]
