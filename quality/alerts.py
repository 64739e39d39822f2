"""Alerts: log lines for missed deadlines and forecast fallbacks, and Slack and email for critical
data-quality results and failed DAG tasks.

Slack goes through Airflow's ``SlackWebhookNotifier`` (connection ``slack_data_quality``) when
``enable_slack_alerts`` is on (``EOPT_ENABLE_SLACK_ALERTS`` or the Airflow variable); email goes
through ``SmtpNotifier`` (connection ``smtp_default``) when ``EOPT_ALERT_EMAIL_TO`` names
recipients. Connections, in Airflow's JSON format (``AIRFLOW_CONN_<ID>`` or ``airflow connections
add --conn-json``):

| connection | JSON |
|---|---|
| ``slack_data_quality`` | ``{"conn_type": "slackwebhook", "password": "T000/B000/XXXX"}`` (the webhook token; host defaults to ``hooks.slack.com/services``), or the whole webhook URL as password; extra ``timeout`` (s) |
| ``smtp_default`` | ``{"conn_type": "smtp", "host": "smtp.example.com", "port": 465, "login": "alerts", "password": "...", "extra": {"timeout": 30, "retry_limit": 5}}``; port 587 with STARTTLS: extra ``"disable_ssl": true``; a plain relay: ``"disable_ssl": true, "disable_tls": true`` |

A channel that cannot be reached (missing connection, connection refused, HTTP 5xx, SMTP down)
is logged as an ERROR naming the channel and what to check; it never stops the other channel or
the caller. Webhook tokens and SMTP passwords appear in no log line and no return value.

Airflow is imported only when a message is sent, so the triggerer and plain Python can import
the module (``deadline_missed`` runs in the triggerer).
"""

from __future__ import annotations

import html
import importlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from eopt.settings import Settings
from quality.results import CheckResult

log = logging.getLogger("eopt.alerts")

SLACK_CONN_ID = "slack_data_quality"
SMTP_CONN_ID = "smtp_default"
SLACK_TIMEOUT_S = 10
PRODUCT = "Electricity Optimizer"

SENT = "sent"
DISABLED = "disabled"
NOTHING_CRITICAL = "nothing critical"

# The Slack client's own log lines: it writes the whole webhook URL, token included, when it
# retries a refused connection, so it gets a logger of its own that lets nothing through; the
# outcome is logged here, without the token.
SLACK_CLIENT_LOG = logging.getLogger("eopt.alerts.slack_client")
SLACK_CLIENT_LOG.setLevel(logging.CRITICAL + 1)


async def deadline_missed(**context) -> None:
    """Deadline-alert callback (runs in the triggerer): the run took longer than its deadline."""
    dag_run = context.get("dag_run") or {}
    dag_id = getattr(dag_run, "dag_id", None) or context.get("dag_id") or "unknown DAG"
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id") or "unknown run"
    log.error("deadline missed: %s run %s is still not finished (deadline %s)", dag_id, run_id, context.get("deadline"))


def forecast_fallback(region: str, reason: str) -> None:
    """A region's forecast came from the seasonal-naive fallback, not its Production model."""
    log.error("forecast fallback: %s was forecast by the seasonal naive (is_fallback=true), not its Production "
              "model: %s", region, reason)


@dataclass(frozen=True)
class Alert:
    """One alert, rendered once per channel."""

    what: str  # for log lines: "data-quality alert (2 critical, run X)"
    slack_text: str  # Slack mrkdwn
    subject: str
    html_body: str


def send_quality_alerts(settings: Settings, results: list[CheckResult], *, run_id: str, health_score: float | None,
                        report_path: str | None, context: dict | None = None) -> dict[str, str]:
    """Slack and email when any result is critical. Per channel: ``sent``, ``disabled`` (switched
    off / no recipients), ``nothing critical`` or ``failed: <reason>``; never raises."""
    critical = [r for r in results if r.status == "critical"]
    if not critical:
        return {"slack": DISABLED if not settings.enable_slack_alerts else NOTHING_CRITICAL,
                "email": DISABLED if not settings.alert_email_to else NOTHING_CRITICAL}
    warnings = sum(r.status == "warn" for r in results)
    return _send(settings, quality_alert(critical, warnings, run_id=run_id, health_score=health_score,
                                         report_path=report_path), context or {})


