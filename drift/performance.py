"""Forecast-performance drift: a one-sided CUSUM on the champion's realised daily absolute errors.

The inputs can look normal while a model goes stale; what the forecaster is for is its error. The
reference is the distribution of the champion's own absolute errors on its test window at
promotion, stored by the promotion gate as the artifact ``promotion/holdout_errors_v<version>.json``
of the version's run (``registry.promotion``); a champion promoted without it (by hand, or before the
artifact existed) is re-scored on its test window instead, and the result says which.

Hourly errors are not independent (a bad day is 24 bad hours: on real errors an hourly CUSUM
pages for most normal weeks), so the unit is the day: the mean absolute error ``MAE_d`` of each UTC
day with at least ``MIN_DAY_HOURS`` realised hours of the served forecasts (each hour's day-ahead
forecast, issued at the local midnight that began its day like the reference's,
``drift.monitor.realized_forecasts``).

What the champion should have scored on a day depends on how hard the day was. The calibration
(``reference_of``): the weekly seasonal naive's error the same hours, ``NMAE_d`` (``naive_errors``,
from the stored prices), times ``rho0``, the champion's daily MAE over the naive's on the
reference (its rMAE at promotion); ``sigma0`` is the standard deviation of the reference's daily
surplus ``MAE_d - rho0 NMAE_d``. Without the prices a week before the reference, the expected
error is the reference's mean ``mu0`` and ``sigma0`` the spread of its daily MAE (the absolute
calibration: it read a volatile week after a calm holdout as a stale champion). Each day gives

    x_d = min((MAE_d - expected_d) / sigma0, CAP),  S_0 = 0,  S_d = max(0, S_{d-1} + x_d - k)

with ``k`` half the shift the CUSUM is tuned to, the mean absolute error grown by half
(``ERROR_GROWTH``): ``delta = 0.5 mu0 / sigma0``, ``k = delta / 2``. Critical from ``CRITICAL_H``,
warn from ``WARN_H`` = ``CAP``: one bad day alone cannot even warn. Measured on real champions'
errors (the published LEAR and DNN ensembles of the four markets, every week:
``benchmarks/drift_performance.py``): see docs/drift.md for the false-alarm rate and the delay
after errors x1.5. The run length of the CUSUM on independent normal data is Siegmund's
(``siegmund_arl``), the textbook reference the tests check the implementation against.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from core.check_results import CheckResult, Status, skipped
from core.settings import Settings
from drift import reports
from drift.monitor import champion_test_predictions, realized_forecasts
from registry.models import champion as find_champion
from registry.promotion import holdout_errors_artifact
from storage.prices import PriceStore
from training import tracking

log = logging.getLogger(__name__)

CHECK_NAME, SUBJECT = "drift", "performance"
ERROR_GROWTH = 0.5  # the growth of the mean absolute error the CUSUM is tuned to (k = half of it)
WARN_H, CRITICAL_H = 2.5, 3.0  # decision intervals, in sigma0; WARN_H = CAP: one day alone cannot even warn
MIN_DAY_HOURS = 12  # a day with fewer realised hours is left out
MIN_HOURS = 24  # fewest realised hours worth a verdict (one day)
NAIVE_LAG = pd.Timedelta(hours=168)  # the weekly seasonal naive: the price a week before
CAP = 2.5  # a day's standardised surplus counts at most this much (see ``standardised_days``)


@dataclass(frozen=True)
class CusumResult:
    path: np.ndarray  # S_t
    first_alarm: int | None  # index of the first t with S_t >= h, None without


def cusum(values: np.ndarray, k: float, h: float) -> CusumResult:
    """Page's one-sided (upper) tabular CUSUM of standardised ``values``: S_t = max(0, S_{t-1} + x_t - k)."""
    path = np.empty(len(values))
    level = 0.0
    first = None
    for i, x in enumerate(np.asarray(values, dtype=float)):
        level = max(0.0, level + x - k)
        path[i] = level
        if first is None and level >= h:
            first = i
    return CusumResult(path, first)


