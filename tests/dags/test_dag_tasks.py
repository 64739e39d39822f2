"""Every DAG task leads to its code in one hop: ``def <task_id>`` in ``pipelines/<dag_id>.py``.

Read from the DAG files' syntax (no Airflow import): a ``@task``-decorated function's task id is
its name (the DAGs never rename one); operators (``TriggerDagRunOperator``) are Airflow's own work.
And parsing a DAG file stays cheap: the dag processor re-imports every file every 30 seconds, so a
DAG file's top level imports no data or model library (the tasks import them when they run).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if "@dag(" in p.read_text())


def _is_task(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    while isinstance(target, ast.Attribute):  # @task.short_circuit
        target = target.value
    return isinstance(target, ast.Name) and target.id == "task"


def task_ids(dag_file: Path) -> list[str]:
    ids = []
    for node in ast.walk(ast.parse(dag_file.read_text())):
        if isinstance(node, ast.FunctionDef) and any(_is_task(d) for d in node.decorator_list):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call):
                    assert not any(k.arg == "task_id" for k in decorator.keywords), (
                        f"{dag_file.name}: task {node.name} is renamed by task_id=; name the function as the task"
                    )
            ids.append(node.name)
    return ids


def functions_in(module: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(module.read_text())) if isinstance(n, ast.FunctionDef)}


def test_the_dag_files_are_the_five_pipelines():
    assert [p.stem for p in DAG_FILES] == [
        "data_quality",
        "electricity_price_ingestion",
        "forecast_generation",
        "maintenance",
        "model_retraining",
    ]


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.stem)
def test_every_task_id_is_a_function_of_its_pipeline_module(dag_file):
    ids = task_ids(dag_file)
    defined = functions_in(ROOT / "pipelines" / dag_file.name)
    assert len(ids) >= 5
    assert sorted(set(ids) - defined) == []


def test_task_ids__reads_names_and_refuses_renamed_tasks(tmp_path):
    dag = tmp_path / "x.py"
    dag.write_text(
        "@task\ndef a(): ...\n@task.short_circuit\ndef b(): ...\n@task(pool='p')\ndef c(): ...\ndef d(): ...\n"
    )
    assert task_ids(dag) == ["a", "b", "c"]
    dag.write_text("@task(task_id='other')\ndef a(): ...\n")
    with pytest.raises(AssertionError, match="renamed by task_id"):
        task_ids(dag)


def test_no_dag_file_shadows_a_package_of_the_product():
    """Airflow puts dags/ on sys.path: a DAG file named like a package (dags/maintenance.py next to
    a maintenance/ package) would be imported in its place by every task."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {p.stem for p in DAG_FILES} & packages == set()
    assert {p.stem for p in (ROOT / "dags").glob("*.py")} & packages == set()


# What a task imports when it runs and a DAG file must not at its top level (pandas alone made a parse
# 0.6 s instead of 0.2 s: the dag processor forks a fresh process per file every 30 s).
TASK_ONLY_LIBRARIES = ("pandas", "numpy", "pyarrow", "sklearn", "scipy", "mlflow", "torch", "lightgbm", "xgboost")
TASK_ONLY_LIBRARIES += ("optuna", "evidently", "redis")


def test_parsing_the_dag_files__imports_no_data_or_model_library(tmp_path):
    script = (
        "import json, sys\n"
        "import airflow.sdk, airflow.providers.standard.operators.trigger_dagrun\n"  # the processor has them
        "before = set(sys.modules)\n"
        f"for name in {[p.stem for p in DAG_FILES]!r}:\n"
        "    __import__(name)\n"
        f"print(json.dumps({{m: m in before for m in {TASK_ONLY_LIBRARIES!r} if m in sys.modules}}))\n"
    )
    env = {"EOPT_HOME": str(tmp_path / "home"), "PYTHONPATH": f"{ROOT / 'dags'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == {}, (
        f"parsing the DAG files imports {sorted(imported)} (True: Airflow itself had); import inside the tasks"
    )
