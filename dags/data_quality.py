"""data_quality: daily at 06:00 UTC, check the data and the served models, report, alert, export metrics.

Thin wiring: each task is a call into ``quality`` or ``drift``; check results travel as small
JSON lists through XCom, reports as files in the run's folder (``$EOPT_HOME/quality/<run id>``).

- ``check_data_freshness``, ``check_completeness``, ``check_price_range``, ``check_api_health``,
  ``check_model_accuracy``, ``check_drift``: independent checks over the 7 days before the run
  (``quality.checks``, ``drift.monitor``), each returning one result per region (source,
  provider). A check that finds bad data does not fail: its result says warn/critical; a region
  it cannot check is ``skipped`` with the reason. ``conf={"regions": ["NP"]}`` narrows the run.
- ``generate_quality_report`` (``all_done``): one Markdown/HTML report with every result, the
  health score 0-100 and links to the Evidently drift reports; one ``quality_reports`` row per
  result; everything logged to the MLflow experiment ``data-quality``. A check task that crashed
  appears in the report as not checked, naming the task.
- ``alert_on_critical``: Slack (connection ``slack_data_quality``, variable ``enable_slack_alerts``)
  and email (SMTP connection ``smtp_default``, ``EOPT_ALERT_EMAIL_TO``) with the critical items; a
  channel that cannot be reached is logged and does not stop the other.
- ``drift_retraining_needed`` -> ``trigger_model_retraining``: when ``retrain_on_drift`` is on
  (variable or ``EOPT_RETRAIN_ON_DRIFT``) and a region's drift is critical, ``model_retraining``
  is triggered for those regions; otherwise skipped.

Prometheus reads the stored results through ``eopt metrics serve`` (see ``quality.exporter``).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import TriggerRule, dag, get_current_context, task

from dag_defaults import shared_dag_arguments
from core.settings import Settings
from pricing_api_hook import task_settings
from run_context import price_store, registry_client, run_folder, run_hour

DAG_ID = "data_quality"
SETTINGS = Settings.from_env()
CHECK_TASKS = ("check_data_freshness", "check_completeness", "check_price_range", "check_api_health",
               "check_model_accuracy", "check_drift")


def _regions() -> list[str]:
    conf = get_current_context()["dag_run"].conf or {}
    return [r.upper() for r in conf.get("regions", task_settings().regions)]


def _report(results) -> list[dict]:
    for result in results:
        print(result.line())
    return [r.to_dict() for r in results]


@dag(
    dag_id=DAG_ID,
    schedule="0 6 * * *",
    dagrun_timeout=timedelta(minutes=60),
    tags=["electricity-optimizer", "quality"],
    doc_md=__doc__,
    **shared_dag_arguments(SETTINGS),
)
def data_quality():
    @task
    def check_data_freshness() -> list[dict]:
        from quality.checks import freshness

        return _report(freshness(price_store(), task_settings(), _regions(), run_hour()))

    @task
    def check_completeness() -> list[dict]:
        from quality.checks import completeness

        return _report(completeness(price_store(), task_settings(), _regions(), run_hour()))

    @task
    def check_price_range() -> list[dict]:
        from quality.checks import price_range

        return _report(price_range(price_store(), task_settings(), _regions(), run_hour()))

    @task
    def check_api_health() -> list[dict]:
        from quality.checks import api_health
        from storage.health import ApiHealthStore

        return _report(api_health(ApiHealthStore(price_store().engine), task_settings(), run_hour()))

    @task
    def check_model_accuracy() -> list[dict]:
        from quality.checks import model_accuracy

        return _report(model_accuracy(price_store(), registry_client(), task_settings(), _regions(), run_hour(),
                                      plot_dir=run_folder(task_settings().quality_dir) / "accuracy"))

    @task
    def check_drift() -> list[dict]:
        from drift.monitor import region_drift

        settings, store, client, folder = task_settings(), price_store(), registry_client(), run_folder(task_settings().quality_dir) / "drift"
        folder.mkdir(parents=True, exist_ok=True)
        return _report([region_drift(settings, store, client, region, run_hour(), folder) for region in _regions()])

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def generate_quality_report() -> dict:
        from quality.report import QualityReport, publish_report, results_of
        from core.check_results import skipped
        from storage.quality import QualityReportStore

        context = get_current_context()
        payloads = {t: context["ti"].xcom_pull(task_ids=t) for t in CHECK_TASKS}
        results = results_of(payloads.values())
        for name, payload in payloads.items():
            if payload is None:  # the task failed or was skipped: say so instead of dropping the check
                results.append(skipped(name.removeprefix("check_").replace("data_", ""), "all",
                                       f"the {name} task did not complete; its log in this run says why"))
        settings = task_settings()
        try:
            client = registry_client()
        except Exception as exc:  # noqa: BLE001 - the report is written without MLflow
            print(f"MLflow unavailable ({exc}); the report is written without it")
            client = None
        report = QualityReport(context["run_id"], run_hour(), results, run_folder(task_settings().quality_dir))
        publish_report(settings, QualityReportStore(price_store().engine), report, client)
        summary = report.summary()
        print(f"health score {summary['health_score']}: {summary['ok']} ok, {summary['warn']} warn, "
              f"{summary['critical']} critical, {summary['skipped']} not checked; report {summary['report_html']}")
        return {"summary": summary, "results": [r.to_dict() for r in report.results]}

    @task
    def alert_on_critical(report: dict) -> dict:
        from alert_channels import airflow_channels
        from core.check_results import CheckResult
        from quality.alerts import send_quality_alerts

        settings = task_settings()
        results = [CheckResult.from_dict(r) for r in report["results"]]
        summary = report["summary"]
        outcome = send_quality_alerts(settings, results, airflow_channels(settings), run_id=summary["run_id"],
                                      health_score=summary["health_score"], report_path=summary["report_html"],
                                      context=get_current_context())
        for channel, state in outcome.items():
            print(f"alert via {channel}: {state}")
        return outcome

    @task.short_circuit
    def drift_retraining_needed(report: dict):
        regions = sorted({r["region"] for r in report["results"] if r["name"] == "drift" and r["status"] == "critical"})
        if not regions:
            print("no critical drift: model_retraining is not triggered")
            return False
        if not task_settings().quality.retrain_on_drift:
            print(f"critical drift in {', '.join(regions)}, but retrain_on_drift is off: not triggering model_retraining")
            return False
        print(f"critical drift in {', '.join(regions)}: triggering model_retraining for them")
        return {"regions": regions}

    checks = [check_data_freshness(), check_completeness(), check_price_range(), check_api_health(),
              check_model_accuracy(), check_drift()]
    report = generate_quality_report()
    checks >> report
    alert_on_critical(report)
    needed = drift_retraining_needed(report)
    trigger = TriggerDagRunOperator(
        task_id="trigger_model_retraining",
        trigger_dag_id="model_retraining",
        conf="{{ ti.xcom_pull(task_ids='drift_retraining_needed') | tojson }}",
        wait_for_completion=False,
    )
    needed >> trigger


data_quality()
