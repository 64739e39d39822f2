"""Score any registered model version on a recent holdout window read from the store.

The registry's promotion gate re-scores the champion on the candidate's window with this, so two
models are always compared on the same hours; ``eopt evaluate`` (MLproject ``evaluate``) lets a
person do the same by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pandas as pd

from core.metrics import evaluate, interval_coverage
from storage.prices import PriceStore
from training.dataset import TrainingDataError
from training.features import (
    ANCHOR_COLUMN,
    HORIZON_HOURS,
    LOOKBACK_HOURS,
    NAIVE_COLUMN,
    TARGET_COLUMN,
    build_feature_frame,
    complete_origins,
    day_ahead_origins,
)
from training.lear import RECALIBRATION_DAYS

HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class HoldoutScore:
    region: str
    model_uri: str
    first_target: pd.Timestamp
    last_target: pd.Timestamp
    hours: int
    metrics: dict[str, float]
    naive_metrics: dict[str, float]
    interval_coverage: float
    absolute_errors: tuple[float, ...] = ()  # per holdout hour, in the order of ``frame``
    target_hours: tuple[str, ...] = ()  # ISO UTC hour of each error


@dataclass(frozen=True)
class Holdout:
    """The day-ahead origins of a window to score models on, and the history their forecasts read."""

    frame: pd.DataFrame  # feature rows of the origins whose 24 prices are all known
    prices: pd.Series  # from RECALIBRATION_DAYS before the first origin (LEAR's recalibration reads them)
    exogenous: pd.DataFrame

    def since(self, first_target: pd.Timestamp) -> Holdout:
        """The holdout of the rows whose target is at or after ``first_target``."""
        frame = self.frame[self.frame["target_ts"] >= first_target].reset_index(drop=True)
        return Holdout(frame, self.prices, self.exogenous)


def read_holdout(store: PriceStore, region: str, end: pd.Timestamp, days: int) -> Holdout:
    """The day-ahead origins of the ``days`` before ``end`` whose 24 prices are all known, and their history."""
    end = pd.Timestamp(end)
    start = end - pd.Timedelta(days=days)
    history = max(RECALIBRATION_DAYS * 24, LOOKBACK_HOURS + 48) * HOUR
    canonical = store.read_canonical(region, start - history, end)
    if canonical.empty:
        raise TrainingDataError(f"{region}: no prices between {start} and {end} to score a model on")
    prices = pd.Series(canonical["price"].to_numpy(float), index=pd.DatetimeIndex(canonical["ts"]))
    exogenous = store.read_exogenous(region, start - history, end)
    origins = day_ahead_origins(region, start, end - (HORIZON_HOURS - 1) * HOUR)
    frame = complete_origins(build_feature_frame(prices, exogenous, region, origins), (TARGET_COLUMN, ANCHOR_COLUMN))
    if frame.empty:
        raise TrainingDataError(f"{region}: no complete day with known prices between {start} and {end}")
    return Holdout(frame.reset_index(drop=True), prices, exogenous)


def batch_forecast(model_uri: str, holdout: Holdout) -> pd.DataFrame:
    """A registered model's forecasts of the feature rows of many origins at once, in process.

    The served model answers one origin's raw request and builds its features itself; scoring a
    holdout of many origins builds them once (``read_holdout``, the same builder) and hands them,
    with the history before them, to the loaded model's own batch predict (``predict_features``:
    each origin as the served model answers it), not through the served interface."""
    model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    return model.predict_features(holdout.frame, holdout.prices, holdout.exogenous).reset_index(drop=True)


def score_model(model_uri: str, region: str, holdout: Holdout) -> HoldoutScore:
    frame = holdout.frame
    forecast = batch_forecast(model_uri, holdout)
    actual = frame[TARGET_COLUMN].to_numpy()
    naive = frame[NAIVE_COLUMN].to_numpy()
    return HoldoutScore(
        region=region,
        model_uri=model_uri,
        first_target=frame["target_ts"].min(),
        last_target=frame["target_ts"].max(),
        hours=len(frame),
        metrics=evaluate(actual, forecast["yhat"].to_numpy(), naive),
        naive_metrics=evaluate(actual, naive, naive),
        interval_coverage=interval_coverage(actual, forecast["lower"].to_numpy(), forecast["upper"].to_numpy()),
        absolute_errors=tuple(float(e) for e in abs(forecast["yhat"].to_numpy(dtype=float) - actual.astype(float))),
        target_hours=tuple(pd.Timestamp(t).isoformat() for t in frame["target_ts"]),
    )
