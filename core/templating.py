"""Jinja2 environments for the product's renderings (data-quality report, alerts, model card).

Each package keeps its templates in its own ``templates/`` folder, shipped in the wheel as package
data (``[tool.setuptools.package-data]``), and makes one environment over it with ``environment``:

- HTML templates (``*.html.j2``) are autoescaped; Markdown and Slack text (``*.md.j2``,
  ``*.slack.j2``) are not, and escape what their format needs with the package's filters.
- A variable the template names but the caller did not pass raises (``StrictUndefined``) instead
  of rendering as an empty string.
- Text is line-oriented: a line holding only a ``{% %}`` tag leaves nothing in the output
  (``trim_blocks``, ``lstrip_blocks``), and the file's final newline is the output's
  (``keep_trailing_newline``); ``{%-``, ``-%}`` and ``{#- #}`` join lines where the output has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

HTML_EXTENSIONS = ("html.j2", "html")


def environment(package: str, filters: dict[str, Callable[..., Any]] | None = None) -> Environment:
    """An environment over ``<package>/templates/``, with the package's own ``filters``."""
    env = Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(enabled_extensions=HTML_EXTENSIONS, default_for_string=False, default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters or {})
    return env
