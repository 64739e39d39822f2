"""`eopt`: the command line in front of the product's packages."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from dataclasses import dataclass

import click
import pandas as pd
from tqdm import tqdm

from core.markets import HISTORY_SOURCE, MarketDataError, load_market
from core.redaction import install_log_redaction
from core.runs import run_folder
from core.settings import Settings, SettingsError
from core.timestamps import utc
from storage.cache import PriceCache, refresh_latest_prices
from storage.database import StorageError, safe_url, store_engine, upgrade
from storage.prices import PriceStore
from storage.timescale import timescale_status
from storage.upsert import EMPTY

log = logging.getLogger("eopt")


@dataclass
class Context:
    settings: Settings

    def store(self) -> PriceStore:
        return PriceStore(store_engine(self.settings.stores))

    def cache(self) -> PriceCache:
        return PriceCache.from_settings(self.settings)


def _utc(value: str | None, option: str) -> pd.Timestamp | None:
    if value is None or not value.strip():
        return None
    try:
        return utc(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date or time (use e.g. 2018-06-01 or 2018-06-01T12:00Z)", param_hint=option
        ) from None


_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")


MAX_WINDOW = pd.Timedelta(days=36525)  # a century: the stores hold years, and older stamps leave pandas' range


def _duration(value: str) -> pd.Timedelta:
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise click.BadParameter(f"{value!r} is not a duration; use e.g. 90m, 48h, 7d or 2w", param_hint="--last")
    amount, unit = int(match.group(1)), match.group(2)
    try:
        window = pd.Timedelta(**{{"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[unit]: amount})
    except (OverflowError, ValueError):
        window = MAX_WINDOW + pd.Timedelta(days=1)
    if window > MAX_WINDOW:
        raise click.BadParameter(f"{value!r} is longer than 100 years; use e.g. 52w", param_hint="--last")
    return window


class ConfigurationError(click.ClickException):
    """A malformed setting: exit code 2, like a malformed option, with the message naming the variable."""

    exit_code = 2


def _regions(values: tuple[str, ...], settings: Settings) -> tuple[str, ...]:
    requested = None if not values or any(v.lower() == "all" for v in values) else values
    try:
        return tuple(settings.chosen_regions(requested, "--region"))
    except SettingsError as exc:
        raise click.BadParameter(str(exc).removeprefix("--region: "), param_hint="--region") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Electricity Optimizer: hourly electricity price forecasting."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise ConfigurationError(str(exc)) from None
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # registered credentials never reach a log line, at any level
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    ctx.obj = Context(settings)


@cli.group()
def db() -> None:
    """The price and forecast store."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Create or migrate the store's tables to the current schema (idempotent)."""
    engine = store_engine(obj.settings.stores)
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
    batch = settings.stores.upsert_batch_rows
    summary = []
    for region in chosen:
        history = load_market(region, settings.stores.market_data_dir).between(start_ts, end_ts)
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
        raise click.ClickException(
            f"no prices stored for region {region}; load them with `eopt load-history --region {region}`"
        )
    frame = store.read_prices(region, start=newest - window + pd.Timedelta(microseconds=1), source=source)
    click.echo(f"{region}: {len(frame)} price(s) in the {last} up to {newest.isoformat()} (newest stored hour)")
    click.echo(frame.loc[:, ["ts", "source", "price", "currency", "unit"]].to_string(index=False))


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="PROVIDER=KIND",
    help="Inject a fault on every request to a provider, e.g. entsoe=500 (kinds: 429, 429-bare, 500, slow, malformed).",
)
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
    server = Sandbox(
        SandboxConfig(data_dir=obj.settings.stores.market_data_dir, catalogue=obj.settings.catalogue, faults=parsed)
    )
    unknown = set(parsed) - set(server.apps)
    if unknown:
        raise click.BadParameter(
            f"no provider {', '.join(sorted(unknown))}; providers: {', '.join(sorted(server.apps))}",
            param_hint="--fault",
        )
    click.echo(
        f"pricing sandbox on http://{host}:{port} ({', '.join(sorted(server.apps))}); point the product at it with"
    )
    click.echo(f"  export EOPT_PRICING_SANDBOX_URL=http://{host}:{port}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(host, port)


@cli.command("ingest")
@click.option(
    "--source", "sources", multiple=True, help="Pricing source (repeatable; default: EOPT_INGESTION_SOURCES)."
)
@click.option("--start", required=True, help="First UTC hour (inclusive).")
@click.option("--end", required=True, help="UTC hour to stop before (exclusive).")
@click.option("--chunk-days", default=7, show_default=True, type=click.IntRange(1, 90))
@click.pass_obj
def ingest(obj: Context, sources: tuple[str, ...], start: str, end: str, chunk_days: int) -> None:
    """Backfill: the ingestion cycle's fetch -> aggregate -> validate -> store path over a window, in chunks
    (prices, and the day-ahead load and wind/solar forecasts of the providers that publish them)."""
    from core.settings import PRICING_SOURCES
    from pipelines.electricity_price_ingestion import BackfillReport, CycleReport, backfill, backfill_chunks

    chosen = tuple(s.lower() for s in sources) or obj.settings.providers.sources
    unknown = [s for s in chosen if s not in PRICING_SOURCES]
    if unknown:
        raise click.BadParameter(
            f"unknown source {', '.join(unknown)}; known: {', '.join(PRICING_SOURCES)}", param_hint="--source"
        )
    start_ts, end_ts = _utc(start, "--start"), _utc(end, "--end")
    if start_ts is None or end_ts is None:  # required options, but a blank value parses to None
        raise click.BadParameter(
            "--start and --end need a UTC date or time (e.g. 2018-06-01)", param_hint="--start/--end"
        )
    if start_ts >= end_ts:
        raise click.BadParameter(f"--start {start_ts} is not before --end {end_ts}", param_hint="--start")
    store, cache = obj.store(), obj.cache()
    with tqdm(
        total=len(backfill_chunks(start_ts, end_ts, chunk_days)), desc="ingest", unit="chunk", file=sys.stderr
    ) as bar:

        def progress(_chunk: CycleReport, totals: BackfillReport) -> None:
            bar.set_postfix(new=totals.inserted)
            bar.update(1)

        totals = backfill(
            obj.settings, store, cache, start_ts, end_ts, sources=chosen, chunk_days=chunk_days, on_chunk=progress
        )
    click.echo(
        f"ingested {start_ts} .. {end_ts} from {', '.join(chosen)}: {totals.fetched} provider rows, "
        f"{totals.inserted} new and {totals.updated} updated hourly prices, {totals.exogenous_inserted} new and "
        f"{totals.exogenous_updated} updated hourly exogenous values, {totals.quarantined} quarantined"
    )
    for source, messages in totals.failures.items():
        click.echo(f"{source} failed in {len(messages)} chunk/region(s), first: {messages[0]}", err=True)
    if totals.failures:
        sys.exit(1)


def _training_errors(*also: type[Exception]) -> tuple[type[Exception], ...]:
    from pipelines.model_retraining import RetrainingError
    from training.dataset import TrainingDataError
    from training.features import FeatureError
    from training.models import ModelError
    from training.tuning import TuningError

    return (TrainingDataError, FeatureError, ModelError, RetrainingError, TuningError, *also)


def _as_of(value: str | None) -> pd.Timestamp | None:
    return _utc(value, "--as-of")


@cli.command("train")
@click.option("--region", "regions", multiple=True, help="Region (repeatable, or 'all'; default: EOPT_REGIONS).")
@click.option(
    "--budget", default=None, help="Tuning budget: smoke, default or thorough (default: EOPT_TRAINING_BUDGET)."
)
@click.option(
    "--as-of", default=None, help="Train on the window before this UTC hour (default: the newest stored price)."
)
@click.option(
    "--gate/--no-gate",
    default=True,
    show_default=True,
    help="Let the promotion gate judge the candidate (Production when it passes); --no-gate leaves it in Staging.",
)
@click.pass_obj
def train(obj: Context, regions: tuple[str, ...], budget: str | None, as_of: str | None, gate: bool) -> None:
    """Retrain: extract, tune and fit the three models, evaluate the ensemble, register it, run the gate."""
    from pipelines.model_retraining import retrain_region
    from registry.promotion import RegistryError

    store = obj.store()
    for region in _regions(regions, obj.settings):
        try:
            outcome = retrain_region(obj.settings, store, region, _as_of(as_of), budget, gate=gate)
        except _training_errors(RegistryError) as exc:
            raise click.ClickException(str(exc)) from None
        e = outcome.evaluation
        click.echo(
            f"{region}: {outcome.candidate.name} version {outcome.candidate.version} registered; "
            f"{e['kind']} test MAE {e['test_mae']:.3f}, rMAE {e['test_rmae']:.3f}, "
            f"interval coverage {e['interval_coverage_test']:.2f}; {outcome.seconds:.0f} s"
        )
        if gate:
            g = e["gate"]
            verdict = "PROMOTED to Production (champion)" if g["promoted"] else "rejected (archived)"
            click.echo(f"{region}: gate: version {g['version']} {verdict}: {'; '.join(g['reasons'])}")


@cli.command("tune")
@click.option("--region", required=True, help="Region to tune for.")
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Choice(["xgboost", "lightgbm", "cnn_lstm", "all"]),
    help="Model to tune (repeatable; default: all three).",
)
@click.option("--budget", default=None, help="Tuning budget: smoke, default or thorough.")
@click.option(
    "--as-of", default=None, help="Tune on the window before this UTC hour (default: the newest stored price)."
)
@click.pass_obj
def tune_command(obj: Context, region: str, models: tuple[str, ...], budget: str | None, as_of: str | None) -> None:
    """Run (or resume) the Optuna studies of a region without registering anything."""
    from training.config import TrainingConfig
    from training.dataset import build_training_frame, check_training_data, extract_training_data
    from training.features import feature_columns
    from training.tuning import tune

    region = _regions((region,), obj.settings)[0]
    config = TrainingConfig.from_settings(obj.settings, budget)
    store = obj.store()
    try:
        end = _as_of(as_of) or _newest(store, region)
        data = extract_training_data(store, region, end, config)
        check_training_data(data, config)
        frame = build_training_frame(data, config)
        train_rows, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
        for model in [m for m in models if m != "all"] or config.tuned_models:
            result = tune(
                model,
                region,
                train_rows,
                validation,
                feature_columns(region),
                budget=config.budget(model),
                storage_url=config.optuna_storage,
                window_end=data.end,
                seed=config.seed,
                device=config.device,
                threads=config.threads,
            )
            click.echo(
                f"{region}/{model}: study {result.study_name}: best validation MAE {result.best_value:.4f} "
                f"(trial {result.best_trial}; {result.complete} complete, {result.pruned} pruned, "
                f"{result.ran_now} run now) params {result.best_params}"
            )
    except _training_errors() as exc:
        raise click.ClickException(str(exc)) from None


