"""The accuracy benchmark against the published EPF forecasts: the published numbers, the hours it scores, its inputs.

(a) the paper's metrics recomputed from its forecast files match its table, for all four markets;
(b) a real walk-forward over three NP days around the autumn clock change (smoke budget, short
    window): no training target reaches a forecast origin, the forecast hours are exactly the
    published file's, and no price at or after a day's origin changes that day's forecast;
(c) malformed or mismatched input files are refused with the file and what to do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from benchmarks.accuracy import (
    PUBLISHED_ENSEMBLES,
    AccuracyInputError,
    anchor_quantiles,
    child_argv,
    comparison_frame,
    conformal_anchor,
    cpu_hours,
    day_origins,
    load_inputs,
    longest_first,
    main,
    parse_args,
    quantile_comparison,
    quantile_lines,
    read_published_forecasts,
    verify_published_metrics,
)
from core.quantiles import QUANTILE_COLUMNS, QUANTILE_LEVELS
from core.settings import Settings
from training.backtest import local_clock_hours, walk_forward
from training.config import TrainingConfig

ROOT = Path(__file__).resolve().parents[2]
MARKETS_DIR = ROOT / "data" / "markets"
PUBLISHED_DIR = ROOT / "data" / "published"
FALL_BACK_DAYS = pd.DatetimeIndex(["2017-10-28", "2017-10-29", "2017-10-30"])  # NP: 24, 25, 24 UTC hours


def published_file(market: str) -> Path:
    return PUBLISHED_DIR / f"Forecasts_{market}_DNN_LEAR_ensembles.csv"


# -- (a) the published metrics -------------------------------------------------------------------


@pytest.mark.parametrize("market", ["NP", "PJM", "BE", "FR"])
def test_recomputed_published_metrics_match_the_papers_table(market):
    check = verify_published_metrics(market, read_published_forecasts(published_file(market)))
    assert check["checked"] and check["hours"] == 17_472
    assert len(check["metrics"]) == 10  # MAE, rMAE, sMAPE, RMSE, MAPE of the two ensembles
    assert check["all_match"], {k: v for k, v in check["metrics"].items() if not v["matches"]}


# the figures for split-conformal quantiles around the published LEAR ensemble (182 rolling
# calibration days, 546 scored): mean pinball over 0.01..0.99 and the 90% interval's coverage
CONFORMAL_ANCHOR = {"NP": 0.75, "PJM": 1.26, "BE": 2.45, "FR": 1.54}


@pytest.mark.parametrize("market", ["NP", "PJM", "BE", "FR"])
def test_conformal_quantiles_around_the_published_lear_ensemble_score_the_anchor_figures(market):
    anchor = conformal_anchor(read_published_forecasts(published_file(market)))
    assert anchor["calibration_days"] == 182 and anchor["scored_days"] == 546
    assert anchor["mean_pinball"] == pytest.approx(CONFORMAL_ANCHOR[market], abs=0.01)
    assert 0.865 <= anchor["interval_90"]["coverage"] <= 0.895
    assert 0.45 <= anchor["interval_50"]["coverage"] <= 0.52
    assert 0 <= anchor["interval_90"]["kupiec_p"] <= 1


def test_the_conformal_anchor_takes_the_conformal_ranks_of_the_days_before_and_scores_them_by_hand():
    # three calibration days with residuals -1, 0, 2 at every hour, then a day forecast and priced at 10:
    # n = 3 sorted residuals; a level q < 0.5 takes the floor(4q)-th (at least the 1st) -> -1, q = 0.5 the
    # 2nd -> 0, q > 0.5 the ceil(4q)-th (at most the 3rd) -> 2: quantiles 9 below the median, 10, 12 above
    hours = pd.date_range("2018-01-01", periods=4 * 24, freq="h", name="local")
    forecast = np.full(hours.size, 10.0)
    actual = np.concatenate([np.full(24, 9.0), np.full(24, 10.0), np.full(24, 12.0), np.full(24, 10.0)])
    frame = pd.DataFrame({"Real price": actual, "LEAR Ensemble": forecast, "DNN Ensemble": forecast}, index=hours)
    anchor = conformal_anchor(frame, calibration_days=3)
    # pinball: levels q < 0.5 lose q * (10 - 9), levels q > 0.5 lose (1 - q) * (12 - 10), the median 0
    expected = (sum(k / 100 for k in range(1, 50)) + sum(2 * (1 - k / 100) for k in range(51, 100))) / 99
    assert anchor["scored_days"] == 1
    assert anchor["mean_pinball"] == pytest.approx(expected)
    assert anchor["interval_90"]["coverage"] == anchor["interval_50"]["coverage"] == 1.0
    # over the 7 levels the model emits: 0.05, 0.10, 0.25 lose q * 1, 0.75, 0.90, 0.95 lose (1 - q) * 2
    assert anchor["mean_pinball_emitted"] == pytest.approx((0.05 + 0.1 + 0.25 + 2 * (0.25 + 0.1 + 0.05)) / 7)
    # the scored day's own residual never calibrates it: a wild error on it changes the score alone
    frame.iloc[-24:, 0] = 100.0
    assert conformal_anchor(frame, calibration_days=3)["interval_90"]["coverage"] == 0.0


def test_our_quantiles_are_scored_beside_the_anchor_on_the_same_hours_by_hand():
    # the anchor as above (3 calibration days, quantiles 9 below the median, 10, 12 above); two scored days
    # priced 10 then 11.5; ours: yhat 10 with quantiles 10 + (-2, -1.5, -0.5, 0, 0.5, 1.5, 2)
    hours = pd.date_range("2018-01-01", periods=5 * 24, freq="h", name="local")
    actual = np.concatenate(
        [np.full(24, 9.0), np.full(24, 10.0), np.full(24, 12.0), np.full(24, 10.0), np.full(24, 11.5)]
    )
    published = pd.DataFrame({"Real price": actual, "LEAR Ensemble": 10.0, "DNN Ensemble": 10.0}, index=hours)
    shifts = np.array([-2, -1.5, -0.5, 0, 0.5, 1.5, 2])
    # ours covers the first scored day and the last calibration day (where the anchor has no quantiles)
    ours_hours = hours[48:]
    frame = pd.DataFrame({"actual": actual[48:], **{c: 10.0 + d for c, d in zip(QUANTILE_COLUMNS, shifts, strict=True)}},
                         index=ours_hours).iloc[:48]  # fmt: skip
    compared = quantile_comparison(frame, published, calibration_days=3)
    assert compared["hours"] == 24 and compared["first_hour"] == "2018-01-04 00:00:00"  # day 4 only
    assert compared["levels"]["ours"] == list(QUANTILE_LEVELS)
    # day 4 priced 10: ours loses q * (10 - f) or (q - 1) * (10 - f) per level
    y, levels = 10.0, np.array(QUANTILE_LEVELS)
    ours = np.mean(np.maximum(levels * (y - 10 - shifts), (levels - 1) * (y - 10 - shifts)))
    assert compared["ours"]["mean_pinball"] == pytest.approx(ours)
    assert compared["anchor"]["mean_pinball"] == pytest.approx((0.05 + 0.1 + 0.25 + 2 * (0.25 + 0.1 + 0.05)) / 7)
    assert compared["pinball_ratio"] == pytest.approx(ours / compared["anchor"]["mean_pinball"])
    assert compared["ours"]["interval_90"]["coverage"] == compared["ours"]["interval_50"]["coverage"] == 1.0
    lines = quantile_lines([{"market": "NP", "scope": "test", "quantiles": compared}])
    assert f"| NP | test | 1 | {ours:.3f} | {compared['anchor']['mean_pinball']:.3f} (" in "\n".join(lines)
    # a run sharing no hour with the anchor's scored days (--quick) records ours on its own hours
    early = frame.iloc[:24]
    alone = quantile_comparison(early, published, calibration_days=3)
    assert alone["hours"] == 0 and "no hour of this run" in alone["note"]
    own = alone["ours_own_hours"]  # day 3, priced 12: inside q05..q95 (8..12), above q25..q75 (9.5..10.5)
    assert own["hours"] == 24 and own["interval_90"]["coverage"] == 1.0 and own["interval_50"]["coverage"] == 0.0
    with pytest.raises(AccuracyInputError, match=r"no quantile\(s\) q50"):
        quantile_comparison(frame.drop(columns="q50"), published, calibration_days=3)


def test_our_quantiles_equal_to_the_anchor_s_score_exactly_the_anchor_on_the_published_np_file():
    published = read_published_forecasts(published_file("NP"))
    scored = anchor_quantiles(published, QUANTILE_LEVELS)
    assert len(scored) == 546 * 24
    frame = pd.DataFrame(scored.to_numpy(), index=scored.index, columns=list(QUANTILE_COLUMNS)).assign(
        actual=published.loc[scored.index, "Real price"]
    )
    compared = quantile_comparison(frame, published)
    assert compared["days"] == 546 and compared["pinball_ratio"] == 1.0
    assert compared["ours"] == {k: v for k, v in compared["anchor"].items() if k != "mean_pinball_0.01..0.99"}
    anchor = conformal_anchor(published)
    assert compared["anchor"]["mean_pinball"] == anchor["mean_pinball_emitted"]
    assert compared["anchor"]["mean_pinball_0.01..0.99"] == pytest.approx(anchor["mean_pinball"])
    assert compared["anchor"]["interval_90"] == anchor["interval_90"]


def test_the_published_check_catches_a_forecast_that_is_off_by_a_little():
    forecasts = read_published_forecasts(published_file("NP"))
    forecasts[PUBLISHED_ENSEMBLES["lear_ensemble"]] += 0.01
    check = verify_published_metrics("NP", forecasts)
    assert not check["all_match"]
    assert not check["metrics"]["lear_ensemble.MAE"]["matches"]
    assert check["metrics"]["dnn_ensemble.MAE"]["matches"]
    assert check["metrics"]["lear_ensemble.rMAE"]["published"] == "0.420"


# -- (b) a real walk-forward over the published hours ----------------------------------------------


@pytest.fixture(scope="module")
def np_inputs():
    return load_inputs(MARKETS_DIR / "NP.csv", published_file("NP"))


@pytest.fixture(scope="module")
def backtest(np_inputs, tmp_path_factory):
    config = replace(
        TrainingConfig.from_settings(Settings.from_env({}), "smoke"),
        window_days=120,
        validation_days=14,
        test_days=14,
        threads=1,
        device="cpu",
        lear_recalibrate_daily=True,  # benchmarks/accuracy.py's default
    )
    storage = f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'optuna.db'}"
    origins = day_origins(FALL_BACK_DAYS, np_inputs.market.timezone)
    result = walk_forward(
        np_inputs.prices,
        np_inputs.exogenous,
        "NP",
        origins,
        config,
        storage_url=storage,
        retrain_every_days=7,
        progress=False,
    )
    return config, storage, origins, result


def test_a_training_row_never_reaches_the_forecast_origin(backtest):
    config, _, origins, result = backtest
    assert len(result.blocks) == 1 and result.blocks[0]["origins"] == 3
    # the production path: LEAR in the ensemble (the smoke budget's 56-day window), the default rule recorded
    # (EOPT_ENSEMBLE_WEIGHTS=lear_network: LEAR and the CNN-LSTM half and half, the trees fitted but at 0)
    assert result.blocks[0]["lear_windows"] == [56] and result.blocks[0]["rule"] == "lear_network"
    assert result.blocks[0]["weights"] == {"xgboost": 0.0, "lightgbm": 0.0, "cnn_lstm": 0.5, "lear": 0.5}
    # where a block's time goes: each tuned member's fit, LEAR's, within the block's fitting time
    spent = result.blocks[0]["member_seconds"]
    assert set(spent) == set(config.tuned_models) and all(s > 0 for s in spent.values())
    assert sum(spent.values()) + result.blocks[0]["lear_seconds"] <= result.blocks[0]["fit_seconds"]
    for block in result.blocks:
        assert pd.Timestamp(block["last_training_target"]) < pd.Timestamp(block["first_origin"]) == origins[0]
    forecasts = result.forecasts
    assert (forecasts["target_ts"] >= forecasts["origin"]).all()


def test_the_forecast_hours_are_exactly_the_published_files_hours_of_those_days(backtest, np_inputs):
    _, _, _origins, result = backtest
    # UTC: 24 + 25 + 24 hours; the fall-back day's last hour is the one forecast recursively
    assert len(result.forecasts) == 73
    recursive = result.forecasts[result.forecasts["recursive"]]
    assert list(recursive["target_ts"]) == [pd.Timestamp("2017-10-29 22:00", tz="UTC")]  # 23:00 CET
    frame = comparison_frame(np_inputs, local_clock_hours(result.forecasts, "Europe/Oslo"), FALL_BACK_DAYS)
    published = np_inputs.published
    assert frame.index.equals(published.index[published.index.normalize().isin(FALL_BACK_DAYS)])
    assert len(frame) == 72
    assert np.array_equal(frame["actual"], published.loc[frame.index, "Real price"])
    assert np.isfinite(frame.to_numpy()).all()
    # our quantiles reach the benchmark monotone and are scored beside the anchor on these days (in its scored days)
    assert (np.diff(frame[list(QUANTILE_COLUMNS)].to_numpy(), axis=1) >= 0).all()
    compared = quantile_comparison(frame, published)
    assert compared["hours"] == 72 and compared["first_hour"] == "2017-10-28 00:00:00"
    mae = np.mean(np.abs(frame["actual"] - frame["ensemble"]))
    assert 0 < compared["ours"]["mean_pinball"] < mae  # a 50% level alone would lose MAE / 2
    assert compared["pinball_ratio"] == compared["ours"]["mean_pinball"] / compared["anchor"]["mean_pinball"]


def first_two_days(prices, np_inputs, config, storage, origins, params):
    """The backtest fixture's walk-forward again over its first two days, on ``prices``, with its tuned parameters."""
    return walk_forward(
        prices,
        np_inputs.exogenous,
        "NP",
        origins[:2],
        config,
        storage_url=storage,
        retrain_every_days=7,
        params=params,
        progress=False,
    )


