"""The pure part of drift monitoring: hourly drift columns, Evidently reports, and their numbers.

Nothing here reads a store or a registry: frames go in, an Evidently snapshot and a plain summary
dict come out, so every step can be tested on its own and re-run on saved frames.

Drift columns (one row per UTC hour), chosen so that a normal week of a market does not look
like drift while a change of regime does:

- ``price``, ``price_change_24h`` (p(t) - p(t-24h)), ``price_change_168h``;
- ``intraday_shape``: the price minus its UTC day's mean (the daily profile without the level);
- ``price_vs_hour_profile``: the price minus the reference's mean price of the same hour of day and
  day type (weekday or weekend) in the market's clock: the calendar-conditioned price;
- each day-ahead exogenous series raw and its 24-hour change (``<variable>_change_24h``).

The numbers of a summary are read from the snapshot (``snapshot.dict()``, the same content as the
saved JSON), never recomputed here, so the summary and the report cannot disagree.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Regression, Report
from evidently.core.report import Snapshot
from evidently.metrics import ValueDrift
from evidently.presets import DataDriftPreset, RegressionPreset
from sklearn.exceptions import UndefinedMetricWarning

# A column drifts at a normed Wasserstein distance (the distance between the two distributions in
# reference standard deviations) of at least ``settings.quality.drift_column_threshold`` (0.75, calibrated
# by benchmarks/drift_calibration.py).
DRIFT_METHOD = "wasserstein"
METHOD_DESCRIPTION = "normed Wasserstein distance (Evidently DataDriftPreset, num_method='wasserstein')"
PRICE_COLUMNS = ("price", "price_change_24h", "price_change_168h", "intraday_shape", "price_vs_hour_profile")
# Fewest known values a column needs in each window to be compared: a day of the current
# window, a week of the reference; below that a distance says more about the gaps than the data.
MIN_CURRENT_VALUES = 24
MIN_REFERENCE_VALUES = 168
TARGET, PREDICTION = "target", "prediction"


@dataclass(frozen=True)
class ColumnSelection:
    columns: list[str]  # compared, in order
    excluded: dict[str, str]  # left out: column -> why


def hourly_drift_columns(prices: pd.Series, exogenous: pd.DataFrame) -> pd.DataFrame:
    """The drift columns of every UTC hour from the first to the last price (NaN where unknown).

    ``prices``: canonical prices indexed by tz-aware UTC hours; ``exogenous``: one column per
    day-ahead variable, same index kind. ``price_vs_hour_profile`` is added per window by
    :func:`add_hour_profile`, since it needs the reference.
    """
    if prices.empty:
        return pd.DataFrame(
            columns=list(PRICE_COLUMNS[:-1]), index=pd.DatetimeIndex([], tz="UTC", name="ts"), dtype="float64"
        )
    prices = prices.sort_index()
    hours = pd.date_range(prices.index[0], prices.index[-1], freq="h", name="ts")
    price = prices.reindex(hours).astype("float64")
    frame = pd.DataFrame(index=hours)
    frame["price"] = price
    frame["price_change_24h"] = price - price.shift(24)
    frame["price_change_168h"] = price - price.shift(168)
    frame["intraday_shape"] = price - price.groupby(hours.normalize()).transform("mean")
    for variable in exogenous.columns:
        values = exogenous[variable].reindex(hours).astype("float64")
        frame[str(variable)] = values
        frame[f"{variable}_change_24h"] = values - values.shift(24)
    return frame


def _profile_keys(index: pd.DatetimeIndex, timezone: str) -> pd.MultiIndex:
    local = index.tz_convert(timezone)
    return pd.MultiIndex.from_arrays([local.hour, local.dayofweek >= 5], names=["hour", "weekend"])


def add_hour_profile(
    reference: pd.DataFrame, current: pd.DataFrame, timezone: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both windows with ``price_vs_hour_profile``: price minus the REFERENCE mean of its hour and day type.

    The profile comes from the reference only and is applied to both, so a current week whose
    hours no longer follow the reference's daily and weekly shape moves away from zero.
    """
    profile = reference["price"].groupby(_profile_keys(reference.index, timezone)).mean()

    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        expected = profile.reindex(_profile_keys(frame.index, timezone)).to_numpy(dtype=float)
        return frame.assign(price_vs_hour_profile=frame["price"].to_numpy(dtype=float) - expected)

    return apply(reference), apply(current)


