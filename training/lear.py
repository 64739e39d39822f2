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
  two short windows, which follow a new regime within weeks) and the last half and the whole
  of the days the fit is given (:func:`calibration_windows`). The long windows follow the length
  of the retraining's extract, so no window is set per market.

The paper recalibrated daily; a product retraining fits once and forecasts the days up to the
next retraining. A fit is seconds (96 LARS paths on at most a few hundred days).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.markets import get_market
from training.features import HORIZON_HOURS, FeatureError, day_ahead_origins, hourly_series

log = logging.getLogger(__name__)
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
PRICE_LAG_DAYS = (1, 2, 3, 7)
EXOGENOUS_LAG_DAYS = (0, 1, 7)
WEEKDAYS = 7
SHORT_WINDOWS_DAYS = (56, 84)
CRITERION = "aic"
MAX_ITERATIONS = 2500  # epftoolbox's, for LARS and for the Lasso
NORMAL_MAD = 0.6744897501960817  # the normal's 3/4 quantile: MAD / this estimates the standard deviation


class LearError(ValueError):
    """The LEAR member cannot be fitted or used; the message names the region and what is missing."""


def lear_feature_names(region: str) -> list[str]:
    """The LEAR inputs of a region, in the matrix's column order (the weekday dummies last)."""
    names = [f"price_d-{k}_h{h}" for k in PRICE_LAG_DAYS for h in range(HORIZON_HOURS)]
    for variable in get_market(region).exogenous:
        names += [f"{variable}_d-{k}_h{h}" for k in EXOGENOUS_LAG_DAYS for h in range(HORIZON_HOURS)]
    return [*names, *(f"weekday_{d}" for d in range(WEEKDAYS))]


