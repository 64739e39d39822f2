"""What a task of the product's DAGs reads from its run: the run's hour, its folder, the stores."""

from __future__ import annotations

import re
from pathlib import Path

from airflow.sdk import get_current_context

from pricing_api_hook import task_settings


def run_hour():
    """The run's data interval end (or logical date) floored to the hour, UTC: reruns see the same hour."""
    import pandas as pd

    context = get_current_context()
    when = context.get("data_interval_end") or context.get("logical_date") or context["dag_run"].run_after
    return pd.Timestamp(when).tz_convert("UTC").floor("h")


def run_folder(base: Path) -> Path:
    """``base/<run id>``, the run id made safe for a file name: where a run's tasks hand files on."""
    return base / re.sub(r"[^A-Za-z0-9_.-]", "_", get_current_context()["run_id"])


def price_store():
    from storage.database import create_store_engine
    from storage.prices import PriceStore

    return PriceStore(create_store_engine(task_settings().stores.database_url))


def registry_client():
    from training.tracking import configure

    return configure(task_settings())
