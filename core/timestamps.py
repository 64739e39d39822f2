"""UTC normalisation: the product's one rule for turning a user's or Airflow's time into a UTC timestamp."""

from __future__ import annotations

from typing import Any

import pandas as pd


def utc(value: Any) -> pd.Timestamp:
    """``value`` as a tz-aware UTC ``pd.Timestamp``: a naive time is read as UTC, an aware one converted.

    Raises ``ValueError`` naming the value when it is not a time (``None``, ``NaT``, an unparsable string).
    """
    stamp = pd.Timestamp(value) if value is not None else pd.NaT
    if stamp is pd.NaT:
        raise ValueError(f"{value!r} is not a time; give an ISO 8601 time such as 2024-03-01T06:00:00Z")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
