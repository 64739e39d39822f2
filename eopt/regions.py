"""`eopt regions list|check|add`: the region catalogue (``core/regions.toml`` or ``EOPT_REGION_CATALOGUE``).

``check REGION`` calls each provider the region lists once, at the cheapest request its client
makes (``retention.connections.check_connection``: the one hour before now, no retry), then
reports what the store holds for the region (first and last hour, gaps in the training window,
each exogenous series' coverage) and what is missing before training can start: the training
window's own checks (``training.dataset.check_training_data``) on what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import pandas as pd
from pydantic import ValidationError

from core.freshness import find_gaps
from core.regions import BUNDLED_CATALOGUE, PROVIDERS, CatalogueError, Region, add_region, region_toml
from core.settings import Settings, SettingsError


@dataclass
class RegionCheck:
    """What ``eopt regions check`` found; ``ready`` when no provider failed and training can start."""

    region: str
    providers: list[dict[str, Any]] = field(default_factory=list)
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    stored_hours: int = 0
    gaps: list[str] = field(default_factory=list)
    exogenous: dict[str, float] = field(default_factory=dict)  # series -> share of the window's hours covered
    missing: list[str] = field(default_factory=list)  # what training still needs

    @property
    def ready(self) -> bool:
        return not self.missing and not any(p["status"] == "failed" for p in self.providers)


def check_region(settings: Settings, store: Any, code: str, as_of: pd.Timestamp) -> RegionCheck:
    """Probe the region's providers and measure its stored history against the training window."""
    from core.markets import get_market
    from ingestion.providers import provider_config
    from retention.connections import check_connection
    from storage.health import ApiHealthStore
    from training.config import TrainingConfig
    from training.dataset import TrainingDataError, check_training_data, extract_training_data

    region = settings.catalogue.get(code)
    report = RegionCheck(region.code)
    health = ApiHealthStore(store.engine)
    for source in region.providers:
        if source not in settings.providers.sources:
            report.providers.append(
                {"source": source, "status": "not called", "detail": "not in EOPT_INGESTION_SOURCES"}
            )
            continue
        config = provider_config(source, settings)
        config = replace(config, regions={region.code: region.ids.of(source)})
        checked = check_connection(config, settings, health, as_of)
        report.providers.append(
            {
                "source": source,
                "status": checked.status,
                "detail": checked.error or f"{checked.calls} call(s), {checked.latency_ms:.0f} ms",
            }
        )
    training = TrainingConfig.from_settings(settings)
    latest = store.latest_ts(region.code)
    if latest is None:
        report.missing.append(
            f"no prices stored for {region.code}: backfill {training.window_days} days with "
            f"`EOPT_REGIONS={region.code} eopt ingest --start ... --end ...`"
            + (f" or `eopt load-history --region {region.code}`" if region.history else "")
        )
        return report
    window_start = latest + pd.Timedelta(hours=1) - pd.Timedelta(days=training.window_days)
    prices = store.read_canonical(region.code)
    report.first, report.last, report.stored_hours = prices["ts"].min(), latest, len(prices)
    index = pd.DatetimeIndex(prices["ts"])
    report.gaps = [
        f"{g.first_missing} to {g.last_missing} ({g.hours} h)"
        for g in find_gaps(index[index >= window_start], window_start, latest + pd.Timedelta(hours=1))
    ]
    exogenous = store.read_exogenous(region.code, window_start, latest + pd.Timedelta(hours=1))
    hours = max(1, int((latest + pd.Timedelta(hours=1) - window_start) / pd.Timedelta(hours=1)))
    for name in get_market(region.code, settings.catalogue).exogenous:
        covered = int(exogenous[name].notna().sum()) if name in exogenous.columns else 0
        report.exogenous[name] = covered / hours
    try:
        data = extract_training_data(store, region.code, latest + pd.Timedelta(hours=1), training)
        check_training_data(data, training)
    except TrainingDataError as exc:
        text = str(exc).split("training data rejected: ", 1)[-1]
        report.missing.extend(part.strip() for part in text.split(" | "))
    return report


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


@click.group("regions")
def regions_group() -> None:
    """The region catalogue: list it, check a region against its providers and the store, add one."""


@regions_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also the catalogue's regions that EOPT_REGIONS leaves out.")
@click.pass_obj
def list_command(obj: Any, show_all: bool) -> None:
    """The catalogue's regions: code, name, zone, currency, holidays, providers and their ids."""
    settings: Settings = obj.settings
    catalogue = settings.catalogue
    click.echo(f"catalogue {catalogue.source} (version {catalogue.version}), {len(catalogue.regions)} region(s)")
    for code, region in catalogue.regions.items():
        active = code in settings.regions
        if not (show_all or active):
            continue
        ids = ", ".join(f"{p}={region.ids.of(p)}" for p in region.providers)
        click.echo(
            f"{'*' if active else ' '} {code:<8} {region.name} | {region.zone} | {region.currency} | holidays "
            f"{region.holidays.country}{'-' + region.holidays.subdivision if region.holidays.subdivision else ''} | "
            f"history {_show(region.history)} | exogenous {', '.join(region.exogenous)} | {ids or 'no provider'}"
        )
    click.echo("* in EOPT_REGIONS" + ("" if show_all else " (--all lists every catalogue region)"))


