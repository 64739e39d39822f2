"""The weekly model evaluation: each region's realised accuracy over the last 1, 4 and 13 weeks.

The forecasts scored are the ones served (``quality.checks.served_forecasts``: per target hour,
its day-ahead forecast, issued at the local midnight that began its day), the model's only (seasonal-naive fallback hours are
counted, not scored), against the stored prices (``read_canonical``). Per window:

- ``mae``: mean absolute error of the served forecasts, per MWh;
- ``rmae``: that MAE divided by the MAE of the weekly seasonal naive ``y(t - 168 h)`` on the same
  hours (``core.metrics``: the figure the promotion gate and the data-quality check read);
- ``coverage``: share of the hours with a served interval whose price lay inside ``[lower, upper]``.

Each row carries the champion's figures at promotion (``quality.checks.promotion_figures``), so
a table row reads "served MAE 4.1 over 4 weeks, 3.2 when promoted". The trend is the same scores
per week over the 13 weeks, drawn as a picture (``trend_plot``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render to files only
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from core.metrics import WEEK_HOURS, interval_coverage
from core.timestamps import utc
from quality.checks import PromotionFigures, Window, promotion_figures, served_forecasts
from storage.prices import PriceStore

EVALUATION_WEEKS = (1, 4, 13)
WEEK = pd.Timedelta(days=7)
SEASON = pd.Timedelta(hours=WEEK_HOURS)

TABLE_COLUMNS = (
    "region",
    "weeks",
    "start",
    "end",
    "hours",
    "fallback_hours",
    "mae",
    "rmae",
    "coverage",
    "interval_hours",
    "model_versions",
    "champion_version",
    "promotion_mae",
    "promotion_rmae",
    "promotion_source",
)
TREND_COLUMNS = ("region", "week_start", "hours", "mae", "rmae", "coverage")


@dataclass(frozen=True)
class Scores:
    hours: int
    fallback_hours: int
    mae: float
    rmae: float
    coverage: float
    interval_hours: int
    model_versions: str


def scores(served: pd.DataFrame, prices: pd.Series) -> Scores:
    """MAE, rMAE and interval coverage of the model-served hours in ``served`` whose price (and the
    price a week before) is stored; NaN where no hour qualifies."""
    fallback = int(served["is_fallback"].sum())
    models = served[~served["is_fallback"]]
    hours = pd.DatetimeIndex(models["target_ts"])
    actual = prices.reindex(hours).to_numpy(float)
    naive = prices.reindex(hours - SEASON).to_numpy(float)
    known = np.isfinite(actual) & np.isfinite(naive)
    versions = ",".join(sorted(models["model_version"].astype(str).unique(), key=lambda v: (len(v), v)))
    if not known.any():
        return Scores(0, fallback, math.nan, math.nan, math.nan, 0, versions)
    y, yhat, ref = actual[known], models["yhat"].to_numpy(float)[known], naive[known]
    error = float(np.mean(np.abs(y - yhat)))
    naive_error = float(np.mean(np.abs(y - ref)))
    lower, upper = models["lower"].to_numpy(float)[known], models["upper"].to_numpy(float)[known]
    banded = np.isfinite(lower) & np.isfinite(upper)
    coverage = interval_coverage(y[banded], lower[banded], upper[banded]) if banded.any() else math.nan
    return Scores(
        hours=int(known.sum()),
        fallback_hours=fallback,
        mae=error,
        rmae=error / naive_error if naive_error > 0 else math.nan,
        coverage=coverage,
        interval_hours=int(banded.sum()),
        model_versions=versions,
    )


def evaluate_region(
    region: str,
    served: pd.DataFrame,
    prices: pd.Series,
    as_of: pd.Timestamp,
    promoted: PromotionFigures | None,
    weeks: Iterable[int] = EVALUATION_WEEKS,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(a table row per window of ``weeks``, a trend row per week of the longest window), all ending at ``as_of``."""
    end = utc(as_of).floor("h")
    weeks = tuple(weeks)
    promotion = {
        "champion_version": None if promoted is None else promoted.version,
        "promotion_mae": None if promoted is None else promoted.mae,
        "promotion_rmae": None if promoted is None else promoted.rmae,
        "promotion_source": None if promoted is None else promoted.source,
    }
    table = []
    for count in weeks:
        start = end - count * WEEK
        chosen = served[(served["target_ts"] >= start) & (served["target_ts"] < end)]
        table.append(
            {
                "region": region,
                "weeks": count,
                "start": start,
                "end": end,
                **scores(chosen, prices).__dict__,
                **promotion,
            }
        )
    trend = []
    for index in range(max(weeks), 0, -1):
        start = end - index * WEEK
        chosen = served[(served["target_ts"] >= start) & (served["target_ts"] < start + WEEK)]
        week = scores(chosen, prices)
        trend.append(
            {
                "region": region,
                "week_start": start,
                "hours": week.hours,
                "mae": week.mae,
                "rmae": week.rmae,
                "coverage": week.coverage,
            }
        )
    return table, trend


def evaluate_models(
    store: PriceStore,
    client: Any,
    regions: Iterable[str],
    as_of: pd.Timestamp,
    weeks: Iterable[int] = EVALUATION_WEEKS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, trend) of every region, read from the forecast and price store and the registry."""
    weeks = tuple(weeks)
    window = Window.before(as_of, 7 * max(weeks))
    table: list[dict[str, Any]] = []
    trend: list[dict[str, Any]] = []
    for region in regions:
        served = served_forecasts(store.engine, region, window)
        canonical = store.read_canonical(region, window.start - SEASON, window.end)
        prices = pd.Series(canonical["price"].to_numpy(float), index=pd.DatetimeIndex(canonical["ts"]))
        promoted = promotion_figures(store.engine, client, region) if client is not None else None
        rows, weekly = evaluate_region(region, served, prices, window.end, promoted, weeks)
        table += rows
        trend += weekly
    return (
        pd.DataFrame(table, columns=list(TABLE_COLUMNS)),
        pd.DataFrame(trend, columns=list(TREND_COLUMNS)),
    )


def trend_plot(trend: pd.DataFrame, table: pd.DataFrame, path: Path, title: str) -> Path:
    """Per region, the weekly MAE and rMAE of the served forecasts, with the champion's figures at
    promotion as dashed lines and rMAE 1 (the weekly seasonal naive) as a dotted line."""
    regions = list(dict.fromkeys(trend["region"]))
    fig, axes = plt.subplots(len(regions) or 1, 2, figsize=(12, 3.2 * max(len(regions), 1)), dpi=110, squeeze=False)
    for row, region in enumerate(regions):
        weekly = trend[trend["region"] == region]
        promotion = table[table["region"] == region].iloc[0] if (table["region"] == region).any() else None
        for column, (metric, label) in enumerate((("mae", "MAE per MWh"), ("rmae", "rMAE"))):
            ax = axes[row][column]
            ax.plot(weekly["week_start"], weekly[metric], marker="o", color="tab:blue", label="served, per week")
            if promotion is not None and pd.notna(promotion[f"promotion_{metric}"]):
                ax.axhline(
                    float(promotion[f"promotion_{metric}"]),
                    color="tab:green",
                    ls="--",
                    label=f"v{promotion['champion_version']} at promotion",
                )
            if metric == "rmae":
                ax.axhline(1.0, color="tab:gray", ls=":", label="weekly seasonal naive")
            ax.set_title(f"{region}: {label}")
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
