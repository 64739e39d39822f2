"""The training data of one region: extraction from the store, the checks it must pass, and its splits.

Training reads the canonical hourly series (one price per hour, ``PriceStore.read_canonical``)
and the market's day-ahead exogenous forecasts for the last ``window_days`` before the run's
``as_of``. It refuses, with the region and what is missing, a region with no data, too little
history, a gap of a day or more, and an exogenous forecast that is absent, all-NaN or constant:
training on any of those would register a model that is wrong in ways no metric shows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.freshness import find_gaps
from core.markets import get_market
from storage.prices import PriceStore
from training.config import TrainingConfig
from training.features import (
    HORIZON_HOURS,
    LOOKBACK_HOURS,
    TARGET_COLUMN,
    build_feature_frame,
    complete_origins,
    day_ahead_origins,
    strided_origins,
)

HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
SPLITS = ("train", "validation", "test")


class TrainingDataError(ValueError):
    """The region's data cannot train a model; the message says which region and what is missing."""


@dataclass(frozen=True)
class TrainingData:
    region: str
    prices: pd.Series  # canonical price per UTC hour
    exogenous: pd.DataFrame  # one column per exogenous forecast, indexed by UTC hour
    start: pd.Timestamp  # first hour
    end: pd.Timestamp  # one hour after the last

    @property
    def checksum(self) -> str:
        """SHA-256 of the exact numbers trained on, logged with the model to tie it to its data."""
        digest = hashlib.sha256()
        digest.update(self.prices.index.as_unit("ns").asi8.tobytes())  # same hours, same bytes, whatever the unit
        digest.update(self.prices.to_numpy(dtype=float).tobytes())
        digest.update(pd.DatetimeIndex(self.exogenous.index).as_unit("ns").asi8.tobytes())
        for name in sorted(self.exogenous.columns):
            digest.update(name.encode())
            digest.update(self.exogenous[name].to_numpy(dtype=float).tobytes())
        return digest.hexdigest()

    def last(self, days: int) -> TrainingData:
        """The last ``days`` of this data (the exogenous forecasts past its end kept): a training window of a
        longer extract (``TrainingConfig.history_days``); the data itself when it holds no more."""
        start = self.end - days * DAY
        if start <= self.start:
            return self
        prices = self.prices[self.prices.index >= start]
        exogenous = self.exogenous[self.exogenous.index >= start]
        return TrainingData(self.region, prices, exogenous, max(start, prices.index[0]), self.end)

    def describe(self) -> dict[str, object]:
        return {
            "region": self.region,
            "start": str(self.start),
            "end": str(self.end),
            "hours": len(self.prices),
            "exogenous": list(self.exogenous.columns),
            "sha256": self.checksum,
        }

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.prices.rename(TARGET_COLUMN).to_frame().to_parquet(folder / "prices.parquet")
        self.exogenous.to_parquet(folder / "exogenous.parquet")
        (folder / "data.json").write_text(json.dumps(self.describe(), indent=2))

    @classmethod
    def load(cls, folder: Path, region: str) -> TrainingData:
        meta = json.loads((folder / "data.json").read_text())
        prices = pd.read_parquet(folder / "prices.parquet")[TARGET_COLUMN]
        exogenous = pd.read_parquet(folder / "exogenous.parquet")
        data = cls(region, prices, exogenous, pd.Timestamp(meta["start"]), pd.Timestamp(meta["end"]))
        if data.checksum != meta["sha256"]:
            raise TrainingDataError(
                f"{region}: training data in {folder} changed since extraction; rerun extract_training_data"
            )
        return data


def extract_training_data(store: PriceStore, region: str, as_of: pd.Timestamp, config: TrainingConfig) -> TrainingData:
    """The last ``config.history_days`` of the region's hourly prices and forecasts before ``as_of``: the
    training window, or LEAR's longer history (``EOPT_LEAR_HISTORY_DAYS``), of which the other members
    read the last ``window_days`` (:func:`check_training_data` and :func:`build_training_frame` cut it)."""
    as_of = pd.Timestamp(as_of).floor("h")
    latest = store.latest_ts(region)
    if latest is None:
        raise TrainingDataError(
            f"{region}: no prices in the store; load history (eopt load-history --region {region}) or run ingestion first"
        )
    days = config.history_days
    canonical = store.read_canonical(region, as_of - days * DAY - 8 * DAY, as_of)
    if canonical.empty:
        raise TrainingDataError(f"{region}: no prices before {as_of} in the store (newest is {latest})")
    end = canonical["ts"].max() + HOUR
    start = end - days * DAY
    canonical = canonical[canonical["ts"] >= start]
    prices = pd.Series(
        canonical["price"].to_numpy(dtype=float), index=pd.DatetimeIndex(canonical["ts"]), name=TARGET_COLUMN
    )
    exogenous = store.read_exogenous(region, start, end + HORIZON_HOURS * HOUR)
    return TrainingData(region, prices, exogenous, max(start, prices.index[0]), end)


