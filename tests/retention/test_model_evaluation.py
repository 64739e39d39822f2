"""The weekly model evaluation over stored forecasts and prices whose errors are known by construction.

Prices rise by 2 per MWh from one week to the next, so the weekly seasonal naive misses every hour by
exactly 2 (its MAE). The served forecast of week ``k`` (1 the oldest of 13, 13 the newest) misses
every hour by ``k``, above on even hours and below on odd ones; its interval is ``yhat +- 5``, so it
covers the price in weeks 1 to 5 only. Hence, ending at the evaluation time:

| window | MAE | rMAE | coverage |
|---|---|---|---|
| 1 week | 13 | 6.5 | 0 |
| 4 weeks | mean(10..13) = 11.5 | 5.75 | 0 |
| 13 weeks | mean(1..13) = 7 | 3.5 | 5/13 |

and the champion's figures at promotion are its retraining run's test metrics (MAE 3, rMAE 0.6).
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from core.markets import get_market
from core.settings import Settings
from core.timestamps import local_day_starts
from pipelines.maintenance import evaluate_models
from registry.models import registered_model_name
from registry.promotion import promote_version
from retention import model_evaluation
from storage.forecasts import ForecastStore
from storage.promotions import PromotionStore
from tests.maintenance_history import ConstantPrice
from training import tracking

REGION = "NP"
AS_OF = pd.Timestamp("2026-11-30 06:20", tz="UTC")  # floored to 06:00 by the evaluation
END = AS_OF.floor("h")
WEEKS = 13


def _prices() -> pd.DataFrame:
    hours = pd.date_range(END - pd.Timedelta(weeks=WEEKS + 1), END, freq="h", inclusive="left")
    week = (np.arange(len(hours)) // 168).astype(float)
    price = 40.0 + 10.0 * np.sin(np.arange(len(hours)) * 2 * np.pi / 24) + 2.0 * week
    return pd.DataFrame(
        {
            "region": REGION,
            "source": "entsoe",
            "ts": hours,
            "price": price,
            "currency": "EUR",
            "unit": "MWh",
            "resolution": "PT60M",
        }
    )


def _forecasts(prices: pd.DataFrame) -> pd.DataFrame:
    served = prices[prices["ts"] >= END - pd.Timedelta(weeks=WEEKS)].reset_index(drop=True)
    k = 1 + (np.arange(len(served)) // 168)  # 1 the oldest week, 13 the newest
    sign = np.where(np.arange(len(served)) % 2 == 0, 1.0, -1.0)
    yhat = served["price"].to_numpy() + sign * k
    return pd.DataFrame(
        {
            "region": REGION,
            "issued_at": local_day_starts(
                get_market(REGION).timezone, served["ts"]
            ),  # one issue a day, at the local midnight, for its day
            "target_ts": served["ts"],
            "model_name": registered_model_name(REGION),
            "model_version": "1",
            "yhat": yhat,
            "lower": yhat - 5.0,
            "upper": yhat + 5.0,
            "is_fallback": False,
        }
    )


@pytest.fixture
def champion(tmp_path):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path / "home")})
    client = tracking.configure(settings)
    body = tmp_path / "model"
    mlflow.pyfunc.save_model(str(body), python_model=ConstantPrice(40.0), pip_requirements=["mlflow"])
    run = tracking.start_run(client, tracking.experiment_id(client, settings), "retrain NP")
    client.log_artifacts(run, str(body), "model")
    tracking.log_metrics(client, run, {"test_mae": 3.0, "test_rmae": 0.6})
    tracking.finish(client, run)
    mlflow.register_model(f"runs:/{run}/model", registered_model_name(REGION))
    return settings, client


def test_evaluate_region__known_errors_give_known_mae_rmae_and_coverage():
    prices = _prices()
    series = pd.Series(prices["price"].to_numpy(), index=pd.DatetimeIndex(prices["ts"]))
    served = _forecasts(prices)
    table, trend = model_evaluation.evaluate_region(REGION, served, series, AS_OF, None)
    by_weeks = {row["weeks"]: row for row in table}
    assert [row["hours"] for row in table] == [168, 4 * 168, 13 * 168]
    assert by_weeks[1]["mae"] == pytest.approx(13.0) and by_weeks[1]["rmae"] == pytest.approx(6.5)
    assert by_weeks[4]["mae"] == pytest.approx(11.5) and by_weeks[4]["rmae"] == pytest.approx(5.75)
    assert by_weeks[13]["mae"] == pytest.approx(7.0) and by_weeks[13]["rmae"] == pytest.approx(3.5)
    assert [by_weeks[w]["coverage"] for w in (1, 4)] == [0.0, 0.0]
    assert by_weeks[13]["coverage"] == pytest.approx(5 / 13)
    assert [w["mae"] for w in trend] == pytest.approx([float(k) for k in range(1, 14)])
    assert [w["week_start"] for w in trend][-1] == END - pd.Timedelta(weeks=1)

    # fallback hours are counted, not scored; hours without a price are left out
    served.loc[served["target_ts"] >= END - pd.Timedelta(hours=24), "is_fallback"] = True
    unpriced = series.drop(END - pd.Timedelta(hours=25))
    table, _ = model_evaluation.evaluate_region(REGION, served, unpriced, AS_OF, None)
    assert (table[0]["hours"], table[0]["fallback_hours"], table[0]["mae"]) == (143, 24, pytest.approx(13.0))


def test_evaluate_models__reads_the_stores_and_logs_a_table_and_trend_picture_to_mlflow(champion, store):
    settings, client = champion
    promote_version(client, PromotionStore(store.engine), REGION, "1", "first model", "test")
    prices = _prices()
    store.upsert_prices(prices)
    ForecastStore(store.engine).upsert_forecasts(_forecasts(prices))

    outcome = evaluate_models(store, client, settings, [REGION], AS_OF)

    rows = {row["weeks"]: row for row in outcome.rows}
    assert (rows[1]["mae"], rows[4]["mae"], rows[13]["mae"]) == pytest.approx((13.0, 11.5, 7.0))
    assert (rows[1]["rmae"], rows[13]["rmae"], rows[13]["coverage"]) == pytest.approx((6.5, 3.5, 5 / 13))
    assert {(r["champion_version"], r["promotion_mae"], r["promotion_rmae"]) for r in outcome.rows} == {("1", 3.0, 0.6)}
    run = client.get_run(outcome.mlflow_run_id)
    assert run.data.tags["eopt.kind"] == "evaluate_models"
    assert run.data.metrics["NP_mae_4w"] == pytest.approx(11.5)
    assert run.data.metrics["NP_coverage_13w"] == pytest.approx(5 / 13)
    artifacts = {a.path for a in client.list_artifacts(outcome.mlflow_run_id)}
    assert {
        "model_evaluation.json",
        "model_evaluation.csv",
        "model_evaluation_trend.json",
        "model_evaluation_trend.png",
    } <= artifacts
    picture = client.download_artifacts(outcome.mlflow_run_id, "model_evaluation_trend.png")
    with open(picture, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(client.download_artifacts(outcome.mlflow_run_id, "model_evaluation.json")) as table:
        logged = json.load(table)
    assert len(logged["data"]) == 3
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == settings.retention.report_experiment != settings.quality.experiment

    # a rerun for the same time logs into the same run
    assert evaluate_models(store, client, settings, [REGION], AS_OF).mlflow_run_id == outcome.mlflow_run_id
