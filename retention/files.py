"""Files past retention: archived provider payloads, data-quality report folders, Airflow task logs.

A file's age is its modification time: the payload archive writes a body once (a repeat counts on
its quarantine row, not on the file), report folders and task logs are written while their run
runs. Each removal is one ``unlink`` or one folder, so an interrupted run leaves only whole files
and a rerun removes the rest.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from retention.removals import StepReport, size_of


def modified_before(path: Path, cutoff: pd.Timestamp) -> bool:
    return path.stat().st_mtime < cutoff.timestamp()


def newest_change(folder: Path) -> float:
    """The newest modification time of a folder or anything in it."""
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])


def payload_key(path: str | Path) -> tuple[str, str]:
    """(source folder, body digest) of an archived payload, whatever the home's absolute path."""
    path = Path(path)
    return path.parent.name, path.stem


def remove_raw_payloads(folder: Path, referenced: Iterable[str], cutoff: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """Archived payloads (``<source>/<sha256>.raw`` and its ``.meta``) written before ``cutoff``
    that no kept quarantine row references (``referenced``: their ``payload_ref``); leftovers
    of interrupted writes and ``.meta`` files whose body is gone go with them."""
    report = StepReport("remove_raw_payloads", dry_run)
    kept = {payload_key(ref) for ref in referenced}
    if not folder.is_dir():
        report.notes.append(f"no payload archive at {folder}")
        return report.logged()
    doomed: list[Path] = []
    for source in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(source.iterdir()):
            if not path.is_file() or not modified_before(path, cutoff):
                continue
            if path.suffix == ".raw":
                if payload_key(path) in kept:
                    continue
                meta = path.with_suffix(".meta")
                size = path.stat().st_size + (meta.stat().st_size if meta.is_file() else 0)
                report.add(f"payload {source.name}/{path.name}", size)
                doomed.append(path)
            elif path.suffix == ".meta" and not path.with_suffix(".raw").exists():
                report.add(f"payload metadata without its body {source.name}/{path.name}", path.stat().st_size)
                doomed.append(path)
            elif path.name.startswith(".") and path.suffix == ".tmp":
                report.add(f"unfinished payload write {source.name}/{path.name}", path.stat().st_size)
                doomed.append(path)
    if not dry_run:
        for path in doomed:
            path.unlink(missing_ok=True)  # the body first: a .meta left by an interruption goes next run
            if path.suffix == ".raw":
                path.with_suffix(".meta").unlink(missing_ok=True)
    return report.logged()


def remove_report_folders(folder: Path, cutoff: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """Data-quality run folders (``$EOPT_HOME/quality/<run id>``: report, plots, Evidently HTML)
    in which nothing changed since before ``cutoff``."""
    report = StepReport("remove_quality_report_folders", dry_run)
    if not folder.is_dir():
        report.notes.append(f"no report folders at {folder}")
        return report.logged()
    doomed = [p for p in sorted(folder.iterdir()) if p.is_dir() and newest_change(p) < cutoff.timestamp()]
    for path in doomed:
        report.add(f"report folder {path.name}", size_of(path))
    if not dry_run:
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
    return report.logged()


def dag_of(log: Path, folder: Path) -> str | None:
    """The DAG of a task log (``dag_id=<dag>/run_id=.../...``), None for other files under ``folder``."""
    top = log.relative_to(folder).parts[0]
    return top.removeprefix("dag_id=") if top.startswith("dag_id=") else None


def remove_task_logs(
    folder: Path, cutoff: pd.Timestamp, *, dry_run: bool, cutoffs_by_dag: Mapping[str, pd.Timestamp] | None = None
) -> StepReport:
    """Airflow log files under ``folder`` (its ``base_log_folder``) last written before ``cutoff``, or
    before their DAG's own cutoff in ``cutoffs_by_dag``; folders left empty are removed after them."""
    report = StepReport("remove_airflow_logs", dry_run)
    if not folder.is_dir():
        report.notes.append(f"no Airflow logs at {folder}")
        return report.logged()
    by_dag = cutoffs_by_dag or {}
    doomed = [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and modified_before(p, by_dag.get(dag_of(p, folder) or "", cutoff))
    ]
    for path in doomed:
        report.add(f"log {path.relative_to(folder)}", path.stat().st_size)
    if not dry_run:
        for path in doomed:
            path.unlink(missing_ok=True)
        for empty in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            if not any(empty.iterdir()):
                with contextlib.suppress(OSError):  # a task started writing into it meanwhile
                    empty.rmdir()
    return report.logged()


def remove_product_logs(folder: Path, cutoff: pd.Timestamp, *, dry_run: bool) -> StepReport:
    """The product's own service logs (``$EOPT_HOME/run/<service>.log``, and rotated copies
    ``<service>.log.*``, written by ``eopt up``) last written before ``cutoff``. The log of a service
    whose pid file is there (``eopt up`` started it and ``eopt down`` has not stopped it) is kept:
    its process holds the file open and appends to it."""
    report = StepReport("remove_product_logs", dry_run)
    if not folder.is_dir():
        report.notes.append(f"no service logs at {folder}")
        return report.logged()
    doomed = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not (path.suffix == ".log" or ".log." in path.name):
            continue
        service = path.name.split(".log")[0]
        if (folder / f"{service}.pid").exists():
            if modified_before(path, cutoff):
                report.notes.append(f"kept {path.name}: {service} is running (its pid file is there)")
            continue
        if modified_before(path, cutoff):
            doomed.append(path)
            report.add(f"service log {path.name}", path.stat().st_size)
    if not dry_run:
        for path in doomed:
            path.unlink(missing_ok=True)
    return report.logged()
