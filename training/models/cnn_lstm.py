"""CNN-LSTM: reads the 24 feature rows of one forecast origin as a sequence and predicts all 24 hours at once.

A sample is one origin: a ``(24, n_features)`` matrix whose time axis is the 24 target hours
(horizon 0..23). The network is

- two ``Conv1d`` layers over the time axis (``padding="same"``, ReLU, dropout after the first):
  they mix each target hour with its neighbours, so the daily shape (morning and evening peaks
  in the load and wind forecasts) is seen as a shape, not 24 unrelated rows;
- a bidirectional LSTM over the 24 steps: a target hour reads both the hours before and the
  hours after it (all exogenous forecasts of the day are known at the origin, so this leaks
  nothing);
- a linear head applied per step: the 24-hour output head, one price per target hour.

The member may hold several such networks (``networks``, default 1) that differ only in their seed
(initial weights and batch order: seeds ``seed``, ``seed + 1``, ...) and share the input scaling;
it forecasts their mean. Each stops early on its own; a trial of the tuner fits one. A network
stops after 2-25 epochs, so one network is a noisy draw; averaging draws is what the DNN ensemble
of the EPF benchmark (Lago et al. 2021) does with its four networks. Saved as ``weights.pt`` (the
first) and ``weights_<k>.pt``.

``origin_every`` (default 1) fits on every k-th training origin only, in time order: an epoch costs
in proportion to the origins (the network is compute-bound on a CPU core: the batch size barely
changes an epoch's time), and origins a few hours apart overlap in 17 of their 24 target hours.

Like every model here it learns the price relative to the origin's level (``ANCHOR_COLUMN``):
the price-valued inputs are made relative to the anchor before scaling, the anchor itself is
kept as the absolute level, and the anchor is added back to the predictions. The scaling's
statistics come from the training frame only, so the validation window cannot leak into the
inputs. ``scaling`` (absent = ``"standard"``, so parameters tuned before it existed keep their
meaning) picks how every input column and the relative target are scaled:

- ``"standard"``: ``(x - mean) / std``;
- ``"invariant"``: ``asinh((x - median) / (MAD / 0.6745))``, the variance-stabilising transform of
  Uniejewski, Weron and Ziel (2018) that the LEAR member and the EPF benchmark's DNN use: a price
  spike weighs on the L1 loss and on the inputs no more than a few ordinary hours. The networks'
  outputs are transformed back to prices before their mean is taken; early stopping stays on the
  validation MAE in price units.

Saved models are ``config.json`` plus one ``weights*.pt`` per network (a state dict of
tensors, loaded with ``weights_only=True``): loading runs no pickled code.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from torch import nn

from training.features import ANCHOR_COLUMN, HORIZON_HOURS, TARGET_COLUMN
from training.models.base import NORMAL_MAD, FitResult, ForecastModel, ModelError, ProgressReport, relative_target

DEVICES = ("auto", "cpu", "cuda")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
# Price-valued inputs: learned relative to the anchor, as the target is.
RELATIVE_PREFIXES = (
    "lag_",
    "same_hour_mean",
    "same_hour_min",
    "same_hour_max",
    "last_price",
    "last_24h_mean",
    "last_24h_min",
    "last_24h_max",
)
PREDICT_BATCH = 1024
SMALL_REQUEST_ORIGINS = 8  # predictions for at most this many origins run on one CPU thread
GRADIENT_CLIP = 1.0
ARCHITECTURE_PARAMS = ("channels", "kernel_size", "hidden_size", "num_layers")  # what a warm start must share
SCALINGS = ("standard", "invariant")
HOUR = pd.Timedelta(hours=1)


def weights_file(network: int) -> str:
    """``weights.pt`` for the first network (the only one of a model saved before members had several)."""
    return WEIGHTS_FILE if network == 0 else f"weights_{network}.pt"


class _CnnLstmNet(nn.Module):
    """Conv1d x2 over the 24 target hours, a bidirectional LSTM, one linear output per hour."""

    def __init__(
        self, n_features: int, channels: int, kernel_size: int, hidden_size: int, num_layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_features, channels, kernel_size, padding="same")
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding="same")
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            channels,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, 24, n_features) -> (batch, 24) scaled relative prices."""
        z = x.transpose(1, 2)  # Conv1d wants (batch, channels, time)
        z = self.dropout(torch.relu(self.conv1(z)))
        z = torch.relu(self.conv2(z))
        out, _ = self.lstm(z.transpose(1, 2))
        return self.head(out).squeeze(-1)


