"""A day-ahead multilayer perceptron on LEAR's daily inputs, the network of the open EPF benchmark's DNN ensemble.

Lago, Marcjasz, De Schutter and Weron (Applied Energy 293 (2021) 116983) benchmark two models: LEAR
(:mod:`training.lear`) and a DNN, a feed-forward network with two hidden layers that reads one row
per day and outputs the day's 24 prices at once; their DNN ensemble (four such networks) beats the
LEAR ensemble by 2-8% on the four markets, and the two averaged beat either. This module is that
kind of network, written for this product (no code of epftoolbox is used):

- Inputs: the 247 LEAR features of the day (:func:`training.lear.lear_features`: prices of d-1,
  d-2, d-3 and d-7, the two exogenous day-ahead series for d, d-1 and d-7, seven weekday dummies),
  nothing at or after the origin. Prices, exogenous inputs and the 24 targets go through LEAR's
  "invariant" transform (median/MAD, then ``asinh``, fitted on the training days); an unknown
  input becomes 0 (its median), as in LEAR.
- Network: ``Linear -> activation -> dropout`` twice, then a linear layer to the 24 hours; L1 loss on
  the transformed targets, Adam with decoupled weight decay.
- Early stopping: each network holds out its own random share of the days (``validation_share``)
  and keeps its best epoch on them, so the newest weeks are learnt too (a held-out last stretch of
  days would keep the newest weeks out of every fit); ``patience`` epochs without a better
  validation MAE end the fit.
- The model is the mean of ``networks`` networks that differ in their seed (initial weights, batch
  order and held-out days).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from training.lear import WEEKDAYS, InvariantScaler

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "softplus": nn.Softplus}


def default_params() -> dict[str, Any]:
    return {
        "hidden_1": 256,
        "hidden_2": 128,
        "activation": "relu",
        "dropout": 0.1,
        "learning_rate": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 32,
    }


def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
    """The search space of the tuner (Optuna), around the sizes the EPF benchmark's DNNs chose."""
    return {
        "hidden_1": trial.suggest_int("hidden_1", 64, 512, log=True),
        "hidden_2": trial.suggest_int("hidden_2", 32, 256, log=True),
        "activation": trial.suggest_categorical("activation", sorted(ACTIVATIONS)),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
    }


class _Perceptron(nn.Module):
    def __init__(self, n_inputs: int, params: dict[str, Any]) -> None:
        super().__init__()
        activation = ACTIVATIONS[params["activation"]]
        self.layers = nn.Sequential(
            nn.Linear(n_inputs, int(params["hidden_1"])),
            activation(),
            nn.Dropout(float(params["dropout"])),
            nn.Linear(int(params["hidden_1"]), int(params["hidden_2"])),
            activation(),
            nn.Dropout(float(params["dropout"])),
            nn.Linear(int(params["hidden_2"]), 24),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass
class DailyNetwork:
    """``networks`` perceptrons on LEAR's daily rows; :meth:`fit` on (days, 247) and (days, 24), :meth:`predict`."""

    params: dict[str, Any] = field(default_factory=default_params)
    seed: int = 42
    networks: int = 4
    max_epochs: int = 400
    patience: int = 20
    validation_share: float = 0.2
    epochs: list[int] = field(default_factory=list)  # each network's best epoch, after fit
    _x_scaler: InvariantScaler | None = None
    _y_scaler: InvariantScaler | None = None
    _nets: list[_Perceptron] = field(default_factory=list)

    def _inputs(self, features: np.ndarray) -> torch.Tensor:
        if self._x_scaler is None:
            raise ValueError("daily network: not fitted; call fit first")
        x = np.array(features, dtype=float)
        x[:, :-WEEKDAYS] = np.nan_to_num(self._x_scaler.transform(x[:, :-WEEKDAYS]), nan=0.0)
        return torch.as_tensor(x, dtype=torch.float32)

    def fit(self, features: np.ndarray, targets: np.ndarray) -> DailyNetwork:
        """Fit on complete days (no NaN input or price); a forecast's unknown input is imputed by its median."""
        if len(features) != len(targets) or len(features) < 10:
            raise ValueError(
                f"daily network: needs at least 10 days with inputs and targets, got {len(features)} and {len(targets)}"
            )
        if not (np.isfinite(targets).all() and np.isfinite(features).all()):
            raise ValueError("daily network: NaN or infinite inputs or prices; fit on complete days only")
        self._x_scaler = InvariantScaler.fit(features[:, :-WEEKDAYS])
        self._y_scaler = InvariantScaler.fit(targets)
        x = self._inputs(features)
        y = torch.as_tensor(self._y_scaler.transform(targets), dtype=torch.float32)
        self._nets, self.epochs = [], []
        for k in range(self.networks):
            net, epoch = self._fit_one(x, y, targets, self.seed + k)
            self._nets.append(net)
            self.epochs.append(epoch)
        return self

    def _fit_one(self, x: torch.Tensor, y: torch.Tensor, prices: np.ndarray, seed: int) -> tuple[_Perceptron, int]:
        torch.manual_seed(seed)
        order = np.random.default_rng(seed).permutation(len(x))
        held = max(1, round(self.validation_share * len(x)))
        val, train = order[:held], order[held:]
        net = _Perceptron(x.shape[1], self.params)
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=float(self.params["learning_rate"]), weight_decay=float(self.params["weight_decay"])
        )
        generator = torch.Generator().manual_seed(seed)
        batch = int(self.params["batch_size"])
        x_train, y_train, x_val = x[train], y[train], x[val]
        best, best_epoch, best_state = math.inf, 0, None
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            permutation = torch.randperm(len(train), generator=generator)
            for first in range(0, len(train), batch):
                rows = permutation[first : first + batch]
                optimizer.zero_grad(set_to_none=True)
                loss = torch.abs(net(x_train[rows]) - y_train[rows]).mean()
                loss.backward()
                optimizer.step()
            net.eval()
            with torch.no_grad():
                predicted = self._prices(net(x_val))
            score = float(np.mean(np.abs(predicted - prices[val])))
            if not math.isfinite(score):
                raise ValueError(f"daily network: training diverged at epoch {epoch}; lower the learning rate")
            if score < best:
                best, best_epoch = score, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            elif epoch - best_epoch >= self.patience:
                break
        if best_state is None:
            raise RuntimeError("daily network: no epoch ran")
        net.load_state_dict(best_state)
        return net.eval(), best_epoch

    def _prices(self, scaled: torch.Tensor) -> np.ndarray:
        if self._y_scaler is None:
            raise ValueError("daily network: not fitted; call fit first")
        return self._y_scaler.inverse(scaled.double().numpy())

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(days, 24) prices: the mean of the networks' forecasts."""
        if not self._nets:
            raise ValueError("daily network: not fitted; call fit first")
        x = self._inputs(features)
        with torch.no_grad():
            return np.mean([self._prices(net(x)) for net in self._nets], axis=0)
