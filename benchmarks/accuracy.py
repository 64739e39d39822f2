"""Accuracy against the published open EPF benchmark (Lago et al., Applied Energy 293 (2021) 116983).

For each market: the product's walk-forward backtest (``training.backtest.walk_forward``: tune
once before the test period with the production Optuna code, refit every
``--retrain-every-days`` on the production window, forecast each day from the prices before its
local midnight) over exactly the hours of the paper's published forecast file, then, on those
same hours, MAE, the paper's rMAE, sMAPE, RMSE and guarded MAPE of each member, the ensemble,
the seasonal naive y(d-7, h) and the published LEAR and DNN ensembles, and the multivariate
Diebold-Mariano test of the product's ensemble against each published one. The paper
recalibrated its models every day; the product refits weekly, as it does in production, with
two savings production does not need (it re-tunes weekly): the CNN-LSTM's networks continue from
the week before's between fits from scratch every ``--cold-every`` weeks, and LEAR reuses its long
windows' penalties between runs of its criterion every ``--lear-criterion-every`` weeks.
LEAR refits its 56- and 84-day windows before every day, validation days included, as the paper
recalibrated and as the registered model does by default (``EOPT_LEAR_RECALIBRATE_DAILY``;
``--no-lear-recalibrate-daily``: the weekly fit only).

Inputs are files, so a new market needs no code: ``--market-file`` (a CSV in the epftoolbox
layout: timestamp, price, two exogenous day-ahead forecasts, 24 local clock hours a day) and
``--published-forecasts`` (the paper's file layout: ``Real price``, ``LEAR Ensemble``, ``DNN
Ensemble``, one row per local clock hour). A market the product does not know needs
``--region``, ``--timezone`` and ``--holiday-country``.

Writes ``benchmarks/results/accuracy_<market>[_<scope>].json`` and ``.png`` (a representative
fortnight), rebuilds ``benchmarks/results/ACCURACY.md`` from every result there, keeps the
hourly forecasts under ``$EOPT_HOME/backtests/`` and logs one MLflow run per market.

    python -m benchmarks.accuracy                 # the four markets, whole test periods
    python -m benchmarks.accuracy --quick         # NP, first 8 weeks of its test period
    python -m benchmarks.accuracy --verify-only   # only recompute the published metrics
    python -m benchmarks.accuracy --market-file data/markets/BE.csv \\
        --published-forecasts data/published/Forecasts_BE_DNN_LEAR_ensembles.csv
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from pydantic import ValidationError

from benchmarks.machine import describe_machine
from core.markets import Market, MarketDataError, bundled_markets, read_market_file, register_market
from core.quantiles import QUANTILE_COLUMNS
from core.quantiles import QUANTILE_LEVELS as QUANTILE_LEVELS_EMITTED
from core.regions import Holidays
from core.settings import PROJECT_ROOT, Settings, SettingsError
from training.config import ENSEMBLE_WEIGHTS

RESULTS = Path(__file__).resolve().parent / "results"
MARKETS_DIR = PROJECT_ROOT / "data" / "markets"
PUBLISHED_DIR = PROJECT_ROOT / "data" / "published"
PUBLISHED_METRICS = PUBLISHED_DIR / "published_metrics_ensembles.csv"
DEFAULT_MARKETS = tuple(bundled_markets())  # the region catalogue's entries with a bundled history file
QUICK_MARKET, QUICK_DAYS = "NP", 56
MIN_DAYS = 8  # the weekly naive of the paper's rMAE needs a week before the first scored naive hour
# The refit cadence's cost savers (benchmarks/README.md, the attempts' rows): the CNN-LSTM's networks (three in
# the default budget) continue from the block before's with this patience and start from scratch every
# COLD_EVERY blocks (BE, 52 weeks: CNN-LSTM MAE 0.977x one cold network a week, 1.34x its CPU; FR, 24 weeks:
# 0.995x, 1.14x); LEAR runs its criterion on the long windows every LEAR_CRITERION_EVERY blocks (NP, 8 weeks:
# MAE 1.5510 against 1.5545, half the CPU). Production re-tunes weekly and fits its networks from scratch.
WARM_PATIENCE, COLD_EVERY, LEAR_CRITERION_EVERY = 3, 4, 4
LEAR_HISTORY_DAYS = 1456  # EOPT_LEAR_HISTORY_DAYS' default: LEAR on up to the paper's four years
REAL_PRICE = "Real price"
PUBLISHED_ENSEMBLES = {"lear_ensemble": "LEAR Ensemble", "dnn_ensemble": "DNN Ensemble"}
MEMBERS = ("xgboost", "lightgbm", "cnn_lstm", "lear")
# the quantile levels our model emits, and their columns
EMITTED_LEVELS, EMITTED_COLUMNS = QUANTILE_LEVELS_EMITTED, QUANTILE_COLUMNS
FORECASTERS = (*MEMBERS, "ensemble", "seasonal_naive", *PUBLISHED_ENSEMBLES)
# published_metrics_ensembles.csv row name -> how it is recomputed (core.metrics)
VERIFIED_METRICS = ("MAE", "rMAE", "sMAPE%", "RMSE", "MAPE%")
LAYOUT = (
    "the epftoolbox layout: a header row, then one row per local clock hour, 24 per day on contiguous days, "
    "with the columns timestamp (YYYY-MM-DD HH:MM:SS), price, and two exogenous day-ahead forecasts"
)
DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)


class AccuracyInputError(ValueError):
    """An input file cannot be benchmarked; the message names the file and what to do."""


@dataclass(frozen=True)
class MarketInputs:
    name: str  # the market's label in file names and tables
    market: Market
    market_file: Path
    published_file: Path
    prices: pd.Series  # UTC hourly
    exogenous: pd.DataFrame  # UTC hourly, one column per exogenous forecast
    clock_prices: pd.Series  # the market file's price per local clock hour (24 a day)
    published: pd.DataFrame  # the published forecast file, indexed by local clock hour


# -- inputs ---------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def resolve_market(
    market_file: Path, region: str | None, timezone: str | None, holiday_country: str | None, currency: str | None
) -> Market:
    """The product's market for ``region`` (default: the file's name, e.g. NP.csv -> NP), or a new one
    described by ``timezone`` and ``holiday_country`` and registered for this process."""
    known = bundled_markets()
    code = (region or market_file.stem).upper()
    if code in known:
        if timezone and timezone != known[code].timezone:
            raise AccuracyInputError(
                f"--market-file {market_file}: {code} is a known market in {known[code].timezone}, "
                f"not {timezone}; name a new market with another --region"
            )
        return known[code]
    if not (timezone and holiday_country):
        raise AccuracyInputError(
            f"--market-file {market_file}: {code!r} is not a market the product knows ({', '.join(known)}); "
            "describe it with --region, --timezone (e.g. Europe/Madrid) and --holiday-country (e.g. ES)"
        )
    try:
        header = pd.read_csv(market_file, nrows=0, skipinitialspace=True).columns
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AccuracyInputError(
            f"--market-file {market_file}: not a readable CSV ({exc}); it must follow {LAYOUT}"
        ) from None
    if len(header) != 4:
        raise AccuracyInputError(
            f"--market-file {market_file}: expected 4 columns, found {len(header)} "
            f"({', '.join(map(str, header))}); it must follow {LAYOUT}"
        )
    try:
        market = Market(
            code=code,
            name=code,
            history=market_file.name,
            zone=timezone,
            currency=currency or "EUR",
            holidays=Holidays(country=holiday_country.upper()),
            exogenous=(_snake(header[2]), _snake(header[3])),
        )
    except ValidationError as exc:
        raise AccuracyInputError(f"--market-file {market_file}: {exc}") from None
    register_market(market)  # the feature builder looks markets up by region code (core.markets.get_market)
    return market


def read_clock_prices(path: Path) -> pd.Series:
    """The price column of a (validated) market file, indexed by its local clock hours."""
    raw = pd.read_csv(path, skipinitialspace=True)
    index = pd.to_datetime(raw.iloc[:, 0].astype(str).str.strip(), format="%Y-%m-%d %H:%M:%S")
    return pd.Series(raw.iloc[:, 1].to_numpy(dtype=float), index=pd.DatetimeIndex(index, name="local"), name="price")


def read_published_forecasts(path: Path) -> pd.DataFrame:
    """A published forecast file, checked: ``Real price`` and both ensembles, whole contiguous days of 24 hours."""
    what = f"--published-forecasts {path}"
    if not path.is_file():
        raise AccuracyInputError(f"{what}: file not found; the four markets' files are in {PUBLISHED_DIR}")
    try:
        frame = pd.read_csv(path, index_col=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AccuracyInputError(f"{what}: not a readable CSV ({exc})") from None
    missing = [c for c in (REAL_PRICE, *PUBLISHED_ENSEMBLES.values()) if c not in frame.columns]
    if missing:
        raise AccuracyInputError(
            f"{what}: column(s) {', '.join(map(repr, missing))} missing (found {', '.join(map(repr, frame.columns))}); "
            f"the file needs a first column of local clock hours and the columns {REAL_PRICE!r}, "
            f"{', '.join(map(repr, PUBLISHED_ENSEMBLES.values()))}, as the paper's Forecasts_<M>_DNN_LEAR_ensembles.csv"
        )
    local = pd.to_datetime(frame.index.astype(str).str.strip(), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    if local.isna().any():
        first = frame.index[np.flatnonzero(local.isna())[0]]
        raise AccuracyInputError(f"{what}: row {first!r} is not a local hour YYYY-MM-DD HH:MM:SS")
    frame.index = pd.DatetimeIndex(local, name="local")
    values = frame[[REAL_PRICE, *PUBLISHED_ENSEMBLES.values()]].apply(pd.to_numeric, errors="coerce")
    if not np.isfinite(values.to_numpy(dtype=float)).all():
        raise AccuracyInputError(
            f"{what}: {int((~np.isfinite(values.to_numpy(dtype=float))).sum())} value(s) of the "
            f"price or ensemble columns are empty or not numbers"
        )
    frame[values.columns] = values
    _check_clock_days(frame.index, what, "the forecasts must cover whole local days, 24 clock hours each")
    return frame


def _check_clock_days(index: pd.DatetimeIndex, what: str, needed: str) -> None:
    if index.has_duplicates:
        raise AccuracyInputError(f"{what}: hour {index[index.duplicated()][0]} appears twice; {needed}")
    if not index.is_monotonic_increasing:
        raise AccuracyInputError(f"{what}: rows are not in time order; {needed}")
    expected = pd.date_range(index[0].normalize(), index[-1].normalize() + DAY, freq="h", inclusive="left")
    if not index.equals(expected):
        wrong = expected.difference(index)
        first = wrong[0] if len(wrong) else index.difference(expected)[0]
        raise AccuracyInputError(
            f"{what}: the hours are not whole contiguous days (first missing or extra hour "
            f"{first}, {len(wrong)} missing); {needed}"
        )


def load_inputs(
    market_file: Path,
    published_file: Path,
    *,
    region: str | None = None,
    timezone: str | None = None,
    holiday_country: str | None = None,
    currency: str | None = None,
) -> MarketInputs:
    """Read and cross-check a market file and its published forecasts, or say which file is wrong and how."""
    market_file, published_file = Path(market_file), Path(published_file)
    if not market_file.is_file():
        raise AccuracyInputError(
            f"--market-file {market_file}: file not found; the bundled markets are in {MARKETS_DIR}"
        )
    market = resolve_market(market_file, region, timezone, holiday_country, currency)
    try:
        history = read_market_file(market_file, market)
    except MarketDataError as exc:
        raise AccuracyInputError(
            f"--market-file {market_file} cannot be used: {exc}. The file must follow {LAYOUT}; "
            "fix it or pass another --market-file"
        ) from None
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    clock_prices = read_clock_prices(market_file)
    published = read_published_forecasts(published_file)
    outside = published.index.difference(clock_prices.index)
    if len(outside):
        raise AccuracyInputError(
            f"--published-forecasts {published_file}: {len(outside)} of its hours (first {outside[0]}) are not in "
            f"--market-file {market_file} ({clock_prices.index[0]} to {clock_prices.index[-1]}); pass the market file "
            "that holds the forecast period and the history before it"
        )
    actual = clock_prices.reindex(published.index).to_numpy()
    real = published[REAL_PRICE].to_numpy(dtype=float)
    differs = ~np.isclose(real, actual, rtol=1e-9, atol=1e-6)
    if differs.any():
        at = published.index[np.flatnonzero(differs)[0]]
        raise AccuracyInputError(
            f"--published-forecasts {published_file}: its {REAL_PRICE!r} differs from the price of --market-file "
            f"{market_file} on {int(differs.sum())} hour(s), first {at} ({published.loc[at, REAL_PRICE]} vs "
            f"{clock_prices.loc[at]}); the two files are not of the same market: pass the matching pair"
        )
    return MarketInputs(market.region, market, market_file, published_file, prices, exogenous, clock_prices, published)


# -- the published metrics ------------------------------------------------------------------------


def recompute_published_metrics(published: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The paper's metrics of its two ensembles, recomputed from the file (all its hours).

    MAPE is the paper's plain MAPE: the test periods hold no zero price, so no hour is excluded
    (``guarded_mape`` with a floor of the smallest positive float; its excluded share is kept).
    """
    from core.metrics import epf_rmae, guarded_mape, mae, rmse, smape

    y = published[REAL_PRICE].to_numpy(dtype=float)
    out = {}
    for key, column in PUBLISHED_ENSEMBLES.items():
        yhat = published[column].to_numpy(dtype=float)
        mape_value, excluded = guarded_mape(y, yhat, floor=np.finfo(float).tiny)
        out[key] = {
            "MAE": mae(y, yhat),
            "rMAE": epf_rmae(y, yhat),
            "sMAPE%": smape(y, yhat),
            "RMSE": rmse(y, yhat),
            "MAPE%": mape_value,
            "mape_excluded_share": excluded,
        }
    return out


