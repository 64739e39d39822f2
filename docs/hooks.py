"""MkDocs hooks of the documentation site (``mkdocs.yml``), run by ``mkdocs build``.

- the configuration reference (``docs/configuration.md``) must be what ``core.settings_reference``
  renders from the settings model today: a stale one stops the build (``eopt settings reference``);
- the benchmarks page is generated from ``benchmarks/results/*.json`` (``benchmarks.summary``), with
  the accuracy bar chart against LEAR and DNN drawn from the same files and the benchmarks' own
  figures (``benchmarks/results/*.png``) under ``assets/results/``;
- one API reference page per product package (the import contract's ``root_packages`` in
  ``pyproject.toml``), rendered by mkdocstrings from the docstrings; a package missing from the
  navigation stops the build;
- the drift page gets its measured tables (the rules' power and false alarms per market, the
  performance CUSUM's false alarms and delay) from ``benchmarks/results/drift_power.json`` and
  ``drift_performance.json`` (``benchmarks.summary.drift_tables``), where it has the marker;
- the monitoring page gets the table of every alert rule of ``monitoring/alerts.yml`` (what fires,
  after how long, and what to do), so the page the alerts' runbook links name always lists them;
- every relative link of ``README.md`` must name a file of the repository (and a heading of it
  where it has an anchor): the docs pages' own links are checked by the strict build.
"""

from __future__ import annotations

import logging
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
log = logging.getLogger("mkdocs.hooks.eopt")
DRIFT_RESULTS = "<!-- drift results: generated from benchmarks/results/drift_*.json -->"
SCALE_RESULTS = "<!-- scale results: generated from benchmarks/results/scale.json -->"


def product_packages() -> list[str]:
    """The product's packages, as the import contract lists them."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(pyproject["tool"]["importlinter"]["root_packages"])


def api_page(package: str) -> str:
    return (
        f"# `{package}`\n\n"
        "<!-- Generated at build time by docs/hooks.py from the package's docstrings (mkdocstrings). -->\n\n"
        f"::: {package}\n"
    )


def _slug(heading: str) -> str:
    """GitHub's and Python-Markdown's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r"\s+", "-", text)


def anchors(markdown: str) -> set[str]:
    outside_code = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    return {_slug(line.lstrip("#")) for line in outside_code.splitlines() if re.match(r"#{1,6} ", line)}


def broken_links(markdown_path: Path, root: Path = ROOT) -> list[str]:
    """Every relative link (or image) of ``markdown_path`` that names no file, or no heading of it."""
    text = markdown_path.read_text()
    problems = []
    for match in LINK.finditer(re.sub(r"```.*?```", "", text, flags=re.DOTALL)):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (markdown_path.parent / path).resolve() if path else markdown_path
        if not file.is_relative_to(root) or not file.exists():
            problems.append(f"{markdown_path.name}: link {target!r} names no file of the repository")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            problems.append(f"{markdown_path.name}: link {target!r}: {file.name} has no heading #{anchor}")
    return problems


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    if str(ROOT) not in sys.path:  # this checkout's packages (benchmarks/ is not installed), whatever the cwd
        sys.path.insert(0, str(ROOT))
    from core.settings_reference import REFERENCE_PATH, render_reference

    if REFERENCE_PATH.read_text() != render_reference():
        raise PluginError(f"{REFERENCE_PATH.relative_to(ROOT)} is stale: run `eopt settings reference`")
    problems = broken_links(ROOT / "README.md")
    if problems:
        raise PluginError("broken links in README.md:\n  " + "\n  ".join(problems))
    listed = {str(page) for section in config.nav or [] for page in _pages(section)}
    missing = [p for p in product_packages() if f"reference/api/{p}.md" not in listed]
    if missing:
        raise PluginError(f"mkdocs.yml: the API reference navigation lacks the product packages {missing}")
    return config


def alert_rules_table(rules_file: Path = ROOT / "monitoring" / "alerts.yml") -> str:
    import yaml

    lines = [
        "## Alert rules",
        "",
        "<!-- Generated at build time by docs/hooks.py from monitoring/alerts.yml. -->",
        "",
        "| alert | severity | fires after | what it means and what to do |",
        "|---|---|---|---|",
    ]
    for group in yaml.safe_load(rules_file.read_text())["groups"]:
        for rule in group["rules"]:
            what = " ".join(rule["annotations"]["description"].split()).replace("|", "\\|")
            what = re.sub(r"(\{\{.*?\}\})+", "…", what).removesuffix(" See docs/monitoring-and-alerts.md.")
            lines.append(f"| `{rule['alert']}` | {rule['labels']['severity']} | {rule['for']} | {what} |")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page: Any, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri == "monitoring-and-alerts.md":
        return markdown.rstrip("\n") + "\n\n" + alert_rules_table()
    if page.file.src_uri == "drift.md":
        from benchmarks.summary import drift_tables

        if DRIFT_RESULTS not in markdown:
            raise PluginError(f"docs/drift.md: the marker {DRIFT_RESULTS} (where the measured tables go) is missing")
        return markdown.replace(DRIFT_RESULTS, drift_tables())
    if page.file.src_uri == "scaling.md":
        from benchmarks.summary import scale_tables

        if SCALE_RESULTS not in markdown:
            raise PluginError(f"docs/scaling.md: the marker {SCALE_RESULTS} (where the measured table goes) is missing")
        return markdown.replace(SCALE_RESULTS, scale_tables())
    return markdown


def _pages(item: object) -> list[str]:
    if isinstance(item, str):
        return [item]
    if isinstance(item, dict):
        return [page for value in item.values() for page in _pages(value)]
    if isinstance(item, list):
        return [page for value in item for page in _pages(value)]
    return []


def on_files(files: Files, config: MkDocsConfig) -> Files:
    from benchmarks.summary import RESULTS, accuracy_chart, render_page

    try:
        benchmarks = render_page()
    except ValueError as exc:
        raise PluginError(str(exc)) from None
    files.append(File.generated(config, "benchmarks.md", content=benchmarks))
    files.append(File.generated(config, "assets/accuracy-vs-published.png", content=accuracy_chart()))
    for figure in sorted(RESULTS.glob("*.png")):  # the benchmarks' own figures, as they recorded them
        files.append(File.generated(config, f"assets/results/{figure.name}", content=figure.read_bytes()))
    for package in product_packages():
        files.append(File.generated(config, f"reference/api/{package}.md", content=api_page(package)))
    return files
