"""Optuna tuning on real Nord Pool history: budgets, resuming, warm starts, storage errors, killed and parallel workers.

In-process tunes use 90 days of training origins and two weeks of validation with at most 100
boosting rounds, so a trial takes a fraction of a second; the MedianPruner's 250-step warm-up
then never prunes, which makes the trial counts exact. The kill and the parallel tests run
``tests/tuning_worker.py`` as real processes. OpenMP is limited to one thread per process: on
the shared two-core test machine, spinning OpenMP threads of competing processes slow a fit
10-30x, and the trees do not depend on the thread count.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits

from core.settings import Settings, SettingsError
from tests.tuning_worker import build_frames
from training.config import ModelBudget, TrainingConfig
from training.features import feature_columns
from training.models.gradient_boosting import LightGBMModel
from training.tuning import TuningError, fail_orphaned_trials, open_storage, study_name, tune

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REGION = "NP"
BUDGET = ModelBudget(trials=4, timeout_s=120, max_rounds=100)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Parameters that differ from the defaults in every key, inside the search space.
OTHER_PARAMS = {
    "objective": "huber",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.7,
    "lambda_l2": 1.0,
}


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """90 days of training origins from 2014-01-01, then 14 validation days: the window ends 2014-04-15 UTC."""
    return build_frames(train_days=90, validation_days=14)


def _tune(frames, url: str, budget: ModelBudget = BUDGET, window_end: pd.Timestamp | None = None, **kwargs):
    train, validation, end = frames
    return tune(
        "lightgbm",
        REGION,
        train,
        validation,
        feature_columns(REGION),
        budget=budget,
        storage_url=url,
        window_end=window_end if window_end is not None else end,
        **kwargs,
    )


def _trials(url: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


@pytest.fixture(scope="module")
def first_study(tmp_path_factory, frames):
    """A fresh study tuned to BUDGET in SQLite: its folder, URL, result and the trials on_trial saw."""
    folder = tmp_path_factory.mktemp("first_study")
    url = f"sqlite:///{folder / 'optuna.db'}"
    seen: list = []
    result = _tune(frames, url, on_trial=seen.append)
    return folder, url, result, seen


def test_tuning__the_study_is_named_by_region_model_and_the_utc_hour_the_window_ends():
    # Midnight in Oslo on 25 December 2018 is 23:00 UTC on the 24th; in New York in July, 04:00 UTC.
    oslo = pd.Timestamp("2018-12-25 00:00", tz="Europe/Oslo")
    new_york = pd.Timestamp("2016-07-01 00:00", tz="America/New_York")
    assert study_name("NP", "lightgbm", oslo) == "eopt-NP-lightgbm-2018122423"
    assert study_name("PJM", "xgboost", new_york) == "eopt-PJM-xgboost-2016070104"


def test_tuning__a_new_study_runs_the_default_parameters_first_and_stops_at_the_trial_budget(first_study, frames):
    _, url, result, _ = first_study
    assert frames[2] == pd.Timestamp("2014-04-15", tz="UTC")
    assert result.study_name == study_name(REGION, "lightgbm", frames[2]) == "eopt-NP-lightgbm-2014041500"
    assert result.complete + result.pruned == 4
    assert (result.complete, result.pruned, result.failed, result.ran_now) == (4, 0, 0, 4)  # no pruning before step 250
    trials = _trials(url, result.study_name)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert trials[0].params == LightGBMModel.default_params()
    assert trials[0].user_attrs["origin"] == "default parameters"
    assert all("origin" not in t.user_attrs for t in trials[1:])  # TPE's proposals
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    best = min(trials, key=lambda t: t.value)
    assert (result.best_trial, result.best_value, result.best_params) == (best.number, best.value, best.params)
    assert all(1 <= t.user_attrs["best_step"] <= 100 and t.user_attrs["fit_seconds"] > 0 for t in trials)
    assert 0.5 < result.best_value < 1.5  # validation MAE in EUR/MWh of a sound fit on this window


def test_tuning__on_trial_sees_every_finished_trial_once_as_a_frozen_trial(first_study):
    _, url, result, seen = first_study
    assert all(isinstance(t, FrozenTrial) for t in seen)
    assert [t.number for t in seen] == [0, 1, 2, 3]
    assert [t.state for t in seen] == [TrialState.COMPLETE] * 4
    assert [t.value for t in seen] == [t.value for t in _trials(url, result.study_name)]


def test_tuning__rerunning_a_study_that_met_its_budget_runs_nothing_and_a_larger_budget_runs_only_the_difference(
    first_study, frames, tmp_path
):
    folder, _, first, _ = first_study
    for path in folder.iterdir():  # a copy, so the other tests keep the four-trial study
        shutil.copy(path, tmp_path / path.name)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    seen: list = []
    again = _tune(frames, url, on_trial=seen.append)
    assert again.ran_now == 0 and seen == []
    assert (again.study_name, again.best_trial, again.best_value, again.best_params) == (
        first.study_name,
        first.best_trial,
        first.best_value,
        first.best_params,
    )
    more = _tune(frames, url, budget=ModelBudget(trials=6, timeout_s=120, max_rounds=100), on_trial=seen.append)
    assert more.ran_now == 2 and [t.number for t in seen] == [4, 5]
    assert more.complete + more.pruned == 6
    assert len(_trials(url, first.study_name)) == 6
    assert more.best_value <= first.best_value


def _earlier_study(url: str, window_end: pd.Timestamp, winner: dict, loser: dict) -> None:
    """A finished lightgbm study for ``window_end`` whose best trial ran ``winner``."""
    study = optuna.create_study(study_name=study_name(REGION, "lightgbm", window_end), storage=url)
    study.enqueue_trial(loser)
    study.enqueue_trial(winner)

    def objective(trial: optuna.Trial) -> float:
        LightGBMModel.suggest_params(trial)  # the enqueued values, with the model's distributions
        return {0: 2.0, 1: 1.0}[trial.number]

    study.optimize(objective, n_trials=2)
    assert study.best_trial.params == winner


def test_tuning__a_new_study_runs_the_previous_studys_best_parameters_second(frames, tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    end = frames[2]
    _earlier_study(url, end - pd.Timedelta(days=7), OTHER_PARAMS, LightGBMModel.default_params())
    # A study of a later window is not "previous": its best must not be used.
    _earlier_study(url, end + pd.Timedelta(days=7), {**OTHER_PARAMS, "num_leaves": 99}, LightGBMModel.default_params())
    result = _tune(frames, url, budget=ModelBudget(trials=2, timeout_s=120, max_rounds=100))
    trials = _trials(url, result.study_name)
    assert [t.params for t in trials] == [LightGBMModel.default_params(), OTHER_PARAMS]
    assert [t.user_attrs["origin"] for t in trials] == ["default parameters", "previous study's best"]


def test_tuning__a_previous_best_equal_to_the_defaults_is_not_run_twice(frames, tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    end = frames[2]
    _earlier_study(url, end - pd.Timedelta(days=7), LightGBMModel.default_params(), OTHER_PARAMS)
    result = _tune(frames, url, budget=ModelBudget(trials=2, timeout_s=120, max_rounds=100))
    trials = _trials(url, result.study_name)
    assert trials[0].params == LightGBMModel.default_params()
    assert "origin" not in trials[1].user_attrs  # TPE's first proposal, not a second run of the defaults
    assert trials[1].params != LightGBMModel.default_params()


def test_tuning__an_unreachable_storage_fails_fast_naming_it_without_its_password(frames):
    started = time.perf_counter()
    with pytest.raises(TuningError) as raised:
        _tune(frames, "postgresql+psycopg2://eopt:secret@127.0.0.1:1/optuna")
    assert time.perf_counter() - started < 30
    message = str(raised.value)
    assert message.startswith(
        "NP/lightgbm: Optuna study storage postgresql+psycopg2://eopt:***@127.0.0.1:1/optuna is unreachable"
    )
    assert "secret" not in message
    assert "EOPT_OPTUNA_STORAGE" in message


# -- real worker processes ----------------------------------------------------------------------

WORKER_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _worker(url: str, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tests.tuning_worker", "--storage", url, "--trials", str(trials), *extra]


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _wait_for_study(url: str, name: str, proc: subprocess.Popen, deadline: float) -> optuna.Study:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the worker exited ({proc.returncode}) before its study existed: {proc.stderr.read()}")
        try:
            return optuna.load_study(study_name=name, storage=url)
        except KeyError:
            time.sleep(0.05)
    pytest.fail(f"study {name} did not appear in {url}")


def test_tuning__a_killed_tuning_process_resumes_its_study_without_rerunning_finished_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    name = "eopt-NP-lightgbm-2014081000"  # 200 training + 21 validation days from 2014-01-01
    # Heartbeats every second and a 2 s grace, so the rerun sees the killed trial as stale.
    command = _worker(url, 8, "--max-rounds", "300", "--heartbeat-interval", "1", "--grace-period", "2")
    proc = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=WORKER_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 90
        study = _wait_for_study(url, name, proc, deadline)
        while True:  # kill once two trials finished, while the next one fits (it has parameters and a score)
            trials = study.get_trials(deepcopy=False)
            finished = [t for t in trials if t.state in FINISHED]
            if len(finished) >= 2 and any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials):
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert proc.poll() is None, f"the worker finished before it could be killed: {proc.stderr.read()}"
            assert time.monotonic() < deadline, f"no second finished trial in 90 s: {[t.state for t in trials]}"
            time.sleep(0.05)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    study_id = study._study_id
    before = {t.number: t for t in optuna.load_study(study_name=name, storage=url).trials}
    done_before = {n: t for n, t in before.items() if t.state in FINISHED}
    running = [t for t in before.values() if t.state == TrialState.RUNNING]
    assert len(done_before) >= 2 and len(running) == 1
    killed = running[0]

    rerun = subprocess.run(command, cwd=PROJECT_ROOT, env=WORKER_ENV, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    events = _events(rerun.stdout)
    result = events[-1]
    assert result["event"] == "result" and result["study_name"] == name

    study = optuna.load_study(study_name=name, storage=url)
    assert study._study_id == study_id and optuna.get_all_study_names(url) == [name]
    after = study.trials
    assert sum(t.state in FINISHED for t in after) == 8
    assert result["complete"] + result["pruned"] == 8
    assert result["ran_now"] == 8 - len(done_before)
    assert sorted(t.number for t in after) == list(range(len(after)))
    # Trials finished before the kill were kept as they were, not run again.
    for number, trial in done_before.items():
        kept = after[number]
        assert (kept.state, kept.params, kept.value, kept.datetime_complete) == (
            trial.state,
            trial.params,
            trial.value,
            trial.datetime_complete,
        )
    rerun_numbers = [e["number"] for e in events if e["event"] == "trial"]
    assert len(rerun_numbers) == result["ran_now"] and not set(rerun_numbers) & set(done_before)
    # The killed trial was failed by the heartbeat check and retried once with its parameters.
    assert after[killed.number].state == TrialState.FAIL
    assert [t.state for t in after].count(TrialState.FAIL) == 1
    assert not [t for t in after if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retries = [t for t in after if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.system_attrs["retry_history"] == [killed.number]
    assert retry.params == killed.params and retry.state in FINISHED
    assert retry.number in rerun_numbers and retry.number > killed.number
    assert len(after) == 9  # 8 finished + the killed one


def test_tuning__a_trial_left_running_without_a_heartbeat_is_failed_and_retried_once_it_is_older_than_the_grace(
    frames, tmp_path
):
    """A worker killed between creating a trial and its first heartbeat: Optuna alone never fails that trial."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _train, _validation, end = frames
    name = study_name(REGION, "lightgbm", end)
    study = optuna.create_study(
        study_name=name, storage=open_storage(url, heartbeat_interval=1, grace_period=1), direction="minimize"
    )
    study.enqueue_trial(LightGBMModel.default_params())
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: heartbeats are for Study.optimize
        orphan = study.ask()  # RUNNING, with the enqueued parameters fixed, and no heartbeat row
    assert orphan.params == {}

    # Younger than the grace period: it may be a live worker's trial that is about to beat; left alone.
    assert fail_orphaned_trials(study, open_storage(url, heartbeat_interval=1, grace_period=60), 60) == []
    assert _trials(url, name)[orphan.number].state == TrialState.RUNNING

    time.sleep(1.5)
    result = _tune(
        frames, url, budget=ModelBudget(trials=2, timeout_s=120, max_rounds=100), heartbeat_interval=1, grace_period=1
    )
    trials = _trials(url, name)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    retry = trials[1]
    assert retry.system_attrs["failed_trial"] == orphan.number and retry.system_attrs["retry_history"] == [0]
    assert retry.params == LightGBMModel.default_params()  # the enqueued parameters travel with the retry
    assert (result.complete, result.failed, result.ran_now) == (2, 1, 2)


