#!/usr/bin/env python3
"""Rewrite flat settings attributes into the grouped settings model (issue 16, item 3).

``settings.database_url`` -> ``settings.stores.database_url``, ``settings.training_budget`` ->
``settings.training.budget``, ... (``MOVED`` below), and ``replace(settings, x=...)``
(``dataclasses.replace``, which a pydantic model does not support) -> ``settings.with_overrides(x=...)``
(``with_overrides`` takes the flat names, so its keywords stay).

Only attributes of an expression that holds a ``Settings`` are rewritten:
- a name ``settings``/``SETTINGS`` or ending in ``_settings``; ``<anything>.settings``;
- ``Settings.from_env(...)`` and ``<settings>.with_overrides(...)`` calls, and calls of a function
  the tree declares ``-> Settings`` (``task_settings()``, ``settings_of(home)``, ...);
- a name the module assigns from one of those (``s = self.settings``, ``base = Settings.from_env()``,
  ``broken = replace(settings, ...)``) or declares ``: Settings`` (a parameter), module-wide.
``config.regions`` (a ``ProviderConfig``) or ``result.value`` are never touched. The rewrite is
idempotent: ``settings.stores.database_url`` has the receiver ``settings.stores``, not a settings
object. Files are parsed with ``ast``; edits are spliced into the original text (formatting and
comments kept).

    python scripts/settings_codemod.py            # rewrite the tree, print the changed files
    python scripts/settings_codemod.py --check    # exit 1 when a file would change
    python scripts/settings_codemod.py FILE...    # only these files
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the product's layers as the import contract names them, then everything else that reads settings
FOLDERS = (
    *tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"],
    "dags",
    "tests",
    "benchmarks",
    "scripts",
    "monitoring",
    "airflow",
)
SKIP = {Path("core/settings.py"), Path("core/settings_reference.py"), Path("scripts/settings_codemod.py")}

# old flat attribute -> its path in the grouped model (fields that stayed at the top: regions,
# log_level, require_services, and the methods/properties, are not listed)
MOVED = {
    "home": "stores.home",
    "database_url": "stores.database_url",
    "mlflow_tracking_uri": "stores.mlflow_tracking_uri",
    "mlflow_registry_uri": "stores.mlflow_registry_uri",
    "mlflow_artifact_root": "stores.mlflow_artifact_root",
    "redis_url": "stores.redis_url",
    "cache_ttl_prices_s": "stores.cache_ttl_prices_s",
    "cache_ttl_forecasts_s": "stores.cache_ttl_forecasts_s",
    "optuna_storage": "stores.optuna_storage",
    "market_data_dir": "stores.market_data_dir",
    "upsert_batch_rows": "stores.upsert_batch_rows",
    "ingestion_sources": "providers.sources",
    "price_ingestion_min_records": "providers.min_records",
    "pricing_sandbox_url": "providers.sandbox_url",
    "provider_urls": "providers.urls",
    "provider_logins": "providers.logins",
    "provider_keys": "providers.api_keys",
    "training_budget": "training.budget",
    "tuning_trials": "training.tuning_trials",
    "tuning_timeout_s": "training.tuning_timeout_s",
    "training_window_days": "training.window_days",
    "validation_days": "training.validation_days",
    "test_days": "training.test_days",
    "training_origin_stride_h": "training.origin_stride_h",
    "training_max_gap_h": "training.max_gap_h",
    "training_max_staleness_h": "training.max_staleness_h",
    "training_device": "training.device",
    "training_threads": "training.threads",
    "random_seed": "training.random_seed",
    "interval_coverage": "training.interval_coverage",
    "mlflow_experiment": "training.mlflow_experiment",
    "mlflow_run_id": "training.mlflow_run_id",
    "model_mape_threshold": "training.model_mape_threshold",
    "model_mape_thresholds": "training.model_mape_thresholds",
    "promotion_min_improvement": "training.promotion_min_improvement",
    "quality_window_days": "quality.window_days",
    "quality_max_gap_h": "quality.max_gap_h",
    "quality_missing_critical_share": "quality.missing_critical_share",
    "price_outlier_z": "quality.price_outlier_z",
    "freshness_warn_h": "quality.freshness_warn_h",
    "freshness_critical_h": "quality.freshness_critical_h",
    "api_error_rate_warn": "quality.api_error_rate_warn",
    "api_error_rate_critical": "quality.api_error_rate_critical",
    "api_latency_p95_warn_ms": "quality.api_latency_p95_warn_ms",
    "accuracy_mape_critical": "quality.accuracy_mape_critical",
    "accuracy_rmae_factor": "quality.accuracy_rmae_factor",
    "drift_column_threshold": "quality.drift_column_threshold",
    "drift_share_threshold": "quality.drift_share_threshold",
    "retrain_on_drift": "quality.retrain_on_drift",
    "quality_experiment": "quality.experiment",
    "enable_slack_alerts": "alerts.enable_slack",
    "alert_email_to": "alerts.email_to",
    "alert_email_from": "alerts.email_from",
    "metrics_host": "alerts.metrics_host",
    "metrics_port": "alerts.metrics_port",
    "airflow_home": "airflow.home",
    "airflow_task_retries": "airflow.task_retries",
    "airflow_retry_delay_s": "airflow.retry_delay_s",
    "airflow_deadline_alerts": "airflow.deadline_alerts",
}
SETTINGS_NAMES = {"settings", "SETTINGS"}


def _is_settings_annotation(node: ast.AST | None) -> bool:
    if node is None:
        return False
    text = node.value if isinstance(node, ast.Constant) else ast.unparse(node)
    return str(text).replace(" ", "") in ("Settings", "Settings|None", "Optional[Settings]")


def settings_factories(texts: list[str]) -> set[str]:
    """Names of the functions declared ``-> Settings`` in these modules."""
    names = set()
    for text in texts:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_settings_annotation(node.returns):
                names.add(node.name)
    return names


class _Module:
    def __init__(self, text: str, factories: set[str] = frozenset()) -> None:
        self.factories = factories
        self.text = text
        self.data = text.encode()
        self.tree = ast.parse(text)
        self.line_starts = [0]
        for line in self.data.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.names = set(SETTINGS_NAMES)
        self._collect_names()

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col  # ast columns are UTF-8 byte offsets

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.data[start:end].decode()

    def is_settings(self, node: ast.AST) -> bool:
        """Whether ``node`` is an expression that holds a Settings object."""
        if isinstance(node, ast.Name):
            return node.id in self.names or node.id.endswith("_settings")
        if isinstance(node, ast.Attribute):
            return node.attr in ("settings", "SETTINGS")
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "from_env":
                return isinstance(func.value, ast.Name) and func.value.id == "Settings"
            if isinstance(func, ast.Attribute) and func.attr == "with_overrides":
                return self.is_settings(func.value)
            if (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) in self.factories:
                return True
            return _is_replace(node) and bool(node.args) and self.is_settings(node.args[0])
        return False

    def _collect_names(self) -> None:
        """Names the module binds to a settings object (module-wide, to a fixpoint)."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.arg) and _is_settings_annotation(node.annotation):
                self.names.add(node.arg)
        changed = True
        while changed:
            changed = False
            for node in ast.walk(self.tree):
                if (
                    isinstance(node, (ast.Assign, ast.AnnAssign))
                    and node.value is not None
                    and self.is_settings(node.value)
                ):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name) and target.id not in self.names:
                            self.names.add(target.id)
                            changed = True

    def edits(self) -> list[tuple[int, int, str]]:
        out = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and node.attr in MOVED and self.is_settings(node.value):
                _, end = self.span(node)
                start = end - len(node.attr.encode())
                if self.data[start:end] == node.attr.encode():
                    out.append((start, end, MOVED[node.attr]))
            elif (
                isinstance(node, ast.Call)
                and _is_replace(node)
                and len(node.args) == 1
                and self.is_settings(node.args[0])
            ):
                start, end = self.span(node)
                keywords = ", ".join(self.segment(k) for k in node.keywords)
                out.append((start, end, f"{self.segment(node.args[0])}.with_overrides({keywords})"))
        # an outer edit (a replace call) wins over the attribute edits inside it; the next run does those
        out.sort(key=lambda e: (e[0], -e[1]))
        kept: list[tuple[int, int, str]] = []
        for edit in out:
            if kept and edit[0] < kept[-1][1]:
                continue
            kept.append(edit)
        return kept

    def rewritten(self) -> str:
        data = self.data
        for start, end, new in sorted(self.edits(), reverse=True):
            data = data[:start] + new.encode() + data[end:]
        return data.decode()


