"""Optuna studies of superseded training windows: all but the newest few per region and model.

A retraining tunes in the study of its region, model and window (``training.tuning.study_name``,
``eopt-<region>-<model>-<window end>``), and a new study starts from the best parameters of the
newest earlier one; older studies are history nobody reads. Per region and model the newest
``keep`` studies stay (by window end, which their names sort by); a study with a trial still
running (a retraining tuning right now, a backfill) is never removed. Each study is deleted by
Optuna in one transaction with its trials, so an interrupted run leaves whole studies.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import sqlalchemy as sa
from optuna.trial import TrialState

from retention.removals import StepReport
from training.tuning import open_storage

STUDY_NAME = re.compile(r"^eopt-(?P<region>[A-Z]+)-(?P<model>[a-z_]+)-(?P<window>\d{10})$")


def remove_superseded_studies(storage_url: str, keep: int, *, dry_run: bool) -> StepReport:
    """Every product study but the newest ``keep`` of each region and model (``storage_url``: the
    Optuna storage); studies the product did not name are left alone."""
    report = StepReport("remove_superseded_studies", dry_run)
    database = sa.make_url(storage_url).database if storage_url.startswith("sqlite") else None
    if database is not None and not Path(database).is_file():  # opening it would create it
        report.notes.append(f"no Optuna storage at {database} yet")
        return report.logged()
    storage = open_storage(storage_url, where="maintenance: ")
    by_series: dict[tuple[str, str], list[str]] = defaultdict(list)
    for study in storage.get_all_studies():
        match = STUDY_NAME.match(study.study_name)
        if match:
            by_series[match["region"], match["model"]].append(study.study_name)
    doomed: list[int] = []
    for (region, model), names in sorted(by_series.items()):
        for name in sorted(names)[:-keep]:
            study_id = storage.get_study_id_from_name(name)
            trials = storage.get_all_trials(study_id, deepcopy=False)
            if any(t.state == TrialState.RUNNING for t in trials):
                report.notes.append(f"study {name} has a trial running: kept")
                continue
            # Optuna's rows carry no size of their own: the report counts the trials, not their bytes
            report.add(f"Optuna study {name} ({region} {model}, {len(trials)} trials)", 0, rows=len(trials))
            doomed.append(study_id)
    if not dry_run:
        for study_id in doomed:
            storage.delete_study(study_id)
    storage.remove_session()
    return report.logged()
