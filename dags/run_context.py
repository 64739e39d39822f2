"""What a task of the product's DAGs reads from its run: the run's time, its folder, conf, the stores.

One definition each, shared by the four DAGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import get_current_context
from pricing_api_hook import task_settings


def run_time():
    """The run's data interval end (or logical date, or when it was asked to run), in UTC."""
    from core.timestamps import utc

    context = get_current_context()
    return utc(context.get("data_interval_end") or context.get("logical_date") or context["dag_run"].run_after)


def run_hour():
    """``run_time`` floored to the hour: reruns of a run see the same hour."""
    return run_time().floor("h")


def run_conf() -> dict[str, Any]:
    """The run's ``conf`` (``airflow dags trigger --conf``), empty when none was given."""
    return get_current_context()["dag_run"].conf or {}


def run_folder(base: Path) -> Path:
    """``base/<run id>``: where a run's tasks hand files on."""
    from core import runs

    return runs.run_folder(base, get_current_context()["run_id"])


def price_store():
    from storage.database import create_store_engine
    from storage.prices import PriceStore

    return PriceStore(create_store_engine(task_settings().stores.database_url))


def price_cache():
    from storage.cache import PriceCache

    return PriceCache.from_settings(task_settings())


def registry_client():
    from training.tracking import configure

    return configure(task_settings())