def test_no_price_at_or_after_a_days_origin_changes_that_days_forecast(backtest, np_inputs):
    config, storage, origins, result = backtest
    # every price from the fall-back day's origin on is removed; the first two days' forecasts
    # (including the recursive hour of the fall-back day) must not move
    known = np_inputs.prices[np_inputs.prices.index < origins[1]]
    again = first_two_days(known, np_inputs, config, storage, origins, result.params)
    before = result.forecasts[result.forecasts["origin"] <= origins[1]].reset_index(drop=True)
    assert again.forecasts["price"].iloc[24:].isna().all()  # the second day's actuals are unknown now
    assert again.forecasts["target_ts"].equals(before["target_ts"])
    for column in ("yhat", "yhat_xgboost", "yhat_lightgbm", "yhat_cnn_lstm", "yhat_lear"):
        assert np.allclose(again.forecasts[column], before[column], rtol=0, atol=1e-9), column


def test_lear_recalibrated_daily_refits_from_the_second_day_of_a_block(backtest, np_inputs):
    # the default (as the registered model forecasts) against LEAR's weekly fit alone; the tamper test
    # above runs the default, so the daily refits read no price at or after a day's origin either
    config, storage, origins, result = backtest
    weekly_run = first_two_days(
        np_inputs.prices, np_inputs, replace(config, lear_recalibrate_daily=False), storage, origins, result.params
    )
    assert result.blocks[0]["lear_recalibrated_daily"] and not weekly_run.blocks[0]["lear_recalibrated_daily"]
    two_days = result.forecasts[result.forecasts["origin"] <= origins[1]].reset_index(drop=True)
    assert two_days["target_ts"].equals(weekly_run.forecasts["target_ts"])
    first_day = (two_days["origin"] == origins[0]).to_numpy()
    recalibrated, weekly = two_days["yhat_lear"].to_numpy(), weekly_run.forecasts["yhat_lear"].to_numpy()
    # the first day's refit sees the days the block's fit saw: the same LEAR; the second day's sees one more
    assert np.allclose(recalibrated[first_day], weekly[first_day], rtol=0, atol=1e-9)
    assert not np.allclose(recalibrated[~first_day], weekly[~first_day])