class _Samples:
    """A frame regrouped by origin: inputs (n, 24, f), anchors and targets (n, 24), and the row order."""

    def __init__(
        self,
        values: np.ndarray,
        anchor: np.ndarray,
        target: np.ndarray | None,
        relative: np.ndarray | None,
        order: np.ndarray,
        origins: pd.DatetimeIndex,
    ) -> None:
        self.values = values
        self.anchor = anchor
        self.target = target  # prices, for the MAE in price units
        self.relative = relative  # relative_target: what the network learns (scaled)
        self.order = order  # order[i] = input row of the i-th row in (origin, target_ts) order
        self.origins = origins

    def known_target(self) -> np.ndarray:
        if self.target is None:
            raise ModelError("cnn_lstm: these samples were grouped without their target prices")
        return self.target

    def known_relative(self) -> np.ndarray:
        if self.relative is None:
            raise ModelError("cnn_lstm: these samples were grouped without their relative targets")
        return self.relative

    def to_input_order(self, grouped: np.ndarray) -> np.ndarray:
        out = np.empty(self.order.size, dtype=float)
        out[self.order] = grouped.reshape(-1)
        return out

    def subset(self, keep: np.ndarray) -> _Samples:
        rows = (keep[:, None] * HORIZON_HOURS + np.arange(HORIZON_HOURS)).reshape(-1)
        target = None if self.target is None else self.target[keep]
        relative = None if self.relative is None else self.relative[keep]
        return _Samples(self.values[keep], self.anchor[keep], target, relative, self.order[rows], self.origins[keep])


