"""Months of simulated history in a temporary home, for the retention tests: what each store holds and what should stay.

``build_history(settings, as_of)`` fills the stores ``settings`` name as production would have
left them on ``as_of``, day ``d`` (1, 2, ...) being ``d`` days back plus 6 hours, so that a
retention bound of ``R`` days keeps exactly the days ``d <= R`` (and a run a few minutes later
decides the same):

- a data-quality MLflow run per day for ``QUALITY_DAYS`` days, with its report and a drift
  report as artifacts, and the run's local report folder under ``$EOPT_HOME/quality``;
- an archived provider payload per day for ``PAYLOAD_DAYS`` days, a quarantine row referencing
  the payload of every even day; the row of day ``REPEATED_DAY`` was seen again yesterday;
- Airflow task log files, one per day for ``LOG_DAYS`` days, in ``log_folder``;
- hourly forecasts (24 target hours each) issued every hour of the last ``FORECAST_DAYS`` days;
- NP's registered model through four retrainings: v1 promoted, v2 promoted, v3 rejected, v4
  promoted, then rolled back to v2 (the champion, Production), whose rollback target is v1;
- a week of NP prices and the promotion history behind the registry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from core.settings import Settings
from registry.models import ARCHIVED, mirror_stage, registered_model_name
from registry.promotion import promote_version, rollback
from storage.forecasts import ForecastStore
from storage.health import QuarantinedRow, QuarantineStore
from storage.payload_archive import archive_payload
from storage.prices import PriceStore
from storage.promotions import PromotionStore
from storage.schema import price_quarantine
from tests.market_frames import store_with_history
from training import tracking

REGION = "NP"
MODEL = registered_model_name(REGION)
QUALITY_DAYS = 90
PAYLOAD_DAYS = 120
LOG_DAYS = 90
FORECAST_DAYS = 20
REPEATED_DAY = 100
SOURCE = "entsoe"
REPORT_BYTES = 6_000  # a run's quality report
DRIFT_BYTES = 40_000  # a run's drift report
PAYLOAD_BYTES = 4_096
LOG_BYTES = 2_048


def day(as_of: pd.Timestamp, d: int) -> pd.Timestamp:
    return as_of - pd.Timedelta(days=d) + pd.Timedelta(hours=6)


def _touch(path: Path, when: pd.Timestamp) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def _filler(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


class ConstantPrice(mlflow.pyfunc.PythonModel):
    """A registered model's stand-in body: serves ``price`` for every row (which version answered)."""

    def __init__(self, price: float) -> None:
        self.price = price

    def predict(self, context, model_input, params=None):
        return np.full(len(model_input), self.price)


@dataclass
class History:
    settings: Settings
    as_of: pd.Timestamp
    log_folder: Path
    quality_run_ids: dict[int, str] = field(default_factory=dict)  # day -> MLflow run id
    model_run_ids: dict[str, str] = field(default_factory=dict)  # version -> MLflow run id
    payloads: dict[int, Path] = field(default_factory=dict)  # day -> archived body

    @property
    def store(self) -> PriceStore:
        from storage.database import store_engine

        return PriceStore(store_engine(self.settings.stores))

    def client(self) -> MlflowClient:
        return tracking.configure(self.settings)


def _quality_runs(history: History, client: MlflowClient, scratch: Path) -> None:
    settings = history.settings
    experiment = tracking.experiment_id(client, settings, settings.quality.experiment, purpose="data-quality")
    for d in range(1, QUALITY_DAYS + 1):
        when = day(history.as_of, d)
        run_name = f"scheduled__{when:%Y-%m-%dT%H%M}"
        folder = settings.quality_dir / run_name
        (folder / "drift").mkdir(parents=True)
        report, drift = folder / "quality_report.html", folder / "drift" / "drift_NP.html"
        report.write_bytes(_filler(REPORT_BYTES, d))
        drift.write_bytes(_filler(DRIFT_BYTES, 1000 + d))
        run = client.create_run(
            experiment,
            start_time=int(when.timestamp() * 1000),
            tags={"eopt.kind": "data-quality", "eopt.airflow_run_id": run_name},
            run_name=f"data quality {when:%Y-%m-%d %H:%M}",
        ).info.run_id
        client.log_artifact(run, str(report))
        client.log_artifact(run, str(drift), "drift/NP")
        client.set_terminated(run, end_time=int(when.timestamp() * 1000) + 60_000)
        history.quality_run_ids[d] = run
        for path in (report, drift, folder / "drift", folder):
            _touch(path, when)


def _registry(history: History, client: MlflowClient, promotions: PromotionStore, scratch: Path) -> None:
    settings = history.settings
    experiment = tracking.experiment_id(client, settings)
    for version in ("1", "2", "3", "4"):
        body = scratch / f"model_v{version}"
        mlflow.pyfunc.save_model(str(body), python_model=ConstantPrice(float(version)), pip_requirements=["mlflow"])
        run = tracking.start_run(client, experiment, f"retrain {REGION} v{version}")
        client.log_artifacts(run, str(body), "model")
        tracking.finish(client, run)
        registered = mlflow.register_model(f"runs:/{run}/model", MODEL)
        assert str(registered.version) == version
        history.model_run_ids[version] = run
        if version == "3":  # the gate rejected it
            mirror_stage(client, MODEL, version, ARCHIVED)
            promotions.record(
                region=REGION,
                model_name=MODEL,
                candidate_version=version,
                champion_version="2",
                action="gate",
                promoted=False,
                reasons=["MAPE above the threshold"],
                metrics=None,
                mape_threshold=10.0,
                actor="model_retraining",
            )
        else:
            promote_version(client, promotions, REGION, version, f"retraining v{version}", "model_retraining")
    rollback(client, promotions, REGION, "operator", "v4 misbehaves")  # champion v2 again, v1 behind it


