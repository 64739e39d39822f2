"""The one settings object of the product.

Every configurable value is read here, from environment variables with documented names and
embedded defaults; nothing else in the product reads ``os.environ``. Inside Airflow, tasks
start from these settings and let connections and variables override them (see ``dags/``).

``Settings`` is a pydantic-settings model in groups (``settings.stores.database_url``,
``settings.training.test_days``, ...); each field reads one variable (its ``validation_alias``)
and documents it (its ``description``). The reference of every variable, its type, default and
meaning is generated from this model into ``docs/configuration.md``, and the product block of
``.env.example`` with it: ``eopt settings reference`` (or ``python -m core.settings``) rewrites
both, and ``tests/core/test_settings.py`` fails when either is stale.

A process builds its settings once, at its entry point (``Settings.from_env()`` in the CLI, a
DAG file, a benchmark), and hands them to the code it calls.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.regions import BUNDLED_CATALOGUE, PROVIDERS, Catalogue, CatalogueError, load_catalogue

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The regions are data: the catalogue (core/regions.toml, or EOPT_REGION_CATALOGUE) lists them.
PRICING_SOURCES = PROVIDERS
_REGION_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")
DEVICES = ("auto", "cpu", "cuda")


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


# -- declaring a setting ----------------------------------------------------------------------------


def setting(
    variable: str,
    default: Any,
    description: str,
    *,
    parse: str,
    shown: str | None = None,
    example: Any = None,
    low: float | None = None,
    high: float | None = None,
    keep_empty: bool = False,
    secret: bool = False,
    repr: bool = True,
) -> Any:
    """A field that reads ``variable``. ``parse`` names how its text becomes a value (see
    ``_parse``); ``shown`` is the default as the reference shows it when it is derived (e.g. from
    ``EOPT_HOME``); ``example`` is the value error messages suggest when the default is unset;
    ``low``/``high`` bound a number (``high`` open); ``keep_empty``: an empty value is a value,
    not "unset"."""
    extra = {
        "parse": parse,
        "shown": shown,
        "example": example,
        "low": low,
        "high": high,
        "keep_empty": keep_empty,
        "secret": secret,
    }
    return Field(
        default,
        validation_alias=variable,
        description=description,
        repr=repr and not secret,
        json_schema_extra={k: v for k, v in extra.items() if v is not None and v is not False},
    )


def _option(field: FieldInfo, key: str, default: Any = None) -> Any:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return extra.get(key, default)


def variable_of(field: FieldInfo) -> str:
    if not isinstance(field.validation_alias, str):  # every setting() names its variable
        raise TypeError(f"a setting without its environment variable: {field}")
    return field.validation_alias


def parse_thresholds(raw: str | Mapping[str, Any], what: str) -> dict[str, float]:
    """``PJM=20,BE=25`` into ``{"PJM": 20.0, "BE": 25.0}``; refuses malformed codes and non-numbers (the
    settings then refuse a region their catalogue does not hold)."""
    parts = (
        [f"{k}={v}" for k, v in raw.items()]
        if isinstance(raw, Mapping)
        else [p.strip() for p in raw.split(",") if p.strip()]
    )
    out: dict[str, float] = {}
    for part in parts:
        region, _, value = part.partition("=")
        region = region.strip().upper()
        if not _REGION_CODE.match(region):
            raise SettingsError(f"{what}: {region!r} in {part!r} is not a region code such as PJM or DE_LU")
        try:
            out[region] = float(value)
        except ValueError:
            raise SettingsError(f"{what}: {part!r} is not REGION=PERCENT, e.g. PJM=20") from None
    return out


def parse_days_by_dag(raw: str | Mapping[str, Any], what: str) -> dict[str, int]:
    """``forecast_generation=7,model_retraining=90`` into ``{"forecast_generation": 7, ...}``; refuses
    anything but a DAG id and a whole number of days above 0."""
    parts = (
        [f"{k}={v}" for k, v in raw.items()]
        if isinstance(raw, Mapping)
        else [p.strip() for p in raw.split(",") if p.strip()]
    )
    out: dict[str, int] = {}
    for part in parts:
        dag, _, days = part.partition("=")
        dag = dag.strip()
        if not dag or not days.strip().isdigit() or int(days) < 1:
            raise SettingsError(
                f"{what}: {part!r} is not DAG_ID=DAYS with DAYS a whole number above 0, e.g. forecast_generation=7"
            )
        out[dag] = int(days)
    return out


def _parse(field: FieldInfo, raw: Any) -> Any:
    """The value of ``field`` from its variable's text (or from a typed value, as ``with_overrides``
    and ``model_validate`` pass them). A malformed value raises ``SettingsError`` naming the variable."""
    name, kind = variable_of(field), _option(field, "parse")
    example = _option(field, "example", field.default)
    if kind in ("int", "int0"):
        wanted = "a positive integer" if kind == "int" else "0 or a positive integer"
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise SettingsError(f"{name}={raw!r} is not a whole number; set it to {wanted} such as {example}")
        try:
            whole = int(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is not a whole number; set it to {wanted} such as {example}") from None
        if whole < 0 or (whole == 0 and kind == "int"):
            raise SettingsError(
                f"{name}={raw!r} must be {'positive' if kind == 'int' else '0 or more'}; "
                f"set it to {wanted} such as {example}"
            )
        return whole
    if kind == "float":
        low, high = _option(field, "low"), _option(field, "high")
        try:
            value = float(raw) if isinstance(raw, (int, float, str)) and not isinstance(raw, bool) else math.nan
        except ValueError:
            value = math.nan
        if math.isnan(value):
            raise SettingsError(f"{name}={raw!r} is not a number; set it to e.g. {example}")
        if not value >= low or (high is not None and not value < high):
            bound = f"between {float(low)} and {float(high)}" if high is not None else f"at least {float(low)}"
            raise SettingsError(f"{name}={raw!r} must be {bound}, e.g. {example}")
        return value
    if kind == "flag":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in ("0", "false", "no", "off"):
            return False
        if word in ("1", "true", "yes", "on"):
            return True
        raise SettingsError(f"{name}={word!r} is not a switch; use 1 or 0")
    if kind == "regions":  # codes here; Settings checks them against the catalogue
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        codes = tuple(dict.fromkeys(str(p).strip().upper() for p in items if str(p).strip()))
        malformed = [c for c in codes if not _REGION_CODE.match(c)]
        if malformed:
            raise SettingsError(
                f"{name} names {', '.join(map(repr, malformed))}, not region codes; give codes such as NP,DE_LU"
            )
        return codes
    if kind == "sources":
        known, what, normalize = PRICING_SOURCES, "source", str.lower
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        chosen = tuple(normalize(str(p).strip()) for p in items if str(p).strip())
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise SettingsError(
                f"{name} names unknown {what}(s) {', '.join(unknown)}; known {what}s are {', '.join(known)}"
            )
        return chosen
    if kind == "list":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(str(p).strip() for p in items if str(p).strip())
    if kind == "thresholds":
        return parse_thresholds(raw, name)
    if kind == "days_by_dag":
        return parse_days_by_dag(raw, name)
    if kind == "device":
        device = str(raw).strip().lower()
        if device not in DEVICES:
            raise SettingsError(f"{name}={raw!r} is not a device; use auto, cpu or cuda")
        return device
    if kind == "upper":
        return str(raw).upper()
    if kind == "lower":
        return str(raw).lower()
    if kind == "url":
        return str(raw).rstrip("/") or None
    if kind == "redis_url":
        return _redis_url(name, raw)
    if kind == "path":
        return Path(raw)
    if kind == "resolved_path":
        return Path(raw).expanduser().resolve()
    if kind in ("str", "secret"):
        return raw
    raise AssertionError(f"{name}: unknown parse kind {kind!r}")


REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url(name: str, raw: Any) -> str:
    """A URL the Redis client can open. The message never repeats the value: it may hold a password."""
    text = str(raw).strip()
    parts = urlsplit(text)
    how = (
        "set it to e.g. redis://127.0.0.1:6379/0 (rediss:// for TLS, unix:///path/to/redis.sock), "
        "or unset it for the in-process cache"
    )
    if parts.scheme not in REDIS_SCHEMES:
        raise SettingsError(f"{name} is not a Redis URL (its scheme is not redis, rediss or unix); {how}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise SettingsError(f"{name} has a port that is not a number from 0 to 65535; {how}") from None
    database = parts.path.strip("/")
    if parts.scheme != "unix" and (not parts.hostname or (database and not database.isdigit())):
        raise SettingsError(f"{name} needs a host and, after it, a database number; {how}")
    return text


def _text_validator() -> Any:
    """The before-validator of a model's settings: each field's value from its variable's text."""

    def from_text(cls: type[BaseModel], raw: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:  # pydantic names the field of every field validator
            raise TypeError("a settings validator ran without its field")
        field = cls.model_fields[info.field_name]
        if raw is None or _option(field, "parse") is None:  # None: unset (a derived default); no parse: a group
            return raw
        return _parse(field, raw)

    return field_validator("*", mode="before")(classmethod(from_text))


class _Group(BaseModel):
    """A group of settings: immutable, read by variable (alias) or by field name."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    heading: ClassVar[str] = ""

    _from_text = _text_validator()

    def _fill(self, **defaults: Any) -> None:
        """Derived defaults of unset fields, during validation (the model is frozen afterwards)."""
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)


# -- the groups -------------------------------------------------------------------------------------


class Stores(_Group):
    heading: ClassVar[str] = "Stores: embedded defaults under EOPT_HOME, or the services"

    home: Path = setting(
        "EOPT_HOME",
        None,
        "folder for the embedded stores, artifacts and raw payloads",
        parse="resolved_path",
        shown="<project>/.eopt",
    )
    database_url: str = setting(
        "EOPT_DATABASE_URL",
        None,
        "price/forecast store: SQLite, or `postgresql://user@host:5432/db` (TimescaleDB used when present)",
        parse="str",
        shown="sqlite:///$EOPT_HOME/prices.db",
        repr=False,
    )  # may hold a password
    mlflow_tracking_uri: str = setting(
        "MLFLOW_TRACKING_URI", None, "MLflow tracking store", parse="str", shown="sqlite:///$EOPT_HOME/mlflow.db"
    )
    mlflow_registry_uri: str = setting(
        "MLFLOW_REGISTRY_URI", None, "MLflow model registry", parse="str", shown="the tracking URI"
    )
    mlflow_artifact_root: Path = setting(
        "EOPT_MLFLOW_ARTIFACT_ROOT",
        None,
        "artifact folder of experiments the product creates on a database tracking store (an MLflow server manages its own)",
        parse="resolved_path",
        shown="$EOPT_HOME/mlartifacts",
    )
    redis_url: str | None = setting(
        "REDIS_URL",
        None,
        "Redis for the latest prices and forecasts, e.g. `redis://:password@host:6379/0`",
        parse="redis_url",
        shown="unset: in-process cache",
        repr=False,
    )
    cache_ttl_prices_s: int = setting(
        "EOPT_CACHE_TTL_PRICES_S", 1800, "TTL of cached latest prices (two ingestion cycles)", parse="int"
    )
    cache_ttl_forecasts_s: int = setting(
        "EOPT_CACHE_TTL_FORECASTS_S", 7200, "TTL of cached forecasts (two forecast cycles)", parse="int"
    )
    optuna_storage: str = setting(
        "EOPT_OPTUNA_STORAGE",
        None,
        "Optuna study storage; a PostgreSQL URL lets several workers share a study",
        parse="str",
        shown="sqlite:///$EOPT_HOME/optuna.db",
        repr=False,
    )  # may hold a password
    market_data_dir: Path = setting(
        "EOPT_MARKET_DATA_DIR",
        PROJECT_ROOT / "data" / "markets",
        "bundled market history",
        parse="path",
        shown="<project>/data/markets",
    )
    upsert_batch_rows: int = setting(
        "EOPT_UPSERT_BATCH_ROWS", 8760, "rows per upsert transaction in history loads (a year of hours)", parse="int"
    )
    database_connect_timeout_s: int = setting(
        "EOPT_DATABASE_CONNECT_TIMEOUT_S",
        10,
        "PostgreSQL store: seconds to open a connection, login included (libpq waits at least 2)",
        parse="int",
    )
    database_statement_timeout_s: float = setting(
        "EOPT_DATABASE_STATEMENT_TIMEOUT_S",
        60.0,
        "PostgreSQL store: seconds a statement may run (the server's `statement_timeout`); a connection that has "
        "not answered 1 s later is dropped by the client, so a stalled server or network fails the step instead of "
        "hanging it (`eopt db upgrade` of a large existing table may need more)",
        parse="float",
        low=0.1,
    )
    database_idle_in_transaction_timeout_s: float = setting(
        "EOPT_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_S",
        60.0,
        "PostgreSQL store: the server ends a session left idle this long inside a transaction "
        "(`idle_in_transaction_session_timeout`), so the locks of a client that vanished do not block the rerun",
        parse="float",
        low=0.1,
    )
    database_keepalive_idle_s: int = setting(
        "EOPT_DATABASE_KEEPALIVE_IDLE_S",
        30,
        "PostgreSQL store: seconds of silence on a connection before TCP keepalive probes start",
        parse="int",
    )
    database_keepalive_interval_s: int = setting(
        "EOPT_DATABASE_KEEPALIVE_INTERVAL_S", 10, "PostgreSQL store: seconds between TCP keepalive probes", parse="int"
    )
    database_keepalive_count: int = setting(
        "EOPT_DATABASE_KEEPALIVE_COUNT",
        3,
        "PostgreSQL store: unanswered keepalive probes after which the connection is dead; idle + interval x count "
        "also bounds how long sent data may stay unacknowledged (`tcp_user_timeout`)",
        parse="int",
    )

    @model_validator(mode="after")
    def _derived(self) -> Stores:
        if self.home is None:
            object.__setattr__(self, "home", (PROJECT_ROOT / ".eopt").resolve())
        home = self.home
        self._fill(
            database_url=f"sqlite:///{home / 'prices.db'}",
            mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            optuna_storage=f"sqlite:///{home / 'optuna.db'}",
            mlflow_artifact_root=home / "mlartifacts",
        )
        self._fill(mlflow_registry_uri=self.mlflow_tracking_uri)
        return self


def _provider_url(source: str, host: str) -> Any:
    return setting(
        f"EOPT_{source.upper()}_URL", None, f"base URL of {host}", parse="url", shown="the provider's real host"
    )


class Providers(_Group):
    heading: ClassVar[str] = "Pricing providers and ingestion"

    sources: tuple[str, ...] = setting(
        "EOPT_INGESTION_SOURCES",
        PRICING_SOURCES,
        "pricing APIs the ingestion calls",
        parse="sources",
        shown="flatpeak,nrel,openei,iea,entsoe",
    )
    min_records: int = setting(
        "EOPT_PRICE_INGESTION_MIN_RECORDS",
        24,
        "fewest valid rows a cycle must bring (Airflow variable `price_ingestion_min_records`)",
        parse="int",
    )
    sandbox_url: str | None = setting(
        "EOPT_PRICING_SANDBOX_URL",
        None,
        "point every provider at the local sandbox (`eopt sandbox`) with the sandbox's credentials",
        parse="url",
    )
    flatpeak_url: str | None = _provider_url("flatpeak", "Flatpeak")
    nrel_url: str | None = _provider_url("nrel", "NREL/NLR")
    openei_url: str | None = _provider_url("openei", "OpenEI")
    iea_url: str | None = _provider_url("iea", "the IEA")
    entsoe_url: str | None = _provider_url("entsoe", "the ENTSO-E transparency platform")
    flatpeak_account_id: SecretStr | None = setting(
        "EOPT_FLATPEAK_ACCOUNT_ID", None, "Flatpeak account id (secret)", parse="secret", secret=True
    )
    flatpeak_api_key: SecretStr | None = setting(
        "EOPT_FLATPEAK_API_KEY", None, "Flatpeak API key (secret)", parse="secret", secret=True
    )
    nrel_api_key: SecretStr | None = setting(
        "EOPT_NREL_API_KEY",
        None,
        "NREL/NLR developer API key, also used for OpenEI (secret)",
        parse="secret",
        secret=True,
    )
    entsoe_token: SecretStr | None = setting(
        "EOPT_ENTSOE_TOKEN", None, "ENTSO-E security token (secret)", parse="secret", secret=True
    )
    # Budgets of each provider's HTTP calls, within the ingestion DAG's 5-minute deadline.
    connect_timeout_s: float = setting(
        "EOPT_PROVIDER_CONNECT_TIMEOUT_S", 5.0, "seconds to open a connection to a provider", parse="float", low=0.01
    )
    read_timeout_s: float = setting(
        "EOPT_PROVIDER_READ_TIMEOUT_S",
        20.0,
        "seconds a provider may leave a request without its next bytes (headers or body)",
        parse="float",
        low=0.01,
    )
    request_timeout_s: float = setting(
        "EOPT_PROVIDER_REQUEST_TIMEOUT_S",
        60.0,
        "seconds one request may take in all, from connecting to its last body byte (a slower body is cut)",
        parse="float",
        low=0.01,
    )
    budget_s: float = setting(
        "EOPT_PROVIDER_BUDGET_S",
        180.0,
        "seconds one provider may take per cycle in all (every region, request, retry and wait); "
        "under the ingestion DAG's 5-minute deadline, with room for the steps after it",
        parse="float",
        low=0.01,
        high=300.0,
    )
    max_attempts: int = setting(
        "EOPT_PROVIDER_MAX_ATTEMPTS",
        4,
        "attempts per request on timeouts, 5xx and 429; fewer when the next would not fit the provider's budget",
        parse="int",
    )
    max_retry_after_s: float = setting(
        "EOPT_PROVIDER_MAX_RETRY_AFTER_S",
        60.0,
        "longest `Retry-After` honoured; a provider asking for longer fails for this cycle at once",
        parse="float",
        low=0.0,
    )
    max_body_bytes: int = setting(
        "EOPT_PROVIDER_MAX_BODY_BYTES",
        16 * 2**20,
        "largest answer taken from a provider, as sent (compressed); a larger one is cut and refused",
        parse="int",
    )
    max_decoded_bytes: int = setting(
        "EOPT_PROVIDER_MAX_DECODED_BYTES",
        64 * 2**20,
        "largest answer after decompression; a body inflating past it is refused",
        parse="int",
    )

    @property
    def urls(self) -> dict[str, str]:
        """The providers' base URLs that are set, by source."""
        return {s: url for s in PRICING_SOURCES if (url := getattr(self, f"{s}_url"))}

    @property
    def logins(self) -> dict[str, str]:
        """The login (account id) of the sources that take one, when set."""
        return {"flatpeak": self.flatpeak_account_id.get_secret_value()} if self.flatpeak_account_id else {}

    @property
    def api_keys(self) -> dict[str, str]:
        """The secret key or token of each source that has one set (OpenEI takes the NREL key)."""
        keys = {
            "flatpeak": self.flatpeak_api_key,
            "nrel": self.nrel_api_key,
            "openei": self.nrel_api_key,
            "entsoe": self.entsoe_token,
        }
        return {s: k.get_secret_value() for s, k in keys.items() if k}


class Training(_Group):
    heading: ClassVar[str] = "Training, tuning and the promotion gate"

    budget: str = setting(
        "EOPT_TRAINING_BUDGET",
        "default",
        "tuning budget of a retraining: `smoke`, `default` (under 10 min per region on 2 cores) or `thorough`",
        parse="lower",
    )
    tuning_trials: int | None = setting(
        "EOPT_TUNING_TRIALS",
        None,
        "trials per model, overriding the budget",
        parse="int",
        shown="the budget's",
        example=20,
    )
    tuning_timeout_s: int | None = setting(
        "EOPT_TUNING_TIMEOUT_S",
        None,
        "tuning seconds per model, overriding the budget",
        parse="int",
        shown="the budget's",
        example=600,
    )
    window_days: int = setting(
        "EOPT_TRAINING_WINDOW_DAYS",
        730,
        "days of history the tuned members of a retraining learn from (two years; LEAR reads up to "
        "`EOPT_LEAR_HISTORY_DAYS`)",
        parse="int",
    )
    validation_days: int = setting(
        "EOPT_VALIDATION_DAYS",
        56,
        "days before the test window used for early stopping, tuning, ensemble weights and intervals",
        parse="int",
    )
    test_days: int = setting(
        "EOPT_TEST_DAYS", 56, "last days of the window, held out for the metrics and the promotion gate", parse="int"
    )
    origin_stride_h: int = setting(
        "EOPT_TRAINING_ORIGIN_STRIDE_H",
        7,
        "hours between training forecast origins (prime to 24: every hour of day is an origin)",
        parse="int",
    )
    max_gap_h: int = setting(
        "EOPT_TRAINING_MAX_GAP_H",
        24,
        "a run of this many missing hours in the training window refuses the region",
        parse="int",
    )
    max_staleness_h: int = setting(
        "EOPT_TRAINING_MAX_STALENESS_H",
        48,
        "newest price older than this (before the run's logical date) refuses a retraining",
        parse="int",
    )
    device: str = setting(
        "EOPT_TRAINING_DEVICE", "auto", "CNN-LSTM device: `auto` (CUDA when available), `cpu` or `cuda`", parse="device"
    )
    threads: int = setting(
        "EOPT_TRAINING_THREADS",
        0,
        "CPU threads of one fit (`0`: all cores); on a worker that runs N training tasks at once "
        "(`ml_training_pool`), cores / N avoids OpenMP oversubscription",
        parse="int0",
        example=2,
    )
    random_seed: int = setting("EOPT_RANDOM_SEED", 42, "seed of samplers, models and data order", parse="int0")
    interval_coverage: float = setting(
        "EOPT_INTERVAL_COVERAGE", 0.9, "nominal coverage of the forecast intervals", parse="float", low=0.5, high=1.0
    )
    lear_recalibrate_daily: bool = setting(
        "EOPT_LEAR_RECALIBRATE_DAILY",
        True,
        "the LEAR member refits its 56- and 84-day windows on the 98 days before every local-midnight forecast, as "
        "the EPF benchmark recalibrates (BE's two test years: 2.4% lower ensemble MAE); its requests then need those "
        "98 days. Off: the weekly fit alone, and requests of 168 hours",
        parse="flag",
    )
    lear_history_days: int = setting(
        "EOPT_LEAR_HISTORY_DAYS",
        1456,
        "days of history the LEAR member reads (its long calibration windows are half and all of them), where the "
        "store has them; the other members keep the training window (`0`, or fewer days than the training window: "
        "the training window's; `1456`: the EPF benchmark's four years)",
        parse="int0",
        example=1456,
    )
    served_weight_days: int = setting(
        "EOPT_SERVED_WEIGHT_DAYS",
        0,
        "a retraining with `EOPT_ENSEMBLE_WEIGHTS=validation` weighs the members and calibrates the intervals on the "
        "day-ahead forecasts they served in this many days before its test window, once 28 of them are stored with their prices (`0`: on the validation "
        "window, where the networks and trees chose their epochs and rounds)",
        parse="int0",
        example=91,
    )
    ensemble_weights: str = setting(
        "EOPT_ENSEMBLE_WEIGHTS",
        "lear_network",
        "how a retraining weighs the members: `lear_network` (LEAR and the CNN-LSTM half and half, the trees at 0: "
        "the validation flatters the trees and the network, which stop early on it, and LEAR, which does not) or "
        "`validation` (the simplex or shrunk-stack weights its validation window picks over every member)",
        parse="lower",
    )
    mlflow_experiment: str = setting(
        "EOPT_MLFLOW_EXPERIMENT", "electricity-price-forecasting", "MLflow experiment of retraining runs", parse="str"
    )
    mlflow_run_id: str | None = setting(
        "MLFLOW_RUN_ID",
        None,
        "a retraining started by `mlflow run` nests its runs under that run",
        parse="str",
        shown="set by `mlflow run`",
    )
    model_mape_threshold: float = setting(
        "EOPT_MODEL_MAPE_THRESHOLD",
        10.0,
        "promotion gate: a candidate's guarded MAPE (%) must be below this (Airflow variable `model_mape_threshold`)",
        parse="float",
        low=0.0,
    )
    model_mape_thresholds: dict[str, float] = setting(
        "EOPT_MODEL_MAPE_THRESHOLDS",
        {},
        "per-region overrides of the MAPE threshold, `REGION=PERCENT,...`, over the region catalogue's "
        "`mape_threshold` (the bundled one: PJM 20, BE and FR 25, as no model reaches 10% there); empty: none",
        parse="thresholds",
        shown="none (the catalogue's thresholds)",
        keep_empty=True,
    )
    promotion_min_improvement: float = setting(
        "EOPT_PROMOTION_MIN_IMPROVEMENT",
        0.0,
        "promotion gate: relative MAE margin a candidate needs over the champion (0.02 = 2% better)",
        parse="float",
        low=0.0,
        high=1.0,
    )


class Quality(_Group):
    heading: ClassVar[str] = "Data quality, model accuracy and drift"

    window_days: int = setting(
        "EOPT_QUALITY_WINDOW_DAYS",
        7,
        "days before the data-quality run that its checks and the drift report's current window cover",
        parse="int",
    )
    max_gap_h: int = setting(
        "EOPT_QUALITY_MAX_GAP_H",
        1,
        "completeness: the longest run of missing hours per region and source that is still ok",
        parse="int",
    )
    missing_critical_share: float = setting(
        "EOPT_QUALITY_MISSING_CRITICAL_SHARE",
        0.1,
        "completeness: a share of missing hours in the window from which a gap is critical, not a warning",
        parse="float",
        low=0.0,
        high=1.0,
    )
    price_outlier_z: float = setting(
        "EOPT_PRICE_OUTLIER_Z",
        15.0,
        "price range: robust z-score (distance from the median of the 4 weeks before, in scaled MADs) from which an "
        "hour is an outlier (15 warns in 2-6% of the bundled history's weeks; a week at 3x is critical)",
        parse="float",
        low=1.0,
    )
    freshness_warn_h: float = setting(
        "EOPT_FRESHNESS_WARN_H",
        2.0,
        "freshness: the newest price older than this (hours before the run) is a warning",
        parse="float",
        low=0.0,
    )
    freshness_critical_h: float = setting(
        "EOPT_FRESHNESS_CRITICAL_H", 24.0, "freshness: ... and older than this is critical", parse="float", low=0.0
    )
    api_error_rate_warn: float = setting(
        "EOPT_API_ERROR_RATE_WARN",
        0.05,
        "API health: a provider's share of failed calls (last 24 h) from which it is a warning",
        parse="float",
        low=0.0,
        high=1.0,
    )
    api_error_rate_critical: float = setting(
        "EOPT_API_ERROR_RATE_CRITICAL",
        0.5,
        "API health: ... and from which it is critical",
        parse="float",
        low=0.0,
        high=1.0,
    )
    api_latency_p95_warn_ms: float = setting(
        "EOPT_API_LATENCY_P95_WARN_MS",
        5000.0,
        "API health: a provider's 95th-percentile latency from which it is a warning",
        parse="float",
        low=0.0,
    )
    accuracy_mape_critical: float = setting(
        "EOPT_ACCURACY_MAPE_CRITICAL",
        15.0,
        "model accuracy: realized guarded MAPE (%) above this, or above the region's promotion threshold when that "
        "is higher, is critical",
        parse="float",
        low=0.0,
    )
    accuracy_rmae_factor: float = setting(
        "EOPT_ACCURACY_RMAE_FACTOR",
        1.5,
        "model accuracy: realized rMAE above this factor times the champion's rMAE at promotion is critical "
        "(rMAE >= 1, no better than the seasonal naive, is a warning)",
        parse="float",
        low=1.0,
    )
    drift_column_threshold: float = setting(
        "EOPT_DRIFT_COLUMN_THRESHOLD",
        0.75,
        "drift: normed Wasserstein distance from which a column counts as drifted in the Evidently report "
        "(`benchmarks/drift_calibration.py`: at 0.75 a drifted share >= 0.5 in 2.1% of the bundled history's 828 "
        "weeks; Evidently's default 0.1 flags 99.9%); shown, the per-family rules decide (docs/drift.md)",
        parse="float",
        low=0.0,
    )
    drift_share_threshold: float = setting(
        "EOPT_DRIFT_SHARE_THRESHOLD",
        0.5,
        "drift: the drifted-column share of the Evidently report's dataset-drift test (shown in the report; "
        "the per-family rules of docs/drift.md decide the drift status)",
        parse="float",
        low=0.0,
        high=1.0,
    )
    retrain_on_drift: bool = setting(
        "EOPT_RETRAIN_ON_DRIFT",
        False,
        "`1`: critical drift triggers `model_retraining` for the drifted regions (Airflow variable `retrain_on_drift`)",
        parse="flag",
    )
    experiment: str = setting(
        "EOPT_QUALITY_EXPERIMENT",
        "data-quality",
        "MLflow experiment of the data-quality runs (drift reports and the quality report)",
        parse="str",
    )


class Alerts(_Group):
    heading: ClassVar[str] = "Alerts and metrics"

    enable_slack: bool = setting(
        "EOPT_ENABLE_SLACK_ALERTS",
        False,
        "send data-quality and DAG-failure alerts to Slack (connection `slack_data_quality`; Airflow variable "
        "`enable_slack_alerts`)",
        parse="flag",
    )
    email_to: tuple[str, ...] = setting(
        "EOPT_ALERT_EMAIL_TO",
        (),
        "comma-separated addresses for critical alerts by email (SMTP connection `smtp_default`); unset: no email",
        parse="list",
        shown="unset",
    )
    email_from: str = setting(
        "EOPT_ALERT_EMAIL_FROM", "electricity-optimizer@localhost", "sender of alert emails", parse="str"
    )
    metrics_host: str = setting(
        "EOPT_METRICS_HOST", "127.0.0.1", "where `eopt metrics serve` exposes the Prometheus metrics", parse="str"
    )
    metrics_port: int = setting("EOPT_METRICS_PORT", 9108, "port of `eopt metrics serve`", parse="int")


class AirflowSettings(_Group):
    heading: ClassVar[str] = "Airflow"

    home: Path = setting(
        "EOPT_AIRFLOW_HOME",
        None,
        "the Airflow home `eopt airflow-init` and `make demo` bootstrap (SQLite metadata; an operator's own "
        "`AIRFLOW__DATABASE__SQL_ALCHEMY_CONN` wins)",
        parse="resolved_path",
        shown="$EOPT_HOME/airflow",
    )
    task_retries: int = setting(
        "EOPT_AIRFLOW_TASK_RETRIES",
        1,
        "retries of a failed DAG task (the HTTP clients retry on their own first)",
        parse="int0",
    )
    retry_delay_s: int = setting("EOPT_AIRFLOW_RETRY_DELAY_S", 30, "wait before a task retry", parse="int")
    forecast_chunk_zones: int = setting(
        "EOPT_FORECAST_CHUNK_ZONES",
        25,
        "zones per mapped instance of `forecast_generation`'s task group: the run's zones are split into chunks of at "
        "most this many (of even size), and each instance prepares, forecasts, stores and caches its chunk together",
        parse="int",
    )
    deadline_alerts: bool = setting(
        "EOPT_AIRFLOW_DEADLINE_ALERTS",
        True,
        "attach the DAGs' deadline alerts; `0` for local `airflow dags test` runs, which crash after a successful run "
        "of a DAG with a deadline in Airflow 3.3.2 (apache/airflow#73428)",
        parse="flag",
    )
    worker_hostname: str | None = setting(
        "EOPT_WORKER_HOSTNAME",
        None,
        "the name a Celery worker started by `eopt up --executor celery` records as `task_instance.hostname` "
        "(`worker<n>@<host>`, set by `up` for each worker; unset: the machine's name)",
        parse="str",
        shown="the machine's name",
    )


class Retention(_Group):
    heading: ClassVar[str] = "Maintenance and retention (the `maintenance` DAG, `eopt maintenance`)"

    quality_run_days: int = setting(
        "EOPT_RETENTION_QUALITY_RUN_DAYS",
        30,
        "data-quality MLflow runs (their Evidently reports and quality reports with them) started longer ago than this "
        "are deleted through MLflow and garbage-collected; so are the local report folders under `$EOPT_HOME/quality`",
        parse="int",
    )
    raw_payload_days: int = setting(
        "EOPT_RETENTION_RAW_PAYLOAD_DAYS",
        30,
        "archived provider payloads under `$EOPT_HOME/raw` older than this are removed, unless a kept quarantine row "
        "references them",
        parse="int",
    )
    quarantine_days: int = setting(
        "EOPT_RETENTION_QUARANTINE_DAYS",
        90,
        "quarantine rows last seen longer ago than this are deleted (a row seen again stays)",
        parse="int",
    )
    forecast_hourly_days: int = setting(
        "EOPT_RETENTION_FORECAST_HOURLY_DAYS",
        14,
        "every hourly forecast issue is kept this long; older target hours keep only their day-ahead issue (the one "
        "issued furthest ahead)",
        parse="int",
    )
    airflow_log_days: int = setting(
        "EOPT_RETENTION_AIRFLOW_LOG_DAYS",
        30,
        "Airflow task log files not written to for longer than this are removed",
        parse="int",
    )
    product_log_days: int = setting(
        "EOPT_RETENTION_PRODUCT_LOG_DAYS",
        30,
        "the product's own service logs under `$EOPT_HOME/run` (`eopt up`) not written to for longer than this are "
        "removed (never the log of a service that is running)",
        parse="int",
    )
    airflow_log_days_by_dag: dict[str, int] = setting(
        "EOPT_RETENTION_AIRFLOW_LOG_DAYS_BY_DAG",
        {},
        "per-DAG overrides of the task log retention, `DAG_ID=DAYS,...` (e.g. `electricity_price_ingestion=7`, whose "
        "96 runs a day write most of the logs); unset: none",
        parse="days_by_dag",
        shown="unset",
    )
    airflow_metadata_days: int = setting(
        "EOPT_RETENTION_AIRFLOW_METADATA_DAYS",
        90,
        "`airflow db clean` removes metadata rows (runs, task instances, XComs, ...) older than this, without archive "
        "tables",
        parse="int",
    )
    optuna_studies: int = setting(
        "EOPT_RETENTION_OPTUNA_STUDIES",
        2,
        "Optuna studies kept per region and model: the newest training windows' (the newest seeds the next "
        "retraining); a study with a running trial is never removed",
        parse="int",
    )
    archived_champions: int = setting(
        "EOPT_RETENTION_ARCHIVED_CHAMPIONS",
        3,
        "the newest former champions per region kept as rollback targets, with their runs (Production and Staging "
        "versions are always kept)",
        parse="int0",
    )
    rejected_version_days: int = setting(
        "EOPT_RETENTION_REJECTED_VERSION_DAYS",
        30,
        "registered model versions the gate rejected (Archived, no alias, never champion, not a kept rollback target) "
        "and registered longer ago than this are deleted with their MLflow runs (and nested trial runs), then "
        "garbage-collected",
        parse="int",
    )
    report_experiment: str = setting(
        "EOPT_MAINTENANCE_EXPERIMENT",
        "maintenance-reports",
        "MLflow experiment of the maintenance reports (model evaluation, pool review): tables and pictures; never "
        "removed by the data-quality retention",
        parse="str",
    )


# -- reading the variables ------------------------------------------------------------------------

_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("eopt_settings_environment", default=None)


class VariablesSource(PydanticBaseSettingsSource):
    """Each field reads exactly its variable (``validation_alias``) from the environment (or the
    mapping ``Settings.from_env`` was given), into the groups; an empty value is unset."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False  # __call__ reads every field

    @staticmethod
    def read(model: type[BaseModel], env: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            group = field.annotation
            if isinstance(group, type) and issubclass(group, _Group):
                values[name] = VariablesSource.read(group, env)
                continue
            variable = variable_of(field)
            raw = env.get(variable)
            if raw is None:
                continue
            blank = raw == "" if _option(field, "parse") not in ("flag", "regions", "sources") else not raw.strip()
            if blank and not _option(field, "keep_empty"):
                continue
            values[variable] = raw
        return values

    def __call__(self) -> dict[str, Any]:
        env = _ENVIRONMENT.get()
        return self.read(self.settings_cls, os.environ if env is None else env)


# -- the settings ---------------------------------------------------------------------------------


class Settings(BaseSettings):
    """Every setting of the product, in groups; build it with ``Settings.from_env()``."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, validate_default=False
    )
    heading: ClassVar[str] = "General"

    region_catalogue: Path = setting(
        "EOPT_REGION_CATALOGUE",
        BUNDLED_CATALOGUE,
        "the region catalogue (TOML): each region's zone, currency, holidays, provider ids and exogenous series "
        "(docs/regions.md); an operator's own file, which `eopt regions add` writes to",
        parse="resolved_path",
        shown="<project>/core/regions.toml",
    )
    regions: tuple[str, ...] = setting(
        "EOPT_REGIONS",
        None,
        "regions the pipelines and `load-history` work on: codes of the region catalogue",
        parse="regions",
        shown="the catalogue's regions with enabled = true (NP,PJM,BE,FR)",
    )
    log_level: str = setting("EOPT_LOG_LEVEL", "INFO", "log level of the CLI", parse="upper")
    require_services: bool = setting(
        "EOPT_REQUIRE_SERVICES",
        False,
        "`1`: tests fail instead of skipping when PostgreSQL/Redis are absent",
        parse="flag",
    )
    stores: Stores = Field(default_factory=Stores, description=Stores.heading)
    providers: Providers = Field(default_factory=Providers, description=Providers.heading)
    training: Training = Field(default_factory=Training, description=Training.heading)
    quality: Quality = Field(default_factory=Quality, description=Quality.heading)
    alerts: Alerts = Field(default_factory=Alerts, description=Alerts.heading)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings, description=AirflowSettings.heading)
    retention: Retention = Field(default_factory=Retention, description=Retention.heading)

    _from_text = _text_validator()

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        if self.airflow.home is None:
            object.__setattr__(self.airflow, "home", self.stores.home / "airflow")
        catalogue = self.catalogue
        if self.regions is None:
            object.__setattr__(self, "regions", catalogue.enabled)
        unknown = [r for r in self.regions if r not in catalogue.regions]
        if unknown:
            raise SettingsError(
                f"EOPT_REGIONS names {', '.join(unknown)}, not in the region catalogue {catalogue.source}; "
                f"add an entry (`eopt regions add`) or use its regions: {', '.join(catalogue.codes)}"
            )
        thresholds = self.training.model_mape_thresholds
        stray = [r for r in thresholds if r not in catalogue.regions]
        if stray:
            raise SettingsError(
                f"EOPT_MODEL_MAPE_THRESHOLDS names {', '.join(stray)}, not in the region catalogue "
                f"{catalogue.source}; known: {', '.join(catalogue.codes)}"
            )
        return self

    @property
    def catalogue(self) -> Catalogue:
        """The validated region catalogue of ``region_catalogue`` (read again when the file changes)."""
        try:
            return load_catalogue(self.region_catalogue)
        except CatalogueError as exc:
            raise SettingsError(f"EOPT_REGION_CATALOGUE: {exc}") from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, VariablesSource(settings_cls)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: this process's environment); ``SettingsError``
        names the variable of a malformed value and what to set it to."""
        token = _ENVIRONMENT.set(env)
        try:
            return _validated(cls)
        finally:
            _ENVIRONMENT.reset(token)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some values replaced (how Airflow connections and variables apply), by their
        flat names (``database_url``, ``enable_slack_alerts``, ... see ``FLAT_NAMES``); values are
        parsed and checked as the variables are. Derived defaults are not re-derived."""
        data = self.model_dump()
        for flat, value in changes.items():
            if flat not in FLAT_NAMES:
                raise SettingsError(f"with_overrides: unknown setting {flat!r}")
            group, name = FLAT_NAMES[flat]
            (data[group] if group else data)[name] = value
        return _validated(type(self), data)

    def chosen_regions(self, requested: Sequence[str] | str | None, where: str = "conf regions") -> list[str]:
        """The regions a run works on: ``requested`` (a run's ``conf["regions"]``, an option), or the
        configured ``regions`` when none are; refuses a region the product has no market for."""
        if requested is None:
            return list(self.regions)
        if isinstance(requested, str) or not all(isinstance(r, str) for r in requested):
            raise SettingsError(f'{where}: {requested!r} is not a list of regions; give e.g. ["NP", "BE"]')
        chosen = [r.strip().upper() for r in requested]
        catalogue = self.catalogue
        unknown = [r for r in chosen if r not in catalogue.regions]
        if unknown:
            raise SettingsError(
                f"{where}: unknown region {', '.join(unknown)}; the region catalogue {catalogue.source} holds "
                f"{', '.join(catalogue.codes)} (add one with `eopt regions add`)"
            )
        return list(dict.fromkeys(chosen))

    # -- derived values ---------------------------------------------------------------------------

    @property
    def raw_payload_dir(self) -> Path:
        """Where unparseable provider payloads are archived, referenced from the quarantine."""
        return self.stores.home / "raw"

    @property
    def service_dir(self) -> Path:
        """Where ``eopt up`` keeps each service's pid file and log (``<service>.pid``, ``<service>.log``)."""
        return self.stores.home / "run"

    @property
    def quality_dir(self) -> Path:
        """Where data-quality runs write their report and drift reports (also logged to MLflow)."""
        return self.stores.home / "quality"

    @property
    def airflow_log_dir(self) -> Path:
        """Where the product's Airflow home keeps task logs (Airflow's default ``base_log_folder``)."""
        return self.airflow.home / "logs"

    @property
    def retraining_dir(self) -> Path:
        """Where a retraining's tasks hand frames and fitted members to each other (files, not XCom)."""
        return self.stores.home / "retraining"

    def airflow_environment(self, **extra: str) -> dict[str, str]:
        """The environment of an ``airflow`` command on this product's Airflow home: the project's
        dags folder, no examples, SQLite metadata in the home unless the operator configured a
        database, and this process's settings (``EOPT_*``) passed on."""
        home = self.airflow.home
        env = dict(os.environ)
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            EOPT_HOME=str(self.stores.home),
        )
        env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
        # `airflow dags ...` warns on stdout, in the middle of `-o json`, that graph rendering needs graphviz
        env.setdefault("PYTHONWARNINGS", "ignore:Could not import graphviz:UserWarning")
        env.update(extra)
        return env

    def mape_threshold(self, region: str) -> float:
        """The promotion gate's MAPE threshold (%) for a region: its ``EOPT_MODEL_MAPE_THRESHOLDS`` override,
        else its catalogue entry's ``mape_threshold``, else the catalogue's default, else
        ``EOPT_MODEL_MAPE_THRESHOLD``."""
        override = self.training.model_mape_thresholds.get(region)
        if override is not None:
            return float(override)
        stated = self.catalogue.mape_threshold_of(region)
        return float(stated if stated is not None else self.training.model_mape_threshold)

    def ensure_home(self) -> Path:
        self.stores.home.mkdir(parents=True, exist_ok=True)
        return self.stores.home