def siegmund_arl(k: float, h: float, shift: float = 0.0) -> float:
    """Siegmund's approximation of the average run length of the upper CUSUM on N(shift, 1) data
    (Siegmund 1985; Montgomery, Introduction to Statistical Quality Control, eq. 9.13)."""
    delta = shift - k
    b = h + 1.166
    if abs(delta) < 1e-12:
        return b * b
    return (math.exp(-2 * delta * b) + 2 * delta * b - 1) / (2 * delta * delta)


@dataclass(frozen=True)
class ErrorReference:
    mean: float  # the champion's mean absolute error on the reference hours, mu0
    daily_std: float  # sigma0: standard deviation of its daily surplus over the expected error (see ``expected``)
    hours: int
    days: int
    source: str
    naive_ratio: float = math.nan  # rho0: its daily MAE over the weekly seasonal naive's, NaN without naive errors

    @property
    def relative(self) -> bool:
        """Whether each day's expected error follows the seasonal naive's error that day."""
        return math.isfinite(self.naive_ratio)


def daily_mae(errors: pd.Series) -> pd.Series:
    """Mean absolute error per UTC day of the hours (the index) with at least ``MIN_DAY_HOURS`` known."""
    errors = errors.dropna().abs()
    days = errors.groupby(pd.DatetimeIndex(errors.index).tz_convert("UTC").floor("D")).agg(["mean", "size"])
    return days.loc[days["size"] >= MIN_DAY_HOURS, "mean"]


def naive_errors(prices: pd.Series, hours: pd.Index) -> pd.Series:
    """The weekly seasonal naive's absolute error of each of ``hours``: |p(t) - p(t - 168 h)| (NaN where
    either price is unknown). It says how hard each day was to forecast: a week of volatile prices
    raises every forecaster's error, the champion's and the naive's together."""
    prices = prices.sort_index()
    hours = pd.DatetimeIndex(hours)
    now = prices.reindex(hours).to_numpy(dtype=float)
    before = prices.reindex(hours - NAIVE_LAG).to_numpy(dtype=float)
    return pd.Series(np.abs(now - before), index=hours)


def _days(errors: pd.Series, naive: pd.Series | None) -> pd.DataFrame:
    """Per UTC day with ``MIN_DAY_HOURS`` known errors (and, given, naive errors): ``mae`` and ``naive_mae``."""
    errors = errors.dropna()
    if naive is not None:
        naive = naive.reindex(errors.index)
        errors = errors[naive.notna().to_numpy()]
    days = pd.DataFrame({"mae": daily_mae(errors)})
    days["naive_mae"] = daily_mae(naive.reindex(errors.index)).reindex(days.index) if naive is not None else np.nan
    return days


def reference_of(errors: pd.Series, source: str, naive: pd.Series | None = None) -> ErrorReference:
    """``errors``: the reference's errors indexed by their target hours; ``naive``: the weekly seasonal
    naive's absolute errors of the same hours (``naive_errors``).

    With ``naive``, a day's expected error is ``rho0`` times the naive's error that day (``rho0``: the
    champion's daily MAE over the naive's on the reference, its rMAE), and ``sigma0`` is the spread
    of the daily surplus over it; without, the expected error is the reference's mean and ``sigma0``
    the spread of its daily MAE. The first is the calibration the check uses where the prices allow
    it: a 14-day holdout of calm prices followed by a volatile week would otherwise read as a
    champion gone stale (docs/drift.md)."""
    known = errors.dropna()
    mean = float(known.abs().mean()) if len(known) else math.nan
    days = _days(errors, naive)
    usable = days.dropna()
    if naive is not None and len(usable) >= 3 and usable["naive_mae"].mean() > 0:
        ratio = float(usable["mae"].mean() / usable["naive_mae"].mean())
        surplus = usable["mae"] - ratio * usable["naive_mae"]
        return ErrorReference(mean, float(surplus.std(ddof=1)), len(known), len(usable), source, ratio)
    return ErrorReference(mean, float(days["mae"].std(ddof=1)), len(known), len(days), source)


