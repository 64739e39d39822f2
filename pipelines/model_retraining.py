"""One region's retraining as steps: check, extract, engineer, train each member, evaluate, deploy.

Each step is a method named as the ``model_retraining`` DAG's task that runs it
(``check_data_freshness``, then per region ``check_training_data_quality``,
``extract_training_data``, ``engineer_features``, ``train_cnn_lstm``/``train_xgboost``/
``train_lightgbm`` (Optuna-tuned) and ``train_lear`` (the linear member, no tuning), ``evaluate_ensemble``, ``deploy_model``); ``eopt train`` (and the MLproject
``train`` entry point) runs the same methods in a row through ``retrain_region``. Steps hand data to each other through files in the region's
workspace (``$EOPT_HOME/retraining/<as-of>/<region>/``), never through XCom:

    data/            prices.parquet, exogenous.parquet, data.json (window + sha256)
    features.parquet the feature frame of all splits (column ``split``)
    manifest.json    as-of, config, splits, MLflow experiment and parent run id
    members/<model>/ the fitted member, its validation/test predictions, member.json
    ensemble/        the deployable ensemble (members + weights + intervals), evaluation.json

Nothing is registered before ``register`` runs, and ``register`` runs only after ``evaluate``
checked that every forecast is finite and that the saved ensemble reproduces its own numbers.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import mlflow
import numpy as np
import pandas as pd
from mlflow.models.model import ModelInfo

from core.freshness import Freshness
from core.metrics import MetricsError, evaluate, interval_coverage
from core.quantiles import QUANTILE_COLUMNS
from core.settings import Settings
from core.timestamps import utc
from pipelines.rendering import render
from quality.checks import Window, served_member_forecasts
from registry.models import Candidate, register_candidate, registered_model_name
from registry.promotion import gate_candidate
from serving.model_request import ModelRequest, build_request
from serving.pyfunc import log_ensemble
from storage.prices import PriceStore
from storage.promotions import PromotionStore
from training import plots, tracking
from training.config import TrainingConfig
from training.dataset import (
    TrainingData,
    TrainingDataError,
    build_training_frame,
    check_training_data,
    extract_training_data,
)
from training.ensemble import EnsembleForecaster, calibrate_intervals, calibrate_on_served, weigh_members
from training.features import NAIVE_COLUMN, TARGET_COLUMN, feature_columns
from training.lear import LearHistoryTooShort, fit_lear
from training.models import model_class
from training.tuning import trials_frame, tune

log = logging.getLogger(__name__)
T = TypeVar("T")

PREDICTION_COLUMNS = ["origin", "target_ts", "horizon", "split", TARGET_COLUMN, "yhat"]


class RetrainingError(RuntimeError):
    """A retraining step cannot go on; the message names the region and the step's problem."""


def check_data_freshness(
    store: PriceStore, regions: tuple[str, ...] | list[str], as_of: pd.Timestamp, max_staleness_h: int
) -> list[Freshness]:
    """Every region's newest price must be at most ``max_staleness_h`` older than ``as_of``."""
    as_of = pd.Timestamp(as_of)
    statuses = []
    for region in regions:
        latest = store.latest_ts(region)
        # prices published ahead (day-ahead) are newer than the run: only hours before it count
        if latest is not None and latest >= as_of:
            latest = min(latest, as_of)
        statuses.append(Freshness(region, latest, as_of, pd.Timedelta(hours=max_staleness_h)))
    problems = [p for p in (s.problem() for s in statuses) if p is not None]  # None exactly when fresh
    if problems:
        raise TrainingDataError("data too old to retrain on: " + " | ".join(problems))
    return statuses


