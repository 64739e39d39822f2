"""The registered model's request and response: what a user has, not engineered features.

Request (``POST /invocations`` of ``mlflow models serve``, or ``PyFuncModel.predict(table, params=...)``):

- ``params.origin``: the forecast origin, an ISO-8601 UTC hour (``2018-12-20T13:00:00Z``); the
  model forecasts the 24 hours from it.
- a table with one row per UTC hour, sorted, without duplicates or gaps, from ``origin - H`` to
  ``origin + 23 h`` (the last target hour); earlier or later rows are allowed. ``H`` is the
  history the model reads (``EnsembleForecaster.history_hours``, in the model's ``request``
  metadata): 2,352 hours (98 days) for a model whose LEAR member recalibrates before every
  local-midnight forecast (``EOPT_LEAR_RECALIBRATE_DAILY``), 168 hours (the deepest price the
  features read, :data:`LOOKBACK_HOURS`) otherwise. :func:`build_request` always sends the 98 days
  (:data:`REQUEST_HISTORY_HOURS`, 2,376 rows), which every model accepts:

  - ``ts``: the hour, ISO-8601 UTC;
  - ``price``: the region's price of that hour (per MWh). Only hours before the origin are read;
    a price at or after the origin is ignored (the model never sees the future);
  - one column per exogenous day-ahead series of the market, named as the market names them
    (NP: ``grid_load_forecast``, ``wind_power_forecast``); the features read them at the 24
    target hours and the same hours a day and a week earlier (the week: the LEAR member's
    inputs), and LEAR's recalibration on every day of its 98, so every row carries them.

  An hour whose value is unknown is sent as a row with ``null`` there (a price not published,
  a day-ahead forecast not arrived yet): the model imputes it as in training, the forecast is
  less sure. A missing *row* is a gap and is refused, so a client cannot lose an hour silently.

Response: 24 rows with ``origin``, ``target_ts`` (ISO-8601 UTC strings), ``yhat``, its interval
``lower``/``upper`` (the central ``EOPT_INTERVAL_COVERAGE`` interval, 90% by default),
the quantiles ``q05``, ``q10``, ``q25``, ``q50``, ``q75``, ``q90``, ``q95`` (the price lies at or
below ``qNN`` with probability NN%; monotone in every row; ``core.quantiles``, calibrated as
``training.ensemble.calibrate_intervals`` says) and each member's forecast ``yhat_<member>``.

The model builds its features from the request with ``training.features.inference_frame``, the
builder training uses. Every refusal is a :class:`RequestError` naming what is wrong and what to
send; the pyfunc answers it HTTP 400.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.timestamps import utc
from training.features import HORIZON_HOURS, LOOKBACK_HOURS, exogenous_names
from training.lear import RECALIBRATION_DAYS

HOUR = pd.Timedelta(hours=1)
TIME_COLUMN = "ts"
PRICE_COLUMN = "price"
ORIGIN_PARAM = "origin"
ISO_HOUR = "%Y-%m-%dT%H:%M:%SZ"
# The history a request carries (build_request): the most any model reads before its origin, LEAR's
# recalibration on the 98 days before a local midnight (prices and exogenous forecasts alike).
REQUEST_HISTORY_HOURS = RECALIBRATION_DAYS * 24


class RequestError(ValueError):
    """A request the model cannot answer; the message names what is wrong and what to send instead."""


def iso_hour(when: pd.Timestamp) -> str:
    return pd.Timestamp(when).tz_convert("UTC").strftime(ISO_HOUR)


def request_columns(region: str) -> list[str]:
    return [TIME_COLUMN, PRICE_COLUMN, *exogenous_names(region)]


def request_hours(origin: pd.Timestamp, history_hours: int = LOOKBACK_HOURS) -> pd.DatetimeIndex:
    """The hours a request of ``origin`` must cover: the ``history_hours`` before it and the 24 target hours."""
    return pd.date_range(origin - history_hours * HOUR, origin + (HORIZON_HOURS - 1) * HOUR, freq="h")


@dataclass(frozen=True)
class ModelRequest:
    """One origin's request: the table of hours and the origin (the ``origin`` param)."""

    table: pd.DataFrame
    origin: pd.Timestamp

    @property
    def params(self) -> dict[str, str]:
        return {ORIGIN_PARAM: iso_hour(self.origin)}

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /invocations``: ``dataframe_split`` and ``params``; null where unknown.

        Floats are written by Python's ``json`` (shortest repr, exact round trip), so a served
        request gets the same numbers the in-process call gets."""
        rows = [
            [None if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in self.table.astype(object).itertuples(index=False, name=None)
        ]
        return {"dataframe_split": {"columns": list(self.table.columns), "data": rows}, "params": self.params}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ModelRequest:
        """The request of a ``body()`` (as the scoring server parses ``dataframe_split``)."""
        split = body["dataframe_split"]
        table = pd.DataFrame(data=split["data"], columns=split["columns"])
        return cls(table, parse_origin(body.get("params")))


def build_request(prices: pd.Series, exogenous: pd.DataFrame, region: str, origin: pd.Timestamp) -> ModelRequest:
    """The request of ``origin`` from a region's prices (indexed by UTC ``ts``) and exogenous forecasts
    (one column per series, indexed by UTC ``ts``): every hour of :func:`request_hours` with
    :data:`REQUEST_HISTORY_HOURS`, null where a value is unknown; prices only before the origin."""
    origin = utc(origin).floor("h")
    hours = request_hours(origin, REQUEST_HISTORY_HOURS)
    known_prices = prices[(prices.index >= hours[0]) & (prices.index < origin)]
    table = pd.DataFrame({TIME_COLUMN: hours.strftime(ISO_HOUR)})
    table[PRICE_COLUMN] = known_prices.reindex(hours).to_numpy(dtype=float)
    for name in exogenous_names(region):
        known = exogenous[name] if name in exogenous.columns else pd.Series(dtype=float)
        table[name] = known.reindex(hours).to_numpy(dtype=float)
    return ModelRequest(table, origin)


def parse_origin(params: dict[str, Any] | None) -> pd.Timestamp:
    """The request's origin from its params, or ``RequestError`` saying how to send it."""
    example = '"params": {"origin": "2018-12-20T13:00:00Z"}'
    value = (params or {}).get(ORIGIN_PARAM)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RequestError(f"no forecast origin: send it as a param beside the table, e.g. {example}")
    parsed = pd.to_datetime(value, utc=True, errors="coerce", format="ISO8601")
    if pd.isna(parsed):
        raise RequestError(f"origin {value!r} is not an ISO-8601 UTC hour, e.g. {example}")
    if parsed != parsed.floor("h"):
        raise RequestError(f"origin {value!r} is not a whole hour; forecasts start on the hour, e.g. {example}")
    return pd.Timestamp(parsed)


