"""A region's drift check: its last days against what its champion was trained on, as Evidently reports.

:func:`region_drift` is what the data-quality pipeline calls per region. It compares

- the drift columns (``drift.reports``) of the current window, the ``quality_window_days`` before
  ``as_of``, with a reference: the champion's training window (its run's ``data_start`` ..
  ``data_end`` params), restricted to the hours within 28 days of the current window's dates in
  each year of it (the same season: without that, the seasonality of load and prices alone
  flags every week). Where that leaves fewer than two weeks of hours, the whole training window;
  with no champion, the ``training_window_days`` before the current window;
- the champion's served forecasts whose hours are realized in the current window with the
  champion re-scored on its own test window: regression quality (MAE, RMSE, R2) and the drift of
  target and prediction.

The summary is one ``CheckResult`` named ``drift``: its status is the worst of the per-family rules
(``drift.rules``: price level and scale against the weeks just before, each exogenous series against
its own recent weeks and its ratio to the others, the intraday shape against the same season, stuck
and frozen series), each finding naming its family and size; the Evidently drifted-column share is
reported alongside (its ``value``) but decides nothing. Bad or missing data never raises: the check, or its prediction
part, is skipped with the reason.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.check_results import CheckResult, Status, skipped
from core.markets import get_market
from core.settings import Settings
from drift import reports, rules
from quality.checks import (
    CONTEXT_DAYS,
    FORECAST_SELECTION,
    OUTLIER_CRITICAL_SHARE,
    Window,
    price_reference,
    robust_z,
    served_forecasts,
)
from registry.models import Champion
from registry.models import champion as find_champion
from storage.prices import PriceStore
from training import tracking
from training.dataset import TrainingDataError
from training.evaluation import batch_forecast, read_holdout
from training.features import TARGET_COLUMN

log = logging.getLogger(__name__)

CHECK_NAME = "drift"
HOUR = pd.Timedelta(hours=1)
SEASON_MARGIN = pd.Timedelta(days=28)  # a reference hour is "same season" within this of the current window's dates
MIN_REFERENCE_HOURS = 336  # two weeks: fewer reference hours than this say little about a distribution
HISTORY_MARGIN = pd.Timedelta(hours=168)  # read before the first hour, for price_change_168h


@dataclass(frozen=True)
class ReferenceWindow:
    start: pd.Timestamp
    end: pd.Timestamp
    kind: str
    note: str
    champion: Champion | None
    params: dict[str, str]  # the champion run's params ({} without a champion)


def _iso(when: pd.Timestamp) -> str:
    return pd.Timestamp(when).isoformat()


def _reference_window(
    settings: Settings, client: MlflowClient | None, region: str, current_start: pd.Timestamp
) -> ReferenceWindow:
    days = settings.training.window_days
    before = (current_start - pd.Timedelta(days=days), current_start)

    def days_before(note: str, best: Champion | None = None) -> ReferenceWindow:
        return ReferenceWindow(*before, kind=f"{days} days before, same season", note=note, champion=best, params={})

    if client is None:
        return days_before(f"no champion (no model registry given): compared with the {days} days before")
    try:
        best = find_champion(client, region)
        # a model version that no run logged has no parameters to read
        params = dict(client.get_run(best.run_id).data.params) if best and best.run_id else {}
    except MlflowException as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return days_before(f"the model registry could not be read ({reason}): compared with the {days} days before")
    if best is None:
        return days_before(f"no champion: compared with the {days} days before")
    if not params.get("data_start") or not params.get("data_end"):
        return days_before(
            f"champion {best.uri} has no data_start/data_end params on its run {best.run_id}: "
            f"compared with the {days} days before",
            best,
        )
    start, end = pd.Timestamp(params["data_start"]), pd.Timestamp(params["data_end"])
    return ReferenceWindow(
        start.tz_convert("UTC"),
        end.tz_convert("UTC"),
        kind="champion training window, same season",
        note=f"the training window of champion {best.uri} (run {best.run_id})",
        champion=best,
        params=params,
    )


def same_season(index: pd.DatetimeIndex, current_start: pd.Timestamp, current_end: pd.Timestamp) -> pd.Series:
    """Whether each hour lies within ``SEASON_MARGIN`` of the current window's dates, in any year."""
    inside = pd.Series(False, index=index)
    if index.empty:
        return inside
    for years in range(index.min().year - current_end.year - 1, index.max().year - current_start.year + 2):
        shift = pd.DateOffset(years=years)
        inside |= (index >= current_start + shift - SEASON_MARGIN) & (index < current_end + shift + SEASON_MARGIN)
    return inside


