"""The CNN-LSTM on real Nord Pool history: row order, early stopping, seeds, saving, scaling, errors.

The network is kept tiny (8 channels, 16 hidden units, a few epochs) so the file runs in seconds
on two CPU cores; the numbers asserted hold for any sound fit, not for one lucky seed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from statsmodels.robust.scale import mad

from tests.market_frames import np_train_and_validation
from training.features import (
    ANCHOR_COLUMN,
    TARGET_COLUMN,
    feature_columns,
)
from training.models.base import ModelError
from training.models.cnn_lstm import CnnLstmModel

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REGION = "NP"
SMALL = {"channels": 8, "hidden_size": 16, "batch_size": 32}
EPOCHS = 5


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    train, validation = np_train_and_validation()
    return train.copy(), validation.copy()


def _model(seed: int = 42, max_steps: int = EPOCHS, **params) -> CnnLstmModel:
    return CnnLstmModel({**SMALL, **params}, feature_columns(REGION), seed=seed, max_steps=max_steps, device="cpu")


@pytest.fixture(scope="module")
def fitted(frames):
    train, validation = frames
    model = _model()
    result = model.fit(train, validation)
    return model, result


def _mae(frame: pd.DataFrame, predicted: np.ndarray) -> float:
    return float(np.mean(np.abs(frame[TARGET_COLUMN].to_numpy() - predicted)))


def test_cnn_lstm__predicts_one_finite_price_per_row_following_the_rows_of_a_shuffled_frame(frames, fitted):
    _, validation = frames
    model, _ = fitted
    predicted = model.predict(validation)
    assert predicted.shape == (len(validation),)
    assert np.isfinite(predicted).all()
    permutation = np.random.default_rng(0).permutation(len(validation))
    shuffled = validation.iloc[permutation]
    np.testing.assert_allclose(model.predict(shuffled), predicted[permutation], rtol=1e-12, atol=1e-9)
    # The anchor is added back: predictions sit at the price level, not around zero.
    assert abs(predicted.mean() - validation[TARGET_COLUMN].mean()) < 0.5 * validation[TARGET_COLUMN].std() + 5


def test_cnn_lstm__reports_the_mae_of_the_restored_best_epoch_which_predict_reproduces(frames, fitted):
    _, validation = frames
    model, result = fitted
    assert result.steps_run == len(result.history) <= EPOCHS
    assert result.best_step == int(np.argmin(result.history)) + 1
    assert result.validation_mae == min(result.history)
    assert _mae(validation, model.predict(validation)) == pytest.approx(result.validation_mae, rel=1e-6)


def test_cnn_lstm__beats_the_anchor_only_forecast_on_the_validation_window_after_five_epochs(frames, fitted):
    _, validation = frames
    _, result = fitted
    anchor_only = _mae(validation, validation[ANCHOR_COLUMN].to_numpy())
    assert len(set(result.history)) == len(result.history) > 1  # it learns: the MAE moves every epoch
    assert result.validation_mae < 0.9 * anchor_only


def test_cnn_lstm__stops_early_after_patience_epochs_without_improvement(frames):
    train, validation = frames
    # A learning rate this high overshoots quickly, so a patience of 1 ends the fit before 12 epochs.
    result = _model(max_steps=12, patience=1, learning_rate=0.05).fit(train, validation)
    assert result.steps_run == len(result.history) < 12
    assert result.steps_run - result.best_step == 1
    assert min(result.history) < min(result.history[result.best_step :])  # the epoch after the best was worse
    assert result.history[result.best_step - 1] == result.validation_mae


def test_cnn_lstm__same_seed_gives_identical_predictions_and_another_seed_different_ones(frames, fitted):
    train, validation = frames
    model, _ = fitted
    again = _model(seed=42)
    again.fit(train, validation)
    np.testing.assert_array_equal(again.predict(validation), model.predict(validation))
    other = _model(seed=7)
    other.fit(train, validation)
    assert np.max(np.abs(other.predict(validation) - model.predict(validation))) > 1e-3


def test_cnn_lstm__origin_every_k_fits_what_the_frame_of_every_kth_training_origin_fits(frames):
    train, validation = frames
    origins = np.sort(train["origin"].unique())
    kept = train[train["origin"].isin(origins[::2])]
    halved = _model(origin_every=2)
    halved.fit(train, validation)
    reference = _model()
    reference.fit(kept, validation)

    assert len(origins) > 100
    np.testing.assert_array_equal(halved.predict(validation), reference.predict(validation))
    with pytest.raises(ModelError, match="origin_every must be at least 1"):
        _model(origin_every=0).fit(train, validation)


def test_cnn_lstm__save_and_load_round_trip_gives_identical_predictions_from_plain_tensors(frames, fitted, tmp_path):
    _, validation = frames
    model, _ = fitted
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "weights.pt"]
    state = torch.load(tmp_path / "weights.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert any(k.startswith("lstm.") for k in state) and "head.weight" in state
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_class"] == "CnnLstmModel" and config["feature_columns"] == feature_columns(REGION)
    assert config["seed"] == 42 and config["params"]["channels"] == 8 and config["torch_version"] == torch.__version__
    assert len(config["feature_mean"]) == len(config["feature_std"]) == len(feature_columns(REGION))

    loaded = CnnLstmModel.load(tmp_path)
    assert loaded.device == ("cuda" if torch.cuda.is_available() else "cpu")
    np.testing.assert_allclose(loaded.predict(validation), model.predict(validation), rtol=0, atol=1e-4)
    if loaded.device == "cpu":
        np.testing.assert_array_equal(loaded.predict(validation), model.predict(validation))


def test_cnn_lstm__loading_a_folder_without_weights_is_a_model_error(frames, fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path)
    (tmp_path / "weights.pt").unlink()
    with pytest.raises(ModelError, match=r"weights.pt not found"):
        CnnLstmModel.load(tmp_path)


def test_cnn_lstm__scales_with_training_statistics_only_whatever_the_validation_values(frames, tmp_path):
    train, validation = frames
    inflated = validation.copy()
    numeric = [*feature_columns(REGION), TARGET_COLUMN]
    inflated[numeric] = inflated[numeric] * 1000
    configs = []
    for name, frame in (("normal", validation), ("inflated", inflated)):
        model = _model(max_steps=1)
        model.fit(train, frame)
        model.save(tmp_path / name)
        configs.append(json.loads((tmp_path / name / "config.json").read_text()))
    normal, scaled = configs
    for key in ("feature_mean", "feature_std", "target_mean", "target_std"):
        assert normal[key] == scaled[key], key
    # And they are the training frame's own statistics: the absolute level of the anchor column.
    anchor = feature_columns(REGION).index(ANCHOR_COLUMN)
    assert normal["feature_mean"][anchor] == pytest.approx(train[ANCHOR_COLUMN].mean(), rel=1e-9)
    relative = (train[TARGET_COLUMN] - train[ANCHOR_COLUMN]).to_numpy()
    assert normal["target_mean"] == pytest.approx(relative.mean(), rel=1e-9)
    assert normal["target_std"] == pytest.approx(relative.std(), rel=1e-9)
    # Price lags enter relative to the anchor, so their mean is near zero, not near the price level.
    lag = feature_columns(REGION).index("lag_24h")
    assert abs(normal["feature_mean"][lag]) < 0.2 * train[ANCHOR_COLUMN].mean()


def test_cnn_lstm__invariant_scaling_is_the_training_rows_median_and_mad_which_a_price_spike_barely_moves(
    frames, tmp_path
):
    """``scaling="invariant"``: centre and spread are the median and the normal-consistent MAD (statsmodels'
    ``robust.mad``, the scale epftoolbox's invariant transform uses), so a spike (5% of the training rows at
    20x their price) moves the target's spread a little where it moves the standard deviation a lot."""
    train, validation = frames
    spiked = train.copy()
    spike = spiked["origin"].isin(np.sort(spiked["origin"].unique())[:20])  # 20 of 409 origins
    spiked.loc[spike, TARGET_COLUMN] *= 20
    configs = {}
    for scaling in ("standard", "invariant"):
        for name, frame in (("plain", train), ("spiked", spiked)):
            model = _model(max_steps=1, scaling=scaling)
            model.fit(frame, validation)
            model.save(tmp_path / scaling / name)
            configs[scaling, name] = json.loads((tmp_path / scaling / name / "config.json").read_text())

    relative = (train[TARGET_COLUMN] - train[ANCHOR_COLUMN]).to_numpy()
    invariant = configs["invariant", "plain"]
    assert invariant["params"]["scaling"] == "invariant"
    assert invariant["target_mean"] == pytest.approx(np.median(relative), rel=1e-12)
    assert invariant["target_std"] == pytest.approx(mad(relative), rel=1e-12)
    anchor = feature_columns(REGION).index(ANCHOR_COLUMN)
    assert invariant["feature_mean"][anchor] == pytest.approx(train[ANCHOR_COLUMN].median(), rel=1e-12)
    assert invariant["feature_std"][anchor] == pytest.approx(mad(train[ANCHOR_COLUMN].to_numpy()), rel=1e-12)

    def moved(scaling: str) -> float:
        return configs[scaling, "spiked"]["target_std"] / configs[scaling, "plain"]["target_std"] - 1

    assert moved("standard") > 2.0  # the standard deviation triples
    assert 0 < moved("invariant") < 0.15  # the MAD grows by about the share of spiked rows