def verify_published_metrics(name: str, published: pd.DataFrame, table: Path = PUBLISHED_METRICS) -> dict:
    """Recomputed vs published, metric by metric, at the precision the table prints (half a unit of its last digit)."""
    rows = pd.read_csv(table, dtype=str)
    rows = rows[rows["market"].str.strip() == name]
    if rows.empty:
        return {"checked": False, "reason": f"{table.name} has no row for {name}"}
    recomputed = recompute_published_metrics(published)
    checks, ok = {}, True
    for key, column in PUBLISHED_ENSEMBLES.items():
        table_column = column.replace(" ", "_")
        for metric in VERIFIED_METRICS:
            text = rows.loc[rows["metric"] == metric, table_column].iloc[0].strip()
            decimals = len(text.split(".")[1]) if "." in text else 0
            value = recomputed[key][metric]
            match = abs(value - float(text)) <= 0.5 * 10.0**-decimals + 1e-12
            ok &= match
            checks[f"{key}.{metric}"] = {"published": text, "recomputed": round(value, 6), "matches": bool(match)}
    return {
        "checked": True,
        "all_match": bool(ok),
        "hours": len(published),
        "table": str(table.relative_to(PROJECT_ROOT)) if table.is_relative_to(PROJECT_ROOT) else str(table),
        "metrics": checks,
    }


# -- the benchmark --------------------------------------------------------------------------------


def published_days(published: pd.DataFrame, days: int | None) -> pd.DatetimeIndex:
    """The local calendar days of the published file (the first ``days`` of them when given)."""
    all_days = published.index.normalize().unique()
    return all_days[:days] if days else all_days


def day_origins(days: pd.DatetimeIndex, timezone: str) -> pd.DatetimeIndex:
    """The UTC instants of the local midnights of ``days`` (the day-ahead forecast origins)."""
    return pd.DatetimeIndex(days.tz_localize(timezone).tz_convert("UTC"))


