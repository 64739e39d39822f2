"""The data-quality checks: completeness, price range, API health, freshness and realized model accuracy.

Each check reads what it needs from the stores for the window ``[as_of - quality_window_days, as_of)``
and returns one ``CheckResult`` per region (per region and source, per provider): ``ok``, ``warn``,
``critical``, or ``skipped`` with the reason when there was nothing to check. A check never raises
on bad data; the report says what could not be checked and why.

| check | per | warn | critical |
|---|---|---|---|
| completeness | region, source | a run of more than ``quality_max_gap_h`` missing hours between the window start and the region's newest hour | missing share >= ``quality_missing_critical_share``, or a source that delivered nothing in the window |
| price_range | region | an hour further than ``price_outlier_z`` robust z from the median of the 4 weeks before (negative prices are legal) | a price outside the region's plausible range, or more than 5% of hours outliers |
| api_health | provider | error rate >= ``api_error_rate_warn`` or p95 latency >= ``api_latency_p95_warn_ms`` (24 h) | error rate >= ``api_error_rate_critical`` |
| freshness | region | newest price older than ``freshness_warn_h`` | older than ``freshness_critical_h``, or no price at all |
| model_accuracy | region | rMAE >= 1: the weekly seasonal naive did as well | guarded MAPE above ``accuracy_mape_critical`` % (or the region's promotion threshold, when higher), or rMAE above ``accuracy_rmae_factor`` x the champion's at promotion |

The trailing hours after a region's newest price (from any source) are left to freshness, so one
stale region is one finding (freshness), not two; a source that stopped while another went on is
completeness's finding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.check_results import CheckResult, Status, skipped
from core.freshness import HOUR, find_gaps
from core.markets import get_market
from core.members import MEMBER_COLUMNS
from core.metrics import evaluate
from core.regions import Catalogue
from core.settings import Settings
from core.timestamps import local_day_starts, utc
from ingestion.validation import plausible_range
from registry.models import champion
from storage.health import ApiHealthStore
from storage.prices import PriceStore
from storage.promotions import PromotionStore
from storage.schema import forecasts as forecasts_table
from training.plots import forecast_vs_actual

CONTEXT_DAYS = 28  # history before the window that the price range and completeness checks look at
OUTLIER_CRITICAL_SHARE = 0.05
API_HEALTH_HOURS = 24
MAX_LISTED = 10  # gaps, outliers ... listed in a result's details


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive: the run's as_of

    @classmethod
    def before(cls, as_of: Any, days: int) -> Window:
        end = utc(as_of).floor("h")
        return cls(end - pd.Timedelta(days=days), end)

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / HOUR)

    def describe(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat()


# -- completeness ------------------------------------------------------------------------------


def completeness(store: PriceStore, settings: Settings, regions: Iterable[str], as_of: Any) -> list[CheckResult]:
    window = Window.before(as_of, settings.quality.window_days)
    results = []
    for region in regions:
        frame = store.read_prices(region, window.start - pd.Timedelta(days=CONTEXT_DAYS), window.end)
        results.extend(
            completeness_of(frame, region, window, settings.quality.max_gap_h, settings.quality.missing_critical_share)
        )
    return results


def completeness_of(
    frame: pd.DataFrame, region: str, window: Window, max_gap_h: int, critical_share: float
) -> list[CheckResult]:
    """One result per source that delivered this region's prices in the window or the 4 weeks before."""
    if frame.empty:
        return [
            CheckResult(
                "completeness",
                "critical",
                f"no prices at all between {window.start - pd.Timedelta(days=CONTEXT_DAYS)} and "
                f"{window.end}; load history (eopt load-history --region {region}) or check ingestion",
                region=region,
                value=float(window.hours),
                threshold=float(max_gap_h),
                details={"window": window.describe(), "missing_hours": window.hours},
            )
        ]
    results = []
    # the region's newest hour from any source: a source that stopped before it while another went
    # on has a missing tail of its own; when every source stopped, the tail is freshness's finding
    region_newest = frame.loc[frame["ts"] >= window.start, "ts"].max()
    for source, rows in frame.groupby("source", sort=True):
        inside = rows[rows["ts"] >= window.start]
        if inside.empty:
            last = rows["ts"].max()
            results.append(
                CheckResult(
                    "completeness",
                    "critical",
                    f"{source} delivered no {region} price in the window (its newest is {last}); check that provider",
                    region=region,
                    subject=source,
                    value=float(window.hours),
                    threshold=float(max_gap_h),
                    details={"window": window.describe(), "newest": _iso(last), "missing_hours": window.hours},
                )
            )
            continue
        first = max(window.start, rows["ts"].min())
        newest = region_newest
        gaps = find_gaps(pd.DatetimeIndex(inside["ts"]), first, newest + HOUR)
        expected = int((newest + HOUR - first) / HOUR)
        missing = sum(g.hours for g in gaps)
        longest = max(gaps, key=lambda g: g.hours, default=None)
        share = missing / expected if expected else 0.0
        long_gaps = [g for g in gaps if g.hours > max_gap_h]
        details = {
            "window": window.describe(),
            "checked_from": _iso(first),
            "checked_to": _iso(newest),
            "source_newest": _iso(inside["ts"].max()),
            "expected_hours": expected,
            "missing_hours": missing,
            "missing_share": round(share, 4),
            "gaps": [
                {"first_missing": _iso(g.first_missing), "last_missing": _iso(g.last_missing), "hours": g.hours}
                for g in sorted(gaps, key=lambda g: -g.hours)[:MAX_LISTED]
            ],
        }
        status: Status
        if longest is not None and share >= critical_share:
            status, message = (
                "critical",
                (
                    f"{missing} of {expected} hours missing ({share:.0%}); longest gap "
                    f"{longest.hours} h from {longest.first_missing}; backfill the "
                    "ingestion for these hours"
                ),
            )
        elif long_gaps:
            worst = max(long_gaps, key=lambda g: g.hours)
            status, message = (
                "warn",
                (
                    f"{len(long_gaps)} gap(s) longer than {max_gap_h} h; longest {worst.hours} h "
                    f"from {worst.first_missing}; backfill electricity_price_ingestion for it"
                ),
            )
        else:
            status, message = (
                "ok",
                (
                    f"{expected - missing} of {expected} hours present"
                    + (f" ({missing} single missing hour(s))" if missing else "")
                ),
            )
        longest_hours = 0 if longest is None else longest.hours
        results.append(
            CheckResult(
                "completeness",
                status,
                message,
                region=region,
                subject=source,
                value=float(longest_hours),
                threshold=float(max_gap_h),
                details=details,
            )
        )
    return results


