"""XGBoost and LightGBM forecasters: gradient-boosted trees over the feature rows.

Both learn the price relative to the origin's 24-hour mean (see ``base``), stop early on the
validation window's MAE and report it to the tuner every ``REPORT_EVERY`` rounds so Optuna can
prune a hopeless trial. They save in their libraries' own text formats (XGBoost JSON, LightGBM
model text) plus a small JSON of what the product needs around them.

Two options beside the libraries' own parameters (absent = off, so parameters tuned before they
existed keep their meaning):

- ``target_transform: "asinh"``: the relative price is learnt as ``asinh((y - median) / scale)``,
  the median and scale (MAD / 0.6745) taken from the training rows (the variance-stabilising
  transform of Uniejewski, Weron and Ziel 2018, as the LEAR member uses it); predictions are
  transformed back. Spikes then weigh on the trees' splits no more than a few ordinary hours.
  Early stopping and the tuner's reports stay on the MAE in price units. Off unless set: on 10
  weeks of BE, FR and NP it lowered the two trees' ensemble MAE by 1.1%, 3.0% and 4.6%, on PJM
  it was neutral (+0.2%) (``benchmarks/results/attempt_trees_<market>.json``); it is not measured
  over a whole test period yet.
- ``recency_half_life_days``: each training row weighs ``0.5 ** (age / half-life)``, its age
  counted in days from the newest training origin, so the weekly refit leans on recent weeks.
  Off unless set: a 182-day half-life helped XGBoost on BE and LightGBM on FR and NP but hurt the
  other member on each, helped both on PJM (the pair 3.0% better), and with the asinh target it
  added nothing on BE (same attempt).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
import xgboost as xgb

from training.features import ANCHOR_COLUMN
from training.models.base import FitResult, ForecastModel, ModelError, ProgressReport, relative_target

REPORT_EVERY = 25  # rounds between validation reports to the tuner
EARLY_STOPPING_ROUNDS = 100
OPTIONS = ("target_transform", "recency_half_life_days")  # the product's parameters, not the library's
TRANSFORMS = ("none", "asinh")


class TargetTransform:
    """The relative price as the trees learn it, and back; ``kind`` "none" is the identity."""

    def __init__(self, kind: str = "none", center: float = 0.0, scale: float = 1.0) -> None:
        if kind not in TRANSFORMS:
            raise ModelError(f"target_transform {kind!r} is not one of {', '.join(TRANSFORMS)}")
        self.kind, self.center, self.scale = kind, float(center), float(scale)

    @classmethod
    def fitted(cls, kind: str, relative: np.ndarray) -> TargetTransform:
        if kind == "none":
            return cls()
        center = float(np.median(relative))
        mad = float(np.median(np.abs(relative - center))) / 0.6745
        return cls(kind, center, mad if mad > 0 else float(np.std(relative)) or 1.0)

    def forward(self, relative: np.ndarray) -> np.ndarray:
        return relative if self.kind == "none" else np.arcsinh((relative - self.center) / self.scale)

    def inverse(self, learnt: np.ndarray) -> np.ndarray:
        return learnt if self.kind == "none" else self.center + self.scale * np.sinh(learnt)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": self.center, "scale": self.scale}


def recency_weights(frame: pd.DataFrame, half_life_days: float) -> np.ndarray | None:
    """``0.5 ** (age / half_life_days)`` per row, age in days from the newest origin; None when off (0)."""
    if not half_life_days:
        return None
    if half_life_days < 0:
        raise ModelError(f"recency_half_life_days must be positive or 0 (off), not {half_life_days}")
    origins = pd.DatetimeIndex(pd.to_datetime(frame["origin"], utc=True))
    age_days = (origins.max() - origins).total_seconds().to_numpy() / 86400.0
    return np.power(0.5, age_days / float(half_life_days))


def _library_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in OPTIONS}


def _anchor(frame: pd.DataFrame, model: str) -> np.ndarray:
    anchor = frame[ANCHOR_COLUMN].to_numpy(dtype=float)
    if not np.isfinite(anchor).all():
        origins = frame.loc[~np.isfinite(anchor), "origin"].astype(str).unique()[:3] if "origin" in frame else []
        raise ModelError(
            f"{model}: {int((~np.isfinite(anchor)).sum())} row(s) lack the last 24 hours of prices before their "
            f"origin ({', '.join(origins)}); ingest or backfill those hours before forecasting"
        )
    return anchor


def _finite(values: np.ndarray, model: str) -> np.ndarray:
    if not np.isfinite(values).all():
        raise ModelError(f"{model}: {int((~np.isfinite(values)).sum())} prediction(s) are NaN or infinite")
    return values


def _write_meta(folder: Path, model: ForecastModel, extra: dict[str, Any]) -> None:
    meta = {
        "model": model.name,
        "params": model.params,
        "feature_columns": model.feature_columns,
        "seed": model.seed,
        **extra,
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2))


def _read_meta(folder: Path, name: str) -> dict[str, Any]:
    path = folder / "model.json"
    if not path.is_file():
        raise ModelError(f"{name}: no model.json in {folder}; is this a saved {name} model?")
    meta = json.loads(path.read_text())
    if meta.get("model") != name:
        raise ModelError(f"{name}: {folder} holds a {meta.get('model')!r} model")
    return meta


class XGBoostModel(ForecastModel):
    name = "xgboost"
    pruning_warmup_steps = 250

    @staticmethod
    def default_params() -> dict[str, Any]:
        return {
            "objective": "reg:absoluteerror",
            "learning_rate": 0.05,
            "max_depth": 6,
            "min_child_weight": 5.0,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
            "reg_alpha": 0.001,
        }

    @staticmethod
    def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "objective": trial.suggest_categorical(
                "objective", ["reg:absoluteerror", "reg:pseudohubererror", "reg:squarederror"]
            ),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 50.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
            "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
        }

    transform = TargetTransform()

    def _matrix(self, frame: pd.DataFrame, label: bool, weight: np.ndarray | None = None) -> xgb.DMatrix:
        return xgb.DMatrix(
            frame[self.feature_columns].to_numpy(dtype=np.float32),
            label=self.transform.forward(relative_target(frame)) if label else None,
            weight=weight,
            feature_names=self.feature_columns,
        )

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame, report: ProgressReport | None = None) -> FitResult:
        self._check_frame(train, "training")
        self._check_frame(validation, "validation")
        for frame in (train, validation):  # a NaN level would become a NaN label
            _anchor(frame, self.name)
        self.transform = TargetTransform.fitted(self.params.get("target_transform", "none"), relative_target(train))
        params = {
            **_library_params(self.params),
            "eval_metric": "mae",
            "tree_method": "hist",
            "seed": self.seed,
            "nthread": self.threads,
            "verbosity": 0,
        }
        if self.device == "cuda":
            params["device"] = "cuda"
        dvalid = self._matrix(validation, True)
        metric = "mae"
        custom_metric = None
        if self.transform.kind != "none":  # stop and report on the MAE in price units, not the learnt scale
            metric, params["disable_default_eval_metric"] = "price_mae", 1
            del params["eval_metric"]
            valid_relative, transform = relative_target(validation), self.transform

            def custom_metric(predt: np.ndarray, dmatrix: xgb.DMatrix) -> tuple[str, float]:
                return "price_mae", float(np.mean(np.abs(transform.inverse(predt) - valid_relative)))

        history: list[float] = []
        rounds = [0]  # rounds run; save_best leaves only the kept ones in the booster

        class Reporter(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log) -> bool:
                rounds[0] = epoch + 1
                value = evals_log["validation"][metric][-1]
                if (epoch + 1) % REPORT_EVERY == 0:
                    history.append(float(value))
                    if report is not None:
                        report(epoch + 1, float(value))
                return False

        weight = recency_weights(train, self.params.get("recency_half_life_days", 0))
        self.booster = xgb.train(
            params,
            self._matrix(train, True, weight),
            num_boost_round=self.max_steps,
            evals=[(dvalid, "validation")],
            custom_metric=custom_metric,
            callbacks=[
                Reporter(),
                xgb.callback.EarlyStopping(rounds=EARLY_STOPPING_ROUNDS, metric_name=metric, save_best=True),
            ],
            verbose_eval=False,
        )
        best = int(self.booster.best_iteration) + 1
        mae = float(np.mean(np.abs(self.predict(validation) - validation["price"].to_numpy(dtype=float))))
        return FitResult(best_step=best, validation_mae=mae, steps_run=rounds[0], history=history)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_frame(frame, "prediction")
        anchor = _anchor(frame, self.name)
        learnt = self.booster.predict(self._matrix(frame, False))
        return _finite(self.transform.inverse(np.asarray(learnt, dtype=float)) + anchor, self.name)

    def feature_importance(self) -> pd.Series:
        # a tree booster's gain is one float per feature (lists come only from gblinear's "weight")
        gains = cast("dict[str, float]", self.booster.get_score(importance_type="gain"))
        return pd.Series({c: float(gains.get(c, 0.0)) for c in self.feature_columns}).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / "model.xgb.json")
        _write_meta(
            folder, self, {"library": f"xgboost {xgb.__version__}", "target_transform": self.transform.as_dict()}
        )

    @classmethod
    def load(cls, folder: Path) -> XGBoostModel:
        meta = _read_meta(folder, cls.name)
        model = cls(meta["params"], meta["feature_columns"], seed=meta["seed"])
        model.transform = TargetTransform(**meta.get("target_transform", {}))
        model.booster = xgb.Booster()
        model.booster.load_model(folder / "model.xgb.json")
        return model


class LightGBMModel(ForecastModel):
    name = "lightgbm"
    pruning_warmup_steps = 250

    @staticmethod
    def default_params() -> dict[str, Any]:
        return {
            "objective": "l1",
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "lambda_l2": 0.001,
        }

    @staticmethod
    def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "objective": trial.suggest_categorical("objective", ["l1", "huber", "regression"]),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        }

    transform = TargetTransform()

    def _dataset(
        self, frame: pd.DataFrame, reference: lgb.Dataset | None = None, weight: np.ndarray | None = None
    ) -> lgb.Dataset:
        return lgb.Dataset(
            frame[self.feature_columns].to_numpy(dtype=np.float32),
            label=self.transform.forward(relative_target(frame)),
            weight=weight,
            feature_name=self.feature_columns,
            reference=reference,
            free_raw_data=False,
        )

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame, report: ProgressReport | None = None) -> FitResult:
        self._check_frame(train, "training")
        self._check_frame(validation, "validation")
        for frame in (train, validation):  # a NaN level would become a NaN label
            _anchor(frame, self.name)
        self.transform = TargetTransform.fitted(self.params.get("target_transform", "none"), relative_target(train))
        params = {
            **_library_params(self.params),
            "metric": "l1",
            "bagging_freq": 1,
            "seed": self.seed,
            "deterministic": True,
            "verbose": -1,
            "num_threads": self.threads,
            "force_col_wise": True,
        }
        if self.device == "cuda":
            params["device_type"] = "cuda"
        dtrain = self._dataset(train, weight=recency_weights(train, self.params.get("recency_half_life_days", 0)))
        dvalid = self._dataset(validation, dtrain)
        feval = None
        if self.transform.kind != "none":  # stop and report on the MAE in price units, not the learnt scale
            params["metric"] = "None"
            valid_relative, transform = relative_target(validation), self.transform

            def feval(preds: np.ndarray, data: lgb.Dataset) -> tuple[str, float, bool]:
                return "price_mae", float(np.mean(np.abs(transform.inverse(preds) - valid_relative))), False

        history: list[float] = []
        rounds = [0]  # rounds run; the returned booster keeps only the best ones

        def reporter(env: lgb.callback.CallbackEnv) -> None:
            step = env.iteration + 1
            rounds[0] = step
            if step % REPORT_EVERY == 0:
                if env.evaluation_result_list is None:  # set every round when valid_sets is given
                    raise RuntimeError("LightGBM reported no validation result to the reporter callback")
                value = float(env.evaluation_result_list[0][2])
                history.append(value)
                if report is not None:
                    report(step, value)

        self.booster = lgb.train(
            params,
            dtrain,
            num_boost_round=self.max_steps,
            valid_sets=[dvalid],
            valid_names=["validation"],
            feval=feval,
            callbacks=[reporter, lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
        )
        mae = float(np.mean(np.abs(self.predict(validation) - validation["price"].to_numpy(dtype=float))))
        return FitResult(
            best_step=int(self.booster.best_iteration), validation_mae=mae, steps_run=rounds[0], history=history
        )

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_frame(frame, "prediction")
        anchor = _anchor(frame, self.name)
        raw = self.booster.predict(
            frame[self.feature_columns].to_numpy(dtype=np.float32), num_iteration=self.booster.best_iteration or None
        )
        return _finite(self.transform.inverse(np.asarray(raw, dtype=float)) + anchor, self.name)

    def feature_importance(self) -> pd.Series:
        gains = self.booster.feature_importance(importance_type="gain")
        return pd.Series(gains.astype(float), index=self.booster.feature_name()).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "model.lgb.txt"), num_iteration=self.booster.best_iteration or None)
        _write_meta(
            folder, self, {"library": f"lightgbm {lgb.__version__}", "target_transform": self.transform.as_dict()}
        )

    @classmethod
    def load(cls, folder: Path) -> LightGBMModel:
        meta = _read_meta(folder, cls.name)
        model = cls(meta["params"], meta["feature_columns"], seed=meta["seed"])
        model.transform = TargetTransform(**meta.get("target_transform", {}))
        model.booster = lgb.Booster(model_file=str(folder / "model.lgb.txt"))
        return model
