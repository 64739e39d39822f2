"""Drift rules: how often each catches a known change, and how often a normal week is called critical.

For each market, every weekly ``as_of`` with ``training_window_days`` of history before its
current week (the weeks ``benchmarks/drift_calibration.py`` checks) is measured by the product's
rules (``drift.rules.measure``) on the frames the drift check builds without a champion: the
current week, the 52 weeks before it (``drift.rules.HISTORY_WEEKS``), and the same season (+-28
days) of the 730 days before it.
Each week is measured as it is (clean) and with one change injected into its whole current week:

- ``price_level``: prices x1.15, x1.3, x1.5;
- ``price_scale``: deviations from the week's mean x1.5, x2, x3 (volatility);
- ``intraday_shape``: deviations from each local day's mean x0.5, x0.25, x0 (the daily shape gone);
  and the issue's "every hour at the week's mean" (``flat_week``);
- ``price_stuck``: the price before the week repeated for its first 12, 24, 48, 168 hours;
- ``exogenous_level``: one exogenous series +10%, +20%, +30% (each series on its own);
- ``exogenous_frozen``: one exogenous series at its first value of the week for 12, 24, 168 hours.

Recorded per market and change: the share of weeks where the change's own rule is critical
(it names the family, and the series) and where any rule is critical; per clean week, every score.
From the clean scores the operating curve of each family (false alarms vs detection of the goal's
change as the critical threshold moves) is drawn, and thresholds are proposed by one rule: each
continuous family's threshold is an upper quantile of its clean scores pooled over the four
markets; among the combinations of tail shares (``TAILS``) that keep the share of clean weeks
with any critical rule within ``FALSE_ALARM_BUDGET`` in every market (warn: ``WARN_BUDGET`` for
any warn or critical), the one whose weakest detection of the goal's change is highest (no family is
given up for the others), ties broken by the sum. The stuck/frozen families are fixed at 24 h
critical and 12 h warn (no clean week of any market repeats a value for more than 12 h). The
product's thresholds (``drift.rules.RULES``) are the proposal rounded up. Evidently is left out:
the rules' statistics are numpy only; Evidently's drifted share is measured by drift_calibration.

    python -m benchmarks.drift_power [--regions NP,PJM,BE,FR] [--jobs 2] [--step 1] [--scores FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmarks.drift_calibration import weekly_as_of
from benchmarks.machine import describe_machine, write_results

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "drift_power"
FALSE_ALARM_BUDGET = 0.05  # share of clean weeks with any critical rule, in every market (the goal: at most 5%)
WARN_BUDGET = 0.15  # share of clean weeks with any warn or critical rule, in every market
TAILS = (0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1)
CONTINUOUS = ("price_level", "price_scale", "intraday_shape", "exogenous_level")
RUN_THRESHOLDS = {"warn": 12.0, "critical": 24.0}  # price_stuck, exogenous_frozen (hours)
# the goal: >= 90% detection within one week of these
GOAL = {
    "price_level": "price_level x1.3",
    "price_scale": "price_scale x2",
    "intraday_shape": "intraday_shape x0",
    "exogenous_level": "exogenous_level +20%",
    "exogenous_frozen": "exogenous_frozen 168h",
}
GOAL_DETECTION = 0.9


def _scale_deviations(series: pd.Series, groups: Any, factor: float) -> pd.Series:
    mean = series.groupby(groups).transform("mean")
    return mean + factor * (series - mean)


def injections(current: pd.DataFrame, before_price: float, timezone: str, exogenous: list[str]):
    """(change name, family, subject, the changed current frame) for every graded change."""
    price = current["price"]
    week = np.zeros(len(current), dtype=int)
    local_day = current.index.tz_convert(timezone).normalize()
    for factor in (1.15, 1.3, 1.5):
        yield f"price_level x{factor:g}", "price_level", None, current.assign(price=price * factor)
    for factor in (1.5, 2.0, 3.0):
        yield (
            f"price_scale x{factor:g}",
            "price_scale",
            None,
            current.assign(price=_scale_deviations(price, week, factor)),
        )
    for factor in (0.5, 0.25, 0.0):
        changed = _scale_deviations(price, local_day, factor)
        yield f"intraday_shape x{factor:g}", "intraday_shape", None, current.assign(price=changed)
    yield "flat_week", "intraday_shape", None, current.assign(price=float(price.mean()))
    for hours in (12, 24, 48, 168):
        stuck = price.copy()
        stuck.iloc[:hours] = before_price
        yield f"price_stuck {hours}h", "price_stuck", None, current.assign(price=stuck)
    for column in exogenous:
        for change in (0.1, 0.2, 0.3):
            yield (
                f"exogenous_level +{100 * change:.0f}%",
                "exogenous_level",
                column,
                current.assign(**{column: current[column] * (1 + change)}),
            )
        for hours in (12, 24, 168):
            frozen = current[column].copy()
            frozen.iloc[:hours] = frozen.iloc[0]
            yield f"exogenous_frozen {hours}h", "exogenous_frozen", column, current.assign(**{column: frozen})


def score_key(family: str, subject: str | None) -> str:
    return family if subject is None else f"{family}:{subject}"


def measure_region(region: str, position: int, step: int = 1) -> dict[str, Any]:
    """Worker: every eligible week of ``region``, clean and with each injected change: the rules' scores."""
    from core.markets import get_market, load_market
    from core.settings import Settings
    from drift import reports, rules
    from drift.monitor import week_frames

    started = time.perf_counter()
    settings = Settings.from_env({"EOPT_HOME": "/nonexistent-eopt-home"})
    history = load_market(region, settings.stores.market_data_dir)
    prices = history.prices.set_index("ts")["price"]
    exogenous_frame = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    frame = reports.hourly_drift_columns(prices, exogenous_frame)
    exogenous = [str(c) for c in exogenous_frame.columns]
    timezone = get_market(region).timezone
    days = settings.quality.window_days
    dates = weekly_as_of(
        frame.index[0], frame.index[-1] + pd.Timedelta(hours=1), days, settings.training.window_days, step
    )
    weeks = []
    for as_of in tqdm(dates, desc=f"{region} weeks", unit="week", position=position, mininterval=2.0, file=sys.stderr):
        start = as_of - pd.Timedelta(days=days)
        current, before, season = week_frames(frame, start, as_of, settings.training.window_days)
        history = rules.history_of(start, before, season, timezone, exogenous)  # the same for every change

        def scores(changed: pd.DataFrame, history: rules.History = history) -> dict:
            return {
                score_key(m.family, m.subject): round(m.score, 5)
                for m in rules.measure_against(changed, history, timezone, exogenous)
            }

        week: dict[str, Any] = {"as_of": as_of.isoformat(), "clean": scores(current), "changes": {}}
        for name, family, subject, changed in injections(current, float(before["price"].iloc[-1]), timezone, exogenous):
            key = score_key(family, subject)
            measured = scores(changed)
            week["changes"][f"{name}:{subject}" if subject else name] = {"key": key, "scores": measured}
        weeks.append(week)
    return {
        "region": region,
        "exogenous": exogenous,
        "weeks": weeks,
        "seconds": round(time.perf_counter() - started, 1),
        "history": {"first": frame.index[0].isoformat(), "last": frame.index[-1].isoformat()},
    }


