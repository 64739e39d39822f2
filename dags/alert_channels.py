"""The alert channels of a deployment: Slack and email through Airflow's notifiers.

``quality.alerts`` builds the messages and decides who gets one; the channels here deliver them.
Connections, in Airflow's JSON format (``AIRFLOW_CONN_<ID>`` or ``airflow connections add
--conn-json``):

| connection | JSON |
|---|---|
| ``slack_data_quality`` | ``{"conn_type": "slackwebhook", "password": "T000/B000/XXXX"}`` (the webhook token; host defaults to ``hooks.slack.com/services``), or the whole webhook URL as password; extra ``timeout`` (s) |
| ``smtp_default`` | ``{"conn_type": "smtp", "host": "smtp.example.com", "port": 465, "login": "alerts", "password": "...", "extra": {"timeout": 30, "retry_limit": 5}}``; port 587 with STARTTLS: extra ``"disable_ssl": true``; a plain relay: ``"disable_ssl": true, "disable_tls": true`` |

Webhook tokens and SMTP passwords appear in no log line and no return value. The notifier
providers are imported when the first alert goes out, so parsing a DAG file stays fast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache, cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from pricing_api_hook import task_settings

from core.settings import Settings
from quality.alerts import Alert, Channel, ChannelError, failure_alert, redacted, send_alert

log = logging.getLogger("eopt.alerts")

SLACK_CONN_ID = "slack_data_quality"
SMTP_CONN_ID = "smtp_default"
SLACK_TIMEOUT_S = 10

# The Slack client's own log lines: it writes the whole webhook URL, token included, when it
# retries a refused connection, so it gets a logger of its own that lets nothing through; the
# outcome is logged by quality.alerts, without the token.
SLACK_CLIENT_LOG = logging.getLogger("eopt.alerts.slack_client")
SLACK_CLIENT_LOG.setLevel(logging.CRITICAL + 1)


def airflow_channels(settings: Settings) -> dict[str, Channel]:
    """``slack`` and ``email`` for ``quality.alerts.send_alert``."""
    return {"slack": post_slack, "email": lambda alert, context: send_email(settings, alert, context)}


def task_failure_alert(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every DAG's tasks (Airflow calls it once a task has failed its
    last try, in the task's process): Slack and email naming the DAG, task, run, try, the error's
    first line and the log URL. Never raises: a failing alert must not hide the task's failure."""
    try:
        settings = _callback_settings()
        send_alert(settings, failure_alert(context), airflow_channels(settings), dict(context))
    except Exception as exc:  # building the message or the settings failed; the channels never raise
        log.error("task failure alert not sent: %s: %s", type(exc).__name__, exc)


def _callback_settings() -> Settings:
    """The task's settings with the Airflow variables applied (``enable_slack_alerts``), as the
    task itself builds them; the environment's settings when those cannot be read."""
    try:
        return task_settings()
    except Exception as exc:
        log.warning(
            "alerts use the environment's settings: the Airflow variables and connections could not be "
            "applied (%s: %s)",
            type(exc).__name__,
            exc,
        )
        return Settings.from_env()


def _connection(conn_id: str, how: str, off: str) -> Any:
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ChannelError(f"Airflow connection {conn_id} is not defined; add it ({how}) or {off}") from None
    except Exception as exc:  # e.g. malformed JSON in AIRFLOW_CONN_*: its text may hold the secret
        raise ChannelError(
            f"Airflow connection {conn_id} could not be read ({type(exc).__name__}); check its definition ({how})"
        ) from None


def post_slack(alert: Alert, context: dict) -> str:
    """The alert to the ``slack_data_quality`` webhook; returns the server (never the token)."""
    conn = _connection(
        SLACK_CONN_ID,
        'conn_type slackwebhook, password = the webhook token "T000/B000/XXXX" or the webhook URL',
        "switch Slack alerts off (EOPT_ENABLE_SLACK_ALERTS / variable enable_slack_alerts)",
    )
    token = (conn.password or "").strip()
    if "://" in token:
        endpoint, secrets = token, [token, urlsplit(token).path.strip("/")]
    else:
        host = conn.host or "hooks.slack.com/services"
        endpoint, secrets = (host if "://" in host else f"{conn.schema or 'https'}://{host}"), [token]
    parts = urlsplit(endpoint)
    server = f"{parts.scheme}://{parts.netloc}"  # the token lives in the path
    try:
        _slack_notifier_type()(
            slack_webhook_conn_id=SLACK_CONN_ID, text=alert.slack_text, timeout=SLACK_TIMEOUT_S
        ).notify(context)
    except Exception as exc:
        raise ChannelError(
            f"Slack webhook at {server} (connection {SLACK_CONN_ID}) failed: "
            f"{redacted(exc, secrets)}; check that {server} is reachable and that the "
            f"connection's webhook token is valid"
        ) from None
    return server


@cache
def _slack_notifier_type() -> type:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    class QuietSlackWebhookNotifier(SlackWebhookNotifier):
        """Airflow's Slack notifier with the Slack client logging to ``SLACK_CLIENT_LOG``."""

        @cached_property
        def hook(self) -> SlackWebhookHook:
            return SlackWebhookHook(
                slack_webhook_conn_id=self.slack_webhook_conn_id,
                proxy=self.proxy,
                timeout=self.timeout,
                retry_handlers=self.retry_handlers,
                logger=SLACK_CLIENT_LOG,
            )

    return QuietSlackWebhookNotifier


def send_email(settings: Settings, alert: Alert, context: dict) -> str:
    """The alert to ``EOPT_ALERT_EMAIL_TO`` through ``smtp_default``; returns recipients and server."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    conn = _connection(SMTP_CONN_ID, "conn_type smtp with host, port, login, password", "unset EOPT_ALERT_EMAIL_TO")
    extra = conn.extra_dejson or {}
    secrets = [conn.password or "", *(str(extra.get(k) or "") for k in ("access_token", "client_secret"))]
    server = f"{conn.host or '(no host)'}:{conn.port or 'default port'}"
    recipients = ", ".join(settings.alerts.email_to)
    try:
        SmtpNotifier(
            to=list(settings.alerts.email_to),
            from_email=settings.alerts.email_from,
            subject=alert.subject,
            html_content=alert.html_body,
            smtp_conn_id=SMTP_CONN_ID,
        ).notify(context)
    except Exception as exc:
        raise ChannelError(
            f"SMTP server {server} (connection {SMTP_CONN_ID}) could not send to {recipients}: "
            f"{redacted(exc, secrets)}; check that the server is up and that the connection's "
            f"host, port, login, password and SSL/TLS extras (disable_ssl, disable_tls) are "
            f"right"
        ) from None
    return f"{recipients} via {server}"