def week_frames(
    frame: pd.DataFrame, current_start: pd.Timestamp, current_end: pd.Timestamp, window_days: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The frames the rules compare without a champion: the current window, the ``rules.HISTORY_WEEKS``
    weeks before it, and the same season of the ``window_days`` before it (drift columns, UTC hours)."""
    current = frame[(frame.index >= current_start) & (frame.index < current_end)]
    before = frame[(frame.index >= current_start - rules.HISTORY_WEEKS * rules.WEEK) & (frame.index < current_start)]
    candidates = frame[(frame.index >= current_start - pd.Timedelta(days=window_days)) & (frame.index < current_start)]
    return current, before, candidates[same_season(candidates.index, current_start, current_end).to_numpy()]


def _read_frames(
    store: PriceStore,
    region: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    current: tuple[pd.Timestamp, pd.Timestamp],
    z_limit: float,
) -> tuple[pd.DataFrame, list[str]]:
    """The drift columns of ``[start, end)``, with the current window's price outliers left out.

    An hour that the price_range check flags (robust z above ``z_limit`` against the same reference)
    is that check's finding; left in, one spike moves the Wasserstein distance of every price
    column and turns a week into "drift". More than ``OUTLIER_CRITICAL_SHARE`` of the hours is a
    shift, not spikes, and stays in. Returns the frame and the left-out hours."""
    canonical = store.read_canonical(region, start - HISTORY_MARGIN, end)
    prices = pd.Series(canonical["price"].to_numpy(float), index=pd.DatetimeIndex(canonical["ts"]))
    recent = prices[(prices.index >= current[0] - pd.Timedelta(days=CONTEXT_DAYS)) & (prices.index < current[1])]
    in_current = recent[recent.index >= current[0]]
    reference = price_reference(recent, Window(current[0], current[1]))
    outliers = in_current.index[(robust_z(in_current, reference)[0] > z_limit).to_numpy()] if len(in_current) else []
    if len(outliers) > OUTLIER_CRITICAL_SHARE * len(in_current):
        outliers = []  # not a few spikes but a shifted week: exactly what drift is for
    prices = prices.drop(outliers)
    exogenous = store.read_exogenous(region, start - HISTORY_MARGIN, end) if len(prices) else pd.DataFrame()
    return reports.hourly_drift_columns(prices, exogenous), [ts.isoformat() for ts in outliers]


def region_drift(
    settings: Settings, store: PriceStore, client: MlflowClient | None, region: str, as_of: pd.Timestamp, out_dir: Path
) -> CheckResult:
    """The region's drift check at ``as_of``; writes ``drift_<REGION>.html/.json`` (and the prediction
    report, ``prediction_drift_<REGION>.html/.json``, when it ran) into ``out_dir``."""
    started = time.perf_counter()
    as_of = pd.Timestamp(as_of)
    if as_of.tzinfo is None:
        raise ValueError(f"{region}: drift as_of {as_of} must be tz-aware (UTC)")
    current_end = as_of.tz_convert("UTC")
    days = settings.quality.window_days
    current_start = current_end - pd.Timedelta(days=days)
    current_info: dict[str, Any] = {"start": _iso(current_start), "end": _iso(current_end)}

    window = _reference_window(settings, client, region, current_start)
    frame, outliers = _read_frames(
        store,
        region,
        min(window.start, current_start - rules.HISTORY_WEEKS * rules.WEEK),  # the rules' history weeks
        max(window.end, current_end),
        (current_start, current_end),
        settings.quality.price_outlier_z,
    )
    if outliers:
        current_info["price_outliers_left_out"] = outliers
    in_current = (frame.index >= current_start) & (frame.index < current_end)
    current = frame[in_current & frame["price"].notna()]
    if current.empty:
        return skipped(
            CHECK_NAME,
            region,
            f"no prices in the last {days} days ({current_start:%Y-%m-%d %H:%M} to "
            f"{current_end:%Y-%m-%d %H:%M} UTC): nothing to compare; load history or check the "
            f"electricity_price_ingestion DAG for {region}",
            current={**current_info, "hours": 0},
        )
    current_info["hours"] = len(current)

    candidates = frame[
        (frame.index >= window.start) & (frame.index < window.end) & ~in_current & frame["price"].notna()
    ]
    # the same season: hours within SEASON_MARGIN of the current window's dates, in each year of the window
    reference, kind, note = candidates, window.kind, window.note
    seasonal = candidates[same_season(candidates.index, current_start, current_end).to_numpy()]
    if len(seasonal) >= MIN_REFERENCE_HOURS:
        reference = seasonal
    else:
        kind = kind.removesuffix(", same season")
        note = (
            f"{note}; only {len(seasonal)} of its hours lie within {SEASON_MARGIN.days} days of the current "
            f"window's dates (need {MIN_REFERENCE_HOURS}): compared with the whole window"
        )
    reference_info = {
        "start": _iso(window.start),
        "end": _iso(window.end),
        "hours": len(reference),
        "kind": kind,
        "note": note,
        "champion": window.champion.uri if window.champion else None,
    }
    if len(reference) < MIN_REFERENCE_HOURS:
        return skipped(
            CHECK_NAME,
            region,
            f"only {len(reference)} reference hours with a price ({kind}, "
            f"{window.start:%Y-%m-%d} to {window.end:%Y-%m-%d}; need {MIN_REFERENCE_HOURS}): {note}",
            current=current_info,
            reference=reference_info,
        )

    reference, current = reports.add_hour_profile(reference, current, get_market(region).timezone)
    columns = [*reports.PRICE_COLUMNS, *(c for c in frame.columns if c not in reports.PRICE_COLUMNS)]
    selection = reports.select_columns(reference, current, columns)
    if not selection.columns:
        reasons = "; ".join(f"{c}: {why}" for c, why in selection.excluded.items())
        return skipped(
            CHECK_NAME,
            region,
            f"no column can be compared: {reasons}",
            current=current_info,
            reference=reference_info,
            excluded_columns=selection.excluded,
        )

    threshold = settings.quality.drift_share_threshold
    evidently_started = time.perf_counter()
    snapshot = reports.feature_drift_report(
        current,
        reference,
        selection.columns,
        drift_share=threshold,
        column_threshold=settings.quality.drift_column_threshold,
    )
    html, json_path = reports.save_snapshot(snapshot, out_dir, f"drift_{region}")
    evidently_s = time.perf_counter() - evidently_started
    summary = reports.feature_drift_summary(snapshot)

    prediction, prediction_s = _prediction_part(
        settings, store, client, window, region, current_start, current_end, current["price"], out_dir
    )
    share, drifted = summary["share"], summary["drifted_columns"]
    before = frame[
        (frame.index >= current_start - rules.HISTORY_WEEKS * rules.WEEK)
        & (frame.index < current_start)
        & frame["price"].notna()
    ]
    exogenous = [c for c in frame.columns if c not in reports.PRICE_COLUMNS and not c.endswith("_change_24h")]
    measures = rules.measure(current, before, reference, get_market(region).timezone, exogenous)
    findings = rules.judge(measures)
    status: Status = worst_finding(findings)
    named = f": {', '.join(drifted)}" if drifted else ""
    evidently = (
        f"Evidently: {summary['count']} of {len(selection.columns)} columns past normed Wasserstein "
        f"{settings.quality.drift_column_threshold:g}{named}"
    )
    if findings:
        message = f"{'; '.join(f'{f.status}: {f.text}' for f in findings)}. {evidently}"
    else:
        message = (
            f"no rule past its threshold ({len(measures)} statistics of {len({m.family for m in measures})} "
            f"families against the {kind}). {evidently}"
        )
    if selection.excluded:
        message += f"; {len(selection.excluded)} left out ({', '.join(selection.excluded)})"
    if outliers:
        message += f"; {len(outliers)} price outlier hour(s) left out (the price_range check reports them)"
    details: dict[str, Any] = {
        "method": reports.METHOD_DESCRIPTION,
        "column_threshold": settings.quality.drift_column_threshold,
        "drift_share_threshold": threshold,
        "drifted_count": summary["count"],
        "columns": summary["columns"],
        "drifted_columns": drifted,
        "excluded_columns": selection.excluded,
        "findings": [f.to_dict() for f in findings],
        "rules": [
            {**m.__dict__, "status": rules.level_of(m.score, rules.RULES[m.family]), "text": rules.finding_text(m)}
            for m in measures
        ],
        "reference": reference_info,
        "current": current_info,
        "report_html": html,
        "report_json": json_path,
        "prediction": prediction,
        "seconds": {
            "evidently": round(evidently_s + prediction_s, 3),
            "total": round(time.perf_counter() - started, 3),
        },
    }
    log.info("%s: drift %s: %s (%.1f s)", region, status, message, time.perf_counter() - started)
    return CheckResult(CHECK_NAME, status, message, region=region, value=share, details=details)


def worst_finding(findings: list[rules.Finding]) -> Status:
    """critical when any rule is critical, warn when any warns, else ok."""
    statuses = {f.status for f in findings}
    return "critical" if "critical" in statuses else ("warn" if "warn" in statuses else "ok")


# -- prediction drift -----------------------------------------------------------------------------


def realized_forecasts(
    store: PriceStore, region: str, start: pd.Timestamp, end: pd.Timestamp, realized: pd.Series
) -> tuple[pd.DataFrame, int]:
    """The served model forecasts of the hours in ``[start, end)`` whose price is known: ``target_ts``,
    ``target``, ``prediction``, ``model``; one per hour (``FORECAST_SELECTION``). Also how many hours
    had a model forecast at all."""
    latest = served_forecasts(store.engine, region, Window(start, end), models_only=True)
    if latest.empty:
        return pd.DataFrame(columns=["target_ts", reports.TARGET, reports.PREDICTION, "model"]), 0
    latest = latest.assign(
        target=realized.reindex(pd.DatetimeIndex(latest["target_ts"])).to_numpy(dtype=float),
        prediction=latest["yhat"],
        model=latest["model_name"] + "/" + latest["model_version"].astype(str),
    )
    known = latest[latest[reports.TARGET].notna()]
    return known[["target_ts", reports.TARGET, reports.PREDICTION, "model"]].reset_index(drop=True), len(latest)


def _test_window(settings: Settings, params: dict[str, str]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last target hour of the champion's test window (its params, else the last test_days)."""
    first, last = params.get("test_first_target"), params.get("test_last_target")
    if first and last and first != "NaT" and last != "NaT":
        return pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(last).tz_convert("UTC")
    end = pd.Timestamp(params["data_end"]).tz_convert("UTC")
    return end - pd.Timedelta(days=settings.training.test_days), end - HOUR


