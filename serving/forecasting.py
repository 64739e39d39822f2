"""Forecast generation: the next 24 hours of a region from its Production model, or a labelled fallback.

The hourly ``forecast_generation`` DAG calls these functions in a row, per chunk of zones (the
reads batched: :func:`forecast_origins` and :func:`prepare_requests` read all the chunk's zones in
one query each; :func:`forecast_origin` and :func:`prepare_request` are their one-region forms):

1. :func:`forecast_origin`: the hour after the newest price known before the run (prices
   published ahead of the run, day-ahead, are ignored, so the forecast uses only what was known
   at its issue time and rerunning an old run gives the same forecast). A newest price older
   than the model's lag window (``LOOKBACK_HOURS``) refuses the region: ``StaleDataError``.
2. :func:`prepare_request`: the registered model's raw request of that origin, from the store
   (``serving.model_request``: the prices of the 98 days before it and the exogenous day-ahead
   forecasts, null where unknown), exactly what a client of ``mlflow models serve`` sends.
3. :func:`generate_forecast`: the champion (Production, alias ``champion``) answers that request,
   building the features itself as in training (one path for every caller). When
   the region has no champion, the champion cannot be loaded, or it answers anything but 24
   finite values, the forecast falls back to the weekly seasonal naive ``y(t - 168 h)``
   (``is_fallback`` true, model ``seasonal-naive`` version ``0``, no interval) and says why:
   a fallback is never silent, and it never fails the hour.

Every stored hour carries ``yhat``, ``lower``/``upper`` and the quantiles ``q05`` .. ``q95``
(``core.quantiles``) as the model answered them. The seasonal-naive fallback has no interval and
no quantiles: they are stored NULL and are ``null`` in the cache document, stated, never guessed
(the request holds one week of prices, too few to calibrate the naive's own residuals; a
fallback is the exception an operator is alerted to, not a forecast to plan on). A champion
trained before the quantiles answers none either: NULL as well.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from core.members import MEMBER_COLUMNS
from core.quantiles import QUANTILE_COLUMNS
from core.timestamps import utc
from registry.models import champion as find_champion
from registry.models import registered_model_name
from serving.model_request import (
    PRICE_COLUMN,
    REQUEST_HISTORY_HOURS,
    TIME_COLUMN,
    ModelRequest,
    build_request,
    iso_hour,
)
from training.features import HORIZON_HOURS, LOOKBACK_HOURS, exogenous_names

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel  # mlflow loads pyfunc lazily: `import mlflow` does not bind it for mypy

    from storage.prices import PriceStore

log = logging.getLogger(__name__)
ALERTS_LOG = logging.getLogger("eopt.alerts")  # where operators route alerts (see quality.alerts)

HOUR = pd.Timedelta(hours=1)
FALLBACK_MODEL_NAME = "seasonal-naive"
FALLBACK_MODEL_VERSION = "0"
SEASONAL_LAG = pd.Timedelta(hours=168)  # the weekly seasonal naive: the price one week before the target hour

# Loaded champions of this process, per (name, version, run id): an hourly run in a long-lived
# worker loads each version once. A version's artifacts never change, so a hit is never stale; the
# run id tells apart two registries that both hold a version 1 of the same name.
_MODELS: dict[tuple[str, str, str | None], PyFuncModel] = {}
_MODELS_LOCK = threading.Lock()


class StaleDataError(RuntimeError):
    """A region's prices are too old (or absent) to forecast from; the message says what to check."""


class ForecastError(RuntimeError):
    """Not even the fallback can forecast the region; the message names the region and the hours."""


@dataclass(frozen=True)
class Forecast:
    """One issued 24-hour forecast of a region: the store's rows, and why it fell back (None if not)."""

    frame: pd.DataFrame
    fallback_reason: str | None = None

    @property
    def region(self) -> str:
        return str(self.frame["region"].iloc[0])

    @property
    def issued_at(self) -> pd.Timestamp:
        return pd.Timestamp(self.frame["issued_at"].iloc[0])

    @property
    def model_name(self) -> str:
        return str(self.frame["model_name"].iloc[0])

    @property
    def model_version(self) -> str:
        return str(self.frame["model_version"].iloc[0])

    @property
    def is_fallback(self) -> bool:
        return bool(self.frame["is_fallback"].iloc[0])


