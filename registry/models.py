"""Registered models of the product: one per region, and how a new candidate enters the registry.

A candidate enters with alias ``challenger`` (DESIGN §4). Aliases are the source of truth: every
decision reads ``champion`` / ``challenger`` (``get_model_version_by_alias``). Stages, deprecated
in MLflow 3, are kept only as a compatibility view for operators and ``models:/NAME/Production``
URIs: ``mirror_stage`` writes them, always after the alias they mirror (``champion`` ->
Production, ``challenger`` -> Staging, rejected -> Archived), and nothing reads them to decide.
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


def mirror_stage(client: MlflowClient, name: str, version: str, stage: str) -> None:
    """The stage view of an alias just written: ``stage`` on ``version``; Production (the champion's
    mirror) archives the version that held it, so ``models:/NAME/Production`` and
    ``models:/NAME@champion`` name the same version. The one place the product writes a stage."""
    # MLflow 3 warns (FutureWarning) on every stage call. Silencing it is safe here: stages are
    # written only to mirror an alias for operators and models:/NAME/Production URIs, after the
    # alias itself; no decision of the product reads a stage, so their removal costs the view only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version, stage, archive_existing_versions=stage == PRODUCTION)


def register_candidate(
    client: MlflowClient, region: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> Candidate:
    """A new version of the region's model from ``model_uri``: alias ``challenger``, mirrored as Staging."""
    name = registered_model_name(region)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(
            name,
            tags={"eopt.region": region},
            description=f"Hourly day-ahead price forecaster of {region}: weighted XGBoost + LightGBM + CNN-LSTM "
            "ensemble with conformal intervals, retrained weekly by the model_retraining DAG.",
        )
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    mirror_stage(client, name, version.version, STAGING)
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
    """The version with the region's alias ``champion`` (mirrored as the Production stage), or None."""
    name = registered_model_name(region)
    if not client.search_registered_models(f"name = '{name}'"):
        return None
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    return Champion(name, str(version.version), version.run_id)