# -- price range -------------------------------------------------------------------------------


def price_range(store: PriceStore, settings: Settings, regions: Iterable[str], as_of: Any) -> list[CheckResult]:
    window = Window.before(as_of, settings.quality.window_days)
    results = []
    for region in regions:
        canonical = store.read_canonical(region, window.start - pd.Timedelta(days=CONTEXT_DAYS), window.end)
        prices = pd.Series(canonical["price"].to_numpy(float), index=pd.DatetimeIndex(canonical["ts"]))
        results.append(price_range_of(prices, region, window, settings.quality.price_outlier_z, settings.catalogue))
    return results


MIN_REFERENCE_HOURS = 168


def price_reference(prices: pd.Series, window: Window) -> pd.Series:
    """What a window's prices are judged against: the 4 weeks before it (the checked week must not
    widen its own yardstick: a whole week at 3x would hide in it), or everything when a young
    region has less than a week of history before the window."""
    before = prices[prices.index < window.start]
    return before if len(before) >= MIN_REFERENCE_HOURS else prices


def robust_z(values: pd.Series, reference: pd.Series) -> tuple[pd.Series, float, float]:
    """Distance from the reference's median in scaled MADs (1.4826 MAD estimates a normal's sigma).

    The scale has a floor (1% of |median|, at least 0.5 per MWh) so flat prices do not make every
    small move an outlier."""
    median = float(reference.median())
    mad = float((reference - median).abs().median())
    scale = max(1.4826 * mad, 0.01 * abs(median), 0.5)
    return (values - median).abs() / scale, median, scale