def comparison_frame(inputs: MarketInputs, clock_forecast: pd.DataFrame, days: pd.DatetimeIndex) -> pd.DataFrame:
    """Every forecaster on the published file's hours of ``days``: actual, ours, members, naive, LEAR, DNN."""
    hours = inputs.published.index[inputs.published.index.normalize().isin(days)]
    if not clock_forecast.index.equals(hours):
        extra, missing = clock_forecast.index.difference(hours), hours.difference(clock_forecast.index)
        raise AccuracyInputError(
            f"{inputs.name}: the backtest's forecast hours differ from {inputs.published_file}'s "
            f"({len(missing)} missing, {len(extra)} extra; first "
            f"{(missing if len(missing) else extra)[0]})"
        )
    published = inputs.published.loc[hours]
    actual = published[REAL_PRICE].to_numpy(dtype=float)
    # our folding of UTC hours back to clock hours must give the file's prices (the files round the
    # interpolated spring hour to their precision, hence the tolerance)
    folded = clock_forecast["price"].to_numpy(dtype=float)
    if not np.allclose(folded, actual, atol=0.01):
        at = hours[np.flatnonzero(~np.isclose(folded, actual, atol=0.01))[0]]
        raise AccuracyInputError(
            f"{inputs.name}: the backtest's actual price at {at} differs from the file's; "
            "the UTC to clock-hour mapping is wrong"
        )
    frame = pd.DataFrame(
        {
            "actual": actual,
            "ensemble": clock_forecast["yhat"].to_numpy(),
            "lower": clock_forecast["lower"].to_numpy(),
            "upper": clock_forecast["upper"].to_numpy(),
            # our quantiles q05 .. q95 (scored by ``quantile_comparison``)
            **{c: clock_forecast[c].to_numpy() for c in EMITTED_COLUMNS},
        },
        index=hours,
    )
    for member in MEMBERS:
        if f"yhat_{member}" in clock_forecast.columns:  # a run with --models leaves members out
            frame[member] = clock_forecast[f"yhat_{member}"].to_numpy()
    frame["seasonal_naive"] = inputs.clock_prices.reindex(hours - 7 * DAY).to_numpy()
    for key, column in PUBLISHED_ENSEMBLES.items():
        frame[key] = published[column].to_numpy(dtype=float)
    if frame.isna().any().any():
        column = frame.columns[frame.isna().any()][0]
        raise AccuracyInputError(
            f"{inputs.name}: {column} has no value on {int(frame[column].isna().sum())} hour(s) "
            f"(the seasonal naive needs the week before the test period in --market-file)"
        )
    return frame


def score(frame: pd.DataFrame) -> tuple[dict, dict, dict]:
    """Metrics per forecaster, ratios of our MAE to the published ensembles', and the DM tests."""
    from core.metrics import diebold_mariano, evaluate_epf, interval_coverage

    y = frame["actual"].to_numpy()
    metrics = {who: evaluate_epf(y, frame[who].to_numpy()) for who in FORECASTERS if who in frame.columns}
    metrics["ensemble"]["interval_coverage"] = interval_coverage(y, frame["lower"], frame["upper"])
    ratios, tests = {}, {}
    for key in PUBLISHED_ENSEMBLES:
        ratios[f"mae_vs_{key}"] = metrics["ensemble"]["mae"] / metrics[key]["mae"]
        ratios[f"rmse_vs_{key}"] = metrics["ensemble"]["rmse"] / metrics[key]["rmse"]
        ours_better = diebold_mariano(y, frame[key].to_numpy(), frame["ensemble"].to_numpy())
        theirs_better = diebold_mariano(y, frame["ensemble"].to_numpy(), frame[key].to_numpy())
        tests[key] = {
            "statistic_ours_better": ours_better.statistic,
            "p_ours_better": ours_better.p_value,
            "p_published_better": theirs_better.p_value,
            "days": ours_better.days,
            "mean_daily_mae_difference": ours_better.mean_daily_loss_difference,
        }
    return metrics, ratios, tests


QUANTILE_LEVELS = tuple(np.round(np.arange(1, 100) / 100, 2))
ANCHOR_CALIBRATION_DAYS = 182
CENTRAL_INTERVALS = (0.5, 0.9)


def quantile_scores(actual: np.ndarray, quantiles: np.ndarray, levels) -> dict:
    """Mean pinball loss over ``levels`` (one column of ``quantiles`` each), and the coverage and
    Kupiec test of the 50% and 90% central intervals (the columns of levels 0.25/0.75, 0.05/0.95)."""
    from core.metrics import kupiec_test, pinball_loss

    levels = np.asarray(levels, dtype=float)
    out: dict = {"mean_pinball": pinball_loss(actual, quantiles, levels)}
    for coverage in CENTRAL_INTERVALS:
        lo, hi = (int(np.argmin(np.abs(levels - q))) for q in ((1 - coverage) / 2, (1 + coverage) / 2))
        test = kupiec_test(actual, quantiles[:, lo], quantiles[:, hi], coverage)
        out[f"interval_{round(coverage * 100)}"] = {
            "coverage": test.coverage,
            "kupiec_statistic": test.statistic,
            "kupiec_p": test.p_value,
        }
    return out


def anchor_quantiles(
    published: pd.DataFrame, levels=QUANTILE_LEVELS, calibration_days: int = ANCHOR_CALIBRATION_DAYS
) -> pd.DataFrame:
    """The anchor's quantiles (one column per level) on the published hours after the first
    ``calibration_days`` days: see :func:`conformal_anchor`."""
    from numpy.lib.stride_tricks import sliding_window_view

    from training.ensemble import conformal_ranks

    actual = published[REAL_PRICE].to_numpy(dtype=float).reshape(-1, 24)
    forecast = published[PUBLISHED_ENSEMBLES["lear_ensemble"]].to_numpy(dtype=float).reshape(-1, 24)
    days = len(actual)
    if days <= calibration_days:
        raise AccuracyInputError(f"{days} days leave none to score after {calibration_days} calibration days")
    # windows[i, h] = hour h's residuals of days i .. i + calibration_days - 1, sorted; day d uses window d - calibration_days
    windows = np.sort(sliding_window_view(actual - forecast, calibration_days, axis=0), axis=-1)[:-1]
    level_array = np.asarray(levels, dtype=float)
    quantiles = forecast[calibration_days:, :, None] + windows[..., conformal_ranks(calibration_days, level_array)]
    return pd.DataFrame(
        quantiles.reshape(-1, level_array.size), index=published.index[calibration_days * 24 :], columns=list(levels)
    )


def conformal_anchor(published: pd.DataFrame, calibration_days: int = ANCHOR_CALIBRATION_DAYS) -> dict:
    """Split-conformal quantiles around the published LEAR ensemble, scored on the hours after the calibration.

    The probabilistic anchor of the benchmark (issue 18): for every test day after the first
    ``calibration_days``, each hour of day's quantiles 0.01..0.99 are the LEAR ensemble's forecast
    plus the split-conformal quantiles (``training.ensemble.conformal_ranks``) of that hour's
    residuals ``actual - forecast`` over the ``calibration_days`` test days before it (a rolling
    window: each day is calibrated on the days before it only). Scores: mean pinball loss over
    the 99 levels (and over the levels our model emits, ``core.quantiles.QUANTILE_LEVELS``:
    ``mean_pinball_emitted``), coverage of the 50% and 90% central intervals and Kupiec's test of each.
    """
    quantiles = anchor_quantiles(published, QUANTILE_LEVELS, calibration_days)
    y = published.loc[quantiles.index, REAL_PRICE].to_numpy(dtype=float)
    emitted = quantiles[list(EMITTED_LEVELS)].to_numpy()
    forecast = published.loc[quantiles.index, PUBLISHED_ENSEMBLES["lear_ensemble"]].to_numpy(dtype=float)
    scores = quantile_scores(y, quantiles.to_numpy(), QUANTILE_LEVELS)
    return {
        "forecast": PUBLISHED_ENSEMBLES["lear_ensemble"],
        "calibration_days": calibration_days,
        "scored_days": len(quantiles) // 24,
        "first_scored_hour": str(quantiles.index[0]),
        "quantile_levels": "0.01..0.99",
        "mean_pinball": scores["mean_pinball"],
        "mean_pinball_emitted": quantile_scores(y, emitted, EMITTED_LEVELS)["mean_pinball"],
        "mae": float(np.mean(np.abs(y - forecast))),
        **{k: v for k, v in scores.items() if k.startswith("interval_")},
    }


