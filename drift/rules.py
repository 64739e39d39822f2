"""Per-family drift rules: what moved in a region's week, each family with its own statistic and threshold.

One global rule (a share of drifted columns) cannot see a change that touches one family of
columns, so the drift check judges each family on its own, on the same frames the Evidently
report compares (cheap numpy statistics; Evidently stays the report engine):

| family | statistic (``score``) | compared with |
|---|---|---|
| ``price_level`` | the week-over-week change of the log median price less what the exogenous series' week-over-week changes (of their log weekly medians) explain (a regression over the history weeks), over the residuals' standard deviation | the week before |
| ``price_scale`` | the break of the log relative spread (``relative_spread``: the geometric mean of the median hour-to-hour change and the median deviation from the local day's mean, over the square root of the week's mean price) | the 4 weeks before |
| ``intraday_shape`` | ``1 - max(corr, 0) * min(amplitude ratio, 1)`` of the mean daily profile (price minus its local day's mean, per local hour) against the reference's | the same season of the reference |
| ``price_stuck`` | the longest run of identical consecutive prices, hours | nothing: a real price series changes within hours |
| ``exogenous_level`` (each series) | the larger break of the series' log weekly mean and of its log ratio to each other exogenous series | the 4 weeks before |
| ``exogenous_frozen`` (each series) | the longest run of identical consecutive values, hours | nothing |

A break (``break_of``) is the week's statistic against the mean of the ``RECENT_WEEKS`` weeks
before it, over the standard deviation of the same change over the ``HISTORY_WEEKS`` weeks before:
a change of regime is a break against the recent past, and the natural week-to-week movement of
the statistic is what it must stand out of. Against a broad same-season reference a +30% week or
a load forecast +20% lies inside two years' spread of the season. The intraday shape keeps the
same season (the daily profile is seasonal, and steady from week to week).

The thresholds (``RULES``) were chosen from the operating curve of ``make bench-drift``
(``benchmarks/drift_power.py``, results in ``benchmarks/results/drift_power.md``): every real week
of the four markets, clean and with graded injected changes; see there and docs/drift.md for how.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Level = Literal["ok", "warn", "critical"]
WEEK = pd.Timedelta(days=7)
HISTORY_WEEKS = 52  # weeks before the current window whose week-to-week changes are the breaks' null spread
RECENT_WEEKS = 4  # a break is the week against the mean of this many weeks before it
MIN_VALUES = 24  # fewest known values a statistic needs in each frame (and each week) it compares
MIN_WEEKS = 12  # fewest history weeks whose changes give a break's spread
FAMILY_TITLE = {
    "price_level": "price level",
    "price_scale": "price scale",
    "intraday_shape": "intraday shape",
    "price_stuck": "price stuck",
    "exogenous_level": "level",
    "exogenous_frozen": "frozen",
}


@dataclass(frozen=True)
class Rule:
    family: str
    statistic: str  # what the score measures
    reference: str  # what the current week is compared with
    warn: float  # score at or above: warn
    critical: float  # score at or above: critical


RULES: dict[str, Rule] = {
    rule.family: rule
    for rule in (
        Rule(
            "price_level",
            "week-over-week change of the log median price less what the week-over-week changes of the "
            "exogenous series' log weekly medians explain (a regression over the history weeks), over the "
            "residuals' standard deviation",
            "the week before, the 52 weeks before for the spread",
            warn=2.1,
            critical=3.3,
        ),
        Rule(
            "price_scale",
            "log relative spread of the week (geometric mean of the median hour-to-hour price change and the "
            "median deviation from the local day's mean, over the square root of the mean price) against the "
            "mean of the 4 weeks before, over the standard deviation of the same change over the history weeks",
            "the 4 weeks before, the 52 weeks before for the spread",
            warn=2.2,
            critical=3.0,
        ),
        Rule(
            "intraday_shape",
            "1 - max(correlation, 0) x min(amplitude ratio, 1) of the mean daily profile (price minus its "
            "local day's mean, per local hour) with the reference's",
            "the same season of the reference window",
            warn=0.73,
            critical=0.73,
        ),
        Rule(
            "price_stuck",
            "longest run of identical consecutive prices (hours)",
            "none (a real price changes within hours)",
            warn=12,
            critical=24,
        ),
        Rule(
            "exogenous_level",
            "the larger break of the series' log weekly mean and of its log ratio to each other exogenous "
            "series, against the mean of the 4 weeks before, over the standard deviation of the same change "
            "over the history weeks",
            "the 4 weeks before, the 52 weeks before for the spread",
            warn=2.8,
            critical=3.2,
        ),
        Rule(
            "exogenous_frozen",
            "longest run of identical consecutive values (hours)",
            "none (a real day-ahead forecast changes within hours)",
            warn=12,
            critical=24,
        ),
    )
}


@dataclass(frozen=True)
class Measure:
    """One statistic of one family (and, for the exogenous families, one series)."""

    family: str
    subject: str | None  # the exogenous series, None for the price families
    score: float  # compared with the rule's thresholds
    size: str  # the change in words: "+19%", "x2.10", "168 h in a row at 12.5"
    reference: str  # what it was compared with ("none" for the stuck/frozen families)
    detail: str = ""  # the numbers behind it


@dataclass(frozen=True)
class Finding:
    family: str
    subject: str | None
    status: Level
    score: float
    warn: float
    critical: float
    text: str  # "exogenous wind_power_forecast: level +19% vs the same season"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percent(ratio: float) -> str:
    return f"{100 * (ratio - 1):+.0f}%"


def longest_run(values: np.ndarray) -> tuple[int, float]:
    """The longest run of identical consecutive known values: (hours, the value). NaN breaks a run."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return 0, math.nan
    same = np.zeros(values.size, dtype=bool)
    same[1:] = (values[1:] == values[:-1]) & ~np.isnan(values[1:])
    best, best_end, length = 0, 0, 0
    for i, continues in enumerate(same):
        length = length + 1 if continues else (0 if np.isnan(values[i]) else 1)
        if length > best:
            best, best_end = length, i
    return best, float(values[best_end]) if best else math.nan