def _step(method: Callable[..., T]) -> Callable[..., T]:
    """A retraining step: when it raises, the region's MLflow parent run is marked failed, naming the step."""

    @functools.wraps(method)
    def run(self: Retraining, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            self.fail(f"{method.__name__}: {type(exc).__name__}: {exc}")
            raise

    return run


@dataclass
class Retraining:
    """The state of one region's retraining, shared by its steps through the workspace folder."""

    settings: Settings
    config: TrainingConfig
    region: str
    as_of: pd.Timestamp
    folder: Path

    @classmethod
    def open(cls, settings: Settings, region: str, as_of: pd.Timestamp, budget: str | None = None) -> Retraining:
        as_of = utc(as_of).floor("h")
        folder = settings.retraining_dir / f"{as_of:%Y%m%dT%H%MZ}" / region
        return cls(settings, TrainingConfig.from_settings(settings, budget), region, as_of, folder)

    # -- workspace ------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise RetrainingError(
                f"{self.region}: no retraining manifest in {self.folder}; run engineer_features first"
            )
        return json.loads(self.manifest_path.read_text())

    def update_manifest(self, **values: Any) -> dict[str, Any]:
        current = json.loads(self.manifest_path.read_text()) if self.manifest_path.is_file() else {}
        current.update(values)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.manifest_path.write_text(json.dumps(current, indent=2, default=str))
        return current

    def data(self) -> TrainingData:
        return TrainingData.load(self.folder / "data", self.region)

    def features(self) -> pd.DataFrame:
        path = self.folder / "features.parquet"
        if not path.is_file():
            raise RetrainingError(f"{self.region}: no feature frame in {self.folder}; run engineer_features first")
        return pd.read_parquet(path)

    def member_folder(self, model: str) -> Path:
        return self.folder / "members" / model

    def client(self):
        return tracking.configure(self.settings)

    # -- steps ----------------------------------------------------------------------------
    @_step
    def check_training_data_quality(self, store: PriceStore) -> list[str]:
        data = extract_training_data(store, self.region, self.as_of, self.config)
        return check_training_data(data, self.config)

    @_step
    def extract_training_data(self, store: PriceStore) -> dict[str, object]:
        data = extract_training_data(store, self.region, self.as_of, self.config)
        check_training_data(data, self.config)
        data.save(self.folder / "data")
        log.info(
            "%s: extracted %d hours %s .. %s (sha256 %s)",
            self.region,
            len(data.prices),
            data.start,
            data.end,
            data.checksum[:12],
        )
        return data.describe()

    @_step
    def engineer_features(self) -> dict[str, object]:
        data = self.data()
        frame = build_training_frame(data, self.config)
        frame.to_parquet(self.folder / "features.parquet")
        splits = {
            name: {
                "rows": int((frame["split"] == name).sum()),
                "first_target": str(frame.loc[frame["split"] == name, "target_ts"].min()),
                "last_target": str(frame.loc[frame["split"] == name, "target_ts"].max()),
            }
            for name in ("train", "validation", "test")
        }
        client = self.client()
        experiment = tracking.experiment_id(client, self.settings)
        previous = self.manifest_path.is_file() and self.manifest().get("parent_run_id")
        if previous:
            tracking.finish(client, previous, ok=False)  # a rerun of this step supersedes its run
        parent = tracking.start_run(
            client,
            experiment,
            f"retrain {self.region} {self.as_of:%Y-%m-%d %H:%M}",
            parent=self.settings.training.mlflow_run_id,  # nested under `mlflow run`'s run when launched by it
            tags={
                "eopt.region": self.region,
                "eopt.kind": "retraining",
                "eopt.as_of": str(self.as_of),
                "eopt.data_sha256": data.checksum,
                "eopt.budget": self.config.budget_name,
            },
        )
        tracking.log_params(
            client,
            parent,
            {
                "region": self.region,
                "as_of": str(self.as_of),
                **self.config.describe(),
                "data_start": str(data.start),
                "data_end": str(data.end),
                "data_hours": len(data.prices),
                "data_sha256": data.checksum,
                "feature_count": len(feature_columns(self.region)),
                **{f"{name}_rows": s["rows"] for name, s in splits.items()},
                **{f"{name}_first_target": s["first_target"] for name, s in splits.items()},
                **{f"{name}_last_target": s["last_target"] for name, s in splits.items()},
            },
        )
        tracking.log_artifacts(client, parent, [self.folder / "data" / "data.json"], "data")
        self.update_manifest(
            region=self.region,
            as_of=str(self.as_of),
            config=self.config.describe(),
            data=data.describe(),
            splits=splits,
            experiment_id=experiment,
            parent_run_id=parent,
            members={},
        )
        log.info(
            "%s: %d feature rows (train %d, validation %d, test %d); MLflow parent run %s",
            self.region,
            len(frame),
            splits["train"]["rows"],
            splits["validation"]["rows"],
            splits["test"]["rows"],
            parent,
        )
        return {"rows": len(frame), "splits": splits, "parent_run_id": parent}

    def train_cnn_lstm(self) -> dict[str, object]:
        return self.train_member("cnn_lstm")

    def train_xgboost(self) -> dict[str, object]:
        return self.train_member("xgboost")

    def train_lightgbm(self) -> dict[str, object]:
        return self.train_member("lightgbm")

    @_step
    def train_lear(self) -> dict[str, object]:
        """Fit the LEAR member (``training.lear.fit_lear``: no Optuna, its criterion picks each hour's penalty),
        logged as a nested MLflow run like the tuned members: windows, penalties per hour, seconds, metrics."""
        model = "lear"
        manifest = self.manifest()
        frame = self.features()
        validation, test = (frame[frame["split"] == s].reset_index(drop=True) for s in ("validation", "test"))
        data = self.data()
        end = pd.Timestamp(test["origin"].min()) if len(test) else data.end
        client = self.client()
        run = self._start_member_run(client, manifest, model)
        budget = self.config.budget(model)
        try:
            try:
                lear = fit_lear(
                    data.prices,
                    data.exogenous,
                    self.region,
                    validation,
                    end,
                    budget.calibration_windows,
                    recalibrate=self.config.lear_recalibrate_daily,
                )
            except LearHistoryTooShort as exc:
                return self._skip_member(model, run, str(exc))
            folder = self.member_folder(model)
            lear.member.save(folder / "model")
            predictions = pd.concat(
                [
                    validation[PREDICTION_COLUMNS[:-1]].assign(yhat=lear.validation_forecast),
                    test[PREDICTION_COLUMNS[:-1]].assign(
                        yhat=lear.member.predict_each_origin(test, data.prices, data.exogenous)
                    ),
                ],
                ignore_index=True,
            )
            y_val = validation[TARGET_COLUMN].to_numpy()
            validation_mae = float(np.mean(np.abs(lear.validation_forecast - y_val)))
            try:
                test_metrics = evaluate(
                    test[TARGET_COLUMN], predictions.loc[predictions["split"] == "test", "yhat"], test[NAIVE_COLUMN]
                )
            except MetricsError as exc:
                raise RetrainingError(
                    f"{self.region}/{model}: test predictions unusable: {exc}; nothing is registered"
                ) from None
            predictions.to_parquet(folder / "predictions.parquet")
            fitted = lear.member.model.describe()
            summary = {
                "model": model,
                "run_id": run,
                "best_params": {"windows": fitted["windows"], "criterion": fitted["criterion"]},
                "fit": fitted,
                "validation_fit": lear.validation_fit,
                "validation_mae": validation_mae,
                "test": test_metrics,
                "seconds": round(lear.seconds, 2),
                "device": "cpu",
            }
            (folder / "member.json").write_text(json.dumps(summary, indent=2, default=str))
            alphas = fitted["alphas"]
            tracking.log_params(
                client,
                run,
                {
                    "windows": ",".join(map(str, fitted["windows"])),
                    "calibration_windows_budget": budget.calibration_windows or "all",
                    "criterion": fitted["criterion"],
                    "fit_end": str(end),
                    "validation_fit_end": str(validation["origin"].min()),
                    "last_training_target": fitted["last_training_target"],
                },
            )
            tracking.log_metrics(
                client,
                run,
                {
                    **{f"test_{k}": v for k, v in test_metrics.items()},
                    "validation_mae": validation_mae,
                    "fit_seconds": round(lear.seconds, 2),
                    "deployed_fit_seconds": fitted["fit_seconds"],
                    **{f"features_kept_w{w}": n for w, n in fitted["features_kept"].items()},
                    **{f"alpha_w{w}_h{h:02d}": a for w, hours in alphas.items() for h, a in enumerate(hours)},
                },
            )
            tracking.log_artifacts(client, run, [folder / "member.json"])
            tracking.finish(client, run)
        except BaseException:
            tracking.finish(client, run, ok=False)
            raise
        log.info(
            "%s/lear: test MAE %.3f (rMAE %.3f), validation MAE %.3f, windows %s, %.1f s",
            self.region,
            test_metrics["mae"],
            test_metrics["rmae"],
            validation_mae,
            fitted["windows"],
            lear.seconds,
        )
        return summary

    def _start_member_run(self, client, manifest: dict, model: str) -> str:
        """The member's nested MLflow run under the retraining's parent run."""
        return tracking.start_run(
            client,
            manifest["experiment_id"],
            model,
            parent=manifest["parent_run_id"],
            tags={"eopt.region": self.region, "eopt.model": model, "eopt.kind": "member"},
        )

    def _skip_member(self, model: str, run: str, reason: str) -> dict[str, object]:
        """Record a member that this region's history cannot support yet (its nested run says why, tagged
        ``eopt.skipped``); ``evaluate_ensemble`` leaves it out and the ensemble is made of the others."""
        client = self.client()
        folder = self.member_folder(model)
        folder.mkdir(parents=True, exist_ok=True)
        summary: dict[str, object] = {"model": model, "run_id": run, "skipped": reason}
        (folder / "member.json").write_text(json.dumps(summary, indent=2))
        client.set_tag(run, "eopt.skipped", reason[:5000])
        tracking.log_artifacts(client, run, [folder / "member.json"])
        tracking.finish(client, run)
        log.warning("%s/%s: skipped, %s", self.region, model, reason)
        return summary

    @_step
    def train_member(self, model: str) -> dict[str, object]:
        """Tune (Optuna) and fit one member on the engineered features, logged as a nested MLflow run."""
        if model == "lear":
            return self.train_lear()
        manifest = self.manifest()
        frame = self.features()
        columns = feature_columns(self.region)
        train, validation, test = (frame[frame["split"] == s] for s in ("train", "validation", "test"))
        client = self.client()
        run = self._start_member_run(client, manifest, model)
        budget = self.config.budget(model)
        try:
            started = time.perf_counter()
            result = tune(
                model,
                self.region,
                train,
                validation,
                columns,
                budget=budget,
                storage_url=self.config.optuna_storage,
                window_end=pd.Timestamp(manifest["data"]["end"]),
                seed=self.config.seed,
                device=self.config.device,
                threads=self.config.threads,
                on_trial=tracking.trial_logger(client, manifest["experiment_id"], run, model, self.region),
            )
            cls = model_class(model)
            fitted = cls(
                self.config.final_params(model, result.best_params),
                columns,
                seed=self.config.seed,
                max_steps=budget.max_epochs or budget.max_rounds,
                device=self.config.device,
                threads=self.config.threads,
            )
            fit = fitted.fit(train, validation)
            seconds = time.perf_counter() - started
            folder = self.member_folder(model)
            fitted.save(folder / "model")
            predictions = pd.concat(
                [part[PREDICTION_COLUMNS[:-1]].assign(yhat=fitted.predict(part)) for part in (validation, test)],
                ignore_index=True,
            )
            try:
                test_metrics = evaluate(
                    test[TARGET_COLUMN], predictions.loc[predictions["split"] == "test", "yhat"], test[NAIVE_COLUMN]
                )
            except MetricsError as exc:
                raise RetrainingError(
                    f"{self.region}/{model}: test predictions unusable: {exc}; nothing is registered"
                ) from None
            predictions.to_parquet(folder / "predictions.parquet")
            summary = {
                "model": model,
                "run_id": run,
                "best_params": result.best_params,
                "tuning": result.describe(),
                "best_step": fit.best_step,
                "validation_mae": fit.validation_mae,
                "test": test_metrics,
                "seconds": round(seconds, 2),
                "device": getattr(fitted, "resolved_device", self.config.device),
            }
            (folder / "member.json").write_text(json.dumps(summary, indent=2, default=str))
            self._log_member(client, run, model, fitted, fit, result, summary, budget)
            tracking.finish(client, run)
        except BaseException:
            tracking.finish(client, run, ok=False)
            raise
        log.info(
            "%s/%s: test MAE %.3f (rMAE %.3f), validation MAE %.3f, %d trials (%d pruned) in %.0f s",
            self.region,
            model,
            test_metrics["mae"],
            test_metrics["rmae"],
            fit.validation_mae,
            result.complete + result.pruned,
            result.pruned,
            seconds,
        )
        return summary

    def _log_member(self, client, run: str, model: str, fitted, fit, result, summary: dict, budget) -> None:
        folder = self.member_folder(model)
        tracking.log_params(
            client,
            run,
            {
                **result.best_params,
                "study_name": result.study_name,
                "trials_budget": budget.trials,
                "timeout_s": budget.timeout_s,
                "best_step": fit.best_step,
            },
        )
        tracking.log_metrics(
            client,
            run,
            {
                **{f"test_{k}": v for k, v in summary["test"].items()},
                "validation_mae": fit.validation_mae,
                "tuning_best_validation_mae": result.best_value,
                "trials_complete": result.complete,
                "trials_pruned": result.pruned,
                "trials_failed": result.failed,
                "fit_seconds": summary["seconds"],
            },
        )
        tracking.log_history(
            client, run, "validation_mae_curve", fit.history, step_every=1 if model == "cnn_lstm" else 25
        )
        artifacts = [folder / "member.json"]
        importance = fitted.feature_importance()
        if importance is not None:
            importance.rename("gain").to_csv(folder / "feature_importance.csv", index_label="feature")
            artifacts += [
                folder / "feature_importance.csv",
                plots.feature_importance(
                    importance, folder / "feature_importance.png", f"{self.region} {model}: feature importance"
                ),
            ]
        trials = trials_frame(self.config.optuna_storage, result.study_name)
        trials.to_csv(folder / "optuna_trials.csv", index=False)
        artifacts += [
            folder / "optuna_trials.csv",
            plots.tuning_history(trials, folder / "optuna_history.png", f"{self.region} {model}: Optuna study"),
        ]
        tracking.log_artifacts(client, run, artifacts)

    @_step
    def evaluate_ensemble(self, store: PriceStore | None = None) -> dict[str, object]:
        """The members weighed and calibrated, scored on the test window, saved and logged as the candidate.

        The weights (``EOPT_ENSEMBLE_WEIGHTS``: picked on the validation window, or LEAR and the CNN-LSTM
        half and half) and intervals come from the validation window, or, with ``served_weight_days``
        (``EOPT_SERVED_WEIGHT_DAYS``) and ``store``, from the day-ahead forecasts the Production models'
        members served in that many days before the test window
        (``training.ensemble.calibrate_on_served``) once 28 such days are stored with their prices.
        """
        manifest = self.manifest()
        frame = self.features()
        columns = feature_columns(self.region)
        validation, test = (frame[frame["split"] == s].reset_index(drop=True) for s in ("validation", "test"))
        members, val_preds, test_preds, summaries = {}, {}, {}, {}
        for model in self.config.models:
            folder = self.member_folder(model)
            if not (folder / "member.json").is_file():
                raise RetrainingError(
                    f"{self.region}: member {model} was not trained (no {folder / 'member.json'}); "
                    f"rerun train_{model} for {self.region}"
                )
            summary = json.loads((folder / "member.json").read_text())
            if "skipped" in summary:
                continue
            members[model] = model_class(model).load(folder / "model")
            predictions = pd.read_parquet(folder / "predictions.parquet")
            val_preds[model] = predictions.loc[predictions["split"] == "validation", "yhat"].to_numpy()
            test_preds[model] = predictions.loc[predictions["split"] == "test", "yhat"].to_numpy()
            summaries[model] = summary
        y_val = validation[TARGET_COLUMN].to_numpy()
        y_test = test[TARGET_COLUMN].to_numpy()
        decision = weigh_members(val_preds, y_val, validation["origin"].to_numpy(), self.config.ensemble_weights)
        val_yhat = sum(w * val_preds[m] for m, w in decision.weights.items())
        intervals = calibrate_intervals(
            y_val, val_yhat, validation["horizon"].to_numpy(), self.config.interval_coverage
        )
        data = self.data()  # each test day as the registered model forecasts it (LEAR recalibrated before it)
        weighed_on: dict[str, object] = {"source": "validation"}
        if self.config.served_weight_days and store is not None:
            test_start = pd.Timestamp(test["origin"].min())
            window = Window(test_start - pd.Timedelta(days=self.config.served_weight_days), test_start)
            served = served_member_forecasts(store.engine, self.region, window, data.prices)
            calibration = calibrate_on_served(served, list(val_preds), self.config.interval_coverage)
            weighed_on["served_hours_found"] = len(served)  # too few to weigh on when calibration is None
            if calibration is not None:
                weighed_on = {
                    "source": "served",
                    "served_days": calibration.days,
                    "served_hours": calibration.rows,
                    "validation_weights": decision.weights,
                }
                decision, intervals = calibration.decision, calibration.intervals
        forecaster = EnsembleForecaster(self.region, members, decision, intervals, columns)
        forecast = forecaster.predict_each_origin(test, data.prices, data.exogenous)
        expected = sum(w * test_preds[m] for m, w in decision.weights.items())
        if not np.allclose(forecast["yhat"].to_numpy(), expected, rtol=1e-5, atol=1e-4):
            raise RetrainingError(
                f"{self.region}: the saved members do not reproduce their test forecasts; nothing is registered"
            )
        naive = test[NAIVE_COLUMN].to_numpy()
        try:
            metrics = {
                "ensemble": evaluate(y_test, forecast["yhat"], naive),
                **{m: evaluate(y_test, p, naive) for m, p in test_preds.items()},
                "seasonal_naive": evaluate(y_test, naive, naive),
            }
        except MetricsError as exc:
            raise RetrainingError(f"{self.region}: forecasts unusable: {exc}; nothing is registered") from None
        coverage = interval_coverage(y_test, forecast["lower"], forecast["upper"])

        ensemble_folder = self.folder / "ensemble"
        forecaster.save(ensemble_folder / "model")
        report = test[["origin", "target_ts", "horizon", TARGET_COLUMN]].assign(
            yhat=forecast["yhat"].to_numpy(),
            lower=forecast["lower"].to_numpy(),
            upper=forecast["upper"].to_numpy(),
            naive=naive,
            **{c: forecast[c].to_numpy() for c in QUANTILE_COLUMNS},  # the picture's fan
        )
        report.to_parquet(ensemble_folder / tracking.TEST_FORECASTS_ARTIFACT)
        figure = plots.forecast_vs_actual(
            report,
            ensemble_folder / "forecast_vs_actual.png",
            f"{self.region}: test window, last 14 days (MAE {metrics['ensemble']['mae']:.2f}, rMAE {metrics['ensemble']['rmae']:.3f})",
        )
        evaluation = {
            "region": self.region,
            "as_of": str(self.as_of),
            "decision": decision.__dict__,
            "weighed_on": weighed_on,
            "intervals": {"coverage_nominal": intervals.coverage, "coverage_test": coverage},
            "metrics_test": metrics,
            "members": {m: {"run_id": s["run_id"], "best_params": s["best_params"]} for m, s in summaries.items()},
        }
        card = self._model_card(manifest, evaluation)
        (ensemble_folder / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=str))
        (ensemble_folder / "MODEL_CARD.md").write_text(card)

        client = self.client()
        parent = manifest["parent_run_id"]
        flat = {f"{who}_test_{k}": v for who, values in metrics.items() for k, v in values.items()}
        flat.update({f"test_{k}": v for k, v in metrics["ensemble"].items()})
        flat.update({f"{m}_validation_mae": v for m, v in decision.validation_mae.items() if m != "ensemble"})
        flat.update(
            {
                "ensemble_validation_mae": decision.validation_mae["ensemble"],
                "interval_coverage_test": coverage,
                **{f"weight_{m}": w for m, w in decision.weights.items()},
            }
        )
        flat.update(
            {f"weight_rule_{k}": v for k, v in decision.comparison.items() if k in ("simplex_mae", "stack_mae")}
        )
        tracking.log_metrics(client, parent, flat)
        tracking.log_params(
            client,
            parent,
            {
                "ensemble_kind": decision.kind,
                "ensemble_reason": decision.reason,
                "ensemble_weight_rule": decision.rule,
                "ensemble_weighed_on": weighed_on["source"],
            },
        )
        tracking.log_artifacts(
            client,
            parent,
            [
                figure,
                ensemble_folder / "evaluation.json",
                ensemble_folder / "MODEL_CARD.md",
                ensemble_folder / tracking.TEST_FORECASTS_ARTIFACT,
            ],
        )
        with mlflow.start_run(run_id=parent):
            data = self.data()  # the input example: the raw request of the first test origin
            example = build_request(data.prices, data.exogenous, self.region, test["origin"].iloc[0])
            info = _log_pyfunc(forecaster, ensemble_folder / "model", example)
        evaluation["model_uri"] = info.model_uri
        (ensemble_folder / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=str))
        self.update_manifest(model_uri=info.model_uri, evaluated=True)
        m = metrics["ensemble"]
        log.info(
            "%s: %s, test MAE %.3f rMAE %.3f sMAPE %.2f%% (seasonal naive MAE %.3f), interval coverage %.2f",
            self.region,
            decision.reason,
            m["mae"],
            m["rmae"],
            m["smape"],
            metrics["seasonal_naive"]["mae"],
            coverage,
        )
        return {
            "model_uri": info.model_uri,
            "kind": decision.kind,
            "weights": decision.weights,
            "test_mae": m["mae"],
            "test_rmae": m["rmae"],
            "interval_coverage_test": coverage,
        }

    def register(self) -> Candidate:
        manifest = self.manifest()
        if not manifest.get("evaluated"):
            raise RetrainingError(f"{self.region}: the candidate was not evaluated; run evaluate_ensemble first")
        if manifest.get("registered", {}).get("model_uri") == manifest["model_uri"]:
            done = manifest["registered"]  # a retried task: this candidate is registered already
            log.info("%s: %s version %s already registered for this run", self.region, done["name"], done["version"])
            return Candidate(done["name"], done["version"], manifest["parent_run_id"], done["stage"])
        evaluation = json.loads((self.folder / "ensemble" / "evaluation.json").read_text())
        client = self.client()
        m = evaluation["metrics_test"]["ensemble"]
        tags = {
            "eopt.region": self.region,
            "eopt.as_of": str(self.as_of),
            "eopt.data_sha256": manifest["data"]["sha256"],
            "eopt.ensemble_kind": evaluation["decision"]["kind"],
            **{f"eopt.test_{k}": f"{v:.6g}" for k, v in m.items()},
        }
        candidate = register_candidate(client, self.region, manifest["model_uri"], manifest["parent_run_id"], tags)
        client.set_tag(manifest["parent_run_id"], "eopt.registered_version", candidate.version)
        tracking.finish(client, manifest["parent_run_id"])
        self.update_manifest(
            registered={
                "name": candidate.name,
                "version": candidate.version,
                "stage": candidate.stage,
                "model_uri": manifest["model_uri"],
            }
        )
        log.info(
            "%s: registered %s version %s as %s (alias challenger)",
            self.region,
            candidate.name,
            candidate.version,
            candidate.stage,
        )
        return candidate

    @_step
    def deploy_model(self, store: PriceStore, actor: str = "model_retraining") -> dict[str, Any]:
        """Register the candidate (Staging, alias challenger), then let the promotion gate decide; returns
        the gate's summary as kept in the manifest (name, version, promoted, reasons, champion after)."""
        candidate = self.register()
        manifest = self.manifest()
        if manifest.get("gate", {}).get("version") == candidate.version:
            log.info("%s: version %s was already judged by the gate in this run", self.region, candidate.version)
            return manifest["gate"]
        # the holdout ends where this retraining's data ends: a retraining at a past logical date is
        # judged on the hours it was trained for, never on prices stored after it
        outcome = gate_candidate(
            self.client(),
            self.settings,
            store,
            PromotionStore(store.engine),
            self.region,
            candidate.version,
            actor=actor,
            holdout_end=self.as_of,
        )
        summary = {
            "name": outcome.name,
            "version": outcome.version,
            "promoted": outcome.decision.promote,
            "reasons": outcome.decision.reasons,
            "champion_version": outcome.champion_version_after,
            "champion_mape": outcome.champion_mape_after,
        }
        self.update_manifest(gate=summary)
        return summary

    def fail(self, reason: str) -> None:
        """Mark the parent run failed (a step raised), so the MLflow UI does not show it running."""
        if self.manifest_path.is_file() and self.manifest().get("parent_run_id"):
            client = self.client()
            client.set_tag(self.manifest()["parent_run_id"], "eopt.failure", reason[:5000])
            tracking.finish(client, self.manifest()["parent_run_id"], ok=False)

    def _model_card(self, manifest: dict, evaluation: dict) -> str:
        """MODEL_CARD.md: pipelines/templates/model_card.md.j2."""
        return render(
            "model_card.md.j2",
            name=registered_model_name(self.region),
            region=self.region,
            config=self.config,
            manifest=manifest,
            evaluation=evaluation,
        )


