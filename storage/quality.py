"""The data-quality results of each run: one ``quality_reports`` row per check, plus the run's summary row.

The summary row (``check_name = "health_score"``, ``region = "all"``) holds the health score as its
value and the report's path; the metrics exporter reads the newest run's rows at every scrape.
Writing a run again replaces its rows in one transaction, so a rerun of the same DAG run is
idempotent and a failed write leaves the previous rows in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from core.check_results import ALL_REGIONS, CheckResult
from storage.schema import quality_reports

SUMMARY_CHECK = "health_score"


@dataclass(frozen=True)
class QualityRun:
    run_id: str
    created_at: pd.Timestamp
    health_score: float | None
    report_path: str | None
    summary: dict[str, Any]
    checks: pd.DataFrame  # check_name, region, status, value, threshold, details, report_path


class QualityReportStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def write_run(
        self,
        run_id: str,
        results: Iterable[CheckResult],
        *,
        health_score: float | None,
        summary: dict[str, Any],
        report_path: str | None,
        created_at: datetime | None = None,
    ) -> int:
        """Replace the run's rows with these results and its summary row; returns the rows written."""
        created_at = created_at or datetime.now(UTC)
        rows = [
            {
                "run_id": run_id,
                "check_name": r.key[:64],
                "region": r.region,
                "status": r.status,
                "value": r.value,
                "threshold": r.threshold,
                "details": {"message": r.message, **r.details},
                "report_path": r.details.get("report_html"),
                "created_at": created_at,
            }
            for r in results
        ]
        keys = [(row["check_name"], row["region"]) for row in rows]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"quality run {run_id}: more than one result for {duplicates}; give each a subject")
        rows.append(
            {
                "run_id": run_id,
                "check_name": SUMMARY_CHECK,
                "region": ALL_REGIONS,
                "status": summary.get("status", "ok"),
                "value": health_score,
                "threshold": None,
                "details": summary,
                "report_path": report_path,
                "created_at": created_at,
            }
        )
        t = quality_reports
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t).where(t.c.run_id == run_id))
            conn.execute(t.insert(), rows)
        return len(rows)

    def latest_run_id(self, region: str | None = None) -> str | None:
        """The newest run (that checked ``region``, when given)."""
        t = quality_reports
        query = (
            sa.select(t.c.run_id)
            .where(t.c.check_name == SUMMARY_CHECK if region is None else t.c.region == region)
            .order_by(t.c.created_at.desc(), t.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def read_run(self, run_id: str | None = None) -> QualityRun | None:
        """One run's results (the newest run's when ``run_id`` is None); None when there is none."""
        run_id = run_id or self.latest_run_id()
        if run_id is None:
            return None
        t = quality_reports
        query = (
            sa.select(
                t.c.check_name,
                t.c.region,
                t.c.status,
                t.c.value,
                t.c.threshold,
                t.c.details,
                t.c.report_path,
                t.c.created_at,
            )
            .where(t.c.run_id == run_id)
            .order_by(t.c.id)
        )
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        summary = next((r for r in rows if r["check_name"] == SUMMARY_CHECK), None)
        if summary is None:
            return None
        checks = pd.DataFrame(
            [r for r in rows if r["check_name"] != SUMMARY_CHECK],
            columns=["check_name", "region", "status", "value", "threshold", "details", "report_path", "created_at"],
        )
        return QualityRun(
            run_id,
            pd.Timestamp(summary["created_at"]),
            summary["value"],
            summary["report_path"],
            summary["details"] or {},
            checks.drop(columns="created_at"),
        )
