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

import math
from dataclasses import dataclass

import numpy as np

MAPE_FLOOR = 1.0
METRIC_NAMES = ("mae", "rmae", "smape", "rmse", "mape", "mape_excluded_share")
WEEK_HOURS = 168
DAY_HOURS = 24


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


def epf_rmae(actual, predicted, season_hours: int = WEEK_HOURS) -> float:
    """rMAE of the EPF benchmark: MAE over all hours / MAE of ``y(t - season_hours)`` over hours ``season_hours..``.

    The naive is built from ``actual`` itself (the scored period's own prices), so its first
    ``season_hours`` have no naive forecast and are left out of the denominator only.
    """
    y, yhat = _arrays(actual, predicted)
    if y.size <= season_hours:
        raise MetricsError(f"rMAE: {y.size} hours leave no weekly naive forecast (needs more than {season_hours})")
    naive_mae = float(np.mean(np.abs(y[season_hours:] - y[:-season_hours])))
    return float(np.mean(np.abs(y - yhat))) / naive_mae if naive_mae > 0 else float("nan")


def evaluate_epf(actual, predicted) -> dict[str, float]:
    """:func:`evaluate`'s metrics with the EPF benchmark's rMAE (:func:`epf_rmae`) in place of ``rmae``."""
    y, yhat = _arrays(actual, predicted)
    mape_value, excluded = guarded_mape(y, yhat)
    return {
        "mae": mae(y, yhat),
        "rmae": epf_rmae(y, yhat),
        "smape": smape(y, yhat),
        "rmse": rmse(y, yhat),
        "mape": mape_value,
        "mape_excluded_share": excluded,
    }


@dataclass(frozen=True)
class DieboldMariano:
    """One-sided multivariate DM test. H0: forecast B is not more accurate than forecast A.

    ``statistic`` is positive when B's daily L1 loss is lower on average; a small ``p_value``
    rejects H0, i.e. B is significantly more accurate than A.
    """

    statistic: float
    p_value: float
    days: int
    mean_daily_loss_difference: float  # mean over days of (A's - B's) mean absolute error of the day


def diebold_mariano(actual, forecast_a, forecast_b, hours_per_day: int = DAY_HOURS) -> DieboldMariano:
    """Multivariate Diebold-Mariano test on the days' L1 losses (Lago et al. 2021, Sect. 2.6).

    For each day ``d``: ``delta_d = mean_h |y - a| - mean_h |y - b|`` over its 24 hours (the
    paper writes the L1 norm of the 24-vector; the factor 1/24 cancels in the statistic). Then
    ``DM = mean(delta) / sqrt(var(delta) / N)`` (population variance) and, under H0, DM is
    standard normal: ``p = 1 - Phi(DM)``. Rows must be whole days in time order.
    """
    y, a = _arrays(actual, forecast_a, "forecast A")
    _, b = _arrays(y, forecast_b, "forecast B")
    if y.size % hours_per_day:
        raise MetricsError(f"Diebold-Mariano: {y.size} hours are not whole days of {hours_per_day} hours")
    days = y.size // hours_per_day
    if days < 2:
        raise MetricsError(f"Diebold-Mariano: {days} day(s); the test needs at least 2")
    loss_a = np.abs(y - a).reshape(days, hours_per_day).mean(axis=1)
    loss_b = np.abs(y - b).reshape(days, hours_per_day).mean(axis=1)
    delta = loss_a - loss_b
    mean_delta = float(delta.mean())
    spread = float(np.sqrt(delta.var() / days))
    if spread == 0.0:  # identical daily losses every day, or a constant difference
        statistic = 0.0 if mean_delta == 0.0 else math.copysign(math.inf, mean_delta)
    else:
        statistic = mean_delta / spread
    p_value = 0.5 * math.erfc(statistic / math.sqrt(2))  # 1 - Phi(statistic)
    return DieboldMariano(statistic, p_value, days, mean_delta)


def pinball_loss(actual, quantile_forecasts, quantiles) -> float:
    """Mean pinball (quantile) loss over the hours and the quantile levels.

    ``quantile_forecasts`` has one row per hour and one column per level of ``quantiles``
    (each in (0, 1)); the loss of level ``q`` at an hour is ``max(q (y - f), (q - 1) (y - f))``.
    """
    y = np.asarray(actual, dtype=float).ravel()
    levels = np.asarray(quantiles, dtype=float).ravel()
    forecasts = np.asarray(quantile_forecasts, dtype=float)
    if forecasts.shape != (y.size, levels.size):
        raise MetricsError(
            f"pinball loss: quantile forecasts of shape {forecasts.shape} for {y.size} hours and {levels.size} levels"
        )
    if not ((levels > 0) & (levels < 1)).all():
        raise MetricsError("pinball loss: quantile levels must lie strictly between 0 and 1")
    _arrays(np.repeat(y, levels.size), forecasts.ravel(), "quantile forecasts")
    difference = y[:, None] - forecasts
    return float(np.mean(np.maximum(levels * difference, (levels - 1) * difference)))


@dataclass(frozen=True)
class KupiecTest:
    """Kupiec's (1995) unconditional coverage (proportion of failures) test of an interval."""

    nominal: float
    coverage: float  # share of hours inside [lower, upper]
    hours: int
    misses: int
    statistic: float  # likelihood ratio, chi-squared with one degree of freedom under H0
    p_value: float  # small: the coverage differs significantly from the nominal


def kupiec_test(actual, lower, upper, nominal: float) -> KupiecTest:
    """``LR = -2 ln[(1-p)^(n-x) p^x / ((1-x/n)^(n-x) (x/n)^x)]`` with ``p = 1 - nominal`` and ``x`` misses of ``n``."""
    if not 0 < nominal < 1:
        raise MetricsError(f"Kupiec test: nominal coverage {nominal} must lie strictly between 0 and 1")
    y, lo = _arrays(actual, lower, "lower bounds")
    _, hi = _arrays(y, upper, "upper bounds")
    n = y.size
    misses = int(np.sum((y < lo) | (y > hi)))
    p = 1 - nominal

    def log_likelihood(rate: float) -> float:
        hits = (n - misses) * math.log1p(-rate) if misses < n else 0.0
        return hits + (misses * math.log(rate) if misses else 0.0)

    statistic = max(0.0, -2 * (log_likelihood(p) - log_likelihood(misses / n)))
    p_value = math.erfc(math.sqrt(statistic / 2))  # the chi-squared(1) survival function
    return KupiecTest(nominal, 1 - misses / n, n, misses, statistic, p_value)