def _columns(table: pd.DataFrame, region: str) -> None:
    expected = request_columns(region)
    missing = [c for c in expected if c not in table.columns]
    extra = [str(c) for c in table.columns if c not in expected]
    series = exogenous_names(region)
    parts = []
    if [c for c in missing if c in series]:
        parts.append(
            f"missing exogenous series column(s) {', '.join(c for c in missing if c in series)}: the {region} model "
            f"needs {', '.join(series)}, one column each (null where a value is unknown)"
        )
    if [c for c in missing if c not in series]:
        parts.append(f"missing column(s) {', '.join(c for c in missing if c not in series)}")
    if extra:
        parts.append(f"unexpected column(s) {', '.join(extra)}")
    if parts:
        raise RequestError("; ".join(parts) + f"; a request has the columns {', '.join(expected)}")


def _hours(table: pd.DataFrame) -> pd.DatetimeIndex:
    parsed = pd.to_datetime(table[TIME_COLUMN], utc=True, errors="coerce", format="ISO8601")
    if parsed.isna().any():
        bad = table.loc[parsed.isna(), TIME_COLUMN].iloc[0]
        raise RequestError(f"column 'ts': {bad!r} is not an ISO-8601 UTC timestamp (e.g. 2018-12-20T13:00:00Z)")
    hours = pd.DatetimeIndex(parsed)
    off = hours != hours.floor("h")
    if off.any():
        raise RequestError(f"column 'ts': {table[TIME_COLUMN][off].iloc[0]!r} is not a whole hour; send hourly rows")
    if hours.has_duplicates:
        twice = hours[hours.duplicated()]
        raise RequestError(
            f"duplicate hour(s): {iso_hour(twice[0])} is sent more than once ({len(twice)} duplicate row(s)); "
            "send one row per hour"
        )
    if not hours.is_monotonic_increasing:
        row = int(np.flatnonzero(np.diff(hours.asi8) < 0)[0]) + 1
        raise RequestError(
            f"hours not sorted: row {row} ({iso_hour(hours[row])}) comes after {iso_hour(hours[row - 1])}; "
            "sort the rows by ts, oldest first"
        )
    return hours


