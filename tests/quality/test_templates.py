"""The Jinja2 templates of the renderings: the data-quality report (quality/templates/report.*.j2),
the alerts (quality/templates/*_alert.*.j2) and the model card (pipelines/templates/model_card.md.j2).

HTML is autoescaped, Slack text escaped the Slack way (``&amp;``, ``&lt;``, ``&gt;``), Markdown left
as it is; a variable a template names but the caller did not pass raises instead of rendering empty.
"""

from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from jinja2 import UndefinedError

from core.check_results import CheckResult
from pipelines.rendering import TEMPLATES as PIPELINE_TEMPLATES
from pipelines.rendering import render as render_pipelines
from quality.alerts import failure_alert, quality_alert
from quality.rendering import TEMPLATES as QUALITY_TEMPLATES
from quality.report import QualityReport

AS_OF = pd.Timestamp("2024-03-01 06:00", tz="UTC")
SCRIPT = "<script>alert(1)</script>"
NASTY = f"prices & gaps {SCRIPT}"
HTML_NASTY = "prices &amp; gaps &lt;script&gt;alert(1)&lt;/script&gt;"
SLACK_NASTY = "prices &amp; gaps &lt;script&gt;alert(1)&lt;/script&gt;"  # Slack's three entities, quotes as they are


def nasty_results(folder: Path) -> list[CheckResult]:
    return [
        CheckResult("freshness", "critical", NASTY, region="NP", value=30.0, threshold=24.0),
        CheckResult("completeness", "ok", "a | b", region="PJM", subject="entsoe"),
        CheckResult("api_health", "skipped", "no calls <yet>", region="all", subject="iea"),
        CheckResult(
            "drift",
            "warn",
            "2 of 30 columns drifted",
            region="B&B",
            value=0.07,
            threshold=0.5,
            details={"report_html": str(folder / "drift" / "d<1>.html"), "report_json": "/else/d&.json"},
        ),
    ]


def test_templates__autoescape_is_on_for_html_only():
    for env, names in (
        (QUALITY_TEMPLATES, QUALITY_TEMPLATES.list_templates()),
        (PIPELINE_TEMPLATES, PIPELINE_TEMPLATES.list_templates()),
    ):
        assert names, "no templates found"
        for name in names:
            assert env.autoescape(name) is name.endswith(".html.j2"), name
    assert set(QUALITY_TEMPLATES.list_templates()) == {
        "report.md.j2",
        "report.html.j2",
        "quality_alert.slack.j2",
        "quality_alert.html.j2",
        "failure_alert.slack.j2",
        "failure_alert.html.j2",
        "connection_alert.slack.j2",
        "connection_alert.html.j2",
    }
    assert PIPELINE_TEMPLATES.list_templates() == ["model_card.md.j2"]


# -- the data-quality report -----------------------------------------------------------------------


def test_report_html__escapes_messages_regions_and_links(tmp_path):
    page = QualityReport("run <1> & co", AS_OF, nasty_results(tmp_path), tmp_path).html()
    assert SCRIPT not in page and "<yet>" not in page
    assert f"<li>[CRITICAL] freshness NP: {HTML_NASTY}</li>" in page
    assert f"<td>{HTML_NASTY}</td>" in page and "<td>no calls &lt;yet&gt;</td>" in page
    assert "<code>run &lt;1&gt; &amp; co</code>" in page
    assert "<li>B&amp;B: <a href='drift/d&lt;1&gt;.html'>html</a>, <a href='/else/d&amp;.json'>json</a></li>" in page
    assert page.startswith("<!doctype html>") and page.endswith("</body></html>") and "\n" not in page


def test_report_markdown__is_not_html_escaped_and_escapes_table_pipes(tmp_path):
    markdown = QualityReport("run <1> & co", AS_OF, nasty_results(tmp_path), tmp_path).markdown()
    assert f"- [CRITICAL] freshness NP: {NASTY}\n" in markdown
    assert "| completeness | PJM | entsoe | OK |  |  | a \\| b |\n" in markdown
    assert "## Not checked\n\n- api_health all/iea: no calls <yet>\n" in markdown
    assert "- B&B: [html](drift/d<1>.html), [json](/else/d&.json)\n" in markdown
    assert "Run `run <1> & co`." in markdown and markdown.endswith("\n") and not markdown.endswith("\n\n")


