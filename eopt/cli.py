"""`eopt`: the command line in front of the product's packages."""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass

import click
import pandas as pd
from tqdm import tqdm

from eopt.settings import KNOWN_REGIONS, Settings, SettingsError
from ingestion.markets import HISTORY_SOURCE, MarketDataError, load_market
from storage.cache import PriceCache, refresh_latest_prices
from storage.database import StorageError, create_store_engine, safe_url, upgrade
from storage.prices import PriceStore
from storage.timescale import timescale_status
from storage.upsert import EMPTY

log = logging.getLogger("eopt")


@dataclass
class Context:
    settings: Settings

    def store(self) -> PriceStore:
        return PriceStore(create_store_engine(self.settings.database_url))

    def cache(self) -> PriceCache:
        s = self.settings
        return PriceCache.from_url(s.redis_url, ttl_prices_s=s.cache_ttl_prices_s, ttl_forecasts_s=s.cache_ttl_forecasts_s)


def _utc(value: str | None, option: str) -> pd.Timestamp | None:
    if value is None or not value.strip():
        return None
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or time (use e.g. 2018-06-01 or 2018-06-01T12:00Z)", param_hint=option) from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")


def _duration(value: str) -> pd.Timedelta:
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise click.BadParameter(f"{value!r} is not a duration; use e.g. 90m, 48h, 7d or 2w", param_hint="--last")
    amount, unit = int(match.group(1)), match.group(2)
    return pd.Timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: amount})


def _regions(values: tuple[str, ...], settings: Settings) -> tuple[str, ...]:
    if not values or any(v.lower() == "all" for v in values):
        return settings.regions
    regions = tuple(v.upper() for v in values)
    unknown = [r for r in regions if r not in KNOWN_REGIONS]
    if unknown:
        raise click.BadParameter(
            f"unknown region {', '.join(unknown)}; known regions are {', '.join(KNOWN_REGIONS)}", param_hint="--region"
        )
    return regions


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Electricity Optimizer: hourly electricity price forecasting."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    ctx.obj = Context(settings)


@cli.group()
def db() -> None:
    """The price and forecast store."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Create or migrate the store's tables to the current schema (idempotent)."""
    engine = create_store_engine(obj.settings.database_url)
    revision = upgrade(engine)
    with engine.connect() as conn:
        status = timescale_status(conn)
    click.echo(f"store {safe_url(engine.url)} is at schema revision {revision}")
    if engine.dialect.name == "postgresql":
        if status.hypertables:
            click.echo(f"TimescaleDB hypertables: {', '.join(status.hypertables)}")
        else:
            click.echo("TimescaleDB extension not available: plain PostgreSQL tables")


@cli.command("load-history")
@click.option("--region", "regions", multiple=True, help="Region code (repeatable) or 'all' (default: EOPT_REGIONS).")
@click.option("--start", help="First UTC hour to load (inclusive), e.g. 2017-01-01.")
@click.option("--end", help="UTC hour to stop before (exclusive).")
@click.pass_obj
def load_history(obj: Context, regions: tuple[str, ...], start: str | None, end: str | None) -> None:
    """Load the bundled real market history into the store (idempotent: a rerun adds 0 rows)."""
    settings = obj.settings
    chosen = _regions(regions, settings)
    start_ts, end_ts = _utc(start, "--start"), _utc(end, "--end")
    if start_ts is not None and end_ts is not None and start_ts >= end_ts:
        raise click.BadParameter(f"--start {start_ts} is not before --end {end_ts}", param_hint="--start")
    store = obj.store()
    cache = obj.cache()
    batch = settings.upsert_batch_rows
    summary = []
    for region in chosen:
        history = load_market(region, settings.market_data_dir).between(start_ts, end_ts)
        prices, exogenous = history.prices, history.exogenous
        result, exog_result = EMPTY, EMPTY
        with tqdm(total=len(prices), desc=f"{region} history", unit="h", mininterval=0.5, file=sys.stderr) as bar:
            for offset in range(0, len(prices), batch):
                chunk = prices.iloc[offset : offset + batch]
                lo, hi = chunk["ts"].iloc[0], chunk["ts"].iloc[-1]
                exog_chunk = exogenous.loc[(exogenous["ts"] >= lo) & (exogenous["ts"] <= hi)]
                written = store.upsert_history(chunk, exog_chunk)
                result, exog_result = result + written.prices, exog_result + written.exogenous
                bar.update(len(chunk))
        cached = refresh_latest_prices(store, cache, region)
        summary.append(
            {
                "region": region,
                "hours in file": len(prices),
                "new rows": result.inserted,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "exogenous new": exog_result.inserted,
                "stored (region)": store.count_prices(region, HISTORY_SOURCE),
                "first ts (UTC)": prices["ts"].min() if len(prices) else None,
                "last ts (UTC)": prices["ts"].max() if len(prices) else None,
                "cache": "ok" if cached.ok else f"failed: {cached.error}",
            }
        )
    table = pd.DataFrame(summary)
    click.echo(table.to_string(index=False))
    click.echo(f"total new rows: {int(table['new rows'].sum())} into {store}")