GROUPS: dict[str | None, type[Settings] | type[_Group]] = {
    None: Settings,
    **{
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Group)
    },
}


# The flat name of each setting before the groups, where it is not the field's name in its group
# (the group makes a prefix redundant); ``with_overrides`` takes flat names, and
# ``scripts/settings_codemod.py`` rewrote ``settings.<flat>`` into ``settings.<group>.<field>``.
RENAMED = {
    "ingestion_sources": ("providers", "sources"),
    "price_ingestion_min_records": ("providers", "min_records"),
    "pricing_sandbox_url": ("providers", "sandbox_url"),
    "provider_connect_timeout_s": ("providers", "connect_timeout_s"),
    "provider_read_timeout_s": ("providers", "read_timeout_s"),
    "provider_request_timeout_s": ("providers", "request_timeout_s"),
    "provider_budget_s": ("providers", "budget_s"),
    "provider_max_attempts": ("providers", "max_attempts"),
    "provider_max_retry_after_s": ("providers", "max_retry_after_s"),
    "provider_max_body_bytes": ("providers", "max_body_bytes"),
    "provider_max_decoded_bytes": ("providers", "max_decoded_bytes"),
    "training_budget": ("training", "budget"),
    "training_window_days": ("training", "window_days"),
    "training_origin_stride_h": ("training", "origin_stride_h"),
    "training_max_gap_h": ("training", "max_gap_h"),
    "training_max_staleness_h": ("training", "max_staleness_h"),
    "training_device": ("training", "device"),
    "training_threads": ("training", "threads"),
    "quality_window_days": ("quality", "window_days"),
    "quality_max_gap_h": ("quality", "max_gap_h"),
    "quality_missing_critical_share": ("quality", "missing_critical_share"),
    "quality_experiment": ("quality", "experiment"),
    "enable_slack_alerts": ("alerts", "enable_slack"),
    "alert_email_to": ("alerts", "email_to"),
    "alert_email_from": ("alerts", "email_from"),
    "airflow_home": ("airflow", "home"),
    "airflow_task_retries": ("airflow", "task_retries"),
    "airflow_retry_delay_s": ("airflow", "retry_delay_s"),
    "airflow_deadline_alerts": ("airflow", "deadline_alerts"),
}


