"""The walk-forward backtest on a small slice of real NP data: weekly refits, day-ahead forecasts, no look-ahead."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from benchmarks.accuracy_attempts import served_replay
from core.markets import load_market
from core.settings import Settings
from eopt.cli import cli
from training.backtest import (
    BacktestError,
    last_days_origins,
    local_clock_hours,
    segment_starts,
    served_before,
    training_window,
    walk_forward,
    walk_forward_in_segments,
)
from training.config import BUDGETS, TrainingConfig
from training.dataset import build_training_frame
from training.ensemble import calibrate_on_served
from training.features import day_ahead_origins

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def np_history():
    history = load_market("NP", ROOT / "data" / "markets")
    prices = history.prices.set_index("ts")["price"]
    exogenous = history.exogenous.pivot_table(index="ts", columns="variable", values="value")
    return prices, exogenous


@pytest.fixture(scope="module")
def result(np_history, tmp_path_factory):
    prices, exogenous = np_history
    config = replace(
        TrainingConfig.from_settings(Settings.from_env({}), "smoke"), window_days=240, validation_days=21, test_days=21
    )
    origins = day_ahead_origins("NP", pd.Timestamp("2018-06-04", tz="UTC"), pd.Timestamp("2018-06-14", tz="UTC"))
    storage = f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'optuna.db'}"
    return origins, walk_forward(
        prices, exogenous, "NP", origins, config, storage_url=storage, retrain_every_days=7, progress=False
    )


def test_backtest__forecasts_exactly_the_24_hours_of_every_test_day(result, np_history):
    origins, outcome = result
    expected = pd.DatetimeIndex([o + pd.Timedelta(hours=h) for o in origins for h in range(24)])
    assert pd.DatetimeIndex(outcome.forecasts["target_ts"]).equals(expected)
    prices, _ = np_history
    assert np.allclose(outcome.forecasts["price"], prices.reindex(expected).to_numpy())
    assert np.isfinite(outcome.forecasts[["yhat", "lower", "upper"]].to_numpy()).all()


def test_backtest__refits_weekly_and_no_training_row_reaches_its_block(result):
    _origins, outcome = result
    assert [b["origins"] for b in outcome.blocks] == [7, 3]  # 10 days, a refit every 7
    for block in outcome.blocks:
        assert pd.Timestamp(block["last_training_target"]) < pd.Timestamp(block["first_origin"])
        assert sum(block["weights"].values()) == pytest.approx(1.0)
    assert set(outcome.params) == {"xgboost", "lightgbm", "cnn_lstm"}


def test_backtest__metrics_cover_members_ensemble_and_naive_and_beat_the_naive(result):
    _, outcome = result
    metrics = outcome.metrics()
    assert set(metrics) == {"ensemble", "xgboost", "lightgbm", "cnn_lstm", "lear", "seasonal_naive"}
    assert metrics["seasonal_naive"]["rmae"] == pytest.approx(1.0)
    assert metrics["ensemble"]["rmae"] < 1.0
    assert 0.0 <= metrics["ensemble"]["interval_coverage"] <= 1.0


def test_last_days_origins__are_the_local_midnights_of_the_last_complete_days(np_history):
    prices, _ = np_history
    origins = last_days_origins("NP", prices, 3)
    assert list(origins) == [pd.Timestamp(f"2018-12-{d} 23:00", tz="UTC") for d in (21, 22, 23)]


def test_cli_backtest__logs_a_run_and_writes_its_results(tmp_path):
    env = {
        "EOPT_HOME": str(tmp_path),
        "EOPT_LOG_LEVEL": "WARNING",
        "EOPT_TRAINING_WINDOW_DAYS": "200",
        "EOPT_VALIDATION_DAYS": "14",
        "EOPT_TEST_DAYS": "14",
    }
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    assert runner.invoke(cli, ["load-history", "--region", "NP", "--start", "2018-05-01"], env=env).exit_code == 0
    result = runner.invoke(cli, ["backtest", "--region", "NP", "--days", "2", "--budget", "smoke"], env=env)
    assert result.exit_code == 0, result.output
    assert "NP ensemble" in result.output and "2 days from 2018-12-22 23:00:00+00:00" in result.output
    folders = list((tmp_path / "backtests").iterdir())
    assert (
        len(folders) == 1
        and (folders[0] / "backtest.json").is_file()
        and (folders[0] / "forecast_vs_actual.png").is_file()
    )


def _utc_forecast(first_local_day: str, days: int, zone: str) -> pd.DataFrame:
    """A forecast frame over the UTC hours of ``days`` local days, yhat = hours since the first one."""
    start = pd.Timestamp(first_local_day).tz_localize(zone)
    end = (pd.Timestamp(first_local_day) + pd.Timedelta(days=days)).tz_localize(zone)
    hours = pd.date_range(start.tz_convert("UTC"), end.tz_convert("UTC"), freq="h", inclusive="left")
    return pd.DataFrame(
        {
            "origin": start.tz_convert("UTC"),
            "target_ts": hours,
            "horizon": 0,
            "yhat": np.arange(len(hours), dtype=float),
            "price": np.arange(len(hours), dtype=float),
        }
    )


def test_local_clock_hours__averages_the_repeated_autumn_hour():
    frame = _utc_forecast("2017-10-29", 1, "Europe/Oslo")  # 25 UTC hours: 00, 01, 02 (CEST), 02 (CET), 03 .. 23
    assert len(frame) == 25
    clock = local_clock_hours(frame, "Europe/Oslo")
    assert list(clock.index) == list(pd.date_range("2017-10-29", periods=24, freq="h"))
    assert clock.loc["2017-10-29 02:00", "yhat"] == 2.5  # mean of the instants 2 and 3
    assert clock.loc["2017-10-29 23:00", "yhat"] == 24.0


def test_local_clock_hours__interpolates_the_skipped_spring_hour():
    frame = _utc_forecast("2017-03-26", 1, "Europe/Oslo")  # 23 UTC hours: 02:00 does not exist
    assert len(frame) == 23
    clock = local_clock_hours(frame, "Europe/Oslo")
    assert len(clock) == 24
    assert clock.loc["2017-03-26 01:00", "yhat"] == 1.0 and clock.loc["2017-03-26 03:00", "yhat"] == 2.0
    assert clock.loc["2017-03-26 02:00", "yhat"] == 1.5


def test_local_clock_hours__refuses_a_forecast_missing_an_hour_that_exists():
    frame = _utc_forecast("2018-06-04", 2, "Europe/Oslo").drop(index=30)  # local 06:00 of the second day
    with pytest.raises(
        BacktestError, match=r"lacks 1 local hour\(s\) that exist in Europe/Oslo, first 2018-06-05 06:00"
    ):
        local_clock_hours(frame, "Europe/Oslo")


def test_backtest__retunes_warm_starts_and_reuses_lear_penalties_each_on_its_own_cadence(np_history, tmp_path):
    prices, exogenous = np_history
    config = replace(
        TrainingConfig.from_settings(Settings.from_env({}), "smoke"),
        window_days=120,
        validation_days=14,
        test_days=14,
        threads=1,
        warm_start_patience=2,
    ).with_networks("cnn_lstm", 2)
    origins = day_ahead_origins("NP", pd.Timestamp("2018-03-05", tz="UTC"), pd.Timestamp("2018-03-08", tz="UTC"))
    outcome = walk_forward(
        prices,
        exogenous,
        "NP",
        origins,
        config,
        storage_url=f"sqlite:///{tmp_path / 'optuna.db'}",
        retrain_every_days=1,
        retune_every_days=2,
        progress=False,
    )
    assert [t["before"] for t in outcome.tunings] == [str(origins[0]), str(origins[2])]
    assert [b["tuned_before"] for b in outcome.blocks] == [str(origins[0]), str(origins[0]), str(origins[2])]
    assert outcome.params == {m: s["best_params"] for m, s in outcome.tunings[0]["studies"].items()}
    # the first block and the block after the second tuning start from scratch; the one between continues
    # the first's two networks, each for 2-3 epochs (patience 2, the smoke budget's 3 at most)
    assert ["warm_start_epochs" in b for b in outcome.blocks] == [False, True, False]
    assert 4 <= outcome.blocks[1]["warm_start_epochs"]["cnn_lstm"] <= 6
    # never re-tuned, a chain of warm starts is cut every `cold_start_every` blocks: scratch, warm, warm, scratch;
    # LEAR with all its windows (a long one of ~100 days here) runs its criterion on them every other block
    four = day_ahead_origins("NP", pd.Timestamp("2018-03-05", tz="UTC"), pd.Timestamp("2018-03-09", tz="UTC"))
    all_windows = replace(config.budgets["lear"], calibration_windows=0)
    chained = walk_forward(
        prices,
        exogenous,
        "NP",
        four,
        replace(config, cold_start_every=3, lear_criterion_every=2, budgets={**config.budgets, "lear": all_windows}),
        storage_url=f"sqlite:///{tmp_path / 'optuna.db'}",
        retrain_every_days=1,
        params=outcome.params,
        progress=False,
    )
    assert ["warm_start_epochs" in b for b in chained.blocks] == [False, True, True, False]
    assert [b["lear_penalties_reused"] for b in chained.blocks] == [False, True, False, True]
    assert all(max(b["lear_windows"]) > 84 for b in chained.blocks)
    with pytest.raises(BacktestError, match="given parameters are never re-tuned"):
        walk_forward(
            prices,
            exogenous,
            "NP",
            origins,
            config,
            storage_url="sqlite://",
            retune_every_days=7,
            params=outcome.params,
            progress=False,
        )


def test_backtest__weighs_a_block_on_the_forecasts_served_before_it_once_there_are_28_days(np_history, tmp_path):
    prices, exogenous = np_history
    config = replace(
        TrainingConfig.from_settings(Settings.from_env({}), "smoke"),
        window_days=120,
        validation_days=14,
        test_days=14,
        threads=1,
        models=("xgboost", "lear"),
        served_weight_days=91,
        ensemble_weights="validation",  # the fixed pair has nothing to weigh on the days served
    )
    # 31 days across NP's spring change (2018-03-25, 23 hours); the first block's 29 days are the second's history
    origins = day_ahead_origins("NP", pd.Timestamp("2018-03-05", tz="UTC"), pd.Timestamp("2018-04-04", tz="UTC"))
    outcome = walk_forward(
        prices,
        exogenous,
        "NP",
        origins,
        config,
        storage_url=f"sqlite:///{tmp_path / 'optuna.db'}",
        retrain_every_days=29,
        progress=False,
    )
    first, second = outcome.blocks
    assert (first["origins"], first["weights_from"]) == (29, "validation")
    assert (second["origins"], second["weights_from"], second["served_days"]) == (len(origins) - 29, "served", 29)
    assert set(second["validation_weights"]) == {"xgboost", "lear"}
    start = pd.Timestamp(second["first_origin"])
    served = served_before(outcome.forecasts, start, 91)
    assert len(served) == 29 * 24 - 1  # the first block's hours, the spring day's 23 among them, and no later hour
    assert (pd.to_datetime(served["target_ts"], utc=True) < start).all()
    expected = calibrate_on_served(served, ["xgboost", "lear"], config.interval_coverage)
    assert expected is not None and second["weights"] == expected.decision.weights
    rows = outcome.forecasts[pd.to_datetime(outcome.forecasts["origin"], utc=True) >= start]
    combined = sum(w * rows[f"yhat_{m}"].to_numpy() for m, w in expected.decision.weights.items())
    assert np.allclose(rows["yhat"], combined)
    quantiles = expected.intervals.quantile_frame(combined, rows["horizon"].to_numpy(), rows.index)
    assert np.allclose(rows[quantiles.columns], quantiles)
    # the accuracy attempt that replays a recorded run with served weights gives this walk-forward's forecasts
    replayed, weights = served_replay(outcome.forecasts, outcome.blocks, ["xgboost", "lear"], 91, 0.9)
    assert weights == [None, second["weights"]]
    columns = ["yhat", "lower", "upper", *quantiles.columns]
    assert np.allclose(replayed[columns], outcome.forecasts[columns], rtol=0, atol=1e-9)


def spring_week(np_history, config: TrainingConfig, tmp_path: Path):
    """One weekly block over NP's 7 days across its spring change (2018-03-25, 23 hours): (origins, result)."""
    prices, exogenous = np_history
    origins = day_ahead_origins("NP", pd.Timestamp("2018-03-20", tz="UTC"), pd.Timestamp("2018-03-27", tz="UTC"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    return origins, walk_forward(
        prices, exogenous, "NP", origins, config, storage_url=storage, retrain_every_days=7, progress=False
    )


def test_backtest__lear_network_weights_serve_lear_and_the_network_half_and_half(np_history, tmp_path):
    config = replace(
        TrainingConfig.from_settings(Settings.from_env({"EOPT_ENSEMBLE_WEIGHTS": "lear_network"}), "smoke"),
        window_days=120,
        validation_days=14,
        test_days=14,
        threads=1,
        models=("xgboost", "cnn_lstm", "lear"),
    )
    _, outcome = spring_week(np_history, config, tmp_path)
    (block,) = outcome.blocks
    assert (block["rule"], block["weights"]) == ("lear_network", {"xgboost": 0.0, "cnn_lstm": 0.5, "lear": 0.5})
    rows = outcome.forecasts
    assert np.allclose(rows["yhat"], (rows["yhat_lear"] + rows["yhat_cnn_lstm"]) / 2)
    assert not np.allclose(rows["yhat"], rows["yhat_xgboost"])


def test_backtest__as_deployed_holds_the_gates_test_window_out_of_every_fit(np_history, tmp_path):
    prices, exogenous = np_history
    config = replace(
        TrainingConfig.from_settings(Settings.from_env({}), "smoke"),
        window_days=120,
        validation_days=14,
        test_days=14,
        threads=1,
        models=("lear",),
    )
    origins = day_ahead_origins("NP", pd.Timestamp("2018-03-20", tz="UTC"), pd.Timestamp("2018-03-27", tz="UTC"))

    def run(deployed: bool):
        return walk_forward(
            prices,
            exogenous,
            "NP",
            origins,
            replace(config, as_deployed=deployed),
            storage_url=f"sqlite:///{tmp_path / 'optuna.db'}",
            retrain_every_days=7,
            progress=False,
        )

    reaching, deployed = run(False), run(True)
    (near,), (held,) = reaching.blocks, deployed.blocks
    first = pd.Timestamp(held["first_origin"])
    # as model_retraining deploys them: validation and LEAR's long windows end where the 14-day test window starts
    test_start = first - pd.Timedelta(days=14)
    assert (near["held_out_days"], held["held_out_days"]) == (0, 14)
    assert pd.Timestamp(near["last_training_target"]) == first - pd.Timedelta(hours=1)
    assert pd.Timestamp(held["last_training_target"]) == test_start - pd.Timedelta(hours=1)
    assert pd.Timestamp(near["lear_last_training_target"]) == first - pd.Timedelta(hours=1)
    assert pd.Timestamp(held["lear_last_training_target"]) == test_start - pd.Timedelta(hours=1)
    # the 7 days across NP's spring change, forecast from other fits: the same hours, other prices
    assert len(deployed.forecasts) == len(reaching.forecasts) == 7 * 24 - 1
    assert not np.allclose(deployed.forecasts["yhat"], reaching.forecasts["yhat"])


def test_backtest__lear_reads_its_longer_history_while_the_other_members_keep_the_window(np_history, tmp_path):
    prices, exogenous = np_history
    config = replace(
        TrainingConfig.from_settings(Settings.from_env({}), "default"),  # LEAR's four windows
        window_days=120,
        validation_days=14,
        test_days=0,
        threads=1,
        models=("lear",),
        lear_recalibrate_daily=False,
        lear_history_days=240,
    )
    origins, result = spring_week(np_history, config, tmp_path)
    (block,) = result.blocks
    # LEAR's windows: 56, 84, half and all of its days with inputs: the 239 local midnights of its 240 days less
    # the first week, whose d-7 prices lie before them; the 120-day training window's would be 56, 84 and 113
    assert block["lear_windows"] == [56, 84, 116, 232]
    assert pd.Timestamp(block["lear_last_training_target"]) == origins[0] - pd.Timedelta(hours=1)
    # the other members' frame is the 120-day window's, as without the longer history
    window = build_training_frame(training_window(prices, exogenous, "NP", origins[0], 120), config)
    assert block["train_rows"] == int((window["split"] == "train").sum())
    assert block["validation_rows"] == int((window["split"] == "validation").sum())
    assert len(result.forecasts) == 7 * 24 - 1


def test_segment_starts__cut_only_where_no_block_carries_anything_to_the_next():
    base = replace(TrainingConfig.from_settings(Settings.from_env({}), "default"), models=("cnn_lstm", "lear"))
    # the benchmark's cadence: networks warm-started and from scratch every 4th block, LEAR's criterion every 4th
    chained = replace(base, warm_start_patience=3, cold_start_every=4, lear_criterion_every=4)
    assert segment_starts(104, chained, 0, 2) == [52]
    assert segment_starts(104, chained, 0, 3) == [36, 68]  # multiples of 4 nearest to 34.7 and 69.3
    assert segment_starts(104, replace(chained, lear_criterion_every=6), 0, 2) == [48]  # every 12th block: 48, 60
    assert segment_starts(10, base, 0, 5) == [2, 4, 6, 8]  # every block fitted afresh: any block can start one
    assert segment_starts(104, chained, 0, 1) == []
    assert segment_starts(3, chained, 0, 2) == []  # no 4th block
    assert segment_starts(104, replace(chained, cold_start_every=0), 0, 2) == []  # one warm chain to the end
    assert segment_starts(104, chained, 7, 2) == []  # re-tuned parameters: a segment would need the tuning before it
    assert segment_starts(104, replace(chained, ensemble_weights="validation", served_weight_days=91), 0, 2) == []


def test_walk_forward_in_segments__forecasts_what_the_uncut_walk_forward_does(np_history, tmp_path):
    """Four 3-day blocks, the network warm-started within pairs of blocks and LEAR (its four windows) running
    its criterion every second block: cut at the third block, two processes give the uncut run's forecasts and
    blocks, digit for digit."""
    prices, exogenous = np_history
    smoke = TrainingConfig.from_settings(Settings.from_env({}), "smoke")
    config = replace(
        smoke,
        budgets={**smoke.budgets, "lear": BUDGETS["default"]["lear"]},
        window_days=120,
        validation_days=14,
        test_days=14,
        threads=1,
        models=("cnn_lstm", "lear"),
        warm_start_patience=2,
        cold_start_every=2,
        lear_criterion_every=2,
    )
    origins = day_ahead_origins("NP", pd.Timestamp("2018-03-19", tz="UTC"), pd.Timestamp("2018-03-31", tz="UTC"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    whole = walk_forward(
        prices, exogenous, "NP", origins, config, storage_url=storage, retrain_every_days=3, progress=False
    )
    cut = walk_forward_in_segments(
        prices,
        exogenous,
        "NP",
        origins,
        config,
        storage_url=storage,
        retrain_every_days=3,
        params=whole.params,
        segments=2,
        progress=False,
    )
    assert len(whole.blocks) == 4 and segment_starts(4, config, 0, 2) == [2]
    pd.testing.assert_frame_equal(cut.forecasts, whole.forecasts, check_exact=True)
    timings = ("fit_seconds", "seconds", "lear_seconds", "member_seconds")
    assert [{k: v for k, v in b.items() if k not in timings} for b in cut.blocks] == [
        {k: v for k, v in b.items() if k not in timings} for b in whole.blocks
    ]
    # the third block started from scratch in both (the first of its segment, the second cold one uncut)
    assert ["warm_start_epochs" in b for b in whole.blocks] == [False, True, False, True]
    assert whole.blocks[1]["lear_penalties_reused"]  # LEAR's penalties carried over, and again in its segment
