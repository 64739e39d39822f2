"""Time rules of the product: UTC normalisation, and where a market's local days begin.

Local days are computed from naive calendar dates, localized with explicit rules, never by
stepping a tz-aware timestamp through a day (which lands on the repeated or the skipped hour of
a daylight-saving change and raises, or drifts by an hour).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd


def utc(value: Any) -> pd.Timestamp:
    """``value`` as a tz-aware UTC ``pd.Timestamp``: a naive time is read as UTC, an aware one converted.

    Raises ``ValueError`` naming the value when it is not a time (``None``, ``NaT``, an unparsable string).
    """
    stamp = pd.Timestamp(value) if value is not None else pd.NaT
    if stamp is pd.NaT:
        raise ValueError(f"{value!r} is not a time; give an ISO 8601 time such as 2024-03-01T06:00:00Z")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def local_midnights(timezone: str, days: Iterable[date | pd.Timestamp | str]) -> pd.DatetimeIndex:
    """The UTC instants at which the local calendar ``days`` begin in ``timezone``.

    Each day is read as a calendar date (a time of day or a zone on it is ignored) and localized
    at 00:00 with two explicit rules: where the hour after midnight repeats (a change back from
    summer time at midnight, e.g. America/Havana), the day begins at the first midnight; where
    a change skips midnight (America/Sao_Paulo until 2018, America/Havana in March), the day
    begins at the first local time that exists.
    """
    dates = pd.DatetimeIndex(
        [pd.Timestamp(d).tz_localize(None) if pd.Timestamp(d).tzinfo else pd.Timestamp(d) for d in days]
    ).normalize()
    first_midnight = np.ones(len(dates), dtype=bool)  # where ambiguous, the earlier (summer-time) instant
    return dates.tz_localize(timezone, ambiguous=first_midnight, nonexistent="shift_forward").tz_convert("UTC")


def local_dates(timezone: str, start: Any, end: Any) -> pd.DatetimeIndex:
    """The naive calendar dates, in ``timezone``, from the local date of ``start`` to that of ``end`` (both included)."""
    first, last = utc(start).tz_convert(timezone), utc(end).tz_convert(timezone)
    return pd.date_range(first.date(), last.date(), freq="D")


def local_day_starts(timezone: str, moments: Any) -> pd.DatetimeIndex:
    """The UTC instant at which the local day holding each of ``moments`` (tz-aware) began in ``timezone``."""
    dates = pd.DatetimeIndex(moments).tz_convert(timezone).tz_localize(None).normalize()
    unique = dates.unique()
    return pd.DatetimeIndex(pd.Series(local_midnights(timezone, unique), index=unique).reindex(dates))


def local_day_after(timezone: str, moment: Any) -> pd.Timestamp:
    """The UTC instant at which the local day after the one holding ``moment`` begins."""
    local_date = utc(moment).tz_convert(timezone).date()
    return local_midnights(timezone, [pd.Timestamp(local_date) + pd.Timedelta(days=1)])[0]
