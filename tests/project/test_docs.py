"""The documentation site (``mkdocs.yml``, ``docs/``) and the README.

The site is built once with ``mkdocs build --strict`` (what ``make docs`` and ``.ci/run`` run). Then,
from the code and not from the docs: every settings variable, every ``eopt`` command and every
public module must be in the generated reference; every page the docs promise must exist; a
broken link must fail the strict build; the benchmarks page must follow the result files; the
README stays short. The browser test opens the built site in headless Chromium.
"""

from __future__ import annotations

import functools
import html
import json
import pkgutil
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest
import yaml

from benchmarks.summary import render_page
from core.settings import variable_of
from core.settings_reference import fields
from eopt.cli import cli
from tests.browser import headless_chromium, screenshot, wait_for_text

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"
PAGES = (
    "index.html",
    "getting-started/index.html",
    "architecture/index.html",
    "pipelines/ingestion/index.html",
    "pipelines/retraining/index.html",
    "pipelines/forecast/index.html",
    "pipelines/data-quality/index.html",
    "registry-and-gate/index.html",
    "serving/index.html",
    "monitoring-and-alerts/index.html",
    "operations/index.html",
    "scaling/index.html",
    "troubleshooting/index.html",
    "benchmarks/index.html",
    "configuration/index.html",
    "reference/cli/index.html",
)


def build(config_folder: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
        cwd=config_folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1", "HOME": str(site.parent)},
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site") / "site"
    result = build(ROOT, folder)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return folder


def text_of(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


def product_packages() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def public_modules() -> list[str]:
    """Every module of the product packages whose dotted name has no ``_`` part (migrations' revisions aside)."""
    out = []
    for package in product_packages():
        out.append(package)
        for module in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            parts = module.name.split(".")
            if any(p.startswith("_") for p in parts) or module.name.startswith("storage.migrations"):
                continue
            out.append(module.name)
    return out


def commands(group: click.Group, prefix: str = "eopt") -> Iterator[str]:
    for name, command in group.commands.items():
        yield f"{prefix} {name}"
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")


def test_readme__is_at_most_160_lines_and_points_into_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    for page in ("docs/getting-started.md", "docs/operations.md", "docs/configuration.md", "docs/architecture.md"):
        assert f"]({page}" in readme, f"README.md no longer links {page}"
    assert "make demo" in readme and "make test" in readme and "-m " in readme  # the two commands, a fast subset
    assert "## Status" not in readme


def test_site__has_every_page_the_docs_promise(site):
    assert [page for page in PAGES if not (site / page).is_file()] == []
    nav = text_of(site / "index.html")
    for title in ("Getting started", "Architecture", "Price ingestion", "Registry and the gate", "Operations"):
        assert title in nav
    assert 'class="mermaid"' in (site / "architecture/index.html").read_text()  # the data-flow diagram
    rules = yaml.safe_load((ROOT / "monitoring/alerts.yml").read_text())["groups"]
    monitoring = (site / "monitoring-and-alerts/index.html").read_text()
    assert [r["alert"] for g in rules for r in g["rules"] if f"<code>{r['alert']}</code>" not in monitoring] == []


def test_configuration_reference__lists_every_settings_variable_of_the_model(site):
    page = text_of(site / "configuration/index.html")
    variables = [variable_of(field) for _, _, own in fields() for _, field in own]
    assert len(variables) > 60
    assert [v for v in variables if v not in page] == []


def test_cli_reference__documents_every_eopt_command(site):
    page = (site / "reference/cli/index.html").read_text()
    every = list(commands(cli))
    assert {"eopt db upgrade", "eopt registry rollback", "eopt maintenance run", "eopt settings reference"} <= set(
        every
    )
    missing = [c for c in every if f'id="{c.replace(" ", "-")}"' not in page]
    assert missing == []
    assert "--chunk-days" in page  # options come from the click definitions


def test_api_reference__documents_every_public_module(site):
    pages = "".join((site / "reference/api" / p / "index.html").read_text() for p in product_packages())
    modules = public_modules()
    assert {"core.settings", "registry.gate", "serving.pyfunc", "eopt.cli"} <= set(modules)
    assert [m for m in modules if f'id="{m}"' not in pages] == []


def test_benchmarks_page__is_rendered_from_the_result_files(site, tmp_path):
    record = json.loads((ROOT / "benchmarks/results/accuracy_NP.json").read_text())
    assert f"| {record['metrics']['ensemble']['mae']:.3f} |" in (site / "benchmarks/index.html").read_text().replace(
        "<td>", "| "
    ).replace("</td>", " |")
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks/results", results)
    storage = json.loads((results / "storage_upsert.json").read_text())
    storage["upsert_to_copy_ratio"] = 0.42
    (results / "storage_upsert.json").write_text(json.dumps(storage))
    assert "**0.42x**" in render_page(results) and "**0.42x**" not in render_page(ROOT / "benchmarks/results")
    (results / "training.json").write_text("{}")
    with pytest.raises(ValueError, match=r"training\.json"):
        render_page(results)


def test_strict_build__fails_on_a_broken_link_in_the_docs_or_the_readme(tmp_path):
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("mkdocs.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "docs", copy / "docs")
    (copy / "monitoring").mkdir()
    shutil.copy(ROOT / "monitoring/alerts.yml", copy / "monitoring/alerts.yml")
    (copy / "README.md").write_text("# x\n\nSee [the guide](docs/operations.md#health-checks).\n")
    page = copy / "docs/troubleshooting.md"
    page.write_text(page.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    result = build(copy, tmp_path / "site-docs")
    assert result.returncode != 0 and "no-such-page.md" in result.stderr

    page.write_text(page.read_text().replace("\nSee [nowhere](no-such-page.md).\n", "\n"))
    (copy / "README.md").write_text("# x\n\nSee [the guide](docs/operations.md#no-such-heading).\n")
    result = build(copy, tmp_path / "site-readme")
    assert result.returncode != 0 and "#no-such-heading" in result.stderr


@pytest.fixture(scope="module")
def served_site(site: Path) -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
def test_built_site__home_and_configuration_pages_show_the_navigation_and_a_variable(served_site):
    from selenium.webdriver.common.by import By

    with headless_chromium() as browser:
        browser.get(f"{served_site}/")
        wait_for_text(browser, "Electricity Optimizer", "Getting started", "Architecture", "Operations")
        links = {a.text.strip() for a in browser.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a") if a.text}
        assert {"Getting started", "Architecture", "Operations", "Benchmarks", "Configuration"} <= links
        screenshot(browser, "docs-home")

        browser.get(f"{served_site}/configuration/")
        text = wait_for_text(browser, "Configuration reference", "EOPT_DATABASE_URL")
        assert "sqlite:///$EOPT_HOME/prices.db" in text  # the variable's default, from the settings model
        screenshot(browser, "docs-configuration")
