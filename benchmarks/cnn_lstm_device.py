"""The CNN-LSTM member's training on CPU and on a CUDA GPU: seconds per epoch, tuning and refit time, accuracy.

What the weekly retraining's ``train_cnn_lstm`` step does, without MLflow, so that the figures
compare devices and not logging: per region, the two-year window ending at the bundled history's
last hour, the production splits (training origins every 7 h, 8 validation weeks, 8 test weeks),
an Optuna study of the budget's trials (same search space, pruner and seed), the best parameters
refitted, and the test weeks scored. Before that, on the first region, the seconds per epoch of
the networks in ``EPOCH_CONFIGS`` (early stopping off) on this device.

    python -m benchmarks.cnn_lstm_device --device cuda [--regions NP,PJM,BE,FR] [--budgets default,thorough]
        [--stop-after-s 420] [--epoch-only] [--git-commit SHA]

Each run writes ``benchmarks/results/cnn_lstm_<device>.json`` after every region (a run cut short
keeps what it finished) and ``cnn_lstm_devices.md``, the table of every device recorded so far.
``--stop-after-s`` starts no new study once that many seconds have passed and shortens a study's
timeout to the time left (the row then says ``(timeout)``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from benchmarks.machine import describe_machine
from core.markets import load_market
from core.metrics import evaluate
from core.settings import PROJECT_ROOT, Settings
from training.backtest import training_window
from training.config import TrainingConfig
from training.dataset import build_training_frame, check_training_data
from training.features import NAIVE_COLUMN, TARGET_COLUMN, feature_columns
from training.models.cnn_lstm import CnnLstmModel
from training.tuning import trials_frame, tune

RESULTS = Path(__file__).resolve().parent / "results"
THROUGHPUT_EPOCHS = 10
# Networks the epoch timing covers: the defaults and the search space's largest, at its smallest and largest batch.
EPOCH_CONFIGS = {
    "default": {},
    "largest, batch 32": {"channels": 64, "kernel_size": 5, "hidden_size": 128, "num_layers": 2, "batch_size": 32},
    "largest, batch 128": {"channels": 64, "kernel_size": 5, "hidden_size": 128, "num_layers": 2, "batch_size": 128},
}


def _device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU, {torch.get_num_threads()} torch threads"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _frame(region: str, config: TrainingConfig) -> pd.DataFrame:
    """The production feature frame of the window that ends at the bundled history's last hour."""
    history = load_market(region, PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"].sort_index()
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    data = training_window(prices, exogenous, region, prices.index.max() + pd.Timedelta(hours=1), config.window_days)
    check_training_data(data, config)  # raises TrainingDataError naming every problem
    return build_training_frame(data, config)


def seconds_per_epoch(
    frame: pd.DataFrame, region: str, device: str, threads: int, overrides: dict | None = None
) -> dict:
    """Default parameters (with ``overrides``), early stopping off: one epoch's time, apart from a fit's fixed costs.

    A first one-epoch fit pays the process's one-time start (CUDA context, kernel loading) and is
    reported on its own; then a 1-epoch and a ``1 + THROUGHPUT_EPOCHS``-epoch fit: their
    difference over ``THROUGHPUT_EPOCHS`` is the epoch, the rest of the 1-epoch fit is the fixed
    cost of a fit (building the samples, scaling, copying to the device).
    """
    train, validation = (frame[frame["split"] == s] for s in ("train", "validation"))
    params = {**CnnLstmModel.default_params(), **(overrides or {}), "patience": THROUGHPUT_EPOCHS + 1}

    def timed_fit(epochs: int) -> float:
        model = CnnLstmModel(params, feature_columns(region), seed=42, max_steps=epochs, device=device, threads=threads)
        _sync(device)
        started = time.perf_counter()
        fit = model.fit(train, validation)
        _sync(device)
        assert fit.steps_run == epochs, f"early stopping ended the {epochs}-epoch fit at {fit.steps_run}"
        return time.perf_counter() - started

    first = timed_fit(1)
    one = timed_fit(1)
    many = timed_fit(1 + THROUGHPUT_EPOCHS)
    epoch = (many - one) / THROUGHPUT_EPOCHS
    return {
        "epochs": THROUGHPUT_EPOCHS,
        "seconds_per_epoch": round(epoch, 3),
        "fit_fixed_seconds": round(one - epoch, 2),
        "first_fit_seconds": round(first, 2),
        "train_origins": int(train["origin"].nunique()),
        "batches_per_epoch": -(-int(train["origin"].nunique()) // int(params["batch_size"])),
    }


def tune_and_refit(
    frame: pd.DataFrame, region: str, config: TrainingConfig, device: str, threads: int, storage_url: str
) -> dict:
    columns = feature_columns(region)
    train, validation, test = (frame[frame["split"] == s] for s in ("train", "validation", "test"))
    budget = config.budget("cnn_lstm")
    _sync(device)
    started = time.perf_counter()
    result = tune(
        "cnn_lstm",
        region,
        train,
        validation,
        columns,
        budget=budget,
        storage_url=storage_url,
        window_end=frame["target_ts"].max() + pd.Timedelta(hours=1),
        seed=config.seed,
        device=device,
        threads=threads,
    )
    tuned = time.perf_counter() - started
    model = CnnLstmModel(
        result.best_params, columns, seed=config.seed, max_steps=budget.max_epochs, device=device, threads=threads
    )
    fit = model.fit(train, validation)
    _sync(device)
    refit = time.perf_counter() - started - tuned
    test_metrics = evaluate(test[TARGET_COLUMN], model.predict(test), test[NAIVE_COLUMN])
    trials = trials_frame(storage_url, result.study_name)
    fit_seconds = [float(s) for s in trials.get("user_attrs_fit_seconds", pd.Series(dtype=float)).dropna()]
    return {
        "budget": config.budget_name,
        "trials_budget": budget.trials,
        "timeout_s": budget.timeout_s,
        "max_epochs": budget.max_epochs,
        "complete": result.complete,
        "pruned": result.pruned,
        "stopped_by_timeout": result.complete + result.pruned < budget.trials,
        "tuning_seconds": round(tuned, 1),
        "refit_seconds": round(refit, 1),
        "total_seconds": round(tuned + refit, 1),
        "trial_fit_seconds_median": round(float(pd.Series(fit_seconds).median()), 2) if fit_seconds else None,
        "best_params": result.best_params,
        "best_epoch": fit.best_step,
        "epochs_run": fit.steps_run,
        "validation_mae": round(fit.validation_mae, 4),
        "test_mae": round(test_metrics["mae"], 4),
        "test_rmae": round(test_metrics["rmae"], 4),
    }


def write_table() -> Path:
    """``cnn_lstm_devices.md``: every ``cnn_lstm_<device>.json`` recorded, one row per region and budget."""
    rows, machines = [], []
    for path in sorted(RESULTS.glob("cnn_lstm_*.json")):
        recorded = json.loads(path.read_text())
        device = recorded["device_name"]
        machine = recorded["machine"]
        epoch_machine = recorded.get("epoch_machine", machine)
        machines.append(
            f"- `{path.name}`: {device}; {machine['cpu']}, {machine['cores']} cores; torch "
            f"{recorded['torch']}; studies: commit {machine['git_commit']}, recorded {machine['recorded_at']}; "
            f"epochs: commit {epoch_machine['git_commit']}, recorded {epoch_machine['recorded_at']}"
        )
        for region, budgets in recorded["regions"].items():
            for budget, r in budgets.items():
                timeout = " (timeout)" if r["stopped_by_timeout"] else ""
                rows.append(
                    f"| {device} | {region} | {budget} | {r['complete'] + r['pruned']} ({r['pruned']}){timeout} "
                    f"| {r['tuning_seconds']:.1f} | {r['trial_fit_seconds_median']} | {r['refit_seconds']:.1f} "
                    f"| {r['best_epoch']} | {r['test_mae']:.3f} | {r['test_rmae']:.3f} |"
                )
    epoch_rows = []
    for path in sorted(RESULTS.glob("cnn_lstm_*.json")):
        recorded = json.loads(path.read_text())
        for name, e in recorded.get("epochs", {}).items():
            epoch_rows.append(
                f"| {recorded['device_name']} | {name} | {e['batches_per_epoch']} | {e['seconds_per_epoch']:.3f} "
                f"| {e['fit_fixed_seconds']:.2f} | {e['first_fit_seconds']:.2f} |"
            )
    lines = [
        "# CNN-LSTM training by device: the weekly member's tuning and refit",
        "",
        "| device | region | budget | trials (pruned) | tuning s | median trial fit s | refit s | best epoch "
        "| test MAE | test rMAE |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *machines,
        "",
        f"One epoch on NP (2,092 training origins; early stopping off): the difference of a "
        f"{THROUGHPUT_EPOCHS + 1}-epoch and a 1-epoch fit over {THROUGHPUT_EPOCHS}; a fit's fixed cost is the rest of "
        "the 1-epoch fit (a negative one: that fit's epoch ran faster than the mean, noise of a few tenths of a "
        "second); the process's first fit also pays one-time start-up (on a GPU: the CUDA context).",
        "",
        "| device | network | batches per epoch | s per epoch | fit fixed s | first fit s |",
        "|---|---|---|---|---|---|",
        *epoch_rows,
        "",
        "Same window, splits, search space, seed and budget as the retraining's `train_cnn_lstm` step, "
        "without MLflow (`python -m benchmarks.cnn_lstm_device --device cpu|cuda`).",
        "",
    ]
    out = RESULTS / "cnn_lstm_devices.md"
    out.write_text("\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--regions", default="NP,PJM,BE,FR")
    parser.add_argument("--budgets", default="default")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per fit (0: all cores)")
    parser.add_argument("--stop-after-s", type=float, default=0, help="start no new study after this many seconds")
    parser.add_argument(
        "--git-commit", help="the commit of this tree, where its .git cannot say (a copy on a GPU machine)"
    )
    parser.add_argument(
        "--epoch-only", action="store_true", help="only the epoch timing; merged into the device's recorded results"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device cuda: torch {torch.__version__} finds no CUDA GPU; run with --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    begun = time.perf_counter()
    results = {
        "machine": describe_machine(args.git_commit),
        "device": args.device,
        "device_name": _device_name(args.device),
        "torch": torch.__version__,
        "regions": {},
    }
    out = RESULTS / f"cnn_lstm_{args.device}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    regions, budgets = args.regions.split(","), args.budgets.split(",")
    with tempfile.TemporaryDirectory(prefix="eopt-cnn-lstm-") as home:
        settings = Settings.from_env({"EOPT_HOME": home})
        # the window and splits come from the settings, not the budget: one frame per region serves every budget
        frames = {regions[0]: _frame(regions[0], TrainingConfig.from_settings(settings, budgets[0]))}
        results["epochs"] = {}
        for name, overrides in EPOCH_CONFIGS.items():
            results["epochs"][name] = {
                "region": regions[0],
                **overrides,
                **seconds_per_epoch(frames[regions[0]], regions[0], args.device, args.threads, overrides),
            }
            print(f"{regions[0]} {name}: {results['epochs'][name]}", file=sys.stderr, flush=True)
        if args.epoch_only:
            recorded = json.loads(out.read_text()) if out.exists() else {"regions": {}}
            out.write_text(
                json.dumps(
                    {**recorded, "epochs": results["epochs"], "epoch_machine": results["machine"]},
                    indent=2,
                    default=str,
                )
                + "\n"
            )
            print(write_table().read_text())
            return
        for budget in budgets:  # every region's default study before any longer one
            config = TrainingConfig.from_settings(settings, budget)
            for region in regions:
                if args.stop_after_s and time.perf_counter() - begun > args.stop_after_s:
                    print(f"{region}/{budget}: skipped, past --stop-after-s {args.stop_after_s:.0f}", file=sys.stderr)
                    continue
                if region not in frames:
                    frames[region] = _frame(region, config)
                run_config = config
                if args.stop_after_s:  # the study's own timeout, shortened to what is left
                    left = max(30.0, args.stop_after_s - (time.perf_counter() - begun))
                    cnn = config.budget("cnn_lstm")
                    run_config = replace(
                        config, budgets={**config.budgets, "cnn_lstm": replace(cnn, timeout_s=min(cnn.timeout_s, left))}
                    )
                storage = f"sqlite:///{Path(home) / f'optuna-{region}-{budget}.db'}"
                run = tune_and_refit(frames[region], region, run_config, args.device, args.threads, storage)
                results["regions"].setdefault(region, {})[budget] = run
                results["seconds"] = round(time.perf_counter() - begun, 1)
                out.write_text(json.dumps(results, indent=2, default=str) + "\n")
                print(
                    f"{region}/{budget}: tuning {run['tuning_seconds']} s ({run['complete']} complete, "
                    f"{run['pruned']} pruned), refit {run['refit_seconds']} s, test MAE {run['test_mae']}",
                    file=sys.stderr,
                    flush=True,
                )
    print(write_table().read_text())


if __name__ == "__main__":
    main()
