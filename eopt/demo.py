"""``make demo``: the whole platform on one machine, with the real DAGs at historical logical dates.

1. bootstrap the product's Airflow home (``eopt.airflow_home.bootstrap``: SQLite metadata, pools,
   variables, connections to the sandbox), start the pricing sandbox on port 8765, migrate the
   store and load the bundled history;
2. per group of markets whose history ends together (NP and PJM end 2018-12-24, BE and FR
   2016-12-31), with ``airflow dags test``: ``model_retraining`` two days before the end (demo
   budget), ``forecast_generation`` the next midnight (its 24 hours are realized in the
   history), ``data_quality`` the morning after; ``electricity_price_ingestion`` runs once against
   the sandbox first;
3. a summary per region (registered version, stage, gate decision with MAPE/rMAE, forecasts stored,
   drift rule findings and forecast-error drift, report path), printed and written to ``$EOPT_HOME/demo-summary.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.settings import Settings
from eopt.airflow_home import bootstrap, dags_test

SANDBOX_PORT = 8765  # where airflow/connections.json points the providers


@dataclass(frozen=True)
class MarketGroup:
    regions: tuple[str, ...]
    last_day: str  # the last day of the group's bundled history (UTC)

    def at(self, days: int, hour: int) -> str:
        return (pd.Timestamp(self.last_day, tz="UTC") + pd.Timedelta(days=days, hours=hour)).isoformat()


GROUPS = (MarketGroup(("NP", "PJM"), "2018-12-24"), MarketGroup(("BE", "FR"), "2016-12-31"))
# one ingestion cycle against the sandbox, at the newest group's last day
INGESTION_DATE = GROUPS[0].at(0, 12)


@dataclass
class DagRun:
    dag_id: str
    logical_date: str
    regions: tuple[str, ...]
    ok: bool
    seconds: float
    tail: str


def run_dag(settings: Settings, dag_id: str, logical_date: str, conf: dict, echo: Callable[[str], None]) -> DagRun:
    echo(f"  airflow dags test {dag_id} {logical_date} -c '{json.dumps(conf)}' ...")
    started = time.perf_counter()
    # apache/airflow#73428: `dags test` of a DAG with a deadline alert crashes after a successful run
    result = dags_test(
        settings,
        dag_id,
        logical_date,
        conf,
        extra_env={"EOPT_AIRFLOW_DEADLINE_ALERTS": "0", "EOPT_AIRFLOW_TASK_RETRIES": "0"},
    )
    seconds = time.perf_counter() - started
    log = result.stdout + result.stderr
    ok = result.returncode == 0
    echo(f"    {'ok' if ok else f'FAILED (exit {result.returncode})'} in {seconds:.0f} s")
    if not ok:
        echo("    " + "\n    ".join(log.strip().splitlines()[-15:]))
    return DagRun(dag_id, logical_date, tuple(conf.get("regions", ())), ok, round(seconds, 1), log[-3000:])


def region_summary(settings: Settings, region: str, forecast_issue: str) -> dict[str, Any]:
    from registry.models import champion, registered_model_name
    from storage.database import store_engine
    from storage.forecasts import ForecastStore
    from storage.promotions import PromotionStore
    from storage.quality import QualityReportStore
    from training.tracking import configure

    engine = store_engine(settings.stores)
    client = configure(settings)
    name = registered_model_name(region)
    versions = (
        client.search_model_versions(f"name = '{name}'") if client.search_registered_models(f"name = '{name}'") else []
    )
    newest = max(versions, key=lambda v: int(v.version)) if versions else None
    best = champion(client, region)
    gates = PromotionStore(engine).history(region)
    gates = gates[gates["action"] == "gate"]
    gate = gates.iloc[0] if len(gates) else None
    candidate = (gate["metrics"] or {}).get("candidate", {}) if gate is not None else {}
    forecast = ForecastStore(engine).read_forecasts(region, pd.Timestamp(forecast_issue))
    reports = QualityReportStore(engine)
    run_id = reports.latest_run_id(region)
    quality = reports.read_run(run_id) if run_id else None
    drift = None
    if quality is not None:
        mine = quality.checks[quality.checks["region"] == region].set_index("check_name")
        if "drift" in mine.index:
            inputs = mine.loc[["drift"]].iloc[0]
            details = inputs["details"] or {}
            drift = {
                "status": inputs["status"],
                "findings": [f"{f['status']}: {f['text']}" for f in details.get("findings") or []],
                "message": details.get("message"),  # the store keeps a check's message in its details
            }
            if "drift:performance" in mine.index:
                errors = mine.loc[["drift:performance"]].iloc[0]
                drift["performance"] = {"status": errors["status"], "message": (errors["details"] or {}).get("message")}
    summary = {
        "region": region,
        "registered_version": None if newest is None else str(newest.version),
        "stage": None if newest is None else newest.current_stage,
        "champion_version": None if best is None else best.version,
        "gate": None
        if gate is None
        else {
            "promoted": bool(gate["promoted"]),
            "reasons": list(gate["reasons"] or []),
            "mape": candidate.get("mape"),
            "rmae": candidate.get("rmae"),
        },
        "forecasts": {
            "issued_at": forecast_issue,
            "hours": len(forecast),
            "model_version": None if forecast.empty else str(forecast["model_version"].iloc[0]),
            "is_fallback": bool(forecast["is_fallback"].any()) if len(forecast) else None,
            "fallback_reason": (
                f"no Production model of {region} when it was issued"
                if len(forecast) and forecast["is_fallback"].any()
                else None
            ),
        },
        "drift": drift,
        "quality_report": quality.report_path if quality is not None else None,
    }
    engine.dispose()
    return summary


def summary_line(summary: dict[str, Any]) -> str:
    """A region's line of the demo's summary (``region_summary``'s dict): its registered version and
    stage, the gate's verdict with MAPE/rMAE, the forecasts stored and the drift part."""
    gate = summary["gate"] or {}
    verdict = ("promoted" if gate.get("promoted") else "rejected") if gate else "no gate decision"
    mape = f" MAPE {gate['mape']:.1f}%, rMAE {gate['rmae']:.3f}" if gate.get("mape") is not None else ""
    f = summary["forecasts"]
    served = (
        f"{f['hours']} forecasts by v{f['model_version']}"
        if f["hours"] and not f["is_fallback"]
        else f"{f['hours']} FALLBACK forecasts ({f['fallback_reason']})"
        if f["hours"]
        else "no forecasts"
    )
    return (
        f"{summary['region']}: version {summary['registered_version']} ({summary['stage']}), gate {verdict}{mape}; "
        f"{served}; {describe_drift(summary['drift'])}"
    )


def describe_drift(drift: dict[str, Any] | None) -> str:
    """The summary line's drift part: the rules' findings (family and size) and the errors' verdict."""
    if not drift:
        return "no drift result"
    if drift["status"] == "skipped":
        inputs = f"drift skipped ({drift['message']})"
    elif drift["findings"]:
        inputs = f"drift {drift['status']}: {'; '.join(drift['findings'])}"
    else:
        inputs = "drift ok: no rule past its threshold"
    performance = drift.get("performance")
    if performance is None:
        return inputs
    return f"{inputs}; forecast errors {performance['status']} ({performance['message']})"


def run_demo(settings: Settings, budget: str, echo: Callable[[str], None]) -> dict[str, Any]:
    from ingestion.sandbox.server import Sandbox, SandboxConfig

    started = time.perf_counter()
    echo(f"[1/4] Airflow home {settings.airflow.home}: migrate, pools, variables, connections")
    for line in bootstrap(settings):
        echo(f"  {line}")
    sandbox = Sandbox(SandboxConfig(data_dir=settings.stores.market_data_dir))
    try:
        url = sandbox.start("127.0.0.1", SANDBOX_PORT)
    except OSError as exc:
        raise RuntimeError(
            f"port {SANDBOX_PORT} is taken ({exc}); the demo's connections point the pricing providers "
            f"at the sandbox there: stop what listens on it (e.g. another `eopt sandbox`)"
        ) from None
    runs: list[DagRun] = []
    try:
        echo(f"[2/4] pricing sandbox on {url}; one ingestion cycle against it")
        runs.append(run_dag(settings, "electricity_price_ingestion", INGESTION_DATE, {"force": True}, echo))
        echo(f"[3/4] retraining (budget {budget}), forecast and data quality per market group")
        for group in GROUPS:
            conf = {"regions": list(group.regions)}
            runs.append(run_dag(settings, "model_retraining", group.at(-2, 0), {**conf, "budget": budget}, echo))
            runs.append(run_dag(settings, "forecast_generation", group.at(-1, 0), conf, echo))
            runs.append(run_dag(settings, "data_quality", group.at(0, 6), conf, echo))
    finally:
        sandbox.stop()
    echo("[4/4] summary")
    regions = [region_summary(settings, r, g.at(-1, 0)) for g in GROUPS for r in g.regions]
    summary = {
        "seconds": round(time.perf_counter() - started, 1),
        "budget": budget,
        "dag_runs": [{k: v for k, v in run.__dict__.items() if k != "tail"} for run in runs],
        "regions": regions,
    }
    path = settings.stores.home / "demo-summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    for r in regions:
        echo(f"  {summary_line(r)}")
    reports = sorted({r["quality_report"] for r in regions if r["quality_report"]})
    echo(f"  data-quality reports: {', '.join(reports) or 'none'}")
    echo(f"  summary written to {path} ({summary['seconds']:.0f} s)")
    failed = [f"{run.dag_id} {run.logical_date}" for run in runs if not run.ok]
    if failed:
        raise RuntimeError(f"DAG run(s) failed: {', '.join(failed)}; their output is above and in {path}")
    return summary