@pytest.mark.parametrize("name", ["report.md.j2", "report.html.j2"])
def test_report_templates__a_missing_variable_raises(tmp_path, name):
    report = QualityReport("r", AS_OF, nasty_results(tmp_path), tmp_path)
    with pytest.raises(UndefinedError, match=r"colours|marks|plots"):
        QUALITY_TEMPLATES.get_template(name).render(report=report, drift=[])


# -- alerts ----------------------------------------------------------------------------------------


def test_quality_alert__escapes_html_in_the_email_and_the_slack_way_in_slack():
    critical = [r for r in nasty_results(Path("/srv")) if r.status == "critical"]
    alert = quality_alert(critical, 1, run_id="r&1", health_score=37.5, report_path="/srv/a&b <c>.html")
    assert alert.slack_text == (
        ":rotating_light: *Electricity Optimizer data quality: 1 critical (run r&amp;1)*\n"
        "Health score: 37.5 / 100\n"
        f"\u2022 [CRITICAL] freshness NP: {SLACK_NASTY}\n"
        "Warnings: 1\n"
        "Report: /srv/a&amp;b &lt;c&gt;.html"
    )
    assert alert.html_body == (
        "<h2>Electricity Optimizer: data quality: 1 critical (run r&amp;1)</h2>"
        "<p>Health score: <b>37.5 / 100</b>; warnings: 1</p><p>Critical results:</p>"
        f"<ul><li>[CRITICAL] freshness NP: {HTML_NASTY} (value 30, threshold 24)</li></ul>"
        "<p>Report: <code>/srv/a&amp;b &lt;c&gt;.html</code></p>"
    )
    assert alert.subject == "[Electricity Optimizer] data quality: 1 critical (run r&1)"

    bare = quality_alert(critical, 0, run_id="r", health_score=None, report_path=None)
    assert bare.slack_text.endswith("\nWarnings: 0") and "Report" not in bare.html_body
    assert "Health score: <b>n/a (nothing could be checked)</b>" in bare.html_body


def test_failure_alert__escapes_html_in_the_email_and_the_slack_way_in_slack_but_keeps_the_log_link():
    log_url = "http://airflow.example.com/log?a=1&b=2"
    alert = failure_alert(
        {
            "ti": SimpleNamespace(dag_id="d<1>", task_id="t&t", run_id="r1", try_number=2, log_url=log_url),
            "exception": RuntimeError(f"{NASTY}\nsecond line"),
        }
    )
    assert alert.slack_text == (
        ":x: *Electricity Optimizer task failed: d&lt;1&gt;.t&amp;t*\n"
        "run r1, try 2\n"
        f"RuntimeError: {SLACK_NASTY}\n"
        f"Log: <{log_url}|open the task log>"
    )
    assert alert.html_body == (
        "<h2>Electricity Optimizer: task failed: d&lt;1&gt;.t&amp;t</h2>"
        "<p>DAG <b>d&lt;1&gt;</b>, task <b>t&amp;t</b>, run r1, try 2</p>"
        f"<pre>RuntimeError: {HTML_NASTY}</pre>"
        f'<p>Log: <a href="{html.escape(log_url)}">{html.escape(log_url)}</a></p>'
    )

    no_log = failure_alert({"ti": SimpleNamespace(dag_id="d", task_id="t", run_id="r", try_number=None, log_url=None)})
    assert (
        no_log.slack_text
        == ":x: *Electricity Optimizer task failed: d.t*\nrun r\nno exception recorded (see the task log)"
    )
    assert no_log.html_body.endswith("<pre>no exception recorded (see the task log)</pre>")


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("quality_alert.slack.j2", "report_path"),
        ("quality_alert.html.j2", "measured"),
        ("failure_alert.slack.j2", "log_url"),
        ("failure_alert.html.j2", "log_url"),
    ],
)
def test_alert_templates__a_missing_variable_raises(name, missing):
    values = {
        "product": "P",
        "headline": "h",
        "score": "1",
        "critical": [],
        "warnings": 0,
        "report_path": "/r",
        "measured": lambda r: "",
        "dag_id": "d",
        "task_id": "t",
        "where": "run r",
        "error": "E",
        "log_url": "http://x",
    }
    del values[missing]
    if name == "quality_alert.html.j2":  # a function only called per critical result
        values["critical"] = [CheckResult("freshness", "critical", "old", region="NP")]
    with pytest.raises(UndefinedError, match=missing):
        QUALITY_TEMPLATES.get_template(name).render(**values)


