"""Walk-forward backtest with the product's own training code: what weekly retraining would have scored.

For a list of day-ahead forecast origins (the local midnights of the test days):

1. tune each model on the window before the first test day (the production splits and Optuna
   studies, ``training.tuning``); with ``retune_every_days`` set, tune again on the window before
   the first block at least that many days after the last tuning;
2. every ``retrain_every_days`` (a block of consecutive test days), refit the tuned members with
   the current parameters on the ``window_days`` before the block's first origin (validation = its
   last ``validation_days``), fit LEAR (``training.lear.fit_lear``: deployed on every day before
   the block, validation forecasts from a fit before the validation) and choose the ensemble
   weights (``training.ensemble.choose_weights``) and intervals on that validation, exactly as
   ``model_retraining`` does;
3. forecast each test day of the block the way the forecast DAG does: the feature rows of an
   origin are built by ``inference_frame`` from the prices before that origin only (and the
   day-ahead exogenous forecasts of the day).

A test day's forecast covers the hours of that local day: 24 on most days, 23 on the
spring-forward day, 25 on the fall-back day. The 24-hour horizon of the midnight origin ends
one hour short of a 25-hour day; its last hour is forecast from the origin one hour later, with
the ensemble's own forecast of the midnight hour standing in for that price (no actual price at
or after the day's origin is read; column ``recursive`` marks that row).
:func:`local_clock_hours` folds a forecast onto 24 clock hours per day the way the published
EPF files fold the prices (spring: the skipped hour interpolated; autumn: the repeated hour
averaged), so it can be scored hour for hour against them.

No training row's target is at or after its block's first origin (checked for every block and
recorded as ``last_training_target``). Every block is fitted from scratch, like production,
unless ``config.warm_start_patience`` is set: then the CNN-LSTM of each block continues from the
previous block's networks and scaling (``CnnLstmModel.fit(start_from=...)``, the previous
weights competing as epoch 0) with that early-stopping patience, and a block after a re-tuning
starts from scratch, as does every ``config.cold_start_every``-th block since the last fit from
scratch (when set), so no chain of warm starts is longer than that. With
``config.lear_criterion_every`` above 1, LEAR runs its information criterion on the long windows
only every that many blocks and the blocks between refit them with those penalties
(``fit_lear(reuse=...)``); each block records ``lear_penalties_reused``. The CNN-LSTM's
``networks`` per fit come from its budget (``TrainingConfig.final_params``). With
``config.served_weight_days``, a block weighs its members and calibrates its intervals on the
forecasts the blocks before it served in those days (:func:`served_before`,
``training.ensemble.calibrate_on_served``) rather than on its validation, once there are enough.
With ``config.as_deployed``, a block's fits leave out the ``test_days`` before it, as the weekly
retraining's deployed members leave out the test window its gate scores: the tuned members'
data then ends ``test_days + validation_days`` before the block, LEAR's long windows
``test_days`` before it (its daily recalibration still reads the days before each origin).

:func:`walk_forward_in_segments` runs the same walk-forward as several processes at once, cut at the
blocks that carry nothing over from the block before (:func:`segment_starts`): its forecasts equal
:func:`walk_forward`'s, it only ends sooner on a machine with idle cores.

:func:`save_backtest` and :func:`log_backtest` write and track a result; ``eopt backtest`` and
``benchmarks/accuracy.py`` both use them.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from core.markets import Market, get_market, register_market
from core.metrics import evaluate, interval_coverage
from core.settings import Settings
from core.timestamps import local_day_after, local_day_starts
from training.config import TrainingConfig
from training.dataset import TrainingData, build_training_frame, check_training_data
from training.ensemble import EnsembleForecaster, calibrate_intervals, calibrate_on_served, weigh_members
from training.features import HORIZON_HOURS, LOOKBACK_HOURS, TARGET_COLUMN, feature_columns, inference_frame
from training.lear import LearPenalties, fit_lear
from training.models import ForecastModel, model_class
from training.models.cnn_lstm import CnnLstmModel
from training.tuning import tune

log = logging.getLogger(__name__)
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
FORECAST_COLUMNS = ("yhat", "lower", "upper")


class BacktestError(ValueError):
    """The backtest cannot run on these inputs; the message names the region and what is wrong."""


@dataclass
class BacktestResult:
    region: str
    forecasts: pd.DataFrame  # origin, target_ts, horizon, recursive, price, naive, yhat, lower, upper, yhat_<member>
    params: dict[str, dict]  # the parameters of the first tuning
    blocks: list[dict] = field(default_factory=list)
    tunings: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    segments: list[int] = field(default_factory=lambda: [0])  # the first block of each process it ran in

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


def training_window(
    prices: pd.Series, exogenous: pd.DataFrame, region: str, end: pd.Timestamp, days: int
) -> TrainingData:
    """The ``days`` of prices before ``end`` (and the exogenous forecasts up to a day after it), as a retraining extracts them."""
    start = end - days * DAY
    part = prices[(prices.index >= start) & (prices.index < end)]
    if part.empty:
        raise BacktestError(
            f"{region}: no prices in the {days} days before {end}; the history starts at {prices.index.min()}"
        )
    return TrainingData(
        region, part, exogenous[(exogenous.index >= start) & (exogenous.index < end + DAY)], part.index[0], end
    )


def _tune_all(
    prices: pd.Series,
    exogenous: pd.DataFrame,
    region: str,
    before: pd.Timestamp,
    config: TrainingConfig,
    storage_url: str,
) -> tuple[dict[str, dict], dict]:
    """Tune every model on the production splits of the window that ends at ``before``."""
    started = time.perf_counter()
    data = training_window(prices, exogenous, region, before, config.window_days)
    check_training_data(data, config)
    frame = build_training_frame(data, config)
    columns = feature_columns(region)
    params, studies = {}, {}
    for model in config.tuned_models:
        result = tune(
            model,
            region,
            frame[frame["split"] == "train"],
            frame[frame["split"] == "validation"],
            columns,
            budget=config.budget(model),
            storage_url=storage_url,
            window_end=data.end,
            seed=config.seed,
            device=config.device,
            threads=config.threads,
        )
        params[model] = result.best_params
        studies[model] = {**result.describe(), "best_params": result.best_params}
        log.info("%s/%s: tuned on the window before %s: validation MAE %.3f", region, model, before, result.best_value)
    return params, {"before": str(before), "seconds": round(time.perf_counter() - started, 1), "studies": studies}


def _fit_block(
    prices: pd.Series,
    exogenous: pd.DataFrame,
    region: str,
    first: pd.Timestamp,
    config: TrainingConfig,
    params: dict[str, dict],
    previous: EnsembleForecaster | None = None,
    lear_reuse: LearPenalties | None = None,
    recalibrate_lear: bool = False,
    served: pd.DataFrame | None = None,
) -> tuple[EnsembleForecaster, dict, LearPenalties | None]:
    """The ensemble refitted on the window before ``first``, as the weekly retraining fits it, and
    the long windows' penalties of its LEAR fits (None without LEAR).

    With ``config.warm_start_patience``, the CNN-LSTM continues from ``previous``'s (the block
    before) with that early-stopping patience instead of starting from scratch; LEAR refits its
    long windows with ``lear_reuse``'s penalties when given, and with ``recalibrate_lear`` forecasts
    each validation day with its short windows refitted before it (``fit_lear(recalibrate=True)``).
    ``served``: the members' forecasts of the days before the block (:func:`served_before`); when they
    are enough (``calibrate_on_served``), they weigh the members and calibrate the intervals instead
    of the validation, whose weights are then recorded as ``validation_weights``.
    """
    data = training_window(prices, exogenous, region, first, config.history_days)  # LEAR's; the frame cuts the window
    frame = build_training_frame(data, config if config.as_deployed else replace(config, test_days=0))
    train = frame[frame["split"] == "train"]
    validation = frame[frame["split"] == "validation"].reset_index(drop=True)
    held_out = frame.loc[frame["split"] == "test", "origin"]
    fits_end = pd.Timestamp(held_out.min()) if len(held_out) else first  # as train_lear: the test window's start
    last_target = max(train["target_ts"].max(), validation["target_ts"].max())
    if last_target >= first:
        raise BacktestError(f"{region}: a training row's target ({last_target}) reaches the block starting {first}")
    columns = feature_columns(region)
    members: dict[str, ForecastModel] = {}
    val_preds: dict[str, np.ndarray] = {}
    warm_steps: dict[str, int] = {}
    member_seconds: dict[str, float] = {}
    for model in config.tuned_models:
        member_started = time.perf_counter()
        budget = config.budget(model)
        start = previous.members.get(model) if previous is not None and config.warm_start_patience else None
        fitted = model_class(model)(
            config.final_params(model, params[model])
            | ({"patience": config.warm_start_patience} if isinstance(start, CnnLstmModel) else {}),
            columns,
            seed=config.seed,
            max_steps=budget.max_epochs or budget.max_rounds,
            device=config.device,
            threads=config.threads,
        )
        if isinstance(fitted, CnnLstmModel) and isinstance(start, CnnLstmModel):
            warm_steps[model] = fitted.fit(train, validation, start_from=start).steps_run
        else:
            fitted.fit(train, validation)
        members[model] = fitted
        val_preds[model] = fitted.predict(validation)
        member_seconds[model] = round(time.perf_counter() - member_started, 2)
    lear_info, lear_penalties = {}, None
    if "lear" in config.models:  # as model_retraining.train_lear fits it: the deployed fit ends at the block
        lear = fit_lear(
            data.prices,
            data.exogenous,
            region,
            validation,
            fits_end,
            config.budget("lear").calibration_windows,
            reuse=lear_reuse,
            recalibrate=recalibrate_lear,
        )
        if lear.member.model.last_training_target is None or lear.member.model.last_training_target >= fits_end:
            raise BacktestError(f"{region}: the LEAR fit reaches {fits_end} (the block starts {first})")
        members["lear"], val_preds["lear"] = lear.member, lear.validation_forecast
        lear_penalties = lear.penalties
        lear_info = {
            "lear_windows": list(lear.member.model.windows),
            "lear_last_training_target": str(lear.member.model.last_training_target),
            "lear_seconds": lear.seconds,
            "lear_penalties_reused": lear.penalties_reused,
            "lear_recalibrated_daily": recalibrate_lear,
        }
    y_val = validation[TARGET_COLUMN].to_numpy()
    decision = weigh_members(val_preds, y_val, validation["origin"].to_numpy(), config.ensemble_weights)
    val_yhat = sum(w * val_preds[m] for m, w in decision.weights.items())
    if not isinstance(val_yhat, np.ndarray):  # sum() of no weight is the int 0
        raise BacktestError(f"{region}: the ensemble decision weighs no member")
    intervals = calibrate_intervals(y_val, val_yhat, validation["horizon"].to_numpy(), config.interval_coverage)
    served_info: dict[str, object] = {"weights_from": "validation"}
    calibration = calibrate_on_served(served, list(val_preds), config.interval_coverage) if served is not None else None
    if calibration is not None:
        served_info = {
            "weights_from": "served",
            "served_days": calibration.days,
            "validation_weights": decision.weights,
        }
        decision, intervals = calibration.decision, calibration.intervals
    info = {
        "train_rows": len(train),
        "validation_rows": len(validation),
        "last_training_target": str(last_target),
        "held_out_days": config.test_days if config.as_deployed else 0,
        "weights": decision.weights,
        "kind": decision.kind,
        "rule": decision.rule,
        "comparison": decision.comparison,
        **served_info,
        "member_seconds": member_seconds,  # each tuned member's fit and validation forecast (LEAR's: lear_seconds)
        **lear_info,
        **({"warm_start_epochs": warm_steps} if warm_steps else {}),
    }
    return EnsembleForecaster(region, members, decision, intervals, columns), info, lear_penalties


def served_before(forecasts: pd.DataFrame, first: pd.Timestamp, days: int) -> pd.DataFrame:
    """The rows of ``forecasts`` (a walk-forward's, with their realised ``price``) that a block starting at
    ``first`` may learn from: origins in the ``days`` before it whose target hours end before it."""
    origin, target = pd.to_datetime(forecasts["origin"], utc=True), pd.to_datetime(forecasts["target_ts"], utc=True)
    return forecasts[(origin >= first - days * DAY) & (origin < first) & (target < first)]


def _local_day_end(origin: pd.Timestamp, timezone: str) -> pd.Timestamp:
    if origin != local_day_starts(timezone, [origin])[0]:
        raise BacktestError(
            f"forecast origin {origin} is not where a local day begins in {timezone}; "
            "use training.features.day_ahead_origins"
        )
    return local_day_after(timezone, origin)


def forecast_day(
    forecaster: EnsembleForecaster,
    prices: pd.Series,
    exogenous: pd.DataFrame,
    region: str,
    origin: pd.Timestamp,
) -> pd.DataFrame:
    """The forecast of the local day that starts at ``origin``, from the prices before ``origin`` only.

    One row per hour of the local day (23, 24 or 25). On a 25-hour day, the last hour comes from
    the origin one hour later, with the ensemble's forecast of the origin's hour as that price.
    The members forecast as the registered model's do (``EnsembleForecaster.for_origin``: LEAR
    recalibrated on the days before ``origin`` when it recalibrates).
    """
    forecaster = forecaster.for_origin(prices, exogenous, origin)
    timezone = get_market(region).timezone
    day_end = _local_day_end(origin, timezone)
    known = prices[(prices.index >= origin - (LOOKBACK_HOURS + 48) * HOUR) & (prices.index < origin)]
    exog = exogenous[(exogenous.index >= origin - 8 * DAY) & (exogenous.index < day_end + 2 * DAY)]
    frame = inference_frame(known, exog, region, origin)
    rows = pd.concat([frame[["origin", "target_ts", "horizon"]], forecaster.predict(frame)], axis=1).assign(
        recursive=False
    )
    if day_end > origin + HORIZON_HOURS * HOUR:  # the fall-back day: one hour past the horizon
        first_hour = pd.Series([float(rows["yhat"].iloc[0])], index=pd.DatetimeIndex([origin]))
        extended = pd.concat([known, first_hour])
        later = inference_frame(extended, exog, region, origin + HOUR)
        extra = pd.concat([later[["target_ts", "horizon"]], forecaster.predict(later)], axis=1)
        beyond = (extra["target_ts"] >= origin + HORIZON_HOURS * HOUR) & (extra["target_ts"] < day_end)
        extra = extra[beyond].assign(origin=origin, recursive=True)
        for column in [c for c in extra.columns if c.startswith("yhat_") and extra[c].isna().any()]:
            # a member that abstains from the later origin (LEAR: not a local midnight) keeps its forecast of
            # the midnight origin's last hour, 23 h after it, for the column (yhat already went without it)
            extra[column] = extra[column].fillna(float(rows[column].iloc[-1]))
        rows = pd.concat([rows, extra[rows.columns]], ignore_index=True)
    rows = rows[rows["target_ts"] < day_end].reset_index(drop=True)
    expected = pd.date_range(origin, day_end, freq="h", inclusive="left")
    if not pd.DatetimeIndex(rows["target_ts"]).equals(expected):
        raise BacktestError(
            f"{region}: the forecast of the day starting {origin} does not cover its {len(expected)} hours"
        )
    return rows


def _block_index(origins: pd.DatetimeIndex, timezone: str, every_days: int) -> np.ndarray:
    days = origins.tz_convert(timezone).tz_localize(None).normalize()
    return ((days - days[0]).days // every_days).to_numpy()


def walk_forward(
    prices: pd.Series,
    exogenous: pd.DataFrame,
    region: str,
    test_origins: pd.DatetimeIndex,
    config: TrainingConfig,
    *,
    storage_url: str,
    retrain_every_days: int = 7,
    retune_every_days: int = 0,
    params: dict[str, dict] | None = None,
    progress: bool = True,
    label: str = "",
) -> BacktestResult:
    """Tune, refit every ``retrain_every_days`` and forecast every test day (see the module docstring).

    ``params``: tuned parameters per model to use instead of tuning (then ``retune_every_days``
    must be 0). ``prices`` may end before the last test day: a day's forecast reads only the prices
    before its origin; its ``price`` (the actual) is NaN where unknown. ``label``: after the region in
    the progress bar (a segment's number).
    """
    started = time.perf_counter()
    if retrain_every_days < 1:
        raise BacktestError(f"{region}: retrain_every_days must be at least 1, got {retrain_every_days}")
    if params is not None and retune_every_days:
        raise BacktestError(f"{region}: given parameters are never re-tuned; leave retune_every_days at 0")
    test_origins = pd.DatetimeIndex(test_origins).sort_values()
    if len(test_origins) == 0:
        raise BacktestError(f"{region}: no test days to backtest")
    prices = prices.sort_index()
    timezone = get_market(region).timezone

    tunings: list[dict] = []
    if params is None:
        params, tuning = _tune_all(prices, exogenous, region, test_origins[0], config, storage_url)
        tunings.append(tuning)
    first_params = params
    last_tuned = test_origins[0]

    block_of = _block_index(test_origins, timezone, retrain_every_days)
    parts: list[pd.DataFrame] = []
    blocks: list[dict] = []
    forecaster: EnsembleForecaster | None = None  # the block before's, which a warm start continues from
    since_cold = 0  # blocks fitted since the last fit from scratch, that one included
    lear_penalties: LearPenalties | None = None  # of the last block whose LEAR ran its criterion
    since_criterion = 0  # blocks fitted since then, that one included
    errors = 0.0
    scored = 0
    bar = tqdm(
        np.unique(block_of), desc=f"backtest {region}{' ' + label if label else ''}", unit="block", disable=not progress
    )
    for number in bar:
        origins = test_origins[block_of == number]
        first = origins[0]
        block_started = time.perf_counter()
        retuned = bool(retune_every_days) and (first - last_tuned) >= retune_every_days * DAY - 2 * HOUR  # DST-proof
        if retuned:  # new parameters: nothing to warm-start from
            params, tuning = _tune_all(prices, exogenous, region, first, config, storage_url)
            tunings.append(tuning)
            last_tuned = first
        cold = retuned or forecaster is None or 0 < config.cold_start_every <= since_cold
        criterion = lear_penalties is None or since_criterion >= config.lear_criterion_every
        served = (
            served_before(pd.concat(parts, ignore_index=True), first, config.served_weight_days)
            if config.served_weight_days and parts
            else None
        )
        forecaster, info, penalties = _fit_block(
            prices,
            exogenous,
            region,
            first,
            config,
            params,
            None if cold else forecaster,
            None if criterion else lear_penalties,
            config.lear_recalibrate_daily,
            served,
        )
        since_cold = 1 if cold else since_cold + 1
        if criterion:
            lear_penalties, since_criterion = penalties, 1
        else:
            since_criterion += 1
        fitted_s = time.perf_counter() - block_started
        days = [forecast_day(forecaster, prices, exogenous, region, origin) for origin in origins]
        block = pd.concat(days, ignore_index=True)
        actual = prices.reindex(pd.DatetimeIndex(block["target_ts"])).to_numpy(dtype=float)
        naive = prices.reindex(pd.DatetimeIndex(block["target_ts"]) - 168 * HOUR).to_numpy(dtype=float)
        block.insert(3, TARGET_COLUMN, actual)
        block.insert(4, "naive", naive)
        parts.append(block)
        known = np.isfinite(actual)
        errors += float(np.abs(actual[known] - block["yhat"].to_numpy()[known]).sum())
        scored += int(known.sum())
        blocks.append(
            {
                "first_origin": str(first),
                "origins": len(origins),
                **info,
                "tuned_before": str(last_tuned),
                "fit_seconds": round(fitted_s, 2),
                "seconds": round(time.perf_counter() - block_started, 2),
            }
        )
        if scored:
            bar.set_postfix(first_day=f"{first.tz_convert(timezone):%Y-%m-%d}", mae=f"{errors / scored:.3f}")
    forecasts = pd.concat(parts, ignore_index=True)
    if not np.isfinite(forecasts["yhat"]).all():
        raise BacktestError(f"{region}: the backtest produced NaN or infinite forecasts")
    return BacktestResult(region, forecasts, first_params, blocks, tunings, round(time.perf_counter() - started, 1))


def segment_starts(blocks: int, config: TrainingConfig, retune_every_days: int, segments: int) -> list[int]:
    """The blocks at which a walk-forward of ``blocks`` blocks is cut into at most ``segments`` runs whose
    forecasts equal the uncut run's (:func:`walk_forward_in_segments`); empty when it cannot be cut.

    A block can start a segment when nothing reaches it from the blocks before: the CNN-LSTM starts
    from scratch there (every block without warm starts; with them, every ``cold_start_every``-th,
    so never when that is 0), LEAR runs its criterion there (every ``lear_criterion_every``-th), the
    parameters are the ones tuned before the first block (``retune_every_days`` 0) and the weights
    are not read from the blocks before (``served_weight_days`` 0). Of those blocks, the ones nearest
    to equal shares of the blocks are taken.
    """
    if segments < 2 or retune_every_days or config.served_weight_days:
        return []
    warm = bool(config.warm_start_patience) and "cnn_lstm" in config.models
    if warm and not config.cold_start_every:
        return []
    period = math.lcm(
        config.cold_start_every if warm else 1, max(config.lear_criterion_every, 1) if "lear" in config.models else 1
    )
    candidates = np.arange(period, blocks, period)
    if len(candidates) == 0:
        return []
    shares = [blocks * k / segments for k in range(1, segments)]
    return sorted({int(candidates[np.abs(candidates - share).argmin()]) for share in shares})


def _segment(market: Market, prices, exogenous, origins, config, storage_url, every_days, params, label):
    """One segment of :func:`walk_forward_in_segments`, in its own process (the market registered there too)."""
    register_market(market)
    return walk_forward(
        prices,
        exogenous,
        market.code,
        origins,
        config,
        storage_url=storage_url,
        retrain_every_days=every_days,
        params=params,
        progress=bool(label),
        label=label,
    )


def walk_forward_in_segments(
    prices: pd.Series,
    exogenous: pd.DataFrame,
    region: str,
    test_origins: pd.DatetimeIndex,
    config: TrainingConfig,
    *,
    storage_url: str,
    retrain_every_days: int = 7,
    retune_every_days: int = 0,
    params: dict[str, dict] | None = None,
    segments: int = 1,
    progress: bool = True,
) -> BacktestResult:
    """:func:`walk_forward`, with the blocks after tuning run as up to ``segments`` processes at once.

    The test period is cut at :func:`segment_starts`' blocks, where the uncut run carries nothing over,
    so each segment, given the parameters tuned once before the first block, fits and forecasts its
    blocks exactly as the uncut run does: the forecasts and blocks are the same, the result's
    ``seconds`` is the wall time of the whole and each block's ``tuned_before`` the first origin, as
    uncut. Where no block qualifies (or ``segments`` is 1) it is :func:`walk_forward` itself. The
    segments' CPU time is their processes' (``resource.RUSAGE_CHILDREN`` once they have ended).
    """
    test_origins = pd.DatetimeIndex(test_origins).sort_values()
    if len(test_origins) == 0:
        raise BacktestError(f"{region}: no test days to backtest")
    market = get_market(region)
    block_of = _block_index(test_origins, market.timezone, retrain_every_days)
    bounds = [0, *segment_starts(int(block_of.max()) + 1, config, retune_every_days, segments), int(block_of.max()) + 1]
    masks = [(block_of >= a) & (block_of < b) for a, b in itertools.pairwise(bounds)]
    # each piece must number its blocks as the uncut run does (a day missing at a cut would shift them)
    aligned = all(
        np.array_equal(_block_index(test_origins[m], market.timezone, retrain_every_days) + a, block_of[m])
        for m, a in zip(masks, bounds, strict=False)
    )
    if len(masks) == 1 or not aligned:
        return walk_forward(
            prices,
            exogenous,
            region,
            test_origins,
            config,
            storage_url=storage_url,
            retrain_every_days=retrain_every_days,
            retune_every_days=retune_every_days,
            params=params,
            progress=progress,
        )
    pieces = [test_origins[m] for m in masks]
    started = time.perf_counter()
    tunings: list[dict] = []
    if params is None:
        params, tuning = _tune_all(prices.sort_index(), exogenous, region, test_origins[0], config, storage_url)
        tunings.append(tuning)
    log.info("%s: %d blocks in %d segments from blocks %s", region, len(np.unique(block_of)), len(pieces), bounds[:-1])
    # fresh interpreters for the segments: a fork would copy the tuning's torch and OpenMP thread pools
    with ProcessPoolExecutor(max_workers=len(pieces), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(
                _segment,
                market,
                prices,
                exogenous,
                piece,
                config,
                storage_url,
                retrain_every_days,
                params,
                f"[{k + 1}/{len(pieces)}]" if progress else "",
            )
            for k, piece in enumerate(pieces)
        ]
        results = [future.result() for future in futures]
    blocks = [{**block, "tuned_before": str(test_origins[0])} for result in results for block in result.blocks]
    forecasts = pd.concat([result.forecasts for result in results], ignore_index=True)
    seconds = round(time.perf_counter() - started, 1)
    return BacktestResult(region, forecasts, params, blocks, tunings, seconds, segments=bounds[:-1])


def local_clock_hours(forecasts: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """The forecast on 24 local clock hours per day, indexed by naive local time (the EPF files' hours).

    The repeated fall-back hour is the mean of its two instants; the skipped spring-forward hour
    is interpolated between its neighbours: the rule the files' publishers applied to prices.
    """
    values = forecasts.drop(columns=["origin", "horizon", "recursive"], errors="ignore")
    clock = pd.DatetimeIndex(values.pop("target_ts")).tz_convert(timezone).tz_localize(None)
    numeric = values.select_dtypes("number").groupby(clock).mean()
    full = pd.date_range(
        numeric.index.min().normalize(), numeric.index.max().normalize() + DAY, freq="h", inclusive="left"
    )
    missing = full.difference(numeric.index)
    nonexistent = missing.tz_localize(timezone, nonexistent="NaT", ambiguous=np.ones(len(missing), dtype=bool)).isna()
    if not nonexistent.all():
        first = missing[~nonexistent][0]
        raise BacktestError(
            f"the forecast lacks {int((~nonexistent).sum())} local hour(s) that exist in {timezone}, first {first}"
        )
    out = numeric.reindex(full).interpolate(method="linear", limit_area="inside")
    out.index.name = "local"
    return out


def last_days_origins(region: str, prices: pd.Series, days: int) -> pd.DatetimeIndex:
    """Day-ahead origins of the last ``days`` complete days of ``prices``."""
    from training.features import day_ahead_origins

    end = prices.index.max() + HOUR
    return day_ahead_origins(region, end - days * DAY - HOUR, end - (HORIZON_HOURS - 1) * HOUR)


# -- results: files and MLflow, shared by `eopt backtest` and benchmarks/accuracy.py -----------------


def backtest_summary(
    result: BacktestResult,
    config: TrainingConfig,
    *,
    retrain_every_days: int,
    retune_every_days: int = 0,
    metrics: dict | None = None,
) -> dict[str, Any]:
    """What a backtest ran with and scored: the JSON ``save_backtest`` writes and MLflow logs."""
    origins = pd.DatetimeIndex(result.forecasts["origin"].unique())
    return {
        "region": result.region,
        "first_origin": str(origins.min()),
        "days": len(origins),
        "hours": len(result.forecasts),
        "budget": config.budget_name,
        "window_days": config.window_days,
        "validation_days": config.validation_days,
        "interval_coverage": config.interval_coverage,
        "seed": config.seed,
        "threads": config.threads,
        "device": config.device,
        "retrain_every_days": retrain_every_days,
        "retune_every_days": retune_every_days,
        "cnn_lstm_networks": config.budget("cnn_lstm").networks if "cnn_lstm" in config.budgets else None,
        "warm_start_patience": config.warm_start_patience,
        "cold_start_every": config.cold_start_every,
        "lear_criterion_every": config.lear_criterion_every,
        "lear_recalibrate_daily": config.lear_recalibrate_daily,
        "served_weight_days": config.served_weight_days,
        "ensemble_weights": config.ensemble_weights,
        "seconds": result.seconds,
        "metrics": metrics if metrics is not None else result.metrics(),
        "params": result.params,
        "tunings": result.tunings,
        "blocks": result.blocks,
    }


def save_backtest(result: BacktestResult, folder: Path, summary: dict[str, Any], plot_title: str) -> list[Path]:
    """Write ``forecasts.parquet``, ``backtest.json`` and ``forecast_vs_actual.png`` (last 14 days) into ``folder``."""
    from training.plots import forecast_vs_actual

    folder.mkdir(parents=True, exist_ok=True)
    result.forecasts.to_parquet(folder / "forecasts.parquet")
    (folder / "backtest.json").write_text(json.dumps(summary, indent=2, default=str))
    plot = forecast_vs_actual(
        result.forecasts.dropna(subset=[TARGET_COLUMN]), folder / "forecast_vs_actual.png", plot_title
    )
    return [folder / "backtest.json", plot]


def log_backtest(
    settings: Settings,
    run_name: str,
    region: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    artifacts: list[Path],
    kind: str = "backtest",
) -> str:
    """One MLflow run (nested under an ``mlflow run`` run when there is one) with params, metrics and files."""
    from training import tracking

    client = tracking.configure(settings)
    experiment = tracking.experiment_id(client, settings)
    run = tracking.start_run(
        client,
        experiment,
        run_name,
        parent=settings.training.mlflow_run_id,
        tags={"eopt.region": region, "eopt.kind": kind},
    )
    try:
        tracking.log_params(client, run, params)
        tracking.log_metrics(client, run, metrics)
        tracking.log_artifacts(client, run, artifacts)
    except Exception:
        tracking.finish(client, run, ok=False)
        raise
    tracking.finish(client, run)
    return run


def flat_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"ensemble": {"mae": ..}}`` as MLflow metric names ``ensemble_mae``."""
    return {f"{who}_{name}": value for who, values in metrics.items() for name, value in values.items()}
