"""Slack and email alerts through Airflow's notifiers, against real servers on loopback.

The stand-ins of ``tests.alert_servers`` play hooks.slack.com (the ``slack_data_quality``
connection's host points at it; the webhook token is the URL's path) and the SMTP relay
(``smtp_default``, with login). Connections are ``AIRFLOW_CONN_*`` variables, Airflow's
environment secrets backend, as in a deployment.
"""

from __future__ import annotations

import html
import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from core.check_results import CheckResult, health_score
from core.settings import Settings
from quality.alerts import send_quality_alerts
from storage.database import create_store_engine, upgrade
from tests.airflow_harness import AirflowHome
from tests.alert_servers import WEBHOOK_TOKEN, SlackStandIn, SmtpStandIn, free_port

ONCALL = "oncall@example.com"
RUN_ID = "scheduled__2024-03-01T06:00:00+00:00"
REPORT = "/srv/eopt/quality/scheduled__2024-03-01/report.html"

RESULTS = [
    CheckResult(
        "freshness",
        "critical",
        "newest price is 30 h old (> 24 h); check the electricity_price_ingestion DAG",
        region="NP",
        value=30.0,
        threshold=24.0,
    ),
    CheckResult(
        "completeness",
        "critical",
        "42 of 168 hours missing & a 20 h gap",
        region="PJM",
        subject="entsoe",
        value=0.25,
        threshold=0.1,
    ),
    CheckResult("price_range", "warn", "3 hours beyond 10 MADs of the 5-week median", region="BE", value=3.0),
    CheckResult("drift", "ok", "2 of 30 columns drifted", region="FR", value=0.07, threshold=0.5),
]
CRITICAL_LINES = [r.line() for r in RESULTS if r.status == "critical"]


