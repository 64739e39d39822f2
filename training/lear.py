"""LEAR: the Lasso-estimated autoregressive model of the open EPF benchmark, as a linear member.

The model of Lago, Marcjasz, De Schutter and Weron (Applied Energy 293 (2021) 116983,
"Forecasting day-ahead electricity prices: a review of state-of-the-art algorithms, best
practices and an open-access benchmark") and its code, epftoolbox (``epftoolbox.models.LEAR``,
AGPL-3.0; re-implemented here, no code copied), after Uniejewski, Nowotarski and Weron (2016)
and Ziel and Weron (2018):

- Features of the day that starts at the origin ``T`` (247 with two exogenous series): the 24
  prices of each of the days before ``T`` at lags 1, 2, 3 and 7 days (the hours ``T - 24k`` ..
  ``T - 24k + 23``, all before ``T``), the market's two day-ahead exogenous forecasts for the
  24 target hours and for the same hours 1 and 7 days earlier, and seven day-of-week dummies of
  the origin's local date. Nothing at or after ``T`` is read from the prices
  (``tests/training/test_features.py`` tampers with those hours to check it).
- One linear model per forecast hour ``h`` (0..23 after the origin; the hour of day for the
  product's local-midnight origins), Lasso-estimated with the L1 penalty chosen per hour by an
  information criterion on the LARS path (scikit-learn ``LassoLarsIC``, ``criterion="aic"`` as
  epftoolbox), the way epftoolbox ran: the criterion's path on centred columns of unit norm (the
  ``normalize=True`` that ``LassoLarsIC`` applied before scikit-learn 1.2) and its penalty then
  given to ``Lasso`` on the transformed, unnormalised inputs. That is a weaker penalty than the
  criterion's own optimum (by about the square root of the days); on NP's weeks from 2017-05-23
  it gave a weekly-refitted ensemble MAE of 1.38 against 1.54 with ``LassoLarsIC``'s own
  coefficients (the published daily-recalibrated LEAR ensemble: 1.34). The criterion's noise
  variance is the target's variance, scikit-learn's estimate before 1.1 (and so epftoolbox's),
  which also works where a short window has fewer days than features.
- Prices (inputs and target) and exogenous inputs under the "invariant" variance-stabilising
  transform of Uniejewski, Weron and Ziel (2018, IEEE Trans. Power Syst. 33(2) 2219-2229), as
  epftoolbox's ``Invariant`` scaler: per column, standardise by the median and the median
  absolute deviation (scaled to the normal's standard deviation, as ``statsmodels.robust.mad``)
  then ``asinh``; forecasts are transformed back. The dummies are not transformed.
- The forecast is the mean of the models fitted on several calibration windows (the paper's LEAR
  ensemble averaged 56, 84, 1092 and 1456 days out of four years): the last 56 and 84 days (its
  two short windows, which follow a new regime within weeks) and the last three quarters and the
  whole of the days the fit is given (the paper's windows, given its four years) (:func:`calibration_windows`). The long windows follow the length
  of the retraining's extract, so no window is set per market.

The paper recalibrated daily; a product retraining fits once and forecasts the days up to the
next retraining. A fit is seconds (96 LARS paths on at most a few hundred days).
:meth:`LearModel.recalibrated` refits only the two short windows on the 98 days before an origin,
with the penalties the retraining chose for them (a fraction of a second), and keeps its long
windows. A model fitted with ``recalibrates=True`` (``TrainingConfig.lear_recalibrate_daily``:
``EOPT_LEAR_RECALIBRATE_DAILY``, on by default, as in the accuracy benchmark) does that before every
local-midnight forecast, wherever it forecasts: the
registered model, ``forecast_generation`` and the walk-forward benchmark all go through
:meth:`LearMember.for_origin`, and its request carries those 98 days (:attr:`LearMember.history_hours`).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from core.markets import get_market
from training.features import (
    HORIZON_HOURS,
    TARGET_COLUMN,
    FeatureError,
    build_feature_frame,
    day_ahead_origins,
)
from training.models.base import FitResult, ForecastModel, ModelError, ProgressReport

log = logging.getLogger(__name__)
LEAR_FILE = "lear.json"
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
PRICE_LAG_DAYS = (1, 2, 3, 7)
EXOGENOUS_LAG_DAYS = (0, 1, 7)
WEEKDAYS = 7
SHORT_WINDOWS_DAYS = (56, 84)
# the history a recalibration of the short windows reads: 84 days of targets, their week of lags, a week to spare
RECALIBRATION_DAYS = max(SHORT_WINDOWS_DAYS) + 2 * max(PRICE_LAG_DAYS)
CRITERION = "aic"
MAX_ITERATIONS = 2500  # epftoolbox's, for LARS and for the Lasso
NORMAL_MAD = 0.6744897501960817  # the normal's 3/4 quantile: MAD / this estimates the standard deviation


class LearError(ValueError):
    """The LEAR member cannot be fitted or used; the message names the region and what is missing."""


class LearHistoryTooShort(LearError):
    """Fewer complete days than LEAR's shortest calibration window: a young region trains without LEAR."""


