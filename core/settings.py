"""The one settings object of the product.

Every configurable value is read here, from environment variables with documented names and
embedded defaults; nothing else in the product reads ``os.environ``. Inside Airflow, tasks
start from these settings and let connections and variables override them (see ``dags/``).

| variable | default | meaning |
|---|---|---|
| ``EOPT_HOME`` | ``<project>/.eopt`` | folder for the embedded stores, artifacts and raw payloads |
| ``EOPT_DATABASE_URL`` | ``sqlite:///$EOPT_HOME/prices.db`` | price/forecast store (SQLite or PostgreSQL/TimescaleDB) |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///$EOPT_HOME/mlflow.db`` | MLflow tracking store |
| ``MLFLOW_REGISTRY_URI`` | the tracking URI | MLflow model registry |
| ``REDIS_URL`` | unset: in-process cache | Redis for the latest prices and forecasts |
| ``EOPT_CACHE_TTL_PRICES_S`` | ``1800`` | TTL of cached latest prices (two ingestion cycles) |
| ``EOPT_CACHE_TTL_FORECASTS_S`` | ``7200`` | TTL of cached forecasts (two forecast cycles) |
| ``EOPT_REGIONS`` | ``NP,PJM,BE,FR`` | regions the pipelines work on |
| ``EOPT_MARKET_DATA_DIR`` | ``<project>/data/markets`` | bundled market history |
| ``EOPT_UPSERT_BATCH_ROWS`` | ``8760`` | rows per upsert transaction in history loads (a year of hours) |
| ``EOPT_LOG_LEVEL`` | ``INFO`` | log level of the CLI |
| ``EOPT_REQUIRE_SERVICES`` | ``0`` | ``1``: tests fail instead of skipping when PostgreSQL/Redis are absent |
| ``EOPT_INGESTION_SOURCES`` | ``flatpeak,nrel,openei,iea,entsoe`` | pricing APIs the ingestion calls |
| ``EOPT_PRICE_INGESTION_MIN_RECORDS`` | ``24`` | fewest valid rows a cycle must bring (Airflow variable ``price_ingestion_min_records``) |
| ``EOPT_PRICING_SANDBOX_URL`` | unset | point every provider at the local sandbox (``eopt sandbox``) with its credentials |
| ``EOPT_<PROVIDER>_URL`` | the provider's real host | base URL of one provider (``FLATPEAK``, ``NREL``, ``OPENEI``, ``IEA``, ``ENTSOE``) |
| ``EOPT_FLATPEAK_ACCOUNT_ID``, ``EOPT_FLATPEAK_API_KEY`` | unset | Flatpeak credentials (secret) |
| ``EOPT_NREL_API_KEY`` | unset | NREL/NLR key, also used for OpenEI (secret) |
| ``EOPT_ENTSOE_TOKEN`` | unset | ENTSO-E security token (secret) |
| ``EOPT_AIRFLOW_TASK_RETRIES`` | ``1`` | retries of a failed DAG task (the HTTP clients retry on their own first) |
| ``EOPT_AIRFLOW_RETRY_DELAY_S`` | ``30`` | wait before a task retry |
| ``EOPT_TRAINING_BUDGET`` | ``default`` | tuning budget of a retraining: ``smoke``, ``default`` (under 10 min per region on 2 cores) or ``thorough`` |
| ``EOPT_TUNING_TRIALS`` | the budget's | trials per model, overriding the budget |
| ``EOPT_TUNING_TIMEOUT_S`` | the budget's | tuning seconds per model, overriding the budget |
| ``EOPT_TRAINING_WINDOW_DAYS`` | ``730`` | days of history a retraining reads (two years) |
| ``EOPT_VALIDATION_DAYS`` | ``56`` | days before the test window used for early stopping, tuning, ensemble weights and intervals |
| ``EOPT_TEST_DAYS`` | ``56`` | last days of the window, held out for the metrics and the promotion gate |
| ``EOPT_TRAINING_ORIGIN_STRIDE_H`` | ``7`` | hours between training forecast origins (prime to 24: every hour of day is an origin) |
| ``EOPT_TRAINING_MAX_GAP_H`` | ``24`` | a run of this many missing hours in the training window refuses the region |
| ``EOPT_TRAINING_MAX_STALENESS_H`` | ``48`` | newest price older than this (before the run's logical date) refuses a retraining |
| ``EOPT_OPTUNA_STORAGE`` | ``sqlite:///$EOPT_HOME/optuna.db`` | Optuna study storage; a PostgreSQL URL lets several workers share a study |
| ``EOPT_TRAINING_DEVICE`` | ``auto`` | CNN-LSTM device: ``auto`` (CUDA when available), ``cpu`` or ``cuda`` |
| ``EOPT_TRAINING_THREADS`` | ``0`` (all cores) | CPU threads of one fit; on a worker that runs N training tasks at once (``ml_training_pool``), cores / N avoids OpenMP oversubscription |
| ``EOPT_RANDOM_SEED`` | ``42`` | seed of samplers, models and data order |
| ``EOPT_INTERVAL_COVERAGE`` | ``0.9`` | nominal coverage of the forecast intervals |
| ``EOPT_MLFLOW_ARTIFACT_ROOT`` | ``$EOPT_HOME/mlartifacts`` | artifact folder of experiments the product creates on a database tracking store (an MLflow server manages its own) |
| ``MLFLOW_RUN_ID`` | set by ``mlflow run`` | a retraining started by ``mlflow run`` nests its runs under that run |
| ``EOPT_MLFLOW_EXPERIMENT`` | ``electricity-price-forecasting`` | MLflow experiment of retraining runs |
| ``EOPT_MODEL_MAPE_THRESHOLD`` | ``10`` | promotion gate: a candidate's guarded MAPE (%) must be below this (Airflow variable ``model_mape_threshold``) |
| ``EOPT_MODEL_MAPE_THRESHOLDS`` | ``PJM=20,BE=25,FR=25`` | per-region overrides of the MAPE threshold (no model reaches 10% on PJM, BE or FR) |
| ``EOPT_PROMOTION_MIN_IMPROVEMENT`` | ``0`` | promotion gate: relative MAE margin a candidate needs over the champion (0.02 = 2% better) |
| ``EOPT_QUALITY_WINDOW_DAYS`` | ``7`` | days before the data-quality run that its checks and the drift report's current window cover |
| ``EOPT_QUALITY_MAX_GAP_H`` | ``1`` | completeness: the longest run of missing hours per region and source that is still ok |
| ``EOPT_QUALITY_MISSING_CRITICAL_SHARE`` | ``0.1`` | completeness: a share of missing hours in the window from which a gap is critical, not a warning |
| ``EOPT_PRICE_OUTLIER_Z`` | ``15`` | price range: robust z-score (distance from the median of the 4 weeks before, in scaled MADs) from which an hour is an outlier (15 warns in 2-6% of the bundled history's weeks; a week at 3x is critical) |
| ``EOPT_FRESHNESS_WARN_H`` | ``2`` | freshness: the newest price older than this (hours before the run) is a warning |
| ``EOPT_FRESHNESS_CRITICAL_H`` | ``24`` | freshness: ... and older than this is critical |
| ``EOPT_API_ERROR_RATE_WARN`` | ``0.05`` | API health: a provider's share of failed calls (last 24 h) from which it is a warning |
| ``EOPT_API_ERROR_RATE_CRITICAL`` | ``0.5`` | API health: ... and from which it is critical |
| ``EOPT_API_LATENCY_P95_WARN_MS`` | ``5000`` | API health: a provider's 95th-percentile latency from which it is a warning |
| ``EOPT_ACCURACY_MAPE_CRITICAL`` | ``15`` | model accuracy: realized guarded MAPE (%) above this, or above the region's promotion threshold when that is higher, is critical |
| ``EOPT_ACCURACY_RMAE_FACTOR`` | ``1.5`` | model accuracy: realized rMAE above this factor times the champion's rMAE at promotion is critical (rMAE >= 1, no better than the seasonal naive, is a warning) |
| ``EOPT_DRIFT_COLUMN_THRESHOLD`` | ``0.75`` | drift: normed Wasserstein distance from which a column counts as drifted (``make bench-drift``: 0.75 makes 2.1% of the bundled history's 828 weeks critical; Evidently's default 0.1 flags 99.9%) |
| ``EOPT_DRIFT_SHARE_THRESHOLD`` | ``0.5`` | drift: share of drifted columns from which a region's drift is critical |
| ``EOPT_RETRAIN_ON_DRIFT`` | ``0`` | ``1``: critical drift triggers ``model_retraining`` for the drifted regions (Airflow variable ``retrain_on_drift``) |
| ``EOPT_QUALITY_EXPERIMENT`` | ``data-quality`` | MLflow experiment of the data-quality runs (drift reports and the quality report) |
| ``EOPT_ENABLE_SLACK_ALERTS`` | ``0`` | send data-quality and DAG-failure alerts to Slack (connection ``slack_data_quality``; Airflow variable ``enable_slack_alerts``) |
| ``EOPT_ALERT_EMAIL_TO`` | unset | comma-separated addresses for critical alerts by email (SMTP connection ``smtp_default``); unset: no email |
| ``EOPT_ALERT_EMAIL_FROM`` | ``electricity-optimizer@localhost`` | sender of alert emails |
| ``EOPT_METRICS_HOST``, ``EOPT_METRICS_PORT`` | ``127.0.0.1``, ``9108`` | where ``eopt metrics serve`` exposes the Prometheus metrics |
| ``EOPT_AIRFLOW_HOME`` | ``$EOPT_HOME/airflow`` | the Airflow home ``eopt airflow-init`` and ``make demo`` bootstrap (SQLite metadata; an operator's own ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` wins) |
| ``EOPT_AIRFLOW_DEADLINE_ALERTS`` | ``1`` | attach the DAGs' deadline alerts; ``0`` for local ``airflow dags test`` runs, which crash after a successful run of a DAG with a deadline in Airflow 3.3.2 (apache/airflow#73428) |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

KNOWN_REGIONS = ("NP", "PJM", "BE", "FR")
PRICING_SOURCES = ("flatpeak", "nrel", "openei", "iea", "entsoe")
SECRET_VARIABLES = {
    "flatpeak": ("EOPT_FLATPEAK_ACCOUNT_ID", "EOPT_FLATPEAK_API_KEY"),
    "nrel": (None, "EOPT_NREL_API_KEY"),
    "openei": (None, "EOPT_NREL_API_KEY"),
    "iea": (None, None),
    "entsoe": (None, "EOPT_ENTSOE_TOKEN"),
}


# Per-region MAPE thresholds of the promotion gate (percent): 10% suits Nord Pool, but spiky
# markets with hours near zero do not reach it (tuned retrainings measured 11% PJM, 14% BE/FR).
DEFAULT_MAPE_THRESHOLDS = {"PJM": 20.0, "BE": 25.0, "FR": 25.0}


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number; set it to e.g. {default}") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be positive; set it to e.g. {default}")
    return value


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    if env.get(name) == "0":
        return 0
    return _positive_int(env, name, default)


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float | None = None) -> float:
    """A number in ``[low, high)`` (``high`` open; None: no upper bound), or the default when unset."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; set it to e.g. {default}") from None
    if not value >= low or (high is not None and not value < high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SettingsError(f"{name}={raw!r} must be {bound}, e.g. {default}")
    return value


def parse_thresholds(raw: str, what: str) -> dict[str, float]:
    """``PJM=20,BE=25`` into ``{"PJM": 20.0, "BE": 25.0}``; refuses unknown regions and non-numbers."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        region, _, value = part.partition("=")
        region = region.strip().upper()
        if region not in KNOWN_REGIONS:
            raise SettingsError(f"{what}: unknown region {region!r} in {part!r}; known: {', '.join(KNOWN_REGIONS)}")
        try:
            out[region] = float(value)
        except ValueError:
            raise SettingsError(f"{what}: {part!r} is not REGION=PERCENT, e.g. PJM=20") from None
    return out


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={raw!r} is not a switch; use 1 or 0")


def _choices(env: Mapping[str, str], name: str, known: tuple[str, ...], what: str, normalize) -> tuple[str, ...]:
    """A comma-separated list of known names (``known`` when unset); an unknown name is refused."""
    raw = env.get(name, "")
    if not raw.strip():
        return known
    chosen = tuple(normalize(part.strip()) for part in raw.split(",") if part.strip())
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise SettingsError(
            f"{name} names unknown {what}(s) {', '.join(unknown)}; known {what}s are {', '.join(known)}"
        )
    return chosen


def _device(raw: str) -> str:
    device = raw.strip().lower()
    if device not in ("auto", "cpu", "cuda"):
        raise SettingsError(f"EOPT_TRAINING_DEVICE={raw!r} is not a device; use auto, cpu or cuda")
    return device


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str = field(repr=False)  # may hold a password
    mlflow_tracking_uri: str
    mlflow_registry_uri: str
    redis_url: str | None = field(repr=False)
    cache_ttl_prices_s: int
    cache_ttl_forecasts_s: int
    regions: tuple[str, ...]
    market_data_dir: Path
    upsert_batch_rows: int
    log_level: str
    require_services: bool
    ingestion_sources: tuple[str, ...] = PRICING_SOURCES
    price_ingestion_min_records: int = 24
    pricing_sandbox_url: str | None = None
    provider_urls: Mapping[str, str] = field(default_factory=dict)  # only the ones set
    provider_logins: Mapping[str, str] = field(default_factory=dict, repr=False)
    provider_keys: Mapping[str, str] = field(default_factory=dict, repr=False)  # secrets
    airflow_task_retries: int = 1
    airflow_retry_delay_s: int = 30
    airflow_deadline_alerts: bool = True
    training_budget: str = "default"
    tuning_trials: int | None = None
    tuning_timeout_s: int | None = None
    training_window_days: int = 730
    validation_days: int = 56
    test_days: int = 56
    training_origin_stride_h: int = 7
    training_max_gap_h: int = 24
    training_max_staleness_h: int = 48
    optuna_storage: str = field(default="", repr=False)  # may hold a password
    training_device: str = "auto"
    training_threads: int = 0
    random_seed: int = 42
    interval_coverage: float = 0.9
    mlflow_experiment: str = "electricity-price-forecasting"
    mlflow_artifact_root: Path | None = None
    model_mape_threshold: float = 10.0
    model_mape_thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MAPE_THRESHOLDS))
    promotion_min_improvement: float = 0.0
    mlflow_run_id: str | None = None
    quality_window_days: int = 7
    quality_max_gap_h: int = 1
    quality_missing_critical_share: float = 0.1
    price_outlier_z: float = 15.0
    freshness_warn_h: float = 2.0
    freshness_critical_h: float = 24.0
    api_error_rate_warn: float = 0.05
    api_error_rate_critical: float = 0.5
    api_latency_p95_warn_ms: float = 5000.0
    accuracy_mape_critical: float = 15.0
    accuracy_rmae_factor: float = 1.5
    drift_share_threshold: float = 0.5
    drift_column_threshold: float = 0.75
    retrain_on_drift: bool = False
    quality_experiment: str = "data-quality"
    enable_slack_alerts: bool = False
    alert_email_to: tuple[str, ...] = ()
    alert_email_from: str = "electricity-optimizer@localhost"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    airflow_home: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("EOPT_HOME") or PROJECT_ROOT / ".eopt").expanduser().resolve()
        tracking = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        return cls(
            home=home,
            database_url=env.get("EOPT_DATABASE_URL") or f"sqlite:///{home / 'prices.db'}",
            mlflow_tracking_uri=tracking,
            mlflow_registry_uri=env.get("MLFLOW_REGISTRY_URI") or tracking,
            redis_url=env.get("REDIS_URL") or None,
            cache_ttl_prices_s=_positive_int(env, "EOPT_CACHE_TTL_PRICES_S", 1800),
            cache_ttl_forecasts_s=_positive_int(env, "EOPT_CACHE_TTL_FORECASTS_S", 7200),
            regions=_choices(env, "EOPT_REGIONS", KNOWN_REGIONS, "region", str.upper),
            market_data_dir=Path(env.get("EOPT_MARKET_DATA_DIR") or PROJECT_ROOT / "data" / "markets"),
            upsert_batch_rows=_positive_int(env, "EOPT_UPSERT_BATCH_ROWS", 8760),
            log_level=(env.get("EOPT_LOG_LEVEL") or "INFO").upper(),
            require_services=_flag(env, "EOPT_REQUIRE_SERVICES"),
            ingestion_sources=_choices(env, "EOPT_INGESTION_SOURCES", PRICING_SOURCES, "source", str.lower),
            price_ingestion_min_records=_positive_int(env, "EOPT_PRICE_INGESTION_MIN_RECORDS", 24),
            pricing_sandbox_url=(env.get("EOPT_PRICING_SANDBOX_URL") or "").rstrip("/") or None,
            provider_urls={s: env[f"EOPT_{s.upper()}_URL"] for s in PRICING_SOURCES if env.get(f"EOPT_{s.upper()}_URL")},
            provider_logins={s: env[login] for s, (login, _) in SECRET_VARIABLES.items() if login and env.get(login)},
            airflow_task_retries=_non_negative_int(env, "EOPT_AIRFLOW_TASK_RETRIES", 1),
            airflow_retry_delay_s=_positive_int(env, "EOPT_AIRFLOW_RETRY_DELAY_S", 30),
            airflow_deadline_alerts=_flag(env, "EOPT_AIRFLOW_DEADLINE_ALERTS", default=True),
            training_budget=(env.get("EOPT_TRAINING_BUDGET") or "default").lower(),
            tuning_trials=_positive_int(env, "EOPT_TUNING_TRIALS", 0) if env.get("EOPT_TUNING_TRIALS") else None,
            tuning_timeout_s=_positive_int(env, "EOPT_TUNING_TIMEOUT_S", 0) if env.get("EOPT_TUNING_TIMEOUT_S") else None,
            training_window_days=_positive_int(env, "EOPT_TRAINING_WINDOW_DAYS", 730),
            validation_days=_positive_int(env, "EOPT_VALIDATION_DAYS", 56),
            test_days=_positive_int(env, "EOPT_TEST_DAYS", 56),
            training_origin_stride_h=_positive_int(env, "EOPT_TRAINING_ORIGIN_STRIDE_H", 7),
            training_max_gap_h=_positive_int(env, "EOPT_TRAINING_MAX_GAP_H", 24),
            training_max_staleness_h=_positive_int(env, "EOPT_TRAINING_MAX_STALENESS_H", 48),
            optuna_storage=env.get("EOPT_OPTUNA_STORAGE") or f"sqlite:///{home / 'optuna.db'}",
            training_device=_device(env.get("EOPT_TRAINING_DEVICE") or "auto"),
            training_threads=_non_negative_int(env, "EOPT_TRAINING_THREADS", 0) if env.get("EOPT_TRAINING_THREADS") else 0,
            random_seed=_non_negative_int(env, "EOPT_RANDOM_SEED", 42),
            interval_coverage=_float(env, "EOPT_INTERVAL_COVERAGE", 0.9, low=0.5, high=1.0),
            mlflow_experiment=env.get("EOPT_MLFLOW_EXPERIMENT") or "electricity-price-forecasting",
            mlflow_artifact_root=Path(env.get("EOPT_MLFLOW_ARTIFACT_ROOT") or home / "mlartifacts").expanduser().resolve(),
            mlflow_run_id=env.get("MLFLOW_RUN_ID") or None,
            model_mape_threshold=_float(env, "EOPT_MODEL_MAPE_THRESHOLD", 10.0, low=0.0),
            model_mape_thresholds=(parse_thresholds(env["EOPT_MODEL_MAPE_THRESHOLDS"], "EOPT_MODEL_MAPE_THRESHOLDS")
                                   if env.get("EOPT_MODEL_MAPE_THRESHOLDS") is not None else dict(DEFAULT_MAPE_THRESHOLDS)),
            promotion_min_improvement=_float(env, "EOPT_PROMOTION_MIN_IMPROVEMENT", 0.0, low=0.0, high=1.0),
            quality_window_days=_positive_int(env, "EOPT_QUALITY_WINDOW_DAYS", 7),
            quality_max_gap_h=_positive_int(env, "EOPT_QUALITY_MAX_GAP_H", 1),
            quality_missing_critical_share=_float(env, "EOPT_QUALITY_MISSING_CRITICAL_SHARE", 0.1, low=0.0, high=1.0),
            price_outlier_z=_float(env, "EOPT_PRICE_OUTLIER_Z", 15.0, low=1.0),
            freshness_warn_h=_float(env, "EOPT_FRESHNESS_WARN_H", 2.0, low=0.0),
            freshness_critical_h=_float(env, "EOPT_FRESHNESS_CRITICAL_H", 24.0, low=0.0),
            api_error_rate_warn=_float(env, "EOPT_API_ERROR_RATE_WARN", 0.05, low=0.0, high=1.0),
            api_error_rate_critical=_float(env, "EOPT_API_ERROR_RATE_CRITICAL", 0.5, low=0.0, high=1.0),
            api_latency_p95_warn_ms=_float(env, "EOPT_API_LATENCY_P95_WARN_MS", 5000.0, low=0.0),
            accuracy_mape_critical=_float(env, "EOPT_ACCURACY_MAPE_CRITICAL", 15.0, low=0.0),
            accuracy_rmae_factor=_float(env, "EOPT_ACCURACY_RMAE_FACTOR", 1.5, low=1.0),
            drift_share_threshold=_float(env, "EOPT_DRIFT_SHARE_THRESHOLD", 0.5, low=0.0, high=1.0),
            drift_column_threshold=_float(env, "EOPT_DRIFT_COLUMN_THRESHOLD", 0.75, low=0.0),
            retrain_on_drift=_flag(env, "EOPT_RETRAIN_ON_DRIFT"),
            quality_experiment=env.get("EOPT_QUALITY_EXPERIMENT") or "data-quality",
            enable_slack_alerts=_flag(env, "EOPT_ENABLE_SLACK_ALERTS"),
            alert_email_to=tuple(a.strip() for a in (env.get("EOPT_ALERT_EMAIL_TO") or "").split(",") if a.strip()),
            alert_email_from=env.get("EOPT_ALERT_EMAIL_FROM") or "electricity-optimizer@localhost",
            metrics_host=env.get("EOPT_METRICS_HOST") or "127.0.0.1",
            metrics_port=_positive_int(env, "EOPT_METRICS_PORT", 9108),
            airflow_home=Path(env.get("EOPT_AIRFLOW_HOME") or home / "airflow").expanduser().resolve(),
            provider_keys={s: env[key] for s, (_, key) in SECRET_VARIABLES.items() if key and env.get(key)},
        )

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some values replaced (how Airflow connections and variables apply)."""
        return replace(self, **changes)

    @property
    def airflow_home_dir(self) -> Path:
        """The Airflow home: the configured one, else ``<home>/airflow`` (when built without it)."""
        return self.airflow_home or self.home / "airflow"

    @property
    def raw_payload_dir(self) -> Path:
        """Where unparseable provider payloads are archived, referenced from the quarantine."""
        return self.home / "raw"

    @property
    def quality_dir(self) -> Path:
        """Where data-quality runs write their report and drift reports (also logged to MLflow)."""
        return self.home / "quality"

    @property
    def retraining_dir(self) -> Path:
        """Where a retraining's tasks hand frames and fitted members to each other (files, not XCom)."""
        return self.home / "retraining"

    def export_mlflow_environment(self) -> None:
        """Tell MLflow, which reads its own variables, not to pip-resolve a model's requirements
        when logging it: the product's environment is its lock file, and a build machine may
        have no package index to ask (an operator's own value is kept)."""
        os.environ.setdefault("MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK", "true")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in task logs
        # MLflow retries a tracking server 7 times with backoff (minutes) by default: a registry
        # that is down should fail a task in seconds, with its error, instead
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")

    def airflow_environment(self, **extra: str) -> dict[str, str]:
        """The environment of an ``airflow`` command on this product's Airflow home: the project's
        dags folder, no examples, SQLite metadata in the home unless the operator configured a
        database, and this process's settings (``EOPT_*``) passed on."""
        home = self.airflow_home_dir
        env = dict(os.environ)
        env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
                   AIRFLOW__CORE__LOAD_EXAMPLES="False", EOPT_HOME=str(self.home))
        env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
        # `airflow dags ...` warns on stdout, in the middle of `-o json`, that graph rendering needs graphviz
        env.setdefault("PYTHONWARNINGS", "ignore:Could not import graphviz:UserWarning")
        env.update(extra)
        return env

    def mape_threshold(self, region: str) -> float:
        """The promotion gate's MAPE threshold (%) for a region: its override, else the default."""
        return float(self.model_mape_thresholds.get(region, self.model_mape_threshold))

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


def child_environment(path_first: Path | None = None, **settings: str) -> dict[str, str]:
    """The environment for a child process of the product with its own settings: this process's
    environment without any ``EOPT_*``/``MLFLOW_*`` value, plus ``settings``, with ``path_first``
    (e.g. the virtualenv's bin) ahead on ``PATH`` (benchmarks use it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOPT_", "MLFLOW_"))}
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    env.update(settings)
    return env