def check_training_data(data: TrainingData, config: TrainingConfig) -> list[str]:
    """Raise ``TrainingDataError`` listing every problem of the data's training window; return notes on what passed."""
    data = data.last(config.window_days)
    region = data.region
    problems: list[str] = []
    hours = len(data.prices)
    needed_h = LOOKBACK_HOURS + 24 * (config.min_train_days + config.validation_days + config.test_days)
    if hours < needed_h:
        problems.append(
            f"too little history: {hours} hours from {data.start} to {data.end}, need at least {needed_h} "
            f"(a {LOOKBACK_HOURS} h lag window + {config.min_train_days} training + {config.validation_days} validation "
            f"+ {config.test_days} test days); load more history for {region}"
        )
    gaps = [g for g in find_gaps(data.prices.index, data.start, data.end) if g.hours >= config.max_gap_hours]
    if gaps:
        shown = "; ".join(f"{g.first_missing} to {g.last_missing} ({g.hours} h)" for g in gaps[:3])
        problems.append(
            f"{len(gaps)} gap(s) of {config.max_gap_hours} h or more in the training window: {shown}; "
            f"backfill them (airflow backfill create --dag-id electricity_price_ingestion ...) or load history"
        )
    for name in get_market(region).exogenous:
        if name not in data.exogenous.columns:
            problems.append(f"exogenous forecast {name!r} is missing from the store for the training window")
            continue
        column = data.exogenous[name].reindex(data.prices.index)
        finite = column[np.isfinite(column.to_numpy(dtype=float))]
        if finite.empty:
            problems.append(f"exogenous forecast {name!r} is all NaN in the training window")
        elif finite.nunique() <= 1:
            problems.append(f"exogenous forecast {name!r} is constant ({finite.iloc[0]}) in the training window")
        elif len(finite) < 0.95 * hours:
            problems.append(
                f"exogenous forecast {name!r} covers only {len(finite)} of {hours} training hours (need 95%)"
            )
    if problems:
        raise TrainingDataError(f"{region}: training data rejected: " + " | ".join(problems))
    return [f"{region}: {hours} hours from {data.start} to {data.end}, no gap of {config.max_gap_hours} h or more"]


@dataclass(frozen=True)
class Splits:
    """Forecast origins per split, time-ordered: train, validation, test; no target of one reaches the next."""

    train: pd.DatetimeIndex
    validation: pd.DatetimeIndex
    test: pd.DatetimeIndex

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in SPLITS:
            origins = getattr(self, name)
            if len(origins) == 0:
                continue
            out[name] = {
                "origins": len(origins),
                "first_origin": str(origins[0]),
                "last_target": str(origins[-1] + (HORIZON_HOURS - 1) * HOUR),
            }
        return out


def split_origins(data: TrainingData, config: TrainingConfig) -> Splits:
    """Test and validation are the last day-ahead origins (local midnights); training origins every stride hours before.

    ``config.test_days == 0`` leaves the test split empty (a walk-forward backtest scores the
    days after the window instead): validation then runs to the end of the data.
    """
    last_origin = data.end - HORIZON_HOURS * HOUR  # its 24 targets end at the last hour
    if config.test_days:
        test = day_ahead_origins(data.region, data.end - config.test_days * DAY - HOUR, last_origin + HOUR)
        if len(test) == 0:
            raise TrainingDataError(f"{data.region}: no complete day in the test window ending {data.end}")
        validation_end = test[0] - (HORIZON_HOURS - 1) * HOUR
    else:
        test = pd.DatetimeIndex([], tz="UTC")
        validation_end = last_origin + HOUR
    first_after = validation_end + (HORIZON_HOURS - 1) * HOUR  # the first origin the validation must not reach
    validation = day_ahead_origins(data.region, first_after - config.validation_days * DAY - HOUR, validation_end)
    if len(validation) == 0:
        raise TrainingDataError(f"{data.region}: no complete day in the validation window before {validation_end}")
    train = strided_origins(
        data.start + LOOKBACK_HOURS * HOUR, validation[0] - (HORIZON_HOURS - 1) * HOUR, config.origin_stride_h
    )
    if len(train) == 0:
        raise TrainingDataError(f"{data.region}: no training origins between {data.start} and {validation[0]}")
    return Splits(train, validation, test)


def build_training_frame(data: TrainingData, config: TrainingConfig) -> pd.DataFrame:
    """The feature frame of all three splits (column ``split``) of the data's training window (its last
    ``window_days``), keeping only origins whose 24 targets are known."""
    data = data.last(config.window_days)
    splits = split_origins(data, config)
    parts = []
    for name in SPLITS:
        if len(getattr(splits, name)) == 0:
            continue
        frame = complete_origins(build_feature_frame(data.prices, data.exogenous, data.region, getattr(splits, name)))
        if frame.empty:
            raise TrainingDataError(f"{data.region}: the {name} window has no origin with all 24 target prices known")
        parts.append(frame.assign(split=name))
    return pd.concat(parts, ignore_index=True)