def test_cnn_lstm__invariant_scaling_learns_forecasts_round_trips_and_refuses_a_warm_start_across_scalings(
    frames, fitted, tmp_path
):
    train, validation = frames
    model = _model(scaling="invariant")
    result = model.fit(train, validation)
    predicted = model.predict(validation)
    assert np.isfinite(predicted).all()
    assert result.validation_mae == pytest.approx(_mae(validation, predicted), rel=1e-9)
    assert result.validation_mae < 0.9 * _mae(validation, validation[ANCHOR_COLUMN].to_numpy())
    standard, _ = fitted
    assert np.max(np.abs(predicted - standard.predict(validation))) > 1e-3  # another model, not a relabelled one

    model.save(tmp_path)
    np.testing.assert_array_equal(CnnLstmModel.load(tmp_path).predict(validation), predicted)
    with pytest.raises(ModelError, match=r"another architecture \(scaling standard -> invariant\)"):
        _model(scaling="invariant").fit(train, validation, start_from=standard)
    with pytest.raises(ModelError, match="scaling 'robust' is not one of standard, invariant"):
        _model(scaling="robust")


def test_cnn_lstm__a_warm_start_continues_from_the_start_models_weights_and_scaling_and_leaves_it_unchanged(
    frames, fitted
):
    train, validation = frames
    start, started = fitted
    before = start.predict(validation)
    later = train[train["origin"] >= train["origin"].quantile(0.5)]  # another training window: its own statistics
    warm = _model(seed=43, max_steps=3)
    result = warm.fit(later, validation, start_from=start)

    # the start's scaling, not the later window's (whose anchor mean differs)
    np.testing.assert_array_equal(warm._feature_mean, start._feature_mean)
    assert (warm._target_mean, warm._target_std) == (start._target_mean, start._target_std)
    anchor = feature_columns(REGION).index(ANCHOR_COLUMN)
    assert warm._feature_mean[anchor] != pytest.approx(later[ANCHOR_COLUMN].mean(), rel=1e-6)
    # epoch 0 is the start as it is: the fit is never worse on the validation than the start
    assert result.validation_mae <= started.validation_mae
    assert result.history and len(result.history) == result.steps_run <= 3
    if result.best_step == 0:
        np.testing.assert_array_equal(warm.predict(validation), before)
    else:
        assert result.validation_mae == result.history[result.best_step - 1] < started.validation_mae
    assert _mae(validation, warm.predict(validation)) == pytest.approx(result.validation_mae, rel=1e-6)
    # training went on from the start's weights: after one epoch the warm fit is far nearer the start
    # than a cold fit of the same seed and epochs is
    one_warm, one_cold = _model(seed=43, max_steps=1), _model(seed=43, max_steps=1)
    one_warm.fit(later, validation, start_from=start)
    one_cold.fit(later, validation)
    assert (
        np.abs(one_warm.predict(validation) - before).mean()
        < 0.5 * np.abs(one_cold.predict(validation) - before).mean()
    )
    np.testing.assert_array_equal(start.predict(validation), before)  # the start model is untouched


