"""Pictures a person reads faster than tables: forecast vs actual, feature importance, tuning history."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen: render to files only
import matplotlib.pyplot as plt
import pandas as pd

# The fan: the central intervals shaded around the point forecast, widest first (lightest).
FAN = ((0.9, "q05", "q95", 0.15), (0.5, "q25", "q75", 0.3))


def fan_bands(frame: pd.DataFrame) -> list[tuple[str, str, str, float]]:
    """The bands the picture shades: (label, lower column, upper column, opacity), widest first.

    The 90% (``q05``..``q95``) and 50% (``q25``..``q75``) central intervals when the frame has
    those quantiles; else the ``lower``/``upper`` interval (a model trained before the quantiles);
    else none (the seasonal-naive fallback)."""
    bands = [
        (f"{coverage:.0%} interval ({lo}..{hi})", lo, hi, alpha)
        for coverage, lo, hi, alpha in FAN
        if {lo, hi} <= set(frame.columns) and frame[[lo, hi]].notna().any().all()
    ]
    if bands:
        return bands
    if {"lower", "upper"} <= set(frame.columns) and frame[["lower", "upper"]].notna().any().all():
        return [("forecast interval", "lower", "upper", 0.18)]
    return []


def forecast_vs_actual(frame: pd.DataFrame, path: Path, title: str, days: int = 14) -> Path:
    """The last ``days`` of a forecast frame (columns target_ts, price, yhat; optionally lower and upper,
    the quantiles q05 .. q95 and naive), with the forecast's fan (:func:`fan_bands`) shaded around
    the point forecast."""
    frame = frame.sort_values("target_ts")
    last = frame[frame["target_ts"] >= frame["target_ts"].max() - pd.Timedelta(days=days)]
    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=110)
    for label, lo, hi, alpha in fan_bands(last):
        ax.fill_between(last["target_ts"], last[lo], last[hi], color="tab:blue", alpha=alpha, lw=0, label=label)
    ax.plot(last["target_ts"], last["price"], color="black", lw=1.3, label="actual")
    ax.plot(last["target_ts"], last["yhat"], color="tab:blue", lw=1.2, label="forecast")
    if "naive" in last.columns:
        ax.plot(last["target_ts"], last["naive"], color="tab:gray", lw=0.8, ls="--", label="seasonal naive (t-168 h)")
    ax.set_title(title)
    ax.set_ylabel("price per MWh")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def feature_importance(importance: pd.Series, path: Path, title: str, top: int = 20) -> Path:
    shown = importance.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.2), dpi=110)
    ax.barh(shown.index, shown.values, color="tab:green")
    ax.set_title(title)
    ax.set_xlabel("gain")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def tuning_history(trials: pd.DataFrame, path: Path, title: str) -> Path:
    """Each trial's validation MAE (pruned trials at their last reported value) and the running best."""
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    done = trials[trials["state"] == "COMPLETE"]
    ax.scatter(done["number"], done["value"], s=18, color="tab:blue", label="complete")
    pruned = trials[trials["state"] == "PRUNED"]
    if not pruned.empty:
        ax.scatter(pruned["number"], pruned["value"], s=18, marker="x", color="tab:red", label="pruned")
    if not done.empty:
        ax.step(done["number"], done["value"].cummin(), where="post", color="black", lw=1, label="best so far")
    ax.set_title(title)
    ax.set_xlabel("trial")
    ax.set_ylabel("validation MAE")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
