"""Optuna studies of superseded windows: the newest per region and model stay, a running one stays, others go."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from retention.optuna_studies import remove_superseded_studies
from training.tuning import study_name


@pytest.fixture
def storage_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for window_end in ("2018-11-26 23:00", "2018-12-03 23:00", "2018-12-10 23:00", "2018-12-17 23:00"):
        for region, model in (("NP", "xgboost"), ("PJM", "lightgbm")):
            study = optuna.create_study(study_name=study_name(region, model, _utc(window_end)), storage=url)
            study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    optuna.create_study(study_name="someone-elses-study", storage=url)
    # a backfill tuning an old window right now: a trial started and not finished
    backfill = optuna.create_study(study_name=study_name("NP", "cnn_lstm", _utc("2018-10-01 23:00")), storage=url)
    backfill.ask()
    for window_end in ("2018-12-10 23:00", "2018-12-17 23:00"):  # two newer: the backfill's is past the newest two
        optuna.create_study(study_name=study_name("NP", "cnn_lstm", _utc(window_end)), storage=url)
    return url


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_remove_superseded_studies__keeps_the_newest_per_series_and_running_ones(storage_url):
    dry = remove_superseded_studies(storage_url, 2, dry_run=True)
    assert sorted(r.item.split()[2] for r in dry.removals) == [
        "eopt-NP-xgboost-2018112623",
        "eopt-NP-xgboost-2018120323",
        "eopt-PJM-lightgbm-2018112623",
        "eopt-PJM-lightgbm-2018120323",
    ]
    assert dry.rows == 8
    assert any("eopt-NP-cnn_lstm-2018100123 has a trial running" in note for note in dry.notes)
    assert len(optuna.get_all_study_names(storage_url)) == 12

    real = remove_superseded_studies(storage_url, 2, dry_run=False)
    assert real.removals == dry.removals
    assert sorted(optuna.get_all_study_names(storage_url)) == [
        "eopt-NP-cnn_lstm-2018100123",
        "eopt-NP-cnn_lstm-2018121023",
        "eopt-NP-cnn_lstm-2018121723",
        "eopt-NP-xgboost-2018121023",
        "eopt-NP-xgboost-2018121723",
        "eopt-PJM-lightgbm-2018121023",
        "eopt-PJM-lightgbm-2018121723",
        "someone-elses-study",
    ]
    assert remove_superseded_studies(storage_url, 2, dry_run=False).count == 0


def test_remove_superseded_studies__no_storage_yet_creates_none(tmp_path):
    report = remove_superseded_studies(f"sqlite:///{tmp_path / 'optuna.db'}", 2, dry_run=True)
    assert report.count == 0 and not (tmp_path / "optuna.db").exists()
