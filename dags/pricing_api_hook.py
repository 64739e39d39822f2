"""Airflow's view of the product's configuration: connections and variables over the settings object.

``PricingAPIHook(source)`` turns a provider's connection (``flatpeak_default``, ``nrel_default``,
``iea_default``, ``entsoe_default``) into that provider's ``ProviderConfig``, so hosts,
credentials, regions, rate limits and backoff are configured where operators expect them:

| connection field | meaning |
|---|---|
| extra ``base_url`` (or schema/host/port) | the provider's base URL; default its real host |
| login / password | account id / API key or token (Flatpeak: account id + key; ENTSO-E: token in password) |
| extra ``regions`` | ``{"BE": "10YBE----------2", ...}``: region -> provider locator (default: the region catalogue's ids of `EOPT_REGIONS`) |
| extra ``requests_per_minute``, ``max_attempts``, ``backoff_base_s``, ``backoff_max_s``, ``connect_timeout_s``, ``read_timeout_s``, ``request_timeout_s``, ``provider_budget_s``, ``max_retry_after_s``, ``max_body_bytes``, ``max_decoded_bytes``, ``max_redirects`` | rate limit, retry policy and budgets (``ingestion.http.RetryPolicy``) |

When one connection serves two sources (``nrel_default`` carries the NREL/NLR key that OpenEI
also takes), extras prefixed with the source win: ``openei_base_url``, ``openei_regions``.

A provider without a connection uses the settings (``EOPT_*`` variables). ``task_settings()``
applies ``timescaledb_default`` and ``redis_default`` the same way, and the variables
``model_mape_threshold``, ``price_ingestion_min_records``, ``enable_slack_alerts`` and
``retrain_on_drift`` over their settings.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from airflow.exceptions import AirflowNotFoundException
from airflow.sdk import BaseHook, Variable

from core.settings import Settings
from ingestion.http import ProviderConfig
from ingestion.providers import provider_config, source_module

log = logging.getLogger(__name__)

RETRY_FIELDS = (
    "max_attempts",
    "backoff_base_s",
    "backoff_max_s",
    "connect_timeout_s",
    "read_timeout_s",
    "request_timeout_s",
    "provider_budget_s",
    "max_retry_after_s",
    "max_body_bytes",
    "max_decoded_bytes",
    "max_redirects",
)


def _connection(conn_id: str):
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def task_settings() -> Settings:
    """The settings object with the store and cache connections applied, for one task."""
    settings = Settings.from_env()
    changes: dict[str, Any] = {}
    store = _connection("timescaledb_default")
    if store is not None:
        uri = store.get_uri()
        changes["database_url"] = (
            uri.replace("postgres://", "postgresql://", 1) if uri.startswith("postgres://") else uri
        )
    cache = _connection("redis_default")
    if cache is not None:
        changes["redis_url"] = cache.get_uri()
    threshold = Variable.get("model_mape_threshold", default=None)
    if threshold is not None:
        changes.update(mape_threshold_overrides(str(threshold), settings))
    min_records = Variable.get("price_ingestion_min_records", default=None)
    if min_records is not None:
        changes["price_ingestion_min_records"] = int(min_records)
    for variable in ("enable_slack_alerts", "retrain_on_drift"):
        switch = Variable.get(variable, default=None)
        if switch is not None:
            changes[variable] = _switch(variable, switch)
    return settings.with_overrides(**changes) if changes else settings


def _switch(name: str, raw: object) -> bool:
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"Airflow variable {name}={raw!r} is not a switch; set it to true or false")


def mape_threshold_overrides(raw: str, settings: Settings) -> dict[str, Any]:
    """The ``model_mape_threshold`` variable: a number (every region) or JSON such as
    ``{"default": 10, "PJM": 20}`` (a default plus per-region overrides)."""
    import json

    value = json.loads(raw) if raw.strip().startswith("{") else float(raw)
    if isinstance(value, dict):
        regions = {k.upper(): float(v) for k, v in value.items() if k.lower() != "default"}
        default = float(value.get("default", settings.training.model_mape_threshold))
        return {
            "model_mape_threshold": default,
            "model_mape_thresholds": {**settings.training.model_mape_thresholds, **regions},
        }
    # a number is every region's threshold, the catalogue's per-region ones included
    return {
        "model_mape_threshold": float(value),
        "model_mape_thresholds": dict.fromkeys(settings.catalogue.codes, float(value)),
    }


class PricingAPIHook(BaseHook):
    conn_name_attr = "pricing_conn_id"
    hook_name = "Electricity Optimizer pricing API"

    def __init__(self, source: str, settings: Settings | None = None) -> None:
        super().__init__()
        self.source = source
        self.pricing_conn_id = source_module(source).CONNECTION_ID
        self.settings = settings or Settings.from_env()

    def get_config(self) -> ProviderConfig:
        config = provider_config(self.source, self.settings)
        conn = _connection(self.pricing_conn_id)
        if conn is None:
            log.info(
                "no Airflow connection %s: %s uses the settings (%s)",
                self.pricing_conn_id,
                self.source,
                config.base_url,
            )
            return config
        extra = conn.extra_dejson or {}
        own = self.pricing_conn_id == f"{self.source}_default"  # False for OpenEI on nrel_default

        def option(key: str, default: Any = None) -> Any:
            return extra.get(f"{self.source}_{key}", extra.get(key, default) if own else default)

        base_url = option("base_url")
        if not base_url and own and conn.host:
            scheme = conn.schema or "https"
            base_url = (
                conn.host if "://" in conn.host else f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
            )
        retry = config.retry
        retry_changes = {k: type(getattr(retry, k))(option(k)) for k in RETRY_FIELDS if option(k) is not None}
        if retry_changes:
            retry = replace(retry, **retry_changes)
        regions = option("regions")
        return replace(
            config,
            base_url=base_url or config.base_url,
            login=conn.login or config.login,
            api_key=conn.password or config.api_key,
            regions={r: v for r, v in regions.items() if r in self.settings.regions} if regions else config.regions,
            requests_per_minute=float(option("requests_per_minute", config.requests_per_minute)),
            retry=retry,
        )