def daily_profile(prices: pd.Series, timezone: str) -> pd.Series:
    """Mean of (price minus its local day's mean) per local hour of day (0..23)."""
    local = prices.index.tz_convert(timezone)
    deviation = prices - prices.groupby(local.normalize()).transform("mean")
    return deviation.groupby(local.hour).mean().reindex(range(24))


def weekly_values(series: pd.Series, start: pd.Timestamp, weeks: int, statistic: Any) -> np.ndarray:
    """``statistic`` of each of the ``weeks`` weeks before ``start`` (oldest first; NaN for a week with
    fewer than ``MIN_VALUES`` known values or a statistic that is not finite and positive)."""
    out = np.full(weeks, np.nan)
    known = series.dropna()
    known = known[(known.index >= start - weeks * WEEK) & (known.index < start)]
    for offset, block in known.groupby((known.index - start) // WEEK):
        if len(block) >= MIN_VALUES:
            value = float(statistic(block.to_numpy(dtype=float)))
            out[weeks + int(offset)] = value if math.isfinite(value) and value > 0 else np.nan
    return out


def _log(value: float) -> float:
    return math.log(value) if math.isfinite(value) and value > 0 else math.nan


@dataclass(frozen=True)
class Break:
    """A weekly statistic's change against the mean of the ``RECENT_WEEKS`` before, in units of the
    spread of the same change over the history (``z``); ``change``: the ratio to the recent weeks."""

    z: float
    change: float
    spread: float  # standard deviation of the history's changes (log units)
    weeks: int  # history weeks the spread comes from


def break_of(history: np.ndarray, current: float, recent: int = RECENT_WEEKS) -> Break | None:
    """``history``: the statistic's log per week, oldest first (NaN: unknown); ``current``: this week's log.

    The change of each history week against the mean of its ``recent`` weeks before is the null
    distribution; the current week's change over its spread is the score. None with fewer than
    ``MIN_WEEKS`` history changes or no spread."""
    if not math.isfinite(current) or len(history) < recent + 1:
        return None
    windows = np.lib.stride_tricks.sliding_window_view(history, recent + 1)
    changes = windows[:, -1] - windows[:, :-1].mean(axis=1)
    changes = changes[np.isfinite(changes)]
    base = history[-recent:]
    if len(changes) < MIN_WEEKS or not np.isfinite(base).all():
        return None
    spread = float(np.std(changes, ddof=1))
    if spread <= 0:
        return None
    change = current - float(base.mean())
    return Break(abs(change) / spread, math.exp(change), spread, len(changes))


def _median_abs_step(values: np.ndarray) -> float:
    return float(np.median(np.abs(np.diff(values)))) if len(values) > 1 else math.nan


def relative_spread(prices: pd.Series, timezone: str) -> float:
    """The price scale of a week: sqrt(median |hour-to-hour change| x median |price - its local day's
    mean| / mean price); NaN when a part is not positive.

    Doubling the deviations from the week's mean doubles it exactly (both spreads double, the mean
    stays). Each spread alone moves 30-70% from week to week with the market; their geometric mean
    moves less (their noise is partly independent), and over the square root of the price level,
    the part of the movement that comes with the level (a dearer week swings more) drops out."""
    prices = prices.dropna().sort_index()
    mean = float(prices.mean()) if len(prices) else math.nan
    if len(prices) < 2 or not mean > 0:
        return math.nan
    day = prices.index.tz_convert(timezone).normalize()
    within_day = float(np.median(np.abs(prices - prices.groupby(day).transform("mean"))))
    step = _median_abs_step(prices.to_numpy(dtype=float))
    return math.sqrt(step * within_day / mean) if step > 0 and within_day > 0 else math.nan


def weekly_spreads(series: pd.Series, start: pd.Timestamp, weeks: int, timezone: str) -> np.ndarray:
    """``relative_spread`` of each of the ``weeks`` weeks before ``start`` (``weekly_values``' rules)."""
    out = np.full(weeks, np.nan)
    known = series.dropna()
    known = known[(known.index >= start - weeks * WEEK) & (known.index < start)]
    for offset, block in known.groupby((known.index - start) // WEEK):
        if len(block) >= MIN_VALUES:
            out[weeks + int(offset)] = relative_spread(block, timezone)
    return out


@dataclass(frozen=True)
class History:
    """What the current week is compared with, computed once per week (the benchmark measures many
    changed versions of the same week against it): the log of each history week's statistics, oldest
    first (NaN: unknown), and the same season's mean daily price profile."""

    start: pd.Timestamp
    price_median: np.ndarray
    price_spread: np.ndarray  # log relative_spread
    exogenous: dict[str, np.ndarray]  # log weekly mean of each series
    exogenous_median: dict[str, np.ndarray]  # log weekly median of each series (the price level's regressors)
    season_profile: pd.Series | None


def history_of(
    start: pd.Timestamp, before: pd.DataFrame, season: pd.DataFrame, timezone: str, exogenous: list[str]
) -> History:
    """The ``History`` of the week starting at ``start``: ``before`` holds the hours before it (its
    last ``HISTORY_WEEKS`` weeks are used), ``season`` the same-season reference."""
    price = before["price"].dropna()
    seasonal = season["price"].dropna()
    return History(
        start,
        np.log(weekly_values(price, start, HISTORY_WEEKS, np.median)),
        np.log(weekly_spreads(price, start, HISTORY_WEEKS, timezone)),
        {c: np.log(weekly_values(before[c], start, HISTORY_WEEKS, np.mean)) for c in exogenous if c in before},
        {c: np.log(weekly_values(before[c], start, HISTORY_WEEKS, np.median)) for c in exogenous if c in before},
        daily_profile(seasonal, timezone) if len(seasonal) >= MIN_VALUES else None,
    )


def price_measures(
    current: pd.Series, history: History, timezone: str, exogenous_now: dict[str, float]
) -> list[Measure]:
    """The price families of the current week; ``exogenous_now``: each exogenous series' log median this
    week (the price level's week-over-week change is regressed on their changes)."""
    out: list[Measure] = []
    current = current.dropna().sort_index()
    if current.empty:
        return out
    if len(current) >= MIN_VALUES:
        level = price_level_measure(current, history, exogenous_now)
        if level is not None:
            out.append(level)
        moved = break_of(history.price_spread, _log(relative_spread(current, timezone)))
        if moved is not None:
            out.append(
                Measure(
                    "price_scale",
                    None,
                    moved.z,
                    f"x{moved.change:.2f}",
                    f"the previous {RECENT_WEEKS} weeks",
                    f"relative spread (hour-to-hour and within-day price changes over the square root of the "
                    f"level); {moved.z:.1f} x the spread of such changes over {moved.weeks} weeks "
                    f"({100 * moved.spread:.0f}%)",
                )
            )
    if len(current) >= MIN_VALUES and history.season_profile is not None:
        now_profile, usual_profile = daily_profile(current, timezone), history.season_profile
        known = now_profile.notna() & usual_profile.notna()
        usual_amp = float(usual_profile[known].std())
        if known.sum() >= 12 and usual_amp > 0:
            amp = float(now_profile[known].std()) / usual_amp
            corr = float(np.corrcoef(now_profile[known], usual_profile[known])[0, 1]) if amp > 0 else 0.0
            corr = 0.0 if not math.isfinite(corr) else corr
            out.append(
                Measure(
                    "intraday_shape",
                    None,
                    1.0 - max(corr, 0.0) * min(amp, 1.0),
                    f"daily profile amplitude x{amp:.2f}, correlation {corr:.2f}",
                    "the same season",
                    "price minus its local day's mean, averaged per local hour",
                )
            )
    hours, value = longest_run(current.to_numpy())
    out.append(Measure("price_stuck", None, float(hours), f"{hours} h in a row at {value:g}", "none"))
    return out


def price_level_measure(current: pd.Series, history: History, exogenous_now: dict[str, float]) -> Measure | None:
    """The week's median price against the week before, net of what the exogenous series explain.

    Over the history weeks, the week-over-week change of the log median price is regressed on the
    week-over-week changes of each exogenous series' log weekly median (load up, price up; wind up,
    price down; the median, like the price's, is not moved by a few extreme hours); the score is the current week's residual over the residuals' standard deviation. A
    market's price moves 20-30% from one week to the next on its own; the part the load and wind
    forecasts do not explain moves less, so a +30% break stands out of it more often."""
    prices = history.price_median
    now = _log(float(np.median(current.to_numpy(dtype=float))))
    if not math.isfinite(now) or not math.isfinite(prices[-1]):
        return None
    names = [
        n
        for n, past in history.exogenous_median.items()
        if math.isfinite(exogenous_now.get(n, math.nan)) and math.isfinite(past[-1])
    ]
    y = np.diff(prices)
    x = np.column_stack([np.ones(len(y)), *(np.diff(history.exogenous_median[n]) for n in names)])
    rows = np.isfinite(y) & np.isfinite(x).all(axis=1)
    if rows.sum() < MIN_WEEKS + x.shape[1]:
        return None
    beta, *_ = np.linalg.lstsq(x[rows], y[rows], rcond=None)
    residuals = y[rows] - x[rows] @ beta
    spread = float(np.sqrt(np.sum(residuals**2) / (rows.sum() - x.shape[1])))
    if spread <= 0:
        return None
    change = now - prices[-1]
    expected = float(np.r_[1.0, [exogenous_now[n] - history.exogenous_median[n][-1] for n in names]] @ beta)
    score = abs(change - expected) / spread
    drivers = f" from {', '.join(names)}" if names else ""
    return Measure(
        "price_level",
        None,
        score,
        _percent(math.exp(change)),
        "the week before",
        f"median {math.exp(now):.2f} vs {math.exp(prices[-1]):.2f}; {_percent(math.exp(expected))} expected"
        f"{drivers}; the rest is {score:.1f} x the spread of such residuals over {int(rows.sum())} weeks "
        f"({100 * spread:.0f}%)",
    )


def exogenous_measures(current: pd.DataFrame, history: History, columns: list[str]) -> list[Measure]:
    """The exogenous families of each series in ``columns``.

    The level score is the larger of two breaks against the previous ``RECENT_WEEKS`` weeks, each
    in units of the spread of the same change over the history (``break_of``): the series' own log
    weekly mean, and its log ratio to each other exogenous series (load and generation forecasts,
    system and zonal load move together, so their ratio is much steadier than either). A break of
    a ratio is put on the series of the pair whose own mean moved more."""
    out: list[Measure] = []
    now: dict[str, float] = {}
    own: dict[str, Break] = {}
    for column in columns:
        values = current[column].dropna() if column in current else pd.Series(dtype=float)
        if len(values) < MIN_VALUES or column not in history.exogenous:
            continue
        now[column] = _log(float(values.mean()))
        moved = break_of(history.exogenous[column], now[column])
        if moved is not None:
            own[column] = moved
    for column in columns:
        if column in own:
            best, versus = own[column], ""
            for other in own:
                if other == column or own[other].z > own[column].z:
                    continue  # the ratio's break belongs to the series that moved more
                related = break_of(history.exogenous[column] - history.exogenous[other], now[column] - now[other])
                if related is not None and related.z > best.z:
                    best, versus = related, f" relative to {other}"
            out.append(
                Measure(
                    "exogenous_level",
                    column,
                    best.z,
                    f"{_percent(best.change)}{versus}",
                    f"the previous {RECENT_WEEKS} weeks",
                    f"{best.z:.1f} x the spread of such changes over {best.weeks} weeks ({100 * best.spread:.1f}%)",
                )
            )
        if column in current and current[column].notna().any():
            hours, value = longest_run(current[column].sort_index().to_numpy())
            out.append(Measure("exogenous_frozen", column, float(hours), f"{hours} h in a row at {value:g}", "none"))
    return out


def measure(
    current: pd.DataFrame, before: pd.DataFrame, season: pd.DataFrame, timezone: str, exogenous: list[str]
) -> list[Measure]:
    """Every family's statistic of the current week (frames: hourly drift columns, UTC index).

    ``before``: the hours before the current window (the last ``HISTORY_WEEKS`` weeks are used);
    ``season``: the same-season reference."""
    if current.empty:
        return []
    return measure_against(
        current, history_of(current.index.min(), before, season, timezone, exogenous), timezone, exogenous
    )


def measure_against(current: pd.DataFrame, history: History, timezone: str, exogenous: list[str]) -> list[Measure]:
    """``measure`` with the week's ``History`` computed already."""
    now = {c: _log(float(current[c].median())) for c in exogenous if c in current}
    return [
        *price_measures(current["price"], history, timezone, now),
        *exogenous_measures(current, history, exogenous),
    ]


def level_of(score: float, rule: Rule) -> Level:
    if not math.isfinite(score):
        return "critical" if score == math.inf else "ok"
    if score >= rule.critical:
        return "critical"
    return "warn" if score >= rule.warn else "ok"


def finding_text(m: Measure) -> str:
    """``exogenous wind_power_forecast: level +19% vs the same season (mean 5210 vs 4378)``."""
    who = f"exogenous {m.subject}: {FAMILY_TITLE[m.family]}" if m.subject else f"{FAMILY_TITLE[m.family]}:"
    versus = "" if m.reference == "none" else f" vs {m.reference}"
    detail = f" ({m.detail})" if m.detail else ""
    return f"{who} {m.size}{versus}{detail}"


def judge(measures: list[Measure], rules: dict[str, Rule] | None = None) -> list[Finding]:
    """The measures at or past their rule's warn threshold, worst first."""
    rules = RULES if rules is None else rules
    findings = []
    for m in measures:
        rule = rules[m.family]
        status = level_of(m.score, rule)
        if status != "ok":
            findings.append(Finding(m.family, m.subject, status, m.score, rule.warn, rule.critical, finding_text(m)))
    order = {"critical": 0, "warn": 1}
    return sorted(findings, key=lambda f: (order[f.status], -f.score / f.critical if f.critical else 0))
