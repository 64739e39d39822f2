"""Small real feature frames for model tests: NP, 120 days of training origins, three weeks of validation."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from ingestion.markets import load_market
from training.features import TARGET_COLUMN, build_feature_frame, day_ahead_origins, strided_origins

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REGION = "NP"
# 120 days of training origins every 7 hours, then three weeks of day-ahead validation origins.
TRAIN_START = pd.Timestamp("2014-03-01", tz="UTC")
VALIDATION_START = pd.Timestamp("2014-06-29", tz="UTC")
VALIDATION_END = pd.Timestamp("2014-07-20", tz="UTC")


def complete_origins(frame: pd.DataFrame) -> pd.DataFrame:
    """Only origins whose 24 target prices are known, as build_training_frame keeps them."""
    known = frame.groupby("origin")[TARGET_COLUMN].transform(lambda s: s.notna().all())
    return frame[known.to_numpy()].reset_index(drop=True)


@lru_cache(maxsize=1)
def np_train_and_validation() -> tuple[pd.DataFrame, pd.DataFrame]:
    history = load_market(REGION, PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    last_train_origin = VALIDATION_START - pd.Timedelta(hours=23)  # no training target reaches validation
    train = build_feature_frame(prices, exogenous, REGION, strided_origins(TRAIN_START, last_train_origin, 7))
    validation = build_feature_frame(prices, exogenous, REGION,
                                     day_ahead_origins(REGION, VALIDATION_START, VALIDATION_END))
    return complete_origins(train), complete_origins(validation)
