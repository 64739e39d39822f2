"""From what the providers sent to hourly per-MWh rows, one row per (region, source, hour).

- prices per kWh (Flatpeak, NREL, OpenEI) are multiplied by 1000 to per MWh; other units are refused;
- sub-hourly rows (15-minute ENTSO-E/Flatpeak slots) become the hourly mean; an hour with only
  part of its slots is not averaged into a misleading value but rejected with the reason;
- exact duplicate rows are dropped; duplicates with different prices are rejected (which one
  is right cannot be known).

Rejected rows come back with a ``reason`` so the pipeline can quarantine them: nothing is lost.
Exogenous forecasts (MW of load, wind and solar) are averaged to hours by the same rules
(``aggregate_exogenous_hourly``), per (region, source, variable, hour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingestion.sources import EXOGENOUS_SOURCE_COLUMNS, SOURCE_COLUMNS

TO_MWH = {"MWh": 1.0, "kWh": 1000.0}
RESOLUTION_MINUTES = {"PT15M": 15, "PT30M": 30, "PT60M": 60}


@dataclass(frozen=True)
class Aggregated:
    hourly: pd.DataFrame  # SOURCE_COLUMNS, unit MWh, resolution PT60M (or EXOGENOUS_SOURCE_COLUMNS)
    rejected: pd.DataFrame  # the same columns + reason


def _rejected(frame: pd.DataFrame, reason: str | pd.Series, columns: tuple[str, ...] = SOURCE_COLUMNS) -> pd.DataFrame:
    out = frame.loc[:, list(columns)].copy()
    out["reason"] = reason
    return out


def aggregate_exogenous_hourly(raw: pd.DataFrame) -> Aggregated:
    """Exogenous rows (``EXOGENOUS_SOURCE_COLUMNS``) -> one hourly mean per (region, source, variable,
    hour); an hour with only part of its slots, or two different values for one slot, is rejected."""
    columns = EXOGENOUS_SOURCE_COLUMNS
    if raw.empty:
        return Aggregated(raw.loc[:, list(columns)].copy(), _rejected(raw, pd.Series(dtype=str), columns))
    frame = raw.loc[:, list(columns)].copy()
    rejected = []
    unknown = ~frame["resolution"].isin(list(RESOLUTION_MINUTES))
    if unknown.any():
        rejected.append(
            _rejected(frame[unknown], "unknown resolution " + frame.loc[unknown, "resolution"].astype(str), columns)
        )
    frame = frame[~unknown]
    key = ["region", "source", "variable", "ts"]
    frame = frame[~frame.duplicated([*key, "value"], keep="first")]
    conflicting = frame.duplicated(key, keep=False)
    if conflicting.any():
        rejected.append(
            _rejected(frame[conflicting], "conflicting duplicate values for the same source and time", columns)
        )
        frame = frame[~conflicting]
    hourly, incomplete = _hourly_means(frame, ["region", "source", "variable"], "value", {})
    rejected.extend(_rejected(part, part["reason"], columns) for part in incomplete)
    hourly = hourly.assign(resolution="PT60M").loc[:, list(columns)].reset_index(drop=True)
    hourly["ts"] = hourly["ts"].astype("datetime64[us, UTC]")
    rejected_frame = (
        pd.concat(rejected, ignore_index=True) if rejected else _rejected(raw.iloc[0:0], pd.Series(dtype=str), columns)
    )
    return Aggregated(hourly, rejected_frame)


def _hourly_means(
    frame: pd.DataFrame, keys: list[str], value: str, extra: dict[str, tuple[str, str]]
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The mean of ``value`` per ``keys`` and UTC hour where every slot of the hour is present, and
    the rows of the other hours with an ``incomplete hour: n of m slots`` reason. ``extra``: more
    named aggregations (``currencies`` makes an hour of mixed currencies incomplete too)."""
    frame = frame.assign(
        hour=frame["ts"].dt.floor("h"), slots_per_hour=60 // frame["resolution"].map(RESOLUTION_MINUTES)
    )
    groups = frame.groupby([*keys, "hour"], sort=True)
    hourly = groups.agg(
        **{value: (value, "mean")}, **extra, slots=(value, "size"), expected=("slots_per_hour", "max")
    ).reset_index()
    complete = hourly["slots"] == hourly["expected"]
    if "currencies" in hourly.columns:
        complete &= hourly["currencies"] == 1
    incomplete = []
    if (~complete).any():
        counts = ["slots", "expected", *(["currencies"] if "currencies" in hourly.columns else [])]
        merged = frame.merge(hourly.loc[~complete, [*keys, "hour", *counts]], on=[*keys, "hour"])
        mixed = merged["currencies"] > 1 if "currencies" in merged.columns else pd.Series(False, index=merged.index)
        reasons = np.where(
            mixed,
            "mixed currencies within one hour",
            "incomplete hour: " + merged["slots"].astype(str) + " of " + merged["expected"].astype(str) + " slots",
        )
        incomplete.append(merged.assign(reason=pd.Series(reasons, index=merged.index)))
    return hourly[complete].rename(columns={"hour": "ts"}), incomplete


def aggregate_hourly(raw: pd.DataFrame) -> Aggregated:
    if raw.empty:
        return Aggregated(raw.loc[:, list(SOURCE_COLUMNS)].copy(), _rejected(raw, pd.Series(dtype=str)))
    frame = raw.loc[:, list(SOURCE_COLUMNS)].copy()
    rejected = []

    unknown_unit = ~frame["unit"].isin(list(TO_MWH))
    unknown_resolution = ~frame["resolution"].isin(list(RESOLUTION_MINUTES))
    if unknown_unit.any():
        rejected.append(
            _rejected(
                frame[unknown_unit],
                "unknown price unit "
                + frame.loc[unknown_unit, "unit"].astype(str)
                + f"; expected one of {', '.join(TO_MWH)}",
            )
        )
    if (unknown_resolution & ~unknown_unit).any():
        bad = unknown_resolution & ~unknown_unit
        rejected.append(_rejected(frame[bad], "unknown resolution " + frame.loc[bad, "resolution"].astype(str)))
    frame = frame[~unknown_unit & ~unknown_resolution]

    key = ["region", "source", "ts"]
    exact = frame.duplicated([*key, "price"], keep="first")
    frame = frame[~exact]
    conflicting = frame.duplicated(key, keep=False)
    if conflicting.any():
        rejected.append(_rejected(frame[conflicting], "conflicting duplicate prices for the same source and time"))
        frame = frame[~conflicting]

    frame = frame.assign(price=frame["price"].astype(float) * frame["unit"].map(TO_MWH).astype(float))
    hourly, incomplete = _hourly_means(
        frame,
        ["region", "source"],
        "price",
        {"currency": ("currency", "first"), "currencies": ("currency", "nunique")},
    )
    rejected.extend(_rejected(part, part["reason"]) for part in incomplete)
    hourly = hourly.assign(unit="MWh", resolution="PT60M").loc[:, list(SOURCE_COLUMNS)].reset_index(drop=True)
    hourly["ts"] = hourly["ts"].astype("datetime64[us, UTC]")
    rejected_frame = (
        pd.concat(rejected, ignore_index=True) if rejected else _rejected(raw.iloc[0:0], pd.Series(dtype=str))
    )
    return Aggregated(hourly, rejected_frame)
