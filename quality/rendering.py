"""The quality package's templates (``quality/templates/``): the data-quality report (Markdown and
HTML) and the alerts (Slack mrkdwn and the HTML email body).

Filters the templates use besides Jinja's own:

- ``slack``: Slack's mrkdwn escaping of ``&``, ``<`` and ``>`` (Slack text is not autoescaped);
- ``table_cell``: a Markdown table cell (``|`` escaped);
- ``number``: a number as ``:g`` formats it, or nothing for None.
"""

from __future__ import annotations

from typing import Any

from core.templating import environment


def slack_escape(text: str) -> str:
    """Slack's mrkdwn escaping: ``<``, ``>`` and ``&`` would start links and entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def table_cell(text: str) -> str:
    """Text for a Markdown table cell: a ``|`` would end the cell."""
    return text.replace("|", "\\|")


def number(value: float | None) -> str:
    """``30``, ``0.25``, ``1e+07``; an empty string for None."""
    return "" if value is None else f"{value:g}"


TEMPLATES = environment("quality", {"slack": slack_escape, "table_cell": table_cell, "number": number})


def render(name: str, /, **context: Any) -> str:
    """The template ``quality/templates/<name>`` rendered with ``context``."""
    return TEMPLATES.get_template(name).render(**context)
