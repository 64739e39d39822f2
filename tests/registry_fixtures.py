"""A real NP model in a real SQLite-backed MLflow registry, and real candidates of known quality.

``train_np`` retrains NP once with the ``smoke`` budget on a short window (120 days, 14 of them
validation, 14 test: 35-50 s on one core) into a temporary ``EOPT_HOME``. ``trained_np`` gives a
module that retraining in a home of its own without paying for it again: the first caller of the
test session (any xdist worker, under a file lock the workers share) retrains into a session folder
and every caller gets a copy of that home (store, MLflow database, Optuna storage, the retraining's
workspace), so each module changes its own registry. The copied MLflow database still names the
session folder's artifact root, which stays in place until the session ends; a run a module logs
writes its artifacts there under its own run id.

Further candidates are built from that retraining's saved ensemble instead of retraining from scratch:

- the same ensemble (equal quality);
- its weakest member alone (weight 1): a real fitted model, measurably worse on the test window;
- a LightGBM member fitted on the same features with the target in EUR/kWh instead of EUR/MWh
  (a unit mix-up): a real fitted model, trained on the wrong target, far worse than the naive.

Each is saved with ``EnsembleForecaster.save``, logged as the product's pyfunc and registered
with ``registry.models.register_candidate`` (Staging, alias ``challenger``), as a retraining does.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from filelock import FileLock
from mlflow.tracking import MlflowClient

from core.markets import MarketHistory, load_market
from core.settings import Settings
from pipelines.model_retraining import Retraining, RetrainingOutcome, retrain_region
from registry.models import Candidate, register_candidate, registered_model_name
from serving.model_request import build_request
from serving.pyfunc import log_ensemble
from storage.database import create_store_engine, upgrade
from storage.prices import PriceStore
from training import tracking
from training.ensemble import EnsembleDecision, EnsembleForecaster
from training.features import TARGET_COLUMN
from training.models.gradient_boosting import LightGBMModel

ROOT = Path(__file__).resolve().parent.parent
REGION = "NP"
MODEL_NAME = registered_model_name(REGION)
NP_LAST_PRICE = pd.Timestamp("2018-12-24 22:00", tz="UTC")  # the bundled NP history's newest hour
SHORT_WINDOW = {
    "EOPT_TRAINING_BUDGET": "smoke",
    "EOPT_TRAINING_WINDOW_DAYS": "120",
    "EOPT_VALIDATION_DAYS": "14",
    "EOPT_TEST_DAYS": "14",
    "EOPT_LOG_LEVEL": "WARNING",
}


def np_settings(home: Path, **env: str) -> Settings:
    return Settings.from_env({"EOPT_HOME": str(home), **SHORT_WINDOW, **env})


def cli_env(settings: Settings, **env: str) -> dict[str, str]:
    """The environment an ``eopt`` command needs to see the same stores as ``settings``."""
    return {
        "EOPT_HOME": str(settings.stores.home),
        "MLFLOW_TRACKING_URI": settings.stores.mlflow_tracking_uri,
        "MLFLOW_REGISTRY_URI": settings.stores.mlflow_registry_uri,
        **SHORT_WINDOW,
        **env,
    }


@dataclass
class TrainedNP:
    settings: Settings
    store: PriceStore
    client: MlflowClient
    history: MarketHistory
    outcome: RetrainingOutcome
    job: Retraining

    @property
    def ensemble_folder(self) -> Path:
        return self.job.folder / "ensemble" / "model"

    def evaluation(self) -> dict:
        return json.loads((self.job.folder / "ensemble" / "evaluation.json").read_text())

    def features(self) -> pd.DataFrame:
        return self.job.features()

    def ensemble(self) -> EnsembleForecaster:
        return EnsembleForecaster.load(self.ensemble_folder)

    def prices(self) -> pd.Series:
        return self.history.prices.set_index("ts")["price"]

    def exogenous(self) -> pd.DataFrame:
        return self.history.exogenous.pivot_table(index="ts", columns="variable", values="value")


def np_history() -> MarketHistory:
    return load_market(REGION, ROOT / "data" / "markets").between(NP_LAST_PRICE - pd.Timedelta(days=140), None)


def train_np(home: Path) -> TrainedNP:
    """NP's last 140 days in a fresh embedded store, retrained once: version 1 in Staging (no gate)."""
    settings = np_settings(home)
    engine = create_store_engine(settings.stores.database_url)
    upgrade(engine)
    store = PriceStore(engine)
    history = np_history()
    store.upsert_history(history.prices, history.exogenous)
    outcome = retrain_region(settings, store, REGION, gate=False)
    return open_trained(settings, store, history, outcome)