def lear_features(
    prices: pd.Series, exogenous: pd.DataFrame, region: str, origins: pd.DatetimeIndex
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The LEAR feature rows (one per origin) and the 24 target prices after each origin (NaN where unknown).

    ``prices`` and ``exogenous`` are hourly, indexed by UTC time, as for
    :func:`training.features.build_feature_frame`; an input hour that is not there is NaN.
    """
    market = get_market(region)
    origins = pd.DatetimeIndex(origins)
    if len(origins) == 0:
        raise LearError(f"{region}: no forecast origins to build LEAR features for")
    if origins.tz is None:
        raise LearError(f"{region}: LEAR forecast origins must be tz-aware UTC")
    origins = origins.tz_convert("UTC")
    missing = [name for name in market.exogenous if name not in exogenous.columns]
    if missing:
        raise LearError(
            f"{region}: exogenous forecast(s) {', '.join(missing)} missing; LEAR needs {', '.join(market.exogenous)}"
        )
    try:
        series = hourly_series(prices, "prices", region)
    except FeatureError as exc:
        raise LearError(str(exc)) from None
    hours = pd.to_timedelta(np.arange(HORIZON_HOURS), unit="h").to_numpy()

    def block(values: pd.Series, shift_days: int) -> np.ndarray:
        when = (origins - shift_days * DAY).values[:, None] + hours[None, :]
        flat = pd.DatetimeIndex(when.ravel(), tz="UTC")
        return values.reindex(flat).to_numpy(dtype=float).reshape(len(origins), HORIZON_HOURS)

    parts = [block(series, k) for k in PRICE_LAG_DAYS]
    for name in market.exogenous:
        exog = hourly_series(exogenous[name].dropna(), f"exogenous {name}", region)
        parts += [block(exog, k) for k in EXOGENOUS_LAG_DAYS]
    weekday = origins.tz_convert(market.timezone).dayofweek.to_numpy()
    parts.append((weekday[:, None] == np.arange(WEEKDAYS)[None, :]).astype(float))
    features = pd.DataFrame(np.hstack(parts), index=origins, columns=lear_feature_names(region))
    targets = pd.DataFrame(block(series, 0), index=origins, columns=range(HORIZON_HOURS))
    return features, targets


def calibration_windows(days_available: int) -> tuple[int, ...]:
    """The calibration windows (days) of a fit given ``days_available`` complete days: 56, 84, half and all of them."""
    candidates = (*SHORT_WINDOWS_DAYS, days_available // 2, days_available)
    return tuple(sorted({w for w in candidates if SHORT_WINDOWS_DAYS[0] <= w <= days_available}))


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
        x = features.copy()
        x[:, :-WEEKDAYS] = self.x_scaler.transform(x[:, :-WEEKDAYS])
        return self.y_scaler.inverse(x @ self.coefficients.T + self.intercepts)


def _fit_window(features: np.ndarray, targets: np.ndarray, window_days: int) -> LearFit:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso, LassoLarsIC

    x_scaler = InvariantScaler.fit(features[:, :-WEEKDAYS])
    y_scaler = InvariantScaler.fit(targets)
    x = features.copy()
    x[:, :-WEEKDAYS] = x_scaler.transform(x[:, :-WEEKDAYS])
    y = y_scaler.transform(targets)
    # the criterion's path runs on centred columns of unit norm (LassoLarsIC's normalize=True before scikit-learn 1.2)
    centred = x - x.mean(axis=0)
    norms = np.sqrt((centred**2).sum(axis=0))
    unit = x / np.where(norms > 0, norms, 1.0)
    coefficients = np.zeros((HORIZON_HOURS, x.shape[1]))
    intercepts, alphas = np.zeros(HORIZON_HOURS), np.zeros(HORIZON_HOURS)
    for h in range(HORIZON_HOURS):
        variance = float(np.var(y[:, h]))
        if variance == 0.0:  # a constant target: the intercept is the model
            intercepts[h] = float(y[0, h])
            continue
        with warnings.catch_warnings():  # LARS reports collinear steps (the dummies, flat hours) as it goes
            warnings.simplefilter("ignore", ConvergenceWarning)
            criterion = LassoLarsIC(criterion=CRITERION, max_iter=MAX_ITERATIONS, noise_variance=variance)
            alphas[h] = criterion.fit(unit, y[:, h]).alpha_
            model = Lasso(alpha=alphas[h], max_iter=MAX_ITERATIONS).fit(x, y[:, h])
        coefficients[h], intercepts[h] = model.coef_, model.intercept_
    return LearFit(window_days, x_scaler, y_scaler, coefficients, intercepts, alphas)


class LearModel:
    """The LEAR member of one region: :meth:`fit` on the history before an instant, :meth:`predict` per origin."""

    name = "lear"

    def __init__(self, region: str) -> None:
        self.region = region
        self.fits: list[LearFit] = []
        self.last_training_target: pd.Timestamp | None = None

    @property
    def windows(self) -> tuple[int, ...]:
        return tuple(f.window_days for f in self.fits)

    def fit(self, prices: pd.Series, exogenous: pd.DataFrame, end: pd.Timestamp) -> LearModel:
        """Fit on the local-midnight origins whose 24 target hours and inputs are all known and before ``end``."""
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
        complete = features.notna().all(axis=1) & targets.notna().all(axis=1)
        features, targets = features[complete], targets[complete]
        if len(features) < SHORT_WINDOWS_DAYS[0]:
            raise LearError(
                f"{self.region}: {len(features)} complete days before {end} (prices of 7 days before each and "
                f"both exogenous forecasts); LEAR needs at least {SHORT_WINDOWS_DAYS[0]}"
            )
        x, y = features.to_numpy(), targets.to_numpy()
        self.fits = [_fit_window(x[-w:], y[-w:], w) for w in calibration_windows(len(features))]
        self.last_training_target = targets.index[-1] + (HORIZON_HOURS - 1) * HOUR
        log.info(
            "%s: LEAR fitted on windows %s days before %s (features kept per window: %s)",
            self.region,
            self.windows,
            end,
            [int((f.coefficients != 0).any(axis=0).sum()) for f in self.fits],
        )
        return self

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
