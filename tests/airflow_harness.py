"""A real Airflow home for DAG tests: SQLite metadata, the project's dags folder and pools.

DAGs run with the real ``airflow dags test`` command in a subprocess, with connections given
as ``AIRFLOW_CONN_*`` variables (Airflow's environment secrets backend).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = Path(sys.executable).parent / "airflow"


@dataclass
class AirflowHome:
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, home: Path) -> AirflowHome:
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EOPT_", "MLFLOW_", "REDIS_URL"))}
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        airflow = cls(home, env)
        airflow.run("db", "migrate")
        airflow.run("pools", "import", str(ROOT / "airflow" / "pools.json"))
        return airflow

    def run(self, *args: str, extra_env: dict[str, str] | None = None, timeout: int = 300, check: bool = True):
        result = subprocess.run(
            [str(AIRFLOW), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **(extra_env or {})},
            cwd=self.home,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def run_python(self, script: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run Python with this Airflow home's configuration (e.g. to load the DagBag)."""
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            env={**self.env, **(extra_env or {})},
            cwd=self.home,
        )
        if result.returncode != 0:
            raise AssertionError(f"python failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def dags_test(
        self,
        dag_id: str,
        logical_date: str,
        conf: dict | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: int = 300,
    ):
        args = ["dags", "test", dag_id, logical_date]
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        return self.run(*args, extra_env=extra_env, timeout=timeout, check=False)


def connection_env(conn_id: str, **fields) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` in Airflow's JSON connection format."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "http", **fields})}
