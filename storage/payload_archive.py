"""Raw provider payloads kept for operators, by content: one file per distinct body, however often it comes.

A body is stored as ``<folder>/<source>/<sha256 of the body>.raw`` with a ``.meta`` beside it
naming the endpoint that first sent it. A provider stuck on the same junk page therefore adds
one file, not one per cycle: the quarantine row that references it counts the repeats
(``storage.health.QuarantineStore``). Files are written to a temporary name and renamed into
place, so a reader never sees half a body and two processes archiving the same body agree.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def archive_payload(folder: Path, source: str, body: bytes, endpoint: str, note: str = "") -> str:
    """Keep ``body`` under ``folder/source`` unless the same bytes are there already; returns its path.
    The ``.meta`` names the endpoint that first sent it and, when given, why it was kept."""
    target = Path(folder) / source
    target.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(body).hexdigest()
    path = target / f"{digest}.raw"
    if not path.is_file():
        meta = f"endpoint: {endpoint}\n" + (f"note: {note}\n" if note else "")
        _write_atomically(path.with_suffix(".meta"), meta.encode())
        _write_atomically(path, body)
    return str(path)
