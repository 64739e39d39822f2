"""Which pricing APIs exist, how each is configured from settings, and how a client is built.

Outside Airflow a provider's configuration comes from the settings object (its real host and
the region catalogue's identifiers of the configured regions unless ``EOPT_<PROVIDER>_URL`` or ``EOPT_PRICING_SANDBOX_URL`` say otherwise).
Inside Airflow, ``dags/pricing_api_hook.PricingAPIHook`` overlays the provider's connection.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

from core.settings import PRICING_SOURCES, Settings
from ingestion.http import ApiCall, HttpTransport, ProviderConfig, RetryPolicy
from ingestion.sandbox.credentials import DEFAULT_CREDENTIALS

if TYPE_CHECKING:  # the clients import pandas; a DAG file parsed every 30 s reads this module, not them
    from ingestion.sources import PriceClient

# The DAG's fetch tasks and the sources each one calls (NREL's key also serves OpenEI).
FETCH_TASKS: dict[str, tuple[str, ...]] = {
    "flatpeak": ("flatpeak",),
    "nrel": ("nrel", "openei"),
    "iea": ("iea",),
    "entsoe": ("entsoe",),
}


def source_module(source: str) -> ModuleType:
    if source not in PRICING_SOURCES:
        raise ValueError(f"unknown pricing source {source!r}; known: {', '.join(PRICING_SOURCES)}")
    return importlib.import_module(f"ingestion.sources.{source}")


def sandbox_credentials(source: str) -> tuple[str | None, str | None]:
    """(login, key) the sandbox accepts for a provider."""
    creds = DEFAULT_CREDENTIALS[source]
    login = creds.get("account_id")
    key = creds.get("api_key") or creds.get("token")
    return login, key


def retry_policy(settings: Settings) -> RetryPolicy:
    """The providers' HTTP budgets from the settings (``EOPT_PROVIDER_*``)."""
    budgets = settings.providers
    return RetryPolicy(
        max_attempts=budgets.max_attempts,
        max_retry_after_s=budgets.max_retry_after_s,
        connect_timeout_s=budgets.connect_timeout_s,
        read_timeout_s=budgets.read_timeout_s,
        request_timeout_s=budgets.request_timeout_s,
        provider_budget_s=budgets.budget_s,
        max_body_bytes=budgets.max_body_bytes,
        max_decoded_bytes=budgets.max_decoded_bytes,
    )


def provider_config(source: str, settings: Settings, **overrides: Any) -> ProviderConfig:
    module = source_module(source)
    base_url = module.DEFAULT_BASE_URL
    login = settings.providers.logins.get(source)
    key = settings.providers.api_keys.get(source)
    if settings.providers.sandbox_url:
        base_url = f"{settings.providers.sandbox_url}/{source}"
        sandbox_login, sandbox_key = sandbox_credentials(source)
        login, key = login or sandbox_login, key or sandbox_key
    base_url = settings.providers.urls.get(source, base_url)
    # the region catalogue says which regions a provider prices and by which identifier
    regions = settings.catalogue.provider_ids(source, settings.regions)
    config = ProviderConfig(
        source=source,
        base_url=base_url,
        connection_id=module.CONNECTION_ID,
        api_key=key,
        login=login,
        regions=regions,
        timezones={code: settings.catalogue.get(code).zone for code in regions},
        requests_per_minute=float(module.REQUESTS_PER_MINUTE),
        retry=retry_policy(settings),
    )
    return replace(config, **overrides) if overrides else config


def build_client(
    config: ProviderConfig,
    settings: Settings,
    record: Callable[[ApiCall], object] | None = None,
    **transport_kwargs: Any,
) -> PriceClient:
    transport = HttpTransport(config, archive_dir=settings.raw_payload_dir, record=record, **transport_kwargs)
    return source_module(config.source).Client(config, transport)
