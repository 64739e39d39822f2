"""Attempts to close the gap to the published ensembles, each scored against the weekly refit as it is.

``refit``: refit each member on the whole window (train + validation) before forecasting.

The weekly refit (``training.backtest``) trains the members on the window minus its last 56
days, which only pick the boosting rounds / epochs and the ensemble weights: the newest eight
weeks never reach the members' training rows. This attempt keeps the rounds, epochs, weights and
intervals chosen on that validation and then refits every member for that many steps on all
origins of the window, so the newest weeks are learnt too.

``seeds``: the CNN-LSTM member is the mean of ``--seeds`` networks that differ only in their
seed (initial weights and batch order); the ensemble weights and intervals are fitted again on
the validation with that member. The CNN-LSTM stops early after 2-14 epochs, so one network is a
noisy draw; averaging draws is what the paper's DNN ensemble does with its four networks.

The forecasters are fitted in one process on the same weeks (``--weeks``, spread evenly over a
market's published test period) with the parameters the whole-period run tuned
(``accuracy_<market>.json``), and scored on the same UTC hours. Writes
``benchmarks/results/attempt_<attempt>_<market>.json``.

    python -m benchmarks.accuracy_attempts NP --weeks 10                       # refit
    python -m benchmarks.accuracy_attempts NP --weeks 10 --attempt seeds --seeds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from benchmarks.accuracy import MARKETS_DIR, PUBLISHED_DIR, RESULTS, day_origins, load_inputs, published_days
from benchmarks.machine import describe_machine
from core.metrics import mae
from core.settings import Settings
from training.backtest import HOUR, forecast_day, training_window
from training.config import TrainingConfig
from training.dataset import build_training_frame
from training.ensemble import EnsembleForecaster, calibrate_intervals, decide
from training.features import (
    HORIZON_HOURS,
    LOOKBACK_HOURS,
    TARGET_COLUMN,
    build_feature_frame,
    complete_origins,
    feature_columns,
    strided_origins,
)
from training.models import model_class


class SeedAverage:
    """Several fitted networks of one model as one member: the mean of their predictions."""

    def __init__(self, fitted: list) -> None:
        self.fitted = fitted

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.mean([f.predict(frame) for f in self.fitted], axis=0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy_attempts", description=__doc__.splitlines()[0])
    parser.add_argument("market", help="NP, PJM, BE or FR (its accuracy_<market>.json must exist)")
    parser.add_argument("--weeks", type=int, default=10, help="test weeks, spread evenly over the period")
    parser.add_argument("--attempt", choices=("refit", "seeds"), default="refit")
    parser.add_argument("--seeds", type=int, default=3, help="CNN-LSTM networks averaged (--attempt seeds)")
    args = parser.parse_args(argv)
    market = args.market.upper()
    recorded = json.loads((RESULTS / f"accuracy_{market}.json").read_text())
    params = recorded["tuned_params"]
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    config = replace(TrainingConfig.from_settings(Settings.from_env(), "default"), threads=1, test_days=0)
    origins = day_origins(published_days(inputs.published, None), inputs.market.timezone)
    picked = np.linspace(0, len(origins) // 7 - 1, args.weeks).round().astype(int)
    region = inputs.market.region
    columns = feature_columns(region)
    started, weeks = time.perf_counter(), []
    for number in picked:
        block_started = time.perf_counter()
        block = origins[number * 7 : (number + 1) * 7]
        data = training_window(inputs.prices, inputs.exogenous, region, block[0], config.window_days)
        frame = build_training_frame(data, config)
        train = frame[frame["split"] == "train"]
        validation = frame[frame["split"] == "validation"].reset_index(drop=True)
        whole = complete_origins(
            build_feature_frame(
                data.prices,
                data.exogenous,
                region,
                strided_origins(
                    data.start + LOOKBACK_HOURS * HOUR, block[0] - (HORIZON_HOURS - 1) * HOUR, config.origin_stride_h
                ),
            )
        )
        assert whole["target_ts"].max() < block[0], "a refit row reaches the forecast origin"
        base, other, steps = {}, {}, {}
        for model in config.models:
            budget = config.budget(model)
            max_steps = budget.max_epochs or budget.max_rounds
            fitted = model_class(model)(
                params[model], columns, seed=config.seed, max_steps=max_steps, device="cpu", threads=1
            )
            steps[model] = max(1, fitted.fit(train, validation).best_step)
            base[model] = fitted
            if args.attempt == "refit":
                # the validation rows are inside the whole window now: early stopping cannot stop before `steps`
                other[model] = model_class(model)(
                    params[model], columns, seed=config.seed, max_steps=steps[model], device="cpu", threads=1
                )
                other[model].fit(whole, validation)
            elif model == "cnn_lstm":
                draws = [fitted]
                for extra in range(1, args.seeds):
                    draw = model_class(model)(
                        params[model], columns, seed=config.seed + extra, max_steps=max_steps, device="cpu", threads=1
                    )
                    draw.fit(train, validation)
                    draws.append(draw)
                other[model] = SeedAverage(draws)
            else:
                other[model] = fitted
        actual = validation[TARGET_COLUMN].to_numpy()
        calibrated = {}
        for name, members in (("base", base), (args.attempt, other)):
            if name == "refit":  # keeps what the validation chose for the base members
                calibrated[name] = calibrated["base"]
                continue
            predictions = {m: f.predict(validation) for m, f in members.items()}
            decision = decide(predictions, actual)
            combined = sum(w * predictions[m] for m, w in decision.weights.items())
            calibrated[name] = (
                decision,
                calibrate_intervals(actual, combined, validation["horizon"].to_numpy(), config.interval_coverage),
            )
        week = {
            "first_origin": str(block[0]),
            "steps": steps,
            **{f"{name}_weights": c[0].weights for name, c in calibrated.items()},
        }
        for name, members in (("base", base), (args.attempt, other)):
            decision, intervals = calibrated[name]
            forecaster = EnsembleForecaster(region, members, decision, intervals, columns)
            rows = pd.concat(
                [forecast_day(forecaster, inputs.prices, inputs.exogenous, region, o) for o in block], ignore_index=True
            )
            y = inputs.prices.reindex(pd.DatetimeIndex(rows["target_ts"])).to_numpy()
            week[f"{name}_mae"] = mae(y, rows["yhat"])
            for model in config.models:
                week[f"{name}_{model}_mae"] = mae(y, rows[f"yhat_{model}"])
        week["seconds"] = round(time.perf_counter() - block_started, 1)
        weeks.append(week)
        print(
            f"{market} week of {block[0]:%Y-%m-%d}: MAE base {week['base_mae']:.3f}, "
            f"{args.attempt} {week[args.attempt + '_mae']:.3f} "
            f"({week['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    mean = {key: float(np.mean([w[key] for w in weeks])) for key in weeks[0] if key.endswith("_mae")}
    what = {
        "refit": "refit members on the whole window with the validation's step counts",
        "seeds": f"CNN-LSTM member = mean of {args.seeds} seeds, weights refitted",
    }[args.attempt]
    ratio = mean[f"{args.attempt}_mae"] / mean["base_mae"]
    record = {
        "market": market,
        "attempt": args.attempt,
        "description": what,
        "seeds": args.seeds,
        "weeks": weeks,
        "mean_mae": mean,
        "ratio_to_base": ratio,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    path = RESULTS / f"attempt_{args.attempt}_{market}.json"  # not accuracy_*: the summary table globs those
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{market}: mean MAE base {mean['base_mae']:.3f}, {args.attempt} {mean[args.attempt + '_mae']:.3f} "
        f"(ratio {ratio:.3f}); {path}",
        file=sys.stderr,
    )
    return record


if __name__ == "__main__":
    main()
