"""The project's own files: layout, pins, lock, MLproject (docker-compose: tests/project/test_compose.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import sqlalchemy as sa
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DIRECT = [Requirement(d) for d in PYPROJECT["project"]["dependencies"]]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_layout__has_the_design_cards_top_level():
    for folder in (
        "dags",
        "ingestion",
        "storage",
        "quality",
        "training",
        "serving",
        "registry",
        "drift",
        "monitoring",
        "benchmarks",
        "data",
        "tests",
    ):
        assert (ROOT / folder).is_dir(), folder
    for file in ("docker-compose.yml", "MLproject", "conda.yaml", "README.md", "pyproject.toml", "Makefile", ".ci/run"):
        assert (ROOT / file).is_file(), file


def test_lock__pins_every_direct_dependency_to_a_version_its_specifier_allows():
    lock = _lock()
    for requirement in DIRECT:
        name = requirement.name.lower().replace("_", "-")
        assert name in lock, f"{name} missing from requirements.lock"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            name,
            lock[name],
            str(requirement.specifier),
        )
    assert PYPROJECT["project"]["scripts"] == {"eopt": "eopt.entry:main"}


def test_lock__pins_every_extra_exactly_as_pyproject_does():
    lock = _lock()
    extras = [Requirement(d) for group in PYPROJECT["project"]["optional-dependencies"].values() for d in group]
    assert {"mkdocs", "mkdocs-material", "mkdocs-click", "mkdocstrings"} <= {r.name for r in extras}
    for requirement in extras:
        name = requirement.name.lower().replace("_", "-")
        assert name in lock, f"{name} missing from requirements.lock"
        assert str(requirement.specifier) == f"=={lock[name]}", (name, lock[name], str(requirement.specifier))
    assert "mkdocstrings-python" in lock and "griffelib" in lock  # mkdocstrings[python]'s handler, locked too


def test_lock__torch_is_the_exact_cpu_build_and_key_versions_are_as_pinned():
    lock = _lock()
    assert lock["torch"] in ("2.13.0", "2.13.0+cpu")
    assert lock["apache-airflow"].startswith("3.3.") and lock["mlflow"].startswith("3.17.")
    assert lock["optuna"].startswith("5.") and lock["evidently"] == "0.7.23"
    assert int(lock["pandas"].split(".")[0]) < 3


def test_conda_env__lists_the_same_pins_as_pyproject():
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    assert "python=3.11" in conda["dependencies"]
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert [str(Requirement(p)) for p in pip] == [str(r) for r in DIRECT]


def test_mlproject__entry_points_are_declared():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert project["conda_env"] == "conda.yaml"
    assert {"load_history", "train", "tune", "evaluate", "backtest"} <= set(project["entry_points"])
    assert set(project["entry_points"]["train"]["parameters"]) == {"region", "budget", "as_of"}


def test_mlflow_run__load_history_entry_point_works_from_the_project(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOPT_", "MLFLOW_"))}
    env.update(
        EOPT_HOME=str(tmp_path / "home"),
        EOPT_LOG_LEVEL="WARNING",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        # --env-manager local runs the entry point with the active environment's `python`
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    mlflow = Path(sys.executable).parent / "mlflow"
    result = subprocess.run(
        [
            str(mlflow),
            "run",
            str(ROOT),
            "-e",
            "load_history",
            "--env-manager",
            "local",
            "-P",
            "region=NP",
            "-P",
            "start=2018-12-20",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "total new rows: 119" in result.stdout  # 2018-12-20 00:00 .. 2018-12-24 22:00 UTC: 4 x 24 + 23
    assert re.search(r"Run \(ID '[0-9a-f]+'\) succeeded", result.stderr)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'home' / 'prices.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM electricity_prices")).scalar() == 119


def test_mlflow_run__train_entry_point_registers_a_model_from_a_clean_home(tmp_path):
    from mlflow.tracking import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOPT_", "MLFLOW_"))}
    env.update(
        EOPT_HOME=str(tmp_path / "home"),
        EOPT_LOG_LEVEL="WARNING",
        MLFLOW_TRACKING_URI=tracking,
        # the entry point is under test, not the models: a 120-day window, one Optuna trial per member,
        # one thread per fit (`make test` runs two workers on the two cores)
        EOPT_TRAINING_WINDOW_DAYS="120",
        EOPT_VALIDATION_DAYS="14",
        EOPT_TEST_DAYS="14",
        EOPT_TUNING_TRIALS="1",
        EOPT_TRAINING_THREADS="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    mlflow = Path(sys.executable).parent / "mlflow"
    result = subprocess.run(
        [
            str(mlflow),
            "run",
            str(ROOT),
            "-e",
            "train",
            "--env-manager",
            "local",
            "-P",
            "region=NP",
            "-P",
            "budget=smoke",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"NP: electricity-price-NP version 1 registered; \w+ test MAE [\d.]+, rMAE 0\.\d+", result.stdout)
    assert (
        "NP: gate: version 1 PROMOTED to Production (champion): MAPE" in result.stdout
    )  # no champion yet: threshold + naive
    project_run = re.search(r"Run \(ID '([0-9a-f]+)'\) succeeded", result.stderr).group(1)
    client = MlflowClient(tracking, tracking)
    version = client.get_model_version("electricity-price-NP", "1")
    retraining = client.get_run(version.run_id)
    assert retraining.data.tags["mlflow.parentRunId"] == project_run  # nested under the `mlflow run` run
    assert retraining.data.metrics["test_rmae"] <= 0.6
