"""The pipelines package's templates (``pipelines/templates/``): the model card of a candidate."""

from __future__ import annotations

from typing import Any

from core.templating import environment

TEMPLATES = environment("pipelines")


def render(name: str, /, **context: Any) -> str:
    """The template ``pipelines/templates/<name>`` rendered with ``context``."""
    return TEMPLATES.get_template(name).render(**context)
