"""Aliases decide, stages mirror them: the alias is written first, the stage view after it and only
through ``registry.models.mirror_stage``, and ``models:/NAME/Production`` resolves to the version of
``models:/NAME@champion``. A recording stand-in client checks the order of the writes; a SQLite-backed
MLflow registry (versions without artifacts: nothing here loads a model) checks the resolution.
(tests/registry/test_registry.py walks the gate itself through real models.)
"""

from __future__ import annotations

import re
import tomllib
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.utils.models import get_model_name_and_version
from mlflow.tracking import MlflowClient

from registry import models
from registry.models import (
    CHALLENGER,
    CHAMPION,
    mirror_stage,
    register_candidate,
    registered_model_name,
)
from registry.promotion import make_champion

ROOT = Path(__file__).resolve().parents[2]
# the packages the import contract covers (pyproject.toml), and the DAG files
PRODUCT_PACKAGES = (
    *tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"],
    "dags",
)
NAME = registered_model_name("NP")


class RecordingClient:
    """The registry calls the product makes, recorded in order; stage writes fail on request."""

    def __init__(self, champion: str | None = None, stage_fails: bool = False) -> None:
        self.aliases: dict[str, str] = {CHAMPION: champion} if champion else {}
        self.stage_fails = stage_fails
        self.calls: list[tuple] = []

    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        if alias not in self.aliases:
            raise MlflowException(f"Registered model alias {alias} not found.")
        return SimpleNamespace(version=self.aliases[alias])

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.calls.append(("alias", alias, str(version)))
        self.aliases[alias] = str(version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.calls.append(("delete alias", alias))
        del self.aliases[alias]

    def transition_model_version_stage(
        self, name: str, version: str, stage: str, archive_existing_versions: bool = False
    ) -> None:
        self.calls.append(("stage", str(version), stage, archive_existing_versions))
        if self.stage_fails:
            raise MlflowException("the registry refused the stage transition")

    def search_registered_models(self, filter_string: str) -> list:
        return [NAME]


def test_make_champion__writes_the_alias_first_then_mirrors_it_as_production():
    client = RecordingClient(champion="2")
    make_champion(client, NAME, "3")
    assert client.calls == [("alias", CHAMPION, "3"), ("stage", "3", "Production", True)]
    assert client.aliases == {CHAMPION: "3"}


def test_make_champion__moves_the_challenger_alias_off_the_new_champion_after_the_stage():
    client = RecordingClient(champion="2")
    client.aliases[CHALLENGER] = "3"
    make_champion(client, NAME, "3")
    assert client.calls == [("alias", CHAMPION, "3"), ("stage", "3", "Production", True), ("delete alias", CHALLENGER)]


@pytest.mark.parametrize("before", ["2", None])
def test_make_champion__a_failed_stage_mirror_puts_the_alias_back_and_raises(before):
    client = RecordingClient(champion=before, stage_fails=True)
    with pytest.raises(MlflowException, match="refused the stage transition"):
        make_champion(client, NAME, "3")
    assert client.aliases.get(CHAMPION) == before  # Production unchanged: alias (and stage) as before
    assert client.calls[-1] == (("alias", CHAMPION, before) if before else ("delete alias", CHAMPION))


def test_register_candidate__writes_the_challenger_alias_first_then_mirrors_it_as_staging(monkeypatch):
    monkeypatch.setattr(models.mlflow, "register_model", lambda uri, name, tags: SimpleNamespace(version=7))
    client = RecordingClient()
    candidate = register_candidate(client, "NP", "models:/m-123", "run-1", tags={})
    assert client.calls == [("alias", CHALLENGER, "7"), ("stage", "7", "Staging", False)]
    assert (candidate.version, candidate.stage) == ("7", "Staging")


def test_mirror_stage__is_the_only_stage_write_and_no_product_code_reads_a_stage_to_decide():
    writes, reads = [], []
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            where = str(path.relative_to(ROOT))
            writes += [where for _ in re.finditer(r"\.transition_model_version_stage\(", text)]
            reads += [where for _ in re.finditer(r"\.get_latest_versions\(", text)]
    assert writes == ["registry/models.py"]  # inside mirror_stage
    assert reads == []  # the champion is read by alias (registry.models.champion)


@pytest.fixture
def registry(tmp_path) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    client.create_registered_model(NAME)
    (tmp_path / "model").mkdir()
    for _ in range(3):
        client.create_model_version(NAME, source=str(tmp_path / "model"), run_id=None)
    return client


def resolved(client: MlflowClient, uri: str) -> str:
    with warnings.catch_warnings():  # resolving a stage URI is the stage API: the test reads the view
        warnings.simplefilter("ignore", FutureWarning)
        return str(get_model_name_and_version(client, uri)[1])


def stages(client: MlflowClient) -> dict[str, str]:
    return {str(v.version): v.current_stage for v in client.search_model_versions(f"name = '{NAME}'")}


def test_promotions_and_a_rollback__production_and_champion_uris_resolve_to_the_same_version(registry):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning of the stage API reaches the caller
        for version, expected in (
            ("1", {"1": "Production", "2": "None", "3": "None"}),
            ("2", {"1": "Archived", "2": "Production", "3": "None"}),
            ("1", {"1": "Production", "2": "Archived", "3": "None"}),
        ):  # the rollback
            make_champion(registry, NAME, version)
            assert (
                resolved(registry, f"models:/{NAME}/Production")
                == resolved(registry, f"models:/{NAME}@champion")
                == version
            )
            assert stages(registry) == expected
        mirror_stage(registry, NAME, "3", "Archived")
    assert stages(registry)["3"] == "Archived"