@regions_group.command("check")
@click.argument("region")
@click.option("--as-of", default=None, help="Ask the providers for the hour before this UTC time (default: now).")
@click.pass_obj
def check_command(obj: Any, region: str, as_of: str | None) -> None:
    """Call each of REGION's providers once and say what history is stored and what training still needs;
    exits 1 when a provider failed or training cannot start yet."""
    from core.timestamps import utc

    settings: Settings = obj.settings
    try:
        settings.catalogue.get(region)
    except CatalogueError as exc:
        raise click.BadParameter(str(exc), param_hint="REGION") from None
    when = utc(as_of) if as_of else pd.Timestamp.now(tz="UTC")
    report = check_region(settings, obj.store(), region, when)
    click.echo(f"region {report.region}")
    for row in report.providers:
        click.echo(f"  provider {row['source']}: {row['status']} ({row['detail']})")
    if report.last is None:
        click.echo("  stored prices: none")
    else:
        click.echo(
            f"  stored prices: {report.stored_hours} hour(s), first {_show(report.first)}, last {_show(report.last)}"
        )
        click.echo(f"  gaps in the training window: {'; '.join(report.gaps) if report.gaps else 'none'}")
    for name, share in report.exogenous.items():
        click.echo(f"  exogenous {name}: {share:.0%} of the training window's hours")
    if report.missing:
        click.echo("  before training can start:")
        for line in report.missing:
            click.echo(f"    - {line}")
    else:
        click.echo("  training can start")
    if not report.ready:
        raise SystemExit(1)


@regions_group.command("add")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--zone", required=True, help="IANA time zone, e.g. Europe/Amsterdam.")
@click.option("--currency", default="EUR", show_default=True, help="ISO 4217 code of the prices.")
@click.option("--holiday-country", required=True, help="Country of the holiday calendar, e.g. NL.")
@click.option("--holiday-subdivision", default=None)
@click.option(
    "--provider",
    "ids",
    multiple=True,
    metavar="PROVIDER=ID",
    help="A provider and the region's id there (repeatable), e.g. entsoe=10YNL----------L (string ids: "
    "entsoe, flatpeak, iea).",
)
@click.option(
    "--exogenous",
    "exogenous",
    multiple=True,
    help="Stored exogenous series the models use (repeatable; default: the ENTSO-E load and wind/solar forecasts).",
)
@click.option("--published-at", default="13:00", show_default=True, help="Local time the day-ahead prices are out.")
@click.option("--history", default=None, help="Bundled history file in EOPT_MARKET_DATA_DIR, if any.")
@click.option("--sandbox-replays", default=None, help="For the pricing sandbox: replay this region's history.")
@click.option("--sandbox-shift-days", default=0, show_default=True, type=int)
@click.option("--enable", is_flag=True, help="Put the region in the catalogue's default regions.")
@click.option("--catalogue", "target", default=None, help="File to write (default: EOPT_REGION_CATALOGUE).")
@click.pass_obj
def add_command(
    obj: Any,
    code: str,
    name: str,
    zone: str,
    currency: str,
    holiday_country: str,
    holiday_subdivision: str | None,
    ids: tuple[str, ...],
    exogenous: tuple[str, ...],
    published_at: str,
    history: str | None,
    sandbox_replays: str | None,
    sandbox_shift_days: int,
    enable: bool,
    target: str | None,
) -> None:
    """Validate a new region CODE and append it to the operator's catalogue file (a copy of the
    bundled catalogue is made first when the file does not exist yet)."""
    settings: Settings = obj.settings
    path = Path(target).expanduser().resolve() if target else settings.region_catalogue
    if path == BUNDLED_CATALOGUE:
        raise click.UsageError(
            f"EOPT_REGION_CATALOGUE is the bundled catalogue ({BUNDLED_CATALOGUE}), which ships with the product; "
            "point EOPT_REGION_CATALOGUE (or --catalogue) at your own file, e.g. $EOPT_HOME/regions.toml"
        )
    provider_ids: dict[str, str] = {}
    for spec in ids:
        provider, sep, value = spec.partition("=")
        if not sep or provider.strip() not in PROVIDERS:
            raise click.BadParameter(
                f"{spec!r} is not PROVIDER=ID with PROVIDER one of {', '.join(PROVIDERS)}", param_hint="--provider"
            )
        provider_ids[provider.strip()] = value.strip()
    entry: dict[str, Any] = {
        "code": code.strip().upper(),
        "name": name,
        "zone": zone,
        "published_at": published_at,
        "currency": currency,
        "holidays": {"country": holiday_country, "subdivision": holiday_subdivision},
        "enabled": enable,
        "providers": list(provider_ids),
        "ids": provider_ids,
        "history": history,
        "exogenous": list(exogenous) or ["system_load_forecast", "wind_solar_forecast"],
    }
    if sandbox_replays:
        entry["sandbox"] = {"replays": sandbox_replays.upper(), "shift_days": sandbox_shift_days}
    try:
        region = Region.model_validate(entry)
        catalogue = add_region(path, region)
    except ValidationError as exc:
        problems = "; ".join(
            f"region {entry['code']}, field {'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise click.UsageError(problems) from None
    except (CatalogueError, SettingsError) as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(region_toml(region), nl=False)
    click.echo(
        f"added {region.code} to {path} ({len(catalogue.regions)} regions); "
        f"check it with `EOPT_REGION_CATALOGUE={path} eopt regions check {region.code}`"
    )