# -- (c) bad input files -------------------------------------------------------------------------


def _rewrite(source: Path, target: Path, edit) -> Path:
    lines = source.read_text().splitlines()
    target.write_text("\n".join(edit(lines)) + "\n")
    return target


def _refusal(tmp_path: Path, market_file: Path, published: Path, *extra: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--market-file",
                str(market_file),
                "--published-forecasts",
                str(published),
                "--no-mlflow",
                "--results",
                str(tmp_path / "results"),
                *extra,
            ]
        )
    return str(exit_info.value)


def test_a_market_file_missing_a_column_is_refused_naming_the_file_and_the_layout(tmp_path):
    bad = _rewrite(
        MARKETS_DIR / "NP.csv", tmp_path / "NP.csv", lambda lines: [line.rsplit(",", 1)[0] for line in lines]
    )
    message = _refusal(tmp_path, bad, published_file("NP"))
    assert str(bad) in message and "expected 4 columns" in message
    assert "epftoolbox layout" in message and "pass another --market-file" in message
    assert not (tmp_path / "results").exists()  # nothing ran


def test_a_market_file_with_a_missing_hour_is_refused_naming_the_file_and_the_day(tmp_path):
    bad = _rewrite(
        MARKETS_DIR / "NP.csv",
        tmp_path / "NP.csv",
        lambda lines: [line for line in lines if not line.startswith("2017-06-01 05:00")],
    )
    message = _refusal(tmp_path, bad, published_file("NP"))
    assert str(bad) in message and "local day 2017-06-01 has 23 rows, expected 24" in message
    assert "24 per day" in message