class CnnLstmModel(ForecastModel):
    """CNN-LSTM over the 24 target hours of an origin; see the module docstring for the architecture."""

    name = "cnn_lstm"
    pruning_warmup_steps = 5

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
        super().__init__(
            {**self.default_params(), **params},
            feature_columns,
            seed=seed,
            max_steps=max_steps,
            device=device,
            threads=threads,
        )
        self.device = self._resolve_device(device)
        self.scaling = str(self.params.get("scaling", "standard"))
        if self.scaling not in SCALINGS:
            raise ModelError(f"{self.name}: scaling {self.scaling!r} is not one of {', '.join(SCALINGS)}")
        self._relative = np.array([self._is_relative(c) for c in self.feature_columns], dtype=bool)
        self._nets: list[_CnnLstmNet] = []  # one per network; predictions are their mean
        self._feature_mean: np.ndarray | None = None
        self._feature_std: np.ndarray | None = None
        self._target_mean = 0.0
        self._target_std = 1.0

    # -- parameters -----------------------------------------------------------------------------

    @staticmethod
    def default_params() -> dict[str, Any]:
        return {
            "channels": 32,
            "kernel_size": 3,
            "hidden_size": 64,
            "num_layers": 1,
            "dropout": 0.1,
            "learning_rate": 2e-3,
            "weight_decay": 1e-5,
            "batch_size": 64,
            "patience": 6,
            "networks": 1,
            "origin_every": 1,
        }

    @staticmethod
    def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
        return {
            "channels": trial.suggest_categorical("channels", [16, 32, 64]),
            "kernel_size": trial.suggest_categorical("kernel_size", [3, 5]),
            "hidden_size": trial.suggest_categorical("hidden_size", [32, 64, 128]),
            "num_layers": trial.suggest_int("num_layers", 1, 2),
            "dropout": trial.suggest_float("dropout", 0.0, 0.4),
            "learning_rate": trial.suggest_float("learning_rate", 3e-4, 5e-3, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True),
            "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
            "patience": 6,  # fixed: early stopping is budget control, not a hyper-parameter to fit
            "networks": 1,  # fixed: a trial fits one network; the final fit takes the budget's count
            "origin_every": 1,
        }

    # -- fit / predict --------------------------------------------------------------------------

    def fit(
        self,
        train: pd.DataFrame,
        validation: pd.DataFrame,
        report: ProgressReport | None = None,
        *,
        start_from: CnnLstmModel | None = None,
    ) -> FitResult:
        """Train with Adam on the L1 loss, one validation MAE (price units) per epoch, keep the best epoch.

        ``start_from``, a fitted CNN-LSTM of the same architecture and features (last week's, say),
        makes this a warm start: training continues from its weights with its input and target
        scaling, and its weights as they are compete as epoch 0, so the fit is never worse on the
        validation than the model it started from (``best_step`` 0 means nothing better was found).
        Network ``k`` starts from the start's network ``k``; a network the start lacks starts from scratch.

        With several ``networks`` the result's ``best_step`` and ``history`` are the first network's,
        ``steps_run`` counts the epochs of all, and ``validation_mae`` is their mean forecast's.
        """
        if self.max_steps < 1:
            raise ModelError(f"{self.name}: max_steps (epochs) must be at least 1, got {self.max_steps}")
        self._check_frame(train, "training")
        self._check_frame(validation, "validation")
        if self.threads:
            torch.set_num_threads(self.threads)
        for what, frame in (("training", train), ("validation", validation)):
            if TARGET_COLUMN not in frame.columns:
                raise ModelError(f"{self.name}: {what} frame lacks the target column {TARGET_COLUMN!r}")

        train_samples = self._samples(train, with_target=True)
        # An origin without its anchor or a target price carries nothing to learn.
        usable = np.isfinite(train_samples.anchor).all(axis=1) & np.isfinite(train_samples.known_target()).all(axis=1)
        if not usable.any():
            raise ModelError(
                f"{self.name}: no training origin has its anchor ({ANCHOR_COLUMN}) and all 24 target prices"
            )
        # every k-th training origin (in time order) only: an epoch costs in proportion to the origins
        every = int(self.params.get("origin_every", 1))
        if every < 1:
            raise ModelError(f"{self.name}: origin_every must be at least 1, got {every}")
        usable &= np.arange(usable.size) % every == 0
        train_samples = train_samples.subset(np.flatnonzero(usable))
        val_samples = self._samples(validation, with_target=True)
        self._require_anchor(val_samples, "validation")
        scored = np.isfinite(val_samples.known_target())
        if not scored.any():
            raise ModelError(f"{self.name}: the validation frame has no known target price to score")

        if start_from is None:
            self._fit_scaler(train_samples)
        else:
            self._adopt_scaling(start_from)
        x_train = self._tensor(self._scaled_inputs(train_samples))
        y_train = self._tensor(self._forward((train_samples.known_relative() - self._target_mean) / self._target_std))
        x_val = self._tensor(self._scaled_inputs(val_samples))

        networks = int(self.params.get("networks", 1))
        if networks < 1:
            raise ModelError(f"{self.name}: networks must be at least 1, got {networks}")
        starts = list(start_from._nets) if start_from is not None else []
        nets, results = [], []
        for k in range(networks):
            net, result = self._train_network(
                self.seed + k,
                x_train,
                y_train,
                val_samples,
                x_val,
                scored,
                report if k == 0 else None,  # the tuner prunes on the first network's epochs
                starts[k] if k < len(starts) else None,
            )
            nets.append(net)
            results.append(result)
        self._nets = nets  # fitted only once every network is
        first = results[0]
        if networks == 1:
            return first
        return FitResult(
            best_step=first.best_step,
            validation_mae=self._validation_mae(val_samples, x_val, scored, nets),
            steps_run=sum(r.steps_run for r in results),
            history=first.history,
        )

    def _validation_mae(
        self, val_samples: _Samples, x_val: torch.Tensor, scored: np.ndarray, nets: list[_CnnLstmNet]
    ) -> float:
        predicted = self._prices(val_samples, x_val, nets)
        return float(np.mean(np.abs(val_samples.known_target()[scored] - predicted[scored])))

    def _train_network(
        self,
        seed: int,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        val_samples: _Samples,
        x_val: torch.Tensor,
        scored: np.ndarray,
        report: ProgressReport | None,
        start: _CnnLstmNet | None,
    ) -> tuple[_CnnLstmNet, FitResult]:
        """One network of the member: its best epoch on the validation, from ``start``'s weights if given."""
        torch.manual_seed(seed)
        p = self.params
        net = self._new_net().to(self.device)
        optimizer = torch.optim.Adam(
            net.parameters(), lr=float(p["learning_rate"]), weight_decay=float(p["weight_decay"])
        )
        loss_fn = nn.L1Loss()
        generator = torch.Generator().manual_seed(seed)  # CPU generator: same order on every device
        batch_size = int(p["batch_size"])
        patience = int(p.get("patience", 6))
        n = x_train.shape[0]

        history: list[float] = []
        best_mae, best_epoch, best_state = math.inf, 0, None
        if start is not None:
            net.load_state_dict(start.state_dict())
            best_mae = self._validation_mae(val_samples, x_val, scored, [net])
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        for epoch in range(1, self.max_steps + 1):
            net.train()
            permutation = torch.randperm(n, generator=generator).to(self.device)
            for first in range(0, n, batch_size):
                batch = permutation[first : first + batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(net(x_train[batch]), y_train[batch])
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), GRADIENT_CLIP)
                optimizer.step()

            val_mae = self._validation_mae(val_samples, x_val, scored, [net])
            if not math.isfinite(val_mae):
                raise ModelError(
                    f"{self.name}: training diverged at epoch {epoch} (validation MAE {val_mae}); "
                    f"lower the learning rate ({p['learning_rate']})"
                )
            history.append(val_mae)
            if report is not None:
                report(epoch, val_mae)  # may raise optuna.TrialPruned: the tuner's decision, let it through
            if val_mae < best_mae:
                best_mae, best_epoch = val_mae, epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            elif epoch - best_epoch >= patience:
                break

        if best_state is None:  # max_steps >= 1 and every MAE is finite: epoch 1 set it
            raise RuntimeError("CNN-LSTM: no epoch ran, nothing to keep")
        net.load_state_dict(best_state)
        net.eval()
        return net, FitResult(best_step=best_epoch, validation_mae=best_mae, steps_run=len(history), history=history)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """One price per row of ``frame``, in the frame's own row order."""
        if not self._nets or self._feature_mean is None:
            raise ModelError(f"{self.name}: the model is not fitted; call fit or load first")
        self._check_frame(frame, "prediction")
        samples = self._samples(frame, with_target=False)
        self._require_anchor(samples, "prediction")
        small = len(samples.anchor) <= SMALL_REQUEST_ORIGINS and self.device == "cpu"
        threads = torch.get_num_threads()
        if small:
            # a forecast of a few origins is microseconds of work per thread: on a busy worker,
            # waiting for a second thread costs far more than it saves (13 ms -> 530 ms measured)
            torch.set_num_threads(1)
        try:
            predicted = self._prices(samples, self._tensor(self._scaled_inputs(samples)))
        finally:
            if small:
                torch.set_num_threads(threads)
        if not np.isfinite(predicted).all():
            bad = int((~np.isfinite(predicted)).sum())
            raise ModelError(f"{self.name}: {bad} of {predicted.size} predictions are NaN or infinite")
        return samples.to_input_order(predicted)

    # -- persistence ----------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        if not self._nets or self._feature_mean is None or self._feature_std is None:
            raise ModelError(f"{self.name}: cannot save a model that is not fitted")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "model_class": type(self).__name__,
            "name": self.name,
            "params": self.params,
            "feature_columns": self.feature_columns,
            "seed": self.seed,
            "max_steps": self.max_steps,
            "feature_mean": self._feature_mean.tolist(),
            "feature_std": self._feature_std.tolist(),
            "target_mean": self._target_mean,
            "target_std": self._target_std,
            "torch_version": torch.__version__,
        }
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        for k, net in enumerate(self._nets):
            torch.save({name: v.detach().cpu() for name, v in net.state_dict().items()}, folder / weights_file(k))

    @classmethod
    def load(cls, folder: Path) -> CnnLstmModel:
        """Rebuild from ``config.json`` and ``weights.pt``, on the GPU when there is one."""
        folder = Path(folder)
        config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ModelError(f"{cls.name}: {path} not found; is {folder} a saved {cls.name} model?")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{cls.name}: {config_path} is not valid JSON ({exc})") from None
        if config.get("model_class") != cls.__name__:
            raise ModelError(f"{cls.name}: {folder} holds a {config.get('model_class')!r} model, not {cls.__name__}")
        model = cls(
            config["params"],
            config["feature_columns"],
            seed=int(config["seed"]),
            max_steps=int(config["max_steps"]),
            device="auto",
        )
        model._feature_mean = np.asarray(config["feature_mean"], dtype=float)
        model._feature_std = np.asarray(config["feature_std"], dtype=float)
        model._target_mean = float(config["target_mean"])
        model._target_std = float(config["target_std"])
        for k in range(int(model.params.get("networks", 1))):
            path = folder / weights_file(k)
            net = model._new_net()
            try:
                state = torch.load(path, map_location=model.device, weights_only=True)
                net.load_state_dict(state)
            except (
                RuntimeError,
                ValueError,
                OSError,
            ) as exc:  # torch raises these for bad, missing or mismatched weights
                raise ModelError(f"{cls.name}: cannot load {path}: {exc}") from None
            model._nets.append(net.to(model.device).eval())
        return model

    # -- internals ------------------------------------------------------------------------------

    def _new_net(self) -> _CnnLstmNet:
        p = self.params
        return _CnnLstmNet(
            len(self.feature_columns),
            int(p["channels"]),
            int(p["kernel_size"]),
            int(p["hidden_size"]),
            int(p["num_layers"]),
            float(p["dropout"]),
        )

    def _adopt_scaling(self, start_from: CnnLstmModel) -> None:
        """Take a fitted model's input and target scaling, which its weights were trained under."""
        if not start_from._nets or start_from._feature_mean is None or start_from._feature_std is None:
            raise ModelError(f"{self.name}: start_from is not fitted; a warm start needs a fitted model")
        if start_from.feature_columns != self.feature_columns:
            raise ModelError(
                f"{self.name}: start_from was trained on other features "
                f"({len(start_from.feature_columns)} columns, this model has {len(self.feature_columns)}); "
                "start from scratch (start_from=None)"
            )
        pairs = {k: (start_from.params[k], self.params[k]) for k in ARCHITECTURE_PARAMS}
        pairs["scaling"] = (start_from.scaling, self.scaling)
        differ = {k: pair for k, pair in pairs.items() if pair[0] != pair[1]}
        if differ:
            shown = ", ".join(f"{k} {was} -> {now}" for k, (was, now) in differ.items())
            raise ModelError(
                f"{self.name}: start_from has another architecture ({shown}); start from scratch (start_from=None)"
            )
        self._feature_mean = start_from._feature_mean.copy()
        self._feature_std = start_from._feature_std.copy()
        self._target_mean, self._target_std = start_from._target_mean, start_from._target_std

    @staticmethod
    def _is_relative(column: str) -> bool:
        return column != ANCHOR_COLUMN and column.startswith(RELATIVE_PREFIXES)

    def _resolve_device(self, device: str) -> str:
        if device not in DEVICES:
            raise ModelError(f"{self.name}: unknown device {device!r}; choose one of {', '.join(DEVICES)}")
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelError(
                f"{self.name}: device 'cuda' requested but torch finds no CUDA GPU "
                f"(torch {torch.__version__}); use device 'cpu' or 'auto'"
            )
        return device

    def _samples(self, frame: pd.DataFrame, *, with_target: bool) -> _Samples:
        """Group rows by origin (24 per origin, horizon 0..23), remembering each row's input position."""
        for column in ("origin", "target_ts"):
            if column not in frame.columns:
                raise ModelError(f"{self.name}: frame lacks the column {column!r} that groups rows by origin")
        origin = pd.DatetimeIndex(frame["origin"])
        target_ts = pd.DatetimeIndex(frame["target_ts"])
        order = np.lexsort((target_ts.asi8, origin.asi8))
        origin, target_ts = origin[order], target_ts[order]
        starts = np.flatnonzero(np.r_[True, origin[1:] != origin[:-1]])
        counts = np.diff(np.r_[starts, len(origin)])
        wrong = np.flatnonzero(counts != HORIZON_HOURS)
        if wrong.size:
            first = starts[wrong[0]]
            raise ModelError(
                f"{self.name}: origin {origin[first]} has {counts[wrong[0]]} rows, "
                f"needs exactly {HORIZON_HOURS} (horizon 0..{HORIZON_HOURS - 1}); "
                f"{wrong.size} origin(s) are incomplete"
            )
        n = starts.size
        horizon = ((target_ts - origin) / HOUR).to_numpy(dtype=float).reshape(n, HORIZON_HOURS)
        bad = np.flatnonzero((horizon != np.arange(HORIZON_HOURS)).any(axis=1))
        if bad.size:
            raise ModelError(
                f"{self.name}: origin {origin[starts[bad[0]]]} does not cover horizon "
                f"0..{HORIZON_HOURS - 1} hour by hour (one row per target hour)"
            )
        values = frame[self.feature_columns].to_numpy(dtype=float)[order].reshape(n, HORIZON_HOURS, -1)
        anchor = frame[ANCHOR_COLUMN].to_numpy(dtype=float)[order].reshape(n, HORIZON_HOURS)
        target = relative = None
        if with_target:
            target = frame[TARGET_COLUMN].to_numpy(dtype=float)[order].reshape(n, HORIZON_HOURS)
            relative = relative_target(frame)[order].reshape(n, HORIZON_HOURS)
        return _Samples(values, anchor, target, relative, order, origin[starts])

    def _require_anchor(self, samples: _Samples, what: str) -> None:
        missing = ~np.isfinite(samples.anchor).all(axis=1)
        if missing.any():
            shown = ", ".join(str(o) for o in samples.origins[missing][:3])
            raise ModelError(
                f"{self.name}: {int(missing.sum())} {what} origin(s) (first {shown}) lack the last "
                f"24 hours of prices ({ANCHOR_COLUMN} is NaN); the model forecasts relative to it"
            )

    def _relative_inputs(self, samples: _Samples) -> np.ndarray:
        values = samples.values.copy()
        values[:, :, self._relative] -= samples.anchor[:, :, None]
        return values

    def _fit_scaler(self, samples: _Samples) -> None:
        """Per-feature centre and spread and the target's, of the training origins only.

        ``standard``: mean and standard deviation; ``invariant``: median and MAD / 0.6745 (the standard
        deviation where the MAD is 0, as for a column mostly at one value; 1 where both are).
        """
        flat = self._relative_inputs(samples).reshape(-1, len(self.feature_columns))
        if samples.relative is None:
            raise RuntimeError("CNN-LSTM: samples without their relative prices")
        rel = samples.relative.reshape(-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: handled below
            mean, std = np.nanmean(flat, axis=0), np.nanstd(flat, axis=0)
            target_mean, target_std = float(rel.mean()), float(rel.std())
            if self.scaling == "invariant":
                mean = np.nanmedian(flat, axis=0)
                mad = np.nanmedian(np.abs(flat - mean), axis=0) / NORMAL_MAD
                std = np.where(np.isfinite(mad) & (mad > 0), mad, std)
                target_mean = float(np.median(rel))
                target_mad = float(np.median(np.abs(rel - target_mean))) / NORMAL_MAD
                target_std = target_mad if target_mad > 0 else target_std
        self._feature_mean = np.where(np.isfinite(mean), mean, 0.0)
        self._feature_std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        self._target_mean = target_mean
        self._target_std = target_std if target_std > 0 else 1.0

    def _forward(self, standardised: np.ndarray) -> np.ndarray:
        return np.arcsinh(standardised) if self.scaling == "invariant" else standardised

    def _inverse(self, learnt: np.ndarray) -> np.ndarray:
        return np.sinh(learnt) if self.scaling == "invariant" else learnt

    def _scaled_inputs(self, samples: _Samples) -> np.ndarray:
        if self._feature_mean is None or self._feature_std is None:
            raise ModelError("CNN-LSTM: the model is not fitted (no input scaling)")
        scaled = self._forward((self._relative_inputs(samples) - self._feature_mean) / self._feature_std)
        return np.nan_to_num(scaled, nan=0.0, posinf=0.0, neginf=0.0)  # NaN -> 0: the training centre

    def _tensor(self, values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32, device=self.device)

    def _prices(self, samples: _Samples, x: torch.Tensor, nets: list[_CnnLstmNet] | None = None) -> np.ndarray:
        """Prices (n, 24) for scaled inputs ``x``: the mean of the networks' outputs un-scaled, anchor added back."""
        nets = self._nets if nets is None else nets
        if not nets:
            raise ModelError("CNN-LSTM: the model is not fitted")
        outputs = []
        with torch.no_grad():
            for net in nets:
                net.eval()
                parts = [
                    net(x[i : i + PREDICT_BATCH]).double().cpu().numpy() for i in range(0, x.shape[0], PREDICT_BATCH)
                ]
                outputs.append(np.concatenate(parts, axis=0) if parts else np.empty((0, HORIZON_HOURS)))
        if self.scaling == "standard":  # linear: the mean of the outputs is the mean of their prices
            scaled = outputs[0] if len(outputs) == 1 else np.mean(outputs, axis=0)
            return samples.anchor + scaled * self._target_std + self._target_mean
        relative = [self._inverse(out) * self._target_std + self._target_mean for out in outputs]
        return samples.anchor + (relative[0] if len(relative) == 1 else np.mean(relative, axis=0))
