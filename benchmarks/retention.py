"""How the embedded home grows per simulated month, before and after the maintenance DAG's retention.

A fresh embedded home (SQLite store, SQLite MLflow, files under ``EOPT_HOME``) grows day by day
over ``--months`` months of 30 days, for ``--regions``; at the end of each month every store's
size is measured, ``pipelines.maintenance.run_maintenance`` runs with the default retention as of
that day, and the sizes are measured again. What grows each simulated day:

- one data-quality run: a real Evidently drift report per region (HTML and JSON, made once by
  ``drift.reports`` from the bundled history's last two weeks, then the same bytes every day), a
  small quality report, logged to MLflow and kept in ``$EOPT_HOME/quality/<run id>``;
- 24 forecast issues of 24 hours per region (``forecasts``);
- one archived provider payload (``PAYLOAD_BYTES``, assumed) with its quarantine row;
- the task logs of a day, one file per DAG of ``LOG_BYTES_PER_DAY`` (assumed: a day's task logs
  of that DAG together; Airflow writes one file per task attempt).

Sizes that are assumptions are recorded as such in the results. Airflow's metadata database is
not simulated (``airflow db clean`` is measured by the DAG test, not here).

    python -m benchmarks.retention [--months 3] [--regions NP]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from benchmarks.machine import describe_machine, write_results
from core.markets import load_market
from core.settings import PROJECT_ROOT, Settings
from drift.reports import feature_drift_report, hourly_drift_columns, save_snapshot, select_columns
from pipelines.maintenance import run_maintenance
from storage.database import create_store_engine, upgrade
from storage.forecasts import ForecastStore
from storage.health import QuarantinedRow, QuarantineStore
from storage.payload_archive import archive_payload
from storage.prices import PriceStore
from storage.schema import price_quarantine
from training import tracking

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "retention"
PAYLOAD_BYTES = 16_384
LOG_BYTES_PER_DAY = {"electricity_price_ingestion": 1_150_000, "forecast_generation": 480_000, "data_quality": 96_000}
STORES = ("quality", "mlartifacts", "mlflow.db", "prices.db", "raw", "airflow/logs")


def _bytes(path: Path) -> int:
    if path.is_file():
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.is_file())
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def sizes(home: Path) -> dict[str, int]:
    return {store: _bytes(home / store) for store in STORES}


def _touch(path: Path, when: pd.Timestamp) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def drift_reports(region: str, folder: Path) -> list[Path]:
    """A real Evidently drift report of the region's last week against the week before."""
    history = load_market(region, PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    frame = hourly_drift_columns(prices, exogenous).iloc[-24 * 14 :]
    reference, current = frame.iloc[: 24 * 7], frame.iloc[24 * 7 :]
    columns = select_columns(reference, current, list(frame.columns)).columns
    snapshot = feature_drift_report(current, reference, columns, drift_share=0.5, column_threshold=0.75)
    return [Path(p) for p in save_snapshot(snapshot, folder, f"drift_{region}")]


def grow_day(
    settings: Settings, client, experiment: str, store: PriceStore, regions, reports, day: pd.Timestamp
) -> None:
    run_name = f"scheduled__{day:%Y-%m-%dT%H%M}"
    folder = settings.quality_dir / run_name
    (folder / "drift").mkdir(parents=True)
    report = folder / "quality_report.md"
    report.write_text(f"# Data quality {day}\n" + "| check | region | status |\n" * 200)
    files = [report]
    for path in reports:
        copy = folder / "drift" / path.name
        copy.write_bytes(path.read_bytes())
        files.append(copy)
    run = client.create_run(experiment, start_time=int(day.timestamp() * 1000), run_name=run_name).info.run_id
    for path in files:
        client.log_artifact(run, str(path), None if path == report else "drift")
    client.set_terminated(run)
    for path in [*files, folder / "drift", folder]:
        _touch(path, day)

    issues = pd.date_range(day.floor("D"), periods=24, freq="h")
    for region in regions:
        issued = np.repeat(issues, 24)
        target = issued + pd.to_timedelta(np.tile(np.arange(1, 25), 24), unit="h")
        ForecastStore(store.engine).upsert_forecasts(
            pd.DataFrame(
                {
                    "region": region,
                    "issued_at": issued,
                    "target_ts": target,
                    "model_name": f"electricity-price-{region}",
                    "model_version": "1",
                    "yhat": 40.0,
                    "lower": 30.0,
                    "upper": 50.0,
                    "is_fallback": False,
                }
            )
        )
    body = np.random.default_rng(int(day.timestamp())).integers(0, 256, PAYLOAD_BYTES, dtype=np.uint8).tobytes()
    payload = Path(archive_payload(settings.raw_payload_dir, "entsoe", body, "/api"))
    for path in (payload, payload.with_suffix(".meta")):
        _touch(path, day)
    QuarantineStore(store.engine).add(
        [QuarantinedRow("entsoe", "unparseable", regions[0], day.to_pydatetime(), None, str(payload))]
    )
    with store.engine.begin() as conn:  # quarantined that day, as if it had been
        conn.execute(
            sa.update(price_quarantine)
            .where(price_quarantine.c.payload_ref == str(payload))
            .values(quarantined_at=day.to_pydatetime(), last_seen_at=day.to_pydatetime())
        )
    for dag, size in LOG_BYTES_PER_DAY.items():
        log = settings.airflow_log_dir / f"dag_id={dag}" / f"run_id=day_{day:%Y%m%d}" / "task_id=all" / "attempt=1.log"
        log.parent.mkdir(parents=True)
        log.write_bytes(b"x" * size)
        _touch(log, day)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--regions", default="NP")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    regions = [r.strip().upper() for r in args.regions.split(",")]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eopt-retention-") as tmp:
        home = Path(tmp) / "home"
        settings = Settings.from_env({"EOPT_HOME": str(home), "EOPT_REGIONS": ",".join(regions)})
        engine = create_store_engine(settings.stores.database_url)
        upgrade(engine)
        store = PriceStore(engine)
        client = tracking.configure(settings)
        experiment = tracking.experiment_id(client, settings, settings.quality.experiment)
        reports = [p for region in regions for p in drift_reports(region, Path(tmp) / "reports")]
        report_bytes = {p.name: p.stat().st_size for p in reports}
        end = pd.Timestamp.now(tz="UTC").floor("D") + pd.Timedelta(hours=3, minutes=30)
        start = end - pd.Timedelta(days=30 * args.months)
        months = []
        for month in range(args.months):
            for day_number in range(30):
                day = start + pd.Timedelta(days=30 * month + day_number)
                grow_day(settings, client, experiment, store, regions, reports, day)
            as_of = start + pd.Timedelta(days=30 * (month + 1))
            before = sizes(home)
            steps = run_maintenance(
                store, client, settings, as_of, settings.airflow_log_dir, None, dry_run=False, airflow_metadata=False
            )
            after = sizes(home)
            months.append(
                {
                    "month": month + 1,
                    "before": before,
                    "after": after,
                    "removed": {r.step: {"count": r.count, "bytes": r.bytes, "rows": r.rows} for r in steps},
                }
            )
            print(f"month {month + 1}: {sum(before.values())} -> {sum(after.values())} bytes")
        engine.dispose()
    results = {
        "regions": regions,
        "months": months,
        "retention": settings.retention.model_dump(),
        "evidently_report_bytes": report_bytes,
        "assumed": {"payload_bytes": PAYLOAD_BYTES, "log_bytes_per_day": LOG_BYTES_PER_DAY},
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    mib = 1024**2
    table = [
        "| month | " + " | ".join(f"{s} before / after (MiB)" for s in STORES) + " | total before / after (MiB) |",
        "|---|" + "---|" * (len(STORES) + 1),
    ]
    for m in months:
        cells = [f"{m['before'][s] / mib:.1f} / {m['after'][s] / mib:.1f}" for s in STORES]
        total = f"{sum(m['before'].values()) / mib:.1f} / {sum(m['after'].values()) / mib:.1f}"
        table.append(f"| {m['month']} | " + " | ".join(cells) + f" | {total} |")
    table += [
        "",
        f"Regions {', '.join(regions)}; default retention ({', '.join(f'{k}={v}' for k, v in settings.retention.model_dump().items())}); "
        f"assumed sizes: payload {PAYLOAD_BYTES} bytes, task logs per day {LOG_BYTES_PER_DAY}; wall {results['wall_s']} s.",
    ]
    write_results(
        RESULTS, NAME, results, "Retention: the embedded home per simulated month, before and after maintenance", table
    )


if __name__ == "__main__":
    main()