def test_cnn_lstm__a_warm_start_from_another_architecture_or_an_unfitted_model_is_a_model_error(frames, fitted):
    train, validation = frames
    start, _ = fitted
    with pytest.raises(ModelError, match=r"start_from has another architecture \(hidden_size 16 -> 32\)"):
        _model(hidden_size=32).fit(train, validation, start_from=start)
    with pytest.raises(ModelError, match="start_from is not fitted"):
        _model().fit(train, validation, start_from=_model())
    other_columns = CnnLstmModel(SMALL, feature_columns(REGION)[:-1], max_steps=1)
    with pytest.raises(ModelError, match="start_from was trained on other features"):
        other_columns.fit(train, validation, start_from=start)


def test_cnn_lstm__several_networks_forecast_the_mean_of_the_single_networks_of_their_seeds(frames, fitted, tmp_path):
    train, validation = frames
    single, single_result = fitted  # seed 42, one network
    other = _model(seed=43)
    other_result = other.fit(train, validation)
    pair = _model(seed=42, networks=2)
    result = pair.fit(train, validation)

    expected = (single.predict(validation) + other.predict(validation)) / 2
    np.testing.assert_allclose(pair.predict(validation), expected, rtol=0, atol=1e-9)
    assert result.validation_mae == pytest.approx(_mae(validation, expected), rel=1e-9)
    assert result.steps_run == single_result.steps_run + other_result.steps_run
    assert (result.best_step, result.history) == (single_result.best_step, single_result.history)
    # the mean of two draws beats the worse draw (the errors are not identical)
    assert result.validation_mae < max(single_result.validation_mae, other_result.validation_mae)

    pair.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "weights.pt", "weights_1.pt"]
    np.testing.assert_array_equal(CnnLstmModel.load(tmp_path).predict(validation), pair.predict(validation))
    (tmp_path / "weights_1.pt").unlink()
    with pytest.raises(ModelError, match=r"cannot load .*weights_1.pt"):
        CnnLstmModel.load(tmp_path)
    with pytest.raises(ModelError, match="networks must be at least 1, got 0"):
        _model(networks=0).fit(train, validation)