def quantile_comparison(
    frame: pd.DataFrame, published: pd.DataFrame, calibration_days: int = ANCHOR_CALIBRATION_DAYS
) -> dict:
    """Our backtest's quantiles beside the conformal-on-LEAR anchor, on the same hours.

    The hours: those of ``frame`` (the comparison frame, with our ``q05`` .. ``q95``) that the
    anchor scores, i.e. the published test days after its first ``calibration_days`` (the last
    546 of a whole test period). Both are scored with :func:`quantile_scores` over the levels our
    model emits (``core.quantiles.QUANTILE_LEVELS``, 0.05 .. 0.95: the mean pinball over 7 levels,
    not the anchor's 99, which weigh the tails more) and the anchor also over its 0.01..0.99. A
    run that shares no hour with the anchor (``--quick``: the first weeks of the test period)
    records ours on its own hours and says so.
    """
    ours_columns = list(EMITTED_COLUMNS)
    missing = [c for c in ours_columns if c not in frame.columns or frame[c].isna().any()]
    if missing:
        raise AccuracyInputError(f"our forecast has no quantile(s) {', '.join(missing)} on some hours to score")
    levels = {"ours": [float(q) for q in EMITTED_LEVELS], "anchor_all": "0.01..0.99"}
    scored = anchor_quantiles(published, QUANTILE_LEVELS, calibration_days)
    common = frame.index.intersection(scored.index)
    if common.empty:
        y = frame["actual"].to_numpy(dtype=float)
        return {
            "hours": 0,
            "levels": levels,
            "note": f"no hour of this run lies in the anchor's scored days (from {scored.index[0]}): ours scored "
            "on its own hours, no anchor beside it",
            "ours_own_hours": {
                "hours": len(frame),
                **quantile_scores(y, frame[ours_columns].to_numpy(dtype=float), EMITTED_LEVELS),
            },
        }
    y = frame.loc[common, "actual"].to_numpy(dtype=float)
    ours = quantile_scores(y, frame.loc[common, ours_columns].to_numpy(dtype=float), EMITTED_LEVELS)
    anchor = quantile_scores(y, scored.loc[common, list(EMITTED_LEVELS)].to_numpy(), EMITTED_LEVELS)
    anchor_all = quantile_scores(y, scored.loc[common].to_numpy(), QUANTILE_LEVELS)
    return {
        "hours": len(common),
        "days": int(len(common) // 24),
        "first_hour": str(common[0]),
        "last_hour": str(common[-1]),
        "levels": levels,
        "ours": ours,
        "anchor": {**anchor, "mean_pinball_0.01..0.99": anchor_all["mean_pinball"]},
        "pinball_ratio": ours["mean_pinball"] / anchor["mean_pinball"],
    }


def representative_fortnight(frame: pd.DataFrame, days: int = 14) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The ``days``-day window whose ensemble MAE is closest to the whole period's (first such window)."""
    daily = (frame["actual"] - frame["ensemble"]).abs().groupby(frame.index.normalize()).mean()
    if len(daily) <= days:
        return daily.index[0], daily.index[-1] + DAY
    rolling = daily.rolling(days).mean().dropna()
    overall = float((frame["actual"] - frame["ensemble"]).abs().mean())
    end_day = (rolling - overall).abs().idxmin()
    return end_day - (days - 1) * DAY, end_day + DAY


def plot_fortnight(frame: pd.DataFrame, path: Path, name: str) -> Path:
    from training.plots import plt

    start, end = representative_fortnight(frame)
    part = frame[(frame.index >= start) & (frame.index < end)]
    errors = {who: float((part["actual"] - part[who]).abs().mean()) for who in ("ensemble", *PUBLISHED_ENSEMBLES)}
    fig, ax = plt.subplots(figsize=(13, 4.8), dpi=110)
    ax.plot(part.index, part["actual"], color="black", lw=1.4, label="actual")
    ax.plot(
        part.index,
        part["ensemble"],
        color="tab:blue",
        lw=1.1,
        label=f"ours, weekly refit (MAE {errors['ensemble']:.2f})",
    )
    ax.plot(
        part.index,
        part["lear_ensemble"],
        color="tab:orange",
        lw=1.0,
        ls="--",
        label=f"LEAR ensemble, published (MAE {errors['lear_ensemble']:.2f})",
    )
    ax.plot(
        part.index,
        part["dnn_ensemble"],
        color="tab:green",
        lw=1.0,
        ls=":",
        label=f"DNN ensemble, published (MAE {errors['dnn_ensemble']:.2f})",
    )
    which = (
        "the fortnight whose MAE of ours is closest to the whole period's"
        if len(part) < len(frame)
        else "the whole scored period"
    )
    ax.set_title(f"{name}: {start:%Y-%m-%d} to {end - DAY:%Y-%m-%d}, {which} (local clock hours)", fontsize=10)
    ax.set_ylabel("price per MWh")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def run_market(
    inputs: MarketInputs, settings: Settings, config, args: argparse.Namespace, scope: str, storage_url: str
) -> dict:
    """Backtest one market over the published hours, score, plot, write and track it."""
    import torch

    from training.backtest import (
        backtest_summary,
        flat_metrics,
        local_clock_hours,
        log_backtest,
        save_backtest,
        walk_forward_in_segments,
    )

    started, cpu_started, segments_cpu = time.perf_counter(), time.process_time(), _children_cpu_seconds()
    days = published_days(inputs.published, args.days)
    origins = day_origins(days, inputs.market.timezone)
    available = (origins[0] - inputs.prices.index[0]) / DAY
    if available < config.window_days:
        raise AccuracyInputError(
            f"--market-file {inputs.market_file}: {available:.0f} days of history before the test period "
            f"({days[0]:%Y-%m-%d}), the training window needs {config.window_days}; pass a smaller --window-days "
            "or a file with more history"
        )
    print(
        f"{inputs.name}: {len(days)} test days {days[0]:%Y-%m-%d} .. {days[-1]:%Y-%m-%d}, budget {config.budget_name}, "
        f"refit every {args.retrain_every_days} days",
        file=sys.stderr,
        flush=True,
    )
    result = walk_forward_in_segments(
        inputs.prices,
        inputs.exogenous,
        inputs.market.region,
        origins,
        config,
        storage_url=storage_url,
        retrain_every_days=args.retrain_every_days,
        retune_every_days=args.retune_every_days,
        params=tuned_params(args.tuned_params, inputs.name),
        segments=args.segments,
        progress=True,
    )
    segments_cpu = _children_cpu_seconds() - segments_cpu
    frame = comparison_frame(inputs, local_clock_hours(result.forecasts, inputs.market.timezone), days)
    metrics, ratios, tests = score(frame)
    quantiles = quantile_comparison(frame, inputs.published)
    verification = (
        verify_published_metrics(inputs.name, inputs.published)
        if args.verify_published
        else {"checked": False, "reason": "--no-verify-published"}
    )

    stem = f"accuracy_{inputs.name}" + (f"_{scope}" if scope else "")
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    png = plot_fortnight(frame, results / f"{stem}.png", inputs.name)
    folder = settings.stores.home / "backtests" / f"{stem}-{days[0]:%Y%m%d}-{len(days)}d-{config.budget_name}"
    summary = backtest_summary(
        result, config, retrain_every_days=args.retrain_every_days, retune_every_days=args.retune_every_days
    )
    artifacts = save_backtest(result, folder, summary, f"{inputs.name} backtest: last 14 days")
    frame.to_parquet(folder / "clock_hours.parquet")
    block_seconds = [b["seconds"] for b in result.blocks]
    record = {
        "market": inputs.name,
        "scope": scope or "whole test period",
        "files": {
            "market_file": {"path": _shown(inputs.market_file), "sha256": _sha256(inputs.market_file)},
            "published_forecasts": {"path": _shown(inputs.published_file), "sha256": _sha256(inputs.published_file)},
        },
        "period": {
            "first_hour": str(frame.index[0]),
            "last_hour": str(frame.index[-1]),
            "days": len(days),
            "hours": len(frame),
            "clock": "local clock hours, 24 a day, as in the published file",
        },
        "protocol": {
            "ours": "walk-forward: tuned with the production Optuna code on the window before the first test day"
            + (f", re-tuned every {args.retune_every_days} days" if args.retune_every_days else "")
            + (f" (here not tuned: the tuned parameters of {_shown(args.tuned_params)})" if args.tuned_params else "")
            + f"; refitted every {args.retrain_every_days} days on the {config.window_days} days before; each "
            "day forecast from the prices before its local midnight and the day's exogenous forecasts",
            "published": "the paper's models, recalibrated every day (Lago et al. 2021)",
            "rmae": "MAE / MAE of y(d-7,h) built from the scored hours' own prices, first 168 hours left out of the "
            "denominator (the paper's definition)",
            "mape": "guarded: hours with |price| >= 1 only (mape_excluded_share)",
            "diebold_mariano": "multivariate, daily L1 loss differentials of the 24-hour vectors, one-sided, normal",
        },
        "config": {
            **config.describe(),
            "max_rounds": {m: b.max_rounds for m, b in config.budgets.items()},
            "max_epochs": {m: b.max_epochs for m, b in config.budgets.items()},
            "retrain_every_days": args.retrain_every_days,
            "retune_every_days": args.retune_every_days,
            # 0: every weekly refit of the CNN-LSTM starts from scratch; else the block before's networks, this patience
            "cnn_lstm_warm_start_patience": config.warm_start_patience,
            # with warm starts, the CNN-LSTM starts from scratch every this many blocks (0: never again)
            "cnn_lstm_cold_start_every": config.cold_start_every,
            # LEAR's criterion on its long windows runs every this many blocks; the blocks between reuse its penalties
            "lear_criterion_every": config.lear_criterion_every,
            # LEAR's short windows refitted before every forecast day (validation days included)
            "lear_recalibrate_daily": config.lear_recalibrate_daily,
            # LEAR reads this many days before a block where the file has them (0: the training window)
            "lear_history_days": config.lear_history_days,
            # the members weighed and the intervals calibrated on the forecasts served in this many days before a
            # block (0: on its validation)
            "served_weight_days": config.served_weight_days,
            # how the members are weighed: "validation" (choose_weights) or "lear_network" (half and half)
            "ensemble_weights": config.ensemble_weights,
            # the members tuned and fitted (lear_network: the pair alone, the trees weighing 0)
            "members": list(config.models),
            # the test window (test_days) held out between each block's fits and the block, as model_retraining
            # deploys its members (False: the fits reach the block)
            "as_deployed": config.as_deployed,
            "torch_threads": torch.get_num_threads(),
            "seeds": {
                "optuna_sampler": config.seed,
                "models": config.seed,
                "cnn_lstm_networks": [config.seed + k for k in range(config.budget("cnn_lstm").networks)],
            },
        },
        "metrics": metrics,
        "ratios": ratios,
        "diebold_mariano": tests,
        "quantiles": quantiles,
        "published_check": verification,
        "timing": {
            "wall_seconds": round(time.perf_counter() - started, 1),
            # every thread of this market's process and of its segments' processes
            "cpu_seconds": round(time.process_time() - cpu_started + segments_cpu, 1),
            "segments": result.segments,  # the first block of each process the walk-forward ran in
            "backtest_seconds": result.seconds,
            "tuning_seconds": [t["seconds"] for t in result.tunings],
            "blocks": len(block_seconds),
            "block_seconds_mean": round(float(np.mean(block_seconds)), 2),
            "block_seconds_max": round(float(np.max(block_seconds)), 2),
            "lear_seconds_mean": round(float(np.mean([b.get("lear_seconds", 0.0) for b in result.blocks])), 2),
            "member_seconds_mean": {
                model: round(float(np.mean([b["member_seconds"][model] for b in result.blocks])), 2)
                for model in result.blocks[0].get("member_seconds", {})
            },
        },
        "tuned_params": result.params,
        "blocks": [
            {
                k: b[k]
                for k in (
                    "first_origin",
                    "origins",
                    "kind",
                    "rule",
                    "weights",
                    "comparison",
                    "weights_from",
                    "served_days",
                    "validation_weights",
                    "last_training_target",
                    "held_out_days",
                    "lear_last_training_target",
                    "lear_windows",
                    "lear_seconds",
                    "lear_penalties_reused",
                    "warm_start_epochs",
                    "member_seconds",
                    "fit_seconds",
                    "seconds",
                )
                if k in b
            }
            for b in result.blocks
        ],
        "plot": _shown(png),
        "hourly_forecasts": str(folder),
        "machine": describe_machine(),
    }
    json_path = results / f"{stem}.json"
    json_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    if not args.no_mlflow:
        flat = flat_metrics(metrics)
        flat.update({f"ratio_{k}": v for k, v in ratios.items()})
        flat.update({f"dm_p_ours_better_than_{k}": t["p_ours_better"] for k, t in tests.items()})
        if quantiles["hours"]:
            flat["pinball_ours"] = quantiles["ours"]["mean_pinball"]
            flat["pinball_anchor"] = quantiles["anchor"]["mean_pinball"]
            for key in ("interval_50", "interval_90"):
                flat[f"coverage_{key}"] = quantiles["ours"][key]["coverage"]
        flat["wall_seconds"] = record["timing"]["wall_seconds"]
        params = {
            "market": inputs.name,
            "scope": record["scope"],
            "market_file": _shown(inputs.market_file),
            "published_forecasts": _shown(inputs.published_file),
            "days": len(days),
            "first_day": f"{days[0]:%Y-%m-%d}",
            "retrain_every_days": args.retrain_every_days,
            "retune_every_days": args.retune_every_days,
            **config.describe(),
        }
        record["mlflow_run_id"] = log_backtest(
            settings,
            f"accuracy {inputs.name} {len(days)}d",
            inputs.market.region,
            params,
            flat,
            [json_path, png, *artifacts],
            kind="accuracy-benchmark",
        )
        json_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    if verification.get("checked") and not verification["all_match"]:
        bad = [k for k, c in verification["metrics"].items() if not c["matches"]]
        raise AccuracyInputError(
            f"{inputs.name}: recomputed published metrics differ from {PUBLISHED_METRICS.name}: "
            f"{', '.join(bad)} (see {json_path})"
        )
    return record


def cpu_hours(timing: dict) -> str:
    """The CPU cost of one market's run in CPU-hours (results recorded before it was measured say so)."""
    return f"{timing['cpu_seconds'] / 3600:.2f} CPU-h" if "cpu_seconds" in timing else "CPU not recorded"


def write_summary(results: Path) -> Path:
    """``ACCURACY.md`` from every ``accuracy_*.json`` in ``results``."""
    records = [json.loads(p.read_text()) for p in sorted(results.glob("accuracy_*.json"))]
    results.mkdir(parents=True, exist_ok=True)
    path = results / "ACCURACY.md"
    path.write_text("\n".join(summary_lines(records)) + "\n")
    return path


def cadence_note(config: dict) -> str:
    """What a record's refits saved or averaged beyond refitting every member from scratch (empty: nothing)."""
    parts = []
    if config.get("cnn_lstm_networks", 1) > 1:
        parts.append(f"{config['cnn_lstm_networks']} CNN-LSTM networks")
    if config.get("cnn_lstm_warm_start_patience"):
        cold = config.get("cnn_lstm_cold_start_every", 0)
        parts.append("warm-started" + (f", from scratch every {cold}" if cold else ""))
    if config.get("lear_criterion_every", 1) > 1:
        parts.append(f"LEAR criterion every {config['lear_criterion_every']}")
    if config.get("lear_recalibrate_daily"):
        parts.append("LEAR's short windows refitted daily")
    if config.get("lear_history_days"):
        parts.append(f"LEAR on up to {config['lear_history_days']} days")
    if config.get("ensemble_weights", "validation") == "lear_network":
        parts.append("LEAR and the CNN-LSTM half and half")
    if config.get("served_weight_days"):
        parts.append(f"weights and intervals from the {config['served_weight_days']} days served before")
    if config.get("as_deployed"):
        parts.append(f"fitted as deployed, the {config['test_days']}-day test window held out")
    return f" ({'; '.join(parts)})" if parts else ""


def summary_lines(records: list[dict]) -> list[str]:
    """The accuracy table over ``records`` (the ``accuracy_*.json`` files), as Markdown lines."""
    lines = [
        "# Accuracy against the published EPF benchmark (Lago et al. 2021)",
        "",
        "Ours: the product's ensemble (XGBoost + LightGBM + CNN-LSTM, and the LEAR member in runs after it joined: "
        "see the Members line), tuned once before the test period and refitted "
        "on a fixed cadence (production: weekly); each day forecast from the prices before its local midnight. "
        "Published: the paper's LEAR and DNN ensembles, recalibrated daily, from their forecast files "
        "(`data/published/`). Every number is on the same hours (local clock hours of the published file). "
        "rMAE is the paper's (weekly naive from the scored hours' own prices). "
        "A ratio above 1 means our MAE is higher (worse) than the published ensemble's. DM p: one-sided multivariate "
        "Diebold-Mariano p-value that ours is more accurate (small = ours significantly better) / that the "
        "published one is (small = theirs significantly better).",
        "",
        "| market | scope | days | budget, refit | MAE ours | MAE LEAR | MAE DNN | MAE naive | ours/LEAR | ours/DNN "
        "| rMAE ours / LEAR / DNN | sMAPE% ours / LEAR / DNN | DM p vs LEAR (ours, theirs) | DM p vs DNN (ours, theirs) "
        "| published check | wall, CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        m, q, t, c = r["metrics"], r["ratios"], r["diebold_mariano"], r["config"]
        check = r["published_check"]
        checked = ("matches" if check.get("all_match") else "MISMATCH") if check.get("checked") else "not checked"
        lines.append(
            f"| {r['market']} | {r['scope']} | {r['period']['days']} | {c['budget']}, every {c['retrain_every_days']} d"
            f"{cadence_note(c)} "
            f"| {m['ensemble']['mae']:.3f} | {m['lear_ensemble']['mae']:.3f} | {m['dnn_ensemble']['mae']:.3f} "
            f"| {m['seasonal_naive']['mae']:.3f} | {q['mae_vs_lear_ensemble']:.2f} | {q['mae_vs_dnn_ensemble']:.2f} "
            f"| {m['ensemble']['rmae']:.3f} / {m['lear_ensemble']['rmae']:.3f} / {m['dnn_ensemble']['rmae']:.3f} "
            f"| {m['ensemble']['smape']:.2f} / {m['lear_ensemble']['smape']:.2f} / {m['dnn_ensemble']['smape']:.2f} "
            f"| {t['lear_ensemble']['p_ours_better']:.3g}, {t['lear_ensemble']['p_published_better']:.3g} "
            f"| {t['dnn_ensemble']['p_ours_better']:.3g}, {t['dnn_ensemble']['p_published_better']:.3g} "
            f"| {checked} | {r['timing']['wall_seconds'] / 60:.1f} min, {cpu_hours(r['timing'])} |"
        )
    lines += [
        "",
        "Members (MAE): "
        + "; ".join(
            f"{r['market']} ({r['scope']}): "
            + ", ".join(f"{w} {r['metrics'][w]['mae']:.3f}" for w in MEMBERS if w in r["metrics"])
            for r in records
        ),
    ]
    anchors = {
        name: conformal_anchor(read_published_forecasts(PUBLISHED_DIR / f"Forecasts_{name}_DNN_LEAR_ensembles.csv"))
        for name in DEFAULT_MARKETS
        if (PUBLISHED_DIR / f"Forecasts_{name}_DNN_LEAR_ensembles.csv").is_file()
    }
    if anchors:
        lines += [
            "",
            "## Quantile anchor: split-conformal around the published LEAR ensemble",
            "",
            f"Each hour of day's quantiles 0.01..0.99 = the LEAR ensemble's forecast + the split-conformal quantiles of "
            f"that hour's residuals over the {ANCHOR_CALIBRATION_DAYS} test days before the day (rolling), scored on the "
            "test days after the first "
            f"{ANCHOR_CALIBRATION_DAYS} (`conformal_anchor`, from the published files alone). Kupiec p: unconditional "
            "coverage test (small = the coverage differs significantly from the nominal).",
            "",
            f"| market | scored days | mean pinball 0.01..0.99 | mean pinball over our {len(EMITTED_LEVELS)} levels "
            "| 50% coverage (Kupiec p) | 90% coverage (Kupiec p) |",
            "|---|---|---|---|---|---|",
        ]
        for name, a in anchors.items():
            i50, i90 = a["interval_50"], a["interval_90"]
            lines.append(
                f"| {name} | {a['scored_days']} | {a['mean_pinball']:.3f} | {a['mean_pinball_emitted']:.3f} "
                f"| {i50['coverage']:.1%} ({i50['kupiec_p']:.2g}) "
                f"| {i90['coverage']:.1%} ({i90['kupiec_p']:.2g}) |"
            )
    lines += quantile_lines(records)
    if records:
        lines += [
            "",
            "Runs (market, scope: commit, machine, when): "
            + "; ".join(
                f"{r['market']} {r['scope']}: {r['machine']['git_commit'][:7]}, {r['machine']['cpu']} "
                f"({r['machine']['cores']} cores), {r['machine']['recorded_at'][:10]}"
                for r in records
            )
            + ". "
            "Per-market details (seeds, cadence, block times, tuned parameters, DM statistics): "
            "`accuracy_<market>[_<scope>].json`; a representative fortnight: the `.png` of the same name.",
        ]
    return lines


def quantile_lines(records: list[dict]) -> list[str]:
    """Our quantiles beside the anchor on the same hours (``quantile_comparison`` of each record), as Markdown lines."""
    compared = [r for r in records if r.get("quantiles", {}).get("hours")]
    if not compared:
        return []
    lines = [
        "",
        "## Our quantiles beside the anchor, on the same hours",
        "",
        f"Ours: the backtest's quantiles {', '.join(EMITTED_COLUMNS)} (split-conformal per forecast horizon on each "
        "refit's validation residuals, `training.ensemble.calibrate_intervals`); anchor: the conformal-on-LEAR "
        f"quantiles above, on the hours both have (the test days after the anchor's first {ANCHOR_CALIBRATION_DAYS}). "
        f"Mean pinball over the {len(EMITTED_LEVELS)} levels our model emits ({', '.join(f'{q:g}' for q in EMITTED_LEVELS)}), "
        "the anchor's over 0.01..0.99 in brackets; coverage of the 50% (q25..q75) and 90% (q05..q95) intervals "
        "with the Kupiec p.",
        "",
        "| market | scope | days | pinball ours | pinball anchor (0.01..0.99) | ours/anchor | 50% ours (Kupiec p) "
        "| 50% anchor | 90% ours (Kupiec p) | 90% anchor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in compared:
        q = r["quantiles"]
        o, a = q["ours"], q["anchor"]
        lines.append(
            f"| {r['market']} | {r['scope']} | {q['days']} | {o['mean_pinball']:.3f} "
            f"| {a['mean_pinball']:.3f} ({a['mean_pinball_0.01..0.99']:.3f}) | {q['pinball_ratio']:.2f} "
            f"| {o['interval_50']['coverage']:.1%} ({o['interval_50']['kupiec_p']:.2g}) | {a['interval_50']['coverage']:.1%} "
            f"| {o['interval_90']['coverage']:.1%} ({o['interval_90']['kupiec_p']:.2g}) | {a['interval_90']['coverage']:.1%} |"
        )
    return lines


# -- command line ---------------------------------------------------------------------------------


def _flag(value: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not true or false")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--market-file",
        action="append",
        type=Path,
        metavar="PATH",
        help="market CSV in the epftoolbox layout (repeatable, paired in order with "
        "--published-forecasts; default: the four markets in data/markets)",
    )
    parser.add_argument(
        "--published-forecasts",
        action="append",
        type=Path,
        metavar="PATH",
        help="the paper's forecast file of that market (default: data/published/Forecasts_<M>_...)",
    )
    parser.add_argument("--region", help="market code of a single --market-file (default: the file's name)")
    parser.add_argument("--timezone", help="IANA zone of a market the product does not know (e.g. Europe/Madrid)")
    parser.add_argument("--holiday-country", help="holiday calendar of that market (ISO country, e.g. ES)")
    parser.add_argument("--currency", help="currency of that market (default EUR)")
    parser.add_argument(
        "--quick",
        nargs="?",
        const="true",
        default="false",
        type=_flag,
        metavar="true|false",
        help=f"{QUICK_MARKET} only (unless files are given), first {QUICK_DAYS} days of the test period",
    )
    parser.add_argument("--days", type=int, default=None, help="only the first N days of the test period")
    parser.add_argument(
        "--budget",
        default=None,
        type=lambda v: v.strip() or None,
        help="tuning budget: smoke, default or thorough (default: EOPT_TRAINING_BUDGET, i.e. default)",
    )
    parser.add_argument("--retrain-every-days", type=int, default=7, help="refit cadence in days (default 7)")
    parser.add_argument("--retune-every-days", type=int, default=0, help="tune again every N days (default 0: once)")
    parser.add_argument(
        "--tuned-params",
        type=Path,
        default=None,
        metavar="JSON",
        help="reuse the tuned parameters of a recorded result (accuracy_<market>[_<scope>].json) instead of tuning: "
        "a before/after comparison on the same parameters",
    )
    parser.add_argument("--window-days", type=int, default=None, help="training window (default: production's)")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads per fit (default: EOPT_TRAINING_THREADS)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="CNN-LSTM device")
    parser.add_argument(
        "--networks",
        type=int,
        default=None,
        help="CNN-LSTM networks per fit, each its own seed, forecasting their mean (default: the budget's, 1)",
    )
    parser.add_argument(
        "--warm-patience",
        type=int,
        default=WARM_PATIENCE,
        help="refit the CNN-LSTM from the previous block's networks with this early-stopping patience "
        f"(default {WARM_PATIENCE}; 0: from scratch every block)",
    )
    parser.add_argument(
        "--cold-every",
        type=int,
        default=None,
        help=f"with --warm-patience, refit the CNN-LSTM from scratch every this many blocks (default {COLD_EVERY}; "
        "0: only the first block and after a re-tuning)",
    )
    parser.add_argument(
        "--lear-criterion-every",
        type=int,
        default=LEAR_CRITERION_EVERY,
        help="LEAR runs its criterion on the long windows every this many blocks, the blocks between reuse "
        f"its penalties (default {LEAR_CRITERION_EVERY}; 1: every block)",
    )
    parser.add_argument(
        "--lear-recalibrate-daily",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refit LEAR's 56- and 84-day windows before every forecast day, validation days included, as the "
        "registered model does by default (EOPT_LEAR_RECALIBRATE_DAILY; --no-lear-recalibrate-daily: "
        "LEAR's weekly fit only)",
    )
    parser.add_argument(
        "--lear-history-days",
        type=int,
        default=LEAR_HISTORY_DAYS,
        metavar="DAYS",
        help="LEAR reads the DAYS before each block where the market file has them (its long windows: half and "
        "all of them), the other members the training window, as the registered model's LEAR does by default "
        f"(EOPT_LEAR_HISTORY_DAYS; default {LEAR_HISTORY_DAYS}, the EPF benchmark's four years; 0: the training "
        "window)",
    )
    parser.add_argument(
        "--served-weight-days",
        type=int,
        default=0,
        metavar="DAYS",
        help="weigh the members and calibrate the intervals of each block on the forecasts served in the DAYS "
        "before it instead of its validation, once there are 28 (default 0: the validation, as the retraining does)",
    )
    parser.add_argument(
        "--ensemble-weights",
        choices=ENSEMBLE_WEIGHTS,
        default=None,
        help="how each block weighs its members: lear_network (LEAR and the CNN-LSTM half and half; the trees, "
        "at 0, are then not fitted) or validation (the rule its validation picks over all four); default: "
        "EOPT_ENSEMBLE_WEIGHTS, i.e. lear_network",
    )
    parser.add_argument(
        "--as-deployed",
        action="store_true",
        help="fit each block's members as model_retraining deploys them, the test window its gate scores "
        "(EOPT_TEST_DAYS, 56 by default) held out before the block (default: the fits reach the block)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="markets backtested at once, each in its own process (2 cores: --jobs 2 --threads 1)",
    )
    parser.add_argument(
        "--segments",
        type=int,
        default=1,
        help="each market's walk-forward cut into up to this many processes after its tuning, at blocks that "
        "carry nothing over (training.backtest.segment_starts): the same forecasts, sooner where cores are idle "
        "(make bench-accuracy: 2)",
    )
    parser.add_argument(
        "--optuna-storage",
        default=None,
        help="Optuna storage URL (default: a new SQLite file per run, so tuning always runs)",
    )
    parser.add_argument(
        "--verify-published",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check that the recomputed published metrics match the paper's table (default on)",
    )
    parser.add_argument("--verify-only", action="store_true", help="only the published-metrics check, no backtest")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log MLflow runs")
    parser.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)  # a child of --jobs
    parser.add_argument("--results", default=str(RESULTS), help="folder of the JSON, PNG and ACCURACY.md")
    args = parser.parse_args(argv)
    # an empty value (the MLproject's default) means "not given"
    files = [f for f in args.market_file or [] if str(f).strip() not in ("", ".")]
    published = [f for f in args.published_forecasts or [] if str(f).strip() not in ("", ".")]
    if not files and published:
        parser.error("--published-forecasts needs its --market-file")
    if files and len(published) != len(files):
        parser.error(
            f"{len(files)} --market-file but {len(published)} --published-forecasts; give one of each per market"
        )
    if not files:
        names = (QUICK_MARKET,) if args.quick else DEFAULT_MARKETS
        files = [MARKETS_DIR / f"{n}.csv" for n in names]
        published = [PUBLISHED_DIR / f"Forecasts_{n}_DNN_LEAR_ensembles.csv" for n in names]
    if len(files) > 1 and (args.region or args.timezone):
        parser.error("--region and --timezone describe a single --market-file")
    if args.quick and args.days is None:
        args.days = QUICK_DAYS
    for option in ("days", "retrain_every_days", "window_days", "threads", "jobs", "segments"):
        value = getattr(args, option)
        if value is not None and value < (0 if option == "threads" else 1):
            parser.error(f"--{option.replace('_', '-')} must be positive")
    if args.days is not None and args.days < MIN_DAYS:
        parser.error(f"--days must be at least {MIN_DAYS}: the paper's rMAE needs more than one week of scored hours")
    if args.retune_every_days < 0:
        parser.error("--retune-every-days must be 0 or positive")
    if args.cold_every is None:
        args.cold_every = COLD_EVERY if args.warm_patience else 0
    if args.lear_criterion_every < 1:
        parser.error("--lear-criterion-every must be at least 1 (1: every block)")
    if args.lear_history_days < 0:
        parser.error("--lear-history-days must be 0 (the training window) or positive")
    if args.warm_patience < 0 or args.cold_every < 0:
        parser.error("--warm-patience and --cold-every must be 0 or positive")
    if args.cold_every and not args.warm_patience:
        parser.error("--cold-every cuts chains of warm starts; it needs --warm-patience")
    if args.tuned_params is not None and args.retune_every_days:
        parser.error("--tuned-params reuses recorded parameters; it cannot re-tune (leave --retune-every-days at 0)")
    args.pairs = list(zip(files, published, strict=False))
    return args


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's ended and collected children (a market's segments)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tuned_params(path: Path | None, market: str) -> dict[str, dict] | None:
    """The ``tuned_params`` of a recorded result of ``market`` (None without ``path``: tune as usual)."""
    if path is None:
        return None
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise AccuracyInputError(f"--tuned-params {path}: not a readable result JSON ({exc})") from None
    if record.get("market") != market or not isinstance(record.get("tuned_params"), dict):
        raise AccuracyInputError(
            f"--tuned-params {path}: not a result of {market} with tuned_params "
            f"(market {record.get('market')!r}); pass an accuracy_{market}[_<scope>].json"
        )
    return record["tuned_params"]


