"""Where one pipeline run keeps its files: a folder named after the run id."""

from __future__ import annotations

import re
from pathlib import Path


def run_folder(base: Path, run_id: str) -> Path:
    """``base/<run id>``, the run id made safe for a file name (``manual__2024-03-01T06:00:00+00:00``
    becomes ``manual__2024-03-01T06_00_00_00_00``)."""
    return Path(base) / re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