def champion_test_predictions(
    settings: Settings,
    store: PriceStore,
    champion: Champion,
    params: dict[str, str],
    region: str,
    client: MlflowClient | None = None,
) -> tuple[pd.DataFrame, str]:
    """The champion's forecasts of its own test window (``target_ts``, ``target``, ``prediction``) and where
    they come from: the test forecasts its retraining stored on its run (``TEST_FORECASTS_ARTIFACT``: what
    the registered model answered for each test origin, checked before it was registered), else the
    champion re-scored on that window (a model logged before they were stored: it loads the model and
    forecasts every test day again).

    Raises ``TrainingDataError`` when re-scoring and the store lacks the window's prices."""
    if client is not None and champion.run_id:
        stored = stored_test_forecasts(client, champion.run_id)
        if stored is not None:
            return stored, "champion's test-window forecasts, stored by its retraining"
    return rescored_test_predictions(settings, store, champion, params, region, client), (
        "champion re-scored on its test window"
    )


def stored_test_forecasts(client: MlflowClient, run_id: str) -> pd.DataFrame | None:
    """The test forecasts a retraining stored on ``run_id`` (``target_ts``, ``target``, ``prediction``); None
    when the run has none."""
    frame = tracking.read_artifact(client, run_id, tracking.TEST_FORECASTS_ARTIFACT, pd.read_parquet)
    if frame is None:
        return None
    return pd.DataFrame(
        {
            "target_ts": pd.DatetimeIndex(frame["target_ts"]).tz_convert("UTC"),
            reports.TARGET: frame[TARGET_COLUMN].astype(float).to_numpy(),
            reports.PREDICTION: frame["yhat"].astype(float).to_numpy(),
        }
    )


