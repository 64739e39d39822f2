"""XGBoost and LightGBM forecasters: gradient-boosted trees over the feature rows.

Both learn the price relative to the origin's 24-hour mean (see ``base``), stop early on the
validation window's MAE and report it to the tuner every ``REPORT_EVERY`` rounds so Optuna can
prune a hopeless trial. They save in their libraries' own text formats (XGBoost JSON, LightGBM
model text) plus a small JSON of what the product needs around them.
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

    def _matrix(self, frame: pd.DataFrame, label: bool) -> xgb.DMatrix:
        return xgb.DMatrix(
            frame[self.feature_columns].to_numpy(dtype=np.float32),
            label=relative_target(frame) if label else None,
            feature_names=self.feature_columns,
        )

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame, report: ProgressReport | None = None) -> FitResult:
        self._check_frame(train, "training")
        self._check_frame(validation, "validation")
        for frame in (train, validation):  # a NaN level would become a NaN label
            _anchor(frame, self.name)
        params = {
            **self.params,
            "eval_metric": "mae",
            "tree_method": "hist",
            "seed": self.seed,
            "nthread": self.threads,
            "verbosity": 0,
        }
        if self.device == "cuda":
            params["device"] = "cuda"
        dvalid = self._matrix(validation, True)
        history: list[float] = []
        rounds = [0]  # rounds run; save_best leaves only the kept ones in the booster

        class Reporter(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log) -> bool:
                rounds[0] = epoch + 1
                value = evals_log["validation"]["mae"][-1]
                if (epoch + 1) % REPORT_EVERY == 0:
                    history.append(float(value))
                    if report is not None:
                        report(epoch + 1, float(value))
                return False

        self.booster = xgb.train(
            params,
            self._matrix(train, True),
            num_boost_round=self.max_steps,
            evals=[(dvalid, "validation")],
            callbacks=[Reporter(), xgb.callback.EarlyStopping(rounds=EARLY_STOPPING_ROUNDS, save_best=True)],
            verbose_eval=False,
        )
        best = int(self.booster.best_iteration) + 1
        mae = float(np.mean(np.abs(self.predict(validation) - validation["price"].to_numpy(dtype=float))))
        return FitResult(best_step=best, validation_mae=mae, steps_run=rounds[0], history=history)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_frame(frame, "prediction")
        anchor = _anchor(frame, self.name)
        return _finite(self.booster.predict(self._matrix(frame, False)) + anchor, self.name)

    def feature_importance(self) -> pd.Series:
        # a tree booster's gain is one float per feature (lists come only from gblinear's "weight")
        gains = cast("dict[str, float]", self.booster.get_score(importance_type="gain"))
        return pd.Series({c: float(gains.get(c, 0.0)) for c in self.feature_columns}).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / "model.xgb.json")
        _write_meta(folder, self, {"library": f"xgboost {xgb.__version__}"})

    @classmethod
    def load(cls, folder: Path) -> XGBoostModel:
        meta = _read_meta(folder, cls.name)
        model = cls(meta["params"], meta["feature_columns"], seed=meta["seed"])
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

    def _dataset(self, frame: pd.DataFrame, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        return lgb.Dataset(
            frame[self.feature_columns].to_numpy(dtype=np.float32),
            label=relative_target(frame),
            feature_name=self.feature_columns,
            reference=reference,
            free_raw_data=False,
        )

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame, report: ProgressReport | None = None) -> FitResult:
        self._check_frame(train, "training")
        self._check_frame(validation, "validation")
        for frame in (train, validation):  # a NaN level would become a NaN label
            _anchor(frame, self.name)
        params = {
            **self.params,
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
        dtrain = self._dataset(train)
        dvalid = self._dataset(validation, dtrain)
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
        return _finite(np.asarray(raw, dtype=float) + anchor, self.name)

    def feature_importance(self) -> pd.Series:
        gains = self.booster.feature_importance(importance_type="gain")
        return pd.Series(gains.astype(float), index=self.booster.feature_name()).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "model.lgb.txt"), num_iteration=self.booster.best_iteration or None)
        _write_meta(folder, self, {"library": f"lightgbm {lgb.__version__}"})

    @classmethod
    def load(cls, folder: Path) -> LightGBMModel:
        meta = _read_meta(folder, cls.name)
        model = cls(meta["params"], meta["feature_columns"], seed=meta["seed"])
        model.booster = lgb.Booster(model_file=str(folder / "model.lgb.txt"))
        return model
