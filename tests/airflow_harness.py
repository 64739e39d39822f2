"""A real Airflow home for DAG tests: SQLite metadata, the project's dags folder and pools.

DAGs run with the real ``airflow dags test`` command in a subprocess, with connections given
as ``AIRFLOW_CONN_*`` variables (Airflow's environment secrets backend).
"""

from __future__ import annotations

import json
import os
import sqlite3
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

    def _newest_run(self, db: sqlite3.Connection, dag_id: str) -> str:
        row = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
        assert row is not None, f"{dag_id} has no run in {self.home}"
        return row[0]

    def task_states(self, dag_id: str) -> dict[str, str]:
        """The newest run's task instances, read from the metadata database: ``task_id`` (or
        ``task_id[label]`` for a mapped instance, its rendered map index, e.g. the region) -> state."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            run_id = self._newest_run(db, dag_id)
            rows = db.execute(
                "SELECT task_id, map_index, rendered_map_index, state FROM task_instance "
                "WHERE dag_id = ? AND run_id = ?",
                (dag_id, run_id),
            ).fetchall()
        return {
            task if index < 0 else f"{task}[{label if label is not None else index}]": state
            for task, index, label, state in rows
        }

    def run_confs(self, dag_id: str) -> list[object]:
        """The ``conf`` of each run of ``dag_id`` (e.g. one another DAG triggered), oldest first."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute("SELECT conf FROM dag_run WHERE dag_id = ? ORDER BY id", (dag_id,)).fetchall()
        return [_decoded(conf) for (conf,) in rows]

    def xcoms(self, dag_id: str, task_id: str) -> dict[str, object]:
        """The return values the newest run's instances of ``task_id`` pushed (``task_id`` or
        ``task_id[label]`` as in ``task_states``), decoded."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            run_id = self._newest_run(db, dag_id)
            rows = db.execute(
                "SELECT x.map_index, ti.rendered_map_index, x.value FROM xcom x "
                "LEFT JOIN task_instance ti ON ti.dag_id = x.dag_id AND ti.run_id = x.run_id "
                "AND ti.task_id = x.task_id AND ti.map_index = x.map_index "
                "WHERE x.dag_id = ? AND x.run_id = ? AND x.task_id = ? AND x.key = 'return_value'",
                (dag_id, run_id, task_id),
            ).fetchall()
        return {
            task_id if index < 0 else f"{task_id}[{label if label is not None else index}]": _decoded(value)
            for index, label, value in rows
        }


def _decoded(value: object) -> object:
    text = value.decode() if isinstance(value, bytes) else value
    return json.loads(text) if isinstance(text, str) else text


def connection_env(conn_id: str, **fields) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` in Airflow's JSON connection format."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "http", **fields})}
