"""forecast_generation's tasks as plain functions, named as the DAG's tasks; ``eopt forecast`` runs them in a row.

``check_model_ready`` sees every zone of the run and splits them into chunks; each of the others
works on one chunk of zones at once (the DAG maps them over the chunks): one query reads the
prices of all the chunk's zones and one their exogenous forecasts, each zone's champion is loaded
once per process, and one upsert writes the chunk's forecasts. A zone that cannot be forecast is
caught on its own: its error is logged (ERROR, naming the zone and the reason) and recorded in
``failed_<ZONE>.json``, the steps after it skip that zone, and the other zones are forecast,
stored and cached; only then ``update_forecast_cache`` raises :class:`ZonesNotForecast` naming
every zone of the chunk that was not forecast and why, so the chunk's instance fails.

Frames pass from one task to the next as files in the run's folder, never through XCom, one per
zone: ``request_<ZONE>.json`` (``prepare_features``: the registered model's raw request, the very
JSON body a client posts to ``mlflow models serve``), ``forecast_<ZONE>.parquet``
(``generate_forecasts``). Each task replaces only its own zones' files, so a retry starts clean.
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
    forecast_origins,
    generate_forecast,
    model_readiness,
    prepare_requests,
)
from serving.model_request import ModelRequest
from storage.cache import PriceCache
from storage.forecasts import ForecastStore
from storage.prices import PriceStore

log = logging.getLogger(__name__)


class ZonesNotForecast(RuntimeError):
    """Zones of a chunk that could not be forecast (the others were stored and cached); the message
    names each zone, the task it failed in and why."""


def request_file(folder: Path, region: str) -> Path:
    return folder / f"request_{region}.json"


def forecast_file(folder: Path, region: str) -> Path:
    return folder / f"forecast_{region}.parquet"


def failure_file(folder: Path, region: str) -> Path:
    return folder / f"failed_{region}.json"


def zone_chunks(regions: Sequence[str], size: int) -> list[list[str]]:
    """``regions`` in order, split into as few chunks of at most ``size`` zones as there can be,
    of even size (46 zones by 25: 23 and 23), so the mapped instances take as long as each other."""
    if size < 1:
        raise ValueError(f"a chunk holds at least one zone, not {size}")
    regions = list(regions)
    count = -(-len(regions) // size)
    chunks, start = [], 0
    for index in range(count):
        length = len(regions) // count + (1 if index < len(regions) % count else 0)
        chunks.append(regions[start : start + length])
        start += length
    return chunks


def check_model_ready(client: MlflowClient, regions: Sequence[str], chunk_zones: int) -> list[list[str]]:
    """Log, per zone, the champion's ``models:/NAME/VERSION`` or that it will fall back to the seasonal
    naive; the run's zones in chunks of at most ``chunk_zones`` (``zone_chunks``)."""
    model_readiness(client, regions)
    return zone_chunks(regions, chunk_zones)


def _chunk(zones: Sequence[str]) -> list[str]:
    """A chunk's zones as a list; a single code given as a string (``"NP"``, which would iterate as
    ``"N"``, ``"P"``) is refused, naming what to pass."""
    if isinstance(zones, str):
        raise TypeError(f"a chunk is a list of zones, e.g. [{zones!r}], not the string {zones!r}")
    return list(zones)


def _clear(folder: Path, zones: Sequence[str], task: str, outputs: Any) -> None:
    """Remove what ``task`` wrote for ``zones`` in an earlier try: its output files and its failure records."""
    for zone in zones:
        outputs(folder, zone).unlink(missing_ok=True)
        record = failure_file(folder, zone)
        if record.exists() and json.loads(record.read_text()).get("task") == task:
            record.unlink()


def _failed(folder: Path, zone: str, task: str, exc: BaseException) -> str:
    """Record and log that ``zone`` could not be forecast in ``task``; the reason in words."""
    reason = f"{type(exc).__name__}: {exc}"
    failure_file(folder, zone).write_text(json.dumps({"zone": zone, "task": task, "reason": reason}))
    log.error("%s: not forecast (%s failed for this zone): %s", zone, task, reason)
    return reason


def _not_reached(folder: Path, zone: str, task: str) -> str | None:
    """Why ``zone`` has no input for ``task``: the failure an earlier task recorded, or (when none
    did) a new record saying its input is missing."""
    record = failure_file(folder, zone)
    if record.exists():
        return None
    return _failed(folder, zone, task, FileNotFoundError(f"{zone}: the earlier task left no input for {task}"))