def _numbers(table: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        not_numbers = values.isna() & table[column].notna()
        if not_numbers.any():
            raise RequestError(f"column {column!r}: {table.loc[not_numbers, column].iloc[0]!r} is not a number")
        array = values.to_numpy(dtype="float64")
        infinite = np.isinf(array)
        if infinite.any():
            raise RequestError(
                f"column {column!r}: {array[infinite][0]} in {int(infinite.sum())} row(s) is not a finite number; "
                "send a finite value, or null where the value is unknown"
            )
        out[column] = array
    return out


def parse_request(
    table: Any, params: dict[str, Any] | None, region: str, history_hours: int = LOOKBACK_HOURS
) -> tuple[pd.Series, pd.DataFrame, pd.Timestamp]:
    """The request's prices and exogenous forecasts on its hours (indexed by UTC ``ts``) and its origin.

    ``history_hours``: the hours before the origin the model reads (``EnsembleForecaster.history_hours``).
    Raises ``RequestError`` naming the first problem: no or invalid origin, missing or unexpected
    columns, bad, unsorted or duplicate hours, non-numeric or infinite values, too little
    history, a gap, or no known price before the origin."""
    origin = parse_origin(params)
    if not isinstance(table, pd.DataFrame):
        raise RequestError(f"expected a table of hourly rows, got {type(table).__name__}")
    _columns(table, region)
    if table.empty:
        raise RequestError("the request has no rows")
    hours = _hours(table)
    values = _numbers(table, request_columns(region)[1:])
    needed = request_hours(origin, history_hours)
    if hours[0] > needed[0]:
        raise RequestError(
            f"too little history: origin {iso_hour(origin)} needs the {history_hours} hours from "
            f"{iso_hour(needed[0])} (prices before the origin) and the {HORIZON_HOURS} target hours up to "
            f"{iso_hour(needed[-1])}; the rows start at {iso_hour(hours[0])}, "
            f"{(hours[0] - needed[0]) // HOUR} hour(s) short"
        )
    if hours[-1] < needed[-1]:
        raise RequestError(
            f"the rows end at {iso_hour(hours[-1])}, before the last target hour {iso_hour(needed[-1])}: send a row "
            f"for each of the {HORIZON_HOURS} target hours from {iso_hour(origin)} (their exogenous forecasts; "
            "null where not known yet)"
        )
    steps = np.diff(hours.asi8)
    gap = np.flatnonzero(steps != HOUR.value)
    if gap.size:
        first = hours[gap[0]] + HOUR
        missing = (hours[gap[0] + 1] - first) // HOUR
        raise RequestError(
            f"gap: no row for hour {iso_hour(first)} ({missing} hour(s) missing before {iso_hour(hours[gap[0] + 1])}); "
            "send every hour, with null where a value is unknown"
        )
    prices = pd.Series(values[PRICE_COLUMN], index=hours)
    lags = request_hours(origin)[0]
    if not np.isfinite(prices[(hours >= lags) & (hours < origin)].to_numpy()).any():
        raise RequestError(
            f"no known price in the {LOOKBACK_HOURS} hours before origin {iso_hour(origin)} "
            f"({iso_hour(lags)} .. {iso_hour(origin - HOUR)}): nothing to forecast from"
        )
    exogenous = pd.DataFrame({name: values[name] for name in exogenous_names(region)}, index=hours)
    return prices, exogenous, origin


def to_response(features: pd.DataFrame, forecast: pd.DataFrame) -> pd.DataFrame:
    """The response rows: ``origin`` and ``target_ts`` as ISO strings, then the forecast's columns."""
    times = {c: features[c].dt.strftime(ISO_HOUR).to_numpy() for c in ("origin", "target_ts")}
    return pd.concat([pd.DataFrame(times, index=forecast.index), forecast], axis=1).reset_index(drop=True)