def _newest(store: PriceStore, region: str) -> pd.Timestamp:
    latest = store.latest_ts(region)
    if latest is None:
        raise click.ClickException(f"{region}: no prices in the store; run eopt load-history --region {region} first")
    return latest + pd.Timedelta(hours=1)


@cli.command("evaluate")
@click.option("--region", required=True, help="Region of the registered model.")
@click.option(
    "--model",
    "model_ref",
    default="challenger",
    help="Version number, alias (champion, challenger) or stage (Production, Staging) of the region's model.",
)
@click.option(
    "--days", default=56, show_default=True, type=click.IntRange(1, 3650), help="Holdout days before --as-of."
)
@click.option("--as-of", default=None, help="End of the holdout window (default: the newest stored price).")
@click.pass_obj
def evaluate_command(obj: Context, region: str, model_ref: str, days: int, as_of: str | None) -> None:
    """Score a registered model on a recent holdout window against the seasonal naive."""
    from registry.models import registered_model_name
    from training import tracking
    from training.evaluation import read_holdout, score_model

    region = _regions((region,), obj.settings)[0]
    tracking.configure(obj.settings)
    name = registered_model_name(region)
    ref = model_ref.strip()
    uri = f"models:/{name}/{ref}" if ref.isdigit() or ref in ("Production", "Staging") else f"models:/{name}@{ref}"
    store = obj.store()
    try:
        holdout = read_holdout(store, region, _as_of(as_of) or _newest(store, region), days)
        score = score_model(uri, region, holdout)
    except _training_errors() as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(f"{uri}: {exc}") from None
    m, n = score.metrics, score.naive_metrics
    click.echo(
        f"{uri} on {score.first_target} .. {score.last_target} ({score.hours} h): MAE {m['mae']:.3f}, "
        f"rMAE {m['rmae']:.3f}, sMAPE {m['smape']:.2f}%, RMSE {m['rmse']:.3f}, MAPE {m['mape']:.2f}% "
        f"(excluding {m['mape_excluded_share']:.1%} of hours); seasonal naive MAE {n['mae']:.3f}; "
        f"interval coverage {score.interval_coverage:.2f}"
    )