def prepare_features(store: PriceStore, zones: Sequence[str], run_hour: pd.Timestamp, folder: Path) -> dict[str, Any]:
    """Each zone's origin (the hour after its newest price known before the run) and the model's raw
    request of it (the inputs its features are built from), in ``request_<ZONE>.json``; the prices
    of all the zones in one query. A zone whose newest price is too old (or absent) is recorded as
    failed with its ``StaleDataError``, naming it and what to check; the others go on."""
    zones = _chunk(zones)
    folder.mkdir(parents=True, exist_ok=True)
    _clear(folder, zones, "prepare_features", request_file)  # generate_forecasts reads what is here
    origins, refused = forecast_origins(store, zones, run_hour)
    requests, failed = prepare_requests(store, origins)
    reasons = {zone: _failed(folder, zone, "prepare_features", exc) for zone, exc in {**refused, **failed}.items()}
    for zone, request in requests.items():
        path = request_file(folder, zone)
        path.write_text(json.dumps(request.body(), allow_nan=False))
        log.info(
            "%s: origin %s, the model's request (%d hourly rows) in %s", zone, request.origin, len(request.table), path
        )
    return {"prepared": {zone: str(requests[zone].origin) for zone in zones if zone in requests}, "failed": reasons}


def generate_forecasts(
    client: MlflowClient, zones: Sequence[str], folder: Path, issued_at: pd.Timestamp
) -> dict[str, Any]:
    """Each prepared zone's 24 hours by its champion (loaded once per process), or the labelled
    seasonal-naive fallback (an ERROR alert naming the zone and the reason), in
    ``forecast_<ZONE>.parquet``. A zone that not even the fallback can forecast is recorded as
    failed with its ``ForecastError``; the others go on."""
    zones = _chunk(zones)
    _clear(folder, zones, "generate_forecasts", forecast_file)
    forecasts: dict[str, dict[str, Any]] = {}
    reasons: dict[str, str] = {}
    for zone in zones:
        source = request_file(folder, zone)
        if not source.exists():
            reason = _not_reached(folder, zone, "generate_forecasts")
            if reason:
                reasons[zone] = reason
            continue
        try:
            request = ModelRequest.from_body(json.loads(source.read_text()))
            forecast = generate_forecast(client, zone, request, issued_at)
        except Exception as exc:  # one zone's failure costs no other zone its forecast
            reasons[zone] = _failed(folder, zone, "generate_forecasts", exc)
            continue
        forecast.frame.to_parquet(forecast_file(folder, zone), index=False)
        alert_fallback(forecast)
        log.info(
            "%s: %s version %s%s",
            zone,
            forecast.model_name,
            forecast.model_version,
            f", FALLBACK: {forecast.fallback_reason}" if forecast.is_fallback else "",
        )
        forecasts[zone] = {
            "model": forecast.model_name,
            "version": forecast.model_version,
            "is_fallback": forecast.is_fallback,
            "reason": forecast.fallback_reason,
        }
    return {"forecasts": forecasts, "failed": reasons}


def store_forecasts(store: PriceStore, zones: Sequence[str], folder: Path) -> dict[str, Any]:
    """The forecast files of the chunk's zones in one idempotent upsert keyed by ``(region, issued_at, target_ts)``."""
    zones = _chunk(zones)
    present = [zone for zone in zones if forecast_file(folder, zone).exists()]
    counts = {"inserted": 0, "updated": 0, "unchanged": 0}
    if present:
        frame = pd.concat([pd.read_parquet(forecast_file(folder, zone)) for zone in present], ignore_index=True)
        result = ForecastStore(store.engine).upsert_forecasts(frame)
        counts = {"inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged}
    log.info(
        "stored the forecasts of %d zone(s) (%s): %d new, %d updated, %d unchanged",
        len(present),
        ",".join(present),
        counts["inserted"],
        counts["updated"],
        counts["unchanged"],
    )
    return {"stored": present, **counts}


def update_forecast_cache(store: PriceStore, cache: PriceCache, zones: Sequence[str], folder: Path) -> dict[str, Any]:
    """Each forecast zone's newest forecast into the cache (the newest issue, even when this run re-ran
    an old one; one query for the chunk). Then raises ``ZonesNotForecast`` when a zone of the chunk
    was not forecast, naming each one, the task it failed in and why."""
    zones = _chunk(zones)
    present = [zone for zone in zones if forecast_file(folder, zone).exists()]
    newest = ForecastStore(store.engine).read_newest(present)
    cached: dict[str, dict[str, Any]] = {}
    for zone in present:
        forecast = Forecast(newest[zone])
        write = cache.publish_forecast(zone, forecast_document(forecast))
        log.info(
            "cache %s: issued %s, %s", write.key, forecast.issued_at, "ok" if write.ok else f"FAILED {write.error}"
        )
        cached[zone] = {"key": write.key, "issued_at": str(forecast.issued_at), "ok": write.ok}
    failures = [
        json.loads(failure_file(folder, zone).read_text()) for zone in zones if failure_file(folder, zone).exists()
    ]
    if failures:
        raise ZonesNotForecast(
            f"{len(failures)} of {len(zones)} zone(s) not forecast (the other {len(present)} stored and cached): "
            + " | ".join(f"{f['zone']} in {f['task']}: {f['reason']}" for f in failures)
        )
    return {"cached": cached}
