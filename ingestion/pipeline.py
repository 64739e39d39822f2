"""The ingestion cycle's steps: fetch, aggregate, validate, store, cache (``pipelines.electricity_price_ingestion``
composes them into the DAG's tasks and ``run_cycle``).

The cycle at run time ``T`` asks every provider for ``[T - 24 h, T + 24 h)`` floored to the hour:
yesterday's hours (late revisions), today's, and tomorrow's day-ahead prices once published, and,
from providers that publish them (ENTSO-E), the day-ahead exogenous forecasts of the same window
(load, wind and solar), which go the same way: hourly means, quarantine of what is refused, one
idempotent upsert with the prices into ``market_exogenous``.
Every step is idempotent: re-running a cycle changes nothing in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from core.redaction import redact
from core.regions import Catalogue
from core.settings import Settings
from core.timestamps import local_midnights
from ingestion.aggregate import aggregate_exogenous_hourly, aggregate_hourly
from ingestion.http import ApiCall, AuthError, HttpTransport, PayloadError, ProviderConfig, ProviderError
from ingestion.providers import FETCH_TASKS, build_client, provider_config
from ingestion.sources import EXOGENOUS_SOURCE_COLUMNS, SOURCE_COLUMNS, empty_exogenous, empty_prices
from ingestion.validation import Validation, validate_prices
from storage.cache import CacheWrite, PriceCache, refresh_latest_prices
from storage.health import ApiHealthStore, QuarantinedRow, QuarantineStore
from storage.prices import PriceStore

log = logging.getLogger(__name__)

LOOKBACK = pd.Timedelta(hours=24)
LOOKAHEAD = pd.Timedelta(hours=24)


# When each market publishes the next delivery day's day-ahead prices (local clock) is its catalogue
# entry's ``published_at``: SDAC results around 12:45-13:00 CET for the European zones; PJM by 13:30 ET.


def published_until(region: str, run_time: pd.Timestamp, catalogue: Catalogue) -> pd.Timestamp:
    """End (exclusive, UTC) of the last delivery day whose day-ahead prices are published at ``run_time``
    (the region's entry in ``catalogue``, the settings' one)."""
    from core.markets import get_market

    market = get_market(region, catalogue)
    zone = market.timezone
    local = pd.Timestamp(run_time).tz_convert(zone)
    published_at = pd.Timestamp(market.published_at).time()
    days_ahead = 2 if local.time() >= published_at else 1
    return local_midnights(zone, [pd.Timestamp(local.date()) + pd.Timedelta(days=days_ahead)])[0]


def missing_hours(
    store: PriceStore, regions: Iterable[str], run_time: pd.Timestamp, catalogue: Catalogue
) -> dict[str, int]:
    """Per region, the hours of the cycle window that could be published by now but are not stored.

    The ``check_markets_open`` rule: a cycle has work only if some region has such hours;
    otherwise nothing new can be published for any region and the cycle short-circuits.
    """
    start, end = cycle_window(run_time)
    missing = {}
    for region in regions:
        until = min(end, published_until(region, run_time, catalogue))
        expected = pd.date_range(start, until, freq="h", inclusive="left")
        stored = set(store.read_prices(region, start=start, end=until)["ts"])
        missing[region] = sum(1 for ts in expected if ts not in stored)
    return missing


def cycle_window(run_time: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    hour = pd.Timestamp(run_time).tz_convert("UTC").floor("h")
    return hour - LOOKBACK, hour + LOOKAHEAD


@dataclass
class FetchOutcome:
    source: str
    rows: pd.DataFrame
    failures: list[str] = field(default_factory=list)
    regions_ok: list[str] = field(default_factory=list)
    exogenous: pd.DataFrame = field(default_factory=empty_exogenous)  # EXOGENOUS_SOURCE_COLUMNS

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def fetch_source(
    config: ProviderConfig,
    settings: Settings,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    health: ApiHealthStore | None = None,
    quarantine: QuarantineStore | None = None,
    **transport_kwargs,
) -> FetchOutcome:
    """Fetch one provider for all its regions. This is the provider boundary: whatever goes wrong
    (any exception, not only the clients' own errors) becomes a line of the outcome's ``failures``
    and an ``api_health`` error row with its reason (the transport writes one for each HTTP call;
    a failure outside a call gets one here), and a payload, when there was one, is quarantined
    with its archive reference. A failing region never loses the others' rows, and a failing
    provider never stops the other providers."""
    record = (lambda call: health.record([call])) if health is not None else None
    outcome = FetchOutcome(config.source, empty_prices())
    try:
        client = build_client(config, settings, record=record, **transport_kwargs)
        regions = client.regions()
    except Exception as exc:  # the boundary: a configuration that cannot make a client
        reason = redact(f"{config.source}: cannot build the client: {type(exc).__name__}: {exc}")
        outcome.failures.append(reason)
        _record_failure(record, config.source, "(client)", reason)
        log.error("%s", reason)
        return outcome
    transport: HttpTransport | None = getattr(client, "transport", None)
    frames, exogenous_frames = [], []
    for region in regions:
        noted = len(transport.calls) if transport is not None else 0
        try:
            rows = client.fetch_prices(region, start, end).loc[:, list(SOURCE_COLUMNS)]
        except Exception as exc:  # the boundary: every failure is this provider's, recorded
            if _note_failure(outcome, config.source, region, "", exc, transport, noted, record, quarantine):
                break
        else:
            frames.append(rows)
            outcome.regions_ok.append(region)
            log.info("%s: %d row(s) for %s in [%s, %s)", config.source, len(rows), region, start, end)
        stop = False
        for name, fetch in client.exogenous_series().items():  # each on its own: one failing loses no other
            noted = len(transport.calls) if transport is not None else 0
            try:
                series = fetch(region, start, end).loc[:, list(EXOGENOUS_SOURCE_COLUMNS)]
            except Exception as exc:  # the same boundary: this series fails, the prices are kept
                stop = _note_failure(
                    outcome, config.source, region, f"{name}: ", exc, transport, noted, record, quarantine
                )
                if stop:
                    break
                continue
            exogenous_frames.append(series)
            log.info("%s: %d %s value(s) for %s in [%s, %s)", config.source, len(series), name, region, start, end)
        if stop:
            break
    if frames:
        outcome.rows = pd.concat(frames, ignore_index=True)
    if exogenous_frames:
        outcome.exogenous = pd.concat(exogenous_frames, ignore_index=True)
    return outcome


def _note_failure(
    outcome: FetchOutcome,
    source: str,
    region: str,
    what: str,
    exc: Exception,
    transport: HttpTransport | None,
    noted: int,
    record: Callable[[ApiCall], object] | None,
    quarantine: QuarantineStore | None,
) -> bool:
    """One failed fetch (``what``: empty for the prices, else the exogenous series' name) into the
    outcome, ``api_health`` and, with its payload, the quarantine. True when the provider refused
    the credentials, so its other regions are not tried."""
    message = redact(
        f"{region}: {what}{exc}" if isinstance(exc, ProviderError) else f"{region}: {what}{_described(exc)}"
    )
    outcome.failures.append(message)
    recorded = transport is not None and any(c.status == "error" for c in transport.calls[noted:])
    if not recorded:
        if transport is not None:
            transport.record_failure("(client)", message)
        else:
            _record_failure(record, source, "(client)", message)
    if isinstance(exc, PayloadError) and exc.payload_ref and quarantine is not None:
        row = QuarantinedRow(
            source=source, region=region, reason=f"rejected payload: {message}", payload_ref=exc.payload_ref
        )
        try:
            quarantine.add([row])
        except Exception as store_error:  # the payload stays archived; say where
            outcome.failures.append(
                f"{region}: could not quarantine the payload archived at {exc.payload_ref}: {store_error}"
            )
            log.error("could not quarantine %s's payload %s: %s", source, exc.payload_ref, store_error)
        log.error("%s sent a payload that was refused for %s (quarantined): %s", source, region, message)
    elif isinstance(exc, AuthError):
        log.error("%s refused the credentials; skipping its other regions: %s", source, message)
        return True
    else:
        log.error("%s failed for %s: %s", source, region, message)
    return False


def _described(exc: BaseException) -> str:
    """An unexpected exception as a reason: its type and message (and where a message is empty, only the type)."""
    text = " ".join(str(exc).split())
    if len(text) > 500:
        text = text[:500] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _record_failure(record: Callable[[ApiCall], object] | None, source: str, endpoint: str, reason: str) -> None:
    """An ``api_health`` error row for a failure that happened before any HTTP call."""
    if record is None:
        return
    try:
        record(ApiCall(source, endpoint, "error", None, 0.0, 0, redact(reason), datetime.now(UTC)))
    except Exception as exc:  # health bookkeeping must never break ingestion
        log.warning("could not record API health for %s: %s", source, exc)


def fetch_task(
    task: str,
    settings: Settings,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    configs: dict[str, ProviderConfig] | None = None,
    health: ApiHealthStore | None = None,
    quarantine: QuarantineStore | None = None,
    **transport_kwargs,
) -> list[FetchOutcome]:
    """The sources behind one DAG fetch task (``FETCH_TASKS``), each with its own outcome."""
    outcomes = []
    for source in FETCH_TASKS[task]:
        if source not in settings.providers.sources:
            continue
        config = (configs or {}).get(source) or provider_config(source, settings)
        outcomes.append(
            fetch_source(config, settings, start, end, health=health, quarantine=quarantine, **transport_kwargs)
        )
    return outcomes


def quarantine_rejected(rejected: pd.DataFrame, quarantine: QuarantineStore) -> int:
    rows = [
        QuarantinedRow(
            source=str(r.source),
            region=None if pd.isna(r.region) else str(r.region),
            ts=None if pd.isna(r.ts) else r.ts.to_pydatetime(),
            raw_value=None if pd.isna(r.price) else repr(r.price),
            reason=str(r.reason),
        )
        for r in rejected.itertuples(index=False)
    ]
    return quarantine.add(rows)


def aggregate_step(raw: pd.DataFrame, quarantine: QuarantineStore) -> tuple[pd.DataFrame, int]:
    """Providers' rows -> hourly per-MWh rows; returns them and how many rejected rows were newly quarantined."""
    aggregated = aggregate_hourly(raw)
    return aggregated.hourly, quarantine_rejected(aggregated.rejected, quarantine)


def aggregate_exogenous_step(raw: pd.DataFrame, quarantine: QuarantineStore) -> tuple[pd.DataFrame, int]:
    """Providers' exogenous rows -> hourly means in the store's shape (``EXOGENOUS_COLUMNS``); returns
    them and how many rejected rows (named by their variable) were newly quarantined."""
    aggregated = aggregate_exogenous_hourly(raw)
    rejected = aggregated.rejected
    rows = [
        QuarantinedRow(
            source=str(r.source),
            region=None if pd.isna(r.region) else str(r.region),
            ts=None if pd.isna(r.ts) else r.ts.to_pydatetime(),
            raw_value=None if pd.isna(r.value) else repr(r.value),
            reason=f"exogenous {r.variable}: {r.reason}",
        )
        for r in rejected.itertuples(index=False)
    ]
    return aggregated.hourly.drop(columns="resolution"), quarantine.add(rows)


def validate_step(
    hourly: pd.DataFrame, run_time: pd.Timestamp, min_records: int, quarantine: QuarantineStore, catalogue: Catalogue
) -> tuple[Validation, int]:
    """Validate hourly rows against ``catalogue`` (the settings' one); returns the validation and how many
    rejected rows were newly quarantined."""
    validation = validate_prices(hourly, run_time=run_time, catalogue=catalogue, min_records=min_records)
    return validation, quarantine_rejected(validation.rejected, quarantine)


def refresh_cache(store: PriceStore, cache: PriceCache, regions: Iterable[str]) -> list[CacheWrite]:
    return [refresh_latest_prices(store, cache, region) for region in regions]


def save_rows(frame: pd.DataFrame, path: Path) -> str:
    """Hand rows from one DAG task to the next as a file (never through XCom)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return str(path)


def load_rows(paths: Iterable[str | None], empty: Callable[[], pd.DataFrame] = empty_prices) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths if p and Path(p).is_file()]
    if not frames:
        return empty()
    frame = pd.concat(frames, ignore_index=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[us, UTC]")
    return frame