def _product_errors() -> tuple[type[Exception], ...]:
    from training.backtest import BacktestError
    from training.dataset import TrainingDataError
    from training.features import FeatureError
    from training.models import ModelError
    from training.tuning import TuningError

    return (BacktestError, TrainingDataError, FeatureError, ModelError, TuningError)


def child_argv(args: argparse.Namespace, market_file: Path, published: Path) -> list[str]:
    """The command line of one market's process when several run at once."""
    argv = [
        "--market-file",
        str(market_file),
        "--published-forecasts",
        str(published),
        "--jobs",
        "1",
        "--no-summary",
        "--retrain-every-days",
        str(args.retrain_every_days),
        "--retune-every-days",
        str(args.retune_every_days),
        "--results",
        str(args.results),
        "--verify-published" if args.verify_published else "--no-verify-published",
    ]
    if args.quick:
        argv += ["--quick", "true"]
    options = ("days", "budget", "window_days", "threads", "device", "optuna_storage", "tuned_params", "networks")
    for option in (
        *options,
        "warm_patience",
        "cold_every",
        "lear_criterion_every",
        "served_weight_days",
        "lear_history_days",
        "ensemble_weights",
        "segments",
    ):
        if getattr(args, option) is not None:
            argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    if not args.lear_recalibrate_daily:
        argv.append("--no-lear-recalibrate-daily")
    if args.as_deployed:
        argv.append("--as-deployed")
    if args.no_mlflow:
        argv.append("--no-mlflow")
    return argv