def _log_pyfunc(forecaster: EnsembleForecaster, folder: Path, example: ModelRequest) -> ModelInfo:
    return log_ensemble(forecaster, folder, example)


@dataclass(frozen=True)
class RetrainingOutcome:
    region: str
    candidate: Candidate
    evaluation: dict[str, Any]  # evaluation.json's summary, plus the gate's when it ran
    seconds: float


def retrain_region(
    settings: Settings,
    store: PriceStore,
    region: str,
    as_of: pd.Timestamp | None = None,
    budget: str | None = None,
    gate: bool = False,
) -> RetrainingOutcome:
    """Every step for one region, in a row (what ``eopt train`` runs); ``as_of`` defaults to the newest data."""
    started = time.perf_counter()
    if as_of is None:
        latest = store.latest_ts(region)
        if latest is None:
            raise TrainingDataError(f"{region}: no prices in the store; run eopt load-history --region {region} first")
        as_of = latest + pd.Timedelta(hours=1)
    job = Retraining.open(settings, region, as_of, budget)
    job.extract_training_data(store)
    job.engineer_features()
    for model in job.config.models:
        job.train_member(model)
    evaluation = job.evaluate_ensemble(store)
    candidate = job.register()
    if gate:
        evaluation = {**evaluation, "gate": job.deploy_model(store, actor="eopt train")}
    return RetrainingOutcome(region, candidate, evaluation, round(time.perf_counter() - started, 1))