@cli.command("backtest")
@click.option("--region", required=True, help="Region to backtest.")
@click.option(
    "--days",
    default=28,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="Test days: the last complete days of the store.",
)
@click.option(
    "--retrain-every-days",
    default=7,
    show_default=True,
    type=click.IntRange(1, 365),
    help="Refit cadence (production: weekly).",
)
@click.option(
    "--retune-every-days",
    default=0,
    show_default=True,
    type=click.IntRange(0, 3650),
    help="Tune again every this many days (0: tune once, before the test days).",
)
@click.option("--budget", default=None, help="Tuning budget of the one tuning before the test days.")
@click.pass_obj
def backtest(
    obj: Context, region: str, days: int, retrain_every_days: int, retune_every_days: int, budget: str | None
) -> None:
    """Walk-forward backtest of the production training over the last days of the store; logged to MLflow.

    For the comparison with the published EPF benchmark forecasts, see ``python -m benchmarks.accuracy``.
    """
    from training.backtest import (
        BacktestError,
        backtest_summary,
        flat_metrics,
        last_days_origins,
        log_backtest,
        save_backtest,
        walk_forward,
    )
    from training.config import TrainingConfig

    region = _regions((region,), obj.settings)[0]
    config = TrainingConfig.from_settings(obj.settings, budget)
    store = obj.store()
    canonical = store.read_canonical(region)
    if canonical.empty:
        raise click.ClickException(f"{region}: no prices in the store; run eopt load-history --region {region} first")
    prices = pd.Series(canonical["price"].to_numpy(float), index=pd.DatetimeIndex(canonical["ts"]))
    exogenous = store.read_exogenous(region)
    origins = last_days_origins(region, prices, days)
    try:
        result = walk_forward(
            prices,
            exogenous,
            region,
            origins,
            config,
            storage_url=config.optuna_storage,
            retrain_every_days=retrain_every_days,
            retune_every_days=retune_every_days,
        )
    except _training_errors(BacktestError) as exc:
        raise click.ClickException(str(exc)) from None
    metrics = result.metrics()
    summary = backtest_summary(
        result, config, retrain_every_days=retrain_every_days, retune_every_days=retune_every_days, metrics=metrics
    )
    out = obj.settings.stores.home / "backtests" / f"{region}-{origins[0]:%Y%m%d}-{len(origins)}d-{config.budget_name}"
    artifacts = save_backtest(
        result, out, summary, f"{region} backtest: last 14 days (MAE {metrics['ensemble']['mae']:.2f})"
    )
    log_backtest(
        obj.settings,
        f"backtest {region} {len(origins)}d",
        region,
        {
            "region": region,
            "first_origin": str(origins[0]),
            "days": len(origins),
            "retrain_every_days": retrain_every_days,
            "retune_every_days": retune_every_days,
            **config.describe(),
        },
        flat_metrics(metrics),
        artifacts,
    )
    for who, m in metrics.items():
        click.echo(
            f"{region} {who:15s} MAE {m['mae']:8.3f}  rMAE {m['rmae']:.3f}  sMAPE {m['smape']:6.2f}%  RMSE {m['rmse']:8.3f}"
        )
    click.echo(f"{len(origins)} days from {origins[0]}, {result.seconds:.0f} s; results in {out}")


