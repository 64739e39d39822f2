"""The region catalogue: every region the product can forecast, as data.

A catalogue is a TOML file (``core/regions.toml`` is bundled; ``EOPT_REGION_CATALOGUE`` names an
operator's own) with a ``version`` and one ``[regions.<CODE>]`` table per region: its name, IANA
time zone, currency, holiday calendar, the providers that price it with each one's identifier,
the bundled history file if any, and the exogenous series its models use. ``load_catalogue``
reads and validates a file into a ``Catalogue``; every error names the file, the region and the
field. ``docs/regions.md`` documents each field.

Nothing else in the product lists regions: the settings' default ``EOPT_REGIONS`` (the entries
with ``enabled = true``), the providers' region ids, the markets and the sandbox's zones are all
read from the catalogue.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

BUNDLED_CATALOGUE = Path(__file__).resolve().parent / "regions.toml"
CATALOGUE_VERSION = 1
PROVIDERS = ("flatpeak", "nrel", "openei", "iea", "entsoe")
# the sectors each provider knows (openei: URDB's, capitalised; nrel: the utility-rates API's)
OPENEI_SECTORS = ("Residential", "Commercial", "Industrial", "Lighting")
NREL_SECTORS = ("residential", "commercial", "industrial")
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")
_EIC = re.compile(r"^[0-9A-Z-]{16}$")
_EIC_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-"


class CatalogueError(ValueError):
    """A catalogue file is missing or an entry is malformed; the message names the file, region and field."""


def eic_check_character(code: str) -> str:
    """The check character (16th) of an Energy Identification Code from its first 15 characters
    (ENTSO-E EIC reference manual, section 6: weights 16..2, ``-`` worth 36, modulo 37)."""
    total = sum(_EIC_ALPHABET.index(char) * (16 - i) for i, char in enumerate(code[:15]))
    value = 36 - ((total - 1) % 37)
    if value >= len(_EIC_ALPHABET):  # 36 - 0 .. 36 - 36: a code whose check would be 37 is never issued
        raise ValueError(f"EIC {code!r}: its first 15 characters have no valid check character")
    return _EIC_ALPHABET[value]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown IANA time zone {value!r}; use a name from the tz database, e.g. Europe/Amsterdam"
        ) from None
    return value


@functools.cache
def _currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


@functools.cache
def _holiday_countries() -> frozenset[str]:
    """The country codes (ISO 3166 alpha-2 and alpha-3) the ``holidays`` package knows, read from its
    registry without importing a country's module (``list_supported_countries`` imports all 250: a
    DAG file reading the catalogue every time it is parsed would pay for them)."""
    from holidays.registry import COUNTRIES

    return frozenset(code for names in COUNTRIES.values() for code in names[1:] if code.isupper())


def _holiday_subdivisions(country: str) -> tuple[str, ...]:
    """The subdivisions the ``holidays`` package knows for ``country`` (imports that country's module only)."""
    import holidays

    return tuple(getattr(holidays, country).subdivisions)


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Holidays(_Entry):
    """The public-holiday calendar of the ``holidays`` package the features use."""

    country: str = Field(description="ISO 3166 country code the `holidays` package knows, e.g. NL")
    subdivision: str | None = Field(None, description="its subdivision (state, province), e.g. IL; none: national")

    @model_validator(mode="after")
    def _known(self) -> Holidays:
        if self.country not in _holiday_countries():
            raise ValueError(
                f"unknown holiday country {self.country!r}; the holidays package knows ISO 3166 codes such as NL, DE, US"
            )
        if self.subdivision is not None and self.subdivision not in (known := _holiday_subdivisions(self.country)):
            raise ValueError(f"unknown subdivision {self.subdivision!r} of {self.country}; known: {', '.join(known)}")
        return self


class NrelPoint(_Entry):
    """Where the NREL utility-rates API looks the utility up."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    sector: str = Field(description=f"one of {', '.join(NREL_SECTORS)}")

    @field_validator("sector")
    @classmethod
    def _sector(cls, value: str) -> str:
        if value.lower() not in NREL_SECTORS:
            raise ValueError(f"unknown sector {value!r}; use one of {', '.join(NREL_SECTORS)}")
        return value.lower()


class OpenEIUtility(_Entry):
    """How OpenEI's URDB finds the region's tariff: a tariff page (``getpage``) or a point and a sector."""

    timezone: str = Field(description="IANA zone of the tariff's hours")
    getpage: str | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    sector: str | None = None
    is_default: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _zone(value)

    @model_validator(mode="after")
    def _locator(self) -> OpenEIUtility:
        if self.getpage is None and (self.lat is None or self.lon is None):
            raise ValueError("needs getpage, or lat and lon (with a sector)")
        if self.sector is not None and self.sector.capitalize() not in OPENEI_SECTORS:
            raise ValueError(f"unknown sector {self.sector!r}; use one of {', '.join(OPENEI_SECTORS)}")
        return self


class ProviderIds(_Entry):
    """Each provider's identifier of the region."""

    entsoe: str | None = Field(None, description="ENTSO-E bidding-zone EIC code (16 characters)")
    flatpeak: str | None = Field(None, description="Flatpeak location id")
    openei: OpenEIUtility | None = Field(None, description="OpenEI URDB utility locator")
    nrel: NrelPoint | None = Field(None, description="NREL utility-rates point and sector")
    iea: str | None = Field(None, description="IEA country (ISO 3166 alpha-3)")

    @field_validator("entsoe")
    @classmethod
    def _eic(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) != 16:
            raise ValueError(
                f"EIC code {value!r} has {len(value)} characters; an EIC code has 16, e.g. 10YNL----------L"
            )
        if not _EIC.match(value):
            raise ValueError(f"EIC code {value!r} may hold only A-Z, 0-9 and '-'")
        expected = eic_check_character(value)
        if value[15] != expected:
            raise ValueError(
                f"EIC code {value!r} ends in {value[15]!r} but its check character is {expected!r}; "
                "copy the code from the ENTSO-E list of bidding zones"
            )
        return value

    @field_validator("iea")
    @classmethod
    def _iso3(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError(f"IEA country {value!r} is not an ISO 3166 alpha-3 code such as NLD")
        return value

    def of(self, provider: str) -> object:
        """The identifier as the provider's client takes it (a string or a mapping)."""
        value = getattr(self, provider)
        return value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value


class SandboxReplay(_Entry):
    """What the pricing sandbox serves for a region without bundled history: another region's
    bundled history, shifted by whole days so the two series differ."""

    replays: str = Field(description="code of a catalogue region with a bundled history file")
    shift_days: int = Field(0, ge=0, le=364, description="the replay lags the original by this many days")


class Region(_Entry):
    """One region of the catalogue (``[regions.<CODE>]``)."""

    code: str = Field(description="the region's code, the table's key: upper case, e.g. NL or DE_LU")
    name: str = Field(min_length=1)
    zone: str = Field(description="IANA time zone of the region's local days and holidays")
    currency: str = Field(description="ISO 4217 code of the prices")
    holidays: Holidays
    published_at: str = Field(
        "13:00", description="local clock time (HH:MM) by which the next delivery day's day-ahead prices are out"
    )
    price_range: tuple[float, float] = Field(
        (-500.0, 4000.0),
        description="plausible price per MWh, low and high: ingestion rejects and quality flags prices outside "
        "(default: SDAC's harmonised minimum and maximum clearing prices)",
    )
    mape_threshold: float | None = Field(
        None,
        gt=0,
        description="the promotion gate's MAPE threshold (%) for this region: a candidate's guarded MAPE must be "
        "below it (none: the catalogue's top-level `mape_threshold`, else EOPT_MODEL_MAPE_THRESHOLD); "
        "EOPT_MODEL_MAPE_THRESHOLDS overrides it",
    )
    enabled: bool = Field(False, description="in the default EOPT_REGIONS")
    providers: tuple[str, ...] = Field((), description="the pricing providers ingestion asks for this region")
    ids: ProviderIds = Field(default_factory=lambda: ProviderIds.model_validate({}))
    history: str | None = Field(None, description="bundled history file in EOPT_MARKET_DATA_DIR, e.g. BE.csv")
    exogenous: tuple[str, ...] = Field(
        min_length=1, description="stored exogenous series (market_exogenous.variable) the models use"
    )
    sandbox: SandboxReplay | None = None

    @field_validator("zone")
    @classmethod
    def _iana(cls, value: str) -> str:
        return _zone(value)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not _CODE.match(value):
            raise ValueError(f"region code {value!r} must be upper case letters, digits and _ (e.g. DE_LU)")
        return value

    @field_validator("published_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"published_at {value!r} is not a local clock time HH:MM such as 13:00")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value not in _currencies():
            raise ValueError(f"unknown currency {value!r}; use an ISO 4217 code such as EUR, USD, NOK")
        return value

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in value if p not in PROVIDERS]
        if unknown:
            raise ValueError(f"unknown provider(s) {', '.join(unknown)}; known: {', '.join(PROVIDERS)}")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> Region:
        for provider in self.providers:
            if getattr(self.ids, provider) is None:
                raise ValueError(
                    f"ids.{provider}: missing; {provider} is in the region's providers, so set its identifier "
                    f"(or remove {provider} from providers)"
                )
        if not self.price_range[0] < self.price_range[1]:
            raise ValueError(f"price_range: low {self.price_range[0]} must be below high {self.price_range[1]}")
        if self.history is not None and len(self.exogenous) != 2:
            raise ValueError(
                f"exogenous: a bundled history file has two exogenous columns; name both, got {list(self.exogenous)}"
            )
        return self

    # the names the product's code has always read a market by
    @property
    def region(self) -> str:
        return self.code

    @property
    def timezone(self) -> str:
        return self.zone

    @property
    def file_name(self) -> str | None:
        return self.history

    @property
    def holiday_country(self) -> str:
        return self.holidays.country

    @property
    def holiday_subdivision(self) -> str | None:
        return self.holidays.subdivision


class Catalogue(_Entry):
    """A validated catalogue: ``regions`` in file order."""

    version: int
    source: str = Field("<memory>", description="the file it was read from (messages name it)")
    mape_threshold: float | None = Field(
        None,
        gt=0,
        description="the MAPE threshold (%) of the entries that state none (none: EOPT_MODEL_MAPE_THRESHOLD)",
    )
    regions: dict[str, Region]

    @model_validator(mode="after")
    def _references(self) -> Catalogue:
        eics: dict[str, str] = {}
        for code, region in self.regions.items():
            eic = region.ids.entsoe
            if eic is not None and eic in eics:
                raise CatalogueError(
                    f"{self.source}: region {code}, field ids.entsoe: {eic} is also region {eics[eic]}'s zone; "
                    "one bidding zone is one region"
                )
            if eic is not None:
                eics[eic] = code
        for code, region in self.regions.items():
            if region.sandbox is None:
                continue
            original = self.regions.get(region.sandbox.replays)
            if original is None or original.history is None:
                raise CatalogueError(
                    f"{self.source}: region {code}, field sandbox.replays: {region.sandbox.replays!r} is not a "
                    "catalogue region with a bundled history file"
                )
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.regions)

    @property
    def enabled(self) -> tuple[str, ...]:
        """The regions of the default ``EOPT_REGIONS``."""
        return tuple(code for code, region in self.regions.items() if region.enabled)

    def get(self, code: str) -> Region:
        region = self.regions.get(code.strip().upper())
        if region is None:
            raise CatalogueError(
                f"unknown region {code!r}: {self.source} has no entry for it; add one "
                f"(`eopt regions add`) or use one of {', '.join(self.regions)}"
            )
        return region

    def provider_ids(self, provider: str, regions: Iterable[str] | None = None) -> dict[str, object]:
        """Region -> the provider's identifier, for the regions (default: the enabled ones) that
        list the provider."""
        chosen = self.enabled if regions is None else tuple(regions)
        return {
            code: self.regions[code].ids.of(provider)
            for code in chosen
            if code in self.regions and provider in self.regions[code].providers
        }

    def mape_threshold_of(self, code: str) -> float | None:
        """The region's MAPE threshold (%): its entry's, else the catalogue's default (None when neither says)."""
        region = self.regions.get(code)
        own = region.mape_threshold if region is not None else None
        return own if own is not None else self.mape_threshold

    def with_history(self) -> dict[str, Region]:
        return {code: region for code, region in self.regions.items() if region.history is not None}

    def zone_of_eic(self) -> dict[str, tuple[str, Region]]:
        """EIC -> (region, the region whose bundled history the sandbox replays for it)."""
        out: dict[str, tuple[str, Region]] = {}
        for code, region in self.regions.items():
            if region.ids.entsoe is None:
                continue
            if region.history is not None:
                out[region.ids.entsoe] = (code, region)
            elif region.sandbox is not None:
                out[region.ids.entsoe] = (code, self.regions[region.sandbox.replays])
        return out


def parse_catalogue(document: Mapping[str, Any], source: str) -> Catalogue:
    """Validate a parsed catalogue document; ``CatalogueError`` names the file, region and field."""
    if document.get("version") != CATALOGUE_VERSION:
        raise CatalogueError(
            f"{source}: version is {document.get('version')!r}; this product reads catalogue version "
            f"{CATALOGUE_VERSION} (set `version = {CATALOGUE_VERSION}` at the top)"
        )
    unknown = sorted(set(document) - {"version", "mape_threshold", "regions"})
    if unknown:
        raise CatalogueError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; a catalogue has version, mape_threshold "
            "and regions"
        )
    default = document.get("mape_threshold")
    if default is not None and (isinstance(default, bool) or not isinstance(default, (int, float)) or default <= 0):
        raise CatalogueError(f"{source}: field mape_threshold: {default!r} is not a percentage above 0, e.g. 10.0")
    tables = document.get("regions")
    if not isinstance(tables, Mapping) or not tables:
        raise CatalogueError(f"{source}: no [regions.<CODE>] tables; add at least one region")
    regions: dict[str, Region] = {}
    for key, table in tables.items():
        code = str(key)
        if code.upper() in regions or (code.upper() != code and code.upper() in tables):
            raise CatalogueError(f"{source}: region {code.upper()}: duplicate region code; each code names one entry")
        if not isinstance(table, Mapping):
            raise CatalogueError(f"{source}: region {code}: not a table; write it as [regions.{code}]")
        try:
            regions[code.upper()] = Region.model_validate({**table, "code": code})
        except ValidationError as exc:
            raise CatalogueError(
                "; ".join(f"{source}: region {code}, field {_field_and_reason(error)}" for error in exc.errors())
            ) from None
    try:
        return Catalogue(
            version=CATALOGUE_VERSION,
            source=source,
            mape_threshold=None if default is None else float(default),
            regions=regions,
        )
    except ValidationError as exc:
        raise CatalogueError("; ".join(_reason(error) for error in exc.errors())) from None


