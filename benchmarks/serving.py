"""Latency of the served champion over HTTP and in process, and one forecast_generation run for four regions.

One run, in a fresh embedded home (or ``--home``, reusing what it holds):

1. the store as it stood at ``--run-date``: the 140 days of prices before it for each region
   (and the day-ahead exogenous forecasts up to 24 h after it, as published at that time);
2. each region retrained with ``--budget`` (default ``smoke``) on a 120-day window (14 days
   validation, 14 test) and judged by the real promotion gate; a region the gate rejects is
   promoted by hand (audited, reason "benchmark: ...") so every region is forecast by a model;
3. ``mlflow models serve -m models:/electricity-price-NP@champion`` on loopback: p50/p99 of
   ``POST /invocations`` (one origin's raw request: 192 hourly rows of prices and exogenous
   forecasts, ``dataframe_split``, and the ``origin`` param) over ``--requests`` calls after
   ``--warmup``, alternating with ``mlflow.pyfunc.load_model(...).predict`` of the same request
   in this process (so both see the same load on a shared machine);
4. when ``dags/forecast_generation.py`` exists: ``airflow dags test forecast_generation RUN_DATE``
   against a fresh Airflow home for all regions: the command's wall time, and each task's
   duration from the metadata DB (``task_instance`` start/end). Target: the DAG's tasks finish in
   under 20 s for four regions.

The default run date, 2016-12-31 02:00 UTC, is the last night all four bundled markets have
prices for (BE and FR end on 2016-12-31, NP and PJM on 2018-12-24); at 2018-12-25 BE and FR
would be two years stale and fail ``prepare_features`` instead of being forecast.

    python -m benchmarks.serving [--requests 200] [--warmup 20] [--home DIR] [--run-date ...] [--skip-dag]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.machine import describe_machine, write_results
from core.settings import PROJECT_ROOT, Settings, child_environment

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
DAG_ID = "forecast_generation"
DAG_FILE = PROJECT_ROOT / "dags" / f"{DAG_ID}.py"
STORE_DAYS = 140
TRAINING = {"EOPT_TRAINING_WINDOW_DAYS": "120", "EOPT_VALIDATION_DAYS": "14", "EOPT_TEST_DAYS": "14"}
DAG_TARGET_S = 20.0


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "min_ms": round(float(ms.min()), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- 1 + 2: store and champions ----------------------------------------------------------------


def prepare(settings: Settings, regions: list[str], run_date: pd.Timestamp) -> dict:
    """Load what the store lacks, retrain and gate every region without a champion; figures per region."""
    from core.markets import load_market
    from pipelines.model_retraining import retrain_region
    from registry.models import champion
    from registry.promotion import gate_candidate, promote_version
    from storage.database import store_engine, upgrade
    from storage.prices import PriceStore
    from storage.promotions import PromotionStore
    from training.tracking import configure

    engine = store_engine(settings.stores)
    upgrade(engine)
    store, promotions = PriceStore(engine), PromotionStore(engine)
    client = configure(settings)
    out: dict = {}
    for region in regions:
        figures: dict = {}
        if store.latest_ts(region) is None:
            history = load_market(region, settings.stores.market_data_dir)
            cut = history.between(run_date - pd.Timedelta(days=STORE_DAYS), run_date)
            exogenous = history.between(run_date - pd.Timedelta(days=STORE_DAYS), run_date + pd.Timedelta(hours=24))
            store.upsert_history(cut.prices, exogenous.exogenous)
            figures["loaded_hours"] = len(cut.prices)
        current = champion(client, region)
        if current is None:
            started = time.perf_counter()
            outcome = retrain_region(settings, store, region)
            figures["train_seconds"] = round(time.perf_counter() - started, 1)
            decision = gate_candidate(
                client, settings, store, promotions, region, outcome.candidate.version, actor="benchmarks.serving"
            )
            figures.update(
                version=outcome.candidate.version,
                test_mae=round(outcome.evaluation["test_mae"], 3),
                test_rmae=round(outcome.evaluation["test_rmae"], 3),
                gate=decision.decision.summary,
            )
            if not decision.decision.promote:
                promote_version(
                    client,
                    promotions,
                    region,
                    outcome.candidate.version,
                    "benchmark: smoke-budget model promoted by hand so the DAG run forecasts every region with a model",
                    "benchmarks.serving",
                )
                figures["promoted_by_hand"] = True
            current = champion(client, region)
            _log(
                f"{region}: trained in {figures['train_seconds']} s, version {current.version} is champion "
                f"({figures['gate']})"
            )
        figures["champion"] = current.uri
        out[region] = figures
    engine.dispose()
    return out


# -- 3: latency ----------------------------------------------------------------------------------


def model_request(settings: Settings, region: str, origin: pd.Timestamp):
    """The origin's raw request from the store, as forecast_generation builds it."""
    from serving.forecasting import prepare_request
    from storage.database import store_engine
    from storage.prices import PriceStore

    store = PriceStore(store_engine(settings.stores))
    request = prepare_request(store, region, origin)
    store.engine.dispose()
    return request