@pytest.mark.integration
def test_tuning__two_workers_started_together_share_one_postgresql_study(postgres_url):
    """Both processes finish trials of the one study; no trial number is used twice.

    Each worker counts the finished trials when it starts and runs up to its budget of 6, so
    the study ends with 6 to 12 finished trials depending on how the two starts interleave.
    Which process ran a trial is read from the ``trial`` lines the worker prints (``on_trial``
    runs in the process that finished the trial). Asserted: both exit 0 on the same study; no
    trial is left running, waiting or failed; trial numbers are unique and gap-free; each
    worker finished at least one trial, none twice, together exactly the finished ones, and its
    ``ran_now`` counts only its own; their tuning spans overlap in time. The database is new,
    so the two also race to create Optuna's tables (``open_storage`` retries the loser).
    """
    command = _worker(postgres_url, 6, "--max-rounds", "150", "--train-days", "120")
    procs = [
        subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=WORKER_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=150) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, (_, stderr) in zip(procs, outputs, strict=False):
        assert proc.returncode == 0, stderr[-3000:]
    events = [_events(stdout) for stdout, _ in outputs]
    results = [e[-1] for e in events]
    assert all(r["event"] == "result" for r in results)
    name = results[0]["study_name"]
    assert name == results[1]["study_name"] == "eopt-NP-lightgbm-2014052200"  # 120 + 21 days from 2014-01-01

    trials = optuna.load_study(study_name=name, storage=postgres_url).trials
    finished = [t for t in trials if t.state in FINISHED]
    assert 6 <= len(finished) <= 12
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)]
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))  # unique and gap-free
    ran = [[e["number"] for e in worker if e["event"] == "trial"] for worker in events]
    assert all(ran), f"a worker finished no trial: {ran}"
    assert not set(ran[0]) & set(ran[1])
    assert sorted(ran[0] + ran[1]) == sorted(t.number for t in finished)
    assert [len(r) for r in ran] == [r["ran_now"] for r in results]
    # The two workers tuned at the same time: each started a trial before the other's last one ended.
    spans = [
        (
            min(t.datetime_start for t in trials if t.number in r),
            max(t.datetime_complete for t in trials if t.number in r),
        )
        for r in ran
    ]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]


def test_final_params__give_the_cnn_lstm_the_budgets_networks_and_leave_the_tuned_parameters_alone():
    config = TrainingConfig.from_settings(Settings.from_env({}), "smoke")  # one network: tests and the demo
    tuned = {"channels": 32, "patience": 6, "networks": 1}  # what a trial fits: one network
    assert config.final_params("cnn_lstm", tuned) == tuned and "cnn_lstm_networks" not in config.describe()
    three = config.with_networks("cnn_lstm", 3)
    assert three.final_params("cnn_lstm", tuned) == {**tuned, "networks": 3}
    assert three.final_params("xgboost", {"max_depth": 6}) == {"max_depth": 6}
    assert three.describe()["cnn_lstm_networks"] == 3 and config.budget("cnn_lstm").networks == 1  # a copy
    for weekly in ("default", "thorough"):  # the weekly retraining's member is the mean of three
        budget = TrainingConfig.from_settings(Settings.from_env({}), weekly)
        assert budget.final_params("cnn_lstm", tuned) == {**tuned, "networks": 3}
    with pytest.raises(SettingsError, match="cnn_lstm: networks must be at least 1, got 0"):
        config.with_networks("cnn_lstm", 0)
