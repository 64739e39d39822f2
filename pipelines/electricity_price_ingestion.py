"""electricity_price_ingestion's tasks as plain functions, named as the DAG's tasks.

``run_cycle`` (``eopt ingest``, the ingestion benchmark) runs the same functions in one process:
the fetches concurrently, as the DAG's fetch tasks run in parallel, then aggregate, validate,
store and cache. Rows pass from one step to the next as parquet files in the run's folder, never
through XCom. Every step is idempotent: re-running a cycle changes nothing in the store.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.regions import Catalogue
from core.settings import Settings
from ingestion.http import ProviderConfig
from ingestion.pipeline import (
    aggregate_exogenous_step,
    aggregate_step,
    cycle_window,
    fetch_task,
    load_rows,
    missing_hours,
    refresh_cache,
    save_rows,
    validate_step,
)
from ingestion.providers import FETCH_TASKS
from ingestion.sources import empty_exogenous
from quality import checks
from storage.cache import PriceCache
from storage.health import ApiHealthStore, QuarantineStore
from storage.prices import PriceStore

log = logging.getLogger(__name__)


class ProviderFailed(RuntimeError):
    """A provider failed for this cycle; what it did fetch is saved for ``aggregate_prices``."""


def check_api_health(store: PriceStore, settings: Settings, run_time: pd.Timestamp) -> dict[str, dict[str, Any]]:
    """Each provider's calls, error rate and latency over the day before the run, judged by the
    rule of data_quality's ``check_api_health`` (``quality.checks.api_health``); informational:
    the cycle runs either way, and a provider that is not ok is logged as a warning."""
    results = checks.api_health(ApiHealthStore(store.engine), settings, run_time)
    for result in results:
        (log.info if result.status in ("ok", "skipped") else log.warning)("%s", result.line())
    return {str(r.subject): r.to_dict() for r in results}


def check_markets_open(
    store: PriceStore, regions: Iterable[str], run_time: pd.Timestamp, catalogue: Catalogue, force: bool = False
) -> bool:
    """False when, for every region, all hours of the cycle window that its market can have
    published by now (its entry in ``catalogue``, the settings' one) are stored already (nothing
    new can come); ``force`` always runs the cycle."""
    if force:
        log.info("force=true: running the cycle regardless of what is stored")
        return True
    missing = missing_hours(store, regions, run_time, catalogue)
    log.info("publishable hours not yet stored, per region: %s", missing)
    return any(missing.values())


def fetch_provider(
    task: str,
    settings: Settings,
    store: PriceStore,
    start: pd.Timestamp,
    end: pd.Timestamp,
    folder: Path,
    configs: Mapping[str, ProviderConfig] | None = None,
    **transport_kwargs: Any,
) -> dict[str, Any]:
    """The providers behind one fetch task (``FETCH_TASKS``) for ``[start, end)``: their rows into
    ``fetch_<task>.parquet``, each call into ``api_health``, unparseable payloads quarantined."""
    outcomes = fetch_task(
        task,
        settings,
        start,
        end,
        configs=dict(configs or {}),
        health=ApiHealthStore(store.engine),
        quarantine=QuarantineStore(store.engine),
        **transport_kwargs,
    )
    rows = pd.concat([o.rows for o in outcomes], ignore_index=True) if outcomes else None
    path = save_rows(rows, folder / f"fetch_{task}.parquet") if rows is not None else None
    exogenous = [o.exogenous for o in outcomes if not o.exogenous.empty]
    if exogenous:  # the day-ahead load/wind/solar forecasts some providers publish (ENTSO-E)
        save_rows(pd.concat(exogenous, ignore_index=True), folder / f"exogenous_{task}.parquet")
    return {
        "path": path,
        "rows": {o.source: len(o.rows) for o in outcomes},
        "exogenous": {o.source: len(o.exogenous) for o in outcomes if not o.exogenous.empty},
        "failures": {o.source: o.failures for o in outcomes if o.failures},
    }


def _failing_loudly(summary: dict[str, Any]) -> dict[str, Any]:
    if summary["failures"]:
        raise ProviderFailed(
            f"provider {', '.join(summary['failures'])} failed for this cycle ({summary['rows']} rows kept for the "
            f"other regions): {summary['failures']}"
        )
    return summary


def fetch_flatpeak(
    settings: Settings,
    store: PriceStore,
    run_time: pd.Timestamp,
    folder: Path,
    configs: Mapping[str, ProviderConfig] | None = None,
) -> dict[str, Any]:
    """Flatpeak's tariffs of the cycle window; raises ``ProviderFailed`` after saving what it got."""
    return _failing_loudly(fetch_provider("flatpeak", settings, store, *cycle_window(run_time), folder, configs))


def fetch_nrel(
    settings: Settings,
    store: PriceStore,
    run_time: pd.Timestamp,
    folder: Path,
    configs: Mapping[str, ProviderConfig] | None = None,
) -> dict[str, Any]:
    """NREL utility rates and OpenEI's URDB tariffs of the cycle window; raises after saving what it got."""
    return _failing_loudly(fetch_provider("nrel", settings, store, *cycle_window(run_time), folder, configs))


