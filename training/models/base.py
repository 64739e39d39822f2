"""The one small interface every forecasting model implements: fit, predict, save, load.

A model reads the rows of the feature frame (``training.features``): the tree models one row at
a time, the CNN-LSTM 24 rows per forecast origin. Every model learns the price relative to the
origin's recent level (``ANCHOR_COLUMN``, the mean of the 24 hours before the origin), which
lets it follow a market whose level moved since the training window. Saved models are plain
files (JSON, the libraries' own model formats, tensors): loading them runs no pickled code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import optuna
import pandas as pd

from training.features import ANCHOR_COLUMN, LOOKBACK_HOURS, TARGET_COLUMN

# The normal's 3/4 quantile: the median absolute deviation / this estimates the standard deviation (the
# scale of the asinh variance-stabilising transform, Uniejewski, Weron and Ziel 2018)
NORMAL_MAD = 0.6744897501960817

# Called during fitting with (step, validation MAE); the tuner reports it to Optuna and raises
# optuna.TrialPruned from inside when the trial should stop.
ProgressReport = Callable[[int, float], None]


class ModelError(ValueError):
    """A model cannot be fitted, used or loaded; the message says which model and why."""


@dataclass
class FitResult:
    best_step: int  # boosting round or epoch kept by early stopping
    validation_mae: float
    steps_run: int
    history: list[float] = field(default_factory=list)  # validation MAE per step (sampled)


def relative_target(frame: pd.DataFrame) -> np.ndarray:
    return (frame[TARGET_COLUMN] - frame[ANCHOR_COLUMN]).to_numpy(dtype=float)


class ForecastModel(ABC):
    """Predicts one price per feature row; ``params`` are the tunable hyper-parameters."""

    name: ClassVar[str]
    # Steps a trial runs before the pruner may stop it: a slow learning rate starts worse and
    # must not be pruned for that alone.
    pruning_warmup_steps: ClassVar[int] = 0

    def __init__(
        self,
        params: dict[str, Any],
        feature_columns: list[str],
        *,
        seed: int = 42,
        max_steps: int = 1000,
        device: str = "cpu",
        threads: int = 0,
    ) -> None:
        self.params = dict(params)
        self.threads = threads  # CPU threads for fitting; 0 = all cores
        self.feature_columns = list(feature_columns)
        self.seed = seed
        self.max_steps = max_steps
        self.device = device

    @staticmethod
    @abstractmethod
    def default_params() -> dict[str, Any]:
        """Sound hand-picked parameters: the first trial of every new study."""

    @staticmethod
    @abstractmethod
    def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
        """The search space."""

    @abstractmethod
    def fit(self, train: pd.DataFrame, validation: pd.DataFrame, report: ProgressReport | None = None) -> FitResult:
        """Fit on ``train``, stop early on the validation window's MAE, keep the best step."""

    @abstractmethod
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """One price per row of ``frame``, in row order."""

    @abstractmethod
    def save(self, folder: Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, folder: Path) -> ForecastModel: ...

    @property
    def history_hours(self) -> int:
        """How many hours before an origin the model reads (prices and exogenous forecasts): the
        feature frame's lag window, unless the model refits on more before it forecasts."""
        return LOOKBACK_HOURS

    def for_origin(self, prices: pd.Series, exogenous: pd.DataFrame, origin: pd.Timestamp) -> ForecastModel:
        """The model that forecasts from ``origin``, given the prices and exogenous forecasts before it
        (the :attr:`history_hours` at least): itself, unless it refits on the days before each origin
        (LEAR recalibrated daily)."""
        return self

    def predict_each_origin(self, frame: pd.DataFrame, prices: pd.Series, exogenous: pd.DataFrame) -> np.ndarray:
        """:meth:`predict` of a frame of many origins as :meth:`for_origin`'s model answers each origin's rows:
        one prediction of the frame, unless the model refits before each origin (LEAR recalibrated daily)."""
        return self.predict(frame)

    def feature_importance(self) -> pd.Series | None:
        """Importance per feature column, when the model has a notion of it."""
        return None

    def _check_frame(self, frame: pd.DataFrame, what: str) -> None:
        missing = [c for c in (*self.feature_columns, ANCHOR_COLUMN) if c not in frame.columns]
        if missing:
            raise ModelError(f"{self.name}: {what} frame lacks column(s) {', '.join(missing[:5])}")
        if frame.empty:
            raise ModelError(f"{self.name}: {what} frame has no rows")
