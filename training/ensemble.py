"""The ensemble of the members: weights, the keep-or-fall-back decision, intervals, save/load.

- Two weighting rules, both on the simplex (non-negative weights summing to one): ``decide``'s
  weights minimise the validation window's MAE (a linear programme, solved exactly), and
  ``stack_weights`` shrinks such weights toward equal weights by the share a holdout chose.
  :func:`choose_weights` lets the validation pick between them out of sample (a rolling-origin
  comparison over its last weeks), then fits the winner on the whole validation.
- Or no fitting at all: with ``lear_network`` (:func:`weigh_members`), LEAR and the CNN-LSTM half and
  half, the trees at 0 (:func:`lear_network_weights`).
- The ensemble is kept only when its validation MAE beats its best member's; otherwise the best
  member alone is the model (weight 1). The decision and both numbers are recorded.
- The interval ``lower``/``upper`` and the quantiles ``q05`` .. ``q95`` are split-conformal, per
  forecast horizon, from the validation residuals: :func:`calibrate_intervals` says exactly how.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from core.markets import Market, get_market
from core.members import member_column
from core.quantiles import QUANTILE_LEVELS, quantile_column
from training.config import ENSEMBLE_WEIGHTS
from training.features import HORIZON_HOURS
from training.models import ForecastModel, ModelError, model_class

ENSEMBLE_FILE = "ensemble.json"
log = logging.getLogger(__name__)


class EnsembleError(ValueError):
    """The members' predictions cannot be combined (shape, NaN, no members)."""


def _check_predictions(predictions: dict[str, np.ndarray], actual: np.ndarray) -> None:
    if not predictions:
        raise EnsembleError("no member predictions to combine")
    for name, values in predictions.items():
        if values.shape != actual.shape:
            raise EnsembleError(f"{name}: {values.size} validation predictions for {actual.size} hours")
        if not np.isfinite(values).all():
            raise EnsembleError(
                f"{name}: {int((~np.isfinite(values)).sum())} validation prediction(s) are NaN or infinite"
            )


def fit_weights(predictions: dict[str, np.ndarray], actual: np.ndarray) -> dict[str, float]:
    """Simplex weights minimising MAE: min sum(u+v) s.t. P w + u - v = y, w >= 0, sum w = 1."""
    actual = np.asarray(actual, dtype=float)
    _check_predictions(predictions, actual)
    names = list(predictions)
    members = np.column_stack([predictions[n] for n in names])
    n, k = members.shape
    cost = np.concatenate([np.zeros(k), np.ones(2 * n)])
    eye = np.eye(n)
    equality = np.vstack(
        [
            np.hstack([members, eye, -eye]),
            np.concatenate([np.ones(k), np.zeros(2 * n)])[None, :],
        ]
    )
    bounds = [(0, None)] * (k + 2 * n)
    result = linprog(cost, A_eq=equality, b_eq=np.concatenate([actual, [1.0]]), bounds=bounds, method="highs")
    if not result.success:
        raise EnsembleError(f"weight fit failed: {result.message}")
    weights = np.clip(result.x[:k], 0, None)
    weights = weights / weights.sum()
    return {name: float(w) for name, w in zip(names, weights, strict=False)}


@dataclass(frozen=True)
class EnsembleDecision:
    weights: dict[str, float]
    kind: str  # "ensemble" or "best_member"
    validation_mae: dict[str, float]  # per member and "ensemble"
    reason: str
    rule: str = "simplex"  # "simplex" (decide) or "stack", as choose_weights picked; or "lear_network"
    comparison: dict = field(default_factory=dict)  # choose_weights' out-of-sample MAE of each rule


def decide(predictions: dict[str, np.ndarray], actual: np.ndarray) -> EnsembleDecision:
    """The simplex weights (:func:`fit_weights`), kept only when they beat the best member on validation."""
    actual = np.asarray(actual, dtype=float)
    return _guarded(predictions, actual, fit_weights(predictions, actual), "simplex", "weighted ensemble")