@pytest.fixture(scope="module", autouse=True)
def airflow_in_process(tmp_path_factory):
    """The notifiers import Airflow in-process: give it a temporary home, and import it here, since
    importing it replaces the root logger's handlers and level; those are put back so that log
    capture works in these tests and in the rest of the session."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
        import airflow.providers.slack.notifications.slack_webhook
        import airflow.providers.smtp.notifications.smtp
        import airflow.sdk  # noqa: F401

        patch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "dags"))  # alert_channels, as Airflow finds it

        root.handlers[:] = handlers
        root.setLevel(level)
        yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def slack_server() -> SlackStandIn:
    with SlackStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def smtp_server() -> SmtpStandIn:
    with SmtpStandIn() as server:
        yield server


@pytest.fixture
def slack(slack_server) -> SlackStandIn:
    slack_server.status = 200
    slack_server.messages.clear()
    slack_server.paths.clear()
    return slack_server


@pytest.fixture
def smtp(smtp_server) -> SmtpStandIn:
    for recorded in (smtp_server.messages, smtp_server.recipients, smtp_server.logins):
        recorded.clear()
    return smtp_server


def smtp_password(smtp: SmtpStandIn) -> str:
    return json.loads(smtp.connection_env("smtp_default")["AIRFLOW_CONN_SMTP_DEFAULT"])["password"]


@pytest.fixture
def connections(monkeypatch, slack, smtp):
    env = {**slack.connection_env("slack_data_quality"), **smtp.connection_env("smtp_default")}
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)


def settings(tmp_path: Path, slack_on: bool = True, email_to: str = ONCALL) -> Settings:
    return Settings.from_env(
        {
            "EOPT_HOME": str(tmp_path),
            "EOPT_ENABLE_SLACK_ALERTS": "1" if slack_on else "0",
            "EOPT_ALERT_EMAIL_TO": email_to,
        }
    )


def send(tmp_path: Path, results=RESULTS, **options) -> dict[str, str]:
    from alert_channels import airflow_channels  # importable once airflow_in_process ran

    chosen = settings(tmp_path, **options)
    return send_quality_alerts(
        chosen, results, airflow_channels(chosen), run_id=RUN_ID, health_score=health_score(results), report_path=REPORT
    )


def slack_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def assert_no_secret(outcome: dict[str, str], smtp: SmtpStandIn, caplog, capfd) -> None:
    out, err = capfd.readouterr()
    for text in (json.dumps(outcome), caplog.text, out, err):
        assert WEBHOOK_TOKEN not in text and WEBHOOK_TOKEN.split("/")[-1] not in text
        assert smtp_password(smtp) not in text


# -- data-quality alerts ------------------------------------------------------------------------


def subject_and_body(message: str) -> tuple[str, str]:
    subject, _, body = message.partition("\n")
    return subject, body


def test_send_quality_alerts__sends_one_slack_message_and_one_email_listing_the_critical_results(
    tmp_path, slack, smtp, connections, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    outcome = send(tmp_path)

    assert outcome == {"slack": "sent", "email": "sent"}
    assert slack.paths == [f"/services/{WEBHOOK_TOKEN}"]  # the connection's host + token, as SlackWebhookHook builds it
    text = slack.messages[0]
    assert f"data quality: 2 critical (run {RUN_ID})" in text
    assert "Health score: 37.5 / 100" in text  # ok 1, warn 0.5, two critical 0: 1.5 / 4
    for line in CRITICAL_LINES:
        assert slack_escaped(line) in text
    assert "(&gt; 24 h)" in text and "missing &amp; a 20 h gap" in text  # Slack would read < > & as markup
    assert "Warnings: 1" in text and "price_range" not in text and "drift" not in text
    assert f"Report: {REPORT}" in text

    assert len(smtp.messages) == 1 and smtp.recipients == [[ONCALL]] and smtp.logins == ["alerts"]
    subject, body = subject_and_body(smtp.messages[0])
    assert subject == f"[Electricity Optimizer] data quality: 2 critical (run {RUN_ID})"
    for line in CRITICAL_LINES:
        assert f"<li>{html.escape(line)}" in body
    assert "(value 30, threshold 24)" in body and "(value 0.25, threshold 0.1)" in body
    assert "<b>37.5 / 100</b>; warnings: 1" in body and f"<code>{REPORT}</code>" in body
    assert "price_range" not in body
    assert f"slack: data-quality alert (2 critical, run {RUN_ID}) sent to http://127.0.0.1:{slack.port}" in caplog.text
    assert (
        f"email: data-quality alert (2 critical, run {RUN_ID}) sent to {ONCALL} via 127.0.0.1:{smtp.port}"
        in caplog.text
    )
    assert_no_secret(outcome, smtp, caplog, capfd)


@pytest.mark.parametrize(
    ("outage", "error"),
    [
        ("http_500", "AirflowException: Response body: 'internal_error', Status Code: 500."),
        ("port_closed", "URLError: <urlopen error [Errno 111] Connection refused>"),
        ("not_http", "SlackRequestError: Invalid URL detected: ***;"),  # the error quotes the URL: redacted
    ],
)
def test_send_quality_alerts__an_unreachable_slack_is_an_error_naming_it_and_the_email_still_goes(
    tmp_path, slack, smtp, connections, monkeypatch, caplog, capfd, outage, error
):
    caplog.set_level(logging.DEBUG)
    if outage == "http_500":
        slack.status = 500
        server = f"http://127.0.0.1:{slack.port}"
    else:
        server = f"{'http' if outage == 'port_closed' else 'ftp'}://127.0.0.1:{free_port()}"
        monkeypatch.setenv(
            "AIRFLOW_CONN_SLACK_DATA_QUALITY",
            json.dumps({"conn_type": "slackwebhook", "password": f"{server}/services/{WEBHOOK_TOKEN}"}),
        )  # the full-URL form

    outcome = send(tmp_path)

    assert outcome["email"] == "sent" and len(smtp.messages) == 1
    assert slack.messages == [] and len(slack.paths) == (1 if outage == "http_500" else 0)
    assert outcome["slack"].startswith(
        f"failed: Slack webhook at {server} (connection slack_data_quality) failed: {error}"
    )
    assert f"check that {server} is reachable" in outcome["slack"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "eopt.alerts"]
    assert errors == [
        f"slack: data-quality alert (2 critical, run {RUN_ID}) not sent: {outcome['slack'].removeprefix('failed: ')}"
    ]
    assert_no_secret(outcome, smtp, caplog, capfd)


def test_send_quality_alerts__a_down_smtp_server_is_an_error_naming_it_and_slack_still_goes(
    tmp_path, slack, smtp, connections, monkeypatch, caplog, capfd
):
    closed = free_port()
    connection = json.loads(smtp.connection_env("smtp_default")["AIRFLOW_CONN_SMTP_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({**connection, "port": closed}))

    outcome = send(tmp_path)

    assert outcome["slack"] == "sent" and len(slack.messages) == 1 and smtp.messages == []
    assert outcome["email"].startswith(
        f"failed: SMTP server 127.0.0.1:{closed} (connection smtp_default) could not "
        f"send to {ONCALL}: ConnectionRefusedError"
    )
    assert "check that the server is up" in outcome["email"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and r.name == "eopt.alerts"]
    assert len(errors) == 1 and errors[0].startswith(f"email: data-quality alert (2 critical, run {RUN_ID}) not sent")
    assert_no_secret(outcome, smtp, caplog, capfd)


def test_send_quality_alerts__a_missing_connection_says_which_to_add_and_the_other_channel_still_goes(
    tmp_path, slack, smtp, connections, monkeypatch
):
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_DATA_QUALITY")

    outcome = send(tmp_path)

    assert outcome["slack"].startswith(
        "failed: Airflow connection slack_data_quality is not defined; add it (conn_type slackwebhook"
    )
    assert outcome["email"] == "sent" and len(smtp.messages) == 1 and slack.paths == []


def test_send_quality_alerts__without_critical_results_sends_nothing(tmp_path, slack, smtp, connections):
    outcome = send(tmp_path, results=[r for r in RESULTS if r.status != "critical"])

    assert outcome == {"slack": "nothing critical", "email": "nothing critical"}
    assert slack.paths == [] and smtp.messages == []


def test_send_quality_alerts__a_switched_off_channel_is_disabled_while_the_other_sends(
    tmp_path, slack, smtp, connections
):
    assert send(tmp_path, slack_on=False) == {"slack": "disabled", "email": "sent"}
    assert slack.paths == [] and len(smtp.messages) == 1

    assert send(tmp_path, email_to="") == {"slack": "sent", "email": "disabled"}
    assert len(slack.messages) == 1 and len(smtp.messages) == 1


# -- task failures ------------------------------------------------------------------------------


def test_task_failure_alert__names_the_task_run_try_error_and_log_and_never_raises(
    tmp_path, slack, smtp, connections, monkeypatch, caplog
):
    monkeypatch.setenv("EOPT_HOME", str(tmp_path))
    monkeypatch.setenv("EOPT_ENABLE_SLACK_ALERTS", "1")
    monkeypatch.setenv("EOPT_ALERT_EMAIL_TO", ONCALL)
    log_url = "http://airflow.example.com/dags/model_retraining/runs/r1/tasks/train_models?try_number=3"
    context = {
        "ti": SimpleNamespace(
            dag_id="model_retraining", task_id="train_models", run_id="r1", try_number=3, log_url=log_url
        ),
        "exception": RuntimeError("NP: training window has a 30 h gap\nTraceback details"),
    }
    from alert_channels import task_failure_alert  # importable once airflow_in_process ran

    task_failure_alert(context)

    text = slack.messages[0]
    assert "task failed: model_retraining.train_models" in text and "\nrun r1, try 3\n" in text
    assert "\nRuntimeError: NP: training window has a 30 h gap\n" in text and "Traceback details" not in text
    assert f"Log: <{log_url}|open the task log>" in text
    subject, body = subject_and_body(smtp.messages[0])
    assert subject == "[Electricity Optimizer] task failed: model_retraining.train_models (run r1, try 3)"
    assert "<pre>RuntimeError: NP: training window has a 30 h gap</pre>" in body
    assert f'<a href="{html.escape(log_url)}">' in body

    monkeypatch.delenv("AIRFLOW_CONN_SLACK_DATA_QUALITY")
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT")
    caplog.clear()
    task_failure_alert(context)  # both channels down: errors in the log, no exception
    errors = sorted(
        r.getMessage().split(":")[0] for r in caplog.records if r.levelno == logging.ERROR and r.name == "eopt.alerts"
    )
    assert errors == ["email", "slack"]


@pytest.mark.dag
def test_task_failure_alert__a_failed_task_of_a_real_dag_run_alerts_slack_and_email(tmp_path_factory, slack, smtp):
    """forecast_generation on an empty store: prepare_features has no price to start from for NP, and NP's
    chunk fails at its end (update_forecast_cache, no retries); Airflow calls the DAGs' on_failure_callback
    in the task's process."""
    home = tmp_path_factory.mktemp("eopt")
    engine = create_store_engine(f"sqlite:///{home / 'prices.db'}")
    upgrade(engine)
    engine.dispose()
    airflow = AirflowHome.create(tmp_path_factory.mktemp("airflow"))
    env = {
        "EOPT_HOME": str(home),
        "EOPT_REGIONS": "NP",
        "EOPT_AIRFLOW_TASK_RETRIES": "0",
        "EOPT_AIRFLOW_DEADLINE_ALERTS": "0",
        "EOPT_ENABLE_SLACK_ALERTS": "1",
        "EOPT_ALERT_EMAIL_TO": ONCALL,
        **slack.connection_env("slack_data_quality"),
        **smtp.connection_env("smtp_default"),
    }

    result = airflow.dags_test("forecast_generation", "2018-12-25T02:00:00+00:00", extra_env=env)
    log = result.stdout + result.stderr

    failed = {
        re.search(r"task failed: forecast_generation\.([\w\[\]]+)\*", text).group(1): text for text in slack.messages
    }
    # NP's chunk (its instance named by its zones) fails at its end, naming the zone, the task it failed
    # in and why; the tasks before it and check_model_ready succeeded: one alert
    assert sorted(failed) == ["update_forecast_cache[NP]"], (slack.messages, log[-6000:])
    text = failed["update_forecast_cache[NP]"]
    run_id = re.search(r"\nrun (manual__\S+), try 1\n", text).group(1)  # `dags test` runs are manual__<now>
    assert (
        "\nZonesNotForecast: 1 of 1 zone(s) not forecast (the other 0 stored and cached): NP in prepare_features: "
        "StaleDataError: NP: no prices stored, nothing to forecast from"
    ) in text
    log_url = f"/dags/forecast_generation/runs/{quote(run_id)}/tasks/update_forecast_cache/mapped/0?try_number=1|"
    assert log_url in text
    [(subject, _)] = [subject_and_body(message) for message in smtp.messages]
    assert subject == (
        f"[Electricity Optimizer] task failed: forecast_generation.update_forecast_cache[NP] (run {run_id}, try 1)"
    )  # the same alert by email
    assert smtp.recipients == [[ONCALL]]
    assert (
        f"slack: task failure alert (forecast_generation.update_forecast_cache[NP], run {run_id}, try 1) sent to "
        f"http://127.0.0.1:{slack.port}"
    ) in log
    assert "alerts use the environment's settings" not in log  # task_settings() applied the Airflow variables
    assert WEBHOOK_TOKEN not in log and smtp_password(smtp) not in log