@cli.command("forecast")
@click.option("--region", "regions", multiple=True, help="Region (repeatable, or 'all'; default: EOPT_REGIONS).")
@click.option("--at", "at", default=None, help="Issue time (UTC hour; default: the newest stored price + 1 h).")
@click.pass_obj
def forecast(obj: Context, regions: tuple[str, ...], at: str | None) -> None:
    """What forecast_generation does for one hour: champion (or labelled fallback) -> store -> cache.

    The same functions as the DAG's tasks (``pipelines.forecast_generation``), one region at a time
    (a chunk of one zone: each region's issue time is its own).
    """
    from pipelines import forecast_generation as flow
    from training import tracking

    settings = obj.settings
    client = tracking.configure(settings)
    store, cache = obj.store(), obj.cache()
    failed = False
    for region in _regions(regions, settings):
        issued = _utc(at, "--at") if at else None
        if issued is None:
            latest = store.latest_ts(region)
            if latest is None:
                click.echo(f"{region}: no prices in the store; run eopt load-history --region {region}", err=True)
                failed = True
                continue
            issued = latest + pd.Timedelta(hours=1)
        issued = issued.floor("h")
        folder = run_folder(settings.stores.home / "runs" / "eopt_forecast", f"{region}_{issued:%Y-%m-%dT%H%M}")
        try:
            flow.check_model_ready(client, [region], 1)
            prepared = flow.prepare_features(store, [region], issued, folder)
            generated = flow.generate_forecasts(client, [region], folder, issued)
        except _training_errors(RuntimeError) as exc:
            click.echo(f"{region}: {exc}", err=True)
            failed = True
            continue
        reason = {**prepared["failed"], **generated["failed"]}.get(region)
        if reason:
            click.echo(f"{region}: {reason}", err=True)
            failed = True
            continue
        stored = flow.store_forecasts(store, [region], folder)
        flow.update_forecast_cache(store, cache, [region], folder)
        f = pd.read_parquet(flow.forecast_file(folder, region))
        label = (
            "FALLBACK seasonal naive"
            if f["is_fallback"].iloc[0]
            else f"{f['model_name'].iloc[0]} v{f['model_version'].iloc[0]}"
        )
        click.echo(
            f"{region}: {label}: {f['target_ts'].iloc[0]:%Y-%m-%d %H:%M} .. {f['target_ts'].iloc[-1]:%H:%M} UTC, "
            f"mean {f['yhat'].mean():.2f}, min {f['yhat'].min():.2f}, max {f['yhat'].max():.2f} per MWh; "
            f"{stored['inserted']} new, {stored['updated']} updated rows"
        )
    if failed:
        sys.exit(1)