@dataclass(frozen=True)
class IntervalCalibration:
    """The residual offsets of :func:`calibrate_intervals`, added to a point forecast per horizon.

    ``quantiles[i][h]`` is the offset of level ``levels[i]`` at horizon ``h``; both are None in an
    ``ensemble.json`` written before the quantiles existed (such a model still forecasts ``yhat``
    and ``lower``/``upper``, and answers no quantile columns).
    """

    coverage: float
    lower: list[float]  # residual quantile per horizon 0..23 (usually negative)
    upper: list[float]
    levels: list[float] | None = None
    quantiles: list[list[float]] | None = None

    def __post_init__(self) -> None:
        if (self.levels is None) != (self.quantiles is None):
            raise EnsembleError("interval calibration: quantile levels and quantile offsets must come together")
        if self.levels is not None and self.quantiles is not None:
            offsets = np.asarray(self.quantiles, dtype=float)
            if offsets.shape != (len(self.levels), HORIZON_HOURS) or not np.isfinite(offsets).all():
                raise EnsembleError(
                    f"interval calibration: quantile offsets of shape {offsets.shape} (finite: "
                    f"{bool(np.isfinite(offsets).all())}) for {len(self.levels)} levels and {HORIZON_HOURS} "
                    "horizons; the ensemble.json is damaged: retrain the region"
                )
            if list(self.levels) != sorted(set(self.levels)):
                raise EnsembleError(f"interval calibration: quantile levels {self.levels} are not increasing")

    def bounds(self, yhat: np.ndarray, horizon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.asarray(horizon, dtype=int)
        return yhat + np.asarray(self.lower)[h], yhat + np.asarray(self.upper)[h]

    def quantile_frame(self, yhat: np.ndarray, horizon: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """The quantile columns (``q05`` ..) of each row, sorted across the levels (rearranged);
        no column when the calibration has no quantiles (an older model)."""
        if self.levels is None or self.quantiles is None:
            return pd.DataFrame(index=index)
        offsets = np.asarray(self.quantiles, dtype=float).T[np.asarray(horizon, dtype=int)]
        values = np.sort(np.asarray(yhat, dtype=float)[:, None] + offsets, axis=1)
        return pd.DataFrame(values, index=index, columns=[quantile_column(q) for q in self.levels])


def calibrate_intervals(
    actual: np.ndarray,
    forecast: np.ndarray,
    horizon: np.ndarray,
    coverage: float,
    levels: tuple[float, ...] = QUANTILE_LEVELS,
) -> IntervalCalibration:
    """Split-conformal interval and quantiles, per forecast horizon, from the validation residuals.

    Exactly how: the residuals ``r = actual - forecast`` of the validation window (the ensemble's
    point forecast, fitted before the validation) are grouped by forecast horizon ``h`` (0..23 h
    after the origin, each horizon on its own: their spreads differ) and sorted,
    ``r_(1) <= ... <= r_(n)``. Quantile level ``q`` of horizon ``h`` is the forecast plus the order
    statistic ``r_(k)`` with ``k = ceil((n + 1) q)`` for ``q >= 0.5`` and ``k = floor((n + 1) q)``
    for ``q < 0.5``, clamped to ``1..n`` (:func:`conformal_ranks`; Lei et al. 2018, Angelopoulos
    and Bates 2021): for a new residual exchangeable with the ``n``, ``P(y <= q-quantile) >= q``
    for ``q >= 0.5`` and ``P(y >= q-quantile) >= 1 - q`` below it, so the central interval of
    levels ``a`` and ``1 - a`` covers at least ``1 - 2a`` (exactly, for continuous residuals,
    when ``(n + 1) a`` is whole, e.g. ``n = 99``). The ``lower``/``upper`` interval is the same
    rule at ``(1 - coverage) / 2`` and ``(1 + coverage) / 2``: at the default coverage 0.9 it IS
    ``q05``/``q95``. Monotone by construction: ``k`` never decreases with ``q`` and the residuals
    are sorted, so the offsets do not cross; and :meth:`IntervalCalibration.quantile_frame` sorts
    each forecast row across the levels (the monotone rearrangement of Chernozhukov, Fernandez-Val
    and Galichon 2010, which leaves non-crossing quantiles unchanged), so no row can cross even
    from a hand-edited ``ensemble.json``. ``q50`` is the forecast plus the median residual, so
    it differs from ``yhat`` (the MAE-weighted point forecast) by the validation's median bias.
    """
    residuals = np.asarray(actual, dtype=float) - np.asarray(forecast, dtype=float)
    horizon = np.asarray(horizon, dtype=int)
    alpha = 1 - coverage
    level_array = np.asarray(levels, dtype=float)
    lower, upper, offsets = [], [], []
    for h in range(HORIZON_HOURS):
        r = np.sort(residuals[horizon == h])
        if r.size == 0:
            raise EnsembleError(f"no validation residuals at horizon {h} h to calibrate intervals")
        lo, hi = conformal_ranks(r.size, [alpha / 2, 1 - alpha / 2])
        lower.append(float(r[lo]))
        upper.append(float(r[hi]))
        offsets.append(r[conformal_ranks(r.size, level_array)])
    by_level = np.column_stack(offsets)  # levels x horizons
    return IntervalCalibration(
        coverage, lower, upper, [float(q) for q in level_array], [[float(v) for v in row] for row in by_level]
    )


def conformal_ranks(n: int, quantiles) -> np.ndarray:
    """The 0-based order statistics of ``n`` sorted residuals that are the split-conformal ``quantiles``.

    A level ``q >= 0.5`` takes the ``ceil((n + 1) q)``-th smallest residual, a level below 0.5 the
    ``floor((n + 1) q)``-th, clamped to the sample: a central interval of two such levels covers a
    new exchangeable residual with at least its nominal probability. The 1e-9 keeps float error in
    ``(n + 1) q`` from moving an exact rank by one.
    """
    levels = np.asarray(quantiles, dtype=float)
    upper = np.minimum(n, np.ceil((n + 1) * levels - 1e-9))
    lower = np.maximum(1, np.floor((n + 1) * levels + 1e-9))
    return (np.where(levels >= 0.5, upper, lower) - 1).astype(int)


SERVED_MIN_DAYS = 28  # fewer days of served forecasts: the validation weighs the members


@dataclass(frozen=True)
class ServedCalibration:
    """The weights and intervals :func:`calibrate_on_served` fitted on the members' served forecasts."""

    decision: EnsembleDecision
    intervals: IntervalCalibration
    days: int  # the days from its first origin's to its last's, both counted
    rows: int


def calibrate_on_served(served: pd.DataFrame, members: list[str], coverage: float) -> ServedCalibration | None:
    """Ensemble weights and intervals from the members' own served forecasts, or None with too few of them.

    A member's validation forecasts flatter it when it chose its epochs or rounds on them (the
    CNN-LSTM's early stopping, the trees' rounds) and when it is refitted less recently than the
    others: the networks and trees forecast from a fit that ends before the validation, the LEAR
    member from one that ends at the retraining and is recalibrated daily. The forecasts the
    members actually served, scored against the prices that followed, have neither bias: each was
    issued before its prices were known, by a fit as old as the ones that will serve next.

    ``served``: one row per forecast hour, columns ``origin``, ``horizon``, ``price`` (the realised
    price) and ``yhat_<member>`` for each of ``members``; rows lacking one, or more than a day ahead, are left out. The
    weights are :func:`choose_weights`' on those rows (the same rules, comparison and guard as on a
    validation), and the intervals and quantiles :func:`calibrate_intervals`' on the residuals of
    the weighted forecast, per horizon. None when the rows span fewer than :data:`SERVED_MIN_DAYS`
    origins' days or miss a horizon: the caller keeps the validation's weights and intervals.
    """
    columns = [member_column(m) for m in members]
    missing = [c for c in ("origin", "horizon", "price", *columns) if c not in served.columns]
    if missing:
        raise EnsembleError(f"served forecasts lack the column(s) {', '.join(missing)}")
    rows = served.dropna(subset=["price", *columns])
    rows = rows[(rows["horizon"] >= 0) & (rows["horizon"] < HORIZON_HOURS)].sort_values(
        ["origin", "horizon"], kind="stable"
    )
    origins = pd.DatetimeIndex(pd.to_datetime(rows["origin"], utc=True))
    # both end days counted; rounded, as a daylight-saving change moves local midnights an hour apart in UTC
    days = round((origins[-1] - origins[0]) / pd.Timedelta(days=1)) + 1 if len(rows) else 0
    if days < SERVED_MIN_DAYS:
        return None
    horizon = rows["horizon"].to_numpy(dtype=int)
    if set(np.unique(horizon)) != set(range(HORIZON_HOURS)):
        return None
    predictions = {m: rows[c].to_numpy(dtype=float) for m, c in zip(members, columns, strict=True)}
    actual = rows["price"].to_numpy(dtype=float)
    decision = choose_weights(predictions, actual, origins)
    decision = replace(decision, reason=f"on {days} days of served forecasts: {decision.reason}")
    combined = sum(w * predictions[m] for m, w in decision.weights.items())
    intervals = calibrate_intervals(actual, np.asarray(combined, dtype=float), horizon, coverage)
    return ServedCalibration(decision, intervals, days, len(rows))


class EnsembleForecaster:
    """The deployable model: members, their weights and the interval calibration of one region."""

    def __init__(
        self,
        region: str,
        members: dict[str, ForecastModel],
        decision: EnsembleDecision,
        intervals: IntervalCalibration,
        feature_columns: list[str],
        market: Market | None = None,
    ) -> None:
        self.region = region
        self.market = market  # the region's definition the model was trained with (None: not recorded)
        self.members = members
        self.decision = decision
        self.intervals = intervals
        self.feature_columns = list(feature_columns)

    @property
    def weights(self) -> dict[str, float]:
        return self.decision.weights

    def combine(self, members: dict[str, np.ndarray]) -> np.ndarray | int:
        """The weighted forecast of each row. A member that abstains on a row (NaN: LEAR from an origin that
        is not a local midnight) gives its weight to the others in proportion; a row whose weighted members
        all abstain takes the member with the lowest validation MAE that has a forecast there."""
        if not members:
            return 0
        names = list(members)
        values = np.column_stack([np.asarray(members[n], dtype=float) for n in names])
        usable = ~np.isnan(values)
        weights = np.where(usable, np.array([self.weights.get(n, 0.0) for n in names]), 0.0)
        total = weights.sum(axis=1)
        if (total <= 0).any():
            order = sorted(range(len(names)), key=lambda i: self.decision.validation_mae.get(names[i], np.inf))
            for row in np.flatnonzero(total <= 0):
                first = next((i for i in order if usable[row, i]), None)
                if first is not None:
                    weights[row, first] = 1.0
            total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nansum(values * weights, axis=1) / np.where(total > 0, total, np.nan)

    @property
    def history_hours(self) -> int:
        """How many hours before an origin its members read (``ForecastModel.history_hours``): what a request
        must carry."""
        return max(model.history_hours for model in self.members.values())

    def for_origin(self, prices: pd.Series, exogenous: pd.DataFrame, origin: pd.Timestamp) -> EnsembleForecaster:
        """The forecaster of ``origin``: each member as ``ForecastModel.for_origin`` gives it (LEAR recalibrated
        on the days before a local midnight when it recalibrates), the weights and intervals unchanged."""
        members = {name: model.for_origin(prices, exogenous, origin) for name, model in self.members.items()}
        if all(members[name] is model for name, model in self.members.items()):
            return self
        return EnsembleForecaster(
            self.region, members, self.decision, self.intervals, self.feature_columns, self.market
        )

    def predict_each_origin(self, frame: pd.DataFrame, prices: pd.Series, exogenous: pd.DataFrame) -> pd.DataFrame:
        """:meth:`predict` of a frame of many origins, each origin's rows by :meth:`for_origin`'s forecaster (given
        the prices and exogenous forecasts before it), as the registered model answers each origin alone: each
        member answers the frame with ``ForecastModel.predict_each_origin`` (LEAR's recalibrations share one
        build of their days), then the rows are combined as :meth:`predict` combines them."""
        return self._answer(
            frame, {name: model.predict_each_origin(frame, prices, exogenous) for name, model in self.members.items()}
        )

    def member_predictions(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {name: model.predict(frame) for name, model in self.members.items()}

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Point forecast, interval, quantiles (``q05`` .. ``q95``) and each member's forecast for every row of ``frame``."""
        return self._answer(frame, self.member_predictions(frame))

    def _answer(self, frame: pd.DataFrame, members: dict[str, np.ndarray]) -> pd.DataFrame:
        """The members' forecasts of ``frame``'s rows combined: point forecast, interval, quantiles, members."""
        yhat = self.combine(members)
        if not isinstance(yhat, np.ndarray):  # sum() of no member is the int 0
            raise ModelError(f"{self.region}: the ensemble has no member to forecast with")
        if not np.isfinite(yhat).all():
            raise ModelError(f"{self.region}: the ensemble forecast holds NaN or infinite values")
        horizon = frame["horizon"].to_numpy()
        lower, upper = self.intervals.bounds(yhat, horizon)
        out = pd.concat(
            [
                pd.DataFrame({"yhat": yhat, "lower": lower, "upper": upper}, index=frame.index),
                self.intervals.quantile_frame(yhat, horizon, frame.index),
            ],
            axis=1,
        )
        for name, values in members.items():
            out[member_column(name)] = values
        return out

    def save(self, folder: Path) -> None:
        """Members in their own formats, and ``ensemble.json``: weights, intervals, feature columns and the
        region's market as this process's catalogue defines it (what the features were built with), so a
        process whose catalogue lacks the region can still build them (``core.markets.adopt_market``)."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in self.members.items():
            model.save(folder / "members" / name)
        spec = {
            "region": self.region,
            "market": (self.market if self.market is not None else get_market(self.region)).model_dump(mode="json"),
            "feature_columns": self.feature_columns,
            "members": list(self.members),
            "decision": asdict(self.decision),
            "intervals": asdict(self.intervals),
        }
        (folder / ENSEMBLE_FILE).write_text(json.dumps(spec, indent=2))

    @classmethod
    def load(cls, folder: Path) -> EnsembleForecaster:
        path = Path(folder) / ENSEMBLE_FILE
        if not path.is_file():
            raise ModelError(f"no {ENSEMBLE_FILE} in {folder}: the model's artifacts are missing or incomplete")
        spec = json.loads(path.read_text())
        members = {name: model_class(name).load(Path(folder) / "members" / name) for name in spec["members"]}
        try:
            intervals = IntervalCalibration(**spec["intervals"])
        except EnsembleError as exc:
            raise ModelError(f"{path}: {exc}") from None
        if intervals.quantiles is None:
            log.warning(
                "%s: %s was written before the quantile calibration: the model forecasts yhat, lower and upper "
                "but no quantiles (q05 .. q95 stay null) until the region is retrained",
                spec["region"],
                path,
            )
        market = Market.model_validate(spec["market"]) if "market" in spec else None
        return cls(
            spec["region"],
            members,
            EnsembleDecision(**spec["decision"]),
            intervals,
            spec["feature_columns"],
            market,
        )


SHRINKAGE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class StackDecision:
    """Stacked weights, shrunk toward equal weights by the share the validation's holdout chose."""

    weights: dict[str, float]
    shrinkage: float  # 1 = the fitted weights, 0 = equal weights
    holdout_mae: dict[str, float]  # per shrinkage on the holdout slice, with weights fitted on the rows before it
    fit_rows: int
    holdout_rows: int


def stack_weights(predictions: dict[str, np.ndarray], actual: np.ndarray, fit_rows: int) -> StackDecision:
    """A constrained linear stack of the members (non-negative weights summing to one), guarded against over-fitting.

    The simplex weights minimising MAE (:func:`fit_weights`) are fitted on the first ``fit_rows``
    of the validation and scored on the rest (the holdout) mixed with equal weights at each share
    of :data:`SHRINKAGE_GRID`; the share with the lowest holdout MAE (the smaller share on a tie)
    then mixes the weights fitted on the whole validation with equal weights. A validation too
    short or too noisy to trust the fit thus falls back toward the equal-weight average, which
    needs no fitting.
    """
    actual = np.asarray(actual, dtype=float)
    _check_predictions(predictions, actual)
    if not 0 < fit_rows < actual.size:
        raise EnsembleError(f"stack: {fit_rows} fitting rows leave no holdout in {actual.size} validation rows")
    names = list(predictions)
    equal = np.full(len(names), 1 / len(names))
    first = fit_weights({n: predictions[n][:fit_rows] for n in names}, actual[:fit_rows])
    held = np.column_stack([predictions[n][fit_rows:] for n in names])
    holdout = {
        share: float(
            np.mean(
                np.abs(held @ (share * np.array([first[n] for n in names]) + (1 - share) * equal) - actual[fit_rows:])
            )
        )
        for share in SHRINKAGE_GRID
    }
    best = min(SHRINKAGE_GRID, key=lambda share: (holdout[share], share))
    whole = fit_weights(predictions, actual)
    weights = {n: float(best * whole[n] + (1 - best) * e) for n, e in zip(names, equal, strict=True)}
    return StackDecision(weights, best, {str(k): v for k, v in holdout.items()}, fit_rows, actual.size - fit_rows)


WEIGHT_RULES = ("simplex", "stack")
COMPARISON_BLOCK_DAYS = 7  # the rolling-origin comparison scores the validation's last weeks one week at a time
MIN_COMPARISON_DAYS = 14  # fewer validation days: no comparison, the simplex rule (decide) as before


def _validation_maes(
    predictions: dict[str, np.ndarray], actual: np.ndarray, weights: dict[str, float]
) -> dict[str, float]:
    """Each member's MAE on these rows, and the ``"ensemble"``'s with ``weights``."""
    maes = {name: float(np.mean(np.abs(values - actual))) for name, values in predictions.items()}
    combined = sum(w * predictions[name] for name, w in weights.items())
    maes["ensemble"] = float(np.mean(np.abs(combined - actual)))
    return maes


def _guarded(
    predictions: dict[str, np.ndarray],
    actual: np.ndarray,
    weights: dict[str, float],
    rule: str,
    label: str | None = None,
) -> EnsembleDecision:
    """``weights`` kept only when their validation MAE beats the best member's (else the best member alone);
    the reason names them ``label`` (default: ``"<rule> weights: ensemble"``)."""
    label = label or f"{rule} weights: ensemble"
    maes = _validation_maes(predictions, actual, weights)
    best = min(predictions, key=maes.__getitem__)
    if maes["ensemble"] < maes[best]:
        return EnsembleDecision(
            weights,
            "ensemble",
            maes,
            f"{label} MAE {maes['ensemble']:.4f} beats best member {best} ({maes[best]:.4f}) on validation",
            rule,
        )
    return EnsembleDecision(
        {name: float(name == best) for name in predictions},
        "best_member",
        maes,
        f"{label} MAE {maes['ensemble']:.4f} does not beat {best} ({maes[best]:.4f}) on validation; "
        f"{best} alone is the model",
        rule,
    )


def _rule_weights(
    rule: str, predictions: dict[str, np.ndarray], actual: np.ndarray, days: np.ndarray
) -> dict[str, float]:
    """The weights of ``rule`` fitted on these rows (``days``: each row's day number, ascending)."""
    if rule == "simplex":
        return decide(predictions, actual).weights
    # the stack fits on the first half of the days and picks its shrinkage on the second
    fit_rows = int(np.searchsorted(days, days[0] + (days[-1] - days[0] + 1) // 2))
    return stack_weights(predictions, actual, fit_rows).weights


def choose_weights(predictions: dict[str, np.ndarray], actual: np.ndarray, origins) -> EnsembleDecision:
    """The ensemble's weights, the rule that gives them chosen by the validation itself, out of sample.

    Rolling origin over the validation: each of its last weeks (from the middle of the window on,
    :data:`COMPARISON_BLOCK_DAYS` at a time) is forecast by each rule fitted on the validation rows
    before that week only: ``simplex`` (:func:`decide`: MAE-minimal simplex weights) and ``stack``
    (:func:`stack_weights`: such weights shrunk toward equal weights by the share a holdout of its
    own chose). The rule with the lower MAE over those weeks (``simplex`` on a tie: it is the rule
    the product had) is then fitted on the whole validation, and kept only when its validation MAE
    beats the best member's; otherwise the best member alone is the model, as :func:`decide` does.
    A validation of fewer than :data:`MIN_COMPARISON_DAYS` days is not compared: ``simplex``.
    ``origins``: each validation row's forecast origin (rows in time order).
    """
    actual = np.asarray(actual, dtype=float)
    _check_predictions(predictions, actual)
    stamps = pd.DatetimeIndex(pd.to_datetime(np.asarray(origins), utc=True))
    if len(stamps) != actual.size:
        raise EnsembleError(f"{len(stamps)} origins for {actual.size} validation rows")
    if not stamps.is_monotonic_increasing:
        raise EnsembleError("choose_weights needs the validation rows in time order (by origin)")
    days = ((stamps - stamps[0]) // pd.Timedelta(days=1)).to_numpy(dtype=int)
    span = int(days[-1]) + 1
    if span < MIN_COMPARISON_DAYS or len(predictions) < 2:
        decision = decide(predictions, actual)
        return replace(
            decision,
            comparison={"skipped": f"{span} validation day(s), {len(predictions)} member(s): no comparison"},
        )
    errors = dict.fromkeys(WEIGHT_RULES, 0.0)
    scored = 0
    for start in range(span // 2, span, COMPARISON_BLOCK_DAYS):
        before, block = days < start, (days >= start) & (days < start + COMPARISON_BLOCK_DAYS)
        for rule in WEIGHT_RULES:
            weights = _rule_weights(rule, {n: p[before] for n, p in predictions.items()}, actual[before], days[before])
            combined = sum(w * predictions[n][block] for n, w in weights.items())
            errors[rule] += float(np.abs(combined - actual[block]).sum())
        scored += int(block.sum())
    comparison: dict[str, object] = {f"{rule}_mae": errors[rule] / scored for rule in WEIGHT_RULES}
    comparison.update(scored_rows=scored, first_scored_day=span // 2, block_days=COMPARISON_BLOCK_DAYS)
    rule = "stack" if errors["stack"] < errors["simplex"] else "simplex"
    decision = _guarded(predictions, actual, _rule_weights(rule, predictions, actual, days), rule)
    reason = (
        f"{decision.reason} ({rule} chosen: out-of-sample MAE over the validation's last {span - span // 2} days "
        f"simplex {comparison['simplex_mae']:.4f}, stack {comparison['stack_mae']:.4f})"
    )
    return replace(decision, reason=reason, comparison=comparison)


LEAR_NETWORK = ("lear", "cnn_lstm")


def lear_network_weights(predictions: dict[str, np.ndarray], actual: np.ndarray) -> EnsembleDecision:
    """LEAR and the CNN-LSTM half and half, every other member at 0; nothing is fitted.

    The paper's LEAR+DNN average (Lago et al. 2021) with this product's two members of those kinds. The
    validation is not asked: the trees and the network choose their rounds and epochs on it (early stopping),
    so their validation errors are lower than what they serve, while LEAR's criterion never sees it; weights
    fitted there lean toward the members it flatters. No guard either, for the same reason; the validation
    MAEs are recorded all the same (``validation_mae``).
    """
    actual = np.asarray(actual, dtype=float)
    _check_predictions(predictions, actual)
    missing = [m for m in LEAR_NETWORK if m not in predictions]
    if missing:
        raise EnsembleError(
            f"lear_network weights need {' and '.join(missing)} among the members ({', '.join(predictions)})"
        )
    weights = {name: 0.5 if name in LEAR_NETWORK else 0.0 for name in predictions}
    maes = _validation_maes(predictions, actual, weights)
    return EnsembleDecision(
        weights,
        "ensemble",
        maes,
        f"LEAR and the CNN-LSTM half and half (validation MAE {maes['ensemble']:.4f}; not fitted there)",
        "lear_network",
    )


def weigh_members(predictions: dict[str, np.ndarray], actual: np.ndarray, origins, rule: str) -> EnsembleDecision:
    """The ensemble's weights by ``rule`` (``TrainingConfig.ensemble_weights``, ``EOPT_ENSEMBLE_WEIGHTS``):
    ``validation`` = :func:`choose_weights`; ``lear_network`` = :func:`lear_network_weights`, or
    :func:`choose_weights` with the reason saying so when LEAR or the CNN-LSTM is not among the members
    (a retraining whose network was skipped still registers a model)."""
    if rule not in ENSEMBLE_WEIGHTS:
        raise EnsembleError(f"unknown ensemble weights {rule!r}; choose one of {', '.join(ENSEMBLE_WEIGHTS)}")
    missing = [m for m in LEAR_NETWORK if m not in predictions]
    if rule == "validation" or missing:
        decision = choose_weights(predictions, actual, origins)
        if rule == "validation":
            return decision
        return replace(decision, reason=f"lear_network weights need {' and '.join(missing)}: {decision.reason}")
    return lear_network_weights(predictions, actual)