def select_columns(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> ColumnSelection:
    """The columns a drift distance means something for, and why each other one is left out.

    Left out: a column with too few known values in either window, and a column constant in
    either window (a stuck feed; the normed distance divides by the reference's spread).
    """
    kept: list[str] = []
    excluded: dict[str, str] = {}
    for column in columns:
        ref, cur = reference[column].dropna(), current[column].dropna()
        if len(cur) < MIN_CURRENT_VALUES:
            excluded[column] = (
                f"only {len(cur)} of {len(current)} current hours have a value (need {MIN_CURRENT_VALUES})"
            )
        elif len(ref) < MIN_REFERENCE_VALUES:
            excluded[column] = (
                f"only {len(ref)} of {len(reference)} reference hours have a value (need {MIN_REFERENCE_VALUES})"
            )
        elif cur.nunique() <= 1:
            excluded[column] = f"constant in the current window (every value {float(cur.iloc[0]):g}): a stuck series?"
        elif ref.nunique() <= 1:
            excluded[column] = f"constant in the reference window (every value {float(ref.iloc[0]):g})"
        else:
            kept.append(column)
    return ColumnSelection(kept, excluded)


def _dataset(frame: pd.DataFrame, columns: list[str], definition: DataDefinition) -> Dataset:
    # float64 throughout: Evidently leaves nullable Float64/Int64 columns out of a report
    return Dataset.from_pandas(frame[columns].astype("float64").reset_index(drop=True), data_definition=definition)


def feature_drift_report(
    current: pd.DataFrame, reference: pd.DataFrame, columns: list[str], *, drift_share: float, column_threshold: float
) -> Snapshot:
    """Evidently's DataDriftPreset on ``columns``: normed Wasserstein per column, with its tests."""
    definition = DataDefinition(numerical_columns=list(columns))
    report = Report(
        [
            DataDriftPreset(
                columns=list(columns), num_method=DRIFT_METHOD, num_threshold=column_threshold, drift_share=drift_share
            )
        ],
        include_tests=True,
    )
    return report.run(_dataset(current, columns, definition), _dataset(reference, columns, definition))  # current first


def prediction_drift_report(current: pd.DataFrame, reference: pd.DataFrame, *, column_threshold: float) -> Snapshot:
    """Regression quality of ``prediction`` against ``target`` in both windows, and the drift of each."""
    columns = [TARGET, PREDICTION]
    definition = DataDefinition(
        numerical_columns=columns, regression=[Regression(target=TARGET, prediction=PREDICTION)]
    )
    report = Report(
        [
            RegressionPreset(),
            *(ValueDrift(column=c, method=DRIFT_METHOD, threshold=column_threshold) for c in columns),
        ],
        include_tests=True,
    )
    with warnings.catch_warnings():
        # the preset's error-bias table scores R2 per value bin; a bin of one hour warns and shows NaN there
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return report.run(_dataset(current, columns, definition), _dataset(reference, columns, definition))


def save_snapshot(snapshot: Snapshot, folder: Path, stem: str) -> tuple[str, str]:
    """``<stem>.html`` and ``<stem>.json`` in ``folder``: their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    html, json_path = str(folder / f"{stem}.html"), str(folder / f"{stem}.json")
    snapshot.save_html(html)  # Evidently writes only to a str path; a Path is silently ignored
    snapshot.save_json(json_path)
    return html, json_path


def _metric_type(metric: dict[str, Any]) -> str:
    return str(metric["config"].get("type", "")).rsplit(":", 1)[-1]


def _drifted(content: dict[str, Any]) -> set[str]:
    """Columns whose ValueDrift test failed (score at or beyond its threshold), per the snapshot."""
    return {
        test["metric_config"]["params"]["column"]
        for test in content.get("tests", [])
        if test["metric_config"]["params"].get("type", "").endswith(":ValueDrift") and test["status"] == "FAIL"
    }


def value_drift_scores(content: dict[str, Any]) -> dict[str, float]:
    return {m["config"]["column"]: float(m["value"]) for m in content["metrics"] if _metric_type(m) == "ValueDrift"}


def feature_drift_summary(snapshot: Snapshot) -> dict[str, Any]:
    """``count``, ``share``, ``columns`` (score per column) and ``drifted_columns`` of a feature report."""
    content = snapshot.dict()
    counts = next(m["value"] for m in content["metrics"] if _metric_type(m) == "DriftedColumnsCount")
    scores = value_drift_scores(content)
    drifted = _drifted(content)
    return {
        "count": int(counts["count"]),
        "share": float(counts["share"]),
        "columns": scores,
        "drifted_columns": [c for c in sorted(scores, key=scores.__getitem__, reverse=True) if c in drifted],
    }


def _number(result: Any) -> float:
    """A metric result's number: the mean of a mean/std result, else its single value."""
    value = result["mean"] if isinstance(result, dict) and "mean" in result else result
    if hasattr(value, "mean") and hasattr(value, "std"):  # a reference MeanStdValue object
        value = value.mean.value
    elif hasattr(value, "value"):
        value = value.value
    return float(value)


def prediction_summary(snapshot: Snapshot) -> dict[str, Any]:
    """MAE, RMSE, R2 and mean error in both windows, and the drift of target and prediction."""
    content = snapshot.dict()
    names = {"MAE": "mae", "RMSE": "rmse", "R2Score": "r2", "MeanError": "mean_error"}
    summary: dict[str, Any] = {}
    for metric in content["metrics"]:
        kind = _metric_type(metric)
        if kind in names:
            summary[names[kind]] = _number(metric["value"])
            summary[f"reference_{names[kind]}"] = _number(snapshot.context.get_reference_metric_result(metric["id"]))
    scores = value_drift_scores(content)
    drifted = _drifted(content)
    summary.update(
        {
            "target_drift": scores[TARGET],
            "prediction_drift": scores[PREDICTION],
            "drifted_columns": [c for c in (TARGET, PREDICTION) if c in drifted],
        }
    )
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()}
