"""The wheel built from the checkout installs and works outside it, not only through ``pip install -e .``.

One wheel and one fresh virtualenv serve the module: the wheel is built from this checkout with the
running (product) interpreter, in a build folder outside the checkout (a stale ``build/lib`` would
put modules in the wheel that the package list leaves out). The fresh virtualenv, also outside the
checkout, sees the product venv's third-party packages through a ``.pth`` line: a line of a ``.pth``
file is appended to ``sys.path``, but the ``.pth`` files in that folder are not processed, so the
product's editable finder (``__editable__.electricity_optimizer-*.pth``) is not active there and the
only copy of the product's packages it can import is the installed wheel (checked, not assumed).
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = PYPROJECT["tool"]["setuptools"]["packages"]
ROOT_PACKAGES = PYPROJECT["tool"]["importlinter"]["root_packages"]
# Read at run time from inside the packages: alembic renders new revisions from the template; the
# reports, alerts and model card are rendered from Jinja2 templates.
PACKAGE_DATA = (
    "core/regions.toml",
    "storage/migrations/script.py.mako",
    "quality/templates/report.html.j2",
    "quality/templates/quality_alert.slack.j2",
    "pipelines/templates/model_card.md.j2",
)
# Wheel modules not imported as such: `python -m eopt` runs the CLI (run below with --help), and
# alembic executes the migrations' env.py during a migration (the migration test below runs it).
NOT_IMPORTED = ("eopt.__main__", "storage.migrations.env")
PRODUCT_SITE_PACKAGES = Path(sysconfig.get_path("purelib")).resolve()

PROBE = textwrap.dedent("""
    import importlib.util, json, sys
    spec = importlib.util.find_spec("storage")
    print(json.dumps({
        "storage": spec.origin if spec else None,
        "editable_finders": [repr(f) for f in sys.meta_path + sys.path_hooks if "__editable__" in repr(f)],
        "sys_path": sys.path,
        "mlflow": importlib.util.find_spec("mlflow").origin,
    }))
""")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path
    workdir: Path  # the cwd of every command: outside the checkout
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, cwd=self.workdir, env=self.env, timeout=timeout
        )

    def python_json(self, code: str, python: Path | None = None) -> dict:
        result = self.run(python or self.python, "-c", code)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])


def _wheel_files(wheel: Path) -> list[str]:
    """The files the wheel's RECORD lists."""
    with zipfile.ZipFile(wheel) as archive:
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        return [line.split(",")[0] for line in archive.read(record).decode().splitlines() if line]


def _product_packages() -> list[Path]:
    """Top-level folders of the checkout that pyproject names: its discovery patterns (or a hand list)."""

    def wanted(name: str) -> bool:
        if isinstance(PACKAGES, list):
            return name in PACKAGES
        return any(fnmatch.fnmatchcase(name, p) for p in PACKAGES["find"]["include"]) and not any(
            fnmatch.fnmatchcase(name, p) for p in PACKAGES["find"].get("exclude", ())
        )

    return sorted(p for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file() and wanted(p.name))