@cli.command("request")
@click.option("--region", required=True, help="Region, e.g. NP.")
@click.option(
    "--origin", default=None, help="Forecast origin, a UTC hour (default: the newest stored price + 1 h, as the DAG)."
)
@click.pass_obj
def request_command(obj: Context, region: str, origin: str | None) -> None:
    """Print the registered model's raw request of an origin as JSON, from the store: the body
    forecast_generation sends, ready for ``curl -d @request.json .../invocations``."""
    import json

    from serving.forecasting import prepare_request

    store = obj.store()
    when = _utc(origin, "--origin")
    if when is None:
        latest = store.latest_ts(region)
        if latest is None:
            raise click.ClickException(f"{region}: no prices in the store; run eopt load-history --region {region}")
        when = latest + pd.Timedelta(hours=1)
    click.echo(json.dumps(prepare_request(store, region, when).body(), allow_nan=False))


@cli.group()
def registry() -> None:
    """The model registry: champions, challengers, manual promotion and rollback (all audited)."""


def _registry_context(obj: Context):
    from storage.promotions import PromotionStore
    from training.tracking import configure

    store = obj.store()
    return configure(obj.settings), PromotionStore(store.engine)


def _actor() -> str:
    import getpass

    try:
        return f"eopt cli ({getpass.getuser()})"
    except (KeyError, OSError):
        return "eopt cli"


@registry.command("status")
@click.option("--region", "regions", multiple=True, help="Region (repeatable; default: EOPT_REGIONS).")
@click.option("--history", "show_history", is_flag=True, help="Also list the promotion history.")
@click.pass_obj
def registry_status_command(obj: Context, regions: tuple[str, ...], show_history: bool) -> None:
    """Champion, challenger and every version of each region's model, with test metrics and gate verdicts."""
    from registry.promotion import registry_status

    client, promotions = _registry_context(obj)
    for region in _regions(regions, obj.settings):
        try:
            table = registry_status(client, region)
        except Exception as exc:
            raise click.ClickException(
                f"{region}: cannot read the registry at {obj.settings.stores.mlflow_registry_uri}: {exc}"
            ) from None
        if table.empty:
            click.echo(f"{region}: no registered model yet (run eopt train --region {region})")
            continue
        click.echo(table.to_string(index=False))
        if show_history:
            history = promotions.history(region)
            if not history.empty:
                shown = history[
                    ["decided_at", "action", "candidate_version", "champion_version", "promoted", "actor"]
                ].copy()
                shown["reasons"] = history["reasons"].map(lambda r: "; ".join(r or []))
                click.echo(shown.to_string(index=False))
        click.echo()


@registry.command("promote")
@click.option("--region", required=True)
@click.option("--version", required=True, help="Version to make champion (Production).")
@click.option("--reason", required=True, help="Why: recorded in the promotion history and on the version.")
@click.pass_obj
def registry_promote(obj: Context, region: str, version: str, reason: str) -> None:
    """Make a version the champion by hand, bypassing the gate (audited)."""
    from registry.promotion import RegistryError, promote_version

    region = _regions((region,), obj.settings)[0]
    client, promotions = _registry_context(obj)
    try:
        replaced = promote_version(client, promotions, region, version, reason, _actor())
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{region}: version {version} is now the champion (Production)"
        + (f"; version {replaced} archived" if replaced else "")
    )