def test_published_forecasts_of_another_market_are_refused(tmp_path):
    message = _refusal(tmp_path, MARKETS_DIR / "NP.csv", published_file("PJM"))
    assert str(published_file("PJM")) in message and "not of the same market" in message


def test_published_hours_beyond_the_market_file_are_refused(tmp_path):
    short = _rewrite(
        MARKETS_DIR / "NP.csv",
        tmp_path / "NP.csv",
        lambda lines: lines[:1] + [line for line in lines[1:] if line < "2018-07"],
    )
    message = _refusal(tmp_path, short, published_file("NP"))
    assert "hours (first 2018-07-01 00:00:00) are not in --market-file" in message and str(short) in message
    assert "pass the market file that holds the forecast period" in message


def test_published_forecasts_without_the_ensembles_are_refused(tmp_path):
    frame = pd.read_csv(published_file("NP"), index_col=0).drop(columns=["LEAR Ensemble"])
    frame.to_csv(tmp_path / "forecasts.csv")
    message = _refusal(tmp_path, MARKETS_DIR / "NP.csv", tmp_path / "forecasts.csv")
    assert str(tmp_path / "forecasts.csv") in message and "'LEAR Ensemble' missing" in message


def test_an_unknown_market_needs_its_timezone_and_holiday_calendar(tmp_path, monkeypatch):
    import core.markets
    import core.settings

    # the market registered for the process is dropped again after the test
    monkeypatch.setattr(core.settings, "_PROCESS_CATALOGUE", core.settings._PROCESS_CATALOGUE)
    copy = tmp_path / "XY.csv"
    copy.write_text((MARKETS_DIR / "NP.csv").read_text())
    message = _refusal(tmp_path, copy, published_file("NP"))
    assert str(copy) in message and "--timezone" in message and "--holiday-country" in message
    inputs = load_inputs(copy, published_file("NP"), timezone="Europe/Oslo", holiday_country="NO")
    assert inputs.market.region == "XY"
    assert inputs.market.exogenous == ("grid_load_forecast", "wind_power_forecast")
    assert core.markets.get_market("XY") is inputs.market


