"""Optuna tuning of one model for one region, on the time-ordered validation window.

- One study per region, model and training window (``study_name``), in RDB storage
  (``EOPT_OPTUNA_STORAGE``): a killed run rerun on the same window resumes its study, and
  several workers pointed at one PostgreSQL storage share it (TPE with ``constant_liar``).
- A new study runs the model's default parameters first, then the best parameters of the
  region's previous study of that model (last week's winner), then TPE's proposals.
- Models report the validation MAE while fitting; a ``MedianPruner`` stops trials that trail.
- The budget is a number of trials for the study (finished ones count, so a resumed study only
  runs what is left) and a timeout for this run. Heartbeats mark a killed worker's trial as
  failed, and it is retried once. A worker killed between creating a trial and its first
  heartbeat leaves a trial Optuna never fails (it has no heartbeat to go stale); ``tune``
  fails and retries such orphans once they are older than the grace period.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import optuna
import pandas as pd
import sqlalchemy as sa
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from storage.database import safe_url
from training.config import ModelBudget
from training.models import model_class

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 30
HEARTBEAT_GRACE_S = 90
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class TuningError(RuntimeError):
    """Tuning cannot run or produced no usable trial; the message names region, model and cause."""


@dataclass(frozen=True)
class TuningResult:
    study_name: str
    best_params: dict
    best_value: float
    best_trial: int
    complete: int
    pruned: int
    failed: int
    ran_now: int  # trials this run finished (0 when a resumed study had met its budget)
    seconds: float

    def describe(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "best_params"}


def study_name(region: str, model: str, window_end: pd.Timestamp) -> str:
    """``eopt-NP-lightgbm-2018122423``: one study per region, model and training window."""
    return f"eopt-{region}-{model}-{pd.Timestamp(window_end).tz_convert('UTC'):%Y%m%d%H}"


def open_storage(
    url: str, *, heartbeat_interval: int = HEARTBEAT_INTERVAL_S, grace_period: int = HEARTBEAT_GRACE_S, where: str = ""
) -> RDBStorage:
    """The study storage, or a ``TuningError`` that says where it is and what to check."""
    try:
        kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
        if url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 60}}
        attempts = 3
        while True:
            attempts -= 1
            try:
                with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8; we rely on them
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(
                        url,
                        engine_kwargs=kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                    )
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                # Workers opening a new storage at once race to create its tables (PostgreSQL:
                # duplicate key in pg_type); the loser finds them created when it tries again.
                if not attempts:
                    raise
                time.sleep(0.5)
    except (sa.exc.SQLAlchemyError, OSError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise TuningError(
            f"{where}Optuna study storage {safe_url(url)} is unreachable: {reason}; "
            "check EOPT_OPTUNA_STORAGE and that its database server is up"
        ) from None


def fail_orphaned_trials(study: optuna.Study, storage: RDBStorage, grace_period: int, where: str = "") -> list[int]:
    """Fail (and retry once) running trials that never recorded a heartbeat and started over ``grace_period`` s ago.

    Optuna's heartbeat check skips a running trial with no heartbeat row: a worker killed after
    creating the trial but before its heartbeat thread first wrote would leave it running for
    ever. Start times are the creating worker's clock, so workers on several machines need
    clocks that agree to well within the grace period. Returns the numbers of the trials failed.
    """
    cutoff = datetime.now() - timedelta(seconds=grace_period)
    old = {
        t._trial_id: t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.datetime_start is not None and t.datetime_start < cutoff
    }
    if not old:
        return []
    query = sa.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    with storage.engine.connect() as connection:
        beating = {row[0] for row in connection.execute(query, {"ids": list(old)})}
    retry = storage.get_heartbeat_stale_trial_callback()
    failed = []
    for trial_id, trial in old.items():
        if trial_id in beating:
            continue  # Optuna's own heartbeat check handles it
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker finished or failed it first
            continue
        log.warning(
            "%strial %d of study %s was left running with no heartbeat since %s (its worker died); "
            "marked failed (retried once at most)",
            where,
            trial.number,
            study.study_name,
            trial.datetime_start,
        )
        failed.append(trial.number)
        if retry is not None:
            retry(study, storage.get_trial(trial_id))
    return failed


def _previous_best(storage: RDBStorage, region: str, model: str, current: str) -> dict | None:
    prefix = f"eopt-{region}-{model}-"
    earlier = sorted(
        (s for s in storage.get_all_studies() if s.study_name.startswith(prefix) and s.study_name < current),
        key=lambda s: s.study_name,
    )
    for summary in reversed(earlier):  # FrozenStudy: name and id only, no trials
        try:
            best = storage.get_best_trial(storage.get_study_id_from_name(summary.study_name))
        except ValueError:  # no completed trial in that study
            continue
        return dict(best.params)
    return None


def tune(
    model: str,
    region: str,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    feature_columns: list[str],
    *,
    budget: ModelBudget,
    storage_url: str,
    window_end: pd.Timestamp,
    seed: int = 42,
    device: str = "cpu",
    threads: int = 0,
    on_trial: Callable[[FrozenTrial], None] | None = None,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int = HEARTBEAT_GRACE_S,
) -> TuningResult:
    """Run (or resume) the study of ``model`` for ``region`` up to its budget and return the best trial."""
    cls = model_class(model)
    where = f"{region}/{model}: "
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial is logged once, below, with its region and model
    storage = open_storage(storage_url, heartbeat_interval=heartbeat_interval, grace_period=grace_period, where=where)
    name = study_name(region, model, window_end)
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=5)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=cls.pruning_warmup_steps)
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, pruner=pruner, direction="minimize", load_if_exists=True
        )
        if not study.trials:
            study.enqueue_trial(cls.default_params(), user_attrs={"origin": "default parameters"})
            previous = _previous_best(storage, region, model, name)
            if previous and previous != cls.default_params():
                study.enqueue_trial(previous, user_attrs={"origin": "previous study's best"}, skip_if_exists=True)
        fail_orphaned_trials(study, storage, grace_period, where)
    except sa.exc.SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc  # only DBAPIError carries the driver's error as .orig
        raise TuningError(f"{where}cannot open study {name} in {safe_url(storage_url)}: {reason}") from None

    def objective(trial: optuna.Trial) -> float:
        params = cls.suggest_params(trial)
        fitted = cls(
            params,
            feature_columns,
            seed=seed,
            max_steps=budget.max_epochs or budget.max_rounds,
            device=device,
            threads=threads,
        )

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation MAE {value:.4f} at step {step} trails the median")

        started = time.perf_counter()
        result = fitted.fit(train, validation, report)
        trial.set_user_attr("best_step", result.best_step)
        trial.set_user_attr("fit_seconds", round(time.perf_counter() - started, 3))
        return result.validation_mae

    ran: list[FrozenTrial] = []  # finished by this run (other workers may share the study)

    def log_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state in FINISHED:
            ran.append(trial)
        log.info(
            "%s trial %d %s: %s",
            where,
            trial.number,
            trial.state.name,
            f"validation MAE {trial.value:.4f}" if trial.value is not None else "no value",
        )
        if on_trial is not None:
            on_trial(trial)

    done = sum(t.state in FINISHED for t in study.trials)
    remaining = max(0, budget.trials - done)
    started = time.perf_counter()
    if remaining:
        log.info(
            "%sstudy %s: %d trial(s) done, running up to %d more (timeout %.0f s)",
            where,
            name,
            done,
            remaining,
            budget.timeout_s,
        )
        study.optimize(
            objective,
            n_trials=remaining,
            timeout=budget.timeout_s,
            callbacks=[log_trial],
            gc_after_trial=True,
            catch=(),
        )
    else:
        log.info("%sstudy %s already has %d finished trial(s): budget met, nothing to run", where, name, done)
    trials = study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise TuningError(f"{where}study {name} has no completed trial; raise the budget ({budget}) or check the logs")
    best = study.best_trial
    if best.value is None:  # the best trial is a completed one, which always has its value
        raise TuningError(f"{where}study {name}: its best trial {best.number} has no value")
    return TuningResult(
        study_name=name,
        best_params=dict(best.params),
        best_value=float(best.value),
        best_trial=best.number,
        complete=len(complete),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        ran_now=len(ran),
        seconds=round(time.perf_counter() - started, 3),
    )


def trials_frame(storage_url: str, name: str) -> pd.DataFrame:
    """Every trial of a study (number, state, value, params), for the Optuna-history artifact."""
    study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    return study.trials_dataframe(attrs=("number", "state", "value", "params", "duration", "user_attrs"))