def test_cnn_lstm__a_warm_start_of_more_networks_than_the_start_has_starts_the_others_from_scratch(frames, fitted):
    train, validation = frames
    start, _ = fitted  # one network, fitted on `train`: its scaling is what `train` gives a cold fit
    warm_pair = _model(seed=42, max_steps=1, networks=2)
    warm_pair.fit(train, validation, start_from=start)
    warm_first = _model(seed=42, max_steps=1)
    warm_first.fit(train, validation, start_from=start)
    cold_second = _model(seed=43, max_steps=1)
    cold_second.fit(train, validation)

    def weights(model: CnnLstmModel, k: int) -> dict[str, torch.Tensor]:
        return model._nets[k].state_dict()

    for name, value in weights(warm_pair, 0).items():
        assert torch.equal(value, weights(warm_first, 0)[name]), name  # network 0: warm, from the start's network
    for name, value in weights(warm_pair, 1).items():
        assert torch.equal(value, weights(cold_second, 0)[name]), name  # network 1: seed 43 from scratch
    assert not torch.equal(weights(warm_pair, 1)["head.weight"], weights(start, 0)["head.weight"])


def test_cnn_lstm__calls_report_with_each_epoch_and_its_validation_mae(frames):
    train, validation = frames
    calls: list[tuple[int, float]] = []
    result = _model(max_steps=3).fit(train, validation, report=lambda step, mae: calls.append((step, mae)))
    assert [step for step, _ in calls] == list(range(1, result.steps_run + 1))
    assert [mae for _, mae in calls] == result.history


def test_cnn_lstm__lets_a_trial_pruned_raised_by_report_propagate_out_of_fit(frames):
    train, validation = frames
    epochs: list[int] = []

    def prune_at_second_epoch(step: int, mae: float) -> None:
        epochs.append(step)
        if step == 2:
            raise optuna.TrialPruned(f"pruned at epoch {step}")

    with pytest.raises(optuna.TrialPruned, match="epoch 2"):
        _model(max_steps=5).fit(train, validation, report=prune_at_second_epoch)
    assert epochs == [1, 2]


def test_cnn_lstm__an_origin_with_23_rows_is_a_model_error_naming_the_origin(frames, fitted):
    train, validation = frames
    model, _ = fitted
    origin = validation["origin"].iloc[48]
    short = validation.drop(index=validation.index[(validation["origin"] == origin).to_numpy()][-1:])
    with pytest.raises(ModelError, match=f"cnn_lstm: origin {re.escape(str(origin))} has 23 rows"):
        model.predict(short)
    with pytest.raises(ModelError, match=f"origin {re.escape(str(origin))} has 23 rows"):
        _model(max_steps=1).fit(train, short)


def test_cnn_lstm__an_origin_without_its_anchor_is_refused_at_prediction(frames, fitted):
    _, validation = frames
    model, _ = fitted
    broken = validation.copy()
    origin = broken["origin"].iloc[24]
    broken.loc[broken["origin"] == origin, ANCHOR_COLUMN] = np.nan
    expected = f"cnn_lstm: 1 prediction origin(s) (first {origin}) lack the last 24 hours"
    with pytest.raises(ModelError, match=re.escape(expected)):
        model.predict(broken)


def test_cnn_lstm__predict_before_fit_is_a_model_error(frames):
    _, validation = frames
    with pytest.raises(ModelError, match="not fitted"):
        _model().predict(validation)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cnn_lstm__device_cuda_without_a_gpu_is_a_model_error_and_auto_falls_back_to_cpu():
    with pytest.raises(ModelError, match="cnn_lstm: device 'cuda' requested but torch finds no CUDA GPU"):
        CnnLstmModel(SMALL, feature_columns(REGION), device="cuda")
    assert CnnLstmModel(SMALL, feature_columns(REGION), device="auto").device == "cpu"
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        CnnLstmModel(SMALL, feature_columns(REGION), device="tpu")


def test_cnn_lstm__search_space_holds_the_defaults_and_keeps_patience_fixed():
    defaults = CnnLstmModel.default_params()
    tunable = {k: v for k, v in defaults.items() if k not in ("patience", "networks")}
    assert CnnLstmModel.suggest_params(optuna.trial.FixedTrial(tunable)) == defaults
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = CnnLstmModel.suggest_params(study.ask())
        assert params["patience"] == 6 and params["networks"] == 1
        assert params["channels"] in (16, 32, 64) and params["kernel_size"] in (3, 5)
        assert 3e-4 <= params["learning_rate"] <= 5e-3 and 1 <= params["num_layers"] <= 2