def test_empty_mlproject_parameters_mean_the_bundled_markets():
    quick = parse_args(["--market-file", "", "--published-forecasts", "", "--quick", "true"])
    assert quick.pairs == [(MARKETS_DIR / "NP.csv", published_file("NP"))] and quick.days == 56
    full = parse_args(["--market-file", "", "--published-forecasts", "", "--quick", "false", "--budget", "smoke"])
    assert [m.name for m, _ in full.pairs] == ["NP.csv", "PJM.csv", "BE.csv", "FR.csv"] and full.days is None
    with pytest.raises(SystemExit):
        parse_args(["--market-file", "a.csv"])  # no published forecasts for it
    with pytest.raises(AccuracyInputError, match="file not found"):
        load_inputs(Path("no/such/market.csv"), published_file("NP"))


def test_the_refit_cadence_defaults_and_cold_restarts_without_warm_starts_are_refused_by_name(capsys):
    default = parse_args([])
    assert (default.warm_patience, default.cold_every, default.lear_criterion_every) == (3, 4, 4)
    assert parse_args(["--warm-patience", "0"]).cold_every == 0  # every block from scratch: nothing to cut
    with pytest.raises(SystemExit):
        parse_args(["--warm-patience", "0", "--cold-every", "4"])  # cuts chains of warm starts, which are off
    assert "--cold-every cuts chains of warm starts; it needs --warm-patience" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--lear-history-days", "-1"])
    assert "--lear-history-days must be 0 (the training window) or positive" in capsys.readouterr().err


