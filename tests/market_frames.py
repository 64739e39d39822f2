"""Real market data for tests: small NP feature frames, and migrated stores holding recent history."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from core.markets import load_market
from storage.database import create_store_engine, upgrade
from storage.prices import PriceStore
from training.features import build_feature_frame, complete_origins, day_ahead_origins, strided_origins

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REGION = "NP"
# 120 days of training origins every 7 hours, then three weeks of day-ahead validation origins.
TRAIN_START = pd.Timestamp("2014-03-01", tz="UTC")
VALIDATION_START = pd.Timestamp("2014-06-29", tz="UTC")
VALIDATION_END = pd.Timestamp("2014-07-20", tz="UTC")


def np_frames(
    train_start: pd.Timestamp, train_days: int, validation_days: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """NP training origins every 7 hours over ``train_days``, then ``validation_days`` of day-ahead
    origins; only origins whose 24 prices are known. Returns both frames and the validation end."""
    history = load_market(REGION, PROJECT_ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    validation_start = train_start + pd.Timedelta(days=train_days)
    window_end = validation_start + pd.Timedelta(days=validation_days)
    last_train_origin = validation_start - pd.Timedelta(hours=23)  # no training target reaches validation
    train = build_feature_frame(prices, exogenous, REGION, strided_origins(train_start, last_train_origin, 7))
    validation = build_feature_frame(prices, exogenous, REGION, day_ahead_origins(REGION, validation_start, window_end))
    return (
        complete_origins(train).reset_index(drop=True),
        complete_origins(validation).reset_index(drop=True),
        window_end,
    )


@lru_cache(maxsize=1)
def np_train_and_validation() -> tuple[pd.DataFrame, pd.DataFrame]:
    train, validation, _ = np_frames(
        TRAIN_START, (VALIDATION_START - TRAIN_START).days, (VALIDATION_END - VALIDATION_START).days
    )
    return train, validation


def store_with_history(url: str, days_by_region: dict[str, int | None]) -> PriceStore:
    """A migrated store at ``url`` holding the last ``days`` of each region's bundled history (None: all).

    The caller disposes of ``store.engine``."""
    engine = create_store_engine(url)
    upgrade(engine)
    store = PriceStore(engine)
    for region, days in days_by_region.items():
        history = load_market(region, PROJECT_ROOT / "data" / "markets")
        if days is not None:
            history = history.between(history.prices["ts"].max() - pd.Timedelta(days=days), None)
        store.upsert_history(history.prices, history.exogenous)
    return store