def _checkout_files(package: Path) -> list[str]:
    """The files under a package folder of the checkout (bytecode and dotfiles aside), relative to the root."""
    return sorted(
        str(f.relative_to(ROOT))
        for f in package.rglob("*")
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc" and not f.name.startswith(".")
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging").resolve()
    assert not tmp.is_relative_to(ROOT), f"{tmp} is inside the checkout: run pytest with a --basetemp outside it"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
        and not k.startswith(("EOPT_", "MLFLOW_", "AIRFLOW_", "DIST_EXTRA_CONFIG"))
    }
    env.update(PYTHONNOUSERSITE="1", EOPT_HOME=str(tmp / "home"))
    workdir = tmp / "work"
    workdir.mkdir()

    # setuptools builds in <source>/build by default; the extra config moves that and the egg-info out
    # of the checkout, so no earlier build's files end up in this wheel and the checkout stays clean
    extra = tmp / "build.cfg"
    extra.write_text(f"[build]\nbuild_base = {tmp / 'build'}\n[egg_info]\negg_base = {tmp}\n")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**env, "DIST_EXTRA_CONFIG": str(extra)},
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("electricity_optimizer-*.whl")

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site_packages = Path(
        subprocess.run(
            [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
    ).resolve()
    (site_packages / "product-venv-site-packages.pth").write_text(f"{PRODUCT_SITE_PACKAGES}\n")
    found = Installed(wheel, venv, site_packages, workdir, env)

    # before the wheel: the fresh venv has the dependencies but no copy of the product
    probe = found.python_json(PROBE)
    assert probe["storage"] is None, (
        f"the fresh venv imports the product from {probe['storage']} before the wheel is in"
    )
    assert probe["editable_finders"] == []
    in_checkout = [p for p in probe["sys_path"] if (workdir / p).resolve().is_relative_to(ROOT)]
    assert in_checkout in ([], [str(PRODUCT_SITE_PACKAGES)]), probe["sys_path"]  # .venv may live in the checkout
    assert Path(probe["mlflow"]).is_relative_to(PRODUCT_SITE_PACKAGES), probe["mlflow"]

    # pip (the product venv's, through the .pth) installs into the running interpreter's venv;
    # --ignore-installed: the editable install it sees in the product venv is neither reused nor removed
    install = found.run(
        found.python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return found


def test_probe__sees_the_editable_install_in_the_product_venv_itself(installed):
    # the control of the fixture's probe: the same code run by the product venv's own python finds the
    # editable finder (so its absence in the fresh venv is the .pth rule at work, not a blind probe)
    if not list(PRODUCT_SITE_PACKAGES.glob("__editable__*electricity_optimizer*.pth")):
        pytest.skip("the product venv has no editable install of the project")
    probe = installed.python_json(PROBE, python=Path(sys.executable))
    assert probe["editable_finders"], probe
    assert probe["storage"] is not None and not Path(probe["storage"]).is_relative_to(installed.site_packages)


def test_wheel__ships_every_file_of_the_product_packages_and_their_package_data(installed):
    files = set(_wheel_files(installed.wheel))
    packages = _product_packages()
    assert {p.name for p in packages} == set(ROOT_PACKAGES)  # every layer of the import contract ships
    for package in packages:
        missing = [f for f in _checkout_files(package) if f not in files]
        assert not missing, f"in the checkout but not in the wheel: {missing}"
    for data in PACKAGE_DATA:
        assert data in files, data
    assert {"ingestion/sources/entsoe.py", "ingestion/sandbox/server.py", "training/models/cnn_lstm.py"} <= files
    top_levels = {f.split("/")[0] for f in files if not f.split("/")[0].endswith(".dist-info")}
    assert top_levels == {p.name for p in packages}, "tests, benchmarks and dags stay out of the wheel"


def test_wheel__installs_outside_the_checkout_and_imports_every_module(installed):
    modules = sorted(
        f.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for f in _wheel_files(installed.wheel)
        if f.endswith(".py")
    )
    assert {"storage.migrations.versions", "ingestion.sources.entsoe", "training.models.cnn_lstm"} <= set(modules)
    modules = [m for m in modules if m not in NOT_IMPORTED]
    code = textwrap.dedent(f"""
        import importlib, json, traceback
        found = {{}}
        for name in {modules!r}:
            try:
                found[name] = importlib.import_module(name).__file__
            except BaseException:
                found[name] = "FAILED " + traceback.format_exc(limit=3)
        print(json.dumps(found))
    """)
    found = installed.python_json(code)
    failed = {m: f for m, f in found.items() if f.startswith("FAILED")}
    assert not failed, failed
    elsewhere = {m: f for m, f in found.items() if not Path(f).resolve().is_relative_to(installed.site_packages)}
    assert not elsewhere, f"imported from outside the fresh venv's site-packages: {elsewhere}"
    assert len(found) == len(modules)


def test_wheel__runs_the_store_migrations_from_the_installed_package(installed):
    code = textwrap.dedent(f"""
        import json
        from storage.database import MIGRATIONS_DIR, create_store_engine, head_revision, upgrade
        engine = create_store_engine("sqlite:///{installed.workdir / "store.db"}")
        print(json.dumps({{"dir": str(MIGRATIONS_DIR), "at": upgrade(engine), "head": head_revision()}}))
    """)
    result = installed.python_json(code)
    assert Path(result["dir"]).is_relative_to(installed.site_packages)
    assert result["at"] == result["head"] is not None


def test_wheel__installs_the_eopt_console_script_and_it_answers_help(installed):
    script = installed.venv / "bin" / "eopt"
    assert script.is_file()
    assert script.read_text().splitlines()[0] == f"#!{installed.python}"
    for command in ([script, "--help"], [installed.python, "-m", "eopt", "--help"]):
        result = installed.run(*command)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Usage:" in result.stdout


def test_wheel__renders_the_jinja_templates_from_the_installed_package(installed):
    code = textwrap.dedent("""
        import json
        from pipelines.rendering import TEMPLATES as pipelines
        from quality.alerts import failure_alert
        from quality.rendering import TEMPLATES as quality
        print(json.dumps({"files": [env.get_template(name).filename for env in (quality, pipelines)
                                    for name in env.list_templates()],
                          "slack": failure_alert({}).slack_text}))
    """)
    result = installed.python_json(code)
    in_checkout = sorted(
        p.name for folder in ("quality", "pipelines") for p in (ROOT / folder / "templates").glob("*.j2")
    )
    assert sorted(Path(f).name for f in result["files"]) == in_checkout and len(in_checkout) == 9
    assert all(Path(f).is_relative_to(installed.site_packages) for f in result["files"]), result["files"]
    assert result["slack"].startswith(":x: *Electricity Optimizer task failed: unknown DAG.unknown task*\n")
