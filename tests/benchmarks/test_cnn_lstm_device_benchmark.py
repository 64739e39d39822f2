"""The CNN-LSTM device benchmark: a real smoke-budget study on NP, its record and the table built from it.

The study is the retraining's own (same window and splits, smoke budget: 2 trials of at most 3
epochs, about 15 s on 2 cores); the table is rebuilt from the JSON it wrote, so a recorded
figure cannot drift from its row.
"""

from __future__ import annotations

import json

import pytest
import torch

import benchmarks.cnn_lstm_device as bench


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    return tmp_path


def test_cnn_lstm_device__a_smoke_study_on_np_is_recorded_and_tabled(results, monkeypatch):
    monkeypatch.setattr(bench, "EPOCH_CONFIGS", {"default": {}})  # the largest networks take minutes on CPU
    monkeypatch.setattr(bench, "THROUGHPUT_EPOCHS", 2)
    bench.main(["--device", "cpu", "--regions", "NP", "--budgets", "smoke", "--threads", "1", "--git-commit", "abc123"])

    recorded = json.loads((results / "cnn_lstm_cpu.json").read_text())
    assert recorded["machine"]["git_commit"] == "abc123" and recorded["torch"] == torch.__version__
    study = recorded["regions"]["NP"]["smoke"]
    assert (study["trials_budget"], study["max_epochs"]) == (2, 3)
    assert study["complete"] + study["pruned"] == 2 and not study["stopped_by_timeout"]
    assert 1 <= study["best_epoch"] <= study["epochs_run"] <= 3
    assert 0.5 < study["test_mae"] < 20 and 0 < study["test_rmae"] < 1.5  # NP in EUR/MWh; better than twice the naive
    epoch = recorded["epochs"]["default"]
    assert (epoch["train_origins"], epoch["batches_per_epoch"]) == (2092, 33)  # 2 years, origins every 7 h, batch 64
    assert epoch["seconds_per_epoch"] > 0 and epoch["first_fit_seconds"] > 0

    table = (results / "cnn_lstm_devices.md").read_text()
    assert (
        f"| {recorded['device_name']} | NP | smoke | 2 ({study['pruned']}) | {study['tuning_seconds']:.1f} |" in table
    )
    assert f"| {study['test_mae']:.3f} | {study['test_rmae']:.3f} |" in table
    assert f"| {recorded['device_name']} | default | 33 | {epoch['seconds_per_epoch']:.3f} |" in table
    assert "commit abc123" in table


def test_cnn_lstm_device__cuda_without_a_gpu_says_so_and_what_to_run(results):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(SystemExit, match="finds no CUDA GPU; run with --device cpu"):
        bench.main(["--device", "cuda", "--regions", "NP"])
    assert not list(results.iterdir())