def test_a_market_run_in_its_own_process_gets_the_same_options():
    args = parse_args(
        [
            "--budget",
            "smoke",
            "--days",
            "14",
            "--retrain-every-days",
            "3",
            "--threads",
            "1",
            "--jobs",
            "2",
            "--segments",
            "2",
            "--no-verify-published",
            "--no-mlflow",
            "--results",
            "/tmp/out",
            "--networks",
            "3",
            "--warm-patience",
            "2",
            "--cold-every",
            "4",
            "--lear-criterion-every",
            "4",
            "--no-lear-recalibrate-daily",
            "--lear-history-days",
            "0",
        ]
    )
    market_file, published = args.pairs[2]
    child = parse_args(child_argv(args, market_file, published))
    assert child.pairs == [(MARKETS_DIR / "BE.csv", published_file("BE"))]
    assert (child.budget, child.days, child.retrain_every_days, child.threads, child.jobs) == ("smoke", 14, 3, 1, 1)
    assert (child.segments, parse_args([]).segments) == (2, 1)  # each market's own processes
    assert (child.networks, child.warm_patience, child.cold_every, child.lear_criterion_every) == (3, 2, 4, 4)
    assert not child.lear_recalibrate_daily and parse_args([]).lear_recalibrate_daily
    # the default is the registered model's: LEAR on up to four years
    assert (child.lear_history_days, parse_args([]).lear_history_days) == (0, 1456)
    assert parse_args([]).lear_history_days == Settings.from_env({}).training.lear_history_days
    assert not child.verify_published and child.no_mlflow and child.no_summary and child.results == "/tmp/out"


def test_parallel_markets_start_longest_recorded_first_and_unknown_ones_before_them(tmp_path):
    for name, seconds in (("NP", 3830.7), ("PJM", 4567.0), ("BE", 2994.2)):
        (tmp_path / f"accuracy_{name}.json").write_text(json.dumps({"timing": {"wall_seconds": seconds}}))
    (tmp_path / "accuracy_FR.json").write_text("{not json")  # unreadable: its cost is unknown
    pairs = parse_args(["--results", str(tmp_path)]).pairs
    assert [m.stem for m, _ in longest_first(pairs, tmp_path)] == ["FR", "PJM", "NP", "BE"]
    assert [m.stem for m, _ in longest_first(pairs, tmp_path / "empty")] == ["NP", "PJM", "BE", "FR"]


def test_the_summary_gives_each_market_s_cpu_hours_and_says_when_a_result_did_not_record_them():
    assert cpu_hours({"wall_seconds": 3600.0, "cpu_seconds": 9180.0}) == "2.55 CPU-h"
    assert cpu_hours({"wall_seconds": 3037.5}) == "CPU not recorded"


def test_stopping_the_parallel_run_stops_the_markets_it_started_and_says_which(tmp_path):
    """SIGTERM to the ``--jobs`` coordinator: its market processes go with it, none is left orphaned; a second
    signal while it stops them (an impatient user, a supervisor's SIGHUP) does not cut the stop short."""
    command = [sys.executable, "-m", "benchmarks.accuracy", "--budget", "smoke", "--days", "8", "--jobs", "2"]
    command += ["--threads", "1", "--no-verify-published", "--no-mlflow", "--results", str(tmp_path / "results")]
    for market in ("NP", "PJM"):
        command += ["--market-file", str(MARKETS_DIR / f"{market}.csv")]
        command += ["--published-forecasts", str(published_file(market))]
    env = {**os.environ, "EOPT_HOME": str(tmp_path / "home")}
    coordinator = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    children: dict[str, int] = {}
    try:
        assert coordinator.stderr is not None
        while len(children) < 2:
            line = coordinator.stderr.readline()
            assert line, f"the coordinator ended before starting both markets (exit {coordinator.wait()})"
            started = re.match(r"(\w+): started \(pid (\d+)\)", line)
            if started:
                children[started[1]] = int(started[2])
        time.sleep(2)  # both markets are at work: loading, tuning
        assert all(psutil.pid_exists(pid) for pid in children.values())
        coordinator.send_signal(signal.SIGTERM)
        coordinator.send_signal(signal.SIGHUP)
        rest = coordinator.stderr.read()
        assert coordinator.wait(timeout=60) == 1
    finally:
        for pid in children.values():
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
        if coordinator.poll() is None:
            coordinator.kill()
    assert not any(psutil.pid_exists(pid) for pid in children.values())
    # both signals are pending when Python runs its handlers, lowest number first: the stop names one of them
    assert re.search(
        r"error: stopped by SIG(TERM|HUP); the markets running were stopped too, their results not written", rest
    )
    assert all(f"{market} (pid {pid}, log " in rest for market, pid in children.items())
    assert "not started: none. Rerun the same command to start again." in rest
    assert "Traceback" not in rest
    assert not list((tmp_path / "results").glob("accuracy_*.json"))