def price_range_of(prices: pd.Series, region: str, window: Window, z_limit: float, catalogue: Catalogue) -> CheckResult:
    current = prices[prices.index >= window.start]
    if current.empty:
        return skipped("price_range", region, f"no {region} prices between {window.start} and {window.end} to check")
    z, median, scale = robust_z(current, price_reference(prices, window))
    low, high = plausible_range(region, catalogue)
    outside = current[(current < low) | (current > high)]
    outliers = current[z > z_limit]
    share = len(outliers) / len(current)
    listed = [
        {"ts": _iso(ts), "price": round(float(p), 2), "robust_z": round(float(z[ts]), 1)}
        for ts, p in outliers.reindex(z[outliers.index].sort_values(ascending=False).index).head(MAX_LISTED).items()
    ]
    details = {
        "window": window.describe(),
        "hours": len(current),
        "reference_median": round(median, 3),
        "reference_scale": round(scale, 3),
        "min": round(float(current.min()), 2),
        "max": round(float(current.max()), 2),
        "negative_hours": int((current < 0).sum()),
        "outlier_hours": len(outliers),
        "outliers": listed,
        "plausible_range": [low, high],
    }
    max_z = float(z.max())
    status: Status
    if len(outside):
        status = "critical"
        message = (
            f"{len(outside)} price(s) outside the plausible range [{low}, {high}] (e.g. {outside.iloc[0]:.2f} "
            f"at {outside.index[0]}); check the source's units and the quarantine"
        )
    elif share > OUTLIER_CRITICAL_SHARE:
        status = "critical"
        message = f"{len(outliers)} of {len(current)} hours ({share:.0%}) are outliers (robust z > {z_limit:g}); check the source"
    elif len(outliers):
        top = listed[0]
        status = "warn"
        message = (
            f"{len(outliers)} outlier hour(s), largest {top['price']} at {top['ts']} (robust z {top['robust_z']}, "
            f"median of the 4 weeks before {median:.2f}); confirm it with the market before it trains a model"
        )
    else:
        status = "ok"
        message = (
            f"{len(current)} hours within {z_limit:g} robust z of the 4 weeks' median {median:.2f} "
            f"(max z {max_z:.1f}; {details['negative_hours']} negative hour(s), which are legal)"
        )
    return CheckResult(
        "price_range", status, message, region=region, value=round(max_z, 2), threshold=z_limit, details=details
    )


# -- API health ----------------------------------------------------------------------------------


def api_health(health: ApiHealthStore, settings: Settings, as_of: Any) -> list[CheckResult]:
    end = Window.before(as_of, 1).end
    start = end - pd.Timedelta(hours=API_HEALTH_HOURS)
    calls = health.read(since=start.to_pydatetime())
    calls = calls[calls["called_at"] < end]
    return [
        api_health_of(calls[calls["source"] == source], source, start, end, settings)
        for source in settings.providers.sources
    ]


def api_health_of(
    calls: pd.DataFrame, source: str, start: pd.Timestamp, end: pd.Timestamp, settings: Settings
) -> CheckResult:
    if calls.empty:
        return skipped(
            "api_health",
            "all",
            f"no {source} calls recorded between {start} and {end}; is "
            "electricity_price_ingestion running with this provider enabled?",
            subject=source,
        )
    errors = calls[calls["status"] == "error"]
    rate = len(errors) / len(calls)
    latency = calls["latency_ms"].dropna().astype(float)
    p50, p95, p99 = (float(np.percentile(latency, q)) if len(latency) else None for q in (50, 95, 99))
    details = {
        "since": start.isoformat(),
        "until": end.isoformat(),
        "calls": len(calls),
        "errors": len(errors),
        "no_data": int((calls["status"] == "no_data").sum()),
        "error_rate": round(rate, 4),
        "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
        "last_errors": [str(e)[:300] for e in errors["error"].dropna().tail(3)],
        "http_statuses": {str(int(k)): int(v) for k, v in calls["http_status"].dropna().value_counts().items()},
    }
    status: Status
    if rate >= settings.quality.api_error_rate_critical:
        status = "critical"
        message = (
            f"{len(errors)} of {len(calls)} calls failed ({rate:.0%}) in {API_HEALTH_HOURS} h; last error: "
            f"{details['last_errors'][-1] if details['last_errors'] else 'unknown'}; check the {source} connection and key"
        )
    elif rate >= settings.quality.api_error_rate_warn or (
        p95 is not None and p95 >= settings.quality.api_latency_p95_warn_ms
    ):
        status = "warn"
        message = (
            f"error rate {rate:.1%} ({len(errors)} of {len(calls)}), latency p95 {p95:.0f} ms; "
            f"watch the {source} provider's status and rate limits"
        )
    else:
        status = "ok"
        message = f"{len(calls)} calls, error rate {rate:.1%}, latency p50 {p50:.0f} ms / p95 {p95:.0f} ms"
    return CheckResult(
        "api_health",
        status,
        message,
        region="all",
        subject=source,
        value=round(rate, 4),
        threshold=settings.quality.api_error_rate_warn,
        details=details,
    )


# -- freshness -----------------------------------------------------------------------------------

