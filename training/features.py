"""The feature matrix: one builder for training and for inference, so the two cannot drift apart.

A row is one (forecast origin ``T``, target hour ``t = T + h``) pair with ``h`` in 0..23: at
``T`` the prices of every hour before ``T`` are known, none at or after it, and the
day-ahead exogenous forecasts are known for the 24 target hours. Every price feature is read
at an hour strictly before ``T``:

- lags relative to the target (``t-24h``, ``t-48h``, ``t-72h``, ``t-168h``) and the statistics
  of the same hour over the seven previous days (``t-24h`` .. ``t-168h``): all at most
  ``T + 23 - 24 = T - 1``;
- the origin's recent level: the last known price (``T-1``) and the mean, minimum, maximum and
  spread of the 24 hours before ``T``;
- calendar of the target hour in the market's own clock (hour, weekday, month, day of year),
  and whether it is a public holiday of the market's country (the ``holidays`` package);
- the market's day-ahead exogenous forecasts at ``t``, a day earlier, and their mean over the
  24 target hours; and, for the LEAR member only (:func:`auxiliary_columns`), a week earlier.

Training rows come from many origins (every ``stride`` hours, so every hour of the day is an
origin now and then); evaluation uses day-ahead origins (local midnight), the EPF protocol.
The CNN-LSTM reads the same rows grouped by origin, 24 steps per sample.
"""

from __future__ import annotations

from functools import lru_cache

import holidays
import numpy as np
import pandas as pd

from core.markets import get_market
from core.timestamps import local_dates, local_midnights, utc

HORIZON_HOURS = 24
HOUR = pd.Timedelta(hours=1)
KEY_COLUMNS = ("origin", "target_ts")
TARGET_COLUMN = "price"
ANCHOR_COLUMN = "last_24h_mean"  # the origin's price level; models learn prices relative to it
NAIVE_COLUMN = "lag_168h"  # the weekly seasonal-naive forecast y(t - 168 h), every rMAE's denominator
PRICE_LAGS_H = (24, 48, 72, 168)
SAME_HOUR_DAYS = 7
# Hours of price history an origin needs before it: the deepest lag of the last target hour.
LOOKBACK_HOURS = max(max(PRICE_LAGS_H), 24 * SAME_HOUR_DAYS)

CALENDAR_FEATURES = (
    "horizon",
    "hour",
    "weekday",
    "month",
    "day_of_year_sin",
    "day_of_year_cos",
    "is_weekend",
    "is_holiday",
)
PRICE_FEATURES = (
    *(f"lag_{k}h" for k in PRICE_LAGS_H),
    "same_hour_mean_7d",
    "same_hour_std_7d",
    "same_hour_min_7d",
    "same_hour_max_7d",
    "last_price",
    "last_24h_mean",
    "last_24h_min",
    "last_24h_max",
    "last_24h_std",
)
EXOGENOUS_SUFFIXES = ("", "_lag_24h", "_change_24h", "_horizon_mean")
# Carried by every frame beside the feature columns, read only by the LEAR member (``training.lear``):
# each exogenous series a week before the target hour (the model's "d-7" inputs).
AUXILIARY_EXOGENOUS_SUFFIXES = ("_lag_168h",)


class FeatureError(ValueError):
    """The inputs cannot make a feature matrix; the message names the region and what is missing."""


def exogenous_names(region: str) -> tuple[str, ...]:
    return get_market(region).exogenous


def feature_columns(region: str) -> list[str]:
    """The model input columns of a region, in a fixed order (part of the model's signature)."""
    exog = [f"{name}{suffix}" for name in exogenous_names(region) for suffix in EXOGENOUS_SUFFIXES]
    return [*CALENDAR_FEATURES, *PRICE_FEATURES, *exog]


