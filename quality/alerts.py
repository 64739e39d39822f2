"""Alert callbacks the DAGs use; plain async/sync functions so the triggerer can import them."""

from __future__ import annotations

import logging

log = logging.getLogger("eopt.alerts")


async def deadline_missed(**context) -> None:
    """Deadline-alert callback (runs in the triggerer): the run took longer than its deadline."""
    dag_run = context.get("dag_run") or {}
    dag_id = getattr(dag_run, "dag_id", None) or context.get("dag_id") or "unknown DAG"
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id") or "unknown run"
    log.error("deadline missed: %s run %s is still not finished (deadline %s)", dag_id, run_id, context.get("deadline"))


def forecast_fallback(region: str, reason: str) -> None:
    """A region's forecast came from the seasonal-naive fallback, not its Production model."""
    log.error("forecast fallback: %s was forecast by the seasonal naive (is_fallback=true), not its Production "
              "model: %s", region, reason)