def fetch_iea(
    settings: Settings,
    store: PriceStore,
    run_time: pd.Timestamp,
    folder: Path,
    configs: Mapping[str, ProviderConfig] | None = None,
) -> dict[str, Any]:
    """IEA's prices of the cycle window; raises ``ProviderFailed`` after saving what it got."""
    return _failing_loudly(fetch_provider("iea", settings, store, *cycle_window(run_time), folder, configs))


def fetch_entsoe(
    settings: Settings,
    store: PriceStore,
    run_time: pd.Timestamp,
    folder: Path,
    configs: Mapping[str, ProviderConfig] | None = None,
) -> dict[str, Any]:
    """ENTSO-E day-ahead prices (A44), total load forecast (A65) and wind and solar forecast (A69) of the
    cycle window; raises ``ProviderFailed`` after saving what it got."""
    return _failing_loudly(fetch_provider("entsoe", settings, store, *cycle_window(run_time), folder, configs))


def aggregate_prices(store: PriceStore, folder: Path) -> dict[str, Any]:
    """Every fetch file of the run -> hourly per-MWh rows in ``hourly.parquet``, and every exogenous
    file -> hourly means in ``exogenous_hourly.parquet``; rejects quarantined."""
    quarantine = QuarantineStore(store.engine)
    raw = load_rows(str(p) for p in sorted(folder.glob("fetch_*.parquet")))
    hourly, quarantined = aggregate_step(raw, quarantine)
    path = save_rows(hourly, folder / "hourly.parquet")
    raw_exogenous = load_rows((str(p) for p in sorted(folder.glob("exogenous_*.parquet"))), empty_exogenous)
    exogenous, exogenous_quarantined = aggregate_exogenous_step(raw_exogenous, quarantine)
    exogenous_path = save_rows(exogenous, folder / "exogenous_hourly.parquet")
    log.info(
        "aggregated %d provider rows into %d hourly rows and %d exogenous values into %d hourly ones; %d quarantined",
        len(raw),
        len(hourly),
        len(raw_exogenous),
        len(exogenous),
        quarantined + exogenous_quarantined,
    )
    return {
        "path": path,
        "raw": len(raw),
        "hourly": len(hourly),
        "quarantined": quarantined + exogenous_quarantined,
        "exogenous_path": exogenous_path,
        "exogenous_hourly": len(exogenous),
    }


def validate_data_quality(
    store: PriceStore,
    run_time: pd.Timestamp,
    min_records: int,
    folder: Path,
    aggregated_path: str,
    catalogue: Catalogue,
) -> dict[str, Any]:
    """Hourly rows -> the accepted ones in ``accepted.parquet``; rejects quarantined with their reason.
    ``catalogue`` is the settings' (the providers were configured from it): a region it does not
    hold fails the cycle, naming the region and the catalogue file."""
    validation, quarantined = validate_step(
        load_rows([aggregated_path]), run_time, min_records, QuarantineStore(store.engine), catalogue
    )
    path = save_rows(validation.accepted, folder / "accepted.parquet")
    log.info("validation: %s; %d newly quarantined", validation.summary(), quarantined)
    return {"path": path, "newly_quarantined": quarantined, **validation.summary()}


def store_prices(store: PriceStore, validated_path: str, exogenous_path: str | None = None) -> dict[str, Any]:
    """The accepted prices and the hourly exogenous forecasts, upserted in one transaction
    (idempotent: unchanged rows are counted, not rewritten)."""
    accepted = load_rows([validated_path])
    exogenous = load_rows([exogenous_path], empty_exogenous)
    written = store.upsert_history(accepted, exogenous)
    result = written.prices
    log.info(
        "stored: %d new, %d updated, %d unchanged prices; %d new, %d updated, %d unchanged exogenous values",
        result.inserted,
        result.updated,
        result.unchanged,
        written.exogenous.inserted,
        written.exogenous.updated,
        written.exogenous.unchanged,
    )
    return {
        "inserted": result.inserted,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "regions": sorted(accepted["region"].unique()),
        "exogenous": {
            "inserted": written.exogenous.inserted,
            "updated": written.exogenous.updated,
            "unchanged": written.exogenous.unchanged,
        },
    }


def update_cache(store: PriceStore, cache: PriceCache, regions: Iterable[str]) -> dict[str, bool]:
    """Each stored region's newest prices into the cache; a cache failure never fails the cycle."""
    writes = refresh_cache(store, cache, regions)
    for write in writes:
        log.info("cache %s: %s", write.key, "ok" if write.ok else f"FAILED {write.error}")
    return {w.key: w.ok for w in writes}


def forecast_requested(conf: Mapping[str, Any], variable: str | None) -> bool:
    """``conf={"trigger_forecast": ...}`` decides; else the ``trigger_forecast_after_ingestion`` variable."""
    asked = conf.get("trigger_forecast")
    if asked is None:
        asked = str(variable or "false").strip().lower() == "true"
    return bool(asked)