def auxiliary_columns(region: str) -> list[str]:
    """Columns a frame carries after the feature columns for the LEAR member only (the tree and network
    members read :func:`feature_columns`): each exogenous series 168 h before the target hour."""
    return [f"{name}{suffix}" for name in exogenous_names(region) for suffix in AUXILIARY_EXOGENOUS_SUFFIXES]


@lru_cache(maxsize=32)
def _holiday_calendar(country: str, subdivision: str | None, first_year: int, last_year: int) -> frozenset:
    calendar = holidays.country_holidays(country, subdiv=subdivision, years=range(first_year, last_year + 1))
    return frozenset(calendar.keys())


def hourly_series(values: pd.Series, what: str, region: str) -> pd.Series:
    """``values`` on a complete UTC hourly index (NaN where an hour is missing)."""
    if values.empty:
        return values.astype(float)
    index = values.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise FeatureError(f"{region}: {what} must be indexed by tz-aware UTC timestamps")
    if index.has_duplicates:
        raise FeatureError(f"{region}: {what} has duplicate hours, first {index[index.duplicated()][0]}")
    values = values.sort_index().tz_convert("UTC")
    full = pd.date_range(values.index[0], values.index[-1], freq="h")
    return values.reindex(full).astype(float)


def day_ahead_origins(region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """UTC instants of the market's local midnights in ``[start, end)``: the EPF day-ahead origins."""
    zone = get_market(region).timezone
    start, end = utc(start), utc(end)
    origins = local_midnights(zone, local_dates(zone, start, end))
    return origins[(origins >= start) & (origins < end)]


def strided_origins(start: pd.Timestamp, end: pd.Timestamp, stride_h: int) -> pd.DatetimeIndex:
    """Origins every ``stride_h`` hours in ``[start, end)``; a stride prime to 24 visits every hour of day."""
    return pd.date_range(pd.Timestamp(start).ceil("h"), pd.Timestamp(end), freq=f"{stride_h}h", inclusive="left")


def build_feature_frame(
    prices: pd.Series,
    exogenous: pd.DataFrame,
    region: str,
    origins: pd.DatetimeIndex,
) -> pd.DataFrame:
    """Feature rows for every origin and the 24 hours after it, with the target price where known.

    ``prices``: canonical hourly prices indexed by UTC ``ts``; only hours before an origin are
    read for that origin's features. ``exogenous``: the market's day-ahead forecasts, one column
    per variable, indexed by UTC ``ts``. Returns ``origin``, ``target_ts``, the
    :func:`feature_columns` and ``price`` (NaN for hours not in ``prices``).
    """
    market = get_market(region)
    origins = pd.DatetimeIndex(origins)
    if len(origins) == 0:
        raise FeatureError(f"{region}: no forecast origins to build features for")
    if origins.tz is None:
        raise FeatureError(f"{region}: forecast origins must be tz-aware UTC")
    origins = origins.tz_convert("UTC")
    series = hourly_series(prices, "prices", region)
    if series.empty:
        raise FeatureError(f"{region}: no prices to build features from")
    missing = [name for name in market.exogenous if name not in exogenous.columns]
    if missing:
        raise FeatureError(
            f"{region}: exogenous forecast(s) {', '.join(missing)} missing; "
            f"the market's model needs {', '.join(market.exogenous)}"
        )

    n = len(origins)
    horizon = np.tile(np.arange(HORIZON_HOURS), n)
    origin_rows = np.repeat(origins.values, HORIZON_HOURS)
    targets = pd.DatetimeIndex(origin_rows, tz="UTC") + pd.to_timedelta(horizon, unit="h")
    origin_index = pd.DatetimeIndex(origin_rows, tz="UTC")

    def at(values: pd.Series, when: pd.DatetimeIndex) -> np.ndarray:
        return values.reindex(when).to_numpy(dtype=float)

    columns: dict[str, np.ndarray] = {}
    local = targets.tz_convert(market.timezone)
    columns["horizon"] = horizon.astype(float)
    columns["hour"] = local.hour.to_numpy(dtype=float)
    columns["weekday"] = local.dayofweek.to_numpy(dtype=float)
    columns["month"] = local.month.to_numpy(dtype=float)
    angle = 2 * np.pi * (local.dayofyear.to_numpy(dtype=float) - 1) / 365.25
    columns["day_of_year_sin"] = np.sin(angle)
    columns["day_of_year_cos"] = np.cos(angle)
    columns["is_weekend"] = (local.dayofweek >= 5).astype(float)
    dates = local.date
    calendar = _holiday_calendar(
        market.holiday_country, market.holiday_subdivision, int(local.year.min()), int(local.year.max())
    )
    columns["is_holiday"] = np.fromiter((d in calendar for d in dates), dtype=float, count=len(dates))

    for k in PRICE_LAGS_H:
        columns[f"lag_{k}h"] = at(series, targets - k * HOUR)
    same_hour = np.column_stack([at(series, targets - 24 * d * HOUR) for d in range(1, SAME_HOUR_DAYS + 1)])
    with np.errstate(all="ignore"):
        columns["same_hour_mean_7d"] = same_hour.mean(axis=1)
        columns["same_hour_std_7d"] = same_hour.std(axis=1)
        columns["same_hour_min_7d"] = same_hour.min(axis=1)
        columns["same_hour_max_7d"] = same_hour.max(axis=1)

    before_origin = origin_index - HOUR  # the last hour known at the origin
    window = series.rolling(24, min_periods=24)
    columns["last_price"] = at(series, before_origin)
    columns["last_24h_mean"] = at(window.mean(), before_origin)
    columns["last_24h_min"] = at(window.min(), before_origin)
    columns["last_24h_max"] = at(window.max(), before_origin)
    columns["last_24h_std"] = at(window.std(ddof=0), before_origin)

    for name in market.exogenous:
        exog = hourly_series(exogenous[name].dropna(), f"exogenous {name}", region)
        now = at(exog, targets)
        day_before = at(exog, targets - 24 * HOUR)
        columns[name] = now
        columns[f"{name}_lag_24h"] = day_before
        columns[f"{name}_lag_168h"] = at(exog, targets - 168 * HOUR)
        columns[f"{name}_change_24h"] = now - day_before
        columns[f"{name}_horizon_mean"] = (
            np.nanmean(now.reshape(n, HORIZON_HOURS), axis=1).repeat(HORIZON_HOURS)
            if np.isfinite(now).any()
            else np.full(len(now), np.nan)
        )

    frame = pd.DataFrame({"origin": origin_index, "target_ts": targets})
    features = pd.DataFrame(columns, index=frame.index)[[*feature_columns(region), *auxiliary_columns(region)]]
    frame = pd.concat([frame, features], axis=1)
    frame[TARGET_COLUMN] = at(series, targets)
    return frame


def complete_origins(frame: pd.DataFrame, columns: tuple[str, ...] = (TARGET_COLUMN,)) -> pd.DataFrame:
    """The rows of the origins whose ``columns`` are known for all 24 target hours (others dropped whole)."""
    keep = np.ones(len(frame), dtype=bool)
    for column in columns:
        keep &= frame.groupby("origin")[column].transform(lambda s: s.notna().all()).to_numpy()
    return frame[keep]


def inference_frame(prices: pd.Series, exogenous: pd.DataFrame, region: str, origin: pd.Timestamp) -> pd.DataFrame:
    """The 24 feature rows of one forecast origin, built only from prices before it (no target)."""
    origin = pd.Timestamp(origin)
    if origin.tzinfo is None:
        raise FeatureError(f"{region}: the forecast origin {origin} must be tz-aware")
    known = prices[prices.index < origin]
    frame = build_feature_frame(known, exogenous, region, pd.DatetimeIndex([origin]))
    return frame.drop(columns=[TARGET_COLUMN])