def _utc_hour(when: Any) -> pd.Timestamp:
    return utc(when).floor("h")


def forecast_origins(
    store: PriceStore, regions: Sequence[str], run_time: Any
) -> tuple[dict[str, pd.Timestamp], dict[str, StaleDataError]]:
    """Per region, the hour after its newest price before the run's hour (never later than that
    hour), read for all ``regions`` in one query; and, apart, the regions refused with the
    ``StaleDataError`` saying why: no price before the run, or the newest one older than the
    model's lag window (a forecast from there would read no recent price)."""
    run_hour = _utc_hour(run_time)
    newest = store.newest_prices(regions, before=run_hour)
    origins: dict[str, pd.Timestamp] = {}
    refused: dict[str, StaleDataError] = {}
    for region in regions:
        try:
            origins[region] = _origin(region, run_hour, *newest.get(region, (None, None)))
        except StaleDataError as exc:
            refused[region] = exc
    return origins, refused


def forecast_origin(store: PriceStore, region: str, run_time: Any) -> pd.Timestamp:
    """``forecast_origins`` of one region; raises its ``StaleDataError``."""
    origins, refused = forecast_origins(store, [region], run_time)
    if region in refused:
        raise refused[region]
    return origins[region]


def _origin(
    region: str, run_hour: pd.Timestamp, newest: pd.Timestamp | None, before_run: pd.Timestamp | None
) -> pd.Timestamp:
    if newest is None:
        raise StaleDataError(
            f"{region}: no prices stored, nothing to forecast from; load history "
            f"(eopt load-history --region {region}) or run the electricity_price_ingestion DAG"
        )
    if newest >= run_hour:  # prices published ahead of the run (day-ahead): only hours before it were known
        if before_run is None or before_run < run_hour - LOOKBACK_HOURS * HOUR:
            raise StaleDataError(
                f"{region}: no price stored in the {LOOKBACK_HOURS} h before the run at {run_hour} (the model's lag "
                f"window; the newest stored, {newest}, lies after the run), so no forecast can be made; check the "
                f"electricity_price_ingestion DAG for this region or load history (eopt load-history --region {region})"
            )
        newest = before_run
    age = run_hour - newest
    if age > LOOKBACK_HOURS * HOUR:
        raise StaleDataError(
            f"{region}: newest price is {newest}, {age / HOUR:.0f} h before the run at {run_hour}, older than the "
            f"model's {LOOKBACK_HOURS} h lag window, so no forecast can be made; check the "
            f"electricity_price_ingestion DAG for this region"
        )
    if age > HORIZON_HOURS * HOUR:  # still inside the lag window, but the 24 hours forecast are all past
        log.warning(
            "%s: newest price is %s, %.0f h before the run at %s: the forecast from the hour after it covers "
            "only hours before the run; check the electricity_price_ingestion DAG",
            region,
            newest,
            age / HOUR,
            run_hour,
        )
    return pd.Timestamp(newest).tz_convert("UTC") + HOUR


