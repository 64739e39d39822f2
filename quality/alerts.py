"""Alerts: log lines for missed deadlines, and the Slack and email messages for critical
data-quality results and failed DAG tasks.

This module builds the messages (templates ``quality/templates/*_alert.*.j2``) and decides which
channel gets one; it sends nothing itself. The channels are handed in by the caller as plain
functions (``Channel``): in a deployment, ``dags/alert_channels.py`` makes them from Airflow's
``SlackWebhookNotifier`` (connection ``slack_data_quality``) and ``SmtpNotifier`` (connection
``smtp_default``), so only ``dags/`` imports Airflow.

Slack is used when ``enable_slack_alerts`` is on (``EOPT_ENABLE_SLACK_ALERTS`` or the Airflow
variable); email when ``EOPT_ALERT_EMAIL_TO`` names recipients. A channel that cannot deliver
raises ``ChannelError`` with a message that says what to check and holds no secret; it is logged
as an ERROR naming the channel and never stops the other channel or the caller.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.check_results import CheckResult
from core.settings import Settings
from quality.rendering import render

log = logging.getLogger("eopt.alerts")

PRODUCT = "Electricity Optimizer"

SENT = "sent"
DISABLED = "disabled"
NOTHING_CRITICAL = "nothing critical"


async def deadline_missed(**context) -> None:
    """Deadline-alert callback (runs in the triggerer): the run took longer than its deadline."""
    dag_run = context.get("dag_run") or {}
    dag_id = getattr(dag_run, "dag_id", None) or context.get("dag_id") or "unknown DAG"
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id") or "unknown run"
    log.error("deadline missed: %s run %s is still not finished (deadline %s)", dag_id, run_id, context.get("deadline"))


@dataclass(frozen=True)
class Alert:
    """One alert, rendered once per channel."""

    what: str  # for log lines: "data-quality alert (2 critical, run X)"
    slack_text: str  # Slack mrkdwn
    subject: str
    html_body: str


def send_quality_alerts(
    settings: Settings,
    results: list[CheckResult],
    channels: Mapping[str, Channel],
    *,
    run_id: str,
    health_score: float | None,
    report_path: str | None,
    context: dict | None = None,
) -> dict[str, str]:
    """Slack and email when any result is critical. Per channel: ``sent``, ``disabled`` (switched
    off / no recipients), ``nothing critical`` or ``failed: <reason>``; never raises."""
    critical = [r for r in results if r.status == "critical"]
    if not critical:
        return {
            "slack": DISABLED if not settings.alerts.enable_slack else NOTHING_CRITICAL,
            "email": DISABLED if not settings.alerts.email_to else NOTHING_CRITICAL,
        }
    warnings = sum(r.status == "warn" for r in results)
    return send_alert(
        settings,
        quality_alert(critical, warnings, run_id=run_id, health_score=health_score, report_path=report_path),
        channels,
        context or {},
    )


# -- messages -----------------------------------------------------------------------------------


def quality_alert(
    critical: list[CheckResult], warnings: int, *, run_id: str, health_score: float | None, report_path: str | None
) -> Alert:
    score = "n/a (nothing could be checked)" if health_score is None else f"{health_score:g} / 100"
    headline = f"data quality: {len(critical)} critical (run {run_id})"
    values = {
        "product": PRODUCT,
        "headline": headline,
        "score": score,
        "critical": critical,
        "warnings": warnings,
        "report_path": report_path,
        "measured": _measured,
    }
    return Alert(
        what=f"data-quality alert ({len(critical)} critical, run {run_id})",
        slack_text=render("quality_alert.slack.j2", **values),
        subject=f"[{PRODUCT}] {headline}",
        html_body=render("quality_alert.html.j2", **values),
    )


def failure_alert(context: Mapping[str, Any]) -> Alert:
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "unknown DAG"
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", None) or "unknown task"
    map_index = getattr(ti, "map_index", None)
    if isinstance(map_index, int) and map_index >= 0:  # one instance of a mapped task: name its region
        task_id = f"{task_id}[{getattr(ti, 'rendered_map_index', None) or map_index}]"
    run_id = getattr(ti, "run_id", None) or context.get("run_id") or "unknown run"
    try_number = getattr(ti, "try_number", None)
    error = first_line(context.get("exception"))
    log_url = _log_url(ti)
    headline = f"task failed: {dag_id}.{task_id}"
    where = f"run {run_id}" + (f", try {try_number}" if try_number is not None else "")
    values = {
        "product": PRODUCT,
        "headline": headline,
        "dag_id": dag_id,
        "task_id": task_id,
        "where": where,
        "error": error,
        "log_url": log_url,
    }
    return Alert(
        what=f"task failure alert ({dag_id}.{task_id}, {where})",
        slack_text=render("failure_alert.slack.j2", **values),
        subject=f"[{PRODUCT}] {headline} ({where})",
        html_body=render("failure_alert.html.j2", **values),
    )


def connection_alert(failures: list[tuple[str, str, str]], *, checked: int, run_id: str) -> Alert:
    """The monthly connection test's alert: each failed ``(connection id, source, reason)``."""
    names = ", ".join(connection for connection, _, _ in failures)
    headline = f"connection test: {len(failures)} of {checked} provider connection(s) failed: {names}"
    values = {"product": PRODUCT, "headline": headline, "failures": failures, "run_id": run_id}
    return Alert(
        what=f"connection test alert ({names}, run {run_id})",
        slack_text=render("connection_alert.slack.j2", **values),
        subject=f"[{PRODUCT}] {headline}",
        html_body=render("connection_alert.html.j2", **values),
    )


