"""Airflow's metadata database past retention: ``airflow db clean``, without archive tables.

Run as the ``airflow`` command next to this interpreter, on the environment it is given (inside a
task, None: the worker's own; from ``eopt``, ``Settings.airflow_environment()``), so it cleans the
database that Airflow is configured with. ``airflow db clean`` deletes in batches, each its own
transaction; interrupted, a rerun deletes what is left. Its dry run prints, per table, the rows it
would delete: those counts are the step's report (Airflow does not say their bytes).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from retention.removals import StepReport

AIRFLOW = Path(sys.executable).parent / "airflow"
# `airflow db clean --dry-run` prints "Checking table <table>" then "Found <n> rows meeting deletion criteria."
ROW_COUNT = re.compile(r"Checking table (?P<table>\w+)\s+Found (?P<rows>\d+) rows")


class AirflowMetadataError(RuntimeError):
    """``airflow db clean`` failed; the message carries its output."""


def _db_clean(env: Mapping[str, str] | None, cutoff: pd.Timestamp, *, dry_run: bool) -> str:
    command = [
        str(AIRFLOW),
        "db",
        "clean",
        "--clean-before-timestamp",
        pd.Timestamp(cutoff).isoformat(),
        "--skip-archive",
        "--yes",
        "--error-on-cleanup-failure",
        *(["--dry-run"] if dry_run else []),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=None if env is None else dict(env), timeout=1800, check=False
    )
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-20:])
        raise AirflowMetadataError(
            f"`airflow db clean` failed with exit code {result.returncode}; its output ends:\n{tail}\n"
            "Check the Airflow metadata database connection (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) and rerun."
        )
    return output


def clean_airflow_metadata(env: Mapping[str, str] | None, cutoff: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """Rows of Airflow's metadata older than ``cutoff`` (``airflow db clean --skip-archive``, on
    ``env``, None: this process's environment); the
    report lists, per table, the rows a dry run counted (counted first in a real run too)."""
    report = StepReport("clean_airflow_metadata", dry_run)
    counted = _db_clean(env, cutoff, dry_run=True)
    for match in ROW_COUNT.finditer(counted):
        rows = int(match.group("rows"))
        if rows:
            report.add(f"Airflow table {match.group('table')}: {rows} row(s) before {cutoff:%Y-%m-%d}", 0, rows=rows)
    if not dry_run and report.count:
        _db_clean(env, cutoff, dry_run=False)
    return report.logged()