@dataclass
class CycleReport:
    window: tuple[pd.Timestamp, pd.Timestamp]
    fetched: dict[str, int]
    fetched_exogenous: dict[str, int]
    failures: dict[str, list[str]]
    aggregated: int
    validation: dict[str, object]
    quarantined: int
    stored: dict[str, Any]
    cache: dict[str, bool]


def run_cycle(
    settings: Settings,
    run_time: pd.Timestamp,
    store: PriceStore,
    cache: PriceCache,
    *,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    sources: Iterable[str] | None = None,
    min_records: int | None = None,
    **transport_kwargs: Any,
) -> CycleReport:
    """The whole cycle in one process over ``[start, end)`` (default: the cycle window of ``run_time``)."""
    if start is None or end is None:
        start, end = cycle_window(run_time)
    if sources is not None:
        settings = settings.with_overrides(ingestion_sources=tuple(sources))
    tasks = [t for t, group in FETCH_TASKS.items() if any(s in settings.providers.sources for s in group)]
    with tempfile.TemporaryDirectory(prefix="eopt-cycle-") as tmp:
        folder = Path(tmp)
        with ThreadPoolExecutor(max_workers=max(1, len(tasks))) as pool:
            fetched = list(
                pool.map(
                    lambda task: fetch_provider(task, settings, store, start, end, folder, **transport_kwargs), tasks
                )
            )
        aggregated = aggregate_prices(store, folder)
        validated = validate_data_quality(
            store,
            run_time,
            settings.providers.min_records if min_records is None else min_records,
            folder,
            aggregated["path"],
            settings.catalogue,
        )
        stored = store_prices(store, validated["path"], aggregated["exogenous_path"])
    return CycleReport(
        window=(start, end),
        fetched={source: n for f in fetched for source, n in f["rows"].items()},
        fetched_exogenous={source: n for f in fetched for source, n in f["exogenous"].items()},
        failures={source: messages for f in fetched for source, messages in f["failures"].items()},
        aggregated=aggregated["hourly"],
        validation={k: v for k, v in validated.items() if k not in ("path", "newly_quarantined")},
        quarantined=aggregated["quarantined"] + validated["newly_quarantined"],
        stored=stored,
        cache=update_cache(store, cache, stored["regions"]),
    )


@dataclass
class BackfillReport:
    """What :func:`backfill` did over its window, summed over its chunks."""

    window: tuple[pd.Timestamp, pd.Timestamp]
    chunks: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    exogenous_inserted: int = 0
    exogenous_updated: int = 0
    quarantined: int = 0
    failures: dict[str, list[str]] = field(default_factory=dict)  # source -> "[chunk's first day] message"

    def add(self, report: CycleReport) -> None:
        self.chunks += 1
        self.fetched += sum(report.fetched.values())
        self.inserted += int(report.stored["inserted"])
        self.updated += int(report.stored["updated"])
        self.exogenous_inserted += int(report.stored["exogenous"]["inserted"])
        self.exogenous_updated += int(report.stored["exogenous"]["updated"])
        self.quarantined += report.quarantined
        for source, messages in report.failures.items():
            self.failures.setdefault(source, []).extend(f"[{report.window[0]:%Y-%m-%d}] {m}" for m in messages)


def backfill_chunks(start: pd.Timestamp, end: pd.Timestamp, chunk_days: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The ``[lo, hi)`` windows of :func:`backfill`: ``chunk_days`` each from ``start``, the last one ending at ``end``."""
    if chunk_days < 1:
        raise ValueError(f"chunk_days must be at least 1, not {chunk_days}")
    return list(itertools.pairwise(sorted({*pd.date_range(start, end, freq=f"{chunk_days}D"), end})))


def backfill(
    settings: Settings,
    store: PriceStore,
    cache: PriceCache,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    sources: Iterable[str] | None = None,
    chunk_days: int = 7,
    on_chunk: Callable[[CycleReport, BackfillReport], None] | None = None,
) -> BackfillReport:
    """The ingestion cycle over ``[start, end)`` in chunks of ``chunk_days`` (``eopt ingest``, the benchmarks).

    Each chunk is one :func:`run_cycle` with no minimum row count (an old window may hold few rows);
    a provider failing in one chunk is recorded and the next chunk still runs, so a rerun after a
    fix fetches only what is missing (the upsert is idempotent). ``on_chunk`` sees each chunk's
    report and the running totals (a progress bar).
    """
    run_time = pd.Timestamp.now(tz="UTC")
    totals = BackfillReport(window=(start, end))
    for lo, hi in backfill_chunks(start, end, chunk_days):
        report = run_cycle(settings, run_time, store, cache, start=lo, end=hi, sources=sources, min_records=0)
        totals.add(report)
        if on_chunk is not None:
            on_chunk(report, totals)
    return totals
