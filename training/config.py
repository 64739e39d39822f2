"""What a retraining does and how much it may spend: windows, budgets, seed, device, study storage.

Budgets are named so an operator picks one word (``EOPT_TRAINING_BUDGET`` or the MLproject
``budget`` parameter); ``EOPT_TUNING_TRIALS`` / ``EOPT_TUNING_TIMEOUT_S`` override the trials
and seconds of every model. ``default`` keeps one region's tuned retraining under ten minutes on
two CPU cores (``benchmarks/training.py`` measures it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.members import MEMBER_NAMES
from core.settings import Settings, SettingsError

MODEL_NAMES = MEMBER_NAMES  # the ensemble's members, whose forecasts the forecasts table keeps by name
# Members Optuna tunes; LEAR has no hyper-parameter to tune (its criterion picks each hour's penalty).
TUNED_MODELS = ("xgboost", "lightgbm", "cnn_lstm")
# How the ensemble weighs its members (training.ensemble.weigh_members); the first is the default.
ENSEMBLE_WEIGHTS = ("lear_network", "validation")


@dataclass(frozen=True)
class ModelBudget:
    trials: int  # total trials the study should reach (a resumed study counts earlier ones)
    timeout_s: float  # wall-clock limit of this run's tuning of the model
    max_epochs: int = 0  # CNN-LSTM epochs per fit (early stopping usually ends it sooner)
    max_rounds: int = 0  # boosting rounds per fit for the tree models (early stopping too)
    calibration_windows: int = 0  # LEAR: how many of its calibration windows, shortest first (0 = all four)
    networks: int = 1  # CNN-LSTM networks of the final fit, each its own seed (a tuning trial fits one)


BUDGETS: dict[str, dict[str, ModelBudget]] = {
    # seconds-scale: tests and the DAG smoke run
    "smoke": {
        "xgboost": ModelBudget(trials=2, timeout_s=60, max_rounds=150),
        "lightgbm": ModelBudget(trials=2, timeout_s=60, max_rounds=150),
        "cnn_lstm": ModelBudget(trials=2, timeout_s=90, max_epochs=3),
        # the 56-day window only: two fits of a few seconds per region
        "lear": ModelBudget(trials=0, timeout_s=0, calibration_windows=1),
    },
    # the weekly retraining: under 10 minutes per region on 2 CPU cores
    "default": {
        "xgboost": ModelBudget(trials=30, timeout_s=150, max_rounds=1500),
        "lightgbm": ModelBudget(trials=30, timeout_s=150, max_rounds=1500),
        # the final fit is the mean of three networks (seeds 42, 43, 44): two more fits of seconds to a minute;
        # CNN-LSTM MAE 0.985x (BE) and 0.969x (NP) one network's over 52 test weeks (attempt_warm_<market>_cold4.json)
        "cnn_lstm": ModelBudget(trials=12, timeout_s=240, max_epochs=40, networks=3),
        "lear": ModelBudget(trials=0, timeout_s=0),  # 56, 84, half and all of the days: two fits
    },
    # a long search, e.g. once per quarter or on a GPU worker
    "thorough": {
        "xgboost": ModelBudget(trials=100, timeout_s=1800, max_rounds=4000),
        "lightgbm": ModelBudget(trials=100, timeout_s=1800, max_rounds=4000),
        "cnn_lstm": ModelBudget(trials=40, timeout_s=3600, max_epochs=120, networks=3),
        "lear": ModelBudget(trials=0, timeout_s=0),
    },
}


@dataclass(frozen=True)
class TrainingConfig:
    budget_name: str
    budgets: dict[str, ModelBudget] = field(repr=False)
    window_days: int = 730
    validation_days: int = 56
    test_days: int = 56
    min_train_days: int = 28
    origin_stride_h: int = 7
    max_gap_hours: int = 24
    seed: int = 42
    interval_coverage: float = 0.9
    device: str = "auto"
    threads: int = 0  # CPU threads per fit, 0 = all cores
    optuna_storage: str = field(default="", repr=False)
    models: tuple[str, ...] = MODEL_NAMES
    # a walk-forward refit of the CNN-LSTM continues from the previous block's networks with this
    # early-stopping patience (CnnLstmModel.fit(start_from=...)); 0: every refit starts from scratch
    warm_start_patience: int = 0
    # with warm starts, every this-many-th block since the last fit from scratch starts from scratch
    # again (so a chain is at most this many blocks long); 0: only the first block and re-tunings do
    cold_start_every: int = 0
    # a walk-forward's LEAR runs its criterion on the long windows every this many blocks and refits the
    # blocks between with those penalties (fit_lear(reuse=...)); 1: every block runs it
    lear_criterion_every: int = 1
    # LEAR refits its short windows (56 and 84 days) before every local-midnight forecast, the validation's
    # days included (LearModel.recalibrates, LearMember.for_origin), as the paper recalibrated daily; its
    # requests then need the 98 days before an origin (serving.model_request). EOPT_LEAR_RECALIBRATE_DAILY
    lear_recalibrate_daily: bool = True
    # LEAR reads this many days before its fits' end (its long windows: half and all of them) where the data has
    # them, the other members the window_days; 0: window_days. EOPT_LEAR_HISTORY_DAYS
    lear_history_days: int = 1456
    # the members weighed and the intervals calibrated on the day-ahead forecasts they served in this many days
    # before the test window (a walk-forward block: before the block), once SERVED_MIN_DAYS of them are there
    # (training.ensemble.calibrate_on_served); 0: on the validation window. EOPT_SERVED_WEIGHT_DAYS
    served_weight_days: int = 0
    # a walk-forward block fits its members as model_retraining deploys them: the test window (test_days, which
    # the gate scores) held out between the fits and the block, so the tuned members' data ends test_days +
    # validation_days before the block and LEAR's long windows test_days before it; False: the fits reach the
    # block (its validation = the last validation_days before it)
    as_deployed: bool = False
    # how the members are weighed (training.ensemble.weigh_members): "lear_network", LEAR and the CNN-LSTM half
    # and half, the trees at 0 (on all four benchmark markets at or below the validation's weights: the trees and
    # the network stop early on the validation, which flatters them); "validation", the rule the validation picks
    # over every member (choose_weights). EOPT_ENSEMBLE_WEIGHTS
    ensemble_weights: str = "lear_network"

    def __post_init__(self) -> None:
        if self.ensemble_weights not in ENSEMBLE_WEIGHTS:
            raise SettingsError(
                f"unknown ensemble weights {self.ensemble_weights!r}; choose one of {', '.join(ENSEMBLE_WEIGHTS)}"
            )
        if self.ensemble_weights != "validation" and self.served_weight_days:
            raise SettingsError(
                f"ensemble weights {self.ensemble_weights!r} are fixed, so there is nothing to weigh on the "
                f"{self.served_weight_days} days served; set EOPT_SERVED_WEIGHT_DAYS=0 or "
                "EOPT_ENSEMBLE_WEIGHTS=validation"
            )

    @classmethod
    def from_settings(cls, settings: Settings, budget: str | None = None) -> TrainingConfig:
        name = (budget or settings.training.budget).lower()
        if name not in BUDGETS:
            raise SettingsError(f"unknown training budget {name!r}; choose one of {', '.join(BUDGETS)}")
        budgets = {
            model: replace(
                b,
                trials=settings.training.tuning_trials or b.trials,
                timeout_s=float(settings.training.tuning_timeout_s or b.timeout_s),
            )
            if model in TUNED_MODELS
            else b
            for model, b in BUDGETS[name].items()
        }
        return cls(
            budget_name=name,
            budgets=budgets,
            window_days=settings.training.window_days,
            validation_days=settings.training.validation_days,
            test_days=settings.training.test_days,
            origin_stride_h=settings.training.origin_stride_h,
            max_gap_hours=settings.training.max_gap_h,
            seed=settings.training.random_seed,
            interval_coverage=settings.training.interval_coverage,
            lear_recalibrate_daily=settings.training.lear_recalibrate_daily,
            lear_history_days=settings.training.lear_history_days,
            served_weight_days=settings.training.served_weight_days,
            ensemble_weights=settings.training.ensemble_weights,
            device=settings.training.device,
            threads=settings.training.threads,
            optuna_storage=settings.stores.optuna_storage,
        )

    def budget(self, model: str) -> ModelBudget:
        return self.budgets[model]

    def final_params(self, model: str, tuned: dict) -> dict:
        """``model``'s tuned parameters with what its budget sets for the final fit: the CNN-LSTM's networks."""
        networks = self.budget(model).networks
        return {**tuned, "networks": networks} if networks > 1 else dict(tuned)

    def with_networks(self, model: str, networks: int) -> TrainingConfig:
        """This configuration with ``networks`` networks in ``model``'s final fits."""
        if networks < 1:
            raise SettingsError(f"{model}: networks must be at least 1, got {networks}")
        return replace(self, budgets={**self.budgets, model: replace(self.budgets[model], networks=networks)})

    def describe(self) -> dict[str, object]:
        """The parameters a retraining logs to MLflow (no secrets: the storage URL is left out)."""
        out: dict[str, object] = {
            "budget": self.budget_name,
            "window_days": self.window_days,
            "validation_days": self.validation_days,
            "test_days": self.test_days,
            "origin_stride_h": self.origin_stride_h,
            "seed": self.seed,
            "interval_coverage": self.interval_coverage,
            "device": self.device,
            "threads": self.threads,
        }
        if self.lear_history_days:
            out["lear_history_days"] = self.lear_history_days
        for model, b in self.budgets.items():
            if model in TUNED_MODELS:
                out[f"{model}_trials"] = b.trials
                out[f"{model}_timeout_s"] = b.timeout_s
                if b.networks > 1:
                    out[f"{model}_networks"] = b.networks
            else:
                out[f"{model}_calibration_windows"] = b.calibration_windows or "all"
        return out

    @property
    def history_days(self) -> int:
        """The days a retraining extracts: the training window, or LEAR's longer history when it reads one."""
        return max(self.window_days, self.lear_history_days) if "lear" in self.models else self.window_days

    @property
    def tuned_models(self) -> tuple[str, ...]:
        """The members of ``models`` that Optuna tunes (all but LEAR)."""
        return tuple(m for m in self.models if m in TUNED_MODELS)
