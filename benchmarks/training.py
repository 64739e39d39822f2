"""Wall time, peak memory and test accuracy of one tuned retraining per region, model by model.

Each step runs in its own process, as each DAG task does: ``prepare`` (extract + features +
MLflow parent run), ``train_xgboost``, ``train_lightgbm``, ``train_cnn_lstm``, ``train_lear``,
then ``evaluate+register``. Peak memory is the step process's maximum resident set size. A fresh
embedded store, MLflow store and Optuna storage in a temporary folder; the bundled history of
each region; the training window ending at the region's last hour.

Target: one region's full retraining with the ``default`` budget under 10 minutes on 2 CPU
cores, and the NP ensemble's test-window rMAE at or below 0.6.

    python -m benchmarks.training [--regions NP,PJM,BE,FR] [--budget default] [--device cpu]
"""

from __future__ import annotations

import argparse
import functools
import json
import operator
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.machine import describe_machine, write_results
from core.settings import child_environment

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = ("prepare", "train_xgboost", "train_lightgbm", "train_cnn_lstm", "train_lear", "evaluate+register")


def run_step(step: str, region: str) -> dict:
    """Child process: one step of one region's retraining; prints its figures as JSON."""
    from core.settings import Settings
    from pipelines.model_retraining import Retraining
    from storage.database import store_engine
    from storage.prices import PriceStore

    settings = Settings.from_env()
    store = PriceStore(store_engine(settings.stores))
    as_of = store.latest_ts(region) + pd.Timedelta(hours=1)
    job = Retraining.open(settings, region, as_of)
    started = time.perf_counter()
    out: dict = {}
    if step == "prepare":
        job.extract_training_data(store)
        out = {"rows": job.engineer_features()["rows"]}
    elif step.startswith("train_"):
        summary = job.train_member(step.removeprefix("train_"))
        out = {
            "test": summary["test"],
            "validation_mae": summary["validation_mae"],
            "device": summary["device"],
            "trials_complete": summary.get("tuning", {}).get("complete", 0),  # LEAR is not tuned
            "trials_pruned": summary.get("tuning", {}).get("pruned", 0),
            "best_params": summary["best_params"],
        }
    else:
        evaluation = job.evaluate_ensemble()
        candidate = job.register()
        out = {**evaluation, "version": candidate.version}
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def _child(step: str, region: str, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.training", "--step", step, "--region", region],
        capture_output=True,
        text=True,
        env=env,
    )
    if result.returncode != 0:
        raise SystemExit(f"{region} {step} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", default="NP,PJM,BE,FR")
    parser.add_argument("--budget", default="default")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--region", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="training", help="results file name (e.g. training_gpu)")
    args = parser.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, args.region), default=str))
        return

    regions = [r.strip().upper() for r in args.regions.split(",") if r.strip()]
    home = Path(tempfile.mkdtemp(prefix="eopt-bench-training-"))
    env = child_environment(
        EOPT_HOME=str(home),
        EOPT_TRAINING_BUDGET=args.budget,
        EOPT_TRAINING_DEVICE=args.device,
        EOPT_LOG_LEVEL="WARNING",
        PYTHONWARNINGS="ignore",
    )
    eopt = [sys.executable, "-m", "eopt.cli"]
    subprocess.run([*eopt, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*eopt, "load-history", *functools.reduce(operator.iadd, (["--region", r] for r in regions), [])],
        env=env,
        check=True,
        capture_output=True,
    )

    results: dict = {"machine": describe_machine(), "budget": args.budget, "device": args.device, "regions": {}}
    for region in regions:
        steps = {}
        for step in STEPS:
            print(f"{region}: {step} ...", file=sys.stderr, flush=True)
            steps[step] = _child(step, region, env)
            print(
                f"{region}: {step} {steps[step]['seconds']:.1f} s, peak {steps[step]['peak_rss_mb']:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
        results["regions"][region] = {
            "steps": steps,
            "total_seconds": round(sum(s["seconds"] for s in steps.values()), 1),
        }

    lines = [
        "| region | step | wall s | peak RSS MB | test MAE | test rMAE | trials (pruned) |",
        "|---|---|---|---|---|---|---|",
    ]
    for region, r in results["regions"].items():
        for step, s in r["steps"].items():
            mae = s.get("test", {}).get("mae", s.get("test_mae"))
            rmae = s.get("test", {}).get("rmae", s.get("test_rmae"))
            trials = (
                f"{s['trials_complete'] + s['trials_pruned']} ({s['trials_pruned']})" if "trials_complete" in s else ""
            )
            lines.append(
                f"| {region} | {step} | {s['seconds']:.1f} | {s['peak_rss_mb']:.0f} | "
                f"{'' if mae is None else f'{mae:.3f}'} | {'' if rmae is None else f'{rmae:.3f}'} | {trials} |"
            )
        lines.append(f"| **{region}** | **whole retraining** | **{r['total_seconds']:.1f}** | | | | |")
    lines += [
        "",
        f"Budget `{args.budget}`, device `{args.device}`; each step a separate process (as DAG tasks are). "
        "Target: a region's whole retraining under 600 s on 2 CPU cores; NP rMAE <= 0.6.",
    ]
    write_results(
        RESULTS, args.name, results, "Training: wall time, peak memory and test accuracy per model and region", lines
    )


if __name__ == "__main__":
    main()
