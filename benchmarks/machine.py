"""What every benchmark records next to its figures: the machine, the code version, and where the files go."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from core.settings import PROJECT_ROOT


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# The vector instructions that decide how fast the numeric libraries run: torch, for one, picks its CPU
# kernels by them (AVX2 or AVX-512), so two hosts named "AMD EPYC" can differ twofold on a network's epoch.
VECTOR_EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_identity(cpuinfo: str) -> dict:
    """Family, model and vector extensions of the first processor in a ``/proc/cpuinfo`` text."""
    fields: dict[str, str] = {}
    for line in cpuinfo.split("\n\n", 1)[0].splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "cpu_family": fields.get("cpu family"),
        "cpu_model_number": fields.get("model"),
        "vector_extensions": [x for x in VECTOR_EXTENSIONS if x in flags],
    }


def _cpu_identity() -> dict:
    try:
        return cpu_identity(Path("/proc/cpuinfo").read_text())
    except OSError:
        return cpu_identity("")


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # benchmarks/results/ holds what benchmarks write: a run that rewrites its own earlier result
            # files (or a second market's) is still a run of the committed code
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe_machine(git_commit: str | None = None) -> dict:
    """``git_commit`` overrides git's answer: a copy of the tree on another machine may carry a stale or no ``.git``."""
    return {
        "cpu": _cpu_model(),
        **_cpu_identity(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit or _git_commit(),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_results(folder: Path, name: str, results: dict, title: str, table_lines: list[str]) -> None:
    """Write ``<name>.json`` and a readable ``<name>.md`` table into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    machine = results["machine"]
    lines = [
        f"# {title}",
        "",
        *table_lines,
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
        f"Python {machine['python']}; commit {machine['git_commit']}; recorded {machine['recorded_at']}.",
        "",
    ]
    (folder / f"{name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