@registry.command("rollback")
@click.option("--region", required=True)
@click.option("--reason", default="", help="Why: recorded in the promotion history.")
@click.pass_obj
def registry_rollback(obj: Context, region: str, reason: str) -> None:
    """Bring back the champion that the current one replaced (audited)."""
    from registry.promotion import RegistryError, rollback

    region = _regions((region,), obj.settings)[0]
    client, promotions = _registry_context(obj)
    try:
        old, new = rollback(client, promotions, region, _actor(), reason)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{region}: rolled back from version {old} to version {new} (now the champion)")


@cli.command("quality")
@click.option("--region", "regions", multiple=True, help="Region (repeatable, or 'all'; default: EOPT_REGIONS).")
@click.option("--as-of", default=None, help="Check the week before this UTC hour (default: now).")
@click.option("--run-id", default=None, help="Name of the run in quality_reports (default: manual__<as-of>).")
@click.pass_obj
def quality_command(obj: Context, regions: tuple[str, ...], as_of: str | None, run_id: str | None) -> None:
    """What the data_quality DAG does, in one process: every check, the drift reports, the report (no alerts)."""
    from pipelines import data_quality as flow
    from training import tracking

    settings = obj.settings
    when = (_utc(as_of, "--as-of") or pd.Timestamp.now(tz="UTC")).floor("h")
    chosen = _regions(regions, settings)
    store = obj.store()
    client = tracking.configure(settings)
    run = run_id or f"manual__{when:%Y-%m-%dT%H%M}"
    folder = run_folder(settings.quality_dir, run)
    payloads = flow.run_checks(store, client, settings, chosen, when, folder)
    report = flow.generate_quality_report(store, client, settings, run, when, folder, payloads)
    for result in report.results:
        click.echo(result.line())
    summary = report.summary()
    click.echo(
        f"health score {summary['health_score']}: {summary['ok']} ok, {summary['warn']} warn, "
        f"{summary['critical']} critical, {summary['skipped']} not checked; report {summary['report_html']}"
    )


@cli.group("maintenance")
def maintenance_group() -> None:
    """Retention: what the maintenance DAG removes (EOPT_RETENTION_* bounds); --dry-run lists it with its bytes."""


# The maintenance DAG's tasks, in its order (``pipelines.maintenance.STEPS``; a test holds them equal),
# with the help of their commands: named here so that `eopt --help` does not import MLflow.
MAINTENANCE_STEPS = {
    "remove_quality_runs": "Data-quality MLflow runs past retention: deleted through MLflow, then `mlflow gc`.",
    "remove_rejected_versions": "Rejected model versions past retention with their MLflow runs: deleted, then `mlflow gc`.",
    "remove_quality_report_folders": "Data-quality report folders under $EOPT_HOME/quality past retention.",
    "remove_quarantine_rows": "Quarantine rows last seen before the retention bound.",
    "remove_raw_payloads": "Archived payloads past retention that no kept quarantine row references.",
    "remove_hourly_forecasts": "Old target hours keep only their day-ahead forecast issue.",
    "remove_superseded_studies": "Optuna studies of superseded training windows (the newest per region and model stay).",
    "remove_airflow_logs": "Airflow task log files past retention (EOPT_AIRFLOW_HOME/logs).",
    "remove_product_logs": "The product's own service logs under $EOPT_HOME/run past retention (not a running one's).",
    "clean_airflow_metadata": "`airflow db clean` of the Airflow metadata past retention (no archive tables).",
    "vacuum_stores": "VACUUM of the price store and the embedded MLflow store.",
}


def _maintenance_step(obj: Context, step: str, when: pd.Timestamp, dry_run: bool):
    from pipelines import maintenance as flow

    settings = obj.settings
    if step == "remove_quality_runs":
        from training.tracking import configure

        return flow.remove_quality_runs(obj.store(), configure(settings), settings, when, dry_run=dry_run)
    if step == "remove_rejected_versions":
        from training.tracking import configure

        return flow.remove_rejected_versions(obj.store(), configure(settings), settings, when, dry_run=dry_run)
    if step == "remove_quality_report_folders":
        return flow.remove_quality_report_folders(obj.store(), settings, when, dry_run=dry_run)
    if step in ("remove_quarantine_rows", "remove_raw_payloads", "remove_hourly_forecasts", "remove_product_logs"):
        return getattr(flow, step)(obj.store(), settings, when, dry_run=dry_run)
    if step == "remove_superseded_studies":
        return flow.remove_superseded_studies(obj.store(), settings, dry_run=dry_run)
    if step == "remove_airflow_logs":
        return flow.remove_airflow_logs(obj.store(), settings, settings.airflow_log_dir, when, dry_run=dry_run)
    if step == "clean_airflow_metadata":
        return flow.clean_airflow_metadata(obj.store(), settings, settings.airflow_environment(), when, dry_run=dry_run)
    return flow.vacuum_stores(obj.store(), settings, dry_run=dry_run)