# Day-ahead prices arrive up to two days ahead: later hours than this after the run are not read.
PUBLICATION_AHEAD = pd.Timedelta(hours=48)


def freshness(store: PriceStore, settings: Settings, regions: Iterable[str], as_of: Any) -> list[CheckResult]:
    end = Window.before(as_of, 1).end
    results = []
    for region in regions:
        recent = store.read_canonical(region, end - pd.Timedelta(days=CONTEXT_DAYS), end + PUBLICATION_AHEAD)
        latest = None if recent.empty else pd.Timestamp(recent["ts"].max())
        results.append(freshness_of(region, latest, end, settings))
    return results


def freshness_of(region: str, latest: pd.Timestamp | None, as_of: pd.Timestamp, settings: Settings) -> CheckResult:
    if latest is None:
        return CheckResult(
            "freshness",
            "critical",
            f"no {region} price in the {CONTEXT_DAYS} days before {as_of}; load history or check "
            "electricity_price_ingestion",
            region=region,
            threshold=settings.quality.freshness_critical_h,
            details={"as_of": as_of.isoformat(), "newest": None},
        )
    age = (as_of - latest) / HOUR
    details = {
        "as_of": as_of.isoformat(),
        "newest": latest.isoformat(),
        "age_hours": round(age, 2),
        "warn_hours": settings.quality.freshness_warn_h,
        "critical_hours": settings.quality.freshness_critical_h,
    }
    status: Status
    if age > settings.quality.freshness_critical_h:
        status = "critical"
    elif age > settings.quality.freshness_warn_h:
        status = "warn"
    else:
        status = "ok"
    if status == "ok":
        message = (
            f"newest price {latest} ({-age:.0f} h ahead of the run)"
            if age < 0
            else f"newest price {latest} ({age:.0f} h old)"
        )
    else:
        message = (
            f"newest price is {latest}, {age:.0f} h before the run (limit {settings.quality.freshness_warn_h:g} h warn, "
            f"{settings.quality.freshness_critical_h:g} h critical); check electricity_price_ingestion for {region}"
        )
    return CheckResult(
        "freshness",
        status,
        message,
        region=region,
        value=round(age, 2),
        threshold=settings.quality.freshness_critical_h,
        details=details,
    )


# -- realized model accuracy ---------------------------------------------------------------------

# Which stored forecast of an hour counts: hourly issues forecast most hours many times.
FORECAST_SELECTION = (
    "per target hour, the forecast with the latest issued_at at or before the local midnight that began the hour's "
    "day in the region (the day-ahead forecast: with the hourly schedule, the one issued at that midnight, as the "
    "champion's forecasts at promotion were)"
)