def _payloads_and_quarantine(history: History, engine: sa.Engine) -> None:
    quarantine = QuarantineStore(engine)
    for d in range(1, PAYLOAD_DAYS + 1):
        when = day(history.as_of, d)
        path = Path(archive_payload(history.settings.raw_payload_dir, SOURCE, _filler(PAYLOAD_BYTES, 5000 + d), "/api"))
        for file in (path, path.with_suffix(".meta")):
            _touch(file, when)
        history.payloads[d] = path
        if d % 2 == 0:
            row = QuarantinedRow(
                SOURCE, f"unparseable payload of day {d}", REGION, when.to_pydatetime(), None, str(path)
            )
            quarantine.add([row])
            seen = day(history.as_of, 1) if d == REPEATED_DAY else when
            with engine.begin() as conn:
                conn.execute(
                    sa.update(price_quarantine)
                    .where(price_quarantine.c.fingerprint == row.fingerprint())
                    .values(quarantined_at=when.to_pydatetime(), last_seen_at=seen.to_pydatetime())
                )


def _logs(history: History) -> None:
    for d in range(1, LOG_DAYS + 1):
        when = day(history.as_of, d)
        folder = (
            history.log_folder
            / "dag_id=data_quality"
            / f"run_id=scheduled__{when:%Y-%m-%dT%H%M}"
            / "task_id=check_drift"
        )
        folder.mkdir(parents=True)
        log = folder / "attempt=1.log"
        log.write_bytes(_filler(LOG_BYTES, 9000 + d))
        _touch(log, when)


def forecast_frame(as_of: pd.Timestamp) -> pd.DataFrame:
    """Every hourly issue of the last ``FORECAST_DAYS`` days, 24 target hours each."""
    issues = pd.date_range(
        as_of.floor("h") - pd.Timedelta(days=FORECAST_DAYS), as_of.floor("h"), freq="h", inclusive="left"
    )
    issued = np.repeat(issues, 24)
    target = issued + pd.to_timedelta(np.tile(np.arange(1, 25), len(issues)), unit="h")
    return pd.DataFrame(
        {
            "region": REGION,
            "issued_at": issued,
            "target_ts": target,
            "model_name": MODEL,
            "model_version": "2",
            "yhat": 40.0 + np.arange(len(issued)) % 24,
            "lower": 30.0,
            "upper": 50.0,
            "is_fallback": False,
        }
    )


def build_history(settings: Settings, as_of: pd.Timestamp, log_folder: Path) -> History:
    """The stores of ``settings`` filled as described above; the price store holds a week of NP."""
    history = History(settings, as_of, log_folder)
    scratch = settings.stores.home / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    store = store_with_history(settings.stores.database_url, {REGION: 7})
    try:
        client = history.client()
        _registry(history, client, PromotionStore(store.engine), scratch)
        _quality_runs(history, client, scratch)
        _payloads_and_quarantine(history, store.engine)
        _logs(history)
        ForecastStore(store.engine).upsert_forecasts(forecast_frame(as_of))
    finally:
        store.engine.dispose()
    return history


def kept_forecasts(frame: pd.DataFrame, cutoff: pd.Timestamp) -> int:
    """Rows a thinning at ``cutoff`` keeps: every issue of later target hours, the earliest issue of older ones."""
    old = frame[frame["target_ts"] < cutoff]
    return int((frame["target_ts"] >= cutoff).sum() + old["target_ts"].nunique())


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


@dataclass(frozen=True)
class Bounds:
    """What each store holds after maintenance with the default retention, from the history's layout."""

    quality_runs: int
    payload_files: int
    payload_bytes: int
    quarantine_rows: int
    log_files: int
    forecast_rows: int


def bounds(history: History) -> Bounds:
    retention = history.settings.retention
    kept_payloads = [
        d
        for d in history.payloads
        if d <= retention.raw_payload_days or (d % 2 == 0 and d <= retention.quarantine_days) or d == REPEATED_DAY
    ]
    rows = [d for d in history.payloads if d % 2 == 0 and (d <= retention.quarantine_days or d == REPEATED_DAY)]
    meta = sum(history.payloads[d].with_suffix(".meta").stat().st_size for d in kept_payloads)
    cutoff = history.as_of - pd.Timedelta(days=retention.forecast_hourly_days)
    return Bounds(
        quality_runs=min(QUALITY_DAYS, retention.quality_run_days),
        payload_files=2 * len(kept_payloads),
        payload_bytes=len(kept_payloads) * PAYLOAD_BYTES + meta,
        quarantine_rows=len(rows),
        log_files=min(LOG_DAYS, retention.airflow_log_days),
        forecast_rows=kept_forecasts(forecast_frame(history.as_of), cutoff),
    )
