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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent

KNOWN_REGIONS = ("NP", "PJM", "BE", "FR")


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


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={raw!r} is not a switch; use 1 or 0")


def _regions(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("EOPT_REGIONS", "")
    if not raw.strip():
        return KNOWN_REGIONS
    regions = tuple(part.strip().upper() for part in raw.split(",") if part.strip())
    unknown = [r for r in regions if r not in KNOWN_REGIONS]
    if unknown:
        raise SettingsError(
            f"EOPT_REGIONS names unknown region(s) {', '.join(unknown)}; "
            f"known regions are {', '.join(KNOWN_REGIONS)}"
        )
    return regions


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    mlflow_tracking_uri: str
    mlflow_registry_uri: str
    redis_url: str | None
    cache_ttl_prices_s: int
    cache_ttl_forecasts_s: int
    regions: tuple[str, ...]
    market_data_dir: Path
    upsert_batch_rows: int
    log_level: str
    require_services: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
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
            regions=_regions(env),
            market_data_dir=Path(env.get("EOPT_MARKET_DATA_DIR") or PROJECT_ROOT / "data" / "markets"),
            upsert_batch_rows=_positive_int(env, "EOPT_UPSERT_BATCH_ROWS", 8760),
            log_level=(env.get("EOPT_LOG_LEVEL") or "INFO").upper(),
            require_services=_flag(env, "EOPT_REQUIRE_SERVICES"),
        )

    def with_overrides(self, **changes: object) -> "Settings":
        """A copy with some values replaced (how Airflow connections and variables apply)."""
        return replace(self, **changes)

    @property
    def raw_payload_dir(self) -> Path:
        """Where unparseable provider payloads are archived, referenced from the quarantine."""
        return self.home / "raw"

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
