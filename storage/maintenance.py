"""What each maintenance step removed and when: one row per step run, dry runs marked."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from storage.schema import maintenance_runs

RUN_COLUMNS = ("step", "dry_run", "items", "bytes", "rows", "finished_at")


class MaintenanceRunStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(
        self, step: str, *, dry_run: bool, items: int, size: int, rows: int, finished_at: datetime | None = None
    ) -> None:
        row = {
            "step": step,
            "dry_run": dry_run,
            "items": items,
            "bytes": size,
            "rows": rows,
            "finished_at": finished_at or datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            conn.execute(sa.insert(maintenance_runs).values(**row))

    def last_successes(self) -> pd.DataFrame:
        """Per step, its newest run that removed (not a dry run): ``RUN_COLUMNS``, one row per step."""
        t = maintenance_runs
        newest = (
            sa.select(t.c.step, sa.func.max(t.c.id).label("id"))
            .where(t.c.dry_run.is_(False))
            .group_by(t.c.step)
            .subquery()
        )
        query = sa.select(*(t.c[c] for c in RUN_COLUMNS)).join(newest, newest.c.id == t.c.id).order_by(t.c.step)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
        frame["finished_at"] = pd.to_datetime(frame["finished_at"], utc=True)
        return frame