def _flat_names() -> dict[str, tuple[str | None, str]]:
    """Flat name -> (group, field name; group None: a top-level field) of every setting."""
    renamed = {where: flat for flat, where in RENAMED.items()}
    out: dict[str, tuple[str | None, str]] = {}
    for group, model in GROUPS.items():
        for name in model.model_fields:
            if group is None and name in GROUPS:
                continue
            flat = renamed.get((group, name), name)  # type: ignore[arg-type]
            if flat in out:
                raise TypeError(f"two settings are called {flat}")
            out[flat] = (group, name)
    return out


FLAT_NAMES = _flat_names()


def _validated(cls: type[Settings], data: dict[str, Any] | None = None) -> Settings:
    # model_validate runs BaseSettings.__init__, and with it the sources: only ``data`` counts then
    token = _ENVIRONMENT.set({}) if data is not None else None
    try:
        return cls() if data is None else cls.model_validate(data)
    except ValidationError as exc:
        raise SettingsError("; ".join(_message(cls, error) for error in exc.errors())) from None
    finally:
        if token is not None:
            _ENVIRONMENT.reset(token)


def _message(cls: type[Settings], error: Any) -> str:
    """A validation error as one sentence that names the variable."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SettingsError):
        return str(cause)
    model: type[BaseModel] = cls
    variable = ".".join(str(p) for p in error["loc"])
    for part in error["loc"]:
        field = model.model_fields.get(str(part)) or next(
            (f for f in model.model_fields.values() if f.validation_alias == part), None
        )
        if field is None:
            break
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
        else:
            variable = variable_of(field)
    return f"{variable}={error.get('input')!r}: {error['msg']}"


_PROCESS_CATALOGUE: Catalogue | None = None  # set by use_catalogue (a benchmark's ad-hoc market)


def use_catalogue(catalogue: Catalogue | None) -> None:
    """Make ``catalogue`` this process's catalogue (None: back to ``EOPT_REGION_CATALOGUE``)."""
    global _PROCESS_CATALOGUE
    _PROCESS_CATALOGUE = catalogue


def current_catalogue() -> Catalogue:
    """The region catalogue of this process (``EOPT_REGION_CATALOGUE``, else the bundled one), for
    code that looks a region up without being handed the settings (``core.markets.get_market``)."""
    if _PROCESS_CATALOGUE is not None:
        return _PROCESS_CATALOGUE
    raw = os.environ.get("EOPT_REGION_CATALOGUE", "").strip()
    try:
        return load_catalogue(Path(raw) if raw else BUNDLED_CATALOGUE)
    except CatalogueError as exc:
        raise SettingsError(f"EOPT_REGION_CATALOGUE: {exc}") from None


def child_environment(path_first: Path | None = None, **settings: str) -> dict[str, str]:
    """The environment for a child process of the product with its own settings: this process's
    environment without any ``EOPT_*``/``MLFLOW_*`` value, plus ``settings``, with ``path_first``
    (e.g. the virtualenv's bin) ahead on ``PATH`` (benchmarks use it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOPT_", "MLFLOW_"))}
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    env.update(settings)
    return env


def main(argv: list[str] | None = None) -> int:
    from core.settings_reference import main as reference_main

    return reference_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