def task_failure_alert(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every DAG's tasks (Airflow calls it once a task has failed its
    last try, in the task's process): Slack and email naming the DAG, task, run, try, the error's
    first line and the log URL. Never raises: a failing alert must not hide the task's failure."""
    try:
        _send(_callback_settings(), failure_alert(context), dict(context))
    except Exception as exc:  # building the message or the settings failed; the channels never raise
        log.error("task failure alert not sent: %s: %s", type(exc).__name__, exc)


# -- messages -----------------------------------------------------------------------------------


def quality_alert(critical: list[CheckResult], warnings: int, *, run_id: str, health_score: float | None,
                  report_path: str | None) -> Alert:
    score = "n/a (nothing could be checked)" if health_score is None else f"{health_score:g} / 100"
    headline = f"data quality: {len(critical)} critical (run {run_id})"
    slack = [f":rotating_light: *{_slack(PRODUCT)} {_slack(headline)}*", f"Health score: {_slack(score)}"]
    slack += [f"\u2022 {_slack(r.line())}" for r in critical]
    slack.append(f"Warnings: {warnings}")
    if report_path:
        slack.append(f"Report: {_slack(report_path)}")
    items = "".join(f"<li>{html.escape(r.line())}{_measured(r)}</li>" for r in critical)
    body = (f"<h2>{html.escape(PRODUCT)}: {html.escape(headline)}</h2>"
            f"<p>Health score: <b>{html.escape(score)}</b>; warnings: {warnings}</p>"
            f"<p>Critical results:</p><ul>{items}</ul>"
            + (f"<p>Report: <code>{html.escape(report_path)}</code></p>" if report_path else ""))
    return Alert(what=f"data-quality alert ({len(critical)} critical, run {run_id})", slack_text="\n".join(slack),
                 subject=f"[{PRODUCT}] {headline}", html_body=body)


def failure_alert(context: Mapping[str, Any]) -> Alert:
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "unknown DAG"
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", None) or "unknown task"
    run_id = getattr(ti, "run_id", None) or context.get("run_id") or "unknown run"
    try_number = getattr(ti, "try_number", None)
    error = first_line(context.get("exception"))
    log_url = _log_url(ti)
    headline = f"task failed: {dag_id}.{task_id}"
    where = f"run {run_id}" + (f", try {try_number}" if try_number is not None else "")
    slack = [f":x: *{_slack(PRODUCT)} {_slack(headline)}*", _slack(where), _slack(error)]
    if log_url:
        slack.append(f"Log: <{log_url}|open the task log>")
    body = (f"<h2>{html.escape(PRODUCT)}: {html.escape(headline)}</h2>"
            f"<p>DAG <b>{html.escape(dag_id)}</b>, task <b>{html.escape(task_id)}</b>, {html.escape(where)}</p>"
            f"<pre>{html.escape(error)}</pre>"
            + (f'<p>Log: <a href="{html.escape(log_url)}">{html.escape(log_url)}</a></p>' if log_url else ""))
    return Alert(what=f"task failure alert ({dag_id}.{task_id}, {where})", slack_text="\n".join(slack),
                 subject=f"[{PRODUCT}] {headline} ({where})", html_body=body)


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
    parts = [f"{what} {number:g}" for what, number in (("value", result.value), ("threshold", result.threshold))
             if number is not None]
    return f" ({', '.join(parts)})" if parts else ""


def _slack(text: str) -> str:
    """Slack's mrkdwn escaping: ``<``, ``>`` and ``&`` would start links and entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- channels -----------------------------------------------------------------------------------


def _send(settings: Settings, alert: Alert, context: dict) -> dict[str, str]:
    out = {"slack": DISABLED, "email": DISABLED}
    if settings.enable_slack_alerts:
        out["slack"] = _deliver("slack", alert, lambda: _post_slack(alert, context))
    if settings.alert_email_to:
        out["email"] = _deliver("email", alert, lambda: _send_email(settings, alert, context))
    return out


class ChannelError(Exception):
    """A channel could not deliver; the message says what to check and holds no secret."""


def _deliver(channel: str, alert: Alert, send: Callable[[], str]) -> str:
    try:
        where = send()
    except ChannelError as exc:
        reason = str(exc)
    except Exception as exc:  # Airflow missing or broken: name the error type only, its text may hold a secret
        reason = (f"unexpected {type(exc).__name__}; check that Airflow's {channel} provider is installed and "
                  f"the {channel} connection is valid")
    else:
        log.info("%s: %s sent to %s", channel, alert.what, where)
        return SENT
    log.error("%s: %s not sent: %s", channel, alert.what, reason)
    return f"failed: {reason}"


def _connection(conn_id: str, how: str, off: str):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ChannelError(f"Airflow connection {conn_id} is not defined; add it ({how}) or {off}") from None
    except Exception as exc:  # e.g. malformed JSON in AIRFLOW_CONN_*: its text may hold the secret
        raise ChannelError(f"Airflow connection {conn_id} could not be read ({type(exc).__name__}); check its "
                           f"definition ({how})") from None


def _post_slack(alert: Alert, context: dict) -> str:
    conn = _connection(SLACK_CONN_ID,
                       'conn_type slackwebhook, password = the webhook token "T000/B000/XXXX" or the webhook URL',
                       "switch Slack alerts off (EOPT_ENABLE_SLACK_ALERTS / variable enable_slack_alerts)")
    token = (conn.password or "").strip()
    if "://" in token:
        endpoint, secrets = token, [token, urlsplit(token).path.strip("/")]
    else:
        host = conn.host or "hooks.slack.com/services"
        endpoint, secrets = (host if "://" in host else f"{conn.schema or 'https'}://{host}"), [token]
    parts = urlsplit(endpoint)
    server = f"{parts.scheme}://{parts.netloc}"  # the token lives in the path
    try:
        _slack_notifier_type()(slack_webhook_conn_id=SLACK_CONN_ID, text=alert.slack_text,
                               timeout=SLACK_TIMEOUT_S).notify(context)
    except Exception as exc:
        raise ChannelError(f"Slack webhook at {server} (connection {SLACK_CONN_ID}) failed: "
                           f"{_redacted(exc, secrets)}; check that {server} is reachable and that the "
                           f"connection's webhook token is valid") from None
    return server


@lru_cache(maxsize=1)
def _slack_notifier_type():
    from functools import cached_property

    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    class QuietSlackWebhookNotifier(SlackWebhookNotifier):
        """Airflow's Slack notifier with the Slack client logging to ``SLACK_CLIENT_LOG``."""

        @cached_property
        def hook(self) -> SlackWebhookHook:
            return SlackWebhookHook(slack_webhook_conn_id=self.slack_webhook_conn_id, proxy=self.proxy,
                                    timeout=self.timeout, retry_handlers=self.retry_handlers, logger=SLACK_CLIENT_LOG)

    return QuietSlackWebhookNotifier


def _send_email(settings: Settings, alert: Alert, context: dict) -> str:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    conn = _connection(SMTP_CONN_ID, "conn_type smtp with host, port, login, password",
                       "unset EOPT_ALERT_EMAIL_TO")
    extra = conn.extra_dejson or {}
    secrets = [conn.password or "", *(str(extra.get(k) or "") for k in ("access_token", "client_secret"))]
    server = f"{conn.host or '(no host)'}:{conn.port or 'default port'}"
    recipients = ", ".join(settings.alert_email_to)
    try:
        SmtpNotifier(to=list(settings.alert_email_to), from_email=settings.alert_email_from, subject=alert.subject,
                     html_content=alert.html_body, smtp_conn_id=SMTP_CONN_ID).notify(context)
    except Exception as exc:
        raise ChannelError(f"SMTP server {server} (connection {SMTP_CONN_ID}) could not send to {recipients}: "
                           f"{_redacted(exc, secrets)}; check that the server is up and that the connection's "
                           f"host, port, login, password and SSL/TLS extras (disable_ssl, disable_tls) are "
                           f"right") from None
    return f"{recipients} via {server}"


def _redacted(error: BaseException, secrets: Iterable[str]) -> str:
    text = f"{type(error).__name__}: {error}"
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _callback_settings() -> Settings:
    """The task's settings with the Airflow variables applied (``enable_slack_alerts``), as the
    task itself builds them; the environment's settings where ``dags/`` is not importable."""
    try:
        task_settings = importlib.import_module("pricing_api_hook").task_settings
    except ImportError:
        return Settings.from_env()
    try:
        return task_settings()
    except Exception as exc:
        log.warning("alerts use the environment's settings: the Airflow variables and connections could not be "
                    "applied (%s: %s)", type(exc).__name__, exc)
        return Settings.from_env()