def latency(settings: Settings, region: str, origin: pd.Timestamp, requests_n: int, warmup: int) -> dict:
    """HTTP and in-process calls interleaved, so both see the same load on a shared machine."""
    import mlflow
    import requests

    from registry.models import registered_model_name
    from serving.model_server import start_model_server
    from training.tracking import configure

    request = model_request(settings, region, origin)
    body = json.dumps(request.body(), allow_nan=False)
    uri = f"models:/{registered_model_name(region)}@champion"
    configure(settings)
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(uri)
    load_s = time.perf_counter() - started
    server = start_model_server(uri, settings, settings.stores.home / f"serve-{region}.log")
    load_before = os.getloadavg()
    try:
        session = requests.Session()

        def http() -> float:
            t = time.perf_counter()
            response = server.invoke(body, session)
            elapsed = time.perf_counter() - t
            if response.status_code != 200 or len(response.json()["predictions"]) != 24:
                raise SystemExit(f"{uri}: {response.status_code} {response.text[:2000]}")
            return elapsed

        def local() -> float:
            t = time.perf_counter()
            model.predict(request.table, params=request.params)
            return time.perf_counter() - t

        for _ in range(warmup):
            http(), local()
        timed: dict[str, list[float]] = {"http": [], "in_process": []}
        for i in range(requests_n):
            order = (("http", http), ("in_process", local)) if i % 2 == 0 else (("in_process", local), ("http", http))
            for name, call in order:
                timed[name].append(call())
        served = pd.DataFrame(server.invoke(body, session).json()["predictions"])
    finally:
        server.stop()
    local_yhat = model.predict(request.table, params=request.params)["yhat"].to_numpy(float)
    same = np.allclose(local_yhat, served["yhat"].to_numpy(float), rtol=1e-9)
    return {
        "model_uri": uri,
        "origin": str(origin),
        "rows": len(request.table),
        "request_bytes": len(body),
        "warmup": warmup,
        "server_start_s": round(server.start_s, 2),
        "in_process_load_s": round(load_s, 2),
        "http": _stats(timed["http"]),
        "in_process": _stats(timed["in_process"]),
        "served_equals_in_process": bool(same),
        "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


# -- 4: the forecast DAG -----------------------------------------------------------------------


def dag_run(
    settings: Settings, regions: list[str], run_date: pd.Timestamp, extra_env: dict[str, str] | None = None
) -> dict:
    """``extra_env``: more settings of the run (``benchmarks.scale``'s catalogue, store and registry)."""
    airflow_home = Path(tempfile.mkdtemp(prefix="airflow-", dir=settings.stores.home))  # a fresh metadata DB per run
    env = child_environment(
        BIN,
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}",
        EOPT_HOME=str(settings.stores.home),
        EOPT_REGIONS=",".join(regions),
        EOPT_LOG_LEVEL="WARNING",
        EOPT_AIRFLOW_TASK_RETRIES="0",
        # `airflow dags test` crashes after a successful run of a DAG with a deadline (apache/airflow#73428)
        EOPT_AIRFLOW_DEADLINE_ALERTS="0",
        **{**TRAINING, **(extra_env or {})},
    )
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW_CONN_")}

    def airflow(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "airflow"), *args], env=env, cwd=airflow_home, capture_output=True, text=True, timeout=timeout
        )

    for args in (("db", "migrate"), ("pools", "import", str(PROJECT_ROOT / "airflow" / "pools.json"))):
        result = airflow(*args)
        if result.returncode != 0:
            raise SystemExit(f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    logical = run_date.isoformat()
    started = time.perf_counter()
    result = airflow("dags", "test", DAG_ID, logical)
    wall = time.perf_counter() - started
    (airflow_home / "dag_run.log").write_text(result.stdout + "\n" + result.stderr)
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT task_id, map_index, rendered_map_index, state, start_date, end_date FROM task_instance "
            "WHERE dag_id = ? ORDER BY start_date",
            (DAG_ID,),
        ).fetchall()
    tasks = {}
    for task_id, map_index, label, state, start, end in rows:
        first, last = pd.Timestamp(start), pd.Timestamp(end) if end else None
        # a mapped task has one instance per region: each is its own entry, named by its region
        key = task_id if map_index is None or map_index < 0 else f"{task_id}[{label or map_index}]"
        tasks[key] = {
            "state": state,
            "start": str(first),
            "end": None if last is None else str(last),
            "seconds": round((last - first).total_seconds(), 2) if last is not None else None,
        }
    starts = [pd.Timestamp(t["start"]) for t in tasks.values()]
    ends = [pd.Timestamp(t["end"]) for t in tasks.values() if t["end"] is not None]
    span = round((max(ends) - min(starts)).total_seconds(), 2) if starts and ends else None
    forecasts = _stored_forecasts(settings, run_date)
    return {
        "logical_date": logical,
        "regions": regions,
        "returncode": result.returncode,
        "command_wall_s": round(wall, 2),
        "tasks": tasks,
        "tasks_span_s": span,
        "task_seconds_sum": round(sum(t["seconds"] or 0 for t in tasks.values()), 2),
        "forecasts": forecasts,
        "target": f"tasks finish in under {DAG_TARGET_S:.0f} s for four regions",
        "target_met": bool(
            result.returncode == 0 and span is not None and span < DAG_TARGET_S and len(forecasts) == len(regions)
        ),
        "log_tail": (result.stdout + result.stderr)[-1500:] if result.returncode != 0 else "",
    }