def rescored_test_predictions(
    settings: Settings,
    store: PriceStore,
    champion: Champion,
    params: dict[str, str],
    region: str,
    client: MlflowClient | None = None,
) -> pd.DataFrame:
    """The champion re-scored on its test window: ``target_ts``, ``target``, ``prediction``.

    Raises ``TrainingDataError`` when the store lacks the window's prices."""
    first, last = _test_window(settings, params)
    end = last + HOUR
    days = max(1, math.ceil((end - first) / pd.Timedelta(days=1)))
    holdout = read_holdout(store, region, end, days).since(first)
    frame = holdout.frame
    if frame.empty:
        raise TrainingDataError(f"{region}: no complete day with known prices in the test window {first} .. {last}")
    uri = client.get_model_version_download_uri(champion.name, champion.version) if client else champion.uri
    forecast = batch_forecast(uri, holdout)
    return pd.DataFrame(
        {
            "target_ts": frame["target_ts"],
            reports.TARGET: frame[TARGET_COLUMN].astype(float),
            reports.PREDICTION: forecast["yhat"].to_numpy(dtype=float),
        }
    )


def _prediction_part(
    settings: Settings,
    store: PriceStore,
    client: MlflowClient | None,
    window: ReferenceWindow,
    region: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    realized: pd.Series,
    out_dir: Path,
) -> tuple[dict[str, Any], float]:
    """The prediction report's summary (``status`` ok or skipped with ``reason``) and its Evidently seconds."""
    best = window.champion
    if best is None:
        return {
            "status": "skipped",
            "reason": f"no champion model of {region}: no test window to compare the served forecasts with",
        }, 0.0
    current, forecast_hours = realized_forecasts(store, region, start, end, realized)
    span = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if current.empty:
        why = (
            f"{forecast_hours} hour(s) have a stored forecast but none a known price yet"
            if forecast_hours
            else "the forecasts table holds no model (non-fallback) forecast for those hours"
        )
        return {"status": "skipped", "reason": f"no forecast of {region} realized in {span}: {why}"}, 0.0
    if not window.params.get("data_end"):
        return {
            "status": "skipped",
            "reason": f"champion {best.uri} has no data_end param on its run {best.run_id}: its test window is unknown",
        }, 0.0
    try:
        reference, source = champion_test_predictions(settings, store, best, window.params, region, client)
    except TrainingDataError as exc:
        return {
            "status": "skipped",
            "reason": f"champion {best.uri} cannot be re-scored on its test window: {exc}",
        }, 0.0
    except Exception as exc:  # a model that cannot load or predict must not take the feature drift down with it
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {
            "status": "skipped",
            "reason": f"champion {best.uri} could not be re-scored on its test window: {type(exc).__name__}: {reason}",
        }, 0.0
    started = time.perf_counter()
    snapshot = reports.prediction_drift_report(
        current, reference, column_threshold=settings.quality.drift_column_threshold
    )
    html, json_path = reports.save_snapshot(snapshot, out_dir, f"prediction_drift_{region}")
    seconds = time.perf_counter() - started
    return {
        "status": "ok",
        **reports.prediction_summary(snapshot),
        "hours": len(current),
        "forecast_hours": forecast_hours,
        "models": current["model"].value_counts().sort_index().to_dict(),
        "selection": FORECAST_SELECTION,
        "reference": {
            "model": best.uri,
            "start": _iso(reference["target_ts"].min()),
            "end": _iso(reference["target_ts"].max() + HOUR),
            "hours": len(reference),
            "kind": source,
        },
        "report_html": html,
        "report_json": json_path,
    }, seconds