@cli.command("prices")
@click.option("--region", required=True, help="Region code, e.g. NP.")
@click.option("--last", "last", default="48h", show_default=True, help="Window ending at the newest stored hour.")
@click.option("--source", default=None, help="Only this source (default: all).")
@click.pass_obj
def prices(obj: Context, region: str, last: str, source: str | None) -> None:
    """Show a region's newest stored prices as a table (UTC)."""
    (region,) = _regions((region,), obj.settings)
    window = _duration(last)
    store = obj.store()
    newest = store.latest_ts(region, source)
    if newest is None:
        raise click.ClickException(f"no prices stored for region {region}; load them with `eopt load-history --region {region}`")
    frame = store.read_prices(region, start=newest - window + pd.Timedelta(microseconds=1), source=source)
    click.echo(f"{region}: {len(frame)} price(s) in the {last} up to {newest.isoformat()} (newest stored hour)")
    click.echo(frame.loc[:, ["ts", "source", "price", "currency", "unit"]].to_string(index=False))


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--fault", "faults", multiple=True, metavar="PROVIDER=KIND",
              help="Inject a fault on every request to a provider, e.g. entsoe=500 (kinds: 429, 429-bare, 500, slow, malformed).")
@click.pass_obj
def sandbox(obj: Context, host: str, port: int, faults: tuple[str, ...]) -> None:
    """Serve the pricing providers' real APIs locally over the bundled history."""
    from ingestion.sandbox.server import Fault, Sandbox, SandboxConfig

    parsed = {}
    for spec in faults:
        provider, _, kind = spec.partition("=")
        try:
            parsed[provider.strip()] = Fault(kind.strip())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--fault") from None
    server = Sandbox(SandboxConfig(data_dir=obj.settings.market_data_dir, faults=parsed))
    unknown = set(parsed) - set(server.apps)
    if unknown:
        raise click.BadParameter(f"no provider {', '.join(sorted(unknown))}; providers: {', '.join(sorted(server.apps))}",
                                 param_hint="--fault")
    click.echo(f"pricing sandbox on http://{host}:{port} ({', '.join(sorted(server.apps))}); point the product at it with")
    click.echo(f"  export EOPT_PRICING_SANDBOX_URL=http://{host}:{port}")
    try:
        server.serve_forever(host, port)
    except KeyboardInterrupt:
        pass


@cli.command("ingest")
@click.option("--source", "sources", multiple=True, help="Pricing source (repeatable; default: EOPT_INGESTION_SOURCES).")
@click.option("--start", required=True, help="First UTC hour (inclusive).")
@click.option("--end", required=True, help="UTC hour to stop before (exclusive).")
@click.option("--chunk-days", default=7, show_default=True, type=click.IntRange(1, 90))
@click.pass_obj
def ingest(obj: Context, sources: tuple[str, ...], start: str, end: str, chunk_days: int) -> None:
    """Backfill: the ingestion cycle's fetch -> aggregate -> validate -> store path over a window, in chunks."""
    from eopt.settings import PRICING_SOURCES
    from ingestion.pipeline import run_cycle

    chosen = tuple(s.lower() for s in sources) or obj.settings.ingestion_sources
    unknown = [s for s in chosen if s not in PRICING_SOURCES]
    if unknown:
        raise click.BadParameter(f"unknown source {', '.join(unknown)}; known: {', '.join(PRICING_SOURCES)}", param_hint="--source")
    start_ts, end_ts = _utc(start, "--start"), _utc(end, "--end")
    if start_ts >= end_ts:
        raise click.BadParameter(f"--start {start_ts} is not before --end {end_ts}", param_hint="--start")
    store, cache = obj.store(), obj.cache()
    run_time = pd.Timestamp.now(tz="UTC")
    edges = list(pd.date_range(start_ts, end_ts, freq=f"{chunk_days}D")) + [end_ts]
    edges = sorted(set(edges))
    totals = {"fetched": 0, "new": 0, "updated": 0, "quarantined": 0}
    failures: dict[str, list[str]] = {}
    with tqdm(total=len(edges) - 1, desc="ingest", unit="chunk", file=sys.stderr) as bar:
        for lo, hi in zip(edges[:-1], edges[1:]):
            report = run_cycle(obj.settings, run_time, store, cache, start=lo, end=hi, sources=chosen, min_records=0)
            totals["fetched"] += sum(report.fetched.values())
            totals["new"] += report.stored.inserted
            totals["updated"] += report.stored.updated
            totals["quarantined"] += report.quarantined
            for source, messages in report.failures.items():
                failures.setdefault(source, []).extend(f"[{lo:%Y-%m-%d}] {m}" for m in messages)
            bar.set_postfix(new=totals["new"])
            bar.update(1)
    click.echo(f"ingested {start_ts} .. {end_ts} from {', '.join(chosen)}: {totals['fetched']} provider rows, "
               f"{totals['new']} new and {totals['updated']} updated hourly prices, {totals['quarantined']} quarantined")
    for source, messages in failures.items():
        click.echo(f"{source} failed in {len(messages)} chunk/region(s), first: {messages[0]}", err=True)
    if failures:
        sys.exit(1)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except (StorageError, MarketDataError, SettingsError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
