"""The pool review against a real Airflow metadata database (``airflow db migrate``, the project's
pools imported), holding task instances whose waits and overlaps are known.

``pricing_api_pool`` (5 slots) in the review window:

| task | slots | scheduled | queued | started | ended |
|---|---|---|---|---|---|
| a | 1 | 10:00:00 | 10:00:00 | 10:00:05 | 10:10 |
| b | 2 | 10:00:00 | 10:01:00 | 10:01:02 | 10:05 |
| c | 2 | 10:00:00 | 10:05:00 | 10:05:10 | 10:20 |
| d | 1 | 10:09:00 | 10:09:00 | 10:09:03 | still running |
| e | 1 | (none) | 09:59:59 | 10:00:00 | 10:30 |

Waits for a slot (queued - scheduled): a 0, b 60, c 300, d 0 (e was never scheduled): total 360 s,
median 30 s, p95 of [0, 0, 60, 300] = 60 + 0.85 * 240 = 264 s. Slots held ([queued, end)): at
10:01:00 a + b + e = 4; at 10:05 b leaves as c comes (2 out, 2 in): a + c + e = 4; at 10:09 a, c, d, e = 5. Slots
wanted ([scheduled, end)): at 10:00 a + b + c + e = 6, at 10:09 a + c + d + e = 5: peak 6, the
suggestion. A task that started before the window and one in another pool are not counted here.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from core.settings import Settings
from pipelines.maintenance import POOL_REVIEW_DAYS, review_pools
from retention import pool_review
from tests.airflow_harness import AirflowHome
from training import tracking

AS_OF = pd.Timestamp("2026-12-01 12:00", tz="UTC")
DAY = "2026-12-01"


def _t(clock: str | None) -> datetime | None:
    return None if clock is None else pd.Timestamp(f"{DAY} {clock}").to_pydatetime()


TASKS = [
    # task, pool, slots, scheduled, queued, started, ended, state
    ("a", "pricing_api_pool", 1, "10:00:00", "10:00:00", "10:00:05", "10:10:00", "success"),
    ("b", "pricing_api_pool", 2, "10:00:00", "10:01:00", "10:01:02", "10:05:00", "success"),
    ("c", "pricing_api_pool", 2, "10:00:00", "10:05:00", "10:05:10", "10:20:00", "success"),
    ("d", "pricing_api_pool", 1, "10:09:00", "10:09:00", "10:09:03", None, "running"),
    ("e", "pricing_api_pool", 1, None, "09:59:59", "10:00:00", "10:30:00", "success"),
    ("f", "ml_training_pool", 1, "11:00:00", "11:00:00", "11:00:30", "11:30:00", "success"),
]


@pytest.fixture(scope="module")
def metadata(tmp_path_factory) -> str:
    """A migrated Airflow metadata database with a DAG run and the task instances of ``TASKS``
    (plus one that started before the review window), written through its own schema."""
    airflow = AirflowHome.create(tmp_path_factory.mktemp("airflow"))
    url = airflow.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    dag_run = sa.Table("dag_run", tables, autoload_with=engine)
    task_instance = sa.Table("task_instance", tables, autoload_with=engine)
    old = (AS_OF - pd.Timedelta(days=POOL_REVIEW_DAYS + 1)).tz_localize(None).to_pydatetime()
    rows = [*TASKS, ("old", "pricing_api_pool", 5, None, None, None, None, "success")]
    with engine.begin() as conn:
        conn.execute(
            dag_run.insert().values(
                dag_id="electricity_price_ingestion",
                run_id="scheduled__review",
                run_type="scheduled",
                state="success",
                run_after=_t("10:00:00"),
                logical_date=_t("10:00:00"),
            )
        )
        for task, pool, slots, scheduled, queued, started, ended, state in rows:
            conn.execute(
                task_instance.insert().values(
                    id=uuid.uuid4().hex,
                    task_id=task,
                    dag_id="electricity_price_ingestion",
                    run_id="scheduled__review",
                    map_index=-1,
                    try_number=1,
                    pool=pool,
                    pool_slots=slots,
                    state=state,
                    scheduled_dttm=_t(scheduled),
                    queued_dttm=_t(queued),
                    start_date=_t(started) if task != "old" else old,
                    end_date=_t(ended) if task != "old" else old + pd.Timedelta(hours=1),
                )
            )
    engine.dispose()
    return url


def test_peak_overlap__touching_intervals_do_not_overlap():
    t = pd.Timestamp("2026-12-01", tz="UTC")
    h = pd.Timedelta(hours=1)
    assert pool_review.peak_overlap([t, t + h], [t + h, t + 2 * h], [3, 4]) == 4
    assert pool_review.peak_overlap([t, t + h / 2], [t + h, t + 2 * h], [3, 4]) == 7
    assert pool_review.peak_overlap([], [], []) == 0


def test_review_metadata__waits_peaks_and_suggestion_from_the_metadata_database(metadata):
    table = pool_review.review_metadata(metadata, AS_OF - pd.Timedelta(days=POOL_REVIEW_DAYS), AS_OF)
    pools = table.set_index("pool")
    assert list(pools.index[:4]) == ["db_heavy_pool", "default_pool", "ml_training_pool", "pricing_api_pool"]
    api = pools.loc["pricing_api_pool"]
    assert (api["slots"], api["tasks"]) == (5, 5)
    assert (api["slot_wait_total_s"], api["slot_wait_median_s"]) == (360.0, 30.0)
    assert api["slot_wait_p95_s"] == pytest.approx(264.0)
    # start waits: a 5, b 62, c 310, d 3, e 1 (from queued, never scheduled)
    assert api["start_wait_total_s"] == pytest.approx(381.0)
    assert api["start_wait_median_s"] == pytest.approx(5.0)
    assert (api["peak_slots_used"], api["peak_slots_wanted"], api["suggested_slots"]) == (5, 6, 6)
    training = pools.loc["ml_training_pool"]
    assert (training["slots"], training["tasks"], training["slot_wait_total_s"]) == (2, 1, 0.0)
    assert (training["peak_slots_used"], training["suggested_slots"]) == (1, 1)
    idle = pools.loc["db_heavy_pool"]
    assert (idle["slots"], idle["tasks"], idle["peak_slots_used"], idle["suggested_slots"]) == (3, 0, 0, 1)


def test_review_metadata__a_database_without_airflow_tables_is_named(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(pool_review.PoolReviewError, match=r"Airflow metadata database .*empty\.db.*SQL_ALCHEMY_CONN"):
        pool_review.review_metadata(url, AS_OF - pd.Timedelta(days=1), AS_OF)


def test_review_pools__logs_the_table_and_a_bar_picture_to_mlflow(metadata, tmp_path, store):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path / "home")})
    client = tracking.configure(settings)
    outcome = review_pools(store, client, settings, metadata, AS_OF)
    api = next(row for row in outcome.rows if row["pool"] == "pricing_api_pool")
    assert (api["suggested_slots"], api["slot_wait_total_s"]) == (6, 360.0)
    assert outcome.notes[0] == pool_review.SUGGESTION_RULE
    run = client.get_run(outcome.mlflow_run_id)
    assert run.data.metrics["pricing_api_pool_peak_slots_used"] == 5
    assert run.data.metrics["pricing_api_pool_slot_wait_p95_s"] == pytest.approx(264.0)
    artifacts = {a.path for a in client.list_artifacts(outcome.mlflow_run_id)}
    assert {"pool_review.json", "pool_review.csv", "pool_review.png"} <= artifacts