def standardised_days(errors: pd.Series, reference: ErrorReference, naive: pd.Series | None) -> pd.DataFrame:
    """Per day: ``mae``, ``naive_mae``, ``expected`` (rho0 x the naive's, or mu0) and ``x``, the surplus
    over the expected error in units of ``sigma0``, capped at ``CAP`` (one bad day alone cannot
    alarm: the CUSUM is for errors that stay high)."""
    days = _days(errors, naive if reference.relative else None)
    if reference.relative:
        days = days.dropna()
        days["expected"] = reference.naive_ratio * days["naive_mae"]
    else:
        days["expected"] = reference.mean
    days["x"] = ((days["mae"] - days["expected"]) / reference.daily_std).clip(upper=CAP)
    return days


def stored_errors(client: MlflowClient, run_id: str, version: str) -> tuple[pd.Series, str] | None:
    """The absolute test-window errors the promotion gate stored for ``version`` on its run (indexed by
    their target hours) and where they come from; None when absent."""
    stored = tracking.read_artifact(
        client, run_id, holdout_errors_artifact(version), lambda p: json.loads(p.read_text())
    )
    if stored is None:
        return None
    errors = pd.Series(stored["absolute_error"], index=pd.to_datetime(stored["target_ts"], utc=True), dtype=float)
    return errors, f"its holdout errors stored at promotion ({stored['holdout']}, run {run_id})"


