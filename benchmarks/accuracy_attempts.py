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

``lear``: the LEAR linear member (``training.lear``) alone, and the three members plus LEAR
stacked (``training.ensemble.stack_weights``: simplex weights fitted on the validation, shrunk
toward equal weights by the share its last four weeks chose), and ``mean``: the base ensemble
and LEAR averaged half and half (a rule, nothing fitted). LEAR's validation forecasts come
from a LEAR fitted on the window's days before the validation (as the other members'), the
test week's from a LEAR fitted on the whole window. Every forecaster is also folded onto the
local clock hours of the published file and scored beside the published LEAR and DNN ensembles
(MAE, and the multivariate Diebold-Mariano test over all the weeks' days).

The forecasters are fitted in one process on the same weeks (``--weeks``, spread evenly over a
market's published test period) with the parameters the whole-period run tuned
(``accuracy_<market>.json``), and scored on the same UTC hours. Writes
``benchmarks/results/attempt_<attempt>_<market>.json``.

    python -m benchmarks.accuracy_attempts NP --weeks 10                       # refit
    python -m benchmarks.accuracy_attempts NP --weeks 10 --attempt seeds --seeds 3
``lear-penalties``: LEAR alone, refitted weekly as the retraining fits it (the validation fit and
the deployed fit), against the same refits where only every ``--penalty-every``-th week runs the
information criterion on the long windows (half and all of the days) and the weeks between reuse
those penalties (``LearModel.fit(penalties=...)``): the criterion's LARS paths on the long windows
are most of LEAR's CPU time. Consecutive weeks from the start of the test period (``--weeks``; 8
are the ``--quick`` weeks); MAE on the test weeks' UTC hours and on the validation, CPU seconds.

``trees``: the XGBoost and LightGBM members with the tuned parameters as they are (``base``), with
the asinh target (``asinh``), with recency weights (``recency``, half-life ``--half-life`` days)
and with both, each pair fitted on the same window; ``chosen`` takes, per member and week, the
variant with the lowest validation MAE (what the tuner would do with the options in its search
space). MAE of each member and of the two members' ensemble on the test weeks' UTC hours.

``warm``: the CNN-LSTM alone, one network refitted weekly from scratch (``cold1``, the weekly
retraining as it is) against a member of ``--seeds`` networks (``CnnLstmModel`` with ``networks``)
fitted from scratch in the first week and every ``--cold-every`` weeks (0: never again) and, in the
weeks between, either continued from the week before's networks (``warm``,
``CnnLstmModel.fit(start_from=...)``, early-stopping patience ``--warm-patience``, the tuned learning
rate times ``--warm-lr-scale``) or kept as they are (``frozen``, no fit; the weights and intervals
are still fitted on the week's validation); ``--cold-reference`` adds the ``--seeds`` networks
fitted from scratch every week (``cold``). Consecutive weeks from the start of the test period; MAE,
epochs and CPU seconds of each. The question is whether several networks can cost what one cold
network costs and still forecast better.

``lear-daily``: LEAR alone, as the weekly retraining fits it (``weekly``: one fit on the 730-day
extract before the week's first origin, forecasting the week's seven days) against a refit before
every day (``daily``: the same extract ending at that day's origin, as the paper recalibrated),
only the 56- and 84-day windows refitted before every day and the long ones kept from the week's
fit (``daily_short``: what a forecast could refit from three months of history), the same with
the penalties the week's fit chose for the short windows (``daily_short_reused``: a Lasso per hour,
no criterion: about a tenth of the cost), and each chosen variant again on an extract of up to ``--long-days``
days (``long_weekly``, ``long_daily_short_reused``, ...: the paper's four years, whose windows are then 56,
84, half and all of those days; recorded as ``attempt_lear_daily_<market>_long<days>.json``). A daily refit
runs the criterion on the short windows and reuses the week's penalties on the long ones (by
their rank: the long windows grow by a day with the extract). The features are built once over
the whole history and sliced per fit, so a day's fit sees exactly the origins before it.
Consecutive weeks from the start of the test period; MAE on the test days' UTC hours, the
published LEAR and DNN ensembles on the same days' clock hours, CPU seconds.

    python -m benchmarks.accuracy_attempts NP --weeks 8 --attempt lear
    python -m benchmarks.accuracy_attempts NP --weeks 8 --attempt lear-penalties
    python -m benchmarks.accuracy_attempts BE --weeks 12 --attempt trees
    python -m benchmarks.accuracy_attempts FR --weeks 24 --attempt warm --seeds 3 --cold-every 4
    python -m benchmarks.accuracy_attempts BE --weeks 52 --attempt lear-daily

``combine``: no refitting: the members' forecasts of a whole-period run (``--forecasts``: its
``forecasts.parquet``; default: the one its ``accuracy_<market>.json`` names) combined by other
rules than the run's validation weights, on the published file's clock hours: ``equal`` (the
members' mean), ``pair`` (LEAR and the CNN-LSTM half and half, the trees left out: the paper's
LEAR+DNN average with our two members that do not early-stop on the validation that weighs them
or, for the network, do so least), ``trailing<N>`` (the simplex weights minimising MAE, ``training.ensemble.fit_weights``,
fitted before each day on the members' forecasts and the realised prices of the ``N`` days before it:
weights that follow the members' recent form daily instead of the weekly validation's) and
``trailing<N>_hourly`` (the same per clock hour). Every rule sees only days before the day it
combines; all are scored on the days after the longest window, beside the run's own ensemble
(``recorded``) and the published LEAR and DNN ensembles; the rules with no window (``equal``,
``pair``) are also scored over the whole period.

    python -m benchmarks.accuracy_attempts FR --attempt combine --windows 28,56,91