def _stored_forecasts(settings: Settings, run_date: pd.Timestamp) -> dict:
    import sqlalchemy as sa

    from storage.database import store_engine

    engine = store_engine(settings.stores)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT region, model_name, model_version, is_fallback, count(*) FROM forecasts "
                "GROUP BY region, model_name, model_version, is_fallback"
            )
        ).all()
    engine.dispose()
    return {r: {"model": f"{m} v{v}", "is_fallback": bool(f), "hours": n} for r, m, v, f, n in rows}


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="timed requests (and in-process predicts)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    parser.add_argument("--home", type=Path, default=None, help="reuse this EOPT_HOME (train only what it lacks)")
    parser.add_argument("--regions", default="NP,PJM,BE,FR")
    parser.add_argument("--run-date", default="2016-12-31T02:00:00+00:00", help="the forecast run's logical date (UTC)")
    parser.add_argument("--budget", default="smoke", help="tuning budget of the retrainings")
    parser.add_argument("--skip-dag", action="store_true", help="measure serving latency only")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    regions = [r.strip().upper() for r in args.regions.split(",") if r.strip()]
    run_date = pd.Timestamp(args.run_date)
    run_date = run_date.tz_localize("UTC") if run_date.tzinfo is None else run_date.tz_convert("UTC")
    home = (args.home or Path(tempfile.mkdtemp(prefix="eopt-bench-serving-"))).resolve()
    env = {"EOPT_HOME": str(home), "EOPT_TRAINING_BUDGET": args.budget, "EOPT_LOG_LEVEL": "WARNING", **TRAINING}
    settings = Settings.from_env(child_environment(**env))
    settings.ensure_home()
    _log(f"home {home}")

    results: dict = {
        "benchmark": "serving",
        "home": str(home),
        "run_date": str(run_date),
        "budget": args.budget,
        "training_window": TRAINING,
        "machine": describe_machine(),
    }
    results["regions"] = prepare(settings, regions, run_date)
    results["latency"] = latency(
        settings, "NP" if "NP" in regions else regions[0], run_date, args.requests, args.warmup
    )
    lat = results["latency"]
    _log(
        f"HTTP p50 {lat['http']['p50_ms']} ms p99 {lat['http']['p99_ms']} ms; in process p50 "
        f"{lat['in_process']['p50_ms']} ms p99 {lat['in_process']['p99_ms']} ms"
    )
    if DAG_FILE.is_file() and not args.skip_dag:
        results["dag"] = dag_run(settings, regions, run_date)
        _log(
            f"dag: rc {results['dag']['returncode']}, command {results['dag']['command_wall_s']} s, "
            f"tasks span {results['dag']['tasks_span_s']} s"
        )
    else:
        results["dag"] = None

    lines = [
        f"Champion `{lat['model_uri']}`, one origin ({lat['origin']}, {lat['rows']} rows, {lat['request_bytes']:,} bytes "
        f"as `dataframe_split`), {lat['http']['n']} timed calls after {lat['warmup']} warm-up calls.",
        "",
        "| path | p50 ms | p99 ms | mean ms | min ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['mean_ms']:.1f} | {s['min_ms']:.1f} | {s['max_ms']:.1f} |"
            for name, s in (
                ("`POST /invocations` (mlflow models serve, loopback)", lat["http"]),
                ("`mlflow.pyfunc.load_model(...).predict` in process", lat["in_process"]),
            )
        ),
        "",
        f"Server start to first `/ping`: {lat['server_start_s']:.1f} s; in-process model load: {lat['in_process_load_s']:.1f} s; "
        f"served forecast equals the in-process one: {'yes' if lat['served_equals_in_process'] else 'NO'}. "
        f"HTTP and in-process calls alternate, so both see the same machine load (1-minute load average "
        f"{lat['load_average_1m'][0]} before, {lat['load_average_1m'][1]} after, on {os.cpu_count()} cores).",
    ]
    dag = results["dag"]
    if dag:
        lines += [
            "",
            f"## `airflow dags test {DAG_ID} {dag['logical_date']}`, regions {', '.join(dag['regions'])}",
            "",
            "| task | state | seconds |",
            "|---|---|---:|",
            *(
                f"| {task} | {t['state']} | {t['seconds'] if t['seconds'] is not None else ''} |"
                for task, t in dag["tasks"].items()
            ),
            f"| **first task start to last task end** | | **{dag['tasks_span_s']}** |",
            f"| whole `airflow dags test` command (process start, DAG parsing included) | rc {dag['returncode']} | {dag['command_wall_s']} |",
            "",
            "Stored forecasts: "
            + "; ".join(
                f"{r} {f['hours']} h by {f['model']}{' (FALLBACK)' if f['is_fallback'] else ''}"
                for r, f in sorted(dag["forecasts"].items())
            )
            + ".",
            f"Target: {dag['target']} ({'met' if dag['target_met'] else 'NOT met'}).",
        ]
    trained = {r: f for r, f in results["regions"].items() if "train_seconds" in f}
    if trained:
        lines += [
            "",
            "Champions: "
            + "; ".join(
                f"{r} v{f['version']} (retrained in {f['train_seconds']} s, test rMAE {f['test_rmae']}"
                f"{', promoted by hand: ' + f['gate'] if f.get('promoted_by_hand') else ''})"
                for r, f in trained.items()
            )
            + ".",
        ]
    lines += [
        "",
        f"Budget `{args.budget}`; 120-day training window (14 days validation, 14 test); the store holds the "
        f"{STORE_DAYS} days before the run date. Smoke models have at most 150 boosting rounds per tree member "
        "(a `default`-budget model up to 1500), so tree inference is faster than in production.",
    ]
    write_results(
        RESULTS,
        "serving",
        results,
        "Serving: latency of the champion over HTTP and in process; the forecast DAG",
        lines,
    )


if __name__ == "__main__":
    main()