def prepare_requests(
    store: PriceStore, origins: Mapping[str, pd.Timestamp]
) -> tuple[dict[str, ModelRequest], dict[str, Exception]]:
    """The model's raw request of each region's origin, from one query for all their prices and one
    for all their exogenous forecasts (only the hours the features need); and, apart, each region
    whose request could not be built, with the error.

    Every hour is a row; a price or day-ahead forecast the store lacks (not arrived yet, a gap)
    is null, which the model imputes, and a warning names it (the forecast is less sure)."""
    origins = {region: _utc_hour(origin) for region, origin in origins.items()}
    prices = store.read_canonical_windows(
        {region: (origin - REQUEST_HISTORY_HOURS * HOUR, origin) for region, origin in origins.items()}
    )
    exogenous = store.read_exogenous_windows(
        {
            region: (origin - REQUEST_HISTORY_HOURS * HOUR, origin + HORIZON_HOURS * HOUR)
            for region, origin in origins.items()
        }
    )
    requests: dict[str, ModelRequest] = {}
    failed: dict[str, Exception] = {}
    for region, origin in origins.items():
        try:
            request = build_request(prices[region].set_index("ts")["price"], exogenous[region], region, origin)
        except Exception as exc:  # one region's bad inputs cost no other region its request
            failed[region] = exc
            continue
        unknown = unknown_inputs(request, region)
        if unknown:
            log.warning("%s: %s; the model imputes them (its forecast is less sure)", region, unknown)
        requests[region] = request
    return requests, failed


def prepare_request(store: PriceStore, region: str, origin: pd.Timestamp) -> ModelRequest:
    """``prepare_requests`` of one region; raises its error."""
    requests, failed = prepare_requests(store, {region: origin})
    if region in failed:
        raise failed[region]
    return requests[region]


def unknown_inputs(request: ModelRequest, region: str) -> str | None:
    """Which values the model reads are null in the request, in words (None when all are known).

    The models impute a missing input (trees learned a default branch, the CNN-LSTM scales it to
    the training mean), so a forecast goes on; but a day-ahead exogenous forecast that has not
    arrived yet, or a price gap, makes it less sure, and an operator should know."""
    table, origin = request.table, request.origin
    hours = pd.DatetimeIndex(pd.to_datetime(table[TIME_COLUMN], utc=True))
    lags = hours >= origin - LOOKBACK_HOURS * HOUR  # the hours the features read (LEAR's refit reads more, and
    # forecasts with the retraining's fit, saying so, when too many of its days are incomplete)
    reads = {PRICE_COLUMN: lags & (hours < origin)}
    for name in exogenous_names(region):
        reads[name] = lags
    parts = []
    for column, read in reads.items():
        unknown = read & table[column].isna().to_numpy()
        if unknown.any():
            parts.append(
                f"{column} unknown for {int(unknown.sum())} of {int(read.sum())} hour(s) read "
                f"(first {iso_hour(hours[unknown][0])})"
            )
    return f"inputs of origin {iso_hour(origin)} missing: {'; '.join(parts)}" if parts else None


def clear_model_cache() -> None:
    with _MODELS_LOCK:
        _MODELS.clear()


def _load_model(name: str, version: str, run_id: str | None, uri: str) -> PyFuncModel:
    key = (name, version, run_id)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
    if model is None:
        model = mlflow.pyfunc.load_model(uri)
        with _MODELS_LOCK:
            _MODELS[key] = model
    return model