def _maintenance_command(step: str) -> click.Command:
    steps = tuple(MAINTENANCE_STEPS) if step == "run" else (step,)

    @click.option("--dry-run", is_flag=True, help="List what would be removed, with its bytes; remove nothing.")
    @click.option("--as-of", default=None, help="Measure the retention bounds back from this UTC time (default: now).")
    @click.pass_obj
    def command(obj: Context, dry_run: bool, as_of: str | None) -> None:
        from retention.airflow_metadata import AirflowMetadataError

        when = _utc(as_of, "--as-of") or pd.Timestamp.now(tz="UTC")
        for name in steps:
            try:
                report = _maintenance_step(obj, name, when, dry_run)
            except AirflowMetadataError as exc:
                raise click.ClickException(str(exc)) from None
            verb = "would remove" if dry_run else "removed"
            for removal in report.removals:
                click.echo(f"{name}: {verb} {removal.item} ({removal.bytes} bytes)")
            for note in report.notes:
                click.echo(f"{name}: {note}")
            click.echo(report.summary())

    command.__doc__ = MAINTENANCE_STEPS.get(step, "Every maintenance step, in the DAG's order.")
    return click.command(step.replace("_", "-"))(command)


def _add_maintenance_commands() -> None:
    for step in ("run", *MAINTENANCE_STEPS):
        maintenance_group.add_command(_maintenance_command(step))


_add_maintenance_commands()


# The maintenance reports (``pipelines.maintenance.REPORTS``; a test holds them equal): read-only, no --dry-run.
MAINTENANCE_REPORTS = {
    "evaluate_models": "Each region's realised MAE, rMAE and interval coverage over 1, 4 and 13 weeks vs its "
    "promotion figures (MLflow).",
    "review_pools": "Each Airflow pool's slots, waits, peak concurrency and suggested size over 30 days (MLflow).",
    "check_connections": "Every provider called once at its cheapest request; result and latency in api_health.",
}


def _echo_report(report) -> None:
    for note in report.notes:
        click.echo(f"{report.step}: {note}")
    click.echo(report.summary())


@maintenance_group.command("evaluate-models")
@click.option("--region", "regions", multiple=True, help="Region (repeatable, or 'all'; default: EOPT_REGIONS).")
@click.option("--as-of", default=None, help="Evaluate the weeks before this UTC hour (default: now).")
@click.pass_obj
def evaluate_models_command(obj: Context, regions: tuple[str, ...], as_of: str | None) -> None:
    from pipelines import maintenance as flow
    from training.tracking import configure

    settings = obj.settings
    when = _utc(as_of, "--as-of") or pd.Timestamp.now(tz="UTC")
    chosen = _regions(regions, settings)
    _echo_report(flow.evaluate_models(obj.store(), configure(settings), settings, chosen, when))


evaluate_models_command.help = MAINTENANCE_REPORTS["evaluate_models"]


@maintenance_group.command("review-pools")
@click.option("--as-of", default=None, help="Review the 30 days before this UTC time (default: now).")
@click.pass_obj
def review_pools_command(obj: Context, as_of: str | None) -> None:
    from pipelines import maintenance as flow
    from retention.pool_review import PoolReviewError
    from training.tracking import configure

    settings = obj.settings
    when = _utc(as_of, "--as-of") or pd.Timestamp.now(tz="UTC")
    metadata_url = settings.airflow_environment()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    try:
        report = flow.review_pools(obj.store(), configure(settings), settings, metadata_url, when)
    except PoolReviewError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_report(report)


review_pools_command.help = MAINTENANCE_REPORTS["review_pools"]


@maintenance_group.command("check-connections")
@click.option("--as-of", default=None, help="Ask for the hour before this UTC time (default: now).")
@click.pass_obj
def check_connections_command(obj: Context, as_of: str | None) -> None:
    """Outside Airflow each provider's configuration comes from the settings (EOPT_* variables); no alert
    is sent, and the command exits 1 when a connection failed."""
    from ingestion.providers import provider_config
    from pipelines import maintenance as flow

    settings = obj.settings
    when = _utc(as_of, "--as-of") or pd.Timestamp.now(tz="UTC")
    configs = {source: provider_config(source, settings) for source in settings.providers.sources}
    report = flow.check_connections(obj.store(), settings, configs, when, None, run_id=f"manual__{when:%Y-%m-%dT%H%M}")
    _echo_report(report)
    failed = [row["connection_id"] for row in report.rows if not row["ok"]]
    if failed:
        raise click.ClickException(f"connection test failed for {', '.join(failed)}")


