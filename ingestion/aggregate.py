"""From what the providers sent to hourly per-MWh rows, one row per (region, source, hour).

- prices per kWh (Flatpeak, NREL, OpenEI) are multiplied by 1000 to per MWh; other units are refused;
- sub-hourly rows (15-minute ENTSO-E/Flatpeak slots) become the hourly mean; an hour with only
  part of its slots is not averaged into a misleading value but rejected with the reason;
- exact duplicate rows are dropped; duplicates with different prices are rejected (which one
  is right cannot be known).

Rejected rows come back with a ``reason`` so the pipeline can quarantine them: nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingestion.sources import SOURCE_COLUMNS

TO_MWH = {"MWh": 1.0, "kWh": 1000.0}
RESOLUTION_MINUTES = {"PT15M": 15, "PT30M": 30, "PT60M": 60}


@dataclass(frozen=True)
class Aggregated:
    hourly: pd.DataFrame  # SOURCE_COLUMNS, unit MWh, resolution PT60M
    rejected: pd.DataFrame  # SOURCE_COLUMNS + reason


def _rejected(frame: pd.DataFrame, reason: str | pd.Series) -> pd.DataFrame:
    out = frame.loc[:, list(SOURCE_COLUMNS)].copy()
    out["reason"] = reason
    return out


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

    frame = frame.assign(
        price=frame["price"].astype(float) * frame["unit"].map(TO_MWH).astype(float),
        hour=frame["ts"].dt.floor("h"),
        slots_per_hour=60 // frame["resolution"].map(RESOLUTION_MINUTES),
    )
    groups = frame.groupby(["region", "source", "hour"], sort=True)
    hourly = groups.agg(
        price=("price", "mean"),
        currency=("currency", "first"),
        currencies=("currency", "nunique"),
        slots=("price", "size"),
        expected=("slots_per_hour", "max"),
    ).reset_index()
    complete = (hourly["slots"] == hourly["expected"]) & (hourly["currencies"] == 1)
    if (~complete).any():
        bad_hours = hourly.loc[~complete, ["region", "source", "hour", "slots", "expected", "currencies"]]
        merged = frame.merge(bad_hours, on=["region", "source", "hour"])
        reasons = np.where(
            merged["currencies"] > 1,
            "mixed currencies within one hour",
            "incomplete hour: " + merged["slots"].astype(str) + " of " + merged["expected"].astype(str) + " slots",
        )
        rejected.append(_rejected(merged, pd.Series(reasons, index=merged.index)))
    hourly = hourly[complete].rename(columns={"hour": "ts"})
    hourly = hourly.assign(unit="MWh", resolution="PT60M").loc[:, list(SOURCE_COLUMNS)].reset_index(drop=True)
    hourly["ts"] = hourly["ts"].astype("datetime64[us, UTC]")
    rejected_frame = (
        pd.concat(rejected, ignore_index=True) if rejected else _rejected(raw.iloc[0:0], pd.Series(dtype=str))
    )
    return Aggregated(hourly, rejected_frame)