def open_trained(
    settings: Settings, store: PriceStore, history: MarketHistory, outcome: RetrainingOutcome
) -> TrainedNP:
    client = tracking.configure(settings)
    job = Retraining.open(settings, REGION, store.latest_ts(REGION) + pd.Timedelta(hours=1))
    return TrainedNP(settings, store, client, history, outcome, job)


def trained_np(tmp_path_factory: pytest.TempPathFactory, name: str) -> TrainedNP:
    """The session's NP retraining (``train_np``), copied into a fresh home named after ``name``."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "np-retrained"
    outcome_file = shared / "outcome.json"
    with FileLock(f"{shared}.lock"):
        if not outcome_file.is_file():
            first = train_np(shared / "home")
            first.store.engine.dispose()
            outcome_file.write_text(json.dumps(asdict(first.outcome)))
    home = tmp_path_factory.mktemp(name)
    shutil.copytree(shared / "home", home, dirs_exist_ok=True)
    settings = np_settings(home)
    store = PriceStore(create_store_engine(settings.stores.database_url))
    recorded = json.loads(outcome_file.read_text())
    outcome = RetrainingOutcome(**{**recorded, "candidate": Candidate(**recorded["candidate"])})
    return open_trained(settings, store, np_history(), outcome)


def weakest_member(trained: TrainedNP) -> tuple[str, EnsembleForecaster]:
    """The member with the highest test MAE, alone (weight 1), with the ensemble's intervals."""
    tested = trained.evaluation()["metrics_test"]
    name = max((m for m in trained.ensemble().members), key=lambda m: tested[m]["mae"])
    ensemble = trained.ensemble()
    decision = EnsembleDecision(
        {name: 1.0},
        "best_member",
        {name: ensemble.decision.validation_mae[name]},
        f"test fixture: {name} alone, the weakest member on the test window",
    )
    return name, EnsembleForecaster(
        REGION, {name: ensemble.members[name]}, decision, ensemble.intervals, ensemble.feature_columns
    )


def unit_mixup_forecaster(trained: TrainedNP) -> EnsembleForecaster:
    """A real LightGBM fit on the retraining's features with the target in EUR/kWh (price / 1000)."""
    frame = trained.features()
    wrong = frame.assign(**{TARGET_COLUMN: frame[TARGET_COLUMN] / 1000.0})
    train, validation = (wrong[wrong["split"] == s] for s in ("train", "validation"))
    ensemble = trained.ensemble()
    model = LightGBMModel(LightGBMModel.default_params(), ensemble.feature_columns, seed=42, max_steps=150, threads=1)
    fit = model.fit(train, validation)
    decision = EnsembleDecision(
        {"lightgbm": 1.0},
        "best_member",
        {"lightgbm": fit.validation_mae},
        "test fixture: lightgbm trained on prices in EUR/kWh (a unit mix-up)",
    )
    return EnsembleForecaster(REGION, {"lightgbm": model}, decision, ensemble.intervals, ensemble.feature_columns)


def log_forecaster(trained: TrainedNP, forecaster: EnsembleForecaster, folder: Path, run_name: str) -> tuple[str, str]:
    """Save the forecaster into ``folder`` and log it as the product's pyfunc: (model URI, run id)."""
    forecaster.save(folder)
    tracking.configure(trained.settings)
    experiment = tracking.experiment_id(trained.client, trained.settings)
    origin = trained.features().query("split == 'test'")["origin"].iloc[0]
    example = build_request(
        trained.prices(), trained.exogenous(), REGION, origin
    )  # the raw request of the first test origin
    with mlflow.start_run(experiment_id=experiment, run_name=run_name) as run:
        info = log_ensemble(forecaster, folder, example)
    return info.model_uri, run.info.run_id


def register(trained: TrainedNP, model_uri: str, run_id: str, kind: str) -> str:
    """A new version of NP's model from a logged model: Staging, alias challenger; its number."""
    candidate = register_candidate(trained.client, REGION, model_uri, run_id, tags={"eopt.fixture": kind})
    return candidate.version


def stage_of(client: MlflowClient, version: str) -> str:
    return client.get_model_version(MODEL_NAME, str(version)).current_stage


def production_version(client: MlflowClient) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        latest = client.get_latest_versions(MODEL_NAME, ["Production"])
    return str(latest[0].version) if latest else None


def alias_version(client: MlflowClient, alias: str) -> str | None:
    aliases = client.get_registered_model(MODEL_NAME).aliases or {}
    return str(aliases[alias]) if alias in aliases else None


def with_thresholds(settings: Settings, default: float, per_region: dict[str, float] | None = None) -> Settings:
    return settings.with_overrides(model_mape_threshold=default, model_mape_thresholds=per_region or {})
