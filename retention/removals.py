"""What a maintenance step removed, or would remove: each item with its bytes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Items named in a report's dict (an XCom): the count and bytes always cover every item.
LISTED_ITEMS = 200


@dataclass(frozen=True)
class Removal:
    """One thing past its retention bound: a file, a run, a group of rows."""

    item: str
    bytes: int
    rows: int = 0


@dataclass
class StepReport:
    """One step's removals (``dry_run``: what it would remove, nothing removed)."""

    step: str
    dry_run: bool
    removals: list[Removal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, item: str, size: int, rows: int = 0) -> None:
        self.removals.append(Removal(item, size, rows))

    @property
    def count(self) -> int:
        return len(self.removals)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.removals)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        rows = f" ({self.rows} rows)" if self.rows else ""
        return f"{self.step}: {verb} {self.count} item(s){rows}, {self.bytes} bytes"

    def logged(self) -> StepReport:
        verb = "would remove" if self.dry_run else "removed"
        for removal in self.removals:
            log.info("%s: %s %s (%s bytes)", self.step, verb, removal.item, removal.bytes)
        for note in self.notes:
            log.info("%s: %s", self.step, note)
        log.info("%s", self.summary())
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "dry_run": self.dry_run,
            "count": self.count,
            "bytes": self.bytes,
            "rows": self.rows,
            "items": [r.item for r in self.removals[:LISTED_ITEMS]],
            "notes": list(self.notes),
        }


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (0 when it is gone)."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


@dataclass
class ReportOutcome:
    """A maintenance report (model evaluation, pool review, connection test): its rows, where it was logged."""

    step: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    mlflow_run_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        where = f", MLflow run {self.mlflow_run_id}" if self.mlflow_run_id else ""
        return f"{self.step}: {len(self.rows)} row(s){where}"

    def logged(self) -> ReportOutcome:
        for note in self.notes:
            log.info("%s: %s", self.step, note)
        log.info("%s", self.summary())
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "mlflow_run_id": self.mlflow_run_id,
            "rows": self.rows[:LISTED_ITEMS],
            "notes": list(self.notes),
        }