def _prices(store: PriceStore, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    canonical = store.read_canonical(region, start, end)
    return pd.Series(canonical["price"].to_numpy(float), index=pd.DatetimeIndex(canonical["ts"]))


def reference_from_store(store: PriceStore, region: str, errors: pd.Series, source: str) -> ErrorReference:
    """``reference_of`` the errors, relative to the seasonal naive's errors of the same hours (from the
    stored prices); absolute where the store lacks the prices a week before them."""
    hours = pd.DatetimeIndex(errors.dropna().index)
    if hours.empty:
        return reference_of(errors, source)
    prices = _prices(store, region, hours.min() - NAIVE_LAG, hours.max() + pd.Timedelta(hours=1))
    return reference_of(errors, source, naive_errors(prices, hours))


def performance_drift_of(
    region: str, served: pd.DataFrame, reference: ErrorReference, model: str, naive: pd.Series | None = None
) -> CheckResult:
    """The CUSUM verdict on ``served`` (``target_ts``, ``target``, ``prediction``); ``naive``: the weekly
    seasonal naive's absolute errors of the served hours (``naive_errors``), needed when the reference
    is relative to the naive."""
    errors = pd.Series(
        served[reports.PREDICTION].to_numpy(float) - served[reports.TARGET].to_numpy(float),
        index=pd.DatetimeIndex(served["target_ts"]),
    ).sort_index()
    if not reference.daily_std > 0 or not reference.mean > 0 or reference.days < 3:
        return skipped(
            CHECK_NAME,
            region,
            f"{model}: its reference errors ({reference.source}) have {reference.days} day(s) and no usable spread",
            subject=SUBJECT,
        )
    if reference.relative and naive is None:
        raise ValueError(f"{region}: {model}'s reference is relative to the seasonal naive; pass the naive's errors")
    days = standardised_days(errors, reference, naive)
    if days.empty:
        return skipped(
            CHECK_NAME,
            region,
            f"{model}: no day with {MIN_DAY_HOURS} realised hours"
            + (" whose price a week before is known" if reference.relative else ""),
            subject=SUBJECT,
        )
    delta = ERROR_GROWTH * reference.mean / reference.daily_std
    k = delta / 2
    result = cusum(days["x"].to_numpy(), k, CRITICAL_H)
    peak = float(result.path.max())
    peak_day = pd.Timestamp(days.index[int(result.path.argmax())])
    mae = float(errors.abs().mean())
    status: Status = "critical" if peak >= CRITICAL_H else ("warn" if peak >= WARN_H else "ok")
    growth = mae / reference.mean - 1
    expected = float(days["expected"].mean())
    if reference.relative:
        versus = (
            f"{100 * (days['mae'].mean() / expected - 1):+.0f}% vs the {expected:.2f} expected from its rMAE "
            f"{reference.naive_ratio:.2f} at promotion and the seasonal naive's errors of these days "
            f"({days['naive_mae'].mean():.2f}); {100 * growth:+.0f}% vs its MAE {reference.mean:.2f} on {reference.source}"
        )
    else:
        versus = f"{100 * growth:+.0f}% vs {reference.mean:.2f} of {model} on {reference.source}"
    message = (
        f"forecast errors: CUSUM {peak:.2f} (warn {WARN_H:g}, critical {CRITICAL_H:g}) on {peak_day:%Y-%m-%d}; "
        f"realised MAE {mae:.2f} over {len(errors.dropna())} h ({len(days)} days), {versus}"
    )
    if status == "critical":
        message += "; consider retraining (model_retraining)"
    details: dict[str, Any] = {
        "method": "one-sided tabular CUSUM on each day's surplus of the mean absolute error over the expected "
        "(rho0 x the weekly seasonal naive's that day, or mu0), over sigma0, capped at "
        f"{CAP:g}; k = delta / 2, delta = 0.5 mu0 / sigma0",
        "statistic": round(peak, 3),
        "statistic_day": peak_day.isoformat(),
        "first_alarm": None if result.first_alarm is None else pd.Timestamp(days.index[result.first_alarm]).isoformat(),
        "k": round(k, 4),
        "warn_h": WARN_H,
        "critical_h": CRITICAL_H,
        "hours": int(errors.notna().sum()),
        "daily_mae": {d.date().isoformat(): round(float(v), 4) for d, v in days["mae"].items()},
        "daily_expected_mae": {d.date().isoformat(): round(float(v), 4) for d, v in days["expected"].items()},
        "cusum": [round(float(v), 4) for v in result.path],
        "realised_mae": round(mae, 4),
        "reference": reference.__dict__,
        "model": model,
    }
    return CheckResult(
        CHECK_NAME,
        status,
        message,
        region=region,
        subject=SUBJECT,
        value=round(peak, 3),
        threshold=CRITICAL_H,
        details=details,
    )


def performance_drift(
    settings: Settings, store: PriceStore, client: MlflowClient | None, region: str, as_of: pd.Timestamp
) -> CheckResult:
    """The champion's realised errors of the quality window against its own errors at promotion."""
    end = pd.Timestamp(as_of).tz_convert("UTC")
    start = end - pd.Timedelta(days=settings.quality.window_days)
    if client is None:
        return skipped(CHECK_NAME, region, "no model registry given: no champion to judge", subject=SUBJECT)
    try:
        best = find_champion(client, region)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return skipped(CHECK_NAME, region, f"the model registry could not be read ({reason})", subject=SUBJECT)
    if best is None:
        return skipped(CHECK_NAME, region, f"no champion model of {region}: no errors to follow", subject=SUBJECT)
    model = f"{best.name}/{best.version}"
    prices = _prices(store, region, start - NAIVE_LAG, end)
    served, _ = realized_forecasts(store, region, start, end, prices[prices.index >= start])
    served = served[served["model"] == model]
    if len(served) < MIN_HOURS:
        return skipped(
            CHECK_NAME,
            region,
            f"only {len(served)} realised hour(s) of champion {model}'s forecasts between {start:%Y-%m-%d %H:%M} "
            f"and {end:%Y-%m-%d %H:%M} UTC (need {MIN_HOURS})",
            subject=SUBJECT,
        )
    stored = stored_errors(client, best.run_id, best.version) if best.run_id else None
    reference = reference_from_store(store, region, *stored) if stored else None
    if reference is None:
        params = dict(client.get_run(best.run_id).data.params) if best.run_id else {}
        if not params.get("data_end"):
            return skipped(
                CHECK_NAME,
                region,
                f"champion {model} has neither stored promotion errors nor a data_end param: no reference errors",
                subject=SUBJECT,
            )
        try:
            tested, source = champion_test_predictions(settings, store, best, params, region, client)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return skipped(
                CHECK_NAME,
                region,
                f"champion {model} could not be re-scored on its test window: {reason}",
                subject=SUBJECT,
            )
        reference = reference_from_store(
            store,
            region,
            pd.Series(
                tested[reports.PREDICTION].to_numpy(float) - tested[reports.TARGET].to_numpy(float),
                index=pd.DatetimeIndex(tested["target_ts"]),
            ),
            f"its test window: {source} (no errors stored at promotion)",
        )
    naive = naive_errors(prices, pd.DatetimeIndex(served["target_ts"])) if reference.relative else None
    result = performance_drift_of(region, served, reference, model, naive)
    log.info("%s: %s", region, result.line())
    return result
