"""Wall time of one full ingestion cycle and of a two-year history load, against the sandbox.

The sandbox runs as its own process (`eopt sandbox`), as the providers' servers would, and the
product talks to it over loopback HTTP. Measured (median of --repeats, fresh SQLite store each):
- ``cycle``: one cycle, all providers, all regions (fetch -> aggregate -> validate -> store -> cache);
- ``cycle rerun``: the same cycle again on the filled store (stores nothing);
- ``two-year load``: ``eopt ingest``'s path for ENTSO-E BE+FR over two years (2015-2016), chunked.
Target: a cycle under 10 s, well inside the DAG's 5-minute deadline.

    python -m benchmarks.ingestion [--repeats 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.machine import describe_machine, write_results
from core.settings import Settings
from pipelines.electricity_price_ingestion import backfill, run_cycle
from storage.cache import PriceCache
from storage.database import create_store_engine, upgrade
from storage.prices import PriceStore

RESULTS = Path(__file__).resolve().parent / "results"
RUN_TIME = pd.Timestamp("2016-06-01 12:00", tz="UTC")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_sandbox(port: int) -> subprocess.Popen:
    eopt = Path(sys.executable).parent / "eopt"
    process = subprocess.Popen(
        [str(eopt), "sandbox", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the sandbox did not start within 30 s")


def _fresh(settings: Settings, folder: Path) -> tuple[Settings, PriceStore, PriceCache]:
    url = f"sqlite:///{folder / 'prices.db'}"
    settings = settings.with_overrides(home=folder, database_url=url)
    engine = create_store_engine(url)
    upgrade(engine)
    return settings, PriceStore(engine), PriceCache.from_url(None, ttl_prices_s=60, ttl_forecasts_s=60)


def run(repeats: int) -> dict:
    port = _free_port()
    sandbox = _start_sandbox(port)
    base = Settings.from_env().with_overrides(pricing_sandbox_url=f"http://127.0.0.1:{port}")
    timings: dict[str, list[float]] = {"cycle": [], "cycle_rerun": [], "two_year_load": []}
    stored = {}
    try:
        for i in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                settings, store, cache = _fresh(base, Path(tmp))
                start = time.perf_counter()
                report = run_cycle(settings, RUN_TIME, store, cache)
                timings["cycle"].append(time.perf_counter() - start)
                assert not report.failures, report.failures
                stored = {"rows_stored": report.stored["inserted"], "provider_rows": report.fetched}
                start = time.perf_counter()
                rerun = run_cycle(settings, RUN_TIME, store, cache)
                timings["cycle_rerun"].append(time.perf_counter() - start)
                assert rerun.stored["inserted"] == 0
            with tempfile.TemporaryDirectory() as tmp:
                settings, store, cache = _fresh(base, Path(tmp))
                start = time.perf_counter()
                total = backfill(
                    settings,
                    store,
                    cache,
                    pd.Timestamp("2015-01-01", tz="UTC"),
                    pd.Timestamp("2017-01-01", tz="UTC"),
                    sources=["entsoe"],
                    chunk_days=30,
                ).inserted
                timings["two_year_load"].append(time.perf_counter() - start)
                stored["two_year_rows"] = total
            print(
                f"repeat {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in timings.items()), flush=True
            )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    median = {k: round(statistics.median(v), 3) for k, v in timings.items()}
    return {
        "benchmark": "ingestion",
        "run_time": str(RUN_TIME),
        "repeats": repeats,
        "seconds_median": median,
        "seconds_all": {k: [round(x, 3) for x in v] for k, v in timings.items()},
        **stored,
        "two_year_rows_per_s": round(stored["two_year_rows"] / median["two_year_load"]),
        "target": "cycle < 10 s (deadline 5 min)",
        "target_met": median["cycle"] < 10,
        "store": "SQLite (embedded)",
        "machine": describe_machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    results = run(parser.parse_args().repeats)
    m = results["seconds_median"]
    table = [
        "| measurement | seconds (median) | notes |",
        "|---|---:|---|",
        f"| one cycle, all providers and regions | {m['cycle']:.2f} | {results['rows_stored']} hourly rows stored; provider rows {results['provider_rows']} |",
        f"| the same cycle rerun | {m['cycle_rerun']:.2f} | stores nothing |",
        f"| two-year ENTSO-E load, BE + FR | {m['two_year_load']:.2f} | {results['two_year_rows']:,} rows, {results['two_year_rows_per_s']:,} rows/s |",
        "",
        f"Target: a cycle under 10 s ({'met' if results['target_met'] else 'NOT met'}); the DAG's deadline is 5 minutes. "
        f"Sandbox in its own process on loopback; embedded SQLite store; median of {results['repeats']}.",
    ]
    write_results(RESULTS, "ingestion", results, "Ingestion speed against the sandbox", table)


if __name__ == "__main__":
    main()