def day_ahead_forecasts(frame: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Of stored forecast rows (``target_ts``, ``issued_at``), per target hour the one ``FORECAST_SELECTION`` counts.

    The promotion gate, the backtest and the forecast-performance calibration score forecasts
    issued at local midnights for the day after (day-ahead origins); an hour's later issues (the
    hourly schedule reissues every hour, from an origin where the model has more recent prices but
    LEAR, which forecasts only whole days, abstains) are a different forecast, so judging them
    against the figures at promotion would compare unlike errors."""
    if frame.empty:
        return frame
    chosen = frame[pd.DatetimeIndex(frame["issued_at"]) <= local_day_starts(timezone, frame["target_ts"])]
    return chosen.sort_values(["target_ts", "issued_at"]).drop_duplicates("target_ts", keep="last")


def served_forecasts(engine: sa.Engine, region: str, window: Window, *, models_only: bool = False) -> pd.DataFrame:
    """Per target hour in the window, the day-ahead forecast of the hour (``FORECAST_SELECTION``).

    ``models_only``: among the Production models' forecasts only (the seasonal-naive fallbacks are
    left out before choosing). Columns: target_ts, issued_at, yhat, model_name, model_version, is_fallback, lower,
    upper (the served interval; NaN where none was stored) and each member's forecast ``yhat_<member>`` (NaN where
    the member gave none)."""
    t = forecasts_table
    served_columns = ("yhat", "model_name", "model_version", "is_fallback", "lower", "upper", *MEMBER_COLUMNS)
    query = sa.select(t.c.target_ts, t.c.issued_at, *(t.c[c] for c in served_columns)).where(
        t.c.region == region,
        t.c.target_ts >= window.start.to_pydatetime(),
        t.c.target_ts < window.end.to_pydatetime(),
        t.c.issued_at <= t.c.target_ts,
    )
    if models_only:
        query = query.where(t.c.is_fallback == sa.false())
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["target_ts", "issued_at", *served_columns])
    for column in ("target_ts", "issued_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame = day_ahead_forecasts(frame, get_market(region).timezone)
    frame["is_fallback"] = frame["is_fallback"].astype(bool)
    for column in ("yhat", "lower", "upper", *MEMBER_COLUMNS):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame.reset_index(drop=True)


def served_member_forecasts(engine: sa.Engine, region: str, window: Window, prices: pd.Series) -> pd.DataFrame:
    """The day-ahead forecasts the Production models served for the hours of ``window``, each with its members'
    forecasts and the price that followed: the rows ``training.ensemble.calibrate_on_served`` weighs a
    retraining's members on. Columns: ``origin`` (the issue), ``target_ts``, ``horizon`` (hours after the
    issue), ``price`` (from ``prices``; NaN where not known) and ``yhat_<member>`` for every member."""
    served = served_forecasts(engine, region, window, models_only=True)
    targets = pd.DatetimeIndex(served["target_ts"])
    return pd.DataFrame(
        {
            "origin": served["issued_at"],
            "target_ts": served["target_ts"],
            "horizon": ((targets - pd.DatetimeIndex(served["issued_at"])) // HOUR).astype(int),
            "price": prices.reindex(targets).to_numpy(dtype=float),
            **{column: served[column] for column in MEMBER_COLUMNS},
        }
    )


@dataclass(frozen=True)
class PromotionFigures:
    """What the champion measured when it was promoted (``model_promotions``, else its run's test metrics)."""

    version: str
    mae: float | None
    rmae: float | None
    mape: float | None
    source: str


def model_accuracy_of(
    region: str,
    served: pd.DataFrame,
    prices: pd.Series,
    window: Window,
    promoted: PromotionFigures | None,
    settings: Settings,
) -> CheckResult:
    if served.empty:
        return skipped(
            "model_accuracy",
            region,
            f"no stored forecast targets an hour between {window.start} and "
            f"{window.end}; is forecast_generation running?",
        )
    models = served[~served["is_fallback"]]
    if models.empty:
        return CheckResult(
            "model_accuracy",
            "warn",
            f"all {len(served)} forecast hours were seasonal-naive fallbacks: no Production model "
            "served; promote one (eopt registry status)",
            region=region,
            details={"window": window.describe(), "forecast_hours": len(served), "fallback_hours": len(served)},
        )
    actual = prices.reindex(pd.DatetimeIndex(models["target_ts"]))
    naive = prices.reindex(pd.DatetimeIndex(models["target_ts"]) - pd.Timedelta(hours=168))
    known = actual.notna().to_numpy() & naive.notna().to_numpy()
    if not known.any():
        return skipped(
            "model_accuracy",
            region,
            f"{len(models)} forecast hour(s) in the window, none with a realized "
            "price (and the price a week before) yet",
            forecast_hours=len(models),
        )
    metrics = evaluate(actual.to_numpy()[known], models["yhat"].to_numpy()[known], naive.to_numpy()[known])
    mape, rmae = metrics["mape"], metrics["rmae"]
    # a model the promotion gate accepted at the region's own MAPE threshold (PJM 20%, BE/FR 25%)
    # is not critical for the same error once it serves
    mape_limit = max(settings.quality.accuracy_mape_critical, settings.mape_threshold(region))
    limit_rmae = (
        None if promoted is None or promoted.rmae is None else promoted.rmae * settings.quality.accuracy_rmae_factor
    )
    versions = sorted(models["model_version"].astype(str).unique(), key=lambda v: (len(v), v))
    details = {
        "window": window.describe(),
        "hours": int(known.sum()),
        "forecast_hours": len(served),
        "fallback_hours": int(served["is_fallback"].sum()),
        "model_versions": versions,
        **{k: (None if not math.isfinite(v) else round(float(v), 4)) for k, v in metrics.items()},
        "promotion": None if promoted is None else promoted.__dict__,
        "mape_limit": mape_limit,
        "rmae_limit": limit_rmae,
        "rmae_warn": 1.0,
    }
    mape_known = math.isfinite(mape)
    reasons = []
    if mape_known and mape > mape_limit:
        reasons.append(f"MAPE {mape:.1f}% above {mape_limit:g}%")
    if limit_rmae is not None and promoted is not None and rmae > limit_rmae:  # limit_rmae implies promoted
        reasons.append(
            f"rMAE {rmae:.3f} above {settings.quality.accuracy_rmae_factor:g} x the {promoted.rmae:.3f} "
            f"v{promoted.version} had at promotion"
        )
    against = (
        ""
        if promoted is None or promoted.rmae is None
        else f" (v{promoted.version} at promotion: rMAE {promoted.rmae:.3f})"
    )
    summary = (
        f"MAE {metrics['mae']:.2f}, rMAE {rmae:.3f}, MAPE "
        + (f"{mape:.1f}%" if mape_known else "n/a (prices near zero)")
        + f" over {int(known.sum())} h{against}"
    )
    status: Status
    if reasons:
        status, message = "critical", f"{'; '.join(reasons)}: {summary}; consider retraining (model_retraining)"
    elif rmae >= 1.0:
        status, message = "warn", f"the weekly seasonal naive did as well or better (rMAE {rmae:.3f}): {summary}"
    else:
        status, message = "ok", summary
    if promoted is None:
        message += "; no promotion figures to compare with"
    return CheckResult(
        "model_accuracy",
        status,
        message,
        region=region,
        value=round(mape, 3) if mape_known else None,
        threshold=mape_limit,
        details=details,
    )


def promotion_figures(engine: sa.Engine, client: Any, region: str) -> PromotionFigures | None:
    """The champion's figures when it was promoted; None when the region has no champion."""
    current = champion(client, region)
    if current is None:
        return None
    history = PromotionStore(engine).history(region)
    promoted = history[
        (history["candidate_version"] == current.version) & history["promoted"] & (history["action"] != "rollback")
    ]
    for metrics in promoted["metrics"]:
        candidate = (metrics or {}).get("candidate")
        if candidate:
            return PromotionFigures(
                current.version,
                candidate.get("mae"),
                candidate.get("rmae"),
                candidate.get("mape"),
                "gate decision (model_promotions)",
            )
    run = client.get_run(current.run_id).data.metrics if current.run_id else {}
    return PromotionFigures(
        current.version, run.get("test_mae"), run.get("test_rmae"), run.get("test_mape"), "retraining run's test window"
    )


def accuracy_plot(region: str, served: pd.DataFrame, prices: pd.Series, path: Path, title: str) -> Path | None:
    """The week's served model forecasts against the realized prices and the weekly naive (a PNG)."""
    models = served[~served["is_fallback"]]
    frame = pd.DataFrame(
        {
            "target_ts": models["target_ts"].to_numpy(),
            "yhat": models["yhat"].to_numpy(),
            "price": prices.reindex(pd.DatetimeIndex(models["target_ts"])).to_numpy(),
            "naive": prices.reindex(pd.DatetimeIndex(models["target_ts"]) - pd.Timedelta(hours=168)).to_numpy(),
        }
    )
    frame = frame.dropna(subset=["price"])
    if frame.empty:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return forecast_vs_actual(frame, path, title, days=7)


def model_accuracy(
    store: PriceStore, client: Any, settings: Settings, regions: Iterable[str], as_of: Any, plot_dir: Path | None = None
) -> list[CheckResult]:
    """Realized accuracy per region; with ``plot_dir``, also a forecast-vs-actual picture of each
    scored region (``accuracy_<REGION>.png``, its path in the result's ``details["plot"]``)."""
    window = Window.before(as_of, settings.quality.window_days)
    results = []
    for region in regions:
        served = served_forecasts(store.engine, region, window)
        canonical = store.read_canonical(region, window.start - pd.Timedelta(hours=168), window.end)
        prices = pd.Series(canonical["price"].to_numpy(float), index=pd.DatetimeIndex(canonical["ts"]))
        try:
            promoted = promotion_figures(store.engine, client, region) if client is not None else None
        except Exception as exc:
            promoted = None
            served.attrs["registry_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        result = model_accuracy_of(region, served, prices, window, promoted, settings)
        if "registry_error" in served.attrs:
            result = replace(
                result, message=result.message + f"; registry unreachable ({served.attrs['registry_error']})"
            )
        if plot_dir is not None and result.status != "skipped" and "mae" in result.details:
            plot = accuracy_plot(
                region,
                served,
                prices,
                plot_dir / f"accuracy_{region}.png",
                f"{region}: served forecasts vs realized prices, {window.start:%Y-%m-%d} to "
                f"{window.end:%Y-%m-%d} (MAE {result.details['mae']:.2f}, rMAE {result.details['rmae']:.3f})",
            )
            if plot is not None:
                result = replace(result, details={**result.details, "plot": str(plot)})
        results.append(result)
    return results
