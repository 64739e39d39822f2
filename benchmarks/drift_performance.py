"""Forecast-performance drift: the CUSUM's false alarms on real champions' errors and its delay for errors x1.5.

The champions are the published LEAR and DNN ensembles of the four markets (``data/published``,
the day-ahead forecasts of Lago et al. 2021 over their two test years: real forecasts of
champion quality, 728 days each). For every served week (each 7 days from the first with a
full holdout before it) the reference is the champion's errors on the ``holdout`` days just before
it (``--holdout``: 56, the product's ``EOPT_TEST_DAYS``, and 14, the DAG tests'), and the
product's CUSUM (``drift.performance``) runs on the week's daily errors:

- clean: the week as it was; a week whose CUSUM reaches ``CRITICAL_H`` is a false alarm (the
  data-quality DAG runs daily on the last 7 days, so a week's peak is what it would have seen);
- ``x1.5 last 3 days``: the errors of the week's last three days multiplied by 1.5 (the issue's
  goal: flagged within three days); ``x1.5 from day 1``: the whole week, and the first day it alarms.

Each calibration of the reference is scored: ``absolute`` (a day's expected error is the
holdout's mean, sigma0 the spread of its daily MAE: the check before this benchmark) and
``relative`` (a day's expected error is rho0 x the weekly seasonal naive's error that day,
sigma0 the spread of the holdout's daily surplus over it), each with and without the cap on one
day's standardised surplus (``drift.performance.CAP``). The published files list local clock
hours; a day here is a local day (24 rows), which is all the CUSUM needs.

    python -m benchmarks.drift_performance
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.accuracy import PUBLISHED_DIR, PUBLISHED_ENSEMBLES, REAL_PRICE, read_published_forecasts
from benchmarks.machine import describe_machine, write_results

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "drift_performance"
MARKETS = ("NP", "PJM", "BE", "FR")
HOLDOUTS = (56, 14)
WEEK_DAYS = 7
GROWTH = 1.5


def errors_of(market: str) -> dict[str, tuple[pd.Series, pd.Series]]:
    """Per published ensemble: its absolute errors and the weekly seasonal naive's, on a contiguous
    hourly index (local clock hours labelled as UTC: only the grouping into days matters)."""
    frame = read_published_forecasts(PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    hours = pd.date_range("2000-01-03", periods=len(frame), freq="h", tz="UTC")
    real = pd.Series(frame[REAL_PRICE].to_numpy(float), index=hours)
    naive = (real - real.shift(168)).abs()
    return {
        name: ((pd.Series(frame[column].to_numpy(float), index=hours) - real).abs(), naive)
        for name, column in PUBLISHED_ENSEMBLES.items()
    }


def verdicts(errors: pd.Series, naive: pd.Series, holdout_days: int, relative: bool, cap: float) -> dict[str, list]:
    """Every served week of one champion: its clean CUSUM peak, the peak with x1.5 on its last 3 days,
    and the first alarm day (1-based, None without) with x1.5 from day 1."""
    from drift import performance

    out: dict[str, list] = {"clean": [], "last3": [], "delay": [], "growth": []}
    days = len(errors) // 24
    saved = performance.CAP
    performance.CAP = cap
    try:
        for first in range(holdout_days + 7, days - WEEK_DAYS + 1, WEEK_DAYS):  # +7: the naive needs a week
            hold = slice(24 * (first - holdout_days), 24 * first)
            week = slice(24 * first, 24 * (first + WEEK_DAYS))
            reference = performance.reference_of(errors.iloc[hold], "holdout", naive.iloc[hold] if relative else None)
            if not reference.daily_std > 0:
                continue
            delta = performance.ERROR_GROWTH * reference.mean / reference.daily_std
            k = delta / 2
            served = errors.iloc[week]
            worse_last3 = served * np.r_[np.ones(24 * 4), np.full(24 * 3, GROWTH)]
            runs = {}
            for label, values in (("clean", served), ("last3", worse_last3), ("delay", served * GROWTH)):
                x = performance.standardised_days(values, reference, naive.iloc[week])["x"].to_numpy()
                runs[label] = performance.cusum(x, k, performance.CRITICAL_H)
            out["clean"].append(float(runs["clean"].path.max()))
            out["last3"].append(float(runs["last3"].path[-1]))
            alarm = runs["delay"].first_alarm
            out["delay"].append(None if alarm is None else alarm + 1)
            out["growth"].append(float(served.mean() / reference.mean))
    finally:
        performance.CAP = saved
    return out


def summarise(v: dict[str, list]) -> dict[str, Any]:
    from drift.performance import CRITICAL_H, WARN_H

    clean, last3 = np.asarray(v["clean"]), np.asarray(v["last3"])
    delays = [d for d in v["delay"] if d is not None]
    return {
        "weeks": len(clean),
        "false_alarm_pct": round(100 * float((clean >= CRITICAL_H).mean()), 1),
        "warn_or_critical_pct": round(100 * float((clean >= WARN_H).mean()), 1),
        "x1.5_last_3_days_flagged_pct": round(100 * float((last3 >= CRITICAL_H).mean()), 1),
        "x1.5_from_day_1_flagged_within_3_days_pct": round(100 * sum(d <= 3 for d in delays) / len(clean), 1),
        "x1.5_from_day_1_flagged_within_7_days_pct": round(100 * len(delays) / len(clean), 1),
        "x1.5_from_day_1_median_delay_days": float(np.median(delays)) if delays else None,
        "clean_peaks": [round(x, 3) for x in clean],
        "last3_ends": [round(x, 3) for x in last3],
    }


def curve(cells: list[dict[str, Any]]) -> dict[str, list[float]]:
    """As the critical threshold h moves: % of clean weeks whose CUSUM peak reaches it, % of weeks with
    x1.5 on their last 3 days whose CUSUM ends at or above it."""
    clean = np.concatenate([c["clean_peaks"] for c in cells])
    last3 = np.concatenate([c["last3_ends"] for c in cells])
    grid = [float(h) for h in np.arange(1.5, 10.01, 0.5)]
    return {
        "h": grid,
        "false_alarm_pct": [round(100 * float((clean >= h).mean()), 1) for h in grid],
        "x1.5_last_3_days_pct": [round(100 * float((last3 >= h).mean()), 1) for h in grid],
    }


def main() -> None:
    from drift.performance import CAP, CRITICAL_H

    started = time.perf_counter()
    variants = {
        "absolute": (False, math.inf),
        "absolute, capped": (False, CAP),
        "relative to the naive": (True, math.inf),
        "relative to the naive, capped (product)": (True, CAP),
    }
    results: dict[str, Any] = {}
    for market in MARKETS:
        for champion, (errors, naive) in errors_of(market).items():
            for holdout in HOLDOUTS:
                for variant, (relative, cap) in variants.items():
                    key = f"{market} {champion} holdout {holdout} d"
                    results.setdefault(variant, {})[key] = summarise(verdicts(errors, naive, holdout, relative, cap))
    pooled: dict[str, dict[str, Any]] = {}
    for variant, cells in results.items():
        for holdout in HOLDOUTS:
            mine = [c for k, c in cells.items() if k.endswith(f"holdout {holdout} d")]
            weeks = sum(c["weeks"] for c in mine)
            pooled.setdefault(variant, {})[f"holdout {holdout} d"] = {
                "weeks": weeks,
                "curve": curve(mine),
                **{
                    field: round(sum(c[field] * c["weeks"] for c in mine) / weeks, 1)
                    for field in (
                        "false_alarm_pct",
                        "warn_or_critical_pct",
                        "x1.5_last_3_days_flagged_pct",
                        "x1.5_from_day_1_flagged_within_3_days_pct",
                        "x1.5_from_day_1_flagged_within_7_days_pct",
                    )
                },
            }
    wall = time.perf_counter() - started
    lines = [
        "| calibration | holdout | weeks | clean weeks critical | warn or critical | x1.5 on the last 3 days flagged "
        "| x1.5 from day 1 flagged within 3 days | within 7 days |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, by_holdout in pooled.items():
        for holdout, c in by_holdout.items():
            lines.append(
                f"| {variant} | {holdout} | {c['weeks']} | {c['false_alarm_pct']:g}% | {c['warn_or_critical_pct']:g}% "
                f"| {c['x1.5_last_3_days_flagged_pct']:g}% | {c['x1.5_from_day_1_flagged_within_3_days_pct']:g}% "
                f"| {c['x1.5_from_day_1_flagged_within_7_days_pct']:g}% |"
            )
    product = pooled["relative to the naive, capped (product)"]
    lines += ["", "Operating curve of the product's calibration (pooled), as the critical threshold h moves:", ""]
    grid = product[f"holdout {HOLDOUTS[0]} d"]["curve"]["h"]
    lines += [
        "| h | " + " | ".join(f"{h:g}" for h in grid) + " |",
        "|---|" + "---|" * len(grid),
    ]
    for holdout in HOLDOUTS:
        c = product[f"holdout {holdout} d"]["curve"]
        lines.append(
            f"| clean weeks critical, holdout {holdout} d | "
            + " | ".join(f"{v:g}%" for v in c["false_alarm_pct"])
            + " |"
        )
        lines.append(
            f"| x1.5 last 3 days flagged, holdout {holdout} d | "
            + " | ".join(f"{v:g}%" for v in c["x1.5_last_3_days_pct"])
            + " |"
        )
    lines += [
        "",
        f"Champions: the published LEAR and DNN ensembles of NP, PJM, BE and FR (two test years each); critical "
        f"at CUSUM {CRITICAL_H:g}, a day's standardised surplus capped at {CAP:g} where capped. Per market and "
        f"champion: drift_performance.json. Whole run {wall:.0f} s.",
    ]
    write_results(
        RESULTS,
        NAME,
        {
            "machine": describe_machine(),
            "seeds": None,
            "wall_seconds": round(wall, 1),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "settings": {"holdouts_days": list(HOLDOUTS), "growth": GROWTH, "critical_h": CRITICAL_H, "cap": CAP},
            "pooled": pooled,
            "per_market": results,
        },
        "Forecast-performance drift: false alarms on real champions' errors and detection of errors x1.5",
        lines,
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
