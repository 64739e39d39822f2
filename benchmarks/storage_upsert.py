"""Upsert throughput into PostgreSQL for the full NP history, next to a raw COPY of the same rows.

Creates a scratch database on the server, migrates it, and times (median of --repeats):
- ``raw COPY``: ``COPY electricity_prices FROM STDIN`` of the 52,416 rows into the empty table;
- ``upsert, first load``: ``PriceStore.upsert_prices`` of the same rows into the empty table
  (one batch: COPY into staging + INSERT ... ON CONFLICT DO UPDATE ... WHERE changed);
- ``upsert, first load in load-history batches``: the same in batches of EOPT's default size;
- ``upsert, rerun``: the same rows again into the full table (changes nothing).
Target: the first-load upsert runs at >= half the raw COPY rate.

    python benchmarks/storage_upsert.py [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from benchmarks.machine import describe_machine, write_results
from core.markets import load_market
from core.settings import PROJECT_ROOT, Settings
from storage.database import create_store_engine, upgrade
from storage.prices import PriceStore
from storage.upsert import copy_frame

RESULTS = Path(__file__).resolve().parent / "results"


def _truncate(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE electricity_prices"))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(admin_url: str, repeats: int) -> dict:
    settings = Settings.from_env()
    prices = load_market("NP", PROJECT_ROOT / "data" / "markets").prices
    rows = len(prices)
    copy_rows = prices.assign(ingested_at=pd.Timestamp(datetime.now(UTC))).astype(
        {"ingested_at": "datetime64[us, UTC]"}
    )
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"eopt_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        engine = create_store_engine(url)
        upgrade(engine)
        store = PriceStore(engine)
        timings: dict[str, list[float]] = {
            k: [] for k in ("raw_copy", "upsert_first_load", "upsert_first_load_batched", "upsert_rerun")
        }
        batch = settings.stores.upsert_batch_rows
        for i in range(repeats):
            _truncate(engine)

            def raw_copy() -> None:
                with engine.begin() as conn:
                    copy_frame(conn, "electricity_prices", copy_rows)

            timings["raw_copy"].append(_timed(raw_copy))
            _truncate(engine)
            result = None

            def first_load() -> None:
                nonlocal result
                result = store.upsert_prices(prices)

            timings["upsert_first_load"].append(_timed(first_load))
            assert result.inserted == rows, result
            rerun_result = None

            def rerun() -> None:
                nonlocal rerun_result
                rerun_result = store.upsert_prices(prices)

            timings["upsert_rerun"].append(_timed(rerun))
            assert rerun_result.inserted == 0 and rerun_result.updated == 0, rerun_result
            _truncate(engine)
            timings["upsert_first_load_batched"].append(
                _timed(lambda: [store.upsert_prices(prices.iloc[o : o + batch]) for o in range(0, rows, batch)])
            )
            print(
                f"repeat {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in timings.items()), flush=True
            )
        with engine.connect() as conn:
            server = conn.execute(sa.text("SHOW server_version")).scalar()
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    median = {k: statistics.median(v) for k, v in timings.items()}
    rates = {k: rows / v for k, v in median.items()}
    ratio = rates["upsert_first_load"] / rates["raw_copy"]
    return {
        "benchmark": "storage_upsert",
        "dataset": "NP full history (data/markets/NP.csv)",
        "rows": rows,
        "repeats": repeats,
        "batch_rows": batch,
        "postgresql": server,
        "seconds_median": {k: round(v, 4) for k, v in median.items()},
        "seconds_all": {k: [round(x, 4) for x in v] for k, v in timings.items()},
        "rows_per_s": {k: round(v) for k, v in rates.items()},
        "upsert_to_copy_ratio": round(ratio, 3),
        "target": "upsert_first_load rows/s >= 0.5 x raw_copy rows/s",
        "target_met": ratio >= 0.5,
        "machine": describe_machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = run(args.admin_url, args.repeats)
    table = [
        "| measurement | seconds (median) | rows/s |",
        "|---|---:|---:|",
        *[
            f"| {k.replace('_', ' ')} | {results['seconds_median'][k]:.3f} | {results['rows_per_s'][k]:,} |"
            for k in results["seconds_median"]
        ],
        "",
        f"Upsert (first load) / raw COPY = **{results['upsert_to_copy_ratio']:.2f}** "
        f"(target >= 0.5: {'met' if results['target_met'] else 'NOT met'}). "
        f"{results['rows']:,} rows, PostgreSQL {results['postgresql']}, median of {results['repeats']}.",
    ]
    write_results(RESULTS, "storage_upsert", results, "Storage upsert throughput (NP history into PostgreSQL)", table)


if __name__ == "__main__":
    main()