# -- the model card --------------------------------------------------------------------------------

MANIFEST = {
    "data": {"start": "2022-01-01 00:00:00+00:00", "end": "2024-01-01", "hours": 17520, "sha256": "ab&c"},
    "splits": {"test": {"first_target": "2023-12-01", "last_target": "2023-12-31 23:00"}},
}
EVALUATION = {
    "metrics_test": {
        "ensemble": {"mae": 1.23456, "rmae": 0.9, "smape": 12.345, "rmse": 2.5, "mape": 7.891},
        "seasonal_naive": {"mae": 2.0, "rmae": 1.0, "smape": 20.0, "rmse": 3.0, "mape": float("nan")},
    },
    "decision": {
        "weights": {"xgboost": 0.5, "lightgbm": 0.3333, "cnn_lstm": 0.1667},
        "kind": "weighted",
        "reason": "beats <each> & every member",
    },
    "intervals": {"coverage_nominal": 0.9, "coverage_test": 0.8765},
}
CONFIG = SimpleNamespace(budget_name="smoke", seed=42, window_days=730)

CARD = """\
# electricity-price-NP: hourly price forecaster

- **Region**: NP; forecasts the 24 hours after a forecast origin, from prices before it, the
  calendar and the market's day-ahead exogenous forecasts.
- **Trained on**: 2022-01-01 00:00:00+00:00 to 2024-01-01 (17520 hours,
  sha256 `ab&c`); budget `smoke`, seed 42.
- **Model**: weighted (xgboost 0.50, lightgbm 0.33, cnn_lstm 0.17). beats <each> & every member.
- **Intervals**: split-conformal per horizon, nominal 90%,
  87.6% on the test window.

## Test window (2023-12-01 to 2023-12-31 23:00, day-ahead origins)

| forecaster | MAE | rMAE | sMAPE % | RMSE | MAPE % (|y| >= 1) |
|---|---|---|---|---|---|
| ensemble | 1.235 | 0.900 | 12.35 | 2.500 | 7.89 |
| seasonal_naive | 2.000 | 1.000 | 20.00 | 3.000 | nan |

rMAE is MAE over the weekly seasonal-naive MAE on the same hours.

## Limits
- Needs the 168 hours before the origin; with missing recent prices the model refuses to forecast.
- Learned on 730 days: regimes absent from that window (e.g. a price cap change)
  are outside its experience; the data-quality DAG watches drift.
"""


def test_model_card__is_the_markdown_card_unescaped():
    from pipelines.model_retraining import Retraining

    job = SimpleNamespace(region="NP", config=CONFIG)
    assert Retraining._model_card(job, MANIFEST, EVALUATION) == CARD  # Markdown: & and <each> as they are


def test_model_card__a_missing_variable_or_key_raises():
    values = {
        "name": "electricity-price-NP",
        "region": "NP",
        "config": CONFIG,
        "manifest": MANIFEST,
        "evaluation": EVALUATION,
    }
    assert render_pipelines("model_card.md.j2", **values) == CARD
    with pytest.raises(UndefinedError, match="config"):
        render_pipelines("model_card.md.j2", **{k: v for k, v in values.items() if k != "config"})
    without_intervals = {k: v for k, v in EVALUATION.items() if k != "intervals"}
    with pytest.raises(UndefinedError, match="intervals"):
        render_pipelines("model_card.md.j2", **{**values, "evaluation": without_intervals})