def _is_replace(node: ast.Call) -> bool:
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "replace") or (
        isinstance(func, ast.Attribute)
        and func.attr == "replace"
        and isinstance(func.value, ast.Name)
        and func.value.id == "dataclasses"
    )


def _drop_unused_replace_import(text: str) -> str:
    """``from dataclasses import replace`` loses ``replace`` when no code uses it any more."""
    tree = ast.parse(text)
    if any(isinstance(n, ast.Name) and n.id == "replace" for n in ast.walk(tree)):
        return text
    lines = text.splitlines(keepends=True)
    for node in tree.body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "dataclasses"
            and any(a.name == "replace" and a.asname is None for a in node.names)
        ):
            rest = [a for a in node.names if a.name != "replace"]
            new = (
                f"from dataclasses import {', '.join(a.name + (f' as {a.asname}' if a.asname else '') for a in rest)}\n"
                if rest
                else ""
            )
            lines[node.lineno - 1 : node.end_lineno] = [new]
            return "".join(lines)
    return text


def rewrite(text: str, factories: set[str] = frozenset()) -> str:
    """``text`` with every flat settings attribute rewritten (run until nothing changes)."""
    while True:
        new = _Module(text, factories).rewritten()
        if new == text:
            break
        text = new
    return _drop_unused_replace_import(text) if "with_overrides(" in text else text


def files(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p).resolve() for p in paths]
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.relative_to(ROOT) not in SKIP and ".venv" not in path.parts:
                found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file would change")
    parser.add_argument("paths", nargs="*", help="files (default: the product packages, dags, tests, benchmarks)")
    args = parser.parse_args(argv)
    changed = []
    factories = settings_factories([p.read_text() for p in files([])] + [p.read_text() for p in files(args.paths)])
    for path in files(args.paths):
        text = path.read_text()
        new = rewrite(text, factories)
        if new != text:
            changed.append(path)
            if not args.check:
                path.write_text(new)
    for path in changed:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