# -- analysis -------------------------------------------------------------------------------------


def family_of(key: str) -> str:
    return key.split(":", 1)[0]


def is_critical(scores: dict[str, float], thresholds: dict[str, dict[str, float]], level: str = "critical") -> bool:
    return any(v >= thresholds[family_of(k)][level] for k, v in scores.items() if not math.isnan(v))


def named(change: dict[str, Any], thresholds: dict[str, dict[str, float]]) -> bool:
    value = change["scores"].get(change["key"], math.nan)
    return not math.isnan(value) and value >= thresholds[family_of(change["key"])]["critical"]


def clean_scores(runs: dict[str, dict[str, Any]], family: str) -> np.ndarray:
    """Per clean week, the family's largest score (over its series for the exogenous families), pooled."""
    values = []
    for run in runs.values():
        for week in run["weeks"]:
            mine = [v for k, v in week["clean"].items() if family_of(k) == family and not math.isnan(v)]
            if mine:
                values.append(max(mine))
    return np.asarray(values)


def goal_scores(runs: dict[str, dict[str, Any]], family: str) -> np.ndarray:
    """The family's own score in every week with the goal's change injected, pooled over the markets."""
    values = [
        c["scores"].get(c["key"], math.nan)
        for run in runs.values()
        for w in run["weeks"]
        for label, c in w["changes"].items()
        if label.split(":", 1)[0] == GOAL[family]
    ]
    return np.asarray([v for v in values if not math.isnan(v)])


