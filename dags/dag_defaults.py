"""What the product's DAGs share: start date, catchup, one run at a time, retries, failure alerts, deadline alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference
from alert_channels import task_failure_alert

from core.settings import Settings

# ``map_index_template`` of a task mapped over regions (called with ``region=`` as a keyword):
# the grid and the task instance's ``rendered_map_index`` name the region instead of a number.
REGION_LABEL = "{{ task.op_kwargs['region'] }}"
# ... and of a task mapped over chunks of zones (``zones=`` a list): the zones, comma-separated
# (``NP,PJM``); past 200 characters (the metadata column holds 250) the first and last zone and
# how many (``AT..SK (40 zones)``).
ZONES_LABEL = (
    "{% set zones = task.op_kwargs['zones'] %}{% set names = zones | join(',') %}"
    "{{ names if names | length <= 200 else zones[0] ~ '..' ~ zones[-1] ~ ' (' ~ zones | length ~ ' zones)' }}"
)


def shared_dag_arguments(settings: Settings, *, deadline_minutes: int | None = None) -> dict[str, Any]:
    """Keyword arguments of ``@dag`` every product DAG takes.

    ``deadline_minutes``: the replacement of the old SLA, an alert when a run is unfinished that
    long after it was queued (attached only when ``EOPT_AIRFLOW_DEADLINE_ALERTS`` is on; see the
    README on apache/airflow#73428).
    """
    deadline = None
    if deadline_minutes is not None and settings.airflow.deadline_alerts:
        deadline = DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(minutes=deadline_minutes),
            callback=AsyncCallback("quality.alerts.deadline_missed"),
        )
    return {
        # Early enough for runs at the bundled history's logical dates (demo, tests, backfills);
        # catchup stays off, so a new deployment does not replay the past.
        "start_date": pendulum.datetime(2011, 1, 1, tz="UTC"),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {
            "owner": "electricity-optimizer",
            "retries": settings.airflow.task_retries,
            "retry_delay": timedelta(seconds=settings.airflow.retry_delay_s),
            # a task that failed after its retries reaches Slack/email by the same path as
            # data-quality alerts (quality.alerts, delivered by alert_channels)
            "on_failure_callback": [task_failure_alert],
        },
        "deadline": deadline,
    }
