"""Per-family drift rules: what moved in a region's week, each family with its own statistic and threshold.

One global rule (a share of drifted columns) cannot see a change that touches one family of
columns, so the drift check judges each family on its own, on the same frames the Evidently
report compares (cheap numpy statistics; Evidently stays the report engine):

| family | statistic (``score``) | compared with |
|---|---|---|
| ``price_level`` | the week's median price over the median of the week before, as a symmetric relative change (``max(r, 1/r) - 1``) | the 7 days before the current window |
| ``price_scale`` | the week's interquartile range of the price over the median weekly IQR of the 4 weeks before, symmetric | the 28 days before the current window |
| ``intraday_shape`` | ``1 - max(corr, 0) * min(amplitude ratio, 1)`` of the mean daily profile (price minus its local day's mean, per local hour) against the reference's | the same season of the reference |
| ``price_stuck`` | the longest run of identical consecutive prices, hours | nothing: a real price series changes within hours |
| ``exogenous_level`` (each series) | the week's log mean ratio to the reference's mean, in units of the standard deviation of the reference's weekly log means | the same season of the reference |
| ``exogenous_frozen`` (each series) | the longest run of identical consecutive values, hours | nothing |

The price families use the weeks just before the current window: a market's price level moves a
lot from one year to the next, so against the same season of two years a +30% week is within the
normal spread, while against the week before it stands out. The exogenous forecasts (load,
generation, wind) follow the calendar, so the same season is their reference.

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
BEFORE_WEEKS = 4  # weeks before the current window that price_scale compares with
MIN_VALUES = 24  # fewest known values a statistic needs in each frame it compares
MIN_WEEKS = 4  # fewest reference weeks whose means give the spread of an exogenous series' weekly level
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
            "median price of the week over that of the week before, symmetric relative change max(r, 1/r) - 1",
            "the 7 days before the current window",
            warn=0.27,
            critical=0.56,
        ),
        Rule(
            "price_scale",
            "interquartile range of the week's prices over the median weekly IQR of the 4 weeks before, "
            "symmetric relative change",
            "the 28 days before the current window",
            warn=1.15,
            critical=2.0,
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
            "|log(week mean / reference mean)| over the standard deviation of the reference's weekly log means",
            "the same season of the reference window",
            warn=2.5,
            critical=3.35,
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


def symmetric_change(ratio: float) -> float:
    """``max(r, 1/r) - 1``: +30% and its inverse (-23%) both score 0.30; NaN for a non-positive ratio."""
    if not math.isfinite(ratio) or ratio <= 0:
        return math.nan
    return max(ratio, 1.0 / ratio) - 1.0


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


def _iqr(values: pd.Series) -> float:
    known = values.dropna().to_numpy(dtype=float)
    if len(known) < MIN_VALUES:
        return math.nan
    q75, q25 = np.percentile(known, [75, 25])
    return float(q75 - q25)


def price_measures(current: pd.Series, before: pd.Series, season: pd.Series, timezone: str) -> list[Measure]:
    """The price families of the current week. ``before``: the prices before the current window
    (its last ``BEFORE_WEEKS`` weeks are used), ``season``: the same-season reference."""
    out: list[Measure] = []
    current, before, season = current.dropna(), before.dropna(), season.dropna()
    start = current.index.min() if len(current) else None
    if start is None:
        return out
    last_week = before[before.index >= start - WEEK]
    if len(current) >= MIN_VALUES and len(last_week) >= MIN_VALUES:
        now, then = float(np.median(current)), float(np.median(last_week))
        ratio = now / then if then > 0 and now > 0 else math.nan
        out.append(
            Measure(
                "price_level",
                None,
                symmetric_change(ratio),
                _percent(ratio) if math.isfinite(ratio) else "n/a (a median price at or below zero)",
                "the week before",
                f"median {now:.2f} vs {then:.2f}",
            )
        )
    weeks = before[before.index >= start - BEFORE_WEEKS * WEEK]
    blocks = [_iqr(block) for _, block in weeks.groupby((weeks.index - start) // WEEK)]
    usual = float(np.nanmedian(blocks)) if any(math.isfinite(b) for b in blocks) else math.nan
    spread = _iqr(current)
    if math.isfinite(usual) and usual > 0 and math.isfinite(spread):
        ratio = spread / usual
        out.append(
            Measure(
                "price_scale",
                None,
                symmetric_change(ratio) if ratio > 0 else math.inf,
                f"x{ratio:.2f}",
                f"the {BEFORE_WEEKS} weeks before",
                f"interquartile range {spread:.2f} vs {usual:.2f}",
            )
        )
    if len(current) >= MIN_VALUES and len(season) >= MIN_VALUES:
        now_profile, usual_profile = daily_profile(current, timezone), daily_profile(season, timezone)
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
    hours, value = longest_run(current.sort_index().to_numpy())
    out.append(Measure("price_stuck", None, float(hours), f"{hours} h in a row at {value:g}", "none"))
    return out


def exogenous_measures(current: pd.DataFrame, season: pd.DataFrame, columns: list[str]) -> list[Measure]:
    """The exogenous families of each series in ``columns``.

    The level score is the week's log mean ratio to the reference in units of the spread of the
    reference's own weekly log means: load moves a few percent from week to week, wind several
    tens of percent, so one threshold in percent would either page for every windy week or miss
    every load change."""
    out: list[Measure] = []
    start = current.index.min() if len(current) else None
    for column in columns:
        now = current[column].dropna() if column in current else pd.Series(dtype=float)
        usual = season[column].dropna() if column in season else pd.Series(dtype=float)
        if start is not None and len(now) >= MIN_VALUES and len(usual) >= MIN_VALUES:
            now_mean, usual_mean = float(now.mean()), float(usual.mean())
            blocks = usual.groupby((usual.index - start) // WEEK).agg(["mean", "size"])
            weekly = blocks.loc[(blocks["size"] >= MIN_VALUES) & (blocks["mean"] > 0), "mean"].to_numpy(dtype=float)
            spread = float(np.std(np.log(weekly), ddof=1)) if len(weekly) >= MIN_WEEKS else math.nan
            if now_mean > 0 and usual_mean > 0 and math.isfinite(spread) and spread > 0:
                ratio = now_mean / usual_mean
                out.append(
                    Measure(
                        "exogenous_level",
                        column,
                        abs(math.log(ratio)) / spread,
                        _percent(ratio),
                        "the same season",
                        f"mean {now_mean:.6g} vs {usual_mean:.6g}; {abs(math.log(ratio)) / spread:.1f} x the spread "
                        f"of its weekly means there ({100 * spread:.1f}%)",
                    )
                )
        if len(now):
            hours, value = longest_run(current[column].sort_index().to_numpy())
            out.append(Measure("exogenous_frozen", column, float(hours), f"{hours} h in a row at {value:g}", "none"))
    return out


def measure(
    current: pd.DataFrame, before: pd.DataFrame, season: pd.DataFrame, timezone: str, exogenous: list[str]
) -> list[Measure]:
    """Every family's statistic of the current week (frames: hourly drift columns, UTC index)."""
    return [
        *price_measures(current["price"], before["price"], season["price"], timezone),
        *exogenous_measures(current, season, exogenous),
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
