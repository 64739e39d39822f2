"""A tuning worker for the tuning tests: ``python -m tests.tuning_worker --storage URL ...`` from the repo root.

It builds a feature frame from the bundled Nord Pool history and runs ``training.tuning.tune``
on it, so the tests can kill a real tuning process half-way and start several at once. It
prints one JSON line per event on stdout: ``start`` (its pid), ``trial`` (every trial it
finished: number, state, pid, start and end time) and ``result`` (the ``TuningResult``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import pandas as pd

REGION = "NP"
TRAIN_START = pd.Timestamp("2014-01-01", tz="UTC")


def build_frames(
    train_days: int, validation_days: int, train_start: pd.Timestamp = TRAIN_START
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Training origins every 7 hours over ``train_days``, then ``validation_days`` of day-ahead origins.

    Returns the two frames and the window end (the end of the validation days).
    """
    from tests.market_frames import np_frames

    return np_frames(train_start, train_days, validation_days)


def _emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "pid": os.getpid(), **fields}, default=str), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--model", default="lightgbm")
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--max-rounds", type=int, default=300)
    parser.add_argument("--timeout-s", type=float, default=300)
    parser.add_argument("--train-days", type=int, default=200)
    parser.add_argument("--validation-days", type=int, default=21)
    parser.add_argument("--heartbeat-interval", type=int, default=30)
    parser.add_argument("--grace-period", type=int, default=90)
    args = parser.parse_args(argv)
    _emit("start")

    from training.config import ModelBudget
    from training.features import feature_columns
    from training.tuning import tune

    train, validation, window_end = build_frames(args.train_days, args.validation_days)

    def on_trial(trial) -> None:
        _emit(
            "trial",
            number=trial.number,
            state=trial.state.name,
            value=trial.value,
            started=trial.datetime_start,
            finished=trial.datetime_complete,
        )

    result = tune(
        args.model,
        REGION,
        train,
        validation,
        feature_columns(REGION),
        budget=ModelBudget(trials=args.trials, timeout_s=args.timeout_s, max_rounds=args.max_rounds),
        storage_url=args.storage,
        window_end=window_end,
        on_trial=on_trial,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
    )
    _emit("result", **result.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
