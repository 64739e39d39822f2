"""Files past retention: payloads a kept quarantine row references stay, leftovers go, empty log folders go."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from core.settings import Settings, SettingsError
from pipelines.maintenance import remove_airflow_logs, remove_product_logs
from retention.files import remove_raw_payloads, remove_report_folders, remove_task_logs
from storage.payload_archive import archive_payload
from tests.market_frames import store_with_history

AS_OF = pd.Timestamp("2026-03-01 03:30", tz="UTC")
CUTOFF = AS_OF - pd.Timedelta(days=30)


def _age(path: Path, days: float) -> None:
    when = (AS_OF - pd.Timedelta(days=days)).timestamp()
    os.utime(path, (when, when))


def _payload(folder: Path, body: bytes, days: float) -> Path:
    path = Path(archive_payload(folder, "entsoe", body, "/api/prices"))
    _age(path, days)
    _age(path.with_suffix(".meta"), days)
    return path


def test_remove_raw_payloads__keeps_new_and_referenced__removes_old_orphans_and_leftovers(tmp_path):
    folder = tmp_path / "raw"
    new = _payload(folder, b"<html>new</html>", 3)
    referenced = _payload(folder, b"<html>old but quarantined</html>", 60)
    old = _payload(folder, b"<html>old</html>" * 100, 60)
    lonely_meta = _payload(folder, b"<html>body already removed</html>", 60)
    lonely_meta.unlink()  # an earlier run was interrupted between the body and its .meta
    leftover = folder / "entsoe" / ".abc.raw.x.tmp"
    leftover.write_bytes(b"half a body")
    _age(leftover, 45)
    # the quarantine row names the payload by the path it had when archived, in another home
    refs = [f"/elsewhere/raw/entsoe/{referenced.name}"]

    dry = remove_raw_payloads(folder, refs, CUTOFF, dry_run=True)
    assert dry.count == 3
    assert dry.bytes == old.stat().st_size + old.with_suffix(".meta").stat().st_size + (
        lonely_meta.with_suffix(".meta").stat().st_size + len(b"half a body")
    )
    assert old.exists() and leftover.exists()

    real = remove_raw_payloads(folder, refs, CUTOFF, dry_run=False)
    assert (real.removals, real.bytes) == (dry.removals, dry.bytes)
    left = sorted(p.name for p in (folder / "entsoe").iterdir())
    assert left == sorted(
        [new.name, new.with_suffix(".meta").name, referenced.name, referenced.with_suffix(".meta").name]
    )
    assert remove_raw_payloads(folder, refs, CUTOFF, dry_run=False).count == 0


def test_remove_report_folders__by_the_newest_file_in_them(tmp_path):
    old, touched = tmp_path / "scheduled__old", tmp_path / "scheduled__rerun"
    for folder in (old, touched):
        (folder / "drift").mkdir(parents=True)
        (folder / "drift" / "drift_NP.html").write_bytes(b"x" * 1000)
        (folder / "report.md").write_bytes(b"y" * 10)
        for path in (folder / "drift" / "drift_NP.html", folder / "report.md", folder / "drift", folder):
            _age(path, 40)
    _age(touched / "report.md", 1)  # rewritten by a rerun yesterday: the folder is recent

    report = remove_report_folders(tmp_path, CUTOFF, dry_run=False)
    assert [r.item for r in report.removals] == ["report folder scheduled__old"]
    assert report.bytes == 1010
    assert not old.exists() and touched.exists()


def test_remove_task_logs__old_files_then_the_folders_they_leave_empty(tmp_path):
    logs = tmp_path / "logs"
    old = logs / "dag_id=maintenance" / "run_id=old" / "task_id=vacuum_stores" / "attempt=1.log"
    recent = logs / "dag_id=maintenance" / "run_id=new" / "task_id=vacuum_stores" / "attempt=1.log"
    for path, days in ((old, 31), (recent, 29)):
        path.parent.mkdir(parents=True)
        path.write_text("log line\n" * 10)
        _age(path, days)

    dry = remove_task_logs(logs, CUTOFF, dry_run=True)
    assert [r.item for r in dry.removals] == [f"log {old.relative_to(logs)}"]
    assert old.exists()
    real = remove_task_logs(logs, CUTOFF, dry_run=False)
    assert (real.count, real.bytes) == (1, 90)
    assert not (logs / "dag_id=maintenance" / "run_id=old").exists() and recent.exists()
    assert remove_task_logs(logs, CUTOFF, dry_run=False).count == 0


def test_remove_airflow_logs__a_dag_with_its_own_days(tmp_path):
    settings = Settings.from_env(
        {"EOPT_HOME": str(tmp_path), "EOPT_RETENTION_AIRFLOW_LOG_DAYS_BY_DAG": "electricity_price_ingestion=7"}
    )
    logs = tmp_path / "logs"
    written = {}
    for dag in ("electricity_price_ingestion", "data_quality"):
        for days in (3, 10, 40):
            path = logs / f"dag_id={dag}" / f"run_id=r{days}" / "task_id=t" / "attempt=1.log"
            path.parent.mkdir(parents=True)
            path.write_text("x")
            _age(path, days)
            written[dag, days] = path
    processor = logs / "dag_processor" / "old.log"  # not a task log: the default applies
    processor.parent.mkdir()
    processor.write_text("x")
    _age(processor, 10)

    store = store_with_history(settings.stores.database_url, {})
    remove_airflow_logs(store, settings, logs, AS_OF, dry_run=False)
    store.engine.dispose()
    kept = sorted(key for key, path in written.items() if path.exists())
    assert kept == [("data_quality", 3), ("data_quality", 10), ("electricity_price_ingestion", 3)]
    assert processor.exists()


def test_days_by_dag__refuses_what_is_not_dag_equals_days():
    with pytest.raises(SettingsError, match=r"EOPT_RETENTION_AIRFLOW_LOG_DAYS_BY_DAG: 'x=0' is not DAG_ID=DAYS"):
        Settings.from_env({"EOPT_RETENTION_AIRFLOW_LOG_DAYS_BY_DAG": "x=0"})


def test_remove_product_logs__old_service_logs_go__a_running_service_keeps_its_log(tmp_path):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path / "home"), "EOPT_RETENTION_PRODUCT_LOG_DAYS": "30"})
    run = settings.service_dir
    run.mkdir(parents=True)
    files = {
        "mlflow.log": (b"m" * 700, 45),  # stopped 45 days ago: removed
        "sandbox.log.1": (b"s" * 300, 40),  # a rotated copy: removed
        "airflow.log": (b"a" * 500, 60),  # old, but airflow is running (its pid file): kept
        "airflow.pid": (b"4242", 60),
        "sandbox.log": (b"s" * 100, 2),  # recent: kept
        "notes.txt": (b"n" * 50, 90),  # not a log: kept
    }
    for name, (body, days) in files.items():
        (run / name).write_bytes(body)
        _age(run / name, days)
    store = store_with_history(f"sqlite:///{tmp_path / 'store.db'}", {})

    dry = remove_product_logs(store, settings, AS_OF, dry_run=True)
    assert [(r.item, r.bytes) for r in dry.removals] == [
        ("service log mlflow.log", 700),
        ("service log sandbox.log.1", 300),
    ]
    assert dry.notes == ["kept airflow.log: airflow is running (its pid file is there)"]
    assert (run / "mlflow.log").exists()
    real = remove_product_logs(store, settings, AS_OF, dry_run=False)
    assert (real.count, real.bytes) == (2, 1000)
    assert sorted(p.name for p in run.iterdir()) == ["airflow.log", "airflow.pid", "notes.txt", "sandbox.log"]
    assert remove_product_logs(store, settings, AS_OF, dry_run=False).count == 0
