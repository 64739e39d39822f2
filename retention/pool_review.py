"""The monthly pool review: how each Airflow pool was used, read from the Airflow metadata database.

Plain SQL over Airflow's own tables (``slot_pool``, ``task_instance``), so the review needs the
database's URL, not Airflow. A task instance counts when it started in ``[since, until)``. In
Airflow a task waits for a pool slot in ``scheduled`` and holds its slots from ``queued`` until it
ends, so per pool:

| column | meaning |
|---|---|
| ``slots`` | the pool's size (``slot_pool``; -1 is unlimited) |
| ``tasks`` | task instances that started in the window |
| ``slot_wait_*_s`` | total, median and p95 of ``queued_dttm - scheduled_dttm``: the wait for a slot |
| ``start_wait_*_s`` | total, median and p95 of ``start_date - scheduled_dttm`` (``queued_dttm`` when unscheduled): scheduled plus queued |
| ``peak_slots_used`` | the most slots held at once: the overlap of ``[queued_dttm (or start), end)``, each weighted by its ``pool_slots`` |
| ``peak_slots_wanted`` | the same over ``[scheduled_dttm (or queued, or start), end)``: slots held plus slots waited for |
| ``suggested_slots`` | ``SUGGESTION_RULE`` |

A task still running ends at ``until``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

SUGGESTION_RULE = (
    "suggested slots = the peak of slots wanted at once (held plus waited for), at least 1: the smallest "
    "size at which no task in the window would have waited in scheduled for this pool"
)
TABLE_COLUMNS = (
    "pool",
    "slots",
    "tasks",
    "slot_wait_total_s",
    "slot_wait_median_s",
    "slot_wait_p95_s",
    "start_wait_total_s",
    "start_wait_median_s",
    "start_wait_p95_s",
    "peak_slots_used",
    "peak_slots_wanted",
    "suggested_slots",
)
INSTANCE_COLUMNS = ("pool", "pool_slots", "state", "scheduled_dttm", "queued_dttm", "start_date", "end_date")


class PoolReviewError(RuntimeError):
    """The metadata database cannot be read for the review."""


def read_pools(engine: sa.Engine) -> pd.DataFrame:
    """``pool``, ``slots`` of every pool in ``slot_pool``."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT pool, slots FROM slot_pool ORDER BY pool")).all()
    return pd.DataFrame(rows, columns=["pool", "slots"])


def read_task_instances(engine: sa.Engine, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
    """The task instances that started in ``[since, until)``, their times in UTC."""
    query = sa.text(
        "SELECT pool, pool_slots, state, scheduled_dttm, queued_dttm, start_date, end_date FROM task_instance "
        "WHERE start_date >= :since AND start_date < :until"
    )
    # Airflow stores naive UTC on SQLite and MySQL, timestamptz on PostgreSQL: compare in UTC either way
    bounds = {
        "since": since.tz_convert("UTC").tz_localize(None).to_pydatetime(),
        "until": until.tz_convert("UTC").tz_localize(None).to_pydatetime(),
    }
    if engine.dialect.name == "postgresql":
        bounds = {"since": since.to_pydatetime(), "until": until.to_pydatetime()}
    with engine.connect() as conn:
        rows = conn.execute(query, bounds).all()
    frame = pd.DataFrame(rows, columns=list(INSTANCE_COLUMNS))
    for column in ("scheduled_dttm", "queued_dttm", "start_date", "end_date"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="mixed")
    frame["pool_slots"] = frame["pool_slots"].astype("int64")
    return frame


def peak_overlap(starts: Iterable[pd.Timestamp], ends: Iterable[pd.Timestamp], weights: Iterable[int]) -> int:
    """The largest sum of ``weights`` over intervals ``[start, end)`` that overlap at one instant
    (an interval ending when another starts does not overlap it)."""
    events = []
    for start, end, weight in zip(starts, ends, weights, strict=True):
        if end > start:
            events.append((start, 0, weight))  # at equal times an end (-1) sorts before a start (0)
            events.append((end, -1, -weight))
    events.sort(key=lambda event: (event[0], event[1]))
    peak = current = 0
    for _, _, change in events:
        current += change
        peak = max(peak, current)
    return peak


def _seconds(delta: pd.Series) -> np.ndarray:
    values = delta.dt.total_seconds().to_numpy(float)
    return np.clip(values[np.isfinite(values)], 0, None)


def _stats(values: np.ndarray) -> tuple[float, float, float]:
    if values.size == 0:
        return 0.0, math.nan, math.nan
    return float(values.sum()), float(np.median(values)), float(np.percentile(values, 95))


def review_pools(pools: pd.DataFrame, instances: pd.DataFrame, until: pd.Timestamp) -> pd.DataFrame:
    """One row per pool (every pool in ``pools``, and any pool only the task instances name)."""
    names = list(dict.fromkeys([*pools["pool"], *sorted(instances["pool"].unique())]))
    sizes = dict(zip(pools["pool"], pools["slots"], strict=True))
    rows = []
    for name in names:
        tasks = instances[instances["pool"] == name]
        end = tasks["end_date"].fillna(until)
        held_from = tasks["queued_dttm"].fillna(tasks["start_date"])
        wanted_from = tasks["scheduled_dttm"].fillna(held_from)
        slot_wait = _stats(_seconds(tasks["queued_dttm"] - tasks["scheduled_dttm"]))
        start_wait = _stats(_seconds(tasks["start_date"] - tasks["scheduled_dttm"].fillna(tasks["queued_dttm"])))
        used = peak_overlap(held_from, end, tasks["pool_slots"])
        wanted = peak_overlap(wanted_from, end, tasks["pool_slots"])
        size = sizes.get(name)
        rows.append(
            {
                "pool": name,
                "slots": None if size is None else int(size),
                "tasks": len(tasks),
                "slot_wait_total_s": slot_wait[0],
                "slot_wait_median_s": slot_wait[1],
                "slot_wait_p95_s": slot_wait[2],
                "start_wait_total_s": start_wait[0],
                "start_wait_median_s": start_wait[1],
                "start_wait_p95_s": start_wait[2],
                "peak_slots_used": used,
                "peak_slots_wanted": wanted,
                "suggested_slots": max(1, wanted),
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def review_metadata(url: str, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
    """``review_pools`` of the metadata database at ``url`` for ``[since, until)``."""
    engine = sa.create_engine(url)
    try:
        return review_pools(read_pools(engine), read_task_instances(engine, since, until), until)
    except sa.exc.SQLAlchemyError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PoolReviewError(
            f"cannot read the pools and task instances of the Airflow metadata database "
            f"{sa.make_url(url).render_as_string(hide_password=True)}: {first}; check "
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN (or run `eopt airflow-init`)"
        ) from exc
    finally:
        engine.dispose()


def pool_plot(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Per pool, its slots, the peak used, the peak wanted and the suggestion as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(table) + 2), 4), dpi=110)
    x = np.arange(len(table))
    bars = (("slots", "slots"), ("peak_slots_used", "peak used"), ("peak_slots_wanted", "peak wanted"))
    for offset, (column, label) in enumerate(bars):
        values = pd.to_numeric(table[column], errors="coerce").fillna(0).clip(lower=0)
        ax.bar(x + (offset - 1) * 0.27, values, width=0.27, label=label)
    ax.scatter(x, table["suggested_slots"], color="black", marker="D", zorder=3, label="suggested")
    ax.set_xticks(x, table["pool"], rotation=20)
    ax.set_ylabel("slots")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
