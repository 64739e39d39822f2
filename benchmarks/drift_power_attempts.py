"""Attempts at drift statistics that detect more within one week, each against the product's as it was.

The product's price level, price scale and exogenous level rules (``drift.rules``) miss the goal
(90% of weeks caught within one week at most 5% of clean weeks critical) for price x1.3,
deviations from the week's mean x2 and one exogenous series +20%, because the statistics move
with the market from week to week. Each attempt is another statistic of the same family, measured
on the same weeks as ``benchmarks/drift_power.py`` (every weekly ``as_of`` of the four markets with
two years before it, 52 history weeks for the null spread), and each is given the same share of
clean weeks: its critical threshold is the upper quantile of its clean scores pooled over the four
markets at the family's tail share in the product (``TAIL``: what ``choose_thresholds`` chose for
the product before the attempts). A cell is the share of weeks with the change whose score is at
or above that threshold; beside it, the share of clean weeks.

The changes are applied analytically: every statistic here is a log of a quantity that the change
multiplies by an exact factor (a median, a trimmed mean, a spread of deviations from the week's
mean, a weekly mean of a series), so the changed week's statistic is the clean one plus the log of
the factor; ``benchmarks/drift_power.py`` measures the adopted rules on the changed frames.

Level (price x1.3), tail 1.5%: the log median against the week before, net of a regression of
the history's week-over-week changes on the exogenous series' changes (the product before: their
log weekly means; attempts: their log weekly medians, a 20% trimmed mean for the price, against
the mean of the 4 weeks before with no exogenous series, hour-of-week matched log ratios, an
hourly regression of price on the exogenous series fitted on the N weeks before (with local
hour-of-day terms) whose residual level is scored against the history's, and two weeks changed).

Scale (deviations from the week's mean x2), tail 0.75%: the break (``drift.rules.break_of``) of
the log of a spread against the mean of the 4 weeks before: the median hour-to-hour change (the
product before), the mean and median absolute deviation, the median deviation from the local
day's mean, the median change from the same hour a day before, the daily profile's amplitude,
these over the week's mean or median price, the spread of the deviations over the spread of the
deviations an hourly regression on the exogenous series predicts, and ``relative_spread``:
``0.5 log median step + 0.5 log median within-day deviation - ALPHA log mean price`` (also against
the 2 or 8 weeks before), and the slope of the price on each exogenous series within the week.

Exogenous level (one series +20%), tail 1%: the larger break of the series' log weekly mean and
of its log ratio to the other series, the ratio's break put on the series whose own break is
larger (the product); against the week before instead of the mean of 4, against whichever of the
two has the steadier history, and the ratio's break credited to the changed series (the ceiling
of a better attribution).

    python -m benchmarks.drift_power_attempts [--regions NP,PJM,BE,FR]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.drift_calibration import weekly_as_of
from benchmarks.machine import describe_machine, write_results

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "drift_power_attempts"
WEEK = pd.Timedelta(days=7)
HOURS = 168
HISTORY = 52  # drift.rules.HISTORY_WEEKS
RECENT = 4  # drift.rules.RECENT_WEEKS
MIN_CHANGES = 12  # drift.rules.MIN_WEEKS
TAIL = {"price_level": 0.015, "price_scale": 0.0075, "exogenous_level": 0.01}
SHIFT = {"price_level": math.log(1.3), "price_scale": math.log(2.0), "exogenous_level": math.log(1.2)}
GOAL = {"price_level": "price x1.3", "price_scale": "volatility x2", "exogenous_level": "one series +20%"}
Scores = np.ndarray  # (weeks, 2): the clean score and the changed week's score


class Market:
    """A market's hours as whole weeks ending at its last ``as_of``: price ``P`` and exogenous ``X``
    (series, week, hour), local day and hour of each hour, and the weeks ``benchmarks.drift_power`` measures."""

    def __init__(self, region: str) -> None:
        from core.markets import get_market, load_market
        from core.settings import Settings
        from drift import reports

        settings = Settings.from_env({"EOPT_HOME": "/nonexistent-eopt-home"})
        history = load_market(region, settings.stores.market_data_dir)
        exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
        frame = reports.hourly_drift_columns(history.prices.set_index("ts")["price"], exogenous)
        self.exogenous = [str(c) for c in exogenous.columns]
        dates = weekly_as_of(
            frame.index[0], frame.index[-1] + pd.Timedelta(hours=1), 7, settings.training.window_days, 1
        )
        end = dates[-1]
        weeks = int((end - frame.index[0]) // WEEK)
        hours = pd.date_range(end - weeks * WEEK, end, freq="h", inclusive="left")
        frame = frame.reindex(hours)
        self.P = frame["price"].to_numpy(float).reshape(weeks, HOURS)
        self.X = np.stack([frame[c].to_numpy(float).reshape(weeks, HOURS) for c in self.exogenous])
        local = hours.tz_convert(get_market(region).timezone)
        self.day = np.asarray((local.normalize().tz_localize(None) - pd.Timestamp("2000-01-01")).days).reshape(
            weeks, HOURS
        )
        self.hour = np.asarray(local.hour).reshape(weeks, HOURS)
        self.eval = [weeks - 1 - int((end - d) // WEEK) for d in dates]
        self.weeks = weeks


def _log(a: Any) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    with np.errstate(all="ignore"):
        return np.where(a > 0, np.log(np.where(a > 0, a, 1.0)), np.nan)


def weekly(values: np.ndarray, statistic: Callable[[np.ndarray], float]) -> np.ndarray:
    return np.array([statistic(v[np.isfinite(v)]) if np.isfinite(v).sum() >= 24 else np.nan for v in values])


def _within_day(m: Market) -> np.ndarray:
    out = np.full(m.weeks, np.nan)
    for w in range(m.weeks):
        known = np.isfinite(m.P[w])
        s = pd.Series(m.P[w][known])
        out[w] = float(np.median(np.abs(s - s.groupby(m.day[w][known]).transform("mean"))))
    return out


def _profile_amplitude(m: Market) -> np.ndarray:
    out = np.full(m.weeks, np.nan)
    for w in range(m.weeks):
        known = np.isfinite(m.P[w])
        s = pd.Series(m.P[w][known])
        deviation = s - s.groupby(m.day[w][known]).transform("mean")
        out[w] = float(deviation.groupby(m.hour[w][known]).mean().std())
    return out


def _lag24(m: Market) -> np.ndarray:
    change = np.abs(m.P[:, 24:] - m.P[:, :-24])
    return weekly(change, np.median)


def _slope(m: Market, series: int) -> np.ndarray:
    """Per week: |least-squares slope of the hourly price on one exogenous series| (the merit order's)."""
    out = np.full(m.weeks, np.nan)
    for w in range(m.weeks):
        p, x = m.P[w], m.X[series][w]
        known = np.isfinite(p) & np.isfinite(x)
        if known.sum() >= 24:
            cov = np.cov(p[known], x[known])
            out[w] = abs(cov[0, 1] / cov[1, 1]) if cov[1, 1] > 0 else np.nan
    return out


def _median_step(v: np.ndarray) -> float:
    return float(np.median(np.abs(np.diff(v))))


def _trim(v: np.ndarray) -> float:
    return float(stats.trim_mean(v, 0.2))


# -- scores -----------------------------------------------------------------------------------------


def break_scores(m: Market, s: np.ndarray, shift: float, recent: int = RECENT, weeks: int = 1) -> Scores:
    """``drift.rules.break_of`` of the weekly log statistic ``s`` for every measured week: clean, and
    with ``shift`` added to the current week (``weeks``=2: the mean of the current week and the next,
    both changed, against the ``recent`` weeks before the first)."""
    rows = []
    for w in m.eval:
        if w + weeks > m.weeks:
            continue

        def change(v: int) -> float:
            return float(np.mean(s[v : v + weeks]) - np.mean(s[v - recent : v]))

        null = np.array([change(v) for v in range(w - HISTORY + recent, w - weeks + 1)])
        null = null[np.isfinite(null)]
        now = change(w)
        if len(null) < MIN_CHANGES or not math.isfinite(now):
            rows.append((math.nan, math.nan))
            continue
        spread = float(np.std(null, ddof=1))
        rows.append((abs(now) / spread, abs(now + shift) / spread))
    return np.array(rows)


def residual_scores(m: Market, s: np.ndarray, shift: float) -> Scores:
    """A weekly residual ``s`` (the week against a prediction from the weeks before it) over the
    standard deviation of the history weeks' residuals, after their mean."""
    rows = []
    for w in m.eval:
        past = s[w - HISTORY : w]
        past = past[np.isfinite(past)]
        if len(past) < MIN_CHANGES or not math.isfinite(s[w]):
            rows.append((math.nan, math.nan))
            continue
        mean, spread = float(past.mean()), float(past.std(ddof=1))
        rows.append((abs(s[w] - mean) / spread, abs(s[w] + shift - mean) / spread))
    return np.array(rows)


def regression_scores(m: Market, level: np.ndarray, drivers: list[np.ndarray], shift: float, weeks: int = 1) -> Scores:
    """The product's price level rule: the change of ``level`` against the week before (``weeks``=2:
    the mean of this week and the next) less what the same changes of ``drivers`` explain, fitted
    over the history, over the residuals' standard deviation."""

    def change(a: np.ndarray, v: int) -> float:
        return float(np.mean(a[v : v + weeks]) - a[v - 1])

    rows = []
    for w in m.eval:
        if w + weeks > m.weeks:
            continue
        past = range(w - HISTORY + 1, w - weeks + 1)
        y = np.array([change(level, v) for v in past])
        x = np.column_stack([np.ones(len(y)), *([change(d, v) for v in past] for d in drivers)])
        known = np.isfinite(y) & np.isfinite(x).all(axis=1)
        beta, *_ = np.linalg.lstsq(x[known], y[known], rcond=None)
        residuals = y[known] - x[known] @ beta
        spread = float(np.sqrt(np.sum(residuals**2) / (known.sum() - x.shape[1])))
        now = change(level, w) - float(np.r_[1.0, [change(d, w) for d in drivers]] @ beta)
        rows.append((abs(now) / spread, abs(now + shift) / spread))
    return np.array(rows)


def hourly_regression(m: Market, fitted_weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per week: price regressed per hour on the exogenous series and local hour-of-day terms over
    the ``fitted_weeks`` weeks before; the log ratio of the week's median price to the median of its
    prediction (a level residual), and of the mean absolute deviation from the week's mean of the
    price to that of the prediction (a scale residual)."""
    level, scale = np.full(m.weeks, np.nan), np.full(m.weeks, np.nan)

    def design(weeks: slice) -> np.ndarray:
        hours = m.hour[weeks].ravel()
        return np.column_stack(
            [np.ones(hours.size), *(x[weeks].ravel() for x in m.X), *((hours == k).astype(float) for k in range(1, 24))]
        )

    for w in range(fitted_weeks, m.weeks):
        a, y = design(slice(w - fitted_weeks, w)), m.P[w - fitted_weeks : w].ravel()
        known = np.isfinite(y) & np.isfinite(a).all(axis=1)
        now, price = design(slice(w, w + 1)), m.P[w]
        known_now = np.isfinite(price) & np.isfinite(now).all(axis=1)
        if known.sum() < HOURS or known_now.sum() < 24:
            continue
        beta, *_ = np.linalg.lstsq(a[known], y[known], rcond=None)
        predicted, price = now[known_now] @ beta, price[known_now]
        level[w] = _log(np.median(price)) - _log(np.median(predicted))
        spread = np.mean(np.abs(predicted - predicted.mean()))
        scale[w] = _log(np.mean(np.abs(price - price.mean()))) - _log(spread)
    return level, scale


def hour_matched(values: np.ndarray) -> np.ndarray:
    """Per week: the median over its hours of log(value / the value at the same hour a week before)."""
    out = np.full(values.shape[0], np.nan)
    for w in range(1, values.shape[0]):
        a, b = values[w], values[w - 1]
        known = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
        if known.sum() >= 24:
            out[w] = float(np.median(np.log(a[known]) - np.log(b[known])))
    return out


def matched_scores(m: Market, shift: float) -> Scores:
    """Hour-matched price change less what the hour-matched exogenous changes explain (regression
    over the history), over the residuals' standard deviation."""
    y_all, drivers = hour_matched(m.P), [hour_matched(x) for x in m.X]
    rows = []
    for w in m.eval:
        y = y_all[w - HISTORY : w]
        x = np.column_stack([np.ones(HISTORY), *(d[w - HISTORY : w] for d in drivers)])
        known = np.isfinite(y) & np.isfinite(x).all(axis=1)
        beta, *_ = np.linalg.lstsq(x[known], y[known], rcond=None)
        residuals = y[known] - x[known] @ beta
        spread = float(np.sqrt(np.sum(residuals**2) / (known.sum() - x.shape[1])))
        now = y_all[w] - float(np.r_[1.0, [d[w] for d in drivers]] @ beta)
        rows.append((abs(now) / spread, abs(now + shift) / spread))
    return np.array(rows)


def level_attempts(m: Market) -> dict[str, Scores]:
    shift = SHIFT["price_level"]
    median, trimmed = _log(weekly(m.P, np.median)), _log(weekly(m.P, _trim))
    exo_mean = [_log(weekly(x, np.mean)) for x in m.X]
    exo_median = [_log(weekly(x, np.median)) for x in m.X]
    out = {
        "product before: log median vs the week before, net of the exogenous log weekly means": regression_scores(
            m, median, exo_mean, shift
        ),
        "adopted: the same, net of the exogenous log weekly medians": regression_scores(m, median, exo_median, shift),
        "20% trimmed mean, net of the exogenous log weekly medians": regression_scores(m, trimmed, exo_median, shift),
        "log median vs the mean of the 4 weeks before, no exogenous": break_scores(m, median, shift),
        "hour-of-week matched log ratio vs the week before, net of the exogenous' matched ratios": matched_scores(
            m, shift
        ),
    }
    for fitted in (1, 2, 4, 8):
        level, _ = hourly_regression(m, fitted)
        out[f"hourly regression on the exogenous + hour of day over the {fitted} weeks before, residual level"] = (
            residual_scores(m, level, shift)
        )
    out["two weeks changed: adopted statistic over both weeks"] = regression_scores(
        m, median, exo_median, shift, weeks=2
    )
    return out


def relative_spread(m: Market, alpha: float) -> np.ndarray:
    return 0.5 * _log(weekly(m.P, _median_step)) + 0.5 * _log(_within_day(m)) - alpha * _log(weekly(m.P, np.mean))


def scale_attempts(m: Market) -> dict[str, Scores]:
    shift = SHIFT["price_scale"]
    step, mean, median = _log(weekly(m.P, _median_step)), _log(weekly(m.P, np.mean)), _log(weekly(m.P, np.median))
    within_day = _log(_within_day(m))
    mean_dev = _log(weekly(m.P, lambda v: float(np.mean(np.abs(v - v.mean())))))
    median_dev = _log(weekly(m.P, lambda v: float(np.median(np.abs(v - v.mean())))))
    out = {
        "product before: median hour-to-hour change": break_scores(m, step, shift),
        "mean absolute deviation from the week's mean": break_scores(m, mean_dev, shift),
        "median absolute deviation from the week's mean": break_scores(m, median_dev, shift),
        "median deviation from the local day's mean": break_scores(m, within_day, shift),
        "median change from the same hour a day before": break_scores(m, _log(_lag24(m)), shift),
        "daily profile amplitude": break_scores(m, _log(_profile_amplitude(m)), shift),
        "median hour-to-hour change / mean price": break_scores(m, step - mean, shift),
        "mean absolute deviation / mean price": break_scores(m, mean_dev - mean, shift),
        "median deviation from the local day's mean / median price": break_scores(m, within_day - median, shift),
    }
    _, predicted = hourly_regression(m, 4)
    out["deviation over the deviation an hourly regression over the 4 weeks before predicts"] = residual_scores(
        m, predicted, shift
    )
    for i in range(len(m.exogenous)):  # NP: load, wind; PJM: system, zonal load; BE, FR: generation, load
        out[f"slope of the price on exogenous series {i + 1} within the week"] = break_scores(
            m, _log(_slope(m, i)), shift
        )
    for alpha in (0.0, 0.25, 0.5, 0.75, 1.0):
        tag = "adopted: " if alpha == 0.5 else ""
        out[f"{tag}relative spread, level power {alpha:g}"] = break_scores(m, relative_spread(m, alpha), shift)
    for recent in (2, 8):
        out[f"relative spread (0.5) vs the mean of the {recent} weeks before"] = break_scores(
            m, relative_spread(m, 0.5), shift, recent=recent
        )
    out["two weeks changed: relative spread (0.5) over both weeks"] = break_scores(
        m, relative_spread(m, 0.5), shift, weeks=2
    )
    out["two weeks changed: median hour-to-hour change over both weeks"] = break_scores(m, step, shift, weeks=2)
    return out


def _break(s: np.ndarray, w: int, shift: float, recent: int) -> tuple[float, float] | None:
    """(the week's change after ``shift``, the spread of the history's changes) against ``recent`` weeks."""
    past = s[w - HISTORY : w]
    windows = np.lib.stride_tricks.sliding_window_view(past, recent + 1)
    changes = windows[:, -1] - windows[:, :-1].mean(axis=1)
    changes = changes[np.isfinite(changes)]
    if len(changes) < MIN_CHANGES or not math.isfinite(s[w]) or not np.isfinite(past[-recent:]).all():
        return None
    return float(s[w] + shift - past[-recent:].mean()), float(np.std(changes, ddof=1))


def exogenous_attempts(m: Market) -> dict[str, Scores]:
    """Rows: week x (clean, series 0 changed, series 1 changed); a changed row's score is the changed
    series' own score, the clean row's the largest score of the week (two series per market)."""
    shift = SHIFT["exogenous_level"]
    logs = [_log(weekly(x, np.mean)) for x in m.X]
    variants = {
        "product before: own and ratio vs the mean of the 4 weeks before, the ratio on the series that moved more": (
            (RECENT,),
            "larger",
        ),
        "vs the week before": ((1,), "larger"),
        "vs whichever of the week before and the mean of 4 has the steadier history": ((1, RECENT), "larger"),
        "ratio credited to the changed series (the ceiling of attribution)": ((RECENT,), "changed"),
    }
    out = {}
    for name, (references, owner_rule) in variants.items():
        rows = []
        for w in m.eval:
            scores: dict[Any, list[float]] = {}
            for changed in (None, 0, 1):
                own = []
                for i in (0, 1):
                    found = [_break(logs[i], w, shift if changed == i else 0.0, r) for r in references]
                    found = [f for f in found if f is not None]
                    own.append(min(found, key=lambda f: f[1]) if found else (math.nan, math.nan))
                ratio_shift = {None: 0.0, 0: shift, 1: -shift}[changed]
                found = [_break(logs[0] - logs[1], w, ratio_shift, r) for r in references]
                found = [f for f in found if f is not None]
                ratio = min(found, key=lambda f: f[1]) if found else (math.nan, math.nan)
                z = [abs(c) / s for c, s in own]
                z_ratio = abs(ratio[0]) / ratio[1]
                owner = (changed if changed is not None else 0) if owner_rule == "changed" else int(z[1] > z[0])
                z[owner] = max(z[owner], z_ratio)
                scores[changed] = z
            rows.append((max(scores[None]), scores[0][0]))
            rows.append((max(scores[None]), scores[1][1]))
        out[name] = np.array(rows)
    return out


def summarize(family: str, attempts: dict[str, dict[str, Scores]]) -> dict[str, Any]:
    """Per attempt: the pooled clean threshold at the family's tail and, per market, % detected and %
    of clean weeks at or above it."""
    out: dict[str, Any] = {}
    for name in next(iter(attempts.values())):
        clean = np.concatenate([a[name][:, 0] for a in attempts.values()])
        threshold = float(np.quantile(clean[np.isfinite(clean)], 1 - TAIL[family]))
        out[name] = {"threshold": round(threshold, 3)}
        for region, a in attempts.items():
            scores = a[name]
            out[name][region] = {
                "detected_pct": round(100 * float(np.nanmean(scores[:, 1] >= threshold)), 1),
                "clean_pct": round(100 * float(np.nanmean(scores[:, 0] >= threshold)), 1),
                "cases": int(np.isfinite(scores[:, 1]).sum()),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", default="NP,PJM,BE,FR")
    args = parser.parse_args()
    regions = [r.strip().upper() for r in args.regions.split(",") if r.strip()]
    started = time.perf_counter()
    markets = {region: Market(region) for region in regions}
    families = {
        "price_level": {r: level_attempts(m) for r, m in markets.items()},
        "price_scale": {r: scale_attempts(m) for r, m in markets.items()},
        "exogenous_level": {r: exogenous_attempts(m) for r, m in markets.items()},
    }
    summary = {family: summarize(family, attempts) for family, attempts in families.items()}
    wall_s = time.perf_counter() - started
    results = {
        "machine": describe_machine(),
        "seeds": None,
        "wall_seconds": round(wall_s, 1),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "settings": {"regions": regions, "tail": TAIL, "shift_log": SHIFT, "history_weeks": HISTORY},
        "weeks": {r: len(m.eval) for r, m in markets.items()},
        "attempts": summary,
    }
    lines: list[str] = []
    for family, attempts in summary.items():
        lines += [
            f"## {family}: {GOAL[family]}, critical at the pooled clean {100 * TAIL[family]:g}% tail",
            "",
            f"| statistic | threshold | {' | '.join(regions)} |",
            f"|---|---|{'---|' * len(regions)}",
        ]
        for name, row in attempts.items():
            cells = " | ".join(f"{row[r]['detected_pct']:g}% ({row[r]['clean_pct']:g}%)" for r in regions)
            lines.append(f"| {name} | {row['threshold']:.2f} | {cells} |")
        lines.append("")
    lines += [
        "Cells: % of weeks with the change whose score is at or above the threshold, in brackets % of clean "
        "weeks at or above it (this family alone). Exogenous: weeks x 2 series; BE and FR share the same "
        "French load and generation forecasts, so their exogenous rows are equal. Same weeks as "
        f"drift_power ({', '.join(f'{r} {len(m.eval)}' for r, m in markets.items())}); whole run {wall_s:.0f} s.",
    ]
    write_results(RESULTS, NAME, results, "Drift statistics: attempts at more detection within one week", lines)


if __name__ == "__main__":
    main()
