"""Forecast-performance drift: a one-sided CUSUM on the champion's realised daily absolute errors.

The inputs can look normal while a model goes stale; what the forecaster is for is its error. The
reference is the distribution of the champion's own absolute errors on its test window at
promotion, stored by the promotion gate as the artifact ``promotion/holdout_errors_v<version>.json``
of the version's run (``registry.promotion``); a champion promoted without it (by hand, or before the
artifact existed) is re-scored on its test window instead, and the result says which.

Hourly errors are not independent (a bad day is 24 bad hours: on real errors an hourly CUSUM
pages for most normal weeks), so the unit is the day: the mean absolute error of each UTC day
with at least ``MIN_DAY_HOURS`` realised hours of the served forecasts (the forecast in force when
each hour began, ``drift.monitor.realized_forecasts``). With the reference's mean absolute error
``mu0`` and the standard deviation ``sigma0`` of its daily means, each day is standardised,
``x_d = (MAE_d - mu0) / sigma0``, and Page's tabular CUSUM

    S_0 = 0,  S_d = max(0, S_{d-1} + x_d - k)

runs with ``k`` half the shift it is tuned to: the mean absolute error grown by half
(``ERROR_GROWTH``), ``delta = 0.5 mu0 / sigma0``, ``k = delta / 2``. Critical from ``CRITICAL_H``,
warn from ``WARN_H``. Three days at +50% add ``1.5 delta`` on average: 3.0 for a champion whose
daily MAE varies by 25% (``delta`` 2), at ``CRITICAL_H``; a champion whose daily errors vary more
needs more days. The run length of this CUSUM on independent normal data is Siegmund's
(``siegmund_arl``), the textbook reference the tests check the implementation against: for
``delta`` 2 and ``h`` 3 about 2,000 days in control, for ``delta`` 1 about 120 days, if a
champion's days were independent and its error level stable; real errors are neither (errors
come in runs of bad days), so the realised false-alarm rate is higher (docs/drift.md).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from core.check_results import CheckResult, Status, skipped
from core.settings import Settings
from drift import reports
from drift.monitor import champion_test_predictions, realized_forecasts
from registry.models import champion as find_champion
from registry.promotion import HOLDOUT_ERRORS_FOLDER, holdout_errors_artifact
from storage.prices import PriceStore

log = logging.getLogger(__name__)

CHECK_NAME, SUBJECT = "drift", "performance"
ERROR_GROWTH = 0.5  # the growth of the mean absolute error the CUSUM is tuned to (k = half of it)
WARN_H, CRITICAL_H = 1.5, 3.0  # decision intervals, in standard deviations of the reference's daily MAE
MIN_DAY_HOURS = 12  # a day with fewer realised hours is left out
MIN_HOURS = 24  # fewest realised hours worth a verdict (one day)


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
    mean: float  # mean absolute error, mu0
    daily_std: float  # standard deviation of its daily mean absolute errors, sigma0
    hours: int
    days: int
    source: str


def daily_mae(errors: pd.Series) -> pd.Series:
    """Mean absolute error per UTC day of the hours (the index) with at least ``MIN_DAY_HOURS`` known."""
    errors = errors.dropna().abs()
    days = errors.groupby(pd.DatetimeIndex(errors.index).tz_convert("UTC").floor("D")).agg(["mean", "size"])
    return days.loc[days["size"] >= MIN_DAY_HOURS, "mean"]


def reference_of(errors: pd.Series, source: str) -> ErrorReference:
    """``errors``: the reference's errors indexed by their target hours."""
    days = daily_mae(errors)
    known = errors.dropna()
    return ErrorReference(float(known.abs().mean()), float(days.std(ddof=1)), len(known), len(days), source)


def stored_reference(client: MlflowClient, run_id: str, version: str) -> ErrorReference | None:
    """The absolute test-window errors the promotion gate stored for ``version`` on its run; None when absent."""
    artifact = holdout_errors_artifact(version)
    if artifact not in {a.path for a in client.list_artifacts(run_id, HOLDOUT_ERRORS_FOLDER)}:
        return None
    with tempfile.TemporaryDirectory(prefix="eopt-errors-") as folder:
        stored = json.loads(Path(client.download_artifacts(run_id, artifact, folder)).read_text())
    errors = pd.Series(stored["absolute_error"], index=pd.to_datetime(stored["target_ts"], utc=True), dtype=float)
    return reference_of(errors, f"its holdout errors stored at promotion ({stored['holdout']}, run {run_id})")


