"""forecast_generation's tasks as plain functions, named as the DAG's tasks; ``eopt forecast`` runs them in a row.

``check_model_ready`` sees every region of the run; the others work on one region each (the DAG
maps them over the regions, so one region's failure costs no other region its forecast). Frames
pass from one task to the next as parquet files in the run's folder, never through XCom:
``request_<REGION>.json`` (``prepare_features``: the registered model's raw request, the very
JSON body a client posts to ``mlflow models serve``), ``forecast_<REGION>.parquet``
(``generate_forecasts``). Each task replaces only its own region's file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from serving.forecasting import (
    Forecast,
    alert_fallback,
    forecast_document,
    forecast_origin,
    generate_forecast,
    model_readiness,
    prepare_request,
)
from serving.model_request import ModelRequest
from storage.cache import PriceCache
from storage.forecasts import ForecastStore
from storage.prices import PriceStore

log = logging.getLogger(__name__)


def request_file(folder: Path, region: str) -> Path:
    return folder / f"request_{region}.json"


def forecast_file(folder: Path, region: str) -> Path:
    return folder / f"forecast_{region}.parquet"


def check_model_ready(client: MlflowClient, regions: Sequence[str]) -> dict[str, str | None]:
    """Per region, the champion's ``models:/NAME/VERSION``, or None where it will fall back to the seasonal naive."""
    return model_readiness(client, regions)


def prepare_features(store: PriceStore, region: str, run_hour: pd.Timestamp, folder: Path) -> Path:
    """The region's origin (the hour after its newest price known before the run) and the model's
    raw request of it (the inputs its features are built from), in ``request_<REGION>.json``.
    Raises ``StaleDataError`` naming the region when its newest price is too old (or absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = request_file(folder, region)
    path.unlink(missing_ok=True)  # a retry starts clean: generate_forecasts reads what is here
    origin = forecast_origin(store, region, run_hour)
    request = prepare_request(store, region, origin)
    path.write_text(json.dumps(request.body(), allow_nan=False))
    log.info("%s: origin %s, the model's request (%d hourly rows) in %s", region, origin, len(request.table), path)
    return path


def generate_forecasts(client: MlflowClient, region: str, folder: Path, issued_at: pd.Timestamp) -> dict[str, Any]:
    """The region's 24 hours by its champion, or the labelled seasonal-naive fallback (an ERROR
    alert naming the region and the reason), in ``forecast_<REGION>.parquet``. Raises
    ``ForecastError`` when not even the fallback can forecast it."""
    path = forecast_file(folder, region)
    path.unlink(missing_ok=True)
    request = ModelRequest.from_body(json.loads(request_file(folder, region).read_text()))
    forecast = generate_forecast(client, region, request, issued_at)
    forecast.frame.to_parquet(path, index=False)
    alert_fallback(forecast)
    log.info(
        "%s: %s version %s%s",
        region,
        forecast.model_name,
        forecast.model_version,
        f", FALLBACK: {forecast.fallback_reason}" if forecast.is_fallback else "",
    )
    return {
        "region": region,
        "model": forecast.model_name,
        "version": forecast.model_version,
        "is_fallback": forecast.is_fallback,
        "reason": forecast.fallback_reason,
    }


def store_forecasts(store: PriceStore, region: str, folder: Path) -> dict[str, Any]:
    """The region's forecast file in one idempotent upsert keyed by ``(region, issued_at, target_ts)``."""
    frame = pd.read_parquet(forecast_file(folder, region))
    result = ForecastStore(store.engine).upsert_forecasts(frame)
    log.info(
        "%s: stored forecasts: %d new, %d updated, %d unchanged",
        region,
        result.inserted,
        result.updated,
        result.unchanged,
    )
    return {"region": region, "inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged}


def update_forecast_cache(store: PriceStore, cache: PriceCache, region: str) -> dict[str, Any]:
    """The region's newest forecast into the cache (the newest issue, even when this run re-ran an old one)."""
    newest = Forecast(ForecastStore(store.engine).read_forecasts(region))
    write = cache.publish_forecast(region, forecast_document(newest))
    log.info("cache %s: issued %s, %s", write.key, newest.issued_at, "ok" if write.ok else f"FAILED {write.error}")
    return {"key": write.key, "issued_at": str(newest.issued_at), "ok": write.ok}