def choose_thresholds(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The proposal rule of the module docstring: per continuous family a clean-weeks tail share from
    ``TAILS``; among the combinations whose share of clean weeks with any rule at or above its
    threshold stays within the budget, the one whose weakest goal detection (pooled over the
    markets) is highest, ties broken by the sum of the goal detections."""
    weeks = [w for run in runs.values() for w in run["weeks"]]
    market = np.asarray([region for region, run in runs.items() for _ in run["weeks"]])
    clean = np.column_stack(
        [
            [
                max([v for k, v in w["clean"].items() if family_of(k) == f and not math.isnan(v)] or [-math.inf])
                for w in weeks
            ]
            for f in CONTINUOUS
        ]
    )
    runs_clean = np.asarray(
        [
            max([v for k, v in w["clean"].items() if family_of(k) in ("price_stuck", "exogenous_frozen")] or [0.0])
            for w in weeks
        ]
    )
    goals = [goal_scores(runs, f) for f in CONTINUOUS]
    pooled = [clean[:, i][np.isfinite(clean[:, i])] for i in range(len(CONTINUOUS))]
    options = [[float(np.quantile(pooled[i], 1 - t)) for t in TAILS] for i in range(len(CONTINUOUS))]
    detection = [[float((goals[i] >= t).mean()) for t in options[i]] for i in range(len(CONTINUOUS))]
    grid = np.array(np.meshgrid(*[range(len(TAILS))] * len(CONTINUOUS), indexing="ij")).reshape(len(CONTINUOUS), -1).T
    chosen: dict[str, Any] = {}
    for level, budget in (("critical", FALSE_ALARM_BUDGET), ("warn", WARN_BUDGET)):
        run_alarm = runs_clean >= RUN_THRESHOLDS[level]
        best, best_value = None, -1.0
        for combo in grid:
            thresholds = np.asarray([options[i][j] for i, j in enumerate(combo)])
            alarm = (clean >= thresholds).any(axis=1) | run_alarm
            rate = max(float(alarm[market == region].mean()) for region in runs)  # the worst market
            found = [detection[i][j] for i, j in enumerate(combo)]
            value = min(found) + sum(found) / 100  # the weakest family first, then the sum
            if rate <= budget and value > best_value:
                best, best_value = combo, value
        assert best is not None, f"no {level} thresholds within {budget}"
        chosen[level] = {
            **{f: options[i][j] for i, (f, j) in enumerate(zip(CONTINUOUS, best, strict=True))},
            "price_stuck": RUN_THRESHOLDS[level],
            "exogenous_frozen": RUN_THRESHOLDS[level],
        }
        chosen[f"{level}_tails"] = {f: TAILS[j] for f, j in zip(CONTINUOUS, best, strict=True)}
    return chosen


def summarize(run: dict[str, Any], thresholds: dict[str, dict[str, float]]) -> dict[str, Any]:
    weeks = run["weeks"]
    n = len(weeks)
    clean_critical = [w["as_of"] for w in weeks if is_critical(w["clean"], thresholds)]
    clean_warn = sum(is_critical(w["clean"], thresholds, "warn") for w in weeks)
    per_family_false = {
        family: round(
            100
            * sum(
                any(v >= thresholds[family]["critical"] for k, v in w["clean"].items() if family_of(k) == family)
                for w in weeks
            )
            / n,
            1,
        )
        for family in thresholds
    }
    changes: dict[str, dict[str, Any]] = {}
    for week in weeks:
        for label, change in week["changes"].items():
            name = label.split(":", 1)[0]
            entry = changes.setdefault(name, {"cases": 0, "named": 0, "any_critical": 0})
            entry["cases"] += 1
            entry["named"] += named(change, thresholds)
            entry["any_critical"] += is_critical(change["scores"], thresholds)
    for entry in changes.values():
        entry["named_pct"] = round(100 * entry["named"] / entry["cases"], 1)
        entry["any_critical_pct"] = round(100 * entry["any_critical"] / entry["cases"], 1)
    return {
        "weeks": n,
        "first_as_of": weeks[0]["as_of"],
        "last_as_of": weeks[-1]["as_of"],
        "clean_critical_weeks": len(clean_critical),
        "clean_critical_pct": round(100 * len(clean_critical) / n, 1),
        "clean_warn_or_critical_pct": round(100 * clean_warn / n, 1),
        "clean_critical_as_of": clean_critical,
        "false_alarm_pct_per_family": per_family_false,
        "changes": changes,
        "seconds": run["seconds"],
    }


def operating_curves(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Per continuous family, as its critical threshold moves: % of clean weeks at or above it (the
    family alone) and % of weeks with the goal's change whose own score is at or above it."""
    curves: dict[str, dict[str, list[float]]] = {}
    for family in CONTINUOUS:
        clean = clean_scores(runs, family)
        goal = GOAL[family]
        changed = np.asarray(
            [
                c["scores"].get(c["key"], math.nan)
                for run in runs.values()
                for w in run["weeks"]
                for label, c in w["changes"].items()
                if label.split(":", 1)[0] == goal
            ]
        )
        changed = changed[~np.isnan(changed)]
        grid = np.unique(np.quantile(np.concatenate([clean, changed]), np.linspace(0, 1, 201)))
        curves[family] = {
            "threshold": [round(float(t), 4) for t in grid],
            "false_alarm_pct": [round(100 * float((clean >= t).mean()), 2) for t in grid],
            "detection_pct": [round(100 * float((changed >= t).mean()), 2) for t in grid],
        }
    return curves


def draw(curves: dict[str, dict[str, list[float]]], product: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4.0))
    for ax, (family, curve) in zip(axes, curves.items(), strict=True):
        ax.plot(curve["false_alarm_pct"], curve["detection_pct"], color="#0969da")
        t = np.asarray(curve["threshold"])
        at = int(np.argmin(np.abs(t - product[family]["critical"])))
        ax.scatter([curve["false_alarm_pct"][at]], [curve["detection_pct"][at]], color="#cf222e", zorder=3)
        ax.annotate(
            f"critical {product[family]['critical']:g}",
            (curve["false_alarm_pct"][at], curve["detection_pct"][at]),
            textcoords="offset points",
            xytext=(8, -14),
        )
        ax.axhline(100 * GOAL_DETECTION, color="#6e7781", linestyle=":", linewidth=1)
        ax.axvline(5, color="#6e7781", linestyle=":", linewidth=1)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 101)
        ax.set_title(f"{family}\n(change: {GOAL[family].split(' ', 1)[1]})", fontsize=10)
        ax.set_xlabel("clean weeks at or above, % (this family)")
    axes[0].set_ylabel("weeks with the change detected, %")
    fig.suptitle("Drift rules: operating curves on every real week of NP, PJM, BE, FR (red: product threshold)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(summaries: dict[str, dict[str, Any]], product: dict[str, dict[str, float]], wall_s: float) -> list[str]:
    names = list(next(iter(summaries.values()))["changes"])
    regions = list(summaries)
    lines = [
        f"| change in the current week | {' | '.join(regions)} |",
        f"|---|{'---|' * len(regions)}",
        "| none: weeks critical (any rule) | "
        + " | ".join(
            f"{s['clean_critical_pct']:g}% ({s['clean_critical_weeks']}/{s['weeks']})" for s in summaries.values()
        )
        + " |",
        "| none: weeks warn or critical | "
        + " | ".join(f"{s['clean_warn_or_critical_pct']:g}%" for s in summaries.values())
        + " |",
    ]
    for name in names:
        goal = " (goal)" if name in GOAL.values() else ""
        lines.append(
            f"| {name}{goal} | "
            + " | ".join(
                f"{s['changes'][name]['named_pct']:g}% ({s['changes'][name]['any_critical_pct']:g}%)"
                for s in summaries.values()
            )
            + " |"
        )
    lines += [
        "",
        "Cells: % of weeks where the change's own rule is critical (naming the family and, for an exogenous "
        "change, the series), and in brackets where any rule is critical. Exogenous changes are injected into "
        "each series on its own, so their count is weeks x series.",
        "",
        "| rule | warn | critical | clean weeks critical by this rule alone, % per market |",
        "|---|---|---|---|",
    ]
    for family, levels in product.items():
        alone = ", ".join(f"{r} {s['false_alarm_pct_per_family'][family]:g}" for r, s in summaries.items())
        lines.append(f"| {family} | {levels['warn']:g} | {levels['critical']:g} | {alone} |")
    lines += ["", f"Whole run {wall_s:.0f} s."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", default="NP,PJM,BE,FR")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--step", type=int, default=1, help="every STEP-th week only (quick exploration; the record uses 1)"
    )
    parser.add_argument(
        "--scores",
        type=Path,
        help="JSON file of the measured scores: read when it exists (analysis only), else written",
    )
    args = parser.parse_args()
    regions = [r.strip().upper() for r in args.regions.split(",") if r.strip()]
    logging.basicConfig(level=logging.WARNING)
    from drift.rules import RULES

    started = time.perf_counter()
    if args.scores and args.scores.is_file():
        runs = json.loads(args.scores.read_text())
        wall_s = sum(r["seconds"] for r in runs.values()) / min(args.jobs, len(regions))
    else:
        with ProcessPoolExecutor(max_workers=min(args.jobs, len(regions))) as pool:
            futures = [pool.submit(measure_region, region, i, args.step) for i, region in enumerate(regions)]
            runs = {region: future.result() for region, future in zip(regions, futures, strict=True)}
        wall_s = time.perf_counter() - started
        if args.scores:
            args.scores.write_text(json.dumps(runs))
    print("\n" * len(regions), file=sys.stderr)

    product = {f: {"warn": float(r.warn), "critical": float(r.critical)} for f, r in RULES.items()}
    proposed = choose_thresholds(runs)
    proposed_levels = {f: {"warn": proposed["warn"][f], "critical": proposed["critical"][f]} for f in RULES}
    summaries = {region: summarize(run, product) for region, run in runs.items()}
    with_proposed = {region: summarize(run, proposed_levels) for region, run in runs.items()}
    curves = operating_curves(runs)
    draw(curves, product, RESULTS / f"{NAME}.png")
    pooled_weeks = sum(s["weeks"] for s in summaries.values())
    pooled_critical = sum(s["clean_critical_weeks"] for s in summaries.values())
    goals = {
        family: {region: s["changes"][change]["named_pct"] for region, s in summaries.items()}
        for family, change in GOAL.items()
    }
    results = {
        "machine": describe_machine(),
        "seeds": None,  # nothing random: the injected changes are deterministic
        "wall_seconds": round(wall_s, 1),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "settings": {
            "regions": regions,
            "jobs": args.jobs,
            "step_weeks": args.step,
            "false_alarm_budget": FALSE_ALARM_BUDGET,
            "warn_budget": WARN_BUDGET,
        },
        "product_thresholds": product,
        "proposed_thresholds": proposed,
        "all_markets": {
            "weeks": pooled_weeks,
            "clean_critical_weeks": pooled_critical,
            "clean_critical_pct": round(100 * pooled_critical / pooled_weeks, 1),
        },
        "goal_detection_pct": goals,
        "markets": summaries,
        "markets_at_proposed_thresholds": with_proposed,
        "operating_curves": curves,
        "history": {region: run["history"] for region, run in runs.items()},
        "clean_scores": {
            region: [{"as_of": w["as_of"], "scores": w["clean"]} for w in run["weeks"]] for region, run in runs.items()
        },
    }
    lines = _table(summaries, product, wall_s)
    lines += [
        "",
        f"All markets: {pooled_critical} of {pooled_weeks} clean weeks critical "
        f"({100 * pooled_critical / pooled_weeks:.1f}%). The proposal rule (docstring of benchmarks/drift_power.py) "
        "gives critical: "
        + ", ".join(f"{f} {v:.3g}" for f, v in proposed["critical"].items())
        + " (clean tails "
        + ", ".join(f"{f} {v:g}" for f, v in proposed["critical_tails"].items())
        + "); warn: "
        + ", ".join(f"{f} {v:.3g}" for f, v in proposed["warn"].items())
        + ". Operating curves: drift_power.png.",
    ]
    write_results(
        RESULTS, NAME, results, "Drift rules: detection of injected changes and false alarms on real weeks", lines
    )


if __name__ == "__main__":
    main()