def lear_feature_names(region: str) -> list[str]:
    """The LEAR inputs of a region, in the matrix's column order (the weekday dummies last)."""
    names = [f"price_d-{k}_h{h}" for k in PRICE_LAG_DAYS for h in range(HORIZON_HOURS)]
    for variable in get_market(region).exogenous:
        names += [f"{variable}_d-{k}_h{h}" for k in EXOGENOUS_LAG_DAYS for h in range(HORIZON_HOURS)]
    return [*names, *(f"weekday_{d}" for d in range(WEEKDAYS))]


def lear_matrix(frame: pd.DataFrame, region: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The LEAR feature rows (one per origin) and the 24 target prices after each origin, from a feature frame.

    ``frame`` is what :func:`training.features.build_feature_frame` (or ``inference_frame``) builds:
    24 rows per origin (horizons 0..23). Row ``h`` of an origin ``T`` holds the prices of
    ``T + h - 24k`` (``lag_24h`` .. ``lag_168h``: d-1, d-2, d-3, d-7 at hour ``h``) and the exogenous
    forecasts at ``T + h``, ``T + h - 24`` and ``T + h - 168`` (the auxiliary ``_lag_168h`` column),
    so the 247 inputs are the frame's columns read per horizon: training and serving share the one
    feature builder. Targets are NaN where the frame has no ``price`` column or no price.
    """
    market = get_market(region)
    missing = [name for name in market.exogenous if name not in frame.columns]
    if missing:
        raise LearError(
            f"{region}: exogenous forecast(s) {', '.join(missing)} missing; LEAR needs {', '.join(market.exogenous)}"
        )
    if frame.empty:
        raise LearError(f"{region}: no feature rows to build LEAR inputs from")
    origins = pd.DatetimeIndex(frame["origin"]).tz_convert("UTC")
    unique = origins.unique()
    row = unique.get_indexer(origins)
    horizon = frame["horizon"].to_numpy(dtype=int)
    counts = np.bincount(row, minlength=len(unique))
    if (counts != HORIZON_HOURS).any() or len(np.unique(row * HORIZON_HOURS + horizon)) != len(frame):
        first = (
            unique[int(np.flatnonzero(counts != HORIZON_HOURS)[0])] if (counts != HORIZON_HOURS).any() else unique[0]
        )
        raise LearError(
            f"{region}: LEAR reads the 24 horizons 0..23 of every origin once; origin {first} has {counts.max()} row(s)"
        )

    def wide(column: str) -> np.ndarray:
        out = np.full((len(unique), HORIZON_HOURS), np.nan)
        out[row, horizon] = frame[column].to_numpy(dtype=float)
        return out

    parts = [wide(f"lag_{24 * k}h") for k in PRICE_LAG_DAYS]
    for name in market.exogenous:
        parts += [wide(name if k == 0 else f"{name}_lag_{24 * k}h") for k in EXOGENOUS_LAG_DAYS]
    weekday = unique.tz_convert(market.timezone).dayofweek.to_numpy()
    parts.append((weekday[:, None] == np.arange(WEEKDAYS)[None, :]).astype(float))
    features = pd.DataFrame(np.hstack(parts), index=unique, columns=lear_feature_names(region))
    targets = wide(TARGET_COLUMN) if TARGET_COLUMN in frame.columns else np.full((len(unique), HORIZON_HOURS), np.nan)
    return features, pd.DataFrame(targets, index=unique, columns=range(HORIZON_HOURS))


def lear_features(
    prices: pd.Series, exogenous: pd.DataFrame, region: str, origins: pd.DatetimeIndex
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The LEAR feature rows (one per origin) and the 24 target prices after each origin (NaN where unknown).

    ``prices`` and ``exogenous`` are hourly, indexed by UTC time, as for
    :func:`training.features.build_feature_frame`, which builds the rows :func:`lear_matrix` reads;
    an input hour that is not there is NaN.
    """
    market = get_market(region)
    origins = pd.DatetimeIndex(origins)
    if len(origins) == 0:
        raise LearError(f"{region}: no forecast origins to build LEAR features for")
    if origins.tz is None:
        raise LearError(f"{region}: LEAR forecast origins must be tz-aware UTC")
    missing = [name for name in market.exogenous if name not in exogenous.columns]
    if missing:
        raise LearError(
            f"{region}: exogenous forecast(s) {', '.join(missing)} missing; LEAR needs {', '.join(market.exogenous)}"
        )
    try:
        frame = build_feature_frame(prices, exogenous, region, origins.tz_convert("UTC"))
    except FeatureError as exc:
        raise LearError(str(exc)) from None
    return lear_matrix(frame, region)


def calibration_windows(days_available: int, most: int = 0) -> tuple[int, ...]:
    """The calibration windows (days) of a fit given ``days_available`` complete days: 56, 84, three quarters and all.

    Four years (1456 days) give the paper's LEAR ensemble's windows: 56, 84, 1092 and 1456 days.

    ``most`` > 0 keeps only that many, the shortest first (a budget that must be cheap, e.g. ``smoke``).
    """
    candidates = (*SHORT_WINDOWS_DAYS, 3 * days_available // 4, days_available)
    windows = tuple(sorted({w for w in candidates if SHORT_WINDOWS_DAYS[0] <= w <= days_available}))
    return windows[:most] if most > 0 else windows


@dataclass(frozen=True)
class InvariantScaler:
    """Per column: ``asinh((x - median) / (MAD / 0.6745))`` (Uniejewski, Weron and Ziel 2018)."""

    median: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> InvariantScaler:
        median = np.median(values, axis=0)
        scale = np.median(np.abs(values - median), axis=0) / NORMAL_MAD
        # a constant column (a flat exogenous series) has no spread: leave it unscaled rather than divide by 0
        return cls(median, np.where(scale > 0, scale, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return np.arcsinh((values - self.median) / self.scale)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return np.sinh(values) * self.scale + self.median


@dataclass(frozen=True)
class LearFit:
    """The 24 hourly models fitted on one calibration window."""

    window_days: int
    x_scaler: InvariantScaler  # every column but the weekday dummies
    y_scaler: InvariantScaler
    coefficients: np.ndarray  # (24, features)
    intercepts: np.ndarray  # (24,)
    alphas: np.ndarray  # (24,) the penalty the criterion chose per hour

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Forecasts of each row; an unknown input (NaN) is imputed by its calibration median (0 once transformed)."""
        x = features.copy()
        x[:, :-WEEKDAYS] = np.nan_to_num(self.x_scaler.transform(x[:, :-WEEKDAYS]), nan=0.0)
        return self.y_scaler.inverse(x @ self.coefficients.T + self.intercepts)

    def to_dict(self) -> dict[str, object]:
        return {
            "window_days": self.window_days,
            "x_median": self.x_scaler.median.tolist(),
            "x_scale": self.x_scaler.scale.tolist(),
            "y_median": self.y_scaler.median.tolist(),
            "y_scale": self.y_scaler.scale.tolist(),
            "coefficients": self.coefficients.tolist(),
            "intercepts": self.intercepts.tolist(),
            "alphas": self.alphas.tolist(),
        }

    @classmethod
    def from_dict(cls, spec: dict) -> LearFit:
        def array(key: str) -> np.ndarray:
            return np.asarray(spec[key], dtype=float)

        return cls(
            int(spec["window_days"]),
            InvariantScaler(array("x_median"), array("x_scale")),
            InvariantScaler(array("y_median"), array("y_scale")),
            array("coefficients"),
            array("intercepts"),
            array("alphas"),
        )


def fit_window(
    features: np.ndarray, targets: np.ndarray, window_days: int, alphas: np.ndarray | None = None
) -> LearFit:
    """The 24 hourly models of one window: per hour, ``LassoLarsIC``'s penalty, then ``Lasso`` refitted with it.

    ``alphas`` (24 penalties, e.g. an earlier fit's) skips the criterion and refits with those.

    The 24 models share their inputs, so each solver's Gram matrix is computed once per window and
    handed to it (``precompute``): the same models as a fit per hour from the raw inputs, up to
    rounding (``tests/training/test_lear.py`` holds them to plain per-hour ``LassoLarsIC`` and
    ``Lasso`` fits). The Lasso runs on the centred inputs and target without an intercept, which
    is what ``Lasso(fit_intercept=True)`` solves; the intercept is then the target's mean less the
    inputs' means times the coefficients, as scikit-learn sets it.
    """
    from sklearn import config_context as sklearn_config
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso, LassoLarsIC

    x_scaler = InvariantScaler.fit(features[:, :-WEEKDAYS])
    y_scaler = InvariantScaler.fit(targets)
    x = features.copy()
    x[:, :-WEEKDAYS] = x_scaler.transform(x[:, :-WEEKDAYS])
    y = y_scaler.transform(targets)
    x_offset, y_offset = x.mean(axis=0), y.mean(axis=0)
    centred = x - x_offset
    # the criterion's path runs on centred columns of unit norm (LassoLarsIC's normalize=True before scikit-learn 1.2)
    norms = np.sqrt((centred**2).sum(axis=0))
    unit = x / np.where(norms > 0, norms, 1.0)
    # LassoLarsIC centres ``unit`` and, with more days than features, follows the path on the centred
    # columns' Gram (its precompute="auto"); computed here once instead of once per hour
    unit_centred = unit - unit.mean(axis=0)
    unit_gram: np.ndarray | str = np.dot(unit_centred.T, unit_centred) if x.shape[0] > x.shape[1] else "auto"
    gram = np.dot(centred.T, centred)
    # the Lasso's inputs as its own input check would leave them (float64, Fortran order), checked once
    # here rather than once per hour: check_input=False skips the copy, and the check of the Gram
    columns = np.asfortranarray(centred)
    coefficients = np.zeros((HORIZON_HOURS, x.shape[1]))
    intercepts = np.zeros(HORIZON_HOURS)
    given = alphas is not None
    alphas = np.array(alphas, dtype=float) if alphas is not None else np.zeros(HORIZON_HOURS)
    for h in range(HORIZON_HOURS):
        variance = float(np.var(y[:, h]))
        if variance == 0.0:  # a constant target: the intercept is the model
            intercepts[h] = float(y[0, h])
            continue
        with warnings.catch_warnings():  # LARS reports collinear steps (the dummies, flat hours) as it goes
            warnings.simplefilter("ignore", ConvergenceWarning)
            if not given:
                criterion = LassoLarsIC(
                    criterion=CRITERION, max_iter=MAX_ITERATIONS, noise_variance=variance, precompute=unit_gram
                )
                alphas[h] = criterion.fit(unit, y[:, h]).alpha_
            model = Lasso(alpha=alphas[h], max_iter=MAX_ITERATIONS, fit_intercept=False, precompute=gram)
            with sklearn_config(skip_parameter_validation=True):
                model.fit(columns, np.ascontiguousarray(y[:, h] - y_offset[h]), check_input=False)
        coefficients[h], intercepts[h] = model.coef_, y_offset[h] - x_offset @ model.coef_
    return LearFit(window_days, x_scaler, y_scaler, coefficients, intercepts, alphas)


@dataclass(frozen=True)
class LearDays:
    """LEAR's feature row and 24 target prices of each local day (indexed by its midnight origin), built
    once for every recalibration of a span of origins (``lear_days``) instead of once per origin."""

    features: pd.DataFrame
    targets: pd.DataFrame

    def before(self, origin: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the complete days a recalibration before ``origin`` reads: the local days starting in
        the :data:`RECALIBRATION_DAYS` less a week of lags before it, oldest first."""
        index = self.features.index
        rows = (index >= origin - (RECALIBRATION_DAYS - max(PRICE_LAG_DAYS)) * DAY) & (index < origin)
        features, targets = self.features[rows], self.targets[rows]
        complete = features.notna().all(axis=1) & targets.notna().all(axis=1)
        return features[complete].to_numpy(), targets[complete].to_numpy()


def lear_days(
    prices: pd.Series, exogenous: pd.DataFrame, region: str, first: pd.Timestamp, last: pd.Timestamp
) -> LearDays:
    """The local days that recalibrations before the origins from ``first`` to ``last`` read.

    Each day's row reads its own prices (the targets) and the week before it, all before any origin
    after that day, so one build serves every origin of the span: the rows a recalibration reads
    are the ones it would build from the :data:`RECALIBRATION_DAYS` before its origin alone."""
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    known = prices[(prices.index >= first - RECALIBRATION_DAYS * DAY) & (prices.index < last)]
    origins = day_ahead_origins(region, first - (RECALIBRATION_DAYS - max(PRICE_LAG_DAYS)) * DAY, last)
    if known.empty or len(origins) == 0:
        raise LearHistoryTooShort(
            f"{region}: no prices in the {RECALIBRATION_DAYS} days before {first} to recalibrate LEAR on"
        )
    return LearDays(*lear_features(known, exogenous, region, origins))


def short_window_fits(
    days: LearDays, region: str, origin: pd.Timestamp, penalties: dict[int, np.ndarray]
) -> list[LearFit]:
    """The short calibration windows (``penalties``' keys: 56 and 84 days) fitted on the last complete days
    before ``origin`` with those penalties (24 per window), as :meth:`LearModel.fit` with ``penalties``
    fits them; the days are those of the :data:`RECALIBRATION_DAYS` before ``origin`` (a few more than 84
    and their week of lags, so a day with a missing price does not shorten the windows)."""
    x, y = days.before(pd.Timestamp(origin))
    if len(x) < max(penalties):
        raise LearHistoryTooShort(
            f"{region}: {len(x)} complete days in the {RECALIBRATION_DAYS} before {origin} (prices of 7 days "
            f"before each and both exogenous forecasts); recalibrating LEAR's {max(penalties)}-day window needs "
            f"{max(penalties)}"
        )
    return [fit_window(x[-w:], y[-w:], w, alphas) for w, alphas in sorted(penalties.items())]


class LearModel:
    """The LEAR member of one region: :meth:`fit` on the history before an instant, :meth:`predict` per origin."""

    name = "lear"

    def __init__(self, region: str, max_windows: int = 0) -> None:
        self.region = region
        self.max_windows = max_windows  # 0: every calibration window (calibration_windows)
        # refit the short windows before every local-midnight forecast (LearMember.for_origin)
        self.recalibrates = False
        self.fits: list[LearFit] = []
        self.last_training_target: pd.Timestamp | None = None
        self.fit_seconds = 0.0

    @property
    def windows(self) -> tuple[int, ...]:
        return tuple(f.window_days for f in self.fits)

    @property
    def short_windows(self) -> tuple[int, ...]:
        """The windows a recalibration refits: those of at most 84 days (the 56 and 84 days, or fewer)."""
        return tuple(w for w in self.windows if w <= max(SHORT_WINDOWS_DAYS))

    def fit(
        self,
        prices: pd.Series,
        exogenous: pd.DataFrame,
        end: pd.Timestamp,
        penalties: dict[int, np.ndarray] | None = None,
    ) -> LearModel:
        """Fit on the local-midnight origins whose 24 target hours and inputs are all known and before ``end``.

        ``penalties`` (window days -> 24 penalties, e.g. an earlier fit's ``alphas``) refits those windows
        with them instead of running the criterion; the other windows run it.
        """
        end = pd.Timestamp(end)
        if end.tzinfo is None:
            raise LearError(f"{self.region}: the end of the LEAR fit ({end}) must be tz-aware")
        known = prices[prices.index < end]
        if known.empty:
            raise LearError(f"{self.region}: no prices before {end} to fit LEAR on")
        origins = day_ahead_origins(self.region, known.index.min(), end - (HORIZON_HOURS - 1) * HOUR)
        if len(origins) == 0:
            raise LearError(f"{self.region}: no whole day of prices before {end} to fit LEAR on")
        features, targets = lear_features(known, exogenous, self.region, origins)
        return self._fit(features, targets, f"before {end}", penalties or {})

    def fit_frame(self, frame: pd.DataFrame) -> LearModel:
        """Fit on the origins of a feature frame (``build_feature_frame`` of day-ahead origins, with ``price``)."""
        features, targets = lear_matrix(frame, self.region)
        return self._fit(features, targets, f"of the frame up to {features.index[-1]}", {})

    def _fit(
        self, features: pd.DataFrame, targets: pd.DataFrame, where: str, penalties: dict[int, np.ndarray]
    ) -> LearModel:
        started = time.perf_counter()
        complete = features.notna().all(axis=1) & targets.notna().all(axis=1)
        features, targets = features[complete], targets[complete]
        if len(features) < SHORT_WINDOWS_DAYS[0]:
            raise LearHistoryTooShort(
                f"{self.region}: {len(features)} complete days {where} (prices of 7 days before each and "
                f"both exogenous forecasts); LEAR needs at least {SHORT_WINDOWS_DAYS[0]}"
            )
        x, y = features.to_numpy(), targets.to_numpy()
        self.fits = [
            fit_window(x[-w:], y[-w:], w, penalties.get(w))
            for w in calibration_windows(len(features), self.max_windows)
        ]
        self.last_training_target = targets.index[-1] + (HORIZON_HOURS - 1) * HOUR
        self.fit_seconds = time.perf_counter() - started
        log.info(
            "%s: LEAR fitted on windows %s days %s in %.1f s (features kept per window: %s)",
            self.region,
            self.windows,
            where,
            self.fit_seconds,
            [int((f.coefficients != 0).any(axis=0).sum()) for f in self.fits],
        )
        return self

    def recalibrated(
        self, prices: pd.Series, exogenous: pd.DataFrame, origin: pd.Timestamp, days: LearDays | None = None
    ) -> LearModel:
        """A copy whose short windows (:attr:`short_windows`: 56 and 84 days) are fitted again on the complete
        days before ``origin`` with the penalties this fit chose for them, and whose long windows are this
        fit's, unchanged.

        The paper recalibrated LEAR before every day; the short windows are what follows a new regime.
        Refitted with their penalties (a Lasso per hour, no criterion) they cost about a tenth of a
        fit with the criterion and forecast as well (``benchmarks/results/attempt_lear_daily_*.json``),
        so a forecast can afford it where the weekly retraining fitted the model. Reads the prices and
        exogenous forecasts of the :data:`RECALIBRATION_DAYS` (98) before ``origin`` only; ``days``, built
        by :func:`lear_days` for a span of origins holding ``origin``, saves building them again.
        """
        if not self.fits:
            raise LearError(f"{self.region}: LEAR is not fitted; call fit() first")
        penalties = {f.window_days: f.alphas for f in self.fits if f.window_days in self.short_windows}
        copy = LearModel(self.region, self.max_windows)
        copy.recalibrates = self.recalibrates
        copy.fits = [
            *short_window_fits(
                days if days is not None else lear_days(prices, exogenous, self.region, origin, origin),
                self.region,
                origin,
                penalties,
            ),
            *(f for f in self.fits if f.window_days not in penalties),
        ]
        copy.last_training_target = self.last_training_target
        copy.fit_seconds = self.fit_seconds
        return copy

    def predict(self, prices: pd.Series, exogenous: pd.DataFrame, origins: pd.DatetimeIndex) -> pd.DataFrame:
        """The 24 hourly forecasts after each origin (rows: origins, columns: horizon 0..23), the windows' mean."""
        if not self.fits:
            raise LearError(f"{self.region}: LEAR is not fitted; call fit() first")
        features, _ = lear_features(prices, exogenous, self.region, origins)
        incomplete = features.index[features.isna().any(axis=1)]
        if len(incomplete):
            raise LearError(
                f"{self.region}: LEAR inputs of {len(incomplete)} origin(s) are incomplete (first {incomplete[0]}): "
                "it needs the prices of the 7 days before an origin and both exogenous forecasts for its day, "
                "the day before and 7 days before"
            )
        x = features.to_numpy()
        forecast = np.mean([f.predict(x) for f in self.fits], axis=0)
        return pd.DataFrame(forecast, index=features.index, columns=range(HORIZON_HOURS))

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """One forecast per row of a feature frame (24 rows per origin), in row order: the windows' mean.

        An input the frame does not know (NaN: a price or exogenous forecast sent as null) is imputed
        by its calibration median; the served model answers such requests as the other members do.
        """
        if not self.fits:
            raise LearError(f"{self.region}: LEAR is not fitted; call fit() first")
        features, _ = lear_matrix(frame, self.region)
        forecast = np.mean([f.predict(features.to_numpy()) for f in self.fits], axis=0)
        origins = pd.DatetimeIndex(frame["origin"]).tz_convert("UTC")
        return forecast[features.index.get_indexer(origins), frame["horizon"].to_numpy(dtype=int)]

    def long_window_penalties(self) -> dict[int, np.ndarray]:
        """The penalties of the windows longer than the short ones (window days -> 24 per hour), which a later
        ``fit(penalties=...)`` may reuse: the criterion's LARS paths on those windows are most of a fit's time."""
        return {f.window_days: f.alphas.copy() for f in self.fits if f.window_days > max(SHORT_WINDOWS_DAYS)}

    def describe(self) -> dict[str, Any]:
        """What the fit chose: windows, the penalty per window and hour, seconds (logged to MLflow)."""
        return {
            "windows": list(self.windows),
            "criterion": CRITERION,
            "recalibrates": self.recalibrates,
            "alphas": {str(f.window_days): [float(a) for a in f.alphas] for f in self.fits},
            "features_kept": {str(f.window_days): int((f.coefficients != 0).any(axis=0).sum()) for f in self.fits},
            "last_training_target": str(self.last_training_target),
            "fit_seconds": round(self.fit_seconds, 3),
        }

    def save(self, folder: Path) -> None:
        """``lear.json``: per window the coefficients, intercepts, penalties and the transform's medians and scales."""
        if not self.fits:
            raise LearError(f"{self.region}: LEAR is not fitted; nothing to save")
        folder.mkdir(parents=True, exist_ok=True)
        spec = {
            "format": 1,
            "region": self.region,
            "feature_names": lear_feature_names(self.region),
            "max_windows": self.max_windows,
            "recalibrates": self.recalibrates,
            "last_training_target": str(self.last_training_target),
            "fit_seconds": self.fit_seconds,
            "fits": [f.to_dict() for f in self.fits],
        }
        (folder / LEAR_FILE).write_text(json.dumps(spec))

    @classmethod
    def load(cls, folder: Path) -> LearModel:
        path = Path(folder) / LEAR_FILE
        if not path.is_file():
            raise LearError(f"no {LEAR_FILE} in {folder}: the LEAR member's artifacts are missing")
        spec = json.loads(path.read_text())
        model = cls(spec["region"], int(spec.get("max_windows", 0)))
        if spec["feature_names"] != lear_feature_names(model.region):
            raise LearError(
                f"{model.region}: {path} was fitted on other inputs than this code builds "
                f"({len(spec['feature_names'])} vs {len(lear_feature_names(model.region))} features); retrain the model"
            )
        model.fits = [LearFit.from_dict(f) for f in spec["fits"]]
        model.recalibrates = bool(spec.get("recalibrates", False))  # a model saved before it: weekly fit only
        model.last_training_target = pd.Timestamp(spec["last_training_target"])
        model.fit_seconds = float(spec["fit_seconds"])
        return model


class LearMember(ForecastModel):
    """LEAR as a member of the ensemble (``training.models.model_class("lear")``): predicts from the feature
    frame's rows like the other members, saved as JSON (no pickle).

    It has no hyper-parameter to tune (the criterion picks each hour's penalty, the windows follow
    the data), so a retraining fits it without Optuna (:func:`fit_lear`)."""

    name = "lear"

    def __init__(self, params: dict[str, Any], feature_columns: list[str], **kwargs: Any) -> None:
        super().__init__(params, feature_columns, **kwargs)
        self.region = str(params["region"])
        self.model = LearModel(self.region, int(params.get("max_windows", 0)))

    @classmethod
    def of(cls, model: LearModel) -> LearMember:
        member = cls({"region": model.region, "max_windows": model.max_windows}, [])
        member.model = model
        return member

    @staticmethod
    def default_params() -> dict[str, Any]:
        return {}

    @staticmethod
    def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
        return {}

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame, report: ProgressReport | None = None) -> FitResult:
        """Fit on the day-ahead origins of ``train`` (a frame with ``price``), score ``validation``."""
        self.model.fit_frame(train)
        error = float(np.mean(np.abs(self.predict(validation) - validation[TARGET_COLUMN].to_numpy(dtype=float))))
        return FitResult(best_step=0, validation_mae=error, steps_run=len(self.model.fits), history=[error])

    @property
    def history_hours(self) -> int:
        """The hours before an origin it reads: the :data:`RECALIBRATION_DAYS` when it recalibrates."""
        return RECALIBRATION_DAYS * 24 if self.model.recalibrates else super().history_hours

    def for_origin(
        self, prices: pd.Series, exogenous: pd.DataFrame, origin: pd.Timestamp, days: LearDays | None = None
    ) -> LearMember:
        """The member that forecasts the day starting at ``origin``: with its short windows refitted on the days
        before it (:meth:`LearModel.recalibrated`) when the model recalibrates and ``origin`` is a local
        midnight of the market (LEAR abstains from other origins); itself otherwise.

        Days with a price or exogenous forecast unknown (null in a request) are left out of the refit; when
        fewer complete days than the 84-day window remain, the retraining's fit forecasts the day and a
        warning says so (a forecast still comes, as from the other members when an input is imputed).
        """
        origin = pd.Timestamp(origin)
        local = origin.tz_convert(get_market(self.region).timezone)
        if not self.model.recalibrates or (local.hour, local.minute) != (0, 0):
            return self
        try:
            return LearMember.of(self.model.recalibrated(prices, exogenous, origin, days))
        except LearHistoryTooShort as exc:
            log.warning("%s; LEAR forecasts %s with the retraining's fit, not recalibrated", exc, origin)
            return self

    def predict_each_origin(self, frame: pd.DataFrame, prices: pd.Series, exogenous: pd.DataFrame) -> np.ndarray:
        """One forecast per row of a feature frame, each origin's from :meth:`for_origin` (recalibrated on the days
        before a local-midnight origin when the member recalibrates, the recalibrations sharing one build of their
        days, :func:`lear_days`); NaN for other origins."""
        if not self.model.recalibrates:  # every origin gets the member itself: one prediction of the frame
            return self.predict(frame)
        origins = pd.DatetimeIndex(frame["origin"]).tz_convert("UTC")
        out = np.full(len(frame), np.nan)
        try:
            days = lear_days(prices, exogenous, self.region, origins.min(), origins.max())
        except LearHistoryTooShort:
            days = None  # each origin finds that out for itself (for_origin), and says so
        for origin in origins.unique():
            rows = np.flatnonzero(origins == origin)
            out[rows] = self.for_origin(prices, exogenous, origin, days).predict(frame.iloc[rows])
        return out

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """LEAR's forecast of each row whose origin is a local midnight of the market; NaN for other origins.

        Its 24 per-hour models map whole local days (d-1 .. d-7, hour 0..23) to hour ``h`` of day d:
        from an origin at another hour the same inputs would be a rotated day, so LEAR abstains
        there and the ensemble gives its weight to the other members (``EnsembleForecaster.predict``).
        """
        try:
            forecast = self.model.predict_frame(frame)
        except LearError as exc:
            raise ModelError(str(exc)) from None
        local = pd.DatetimeIndex(frame["origin"]).tz_convert(get_market(self.region).timezone)
        return np.where((local.hour == 0) & (local.minute == 0), forecast, np.nan)

    def save(self, folder: Path) -> None:
        self.model.save(folder)

    @classmethod
    def load(cls, folder: Path) -> LearMember:
        try:
            return cls.of(LearModel.load(folder))
        except LearError as exc:
            raise ModelError(str(exc)) from None


@dataclass(frozen=True)
class LearPenalties:
    """The long windows' penalties of a retraining's two LEAR fits (``LearModel.long_window_penalties``)."""

    validation: dict[int, np.ndarray]  # of the fit on the days before the validation
    deployed: dict[int, np.ndarray]  # of the fit on the days before the end


@dataclass(frozen=True)
class LearTraining:
    """A retraining's LEAR: the member it deploys and the forecasts that judge it on the validation."""

    member: LearMember  # fitted on every day before ``end``
    validation_forecast: np.ndarray  # per validation row, from a fit on the days before the validation
    validation_fit: dict[str, Any]  # describe() of that fit
    seconds: float
    penalties: LearPenalties  # the long windows' penalties both fits used, for a later fit_lear(reuse=...)
    penalties_reused: bool  # True: every long window was refitted with its penalties from ``reuse``, no criterion


def fit_lear(
    prices: pd.Series,
    exogenous: pd.DataFrame,
    region: str,
    validation: pd.DataFrame,
    end: pd.Timestamp,
    max_windows: int = 0,
    reuse: LearPenalties | None = None,
    recalibrate: bool = False,
) -> LearTraining:
    """The LEAR member of a retraining, the way ``model_retraining`` and the backtest both fit it.

    LEAR chooses nothing on the validation window (no early stopping, no tuning), so the member
    deployed is fitted on all the days before ``end`` (the test window's first origin; the end of
    the data when there is none), the freshest fit the product can make; its validation forecasts,
    from which the ensemble weights are chosen, come from a second fit on the days before the
    validation's first origin, so they are out of sample like the other members'.

    ``reuse``, an earlier retraining's ``penalties`` (the week before's, say), refits each long
    window of the same length with its earlier penalties instead of running the criterion; the short
    windows and any long window whose length changed run it as usual. That halves LEAR's CPU time in
    a walk-forward (``TrainingConfig.lear_criterion_every``) and forecast as well on NP's first 8
    test weeks (``benchmarks/results/attempt_lear_penalties_NP.json``).

    ``recalibrate``: both fits recalibrate (``LearModel.recalibrates``: the short windows refitted before
    every local-midnight forecast, ``TrainingConfig.lear_recalibrate_daily``), so each validation day
    is forecast the way the deployed member then forecasts each day.
    """
    started = time.perf_counter()
    first = pd.Timestamp(validation["origin"].min())
    before = LearModel(region, max_windows).fit(prices, exogenous, first, reuse.validation if reuse else None)
    member = LearMember.of(
        LearModel(region, max_windows).fit(prices, exogenous, end, reuse.deployed if reuse else None)
    )
    before.recalibrates = member.model.recalibrates = recalibrate
    penalties = LearPenalties(before.long_window_penalties(), member.model.long_window_penalties())
    reused = (
        reuse is not None
        and bool(penalties.validation or penalties.deployed)
        and all(
            w in given and np.array_equal(alphas, given[w])
            for fitted, given in ((penalties.validation, reuse.validation), (penalties.deployed, reuse.deployed))
            for w, alphas in fitted.items()
        )
    )
    return LearTraining(
        member,
        LearMember.of(before).predict_each_origin(validation, prices, exogenous),
        before.describe(),
        round(time.perf_counter() - started, 3),
        penalties,
        penalties_reused=reused,
    )
