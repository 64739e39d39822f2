"""`eopt maintenance`: the DAG's tasks as commands, run as an operator runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from eopt.cli import MAINTENANCE_REPORTS, MAINTENANCE_STEPS
from pipelines.maintenance import REPORTS, STEPS
from storage.payload_archive import archive_payload
from tests.eopt.test_cli import run_eopt


def test_the_commands_are_the_dag_tasks_in_order():
    assert tuple(MAINTENANCE_STEPS) == STEPS
    assert tuple(MAINTENANCE_REPORTS) == REPORTS


def test_remove_raw_payloads__dry_run_lists_with_bytes__then_removes(tmp_path):
    old = Path(archive_payload(tmp_path / "raw", "entsoe", b"x" * 500, "/api"))
    new = Path(archive_payload(tmp_path / "raw", "entsoe", b"y" * 500, "/api"))
    as_of = pd.Timestamp("2026-03-01 03:30", tz="UTC")
    for path, days in ((old, 40), (old.with_suffix(".meta"), 40), (new, 1), (new.with_suffix(".meta"), 1)):
        when = (as_of - pd.Timedelta(days=days)).timestamp()
        os.utime(path, (when, when))
    assert run_eopt(tmp_path, "db", "upgrade").returncode == 0

    dry = run_eopt(tmp_path, "maintenance", "remove-raw-payloads", "--dry-run", "--as-of", "2026-03-01T03:30Z")
    assert dry.returncode == 0, dry.stderr
    meta = old.with_suffix(".meta").stat().st_size
    assert f"would remove payload entsoe/{old.name} ({500 + meta} bytes)" in dry.stdout
    assert f"remove_raw_payloads: would remove 1 item(s), {500 + meta} bytes" in dry.stdout
    assert old.exists()

    real = run_eopt(tmp_path, "maintenance", "remove-raw-payloads", "--as-of", "2026-03-01T03:30Z")
    assert f"remove_raw_payloads: removed 1 item(s), {500 + meta} bytes" in real.stdout
    assert not old.exists() and new.exists()


def test_check_connections__names_the_refused_connection_and_exits_1(tmp_path, sandbox):
    assert run_eopt(tmp_path, "db", "upgrade").returncode == 0
    env = {
        "EOPT_PRICING_SANDBOX_URL": sandbox.url,
        "EOPT_INGESTION_SOURCES": "iea,entsoe",
        "EOPT_ENTSOE_TOKEN": "not-the-token",
        "EOPT_PROVIDER_READ_TIMEOUT_S": "2",
    }
    result = run_eopt(tmp_path, "maintenance", "check-connections", "--as-of", "2016-01-05T12:30Z", extra_env=env)
    assert result.returncode == 1
    assert "check_connections: iea_default (iea, NP): ok (1 call(s)" in result.stdout
    assert "check_connections: entsoe_default (entsoe, BE): FAILED: BE: entsoe: credentials refused" in result.stdout
    assert "connection test failed for entsoe_default" in result.stderr
    assert "not-the-token" not in result.stdout + result.stderr
    assert dict(sandbox.stats) == {"iea": 1, "entsoe": 1}
