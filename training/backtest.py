"""Walk-forward backtest with the product's own training code: what weekly retraining would have scored.

For a list of day-ahead forecast origins (the test days):

1. tune each model once on the window before the first test day (the production splits and
   Optuna studies, ``training.tuning``);
2. every ``retrain_every_days``, refit the three members with those parameters on the
   ``window_days`` before that day (validation = its last ``validation_days``), fit the ensemble
   weights and intervals on that validation, exactly as ``model_retraining`` does;
3. forecast each test day of the block from prices before its origin only.

No training row is at or after the block's first origin, and features never read a price at or
after their own origin (``training.features``), so nothing from the future reaches a forecast.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from tqdm import tqdm

from training.config import TrainingConfig
from training.dataset import TrainingData, build_training_frame, check_training_data
from training.ensemble import EnsembleForecaster, calibrate_intervals, decide
from training.features import HORIZON_HOURS, TARGET_COLUMN, build_feature_frame, complete_origins, feature_columns
from training.metrics import evaluate, interval_coverage
from training.models import model_class
from training.tuning import tune

log = logging.getLogger(__name__)
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)


@dataclass
class BacktestResult:
    region: str
    forecasts: pd.DataFrame  # origin, target_ts, horizon, price, naive, yhat, lower, upper, yhat_<member>
    params: dict[str, dict]
    blocks: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def metrics(self) -> dict[str, dict[str, float]]:
        f = self.forecasts
        y, naive = f[TARGET_COLUMN].to_numpy(), f["naive"].to_numpy()
        out = {"ensemble": evaluate(y, f["yhat"], naive)}
        for column in f.columns:
            if column.startswith("yhat_"):
                out[column.removeprefix("yhat_")] = evaluate(y, f[column], naive)
        out["seasonal_naive"] = evaluate(y, naive, naive)
        out["ensemble"]["interval_coverage"] = interval_coverage(y, f["lower"], f["upper"])
        return out


def _window(prices: pd.Series, exogenous: pd.DataFrame, region: str, end: pd.Timestamp, days: int) -> TrainingData:
    start = end - days * DAY
    part = prices[(prices.index >= start) & (prices.index < end)]
    return TrainingData(region, part, exogenous[(exogenous.index >= start) & (exogenous.index < end + DAY)],
                        part.index[0], end)


def walk_forward(
    prices: pd.Series,
    exogenous: pd.DataFrame,
    region: str,
    test_origins: pd.DatetimeIndex,
    config: TrainingConfig,
    *,
    storage_url: str,
    retrain_every_days: int = 7,
    progress: bool = True,
) -> BacktestResult:
    started = time.perf_counter()
    test_origins = pd.DatetimeIndex(test_origins).sort_values()
    columns = feature_columns(region)

    # 1. tune once, on the data before the first test day, with the production splits
    tuning_data = _window(prices, exogenous, region, test_origins[0], config.window_days)
    check_training_data(tuning_data, config)
    frame = build_training_frame(tuning_data, config)
    params = {}
    for model in config.models:
        result = tune(model, region, frame[frame["split"] == "train"], frame[frame["split"] == "validation"], columns,
                      budget=config.budget(model), storage_url=storage_url, window_end=tuning_data.end,
                      seed=config.seed, device=config.device, threads=config.threads)
        params[model] = result.best_params
        log.info("%s/%s: tuned on the window before %s: validation MAE %.3f", region, model, test_origins[0], result.best_value)

    # 2-3. refit every block on the window before it, then forecast the block's days
    refit_config = replace(config, test_days=0)
    block_starts = pd.date_range(test_origins[0], test_origins[-1] + HOUR, freq=f"{retrain_every_days}D")
    parts, blocks = [], []
    for block_start in tqdm(block_starts, desc=f"backtest {region}", unit="block", disable=not progress):
        block_end = block_start + retrain_every_days * DAY
        origins = test_origins[(test_origins >= block_start) & (test_origins < block_end)]
        if len(origins) == 0:
            continue
        first = origins[0]
        data = _window(prices, exogenous, region, first, config.window_days)
        train_frame = build_training_frame(data, refit_config)
        train = train_frame[train_frame["split"] == "train"]
        validation = train_frame[train_frame["split"] == "validation"].reset_index(drop=True)
        if max(train["target_ts"].max(), validation["target_ts"].max()) >= first:
            raise RuntimeError(f"{region}: a training row reaches the block starting {first}; the split is wrong")
        members = {}
        for model in config.models:
            budget = config.budget(model)
            fitted = model_class(model)(params[model], columns, seed=config.seed,
                                        max_steps=budget.max_epochs or budget.max_rounds, device=config.device,
                                        threads=config.threads)
            fitted.fit(train, validation)
            members[model] = fitted
        val_preds = {m: fitted.predict(validation) for m, fitted in members.items()}
        y_val = validation[TARGET_COLUMN].to_numpy()
        decision = decide(val_preds, y_val)
        val_yhat = sum(w * val_preds[m] for m, w in decision.weights.items())
        intervals = calibrate_intervals(y_val, val_yhat, validation["horizon"].to_numpy(), config.interval_coverage)
        forecaster = EnsembleForecaster(region, members, decision, intervals, columns)
        block = complete_origins(build_feature_frame(prices, exogenous, region, origins))
        forecast = forecaster.predict(block)
        parts.append(pd.concat([block[["origin", "target_ts", "horizon", TARGET_COLUMN]].assign(naive=block["lag_168h"]),
                                forecast], axis=1))
        blocks.append({"first_origin": str(first), "origins": len(origins), "train_rows": len(train),
                       "last_training_target": str(max(train["target_ts"].max(), validation["target_ts"].max())),
                       "weights": decision.weights, "kind": decision.kind})
    forecasts = pd.concat(parts, ignore_index=True)
    if not np.isfinite(forecasts["yhat"]).all():
        raise ValueError(f"{region}: the backtest produced NaN or infinite forecasts")
    return BacktestResult(region, forecasts, params, blocks, round(time.perf_counter() - started, 1))


def last_days_origins(region: str, prices: pd.Series, days: int) -> pd.DatetimeIndex:
    """Day-ahead origins of the last ``days`` complete days of ``prices``."""
    from training.features import day_ahead_origins

    end = prices.index.max() + HOUR
    return day_ahead_origins(region, end - days * DAY - HOUR, end - (HORIZON_HOURS - 1) * HOUR)