def performance_drift_of(region: str, served: pd.DataFrame, reference: ErrorReference, model: str) -> CheckResult:
    """The CUSUM verdict on ``served`` (``target_ts``, ``target``, ``prediction``)."""
    errors = pd.Series(
        served[reports.PREDICTION].to_numpy(float) - served[reports.TARGET].to_numpy(float),
        index=pd.DatetimeIndex(served["target_ts"]),
    ).sort_index()
    days = daily_mae(errors)
    if reference.daily_std <= 0 or reference.mean <= 0 or reference.days < 3:
        return skipped(
            CHECK_NAME,
            region,
            f"{model}: its reference errors ({reference.source}) have {reference.days} day(s) and no usable spread",
            subject=SUBJECT,
        )
    if days.empty:
        return skipped(CHECK_NAME, region, f"{model}: no day with {MIN_DAY_HOURS} realised hours", subject=SUBJECT)
    delta = ERROR_GROWTH * reference.mean / reference.daily_std
    k = delta / 2
    result = cusum(((days - reference.mean) / reference.daily_std).to_numpy(), k, CRITICAL_H)
    peak = float(result.path.max())
    peak_day = pd.Timestamp(days.index[int(result.path.argmax())])
    mae = float(errors.abs().mean())
    status: Status = "critical" if peak >= CRITICAL_H else ("warn" if peak >= WARN_H else "ok")
    growth = mae / reference.mean - 1
    message = (
        f"forecast errors: CUSUM {peak:.2f} (warn {WARN_H:g}, critical {CRITICAL_H:g}) on {peak_day:%Y-%m-%d}; "
        f"realised MAE {mae:.2f} over {len(errors.dropna())} h ({len(days)} days), {100 * growth:+.0f}% vs "
        f"{reference.mean:.2f} of {model} on {reference.source}"
    )
    if status == "critical":
        message += "; consider retraining (model_retraining)"
    details: dict[str, Any] = {
        "method": "one-sided tabular CUSUM on standardised daily mean absolute errors, k = delta / 2, "
        "delta = 0.5 mu0 / sigma0",
        "statistic": round(peak, 3),
        "statistic_day": peak_day.isoformat(),
        "first_alarm": None if result.first_alarm is None else pd.Timestamp(days.index[result.first_alarm]).isoformat(),
        "k": round(k, 4),
        "warn_h": WARN_H,
        "critical_h": CRITICAL_H,
        "hours": int(errors.notna().sum()),
        "daily_mae": {d.date().isoformat(): round(float(v), 4) for d, v in days.items()},
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
    canonical = store.read_canonical(region, start, end)
    realized = pd.Series(canonical["price"].to_numpy(float), index=pd.DatetimeIndex(canonical["ts"]))
    served, _ = realized_forecasts(store, region, start, end, realized)
    served = served[served["model"] == model]
    if len(served) < MIN_HOURS:
        return skipped(
            CHECK_NAME,
            region,
            f"only {len(served)} realised hour(s) of champion {model}'s forecasts between {start:%Y-%m-%d %H:%M} "
            f"and {end:%Y-%m-%d %H:%M} UTC (need {MIN_HOURS})",
            subject=SUBJECT,
        )
    reference = stored_reference(client, best.run_id, best.version) if best.run_id else None
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
            rescored = champion_test_predictions(settings, store, best, params, region, client)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return skipped(
                CHECK_NAME,
                region,
                f"champion {model} could not be re-scored on its test window: {reason}",
                subject=SUBJECT,
            )
        reference = reference_of(
            pd.Series(
                rescored[reports.PREDICTION].to_numpy(float) - rescored[reports.TARGET].to_numpy(float),
                index=pd.DatetimeIndex(rescored["target_ts"]),
            ),
            "its test window, re-scored (no errors stored at promotion)",
        )
    result = performance_drift_of(region, served, reference, model)
    log.info("%s: %s", region, result.line())
    return result