def _frame(
    region: str,
    issued_at: pd.Timestamp,
    targets: pd.Series,
    name: str,
    version: str,
    yhat: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    fallback: bool,
    optional: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The store's rows; a quantile or member column not in ``optional`` (the fallback, an older model, a member
    the model lacks) is NaN (NULL)."""
    n = len(targets)
    optional = optional or {}
    frame = pd.DataFrame(
        {
            "region": [region] * n,
            "issued_at": pd.DatetimeIndex([issued_at] * n).astype("datetime64[us, UTC]"),
            "target_ts": pd.DatetimeIndex(targets).tz_convert("UTC").astype("datetime64[us, UTC]"),
            "model_name": [name] * n,
            "model_version": [version] * n,
            "yhat": np.asarray(yhat, dtype=float),
            "lower": np.asarray(lower, dtype=float),
            "upper": np.asarray(upper, dtype=float),
            "is_fallback": [fallback] * n,
        }
    )
    for column in (*QUANTILE_COLUMNS, *MEMBER_COLUMNS):
        frame[column] = np.asarray(optional[column], dtype=float) if column in optional else np.full(n, np.nan)
    return frame


def _target_hours(origin: pd.Timestamp) -> pd.DatetimeIndex:
    return pd.date_range(origin, periods=HORIZON_HOURS, freq="h")


def _model_forecast(model: PyFuncModel, request: ModelRequest) -> pd.DataFrame:
    """The champion's 24 hours, or ``ValueError`` saying how its answer is unusable."""
    answer = model.predict(request.table, params=request.params)
    if not isinstance(answer, pd.DataFrame) or "yhat" not in answer.columns:
        raise ValueError(f"the model answered {type(answer).__name__} without a yhat column")
    if len(answer) != HORIZON_HOURS:
        raise ValueError(f"the model answered {len(answer)} rows, not {HORIZON_HOURS}")
    expected = [iso_hour(t) for t in _target_hours(request.origin)]
    if "target_ts" in answer.columns and list(answer["target_ts"].astype(str)) != expected:
        raise ValueError(f"the model answered target hours {answer['target_ts'].iloc[0]}.. instead of {expected[0]}..")
    for column in ("yhat", "lower", "upper", *QUANTILE_COLUMNS):
        if column in answer.columns:
            values = pd.to_numeric(answer[column], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(values).all():
                raise ValueError(f"the model answered {int((~np.isfinite(values)).sum())} non-finite {column} value(s)")
    present = [c for c in QUANTILE_COLUMNS if c in answer.columns]
    if present and len(present) < len(QUANTILE_COLUMNS):
        raise ValueError(
            f"the model answered the quantile column(s) {', '.join(present)} but not "
            f"{', '.join(c for c in QUANTILE_COLUMNS if c not in present)}"
        )
    if present and (np.diff(answer[present].to_numpy(dtype=float), axis=1) < 0).any():
        raise ValueError("the model answered quantiles that decrease with the level")
    return answer


def seasonal_naive(region: str, request: ModelRequest, issued_at: pd.Timestamp, reason: str) -> Forecast:
    """The fallback: each target hour's price one week earlier (from the request), without an interval
    and without quantiles (both NULL: see the module's docstring)."""
    targets = _target_hours(request.origin)
    prices = pd.to_numeric(request.table[PRICE_COLUMN], errors="coerce")
    prices.index = pd.DatetimeIndex(pd.to_datetime(request.table[TIME_COLUMN], utc=True))
    yhat = prices.reindex(targets - SEASONAL_LAG).to_numpy(dtype=float)
    missing = ~np.isfinite(yhat)
    if missing.any():
        hours = ", ".join(str(t) for t in targets[missing][:3])
        raise ForecastError(
            f"{region}: cannot fall back to the seasonal naive either: no price 168 h before {int(missing.sum())} "
            f"target hour(s) ({hours}{', ...' if missing.sum() > 3 else ''}); fill the price gap (eopt load-history "
            f"or the electricity_price_ingestion DAG). Fallback was needed because {reason}"
        )
    nothing = np.full(len(yhat), np.nan)
    frame = _frame(
        region,
        issued_at,
        pd.Series(targets),
        FALLBACK_MODEL_NAME,
        FALLBACK_MODEL_VERSION,
        yhat,
        nothing,
        nothing,
        True,
    )
    return Forecast(frame, reason)


def generate_forecast(client: MlflowClient, region: str, request: ModelRequest, issued_at: pd.Timestamp) -> Forecast:
    """The region's 24-hour forecast: its champion's answer to ``request`` (the raw request a client
    of ``mlflow models serve`` sends), or the seasonal-naive fallback with its reason."""
    issued_at = _utc_hour(issued_at)
    try:
        best = find_champion(client, region)
    except Exception as exc:  # registry unreachable or broken: forecast anyway, loudly
        reason = f"the model registry could not be read for {region}: {type(exc).__name__}: {_first_line(exc)}"
        log.error("%s; falling back to the seasonal naive", reason)
        return seasonal_naive(region, request, issued_at, reason)
    if best is None:
        reason = (
            f"no Production model for {region}: no version of model {registered_model_name(region)} "
            "has the alias champion (retrain and promote one)"
        )
        log.error("%s; falling back to the seasonal naive", reason)
        return seasonal_naive(region, request, issued_at, reason)
    try:
        model = _load_model(best.name, best.version, best.run_id, best.uri)
    except Exception as exc:
        reason = (
            f"the Production model {best.uri} of {region} could not be loaded: {type(exc).__name__}: {_first_line(exc)}"
        )
        log.error("%s; falling back to the seasonal naive", reason)
        return seasonal_naive(region, request, issued_at, reason)
    try:
        answer = _model_forecast(model, request)
    except Exception as exc:
        reason = f"the Production model {best.uri} of {region} gave no usable forecast: {type(exc).__name__}: {_first_line(exc)}"
        log.error("%s; falling back to the seasonal naive", reason)
        return seasonal_naive(region, request, issued_at, reason)
    nothing = np.full(HORIZON_HOURS, np.nan)
    frame = _frame(
        region,
        issued_at,
        pd.Series(_target_hours(request.origin)),
        best.name,
        best.version,
        answer["yhat"].to_numpy(dtype=float),
        answer["lower"].to_numpy(dtype=float) if "lower" in answer.columns else nothing,
        answer["upper"].to_numpy(dtype=float) if "upper" in answer.columns else nothing,
        False,
        {c: answer[c].to_numpy(dtype=float) for c in (*QUANTILE_COLUMNS, *MEMBER_COLUMNS) if c in answer.columns},
    )
    log.info("%s: forecast %s..%s with %s", region, frame["target_ts"].iloc[0], frame["target_ts"].iloc[-1], best.uri)
    return Forecast(frame, None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def forecast_document(forecast: Forecast) -> dict[str, Any]:
    """The cache's JSON document of a forecast (``storage.cache.FORECAST_KEY``): per point ``yhat``,
    ``lower``/``upper`` and the quantiles ``q05`` .. ``q95``, each ``null`` where the forecast has none."""
    frame = forecast.frame.sort_values("target_ts")
    quantiles = frame.reindex(columns=list(QUANTILE_COLUMNS)).to_numpy(dtype=float)
    return {
        "region": forecast.region,
        "issued_at": forecast.issued_at.isoformat(),
        "model_name": forecast.model_name,
        "model_version": forecast.model_version,
        "is_fallback": forecast.is_fallback,
        "points": [
            {
                "target_ts": pd.Timestamp(ts).isoformat(),
                "yhat": _number(yhat),
                "lower": _number(lower),
                "upper": _number(upper),
                **{column: _number(value) for column, value in zip(QUANTILE_COLUMNS, row, strict=True)},
            }
            for ts, yhat, lower, upper, row in zip(
                frame["target_ts"], frame["yhat"], frame["lower"], frame["upper"], quantiles, strict=True
            )
        ],
    }


def alert_fallback(forecast: Forecast) -> bool:
    """Alert (ERROR on ``eopt.alerts``) when the forecast is a fallback; True when it alerted."""
    if not forecast.is_fallback:
        return False
    ALERTS_LOG.error(
        "forecast fallback: %s was forecast by the seasonal naive (is_fallback=true), not its Production model: %s",
        forecast.region,
        forecast.fallback_reason or "no reason recorded",
    )
    return True


def model_readiness(client: MlflowClient, regions: Sequence[str]) -> dict[str, str | None]:
    """Per region, the champion's ``models:/NAME/VERSION`` or None (it will fall back); logs each."""
    ready: dict[str, str | None] = {}
    for region in regions:
        try:
            best = find_champion(client, region)
        except Exception as exc:
            log.error(
                "%s: the model registry could not be read (%s: %s): it will fall back to the seasonal naive",
                region,
                type(exc).__name__,
                _first_line(exc),
            )
            ready[region] = None
            continue
        ready[region] = best.uri if best else None
        if best:
            log.info("%s: Production model %s", region, best.uri)
        else:
            log.warning("%s: no Production model: it will fall back to the seasonal naive", region)
    return ready