def longest_first(pairs: list[tuple[Path, Path]], results: Path) -> list[tuple[Path, Path]]:
    """The markets ordered by the wall time their last whole-period result recorded, longest first.

    With ``--jobs`` processes and one thread each, the run ends when its last market does: starting
    the longest ones first keeps the cores busy to the end instead of leaving one market alone on
    one core (FR takes about twice as long as BE). Markets without a recorded time go first, in
    the order given (their cost is unknown).
    """

    def recorded(pair: tuple[Path, Path]) -> float:
        path = results / f"accuracy_{pair[0].stem}.json"
        try:
            return float(json.loads(path.read_text())["timing"]["wall_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return float("inf")

    return sorted(pairs, key=recorded, reverse=True)


class StopRequest:
    """A signal handler that records the first stop asked for (SIGTERM, SIGHUP, Ctrl-C) instead of raising.

    The coordinator acts on it between its own steps, so a signal that lands while a market is being
    started or while the markets are being stopped cannot leave one unrecorded or end the stop half-way.
    """

    HANDLED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self.cause = ""

    def __call__(self, signum: int, _frame: object) -> None:
        self.cause = self.cause or signal.Signals(signum).name


def stop_markets(running: list[tuple[str, subprocess.Popen, IO[str], Path]], grace_s: float = 20.0) -> list[str]:
    """Stops the markets still running (SIGTERM, then SIGKILL after ``grace_s``); returns what was stopped."""
    for _, process, _, _ in running:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace_s
    stopped = []
    for name, process, log_file, log_path in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()
        stopped.append(f"{name} (pid {process.pid}, log {log_path})")
    return stopped


def run_in_parallel(args: argparse.Namespace, settings: Settings) -> list[str]:
    """Each market in its own process, ``args.jobs`` at a time; returns the failures (market, log file).

    Stopping the coordinator (SIGTERM, SIGHUP, Ctrl-C) stops the markets it started before it
    exits, so none is left running without anyone to collect its result.
    """
    logs = settings.stores.home / "backtests" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not args.no_mlflow:  # create the tracking store and experiment once, not racing in every child
        from training import tracking

        tracking.experiment_id(tracking.configure(settings), settings)
    waiting, running, failed = longest_first(list(args.pairs), Path(args.results)), [], []
    requested = StopRequest()
    previous = {signum: signal.signal(signum, requested) for signum in StopRequest.HANDLED}
    try:
        while (waiting or running) and not requested.cause:
            while waiting and len(running) < args.jobs and not requested.cause:
                market_file, published = waiting.pop(0)
                log_path = logs / f"accuracy_{market_file.stem}.log"
                log_file = log_path.open("w")
                process = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.accuracy", *child_argv(args, market_file, published)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=PROJECT_ROOT,
                )
                running.append((market_file.stem, process, log_file, log_path))
                print(
                    f"{market_file.stem}: started (pid {process.pid}), progress in {log_path}",
                    file=sys.stderr,
                    flush=True,
                )
            for _ in range(20):  # 5 s between polls, a stop acted on within a quarter of a second
                if requested.cause:
                    break
                time.sleep(0.25)
            for entry in list(running):
                name, process, log_file, log_path = entry
                if process.poll() is None:
                    continue
                running.remove(entry)
                log_file.close()
                lines = log_path.read_text().strip().splitlines() or [""]
                shown = next((line for line in lines if line.startswith(f"{name}: MAE ours")), lines[-1])
                if process.returncode:
                    failed.append(f"{name} (exit {process.returncode}, {log_path}): {shown}")
                print(f"{name}: {'failed' if process.returncode else 'done'}: {shown}", file=sys.stderr, flush=True)
        if requested.cause:
            stopped = stop_markets(running)
            never = ", ".join(m.stem for m, _ in waiting) or "none"
            raise SystemExit(
                f"error: stopped by {requested.cause}; the markets running were stopped too, their results not "
                f"written: {'; '.join(stopped) or 'none'}; not started: {never}. Rerun the same command to start again."
            )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return failed


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
        from training.config import TrainingConfig

        config = TrainingConfig.from_settings(settings, args.budget)
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
    changes = {
        k: v
        for k, v in (("window_days", args.window_days), ("threads", args.threads), ("device", args.device))
        if v is not None
    }
    try:  # TrainingConfig checks the options together (fixed ensemble weights and served days refuse each other)
        config = replace(
            config,
            warm_start_patience=args.warm_patience,
            cold_start_every=args.cold_every,
            lear_criterion_every=args.lear_criterion_every,
            lear_recalibrate_daily=args.lear_recalibrate_daily,
            served_weight_days=args.served_weight_days,
            ensemble_weights=args.ensemble_weights or config.ensemble_weights,
            lear_history_days=args.lear_history_days,
            as_deployed=args.as_deployed,
            **changes,
        )
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.networks is not None:
        config = config.with_networks("cnn_lstm", args.networks)
    if config.ensemble_weights == "lear_network":
        from training.ensemble import LEAR_NETWORK

        # the pair weighs the trees at 0, so they are neither tuned nor fitted here: the ensemble, its intervals and
        # the two members' forecasts are the same as with them (model_retraining still trains and logs them)
        config = replace(config, models=LEAR_NETWORK)
    scope = ("quick" if args.quick and args.days == QUICK_DAYS else f"first{args.days}d") if args.days else ""
    if args.as_deployed:  # its own record and forecasts folder, beside the run of the same days without it
        scope = f"{scope}_deployed" if scope else "deployed"
    records = []
    try:
        inputs = [
            load_inputs(
                m,
                p,
                region=args.region,
                timezone=args.timezone,
                holiday_country=args.holiday_country,
                currency=args.currency,
            )
            for m, p in args.pairs
        ]
        if args.jobs > 1 and len(inputs) > 1 and not args.verify_only:
            failed = run_in_parallel(args, settings)
            summary = write_summary(Path(args.results))
            print(summary.read_text())
            if failed:
                raise SystemExit("error: " + "; ".join(failed))
            return [json.loads(p.read_text()) for p in sorted(Path(args.results).glob("accuracy_*.json"))]
        if args.verify_only:
            for market in inputs:
                check = verify_published_metrics(market.name, market.published)
                records.append({"market": market.name, "published_check": check})
                print(json.dumps({"market": market.name, **check}, indent=2))
            if any(r["published_check"].get("checked") and not r["published_check"]["all_match"] for r in records):
                raise SystemExit("error: recomputed published metrics differ from the paper's table (see above)")
            return records
        with tempfile.TemporaryDirectory(prefix="eopt-accuracy-optuna-") as folder:
            storage = args.optuna_storage or f"sqlite:///{Path(folder) / 'optuna.db'}"
            for market in inputs:
                record = run_market(market, settings, config, args, scope, storage)
                records.append(record)
                m = record["metrics"]
                print(
                    f"{market.name}: MAE ours {m['ensemble']['mae']:.3f}, LEAR {m['lear_ensemble']['mae']:.3f}, "
                    f"DNN {m['dnn_ensemble']['mae']:.3f}, naive {m['seasonal_naive']['mae']:.3f}; members "
                    + ", ".join(f"{w} {m[w]['mae']:.3f}" for w in MEMBERS if w in m)
                    + f"; {record['timing']['wall_seconds']:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    except (AccuracyInputError, *_product_errors()) as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.no_summary:
        return records
    summary = write_summary(Path(args.results))
    print(summary.read_text())
    return records


if __name__ == "__main__":
    main()