def first_line(error: object) -> str:
    """``RuntimeError: first line of the message`` (the rest is in the task log)."""
    if error is None:
        return "no exception recorded (see the task log)"
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {line}" if line else type(error).__name__
    return line or "no exception recorded (see the task log)"


def _log_url(ti: object) -> str | None:
    try:
        return getattr(ti, "log_url", None) or None
    except Exception:  # the property reads Airflow's configuration; no URL is better than no alert
        return None


def _measured(result: CheckResult) -> str:
    parts = [
        f"{what} {number:g}"
        for what, number in (("value", result.value), ("threshold", result.threshold))
        if number is not None
    ]
    return f" ({', '.join(parts)})" if parts else ""


# -- channels -----------------------------------------------------------------------------------


class ChannelError(Exception):
    """A channel could not deliver; the message says what to check and holds no secret."""


Channel = Callable[[Alert, dict], str]
"""Delivers one alert (the task context as Airflow gives it, or empty); returns where it went
(``https://hooks.example.com``, ``oncall@example.com via smtp:465``) or raises ``ChannelError``."""


def send_alert(settings: Settings, alert: Alert, channels: Mapping[str, Channel], context: dict) -> dict[str, str]:
    """The alert through each switched-on channel (``slack``, ``email``); per channel ``sent``,
    ``disabled`` or ``failed: <reason>``. Never raises."""
    out = {"slack": DISABLED, "email": DISABLED}
    enabled = {"slack": settings.alerts.enable_slack, "email": bool(settings.alerts.email_to)}
    for name, on in enabled.items():
        if on:
            out[name] = _deliver(name, alert, functools.partial(channels[name], alert, context))
    return out


def _deliver(channel: str, alert: Alert, send: Callable[[], str]) -> str:
    try:
        where = send()
    except ChannelError as exc:
        reason = str(exc)
    except Exception as exc:  # Airflow missing or broken: name the error type only, its text may hold a secret
        reason = (
            f"unexpected {type(exc).__name__}; check that Airflow's {channel} provider is installed and "
            f"the {channel} connection is valid"
        )
    else:
        log.info("%s: %s sent to %s", channel, alert.what, where)
        return SENT
    log.error("%s: %s not sent: %s", channel, alert.what, reason)
    return f"failed: {reason}"


def redacted(error: BaseException, secrets: Iterable[str]) -> str:
    text = f"{type(error).__name__}: {error}"
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