``served``: no refitting either: a whole-period run replayed with each block's weights and
intervals fitted on the forecasts its members served in the ``N`` days before it
(``training.ensemble.calibrate_on_served``, what ``benchmarks/accuracy.py --served-weight-days N``
does; the validation's while fewer than 28 days are served) instead of on its validation. The
members' forecasts do not depend on the weights, so this is the walk-forward with that option
on, the run's members and all (but for the one hour a year a fall-back day forecasts from the
ensemble's own forecast). Scored as ``benchmarks/accuracy.py`` scores a run: MAE on the published
clock hours over the whole period beside the run's own ensemble (Diebold-Mariano both ways) and
the published ensembles, and the quantiles beside the conformal-on-LEAR anchor.

    python -m benchmarks.accuracy_attempts BE --attempt served --windows 56,91,182 --forecasts PATH
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from benchmarks.accuracy import (
    MARKETS_DIR,
    MEMBERS,
    PUBLISHED_DIR,
    PUBLISHED_ENSEMBLES,
    REAL_PRICE,
    RESULTS,
    MarketInputs,
    comparison_frame,
    day_origins,
    load_inputs,
    published_days,
    quantile_comparison,
)
from benchmarks.daily_network import DailyNetwork, suggest_params
from benchmarks.machine import describe_machine
from core.members import member_column
from core.metrics import diebold_mariano, mae
from core.quantiles import QUANTILE_COLUMNS
from core.settings import Settings
from training.backtest import HOUR, forecast_day, local_clock_hours, served_before, training_window
from training.config import MODEL_NAMES, TrainingConfig
from training.dataset import build_training_frame
from training.ensemble import (
    LEAR_NETWORK,
    EnsembleForecaster,
    calibrate_intervals,
    calibrate_on_served,
    decide,
    fit_weights,
    stack_weights,
)
from training.features import (
    HORIZON_HOURS,
    LOOKBACK_HOURS,
    TARGET_COLUMN,
    build_feature_frame,
    complete_origins,
    day_ahead_origins,
    feature_columns,
    strided_origins,
)
from training.lear import (
    DAY,
    PRICE_LAG_DAYS,
    SHORT_WINDOWS_DAYS,
    LearFit,
    LearModel,
    calibration_windows,
    fit_window,
    lear_features,
)
from training.models import model_class
from training.models.cnn_lstm import CnnLstmModel


def write_attempt(record: dict, name: str, summary: str) -> dict:
    """Write an attempt's record to ``benchmarks/results/<name>.json`` and say on stderr what it found, and where.

    Attempts are named ``attempt_*``, never ``accuracy_*``: the summary table of ACCURACY.md globs those.
    """
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{summary}; {path}", file=sys.stderr)
    return record


def week_frames(inputs, config: TrainingConfig, first_origin: pd.Timestamp):
    """The retraining's window before ``first_origin``: (window data, train rows, validation rows)."""
    data = training_window(inputs.prices, inputs.exogenous, inputs.market.region, first_origin, config.window_days)
    frame = build_training_frame(data, config)
    train = frame[frame["split"] == "train"]
    return data, train, frame[frame["split"] == "validation"].reset_index(drop=True)


def forecast_block(
    inputs, config: TrainingConfig, members: dict, validation: pd.DataFrame, block: pd.DatetimeIndex
) -> tuple[EnsembleForecaster, pd.DataFrame, np.ndarray]:
    """Members weighted and calibrated on the validation as the retraining does, then the block's days
    forecast from the prices before each origin: (forecaster, the forecast rows, the realised prices)."""
    region = inputs.market.region
    actual = validation[TARGET_COLUMN].to_numpy()
    predictions = {m: f.predict(validation) for m, f in members.items()}
    decision = decide(predictions, actual)
    combined = sum(w * predictions[m] for m, w in decision.weights.items())
    intervals = calibrate_intervals(actual, combined, validation["horizon"].to_numpy(), config.interval_coverage)
    forecaster = EnsembleForecaster(region, members, decision, intervals, feature_columns(region))
    rows = pd.concat(
        [forecast_day(forecaster, inputs.prices, inputs.exogenous, region, o) for o in block], ignore_index=True
    )
    return forecaster, rows, inputs.prices.reindex(pd.DatetimeIndex(rows["target_ts"])).to_numpy()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy_attempts", description=__doc__.splitlines()[0])
    parser.add_argument("market", help="NP, PJM, BE or FR (its accuracy_<market>.json must exist)")
    parser.add_argument("--weeks", type=int, default=10, help="test weeks, spread evenly over the period")
    parser.add_argument(
        "--attempt",
        choices=("refit", "seeds", "lear", "lear-penalties", "lear-daily", "trees", "warm", "combine", "served", "dnn"),
        default="refit",
    )
    parser.add_argument("--half-life", type=float, default=182.0, help="recency half-life in days (--attempt trees)")
    parser.add_argument(
        "--penalty-every", type=int, default=4, help="weeks per run of LEAR's criterion (--attempt lear-penalties)"
    )
    parser.add_argument(
        "--long-days",
        type=int,
        default=0,
        help="also an extract of this many days (--attempt lear-daily; 1456: the paper's 4 years; 0: not)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(LEAR_DAILY_VARIANTS),
        help="the refits compared (--attempt lear-daily; weekly is the reference, always in)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="CNN-LSTM networks averaged (--attempt seeds, warm)")
    parser.add_argument(
        "--warm-patience", type=int, default=3, help="early-stopping patience of a warm-started fit (--attempt warm)"
    )
    parser.add_argument(
        "--cold-every",
        type=int,
        default=0,
        help="weeks between the chains' restarts from scratch; 0: only the first week (--attempt warm)",
    )
    parser.add_argument(
        "--cold-reference",
        action="store_true",
        help="also fit the --seeds networks from scratch every week (--attempt warm)",
    )
    parser.add_argument(
        "--warm-lr-scale",
        type=float,
        default=1.0,
        help="the tuned learning rate times this in a warm-started fit (--attempt warm)",
    )
    parser.add_argument(
        "--models",
        default=",".join(MODEL_NAMES),
        help="members of the base ensemble (--attempt lear; default: all three)",
    )
    parser.add_argument(
        "--forecasts",
        type=Path,
        default=None,
        help="a whole-period run's forecasts.parquet (--attempt combine, served; default: the one "
        "accuracy_<market>.json names)",
    )
    parser.add_argument(
        "--windows", default="28,56,91", help="trailing windows in days, comma-separated (--attempt combine, served)"
    )
    parser.add_argument("--trials", type=int, default=40, help="tuner trials of the daily network (--attempt dnn)")
    parser.add_argument(
        "--networks", type=int, default=4, help="networks averaged in the daily network member (--attempt dnn)"
    )
    args = parser.parse_args(argv)
    if args.attempt == "dnn":
        return dnn_attempt(args)
    if args.attempt == "combine":
        return combine_attempt(args)
    if args.attempt == "served":
        return served_attempt(args)
    if args.attempt == "lear":
        return lear_attempt(args)
    if args.attempt == "lear-penalties":
        return lear_penalties_attempt(args)
    if args.attempt == "lear-daily":
        return lear_daily_attempt(args)
    if args.attempt == "trees":
        return trees_attempt(args)
    if args.attempt == "warm":
        return warm_attempt(args)
    market = args.market.upper()
    recorded = json.loads((RESULTS / f"accuracy_{market}.json").read_text())
    params = recorded["tuned_params"]
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    # the members the whole-period run tuned; LEAR is fitted apart (training.lear.fit_lear) and has its own attempt
    tuned_members = tuple(m for m in MODEL_NAMES if m in params)
    config = replace(
        TrainingConfig.from_settings(Settings.from_env(), "default"), threads=1, test_days=0, models=tuned_members
    )
    origins = day_origins(published_days(inputs.published, None), inputs.market.timezone)
    picked = np.linspace(0, len(origins) // 7 - 1, args.weeks).round().astype(int)
    region = inputs.market.region
    columns = feature_columns(region)
    started, weeks = time.perf_counter(), []
    for number in picked:
        block_started = time.perf_counter()
        block = origins[number * 7 : (number + 1) * 7]
        data, train, validation = week_frames(inputs, config, block[0])
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
                    params[model],
                    columns,
                    seed=config.seed,
                    max_steps=steps[model],
                    device="cpu",
                    threads=1,
                )
                other[model].fit(whole, validation)
            elif model == "cnn_lstm":  # network k of this member has seed config.seed + k: the first is `fitted`'s
                other[model] = CnnLstmModel(
                    params[model] | {"networks": args.seeds},
                    columns,
                    seed=config.seed,
                    max_steps=max_steps,
                    threads=1,
                )
                other[model].fit(train, validation)
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
    return write_attempt(
        record,
        f"attempt_{args.attempt}_{market}",
        f"{market}: mean MAE base {mean['base_mae']:.3f}, {args.attempt} {mean[args.attempt + '_mae']:.3f} "
        f"(ratio {ratio:.3f})",
    )


def _lear_rows(lear: LearModel, prices: pd.Series, exogenous: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """LEAR's forecast of every row of a day's forecast, from the prices before the day's origin.

    The 25th hour of a fall-back day (the ``recursive`` row) takes LEAR's last hour, 23 h after the origin.
    """
    origin = pd.Timestamp(rows["origin"].iloc[0])
    day = lear.predict(prices[prices.index < origin], exogenous, pd.DatetimeIndex([origin])).iloc[0].to_numpy()
    horizon = np.where(rows["recursive"].to_numpy(), HORIZON_HOURS - 1, rows["horizon"].to_numpy(dtype=int))
    return day[horizon]


def _validation_lear(lear: LearModel, data, validation: pd.DataFrame) -> np.ndarray:
    origins = pd.DatetimeIndex(validation["origin"].unique())
    table = lear.predict(data.prices, data.exogenous, origins)
    return table.to_numpy()[
        origins.get_indexer(pd.DatetimeIndex(validation["origin"])), validation["horizon"].to_numpy(dtype=int)
    ]


def lear_attempt(args: argparse.Namespace) -> dict:
    """LEAR alone and the members plus LEAR stacked, against the base ensemble and the published ensembles."""
    from benchmarks.accuracy import PUBLISHED_ENSEMBLES, REAL_PRICE
    from core.metrics import diebold_mariano

    market = args.market.upper()
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        raise SystemExit(f"error: --models {args.models!r}: choose among {', '.join(MODEL_NAMES)}")
    recorded = json.loads((RESULTS / f"accuracy_{market}.json").read_text())
    params = recorded["tuned_params"]
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    config = replace(
        TrainingConfig.from_settings(Settings.from_env(), "default"), threads=1, test_days=0, models=models
    )
    timezone = inputs.market.timezone
    origins = day_origins(published_days(inputs.published, None), timezone)
    picked = np.linspace(0, len(origins) // 7 - 1, args.weeks).round().astype(int)
    region = inputs.market.region
    columns = feature_columns(region)
    started, weeks, clock_parts = time.perf_counter(), [], []
    forecasters = ("base", "lear", "stack", "mean")
    for number in picked:
        block_started = time.perf_counter()
        block = origins[number * 7 : (number + 1) * 7]
        data, train, validation = week_frames(inputs, config, block[0])
        members = {}
        for model in models:
            budget = config.budget(model)
            members[model] = model_class(model)(
                params[model],
                columns,
                seed=config.seed,
                max_steps=budget.max_epochs or budget.max_rounds,
                device="cpu",
                threads=1,
            )
            members[model].fit(train, validation)
        members_s = time.perf_counter() - block_started
        lear_started = time.perf_counter()
        validation_start = pd.Timestamp(validation["origin"].min())
        lear_validation = LearModel(region).fit(data.prices, data.exogenous, validation_start)
        lear = LearModel(region).fit(data.prices, data.exogenous, block[0])
        assert lear.last_training_target is not None and lear.last_training_target < block[0]
        assert lear_validation.last_training_target is not None
        assert lear_validation.last_training_target < validation_start
        lear_s = time.perf_counter() - lear_started
        actual = validation[TARGET_COLUMN].to_numpy()
        forecaster, rows, _ = forecast_block(inputs, config, members, validation, block)
        decision = forecaster.decision
        predictions = {m: f.predict(validation) for m, f in members.items()}
        predictions["lear"] = _validation_lear(lear_validation, data, validation)
        validation_days = validation["origin"].nunique()
        stack = stack_weights(predictions, actual, fit_rows=HORIZON_HOURS * (validation_days // 2))
        rows["yhat_lear"] = np.concatenate(
            [_lear_rows(lear, inputs.prices, inputs.exogenous, day) for _, day in rows.groupby("origin", sort=True)]
        )
        rows["yhat_stack"] = sum(w * rows[f"yhat_{m}"].to_numpy() for m, w in stack.weights.items())
        rows["yhat_base"] = rows["yhat"]
        rows["yhat_mean"] = 0.5 * rows["yhat_base"] + 0.5 * rows["yhat_lear"]
        rows["price"] = inputs.prices.reindex(pd.DatetimeIndex(rows["target_ts"])).to_numpy()
        clock = local_clock_hours(rows[["target_ts", "price", *(f"yhat_{f}" for f in forecasters)]], timezone)
        published = inputs.published.reindex(clock.index)
        if not np.allclose(clock["price"], published[REAL_PRICE], atol=0.01):
            raise SystemExit(f"error: {market}: the folded actual prices differ from the published file's")
        for key, column in PUBLISHED_ENSEMBLES.items():
            clock[f"yhat_{key}"] = published[column].to_numpy(dtype=float)
        clock["price"] = published[REAL_PRICE].to_numpy(dtype=float)
        clock_parts.append(clock)
        y = rows["price"].to_numpy()
        week = {
            "first_origin": str(block[0]),
            "base_weights": decision.weights,
            "stack_weights": stack.weights,
            "stack_shrinkage": stack.shrinkage,
            "stack_holdout_by_shrinkage": stack.holdout_mae,
            "lear_windows_days": list(lear.windows),
            "lear_validation_mae": float(np.mean(np.abs(predictions["lear"] - actual))),
            **{f"{f}_mae": mae(y, rows[f"yhat_{f}"]) for f in forecasters},
            **{f"base_{m}_mae": mae(y, rows[f"yhat_{m}"]) for m in models},
            **{
                f"clock_{who}_mae": mae(clock["price"], clock[f"yhat_{who}"])
                for who in (*forecasters, *PUBLISHED_ENSEMBLES)
            },
            "members_seconds": round(members_s, 1),
            "lear_seconds": round(lear_s, 1),
            "seconds": round(time.perf_counter() - block_started, 1),
        }
        weeks.append(week)
        print(
            f"{market} week of {block[0]:%Y-%m-%d}: MAE base {week['base_mae']:.3f}, lear {week['lear_mae']:.3f}, "
            f"stack {week['stack_mae']:.3f} (shrinkage {stack.shrinkage}), mean {week['mean_mae']:.3f}; published LEAR "
            f"{week['clock_lear_ensemble_mae']:.3f}, DNN {week['clock_dnn_ensemble_mae']:.3f} "
            f"({week['seconds']:.0f} s, LEAR {lear_s:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    clock = pd.concat(clock_parts)
    y = clock["price"].to_numpy()
    overall = {who: mae(y, clock[f"yhat_{who}"]) for who in (*forecasters, *PUBLISHED_ENSEMBLES)}
    ratios = {
        f"{who}_vs_{key}": overall[who] / overall[key] for who in forecasters for key in (*PUBLISHED_ENSEMBLES, "base")
    }
    tests = {
        f"{who}_vs_{key}": {
            "p_ours_better": diebold_mariano(y, clock[f"yhat_{key}"], clock[f"yhat_{who}"]).p_value,
            "p_published_better": diebold_mariano(y, clock[f"yhat_{who}"], clock[f"yhat_{key}"]).p_value,
        }
        for who in ("lear", "stack", "mean")
        for key in (*PUBLISHED_ENSEMBLES, "base")
    }
    record = {
        "market": market,
        "attempt": "lear",
        "description": "LEAR member alone (training.lear) and the members plus LEAR in a shrunk simplex stack "
        "(training.ensemble.stack_weights), and the base ensemble and LEAR averaged half and half, "
        "each refitted weekly on the production window",
        "models": list(models),
        "weeks_picked": [int(n) for n in picked],
        "days": len(clock) // HORIZON_HOURS,
        "clock_hours_mae": overall,
        "ratios": ratios,
        "diebold_mariano": tests,
        "weeks": weeks,
        "mean_mae": {key: float(np.mean([w[key] for w in weeks])) for key in weeks[0] if key.endswith("_mae")},
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    suffix = "" if models == MODEL_NAMES else "_" + "_".join(models)
    hourly = Settings.from_env().stores.home / "backtests" / f"attempt_lear{suffix}_{market}.parquet"
    hourly.parent.mkdir(parents=True, exist_ok=True)
    clock.to_parquet(hourly)
    record["hourly_forecasts"] = str(hourly)
    return write_attempt(
        record,
        f"attempt_lear{suffix}_{market}",
        f"{market}: clock-hour MAE over {record['days']} days: base {overall['base']:.3f}, lear {overall['lear']:.3f}, "
        f"stack {overall['stack']:.3f}, mean {overall['mean']:.3f}, published LEAR {overall['lear_ensemble']:.3f}, DNN {overall['dnn_ensemble']:.3f}; "
        f"{record['seconds']:.0f} s",
    )


def lear_penalties_attempt(args: argparse.Namespace) -> dict:
    """LEAR refitted weekly with its criterion every week against the long windows' penalties reused between runs."""
    market = args.market.upper()
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    config = replace(TrainingConfig.from_settings(Settings.from_env(), "default"), threads=1, test_days=0)
    origins = day_origins(published_days(inputs.published, None), inputs.market.timezone)
    region = inputs.market.region
    started, weeks = time.perf_counter(), []
    cpu = {"every_week": 0.0, "reused": 0.0}
    errors: dict[str, list[np.ndarray]] = {"every_week": [], "reused": []}
    stored: dict[str, dict[int, np.ndarray]] = {}
    for number in range(args.weeks):
        block = origins[number * 7 : (number + 1) * 7]
        data = training_window(inputs.prices, inputs.exogenous, region, block[0], config.window_days)
        frame = build_training_frame(data, config)
        validation = frame[frame["split"] == "validation"].reset_index(drop=True)
        ends = {"validation": pd.Timestamp(validation["origin"].min()), "deployed": block[0]}
        actual = np.stack([inputs.prices[o : o + (HORIZON_HOURS - 1) * HOUR].to_numpy() for o in block])
        week: dict = {"first_origin": str(block[0]), "criterion_run": number % args.penalty_every == 0}
        for variant in ("every_week", "reused"):
            cpu_started = time.process_time()
            fits = {}
            for name, end in ends.items():
                reuse = {} if variant == "every_week" or week["criterion_run"] else stored[name]
                fits[name] = LearModel(region).fit(data.prices, data.exogenous, end, penalties=reuse)
                if variant == "reused" and week["criterion_run"]:
                    long = fits[name].fits[len(SHORT_WINDOWS_DAYS) :]
                    stored[name] = {f.window_days: f.alphas for f in long}
            cpu[variant] += time.process_time() - cpu_started
            forecast = fits["deployed"].predict(inputs.prices, inputs.exogenous, block).to_numpy()
            errors[variant].append(forecast - actual)
            week[f"{variant}_mae"] = float(np.mean(np.abs(forecast - actual)))
            week[f"{variant}_validation_mae"] = float(
                np.mean(
                    np.abs(
                        _validation_lear(fits["validation"], data, validation) - validation[TARGET_COLUMN].to_numpy()
                    )
                )
            )
            week[f"{variant}_windows"] = list(fits["deployed"].windows)
        weeks.append(week)
        print(
            f"{market} week of {block[0]:%Y-%m-%d}: LEAR MAE criterion every week {week['every_week_mae']:.4f}, "
            f"penalties reused {week['reused_mae']:.4f} (criterion run: {week['criterion_run']})",
            file=sys.stderr,
            flush=True,
        )
    every, reused = np.concatenate(errors["every_week"]), np.concatenate(errors["reused"])
    record = {
        "market": market,
        "attempt": "lear-penalties",
        "description": "LEAR alone, refitted weekly (validation fit and deployed fit) with the information criterion "
        f"every week, against the long windows' penalties reused for {args.penalty_every - 1} week(s) after each run",
        "weeks": args.weeks,
        "penalty_every_weeks": args.penalty_every,
        "test_mae": {"every_week": float(np.mean(np.abs(every))), "reused": float(np.mean(np.abs(reused)))},
        "validation_mae_mean": {
            v: float(np.mean([w[f"{v}_validation_mae"] for w in weeks])) for v in ("every_week", "reused")
        },
        "max_abs_forecast_difference": float(np.max(np.abs(every - reused))),
        "lear_cpu_seconds": {k: round(v, 1) for k, v in cpu.items()},
        "per_week": weeks,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    return write_attempt(
        record,
        f"attempt_lear_penalties_{market}",
        f"{market}: LEAR MAE criterion every week {record['test_mae']['every_week']:.4f}, penalties reused "
        f"{record['test_mae']['reused']:.4f}; CPU {record['lear_cpu_seconds']}",
    )


LEAR_DAILY_VARIANTS = ("weekly", "daily", "daily_short", "daily_short_reused")


def _lear_fit(
    x: np.ndarray, y: np.ndarray, reuse: list[np.ndarray] | None = None, short: bool = False
) -> list[LearFit]:
    """LEAR's windows on these rows (the newest last); ``reuse``: the long windows' penalties, by rank;
    ``short``: only the short windows."""
    windows = calibration_windows(len(x))
    long = [w for w in windows if w > max(SHORT_WINDOWS_DAYS)]
    if short:
        windows, long = tuple(w for w in windows if w not in long), []
    given = dict(zip(long, reuse, strict=True)) if reuse is not None else {}
    return [fit_window(x[-w:], y[-w:], w, given.get(w)) for w in windows]


def _add_cpu(cpu: dict[str, float], key: str, since: float) -> float:
    """Add the process's CPU seconds since ``since`` to ``cpu[key]``; the clock now."""
    now = time.process_time()
    cpu[key] += now - since
    return now


def _lear_forecast(fits: list[LearFit], x: np.ndarray) -> np.ndarray:
    return np.mean([f.predict(x) for f in fits], axis=0)


@dataclass(frozen=True)
class MarketLearDays:
    """A market's LEAR rows (one per local day, :func:`training.lear.lear_features`) from its history's start to
    the last test day of the attempt's weeks, built once and sliced per fit."""

    market: str
    inputs: MarketInputs
    settings: Settings
    config: TrainingConfig
    days: pd.DatetimeIndex  # the published test days
    origins: pd.DatetimeIndex  # their local midnights
    history: pd.DatetimeIndex  # every local midnight of the rows
    x: np.ndarray
    y: np.ndarray
    complete: np.ndarray  # rows with every input and all 24 prices

    def rows_before(self, origin: pd.Timestamp, extract_days: int) -> np.ndarray:
        """The complete rows whose inputs lie in the ``extract_days`` of prices before ``origin``."""
        inside = (self.history >= origin - (extract_days - max(PRICE_LAG_DAYS)) * DAY) & (self.history < origin)
        return np.flatnonzero(inside & self.complete)

    def week(self, number: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """The ``number``-th test week's origins and their rows."""
        block = self.origins[number * 7 : (number + 1) * 7]
        at = self.history.get_indexer(block)
        if (at < 0).any():
            raise ValueError(
                f"{self.market}: test origin {block[int(np.argmin(at))]} is not among the history's origins"
            )
        return block, at

    def save_hourly(self, stem: str, weeks: int, actual: np.ndarray, forecasts: dict[str, np.ndarray]) -> Path:
        """The forecasts of the first ``weeks`` test weeks, hour by hour beside the actual prices, as
        ``<EOPT_HOME>/attempts/<stem>.parquet``."""
        hourly = pd.DataFrame(
            {
                "origin": np.repeat(self.origins[: weeks * 7], HORIZON_HOURS),
                "horizon": np.tile(np.arange(HORIZON_HOURS), weeks * 7),
                "actual": actual.ravel(),
                **{name: values.ravel() for name, values in forecasts.items()},
            }
        )
        hourly["target_ts"] = hourly["origin"] + hourly["horizon"] * HOUR
        folder = self.settings.stores.home / "attempts"
        folder.mkdir(parents=True, exist_ok=True)
        hourly.to_parquet(folder / f"{stem}.parquet")
        return folder / f"{stem}.parquet"

    def published_errors(self, number: int) -> dict[str, np.ndarray]:
        """The published ensembles' errors on the ``number``-th test week's clock hours."""
        published = self.inputs.published
        hours = published.loc[published.index.normalize().isin(self.days[number * 7 : (number + 1) * 7])]
        return {k: (hours[c] - hours[REAL_PRICE]).to_numpy(dtype=float) for k, c in PUBLISHED_ENSEMBLES.items()}


def market_lear_days(market: str, weeks: int) -> MarketLearDays:
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    settings = Settings.from_env()
    config = replace(TrainingConfig.from_settings(settings, "default"), threads=1, test_days=0)
    days = published_days(inputs.published, None)
    origins = day_origins(days, inputs.market.timezone)
    # every local-midnight origin from the history's start to the last test day's (the end is exclusive)
    history = day_ahead_origins(inputs.market.region, inputs.prices.index.min(), origins[weeks * 7 - 1] + HOUR)
    features, targets = lear_features(inputs.prices, inputs.exogenous, inputs.market.region, history)
    complete = (features.notna().all(axis=1) & targets.notna().all(axis=1)).to_numpy()
    return MarketLearDays(
        market, inputs, settings, config, days, origins, history, features.to_numpy(), targets.to_numpy(), complete
    )


def short_windows_recalibrated(
    data: MarketLearDays, weekly: list[LearFit], block: pd.DatetimeIndex, at: np.ndarray, extract_days: int
) -> np.ndarray:
    """Each day of the block forecast by the week's long windows and its short ones refitted on the days before the
    day's origin with the week's penalties: the walk-forward's LEAR (``daily_short_reused``)."""
    long_window = max(SHORT_WINDOWS_DAYS)
    long = [f for f in weekly if f.window_days > long_window]
    short = [f for f in weekly if f.window_days <= long_window]
    forecasts = []
    for origin, i in zip(block, at, strict=True):
        before = data.rows_before(origin, extract_days)
        x, y = data.x[before], data.y[before]
        fits = [fit_window(x[-f.window_days :], y[-f.window_days :], f.window_days, f.alphas) for f in short]
        forecasts.append(_lear_forecast([*fits, *long], data.x[[i]]))
    return np.vstack(forecasts)


def lear_daily_attempt(args: argparse.Namespace) -> dict:
    """LEAR refitted weekly (the retraining) against refitted daily, on the 730-day extract and on a longer one."""
    market = args.market.upper()
    data = market_lear_days(market, args.weeks)
    config = data.config
    x_all, y_all, rows_before = data.x, data.y, data.rows_before
    extracts = {"": config.window_days, **({"long_": args.long_days} if args.long_days else {})}
    chosen = [v.strip() for v in args.variants.split(",")]
    unknown = sorted(set(chosen) - set(LEAR_DAILY_VARIANTS))
    if unknown or "weekly" not in chosen:
        raise SystemExit(f"--variants: {', '.join(unknown) or 'weekly missing'}; from {', '.join(LEAR_DAILY_VARIANTS)}")
    variants = (
        *(v for v in LEAR_DAILY_VARIANTS if v in chosen),
        *(f"long_{v}" for v in LEAR_DAILY_VARIANTS if v in chosen and args.long_days),
    )
    started, weeks = time.perf_counter(), []
    cpu = dict.fromkeys(variants, 0.0)
    forecasts: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    actuals: list[np.ndarray] = []
    published_errors: dict[str, list[np.ndarray]] = {k: [] for k in PUBLISHED_ENSEMBLES}
    long_window = max(SHORT_WINDOWS_DAYS)

    def refitted_daily(block: pd.DatetimeIndex, at: np.ndarray, extract: int, refit) -> np.ndarray:
        """Each day of the block forecast by ``refit(x, y)``'s windows, fitted on the extract before its origin."""
        return np.vstack(
            [
                _lear_forecast(refit(x_all[rows_before(o, extract)], y_all[rows_before(o, extract)]), x_all[[i]])
                for o, i in zip(block, at, strict=True)
            ]
        )

    for number in range(args.weeks):
        block, at = data.week(number)
        actuals.append(y_all[at])
        week: dict = {"first_origin": str(block[0])}
        for prefix, extract in extracts.items():
            clock = time.process_time()
            rows = rows_before(block[0], extract)
            weekly = _lear_fit(x_all[rows], y_all[rows])
            forecasts[f"{prefix}weekly"].append(_lear_forecast(weekly, x_all[at]))
            clock = _add_cpu(cpu, f"{prefix}weekly", clock)
            week[f"{prefix}weekly_windows"] = [f.window_days for f in weekly]
            long = [f for f in weekly if f.window_days > long_window]
            penalties = [f.alphas for f in long]
            if f"{prefix}daily" in variants:
                forecasts[f"{prefix}daily"].append(
                    refitted_daily(block, at, extract, lambda x, y, reuse=penalties: _lear_fit(x, y, reuse))
                )
                clock = _add_cpu(cpu, f"{prefix}daily", clock)
            if f"{prefix}daily_short" in variants:
                forecasts[f"{prefix}daily_short"].append(
                    refitted_daily(block, at, extract, lambda x, y, kept=long: [*_lear_fit(x, y, short=True), *kept])
                )
                clock = _add_cpu(cpu, f"{prefix}daily_short", clock)
            if f"{prefix}daily_short_reused" in variants:
                forecasts[f"{prefix}daily_short_reused"].append(
                    short_windows_recalibrated(data, weekly, block, at, extract)
                )
                _add_cpu(cpu, f"{prefix}daily_short_reused", clock)
        for key, errors in data.published_errors(number).items():
            published_errors[key].append(errors)
        for variant in variants:
            week[f"{variant}_mae"] = float(np.mean(np.abs(forecasts[variant][-1] - actuals[-1])))
        weeks.append(week)
        print(
            f"{market} week {number + 1}/{args.weeks} of {block[0]:%Y-%m-%d}: LEAR MAE "
            + ", ".join(f"{v} {week[f'{v}_mae']:.3f}" for v in variants),
            file=sys.stderr,
            flush=True,
        )
    actual = np.concatenate(actuals)
    overall = {v: float(np.mean(np.abs(np.concatenate(forecasts[v]) - actual))) for v in variants}
    published = {k: float(np.mean(np.abs(np.concatenate(e)))) for k, e in published_errors.items()}
    stem = f"lear_daily_{market}" + (f"_long{args.long_days}" if args.long_days else "")
    hourly = data.save_hourly(stem, args.weeks, actual, {v: np.concatenate(forecasts[v]) for v in variants})
    record = {
        "market": market,
        "attempt": "lear-daily",
        "description": f"LEAR alone: refitted weekly on the {config.window_days}-day extract (weekly, the retraining), "
        "before every day (daily), or only its short windows before every day (daily_short), or those with the "
        "penalties the week's fit chose for them (daily_short_reused, no criterion run)"
        + (f", and each again on an extract of up to {args.long_days} days (long_<variant>)" if args.long_days else "")
        + "; daily refits reuse the week's long-window penalties; consecutive weeks from the start of the test "
        "period, MAE on their UTC hours, the published ensembles on the same days' clock hours",
        "weeks": args.weeks,
        "extract_days": extracts,
        "mae": overall,
        "ratio_to_weekly": {v: overall[v] / overall["weekly"] for v in variants},
        "published_mae": published,
        "ratio_to_lear_ensemble": {v: overall[v] / published["lear_ensemble"] for v in variants},
        "weeks_better_than_weekly": {
            v: int(sum(w[f"{v}_mae"] < w["weekly_mae"] for w in weeks)) for v in variants if v != "weekly"
        },
        "cpu_seconds": {v: round(c, 1) for v, c in cpu.items()},
        "per_week": weeks,
        "hourly_forecasts": str(hourly),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    return write_attempt(
        record,
        f"attempt_{stem}",
        f"{market}: LEAR MAE over {args.weeks} weeks "
        + ", ".join(f"{v} {overall[v]:.3f} ({record['cpu_seconds'][v]:.0f} CPU s)" for v in variants)
        + f"; published LEAR-Ens {published['lear_ensemble']:.3f}, DNN-Ens {published['dnn_ensemble']:.3f}",
    )


def trees_attempt(args: argparse.Namespace) -> dict:
    """The tree members with and without the asinh target and recency weights, on the same weeks."""
    market = args.market.upper()
    recorded = json.loads((RESULTS / f"accuracy_{market}.json").read_text())
    tuned = recorded["tuned_params"]
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    trees = ("xgboost", "lightgbm")
    config = replace(TrainingConfig.from_settings(Settings.from_env(), "default"), threads=1, test_days=0, models=trees)
    variants = {
        "base": {},
        "asinh": {"target_transform": "asinh"},
        "recency": {"recency_half_life_days": args.half_life},
        "asinh_recency": {"target_transform": "asinh", "recency_half_life_days": args.half_life},
    }
    origins = day_origins(published_days(inputs.published, None), inputs.market.timezone)
    picked = np.linspace(0, len(origins) // 7 - 1, args.weeks).round().astype(int)
    region = inputs.market.region
    columns = feature_columns(region)
    started, weeks = time.perf_counter(), []
    errors: dict[str, list[np.ndarray]] = {}
    for number in picked:
        block_started = time.perf_counter()
        block = origins[number * 7 : (number + 1) * 7]
        _, train, validation = week_frames(inputs, config, block[0])
        week: dict = {"first_origin": str(block[0])}
        fitted: dict[str, dict] = {}
        for variant, options in variants.items():
            fitted[variant] = {}
            for model in trees:
                budget = config.budget(model)
                member = model_class(model)(
                    {**tuned[model], **options}, columns, seed=config.seed, max_steps=budget.max_rounds, threads=1
                )
                result = member.fit(train, validation)
                fitted[variant][model] = member
                week[f"{variant}_{model}_validation_mae"] = result.validation_mae
                week[f"{variant}_{model}_rounds"] = result.best_step
        chosen = {model: min(variants, key=lambda v, m=model: week[f"{v}_{m}_validation_mae"]) for model in trees}
        fitted["chosen"] = {model: fitted[chosen[model]][model] for model in trees}
        week["chosen"] = chosen
        for variant, members in fitted.items():
            _, rows, y = forecast_block(inputs, config, members, validation, block)
            for who, column in (("ensemble", "yhat"), *((m, f"yhat_{m}") for m in trees)):
                week[f"{variant}_{who}_mae"] = mae(y, rows[column])
                errors.setdefault(f"{variant}_{who}", []).append(rows[column].to_numpy() - y)
        week["seconds"] = round(time.perf_counter() - block_started, 1)
        weeks.append(week)
        print(
            f"{market} week of {block[0]:%Y-%m-%d}: two-tree ensemble MAE "
            + ", ".join(f"{v} {week[f'{v}_ensemble_mae']:.3f}" for v in fitted)
            + f" (chosen {chosen}; {week['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    overall = {key: float(np.mean(np.abs(np.concatenate(parts)))) for key, parts in errors.items()}
    ratios = {key: value / overall[f"base_{key.split('_')[-1]}"] for key, value in overall.items()}
    record = {
        "market": market,
        "attempt": "trees",
        "description": "XGBoost and LightGBM with the tuned parameters, with the asinh target, with recency "
        f"weights (half-life {args.half_life:g} days), with both, and the variant each member's validation "
        "MAE chose; MAE on the test weeks' UTC hours",
        "half_life_days": args.half_life,
        "weeks_picked": [int(n) for n in picked],
        "mae": overall,
        "ratio_to_base": ratios,
        "weeks": weeks,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    return write_attempt(
        record,
        f"attempt_trees_{market}",
        f"{market}: two-tree ensemble MAE "
        + ", ".join(f"{v} {overall[f'{v}_ensemble']:.3f}" for v in (*variants, "chosen"))
        + f"; {record['seconds']:.0f} s",
    )


def warm_attempt(args: argparse.Namespace) -> dict:
    """One cold network a week (the product today) against ``--seeds`` networks restarted cold every
    ``--cold-every`` weeks and, between restarts, warm-started from the week before (``warm``) or kept as
    they are (``frozen``); with ``--cold-reference`` also the ``--seeds`` networks cold every week."""
    market = args.market.upper()
    tuned = json.loads((RESULTS / f"accuracy_{market}.json").read_text())["tuned_params"]["cnn_lstm"]
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    config = replace(
        TrainingConfig.from_settings(Settings.from_env(), "default"), threads=1, test_days=0, models=("cnn_lstm",)
    )
    max_epochs = config.budget("cnn_lstm").max_epochs
    origins = day_origins(published_days(inputs.published, None), inputs.market.timezone)
    columns = feature_columns(inputs.market.region)
    several = {**tuned, "networks": args.seeds}
    warm_params = {
        **several,
        "patience": args.warm_patience,
        "learning_rate": tuned["learning_rate"] * args.warm_lr_scale,
    }

    def fitted(params: dict, train: pd.DataFrame, validation: pd.DataFrame, start: CnnLstmModel | None = None):
        """(model, epochs of all its networks, CPU seconds)."""
        cpu_started = time.process_time()
        model = CnnLstmModel(params, columns, seed=config.seed, max_steps=max_epochs, threads=1)
        epochs = model.fit(train, validation, start_from=start).steps_run
        return model, epochs, round(time.process_time() - cpu_started, 1)

    variants = ("cold1", *(("cold",) if args.cold_reference else ()), "warm", "frozen")
    started, weeks = time.perf_counter(), []
    errors: dict[str, list[np.ndarray]] = {}
    last: dict[str, CnnLstmModel] = {}  # each chain's model of the week before
    for number in range(args.weeks):
        block = origins[number * 7 : (number + 1) * 7]
        _, train, validation = week_frames(inputs, config, block[0])
        restart = not last or (args.cold_every > 0 and number % args.cold_every == 0)
        week: dict = {"first_origin": str(block[0]), "restart": restart}
        models: dict[str, CnnLstmModel] = {}
        models["cold1"], week["cold1_epochs"], week["cold1_cpu_seconds"] = fitted(tuned, train, validation)
        if args.cold_reference:
            models["cold"], week["cold_epochs"], week["cold_cpu_seconds"] = fitted(several, train, validation)
        if restart:  # the chains start over from the cold networks (the same fit, when the reference made it)
            if args.cold_reference:
                fresh, epochs, cpu = models["cold"], week["cold_epochs"], week["cold_cpu_seconds"]
            else:
                fresh, epochs, cpu = fitted(several, train, validation)
            for chain in ("warm", "frozen"):
                models[chain], week[f"{chain}_epochs"], week[f"{chain}_cpu_seconds"] = fresh, epochs, cpu
        else:
            models["warm"], week["warm_epochs"], week["warm_cpu_seconds"] = fitted(
                warm_params, train, validation, last["warm"]
            )
            models["frozen"], week["frozen_epochs"], week["frozen_cpu_seconds"] = last["frozen"], 0, 0.0
        last = {chain: models[chain] for chain in ("warm", "frozen")}
        for variant in variants:
            _, rows, y = forecast_block(inputs, config, {"cnn_lstm": models[variant]}, validation, block)
            week[f"{variant}_mae"] = mae(y, rows["yhat"])
            errors.setdefault(variant, []).append(rows["yhat"].to_numpy() - y)
        weeks.append(week)
        print(
            f"{market} week {number + 1}/{args.weeks} of {block[0]:%Y-%m-%d}{' (restart)' if restart else ''}: "
            "CNN-LSTM MAE "
            + ", ".join(f"{v} {week[f'{v}_mae']:.3f}" for v in variants)
            + "; CPU s "
            + ", ".join(f"{v} {week[f'{v}_cpu_seconds']:.0f}" for v in variants),
            file=sys.stderr,
            flush=True,
        )
    overall = {v: float(np.mean(np.abs(np.concatenate(errors[v])))) for v in variants}
    cold_every = f"every {args.cold_every} weeks" if args.cold_every else "in the first week only"
    record = {
        "market": market,
        "attempt": "warm",
        "description": "the CNN-LSTM alone: one network refitted weekly from scratch (cold1, the product today)"
        + (f", {args.seeds} networks refitted weekly from scratch (cold)" if args.cold_reference else "")
        + f"; {args.seeds} networks fitted from scratch {cold_every} and between those warm-started from the "
        f"week before (warm, patience {args.warm_patience}) or kept as they are (frozen); consecutive weeks "
        "from the start of the test period, MAE on their UTC hours",
        "networks": args.seeds,
        "seed": config.seed,
        "cold_every_weeks": args.cold_every,
        "warm_patience": args.warm_patience,
        "warm_lr_scale": args.warm_lr_scale,
        "mae": overall,
        "ratio_to_cold1": {v: overall[v] / overall["cold1"] for v in variants},
        "cpu_seconds": {v: round(sum(w[f"{v}_cpu_seconds"] for w in weeks), 1) for v in variants},
        "epochs_per_week": {v: float(np.mean([w[f"{v}_epochs"] for w in weeks])) for v in variants},
        "weeks": weeks,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    cpu = record["cpu_seconds"]
    suffix = (f"_cold{args.cold_every}" if args.cold_every else "") + (
        f"_lr{args.warm_lr_scale:g}" if args.warm_lr_scale != 1.0 else ""
    )
    return write_attempt(
        record,
        f"attempt_warm_{market}{suffix}",
        f"{market}: CNN-LSTM MAE over {len(weeks)} weeks "
        + ", ".join(f"{v} {overall[v]:.3f} ({cpu[v]:.0f} CPU s)" for v in variants),
    )


def trailing_combination(members: np.ndarray, actual: np.ndarray, window: int, per_hour: bool = False) -> np.ndarray:
    """Each day's combination of the members with the simplex weights that minimise the MAE of the
    ``window`` days before it (:func:`training.ensemble.fit_weights`), per hour of the day with ``per_hour``.

    ``members``: (days, hours, members) forecasts; ``actual``: (days, hours) realised prices. A day's
    weights read nothing of that day or later; the first ``window`` days have no weights (NaN).
    """
    days, hours, count = members.shape
    if actual.shape != (days, hours):
        raise ValueError(f"{actual.shape} realised prices for forecasts of shape {members.shape}")
    combined = np.full((days, hours), np.nan)
    names = [str(i) for i in range(count)]
    slots = [slice(h, h + 1) for h in range(hours)] if per_hour else [slice(None)]
    for day in range(window, days):
        past, realised = members[day - window : day], actual[day - window : day]
        for hour in slots:
            fitted = fit_weights({n: past[:, hour, i].ravel() for i, n in enumerate(names)}, realised[:, hour].ravel())
            combined[day, hour] = members[day, hour] @ np.array([fitted[n] for n in names])
    return combined


def diebold_mariano_vs_recorded(y: np.ndarray, rules: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Each rule's one-sided Diebold-Mariano p-values against ``rules["recorded"]`` (the run's own ensemble), both
    ways: that the rule is better, and that the recorded ensemble is."""
    recorded = rules["recorded"]
    return {
        name: {
            "p_rule_better": diebold_mariano(y, recorded, values).p_value,
            "p_recorded_better": diebold_mariano(y, values, recorded).p_value,
        }
        for name, values in rules.items()
        if name != "recorded"
    }


def weeks_better(actual: np.ndarray, rule: np.ndarray, reference: np.ndarray) -> int:
    """The whole weeks (7 consecutive rows of ``actual``'s days, from the first) in which ``rule``'s MAE is below
    ``reference``'s; all three are (days, hours)."""
    weeks = actual.shape[0] // 7
    errors = [np.abs(f[: weeks * 7] - actual[: weeks * 7]).reshape(weeks, -1).mean(axis=1) for f in (rule, reference)]
    return int((errors[0] < errors[1]).sum())


def combine_attempt(args: argparse.Namespace) -> dict:
    """The recorded members' forecasts combined by other rules (module docstring, ``combine``); no model is fitted."""
    market = args.market.upper()
    recorded = json.loads((RESULTS / f"accuracy_{market}.json").read_text())
    path = args.forecasts or Path(recorded["hourly_forecasts"]) / "forecasts.parquet"
    if not path.is_file():
        raise SystemExit(
            f"{market}: no forecasts at {path}; pass --forecasts with the forecasts.parquet of a whole-period "
            "run (python -m benchmarks.accuracy writes it under .eopt/backtests)"
        )
    windows = sorted({int(w) for w in args.windows.split(",") if w.strip()})
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    forecasts = pd.read_parquet(path)
    clock = local_clock_hours(forecasts, inputs.market.timezone)
    days = published_days(inputs.published, None)
    frame = comparison_frame(inputs, clock, days)
    members = [m for m in MEMBERS if m in frame.columns]
    if len(frame) != len(days) * HORIZON_HOURS or len(members) < 2:
        raise SystemExit(
            f"{market}: {path} holds {len(frame)} clock hours of {len(members)} member(s); "
            f"a whole-period run of {len(days)} days with two or more members is needed"
        )
    shape = (len(days), HORIZON_HOURS)
    stacked = np.stack([frame[m].to_numpy().reshape(shape) for m in members], axis=-1)
    actual = frame["actual"].to_numpy().reshape(shape)
    started = time.perf_counter()
    rules: dict[str, np.ndarray] = {
        "recorded": frame["ensemble"].to_numpy().reshape(shape),
        "equal": stacked.mean(axis=-1),
    }
    if set(LEAR_NETWORK) <= set(members):  # the pair EOPT_ENSEMBLE_WEIGHTS=lear_network weighs half and half
        rules["pair"] = stacked[..., [members.index(m) for m in LEAR_NETWORK]].mean(axis=-1)
    fixed = [name for name in rules if name != "recorded"]
    for window in windows:
        for per_hour in (False, True):
            name = f"trailing{window}" + ("_hourly" if per_hour else "")
            rules[name] = trailing_combination(stacked, actual, window, per_hour)
            print(f"{market}: {name} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    scored = slice(windows[-1], None)  # the days every rule has
    y = actual[scored].ravel()
    published = {key: frame[key].to_numpy().reshape(shape)[scored].ravel() for key in PUBLISHED_ENSEMBLES}
    forecasts_by = {name: values[scored].ravel() for name, values in rules.items()}
    overall = {name: mae(y, values) for name, values in {**forecasts_by, **published}.items()}
    whole = {
        name: mae(actual.ravel(), frame[name].to_numpy() if name in PUBLISHED_ENSEMBLES else rules[name].ravel())
        for name in ("recorded", *fixed, *PUBLISHED_ENSEMBLES)
    }
    record = {
        "market": market,
        "attempt": "combine",
        "description": "the members' forecasts of a whole-period run combined by other rules than its validation "
        "weights (equal; LEAR and the CNN-LSTM half and half; simplex MAE weights fitted daily on the trailing N "
        "days, overall or per clock hour), scored on the published file's clock hours after the longest window "
        "(the rules with no window also over the whole period)",
        "forecasts": str(path),
        "run": {"commit": recorded["machine"]["git_commit"], "recorded_at": recorded["machine"]["recorded_at"]},
        "members": members,
        "windows_days": windows,
        "days": len(days) - windows[-1],
        "first_day": str(days[windows[-1]].date()),
        "clock_hours_mae": overall,
        "ratios": {
            f"{name}_vs_{key}": overall[name] / overall[key]
            for name in forecasts_by
            for key in ("recorded", *PUBLISHED_ENSEMBLES)
        },
        "diebold_mariano_vs_recorded": diebold_mariano_vs_recorded(y, forecasts_by),
        "whole_period": {
            "days": len(days),
            "clock_hours_mae": whole,
            "recorded_equals_record": bool(np.isclose(whole["recorded"], recorded["metrics"]["ensemble"]["mae"])),
            "ratios": {
                f"{name}_vs_{key}": whole[name] / whole[key] for name in whole for key in ("recorded", "lear_ensemble")
            },
            "diebold_mariano_vs_recorded": diebold_mariano_vs_recorded(
                actual.ravel(), {name: rules[name].ravel() for name in ("recorded", *fixed)}
            ),
            "weeks": len(days) // 7,
            "weeks_better_than_recorded": {
                name: weeks_better(actual, rules[name], rules["recorded"]) for name in fixed
            },
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    best = min(forecasts_by, key=overall.__getitem__)
    return write_attempt(
        record,
        f"attempt_combine_{market}",
        f"{market}: clock-hour MAE over {record['days']} days: "
        + ", ".join(f"{n} {overall[n]:.3f}" for n in forecasts_by)
        + f"; best {best}; published LEAR {overall['lear_ensemble']:.3f}, DNN {overall['dnn_ensemble']:.3f}",
    )


def served_replay(forecasts: pd.DataFrame, blocks: list[dict], members: list[str], days: int, coverage: float):
    """``forecasts`` (a walk-forward's, each row with its realised ``price``) with every block's weights and
    intervals refitted on the forecasts served in the ``days`` before it (``calibrate_on_served``), as
    ``walk_forward`` with ``served_weight_days=days`` fits them; a block with too few served days keeps
    the run's own rows. ``blocks``: the run's, with their ``first_origin``. Returns (the replayed
    forecasts, each block's weights or None)."""
    firsts = pd.DatetimeIndex([pd.Timestamp(b["first_origin"]) for b in blocks])
    origins = pd.DatetimeIndex(pd.to_datetime(forecasts["origin"], utc=True))
    number = firsts.searchsorted(origins, side="right") - 1
    out, weights = forecasts.copy(), []
    quantiles = [c for c in QUANTILE_COLUMNS if c in forecasts.columns]
    for k, first in enumerate(firsts):
        calibration = calibrate_on_served(served_before(forecasts, first, days), members, coverage)
        weights.append(None if calibration is None else calibration.decision.weights)
        rows = np.flatnonzero(number == k)
        if calibration is None or rows.size == 0:
            continue
        block = forecasts.iloc[rows]
        yhat = sum(w * block[member_column(m)].to_numpy(dtype=float) for m, w in calibration.decision.weights.items())
        horizon = block["horizon"].to_numpy(dtype=int)
        lower, upper = calibration.intervals.bounds(yhat, horizon)
        values = calibration.intervals.quantile_frame(yhat, horizon, block.index)
        column = out.columns.get_loc
        out.iloc[rows, column("yhat")] = yhat
        out.iloc[rows, column("lower")] = lower
        out.iloc[rows, column("upper")] = upper
        for name in quantiles:
            out.iloc[rows, column(name)] = values[name].to_numpy()
    return out, weights


def served_attempt(args: argparse.Namespace) -> dict:
    """A whole-period run replayed with weights and intervals from its served forecasts (module docstring)."""
    market = args.market.upper()
    recorded = json.loads((RESULTS / f"accuracy_{market}.json").read_text())
    path = args.forecasts or Path(recorded["hourly_forecasts"]) / "forecasts.parquet"
    summary_path = path.parent / "backtest.json"
    if not path.is_file() or not summary_path.is_file():
        raise SystemExit(
            f"{market}: no forecasts.parquet and backtest.json at {path.parent}; pass --forecasts with the "
            "forecasts.parquet of a whole-period run (python -m benchmarks.accuracy writes both under .eopt/backtests)"
        )
    run = json.loads(summary_path.read_text())
    windows = sorted({int(w) for w in args.windows.split(",") if w.strip()})
    inputs = load_inputs(MARKETS_DIR / f"{market}.csv", PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv")
    forecasts = pd.read_parquet(path)
    members = [m for m in MEMBERS if member_column(m) in forecasts.columns]
    days = published_days(inputs.published, None)
    coverage = float(run.get("interval_coverage", 0.9))
    started = time.perf_counter()

    def scored(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        clock = comparison_frame(inputs, local_clock_hours(frame, inputs.market.timezone), days)
        return clock, quantile_comparison(clock, inputs.published)

    recorded_clock, recorded_quantiles = scored(forecasts)
    y = recorded_clock["actual"].to_numpy()
    rules = {"recorded": (recorded_clock["ensemble"].to_numpy(), recorded_quantiles, None)}
    for window in windows:
        replayed, weights = served_replay(forecasts, run["blocks"], members, window, coverage)
        clock, quantiles = scored(replayed)
        rules[f"served{window}"] = (clock["ensemble"].to_numpy(), quantiles, weights)
        print(f"{market}: served{window} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    published = {key: recorded_clock[key].to_numpy() for key in PUBLISHED_ENSEMBLES}
    overall = {name: mae(y, values) for name, values in {**{n: r[0] for n, r in rules.items()}, **published}.items()}

    def quantile_line(q: dict) -> dict:
        return {
            "hours": q["hours"],
            "mean_pinball": q["ours"]["mean_pinball"],
            "pinball_vs_anchor": q["pinball_ratio"],
            "coverage_50": q["ours"]["interval_50"]["coverage"],
            "coverage_90": q["ours"]["interval_90"]["coverage"],
        }

    record = {
        "market": market,
        "attempt": "served",
        "description": "a whole-period run replayed with each block's weights and intervals fitted on the forecasts "
        "its members served in the N days before it (calibrate_on_served; the validation's until 28 days are served)",
        "forecasts": str(path),
        "run": {k: run.get(k) for k in ("first_origin", "days", "cold_start_every", "served_weight_days", "params")},
        "members": members,
        "windows_days": windows,
        "days": len(days),
        "clock_hours_mae": overall,
        "ratios": {
            f"{name}_vs_{key}": overall[name] / overall[key]
            for name in rules
            for key in ("recorded", *PUBLISHED_ENSEMBLES)
        },
        "diebold_mariano_vs_recorded": diebold_mariano_vs_recorded(y, {n: r[0] for n, r in rules.items()}),
        "quantiles": {name: quantile_line(q) for name, (_, q, _) in rules.items()},
        "anchor_pinball": recorded_quantiles["anchor"]["mean_pinball"],
        "mean_weights": {
            name: {m: float(np.mean([w[m] for w in ws if w is not None])) for m in members}
            for name, (_, _, ws) in rules.items()
            if ws is not None and any(w is not None for w in ws)
        },
        "blocks_served": {
            name: int(sum(w is not None for w in ws)) for name, (_, _, ws) in rules.items() if ws is not None
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    return write_attempt(
        record,
        f"attempt_served_{market}",
        f"{market}: clock-hour MAE over {len(days)} days: "
        + ", ".join(f"{n} {overall[n]:.3f} (pinball {record['quantiles'][n]['mean_pinball']:.3f})" for n in rules)
        + f"; published LEAR {overall['lear_ensemble']:.3f}, DNN {overall['dnn_ensemble']:.3f}",
    )


def dnn_attempt(args: argparse.Namespace) -> dict:
    """LEAR as the benchmark fits it beside the daily network (``benchmarks.daily_network``), and the two averaged."""
    market = args.market.upper()
    data = market_lear_days(market, args.weeks)
    config, origins = data.config, data.origins
    x_all, y_all = data.x, data.y
    started = time.perf_counter()

    def rows_before(origin: pd.Timestamp) -> np.ndarray:
        return data.rows_before(origin, config.window_days)

    # tuned once, on the extract before the test period: fitted on all but its last validation days, scored on them
    rows = rows_before(origins[0])
    fit_rows, held = rows[: -config.validation_days], rows[-config.validation_days :]

    def objective(trial: optuna.Trial) -> float:
        model = DailyNetwork(suggest_params(trial), seed=config.seed, networks=1)
        model.fit(x_all[fit_rows], y_all[fit_rows])
        return float(np.mean(np.abs(model.predict(x_all[held]) - y_all[held])))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=config.seed))
    clock = time.process_time()
    study.optimize(objective, n_trials=args.trials)
    tuning_cpu = time.process_time() - clock
    params = study.best_params
    lear_held = _lear_forecast(_lear_fit(x_all[fit_rows], y_all[fit_rows]), x_all[held])
    print(
        f"{market}: daily network tuned in {tuning_cpu:.0f} CPU s ({args.trials} trials): validation MAE "
        f"{study.best_value:.3f}, LEAR's {np.mean(np.abs(lear_held - y_all[held])):.3f}; {params}",
        file=sys.stderr,
        flush=True,
    )
    cpu = {"lear": 0.0, "dnn": 0.0}
    forecasts: dict[str, list[np.ndarray]] = {"lear": [], "dnn": []}
    actuals, weeks, epochs = [], [], []
    published_errors: dict[str, list[np.ndarray]] = {k: [] for k in PUBLISHED_ENSEMBLES}
    for number in range(args.weeks):
        block, at = data.week(number)
        actuals.append(y_all[at])
        rows = rows_before(block[0])
        clock = time.process_time()
        weekly = _lear_fit(x_all[rows], y_all[rows])
        forecasts["lear"].append(short_windows_recalibrated(data, weekly, block, at, config.window_days))
        clock = _add_cpu(cpu, "lear", clock)
        network = DailyNetwork(params, seed=config.seed, networks=args.networks).fit(x_all[rows], y_all[rows])
        forecasts["dnn"].append(network.predict(x_all[at]))
        _add_cpu(cpu, "dnn", clock)
        epochs.append(network.epochs)
        for key, errors in data.published_errors(number).items():
            published_errors[key].append(errors)
        week: dict = {"first_origin": str(block[0]), "dnn_epochs": network.epochs}
        for name in forecasts:
            week[f"{name}_mae"] = float(np.mean(np.abs(forecasts[name][-1] - actuals[-1])))
        week["mean_mae"] = float(np.mean(np.abs((forecasts["lear"][-1] + forecasts["dnn"][-1]) / 2 - actuals[-1])))
        weeks.append(week)
        print(
            f"{market} week {number + 1}/{args.weeks} of {block[0]:%Y-%m-%d}: MAE LEAR {week['lear_mae']:.3f}, "
            f"network {week['dnn_mae']:.3f}, mean {week['mean_mae']:.3f} (epochs {network.epochs})",
            file=sys.stderr,
            flush=True,
        )
    actual = np.concatenate(actuals)
    rules = {name: np.concatenate(f) for name, f in forecasts.items()}
    rules["mean"] = (rules["lear"] + rules["dnn"]) / 2
    overall = {name: float(np.mean(np.abs(v - actual))) for name, v in rules.items()}
    published = {k: float(np.mean(np.abs(np.concatenate(e)))) for k, e in published_errors.items()}
    dm = {
        name: diebold_mariano(actual, rules["lear"], rules[name]).p_value for name in rules if name != "lear"
    }  # p that the rule beats LEAR
    hourly = data.save_hourly(f"dnn_{market}", args.weeks, actual, rules)
    record = {
        "market": market,
        "attempt": "dnn",
        "description": "LEAR as the walk-forward fits it (weekly on the extract, short windows recalibrated daily with "
        f"the week's penalties) beside the daily network (benchmarks.daily_network: {args.networks} perceptrons on "
        "LEAR's inputs, tuned once on the extract before the test period, refitted weekly on the extract) and the "
        "two averaged; consecutive weeks from the start of the test period, MAE on their UTC hours, the published "
        "ensembles on the same days' clock hours",
        "weeks": args.weeks,
        "tuning": {
            "trials": args.trials,
            "cpu_seconds": round(tuning_cpu, 1),
            "validation_mae": study.best_value,
            "lear_validation_mae": float(np.mean(np.abs(lear_held - y_all[held]))),
            "params": params,
        },
        "networks": args.networks,
        "mae": overall,
        "ratio_to_lear": {name: overall[name] / overall["lear"] for name in overall},
        "published_mae": published,
        "ratio_to_lear_ensemble": {name: overall[name] / published["lear_ensemble"] for name in overall},
        "dm_p_better_than_lear": dm,
        "weeks_better_than_lear": {
            name: int(sum(w[f"{name}_mae"] < w["lear_mae"] for w in weeks)) for name in ("dnn", "mean")
        },
        "mean_best_epoch": float(np.mean(epochs)),
        "cpu_seconds": {k: round(v, 1) for k, v in cpu.items()},
        "per_week": weeks,
        "hourly_forecasts": str(hourly),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": describe_machine(),
    }
    return write_attempt(
        record,
        f"attempt_dnn_{market}",
        f"{market}: MAE over {args.weeks} weeks: LEAR {overall['lear']:.3f}, daily network {overall['dnn']:.3f}, "
        f"their mean {overall['mean']:.3f} ({overall['mean'] / overall['lear']:.3f}x LEAR, DM p {dm['mean']:.2g}); "
        f"published LEAR-Ens {published['lear_ensemble']:.3f}, DNN-Ens {published['dnn_ensemble']:.3f}",
    )


if __name__ == "__main__":
    main()