def _field_and_reason(error: Any) -> str:
    """``field: reason``; an entry-wide check (no location) names its field at the start of its message."""
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {_reason(error)}" if where else _reason(error)


def _reason(error: Any) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, Exception):
        return str(cause)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return "missing; every region needs it (see docs/regions.md)"
    if error["type"] == "extra_forbidden":
        return f"unknown field (value {error.get('input')!r}); see docs/regions.md for the fields"
    return f"{message} (value {error.get('input')!r})"


def read_catalogue_text(text: str, source: str) -> Catalogue:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        twice = re.search(r"\('regions', '([^']+)'", message)
        if twice and ("twice" in message or "redefine" in message or "overwrite" in message.lower()):
            raise CatalogueError(
                f"{source}: region {twice.group(1)}: duplicate region code ({message}); each code names one "
                "[regions.<CODE>] entry: remove or rename one of them"
            ) from None
        raise CatalogueError(f"{source}: not valid TOML ({message})") from None
    return parse_catalogue(document, source)


@functools.lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int, size: int) -> Catalogue:
    return read_catalogue_text(path.read_text(encoding="utf-8"), str(path))


def load_catalogue(path: Path | str = BUNDLED_CATALOGUE) -> Catalogue:
    """The validated catalogue in ``path`` (read again only when the file changed)."""
    path = Path(path).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError:
        raise CatalogueError(
            f"region catalogue {path} not found; point EOPT_REGION_CATALOGUE at a catalogue file or unset it "
            f"for the bundled one ({BUNDLED_CATALOGUE})"
        ) from None
    return _load(path, stat.st_mtime_ns, stat.st_size)