check_connections_command.help = MAINTENANCE_REPORTS["check_connections"] + " " + (check_connections_command.help or "")


@cli.command("airflow-init")
@click.pass_obj
def airflow_init(obj: Context) -> None:
    """Bootstrap the Airflow home (EOPT_AIRFLOW_HOME): migrate, import pools, variables, connections (idempotent)."""
    from eopt.airflow_home import AirflowCommandError, bootstrap

    try:
        for line in bootstrap(obj.settings):
            click.echo(line)
    except AirflowCommandError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Airflow home ready: export AIRFLOW_HOME={obj.settings.airflow.home}")


@cli.command(
    "airflow",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": []},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def airflow_cli(obj: Context, args: tuple[str, ...]) -> None:
    """The airflow CLI on the product's Airflow home and dags folder: `eopt airflow dags list`."""
    from eopt.airflow_home import exec_airflow

    exec_airflow(obj.settings, args)


@cli.command("demo")
@click.option("--budget", default="smoke", show_default=True, help="Tuning budget of the demo's retrainings.")
@click.pass_obj
def demo_command(obj: Context, budget: str) -> None:
    """Run the four DAGs with `airflow dags test` at historical dates over the loaded history, then summarize."""
    from eopt.airflow_home import AirflowCommandError
    from eopt.demo import run_demo

    try:
        run_demo(obj.settings, budget, click.echo)
    except (AirflowCommandError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("up")
@click.option("--airflow-port", default=8080, show_default=True, type=int)
@click.option("--mlflow-port", default=5000, show_default=True, type=int)
@click.option("--sandbox-port", default=8765, show_default=True, type=int)
@click.option(
    "--executor",
    type=click.Choice(["local", "celery"]),
    default="local",
    show_default=True,
    help="local: airflow standalone; celery: scheduler, dag-processor, API server and Celery workers "
    "(needs a PostgreSQL AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and AIRFLOW__CELERY__BROKER_URL).",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 32), help="Celery workers.")
@click.pass_obj
def up_command(
    obj: Context, airflow_port: int, mlflow_port: int, sandbox_port: int, executor: str, workers: int
) -> None:
    """Start Airflow, mlflow server and the pricing sandbox in the background (pid files in .eopt/run)."""
    from eopt.airflow_home import AirflowCommandError
    from eopt.services import Ports, ServiceError, up

    try:
        up(obj.settings, Ports(airflow_port, mlflow_port, sandbox_port), click.echo, executor=executor, workers=workers)
    except (ServiceError, AirflowCommandError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("down")
@click.pass_obj
def down_command(obj: Context) -> None:
    """Stop exactly what `eopt up` started (the process groups in .eopt/run/*.pid)."""
    from eopt.services import down

    down(obj.settings, click.echo)


@cli.group()
def metrics() -> None:
    """Prometheus metrics of the data-quality pipeline."""


@metrics.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: EOPT_METRICS_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: EOPT_METRICS_PORT, 9108).")
@click.pass_obj
def metrics_serve(obj: Context, host: str | None, port: int | None) -> None:
    """Serve /metrics for Prometheus, read from the newest data-quality run at every scrape."""
    from quality.exporter import MetricsServer

    server = MetricsServer(
        obj.store().engine, host or obj.settings.alerts.metrics_host, port or obj.settings.alerts.metrics_port
    )
    click.echo(f"serving data-quality metrics on {server.url} (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@cli.group("settings")
def settings_group() -> None:
    """The settings (environment variables) of the product."""


@settings_group.command("reference")
@click.option("--check", is_flag=True, help="Write nothing; fail when docs/configuration.md or .env.example is stale.")
def settings_reference(check: bool) -> None:
    """Regenerate docs/configuration.md and the product block of .env.example from core/settings.py."""
    from core.settings_reference import PROJECT_ROOT, stale, write

    if check:
        old = stale()
        if old:
            raise click.ClickException(
                f"stale: {', '.join(str(p.relative_to(PROJECT_ROOT)) for p in old)}; run `eopt settings reference`"
            )
        click.echo("docs/configuration.md and .env.example are up to date")
        return
    for path in write():
        click.echo(f"wrote {path.relative_to(PROJECT_ROOT)}")


def _add_regions_commands() -> None:
    from eopt.regions import regions_group

    cli.add_command(regions_group)


_add_regions_commands()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (StorageError, MarketDataError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
