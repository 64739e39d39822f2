"""What a task of the product's DAGs reads from its run: the run's time, regions, folder, conf, the stores.

One definition each, shared by the product's DAGs. A task builds its settings once
(``pricing_api_hook.task_settings()``) and hands them to what it opens here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import get_current_context

from core.settings import Settings


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


def run_regions(settings: Settings) -> list[str]:
    """The regions of this run: ``conf={"regions": [...]}``, or the configured ones."""
    return settings.chosen_regions(run_conf().get("regions"))


def run_folder(base: Path) -> Path:
    """``base/<run id>``: where a run's tasks hand files on."""
    from core import runs

    return runs.run_folder(base, get_current_context()["run_id"])


def price_store(settings: Settings):
    from storage.database import store_engine
    from storage.prices import PriceStore

    return PriceStore(store_engine(settings.stores))


def price_cache(settings: Settings):
    from storage.cache import PriceCache

    return PriceCache.from_settings(settings)


def registry_client(settings: Settings):
    from training.tracking import configure

    return configure(settings)
