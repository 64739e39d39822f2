"""forecast_generation's tasks as plain functions, named as the DAG's tasks; ``eopt forecast`` runs them in a row.

Frames pass from one task to the next as parquet files in the run's folder, never through XCom:
``features_<REGION>.parquet`` (``prepare_features``), ``forecast_<REGION>.parquet``
(``generate_forecasts``). A task that cannot do a region writes the others' files first, then
raises naming the region and why, so one stale region costs no other region
its forecast.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from serving.forecasting import (
    Forecast,
    ForecastError,
    StaleDataError,
    alert_fallback,
    forecast_document,
    forecast_origin,
    generate_forecast,
    model_readiness,
)
from serving.forecasting import prepare_features as features_at
from storage.cache import PriceCache
from storage.forecasts import ForecastStore
from storage.prices import PriceStore
from training.features import FeatureError

log = logging.getLogger(__name__)


def _raise_for(problems: dict[str, str], others: int) -> None:
    """Fail the task naming the regions it could not do (and why), after the others' files are written."""
    if problems:
        raise RuntimeError(
            f"no forecast for {', '.join(problems)} ({others} other region(s) go on): " + " | ".join(problems.values())
        )


def check_model_ready(client: MlflowClient, regions: Sequence[str]) -> dict[str, str | None]:
    """Per region, the champion's ``models:/NAME/VERSION``, or None where it will fall back to the seasonal naive."""
    return model_readiness(client, regions)


def prepare_features(store: PriceStore, regions: Sequence[str], run_hour: pd.Timestamp, folder: Path) -> dict[str, str]:
    """Per region, the origin (the hour after the newest price known before the run) and its 24
    feature rows in ``features_<REGION>.parquet``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("features_*.parquet"):
        old.unlink()  # a retry starts clean: generate_forecasts reads what is here
    problems, paths = {}, {}
    for region in regions:
        try:
            origin = forecast_origin(store, region, run_hour)
            features = features_at(store, region, origin)
        except (StaleDataError, FeatureError) as exc:
            problems[region] = str(exc)
            continue
        path = folder / f"features_{region}.parquet"
        features.to_parquet(path, index=False)
        paths[region] = str(path)
        log.info("%s: origin %s, 24 feature rows in %s", region, origin, path)
    _raise_for(problems, len(paths))
    return paths


def generate_forecasts(
    client: MlflowClient, regions: Sequence[str], folder: Path, issued_at: pd.Timestamp
) -> dict[str, dict[str, Any]]:
    """Per region with features, the champion's forecast or the labelled seasonal-naive fallback
    (an ERROR alert naming the region and the reason) in ``forecast_<REGION>.parquet``."""
    for old in folder.glob("forecast_*.parquet"):
        old.unlink()
    problems, summary = {}, {}
    for region in regions:
        source = folder / f"features_{region}.parquet"
        if not source.is_file():
            continue  # prepare_features said why
        features = pd.read_parquet(source)
        try:
            forecast = generate_forecast(client, region, features, features["origin"].iloc[0], issued_at)
        except ForecastError as exc:
            problems[region] = str(exc)
            continue
        forecast.frame.to_parquet(folder / f"forecast_{region}.parquet", index=False)
        alert_fallback(forecast)
        log.info(
            "%s: %s version %s%s",
            region,
            forecast.model_name,
            forecast.model_version,
            f", FALLBACK: {forecast.fallback_reason}" if forecast.is_fallback else "",
        )
        summary[region] = {
            "model": forecast.model_name,
            "version": forecast.model_version,
            "is_fallback": forecast.is_fallback,
            "reason": forecast.fallback_reason,
        }
    _raise_for(problems, len(summary))
    if not summary:
        raise RuntimeError(f"no region had features to forecast from ({', '.join(regions)}); see prepare_features")
    return summary


def store_forecasts(store: PriceStore, regions: Sequence[str], folder: Path) -> dict[str, Any]:
    """Every region's forecast file in one idempotent upsert keyed by ``(region, issued_at, target_ts)``."""
    paths = {r: folder / f"forecast_{r}.parquet" for r in regions}
    paths = {r: p for r, p in paths.items() if p.is_file()}
    if not paths:
        raise RuntimeError("no forecast to store: generate_forecasts forecast no region (its log says why)")
    frame = pd.concat([pd.read_parquet(p) for p in paths.values()], ignore_index=True)
    result = ForecastStore(store.engine).upsert_forecasts(frame)
    log.info("stored forecasts: %d new, %d updated, %d unchanged", result.inserted, result.updated, result.unchanged)
    return {
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "regions": sorted(paths),
    }


def update_forecast_cache(store: PriceStore, cache: PriceCache, regions: Sequence[str]) -> dict[str, bool]:
    """Each region's newest forecast into the cache (the newest issue, even when this run re-ran an old one)."""
    forecasts = ForecastStore(store.engine)
    writes = {}
    for region in regions:
        newest = Forecast(forecasts.read_forecasts(region))
        write = cache.publish_forecast(region, forecast_document(newest))
        log.info("cache %s: issued %s, %s", write.key, newest.issued_at, "ok" if write.ok else f"FAILED {write.error}")
        writes[write.key] = write.ok
    return writes
