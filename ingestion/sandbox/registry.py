"""The provider apps the sandbox serves, by path prefix."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

PROVIDERS = ("flatpeak", "nrel", "openei", "iea", "entsoe")


def _factories() -> dict[str, Callable[[Any], Any]]:
    factories = {}
    for name in PROVIDERS:
        module = importlib.import_module(f"ingestion.sandbox.{name}")
        factories[name] = module.App
    return factories


APP_FACTORIES = _factories()