# -- writing one entry (``eopt regions add``) -----------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")


def region_toml(region: Region) -> str:
    """The ``[regions.<CODE>]`` table of one entry, as ``eopt regions add`` appends it."""
    data = region.model_dump(exclude_none=True, exclude={"code"})
    ids = data.pop("ids", {})
    lines = [f"[regions.{region.code}]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in data.items()]
    if ids:
        lines.append(f"ids = {_toml_value(ids)}")
    return "\n".join(lines) + "\n"


def add_region(path: Path, region: Region) -> Catalogue:
    """Append ``region`` to the catalogue file ``path`` (created from the bundled one when missing)
    and return the validated result; the file is left unchanged when the result is invalid."""
    path = Path(path).expanduser().resolve()
    before = path.read_text(encoding="utf-8") if path.exists() else BUNDLED_CATALOGUE.read_text(encoding="utf-8")
    existing = read_catalogue_text(before, str(path))
    if region.code in existing.regions:
        raise CatalogueError(
            f"{path}: region {region.code}: duplicate region code; the catalogue already has it "
            "(edit that entry instead, or choose another code)"
        )
    after = before.rstrip("\n") + "\n\n" + region_toml(region)
    catalogue = read_catalogue_text(after, str(path))  # refuses a duplicate code, a dangling sandbox.replays
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(after, encoding="utf-8")
    return catalogue
