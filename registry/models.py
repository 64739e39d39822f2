"""Registered models of the product: one per region, and how a new candidate enters the registry.

A candidate enters as stage ``Staging`` with alias ``challenger`` (DESIGN §4): MLflow 3 prefers
aliases, operators still read stages, and the product keeps both in step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import mlflow
from mlflow.tracking import MlflowClient

STAGING, PRODUCTION, ARCHIVED = "Staging", "Production", "Archived"
CHALLENGER, CHAMPION = "challenger", "champion"


def registered_model_name(region: str) -> str:
    """``electricity-price-NP``: the registered model of one region."""
    return f"electricity-price-{region.upper()}"


@dataclass(frozen=True)
class Candidate:
    name: str
    version: str
    run_id: str
    stage: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def register_candidate(client: MlflowClient, region: str, model_uri: str, run_id: str,
                       tags: dict[str, str]) -> Candidate:
    """A new version of the region's model from ``model_uri``, in Staging with alias ``challenger``."""
    name = registered_model_name(region)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(
            name, tags={"eopt.region": region},
            description=f"Hourly day-ahead price forecaster of {region}: weighted XGBoost + LightGBM + CNN-LSTM "
                        "ensemble with conformal intervals, retrained weekly by the model_retraining DAG.",
        )
    version = mlflow.register_model(model_uri, name, tags=tags)
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3; the product keeps them in step with aliases
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version.version, STAGING, archive_existing_versions=False)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return Candidate(name, str(version.version), run_id, STAGING)


@dataclass(frozen=True)
class Champion:
    name: str
    version: str
    run_id: str | None  # MLflow allows a model version that no run logged

    @property
    def uri(self) -> str:
        """The exact version (not the moving alias), so a forecast names the model it used."""
        return f"models:/{self.name}/{self.version}"


def champion(client: MlflowClient, region: str) -> Champion | None:
    """The region's Production version (alias ``champion``, kept in step with the stage), or None."""
    name = registered_model_name(region)
    if not client.search_registered_models(f"name = '{name}'"):
        return None
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    return Champion(name, str(version.version), version.run_id)
