"""Forecast error metrics, always reported together (DESIGN §4): MAE, rMAE, sMAPE, RMSE, MAPE.

- rMAE is the MAE divided by the MAE of the weekly seasonal-naive forecast ``y(t - 168 h)`` on
  the same hours (Lago et al. 2021): below 1 beats the naive, 0.6 is 40% better.
- sMAPE is ``mean(|y - yhat| / ((|y| + |yhat|) / 2)) * 100``, with an hour where both are 0
  counted as 0 error.
- MAPE is guarded here and only here: prices reach zero and go negative, where a percentage of
  the actual is meaningless or infinite. It is computed over the hours with ``|y| >= MAPE_FLOOR``
  (1 currency unit per MWh) and reported with ``mape_excluded_share``, the share of hours left
  out. No decision reads MAPE alone; the promotion gate reads MAE and rMAE.
"""

from __future__ import annotations

import numpy as np

MAPE_FLOOR = 1.0
METRIC_NAMES = ("mae", "rmae", "smape", "rmse", "mape", "mape_excluded_share")


class MetricsError(ValueError):
    """Predictions cannot be scored (shape mismatch, NaN or infinite values)."""


def _arrays(actual, predicted, what: str = "predictions") -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(actual, dtype=float).ravel()
    yhat = np.asarray(predicted, dtype=float).ravel()
    if y.shape != yhat.shape:
        raise MetricsError(f"{what}: {yhat.size} values for {y.size} actual hours")
    if y.size == 0:
        raise MetricsError(f"{what}: no hours to score")
    if not np.isfinite(yhat).all():
        bad = int((~np.isfinite(yhat)).sum())
        raise MetricsError(f"{what}: {bad} of {yhat.size} values are NaN or infinite")
    if not np.isfinite(y).all():
        raise MetricsError(f"{what}: the actual prices hold NaN or infinite values")
    return y, yhat


def mae(actual, predicted) -> float:
    y, yhat = _arrays(actual, predicted)
    return float(np.mean(np.abs(y - yhat)))


def rmse(actual, predicted) -> float:
    y, yhat = _arrays(actual, predicted)
    return float(np.sqrt(np.mean((y - yhat) ** 2)))


def smape(actual, predicted) -> float:
    y, yhat = _arrays(actual, predicted)
    scale = (np.abs(y) + np.abs(yhat)) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(scale > 0, np.abs(y - yhat) / scale, 0.0)
    return float(np.mean(ratio) * 100)


def guarded_mape(actual, predicted, floor: float = MAPE_FLOOR) -> tuple[float, float]:
    """(MAPE in % over hours with ``|y| >= floor``, share of hours excluded); NaN MAPE if none qualify."""
    y, yhat = _arrays(actual, predicted)
    keep = np.abs(y) >= floor
    excluded = float(1 - keep.mean())
    if not keep.any():
        return float("nan"), excluded
    return float(np.mean(np.abs((y[keep] - yhat[keep]) / y[keep])) * 100), excluded


def evaluate(actual, predicted, naive) -> dict[str, float]:
    """All metrics of one forecast; ``naive`` is the seasonal-naive forecast of the same hours."""
    y, yhat = _arrays(actual, predicted)
    _, naive_values = _arrays(y, naive, "seasonal-naive forecast")
    naive_mae = float(np.mean(np.abs(y - naive_values)))
    error = mae(y, yhat)
    mape_value, excluded = guarded_mape(y, yhat)
    return {
        "mae": error,
        "rmae": error / naive_mae if naive_mae > 0 else float("nan"),
        "smape": smape(y, yhat),
        "rmse": rmse(y, yhat),
        "mape": mape_value,
        "mape_excluded_share": excluded,
    }


def interval_coverage(actual, lower, upper) -> float:
    """Share of hours whose actual price lies inside ``[lower, upper]``."""
    y = np.asarray(actual, dtype=float)
    return float(np.mean((y >= np.asarray(lower, dtype=float)) & (y <= np.asarray(upper, dtype=float))))
