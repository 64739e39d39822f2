"""The benchmarks page of the docs site, rendered from ``benchmarks/results/*.json`` at build time.

``render_page(results)`` is Markdown: one table of every recorded benchmark (its headline figure,
target, machine and commit) and the accuracy table against the published EPF benchmark, built from
the JSON files the benchmarks write, never copied by hand. The docs build (``docs/hooks.py``) calls
it; a result file this module cannot read stops the build with the file's name.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from benchmarks.accuracy import summary_lines

RESULTS = Path(__file__).resolve().parent / "results"


def _storage(r: dict) -> tuple[str, str, str]:
    rate = r["rows_per_s"]
    return (
        f"`make bench-storage`: {r['rows']:,} NP rows into PostgreSQL {r['postgresql'].split()[0]}",
        f"upsert {rate['upsert_first_load']:,.0f} rows/s vs raw `COPY` {rate['raw_copy']:,.0f} rows/s: "
        f"**{r['upsert_to_copy_ratio']:.2f}x** (rerun {rate['upsert_rerun']:,.0f} rows/s)",
        f"{r['target']} ({'met' if r['target_met'] else 'NOT met'})",
    )


def _ingestion(r: dict) -> tuple[str, str, str]:
    s = r["seconds_median"]
    return (
        f"`make bench-ingestion`: one cycle, {len(r['provider_rows'])} providers, and a two-year ENTSO-E load",
        f"cycle **{s['cycle']:.2f} s** ({r['rows_stored']} rows stored; rerun {s['cycle_rerun']:.2f} s); "
        f"two-year load {s['two_year_load']:.2f} s ({r['two_year_rows']:,} rows, {r['two_year_rows_per_s']:,.0f} rows/s)",
        f"{r['target']} ({'met' if r['target_met'] else 'NOT met'})",
    )


def _training(r: dict) -> tuple[str, str, str]:
    regions = r["regions"]
    peak = max(step.get("peak_rss_mb", 0) for region in regions.values() for step in region["steps"].values())
    total = ", ".join(f"{name} {region['total_seconds']:.0f} s" for name, region in regions.items())
    return (
        f"`make bench-training`: one region's whole tuned retraining, budget `{r['budget']}`, device {r['device']}",
        f"{total}; peak RSS {peak / 1024:.2f} GB per step",
        "< 600 s per region on 2 cores",
    )


def _serving(r: dict) -> tuple[str, str, str]:
    http, local = r["latency"]["http"], r["latency"]["in_process"]
    tasks = r["dag"]["tasks"]
    return (
        "`make bench-serving`: one origin's 24 rows, `mlflow models serve` vs in process; "
        f"one `forecast_generation` run for {len(r['dag']['regions'])} regions",
        f"HTTP p50 **{http['p50_ms']:.0f} ms** / p99 {http['p99_ms']:.0f} ms; in process p50 {local['p50_ms']:.0f} ms / "
        f"p99 {local['p99_ms']:.0f} ms; DAG tasks {sum(t['seconds'] for t in tasks.values()):.1f} s "
        f"({r['dag']['command_wall_s']:.1f} s with process start)",
        "DAG run < 20 s (deadline 2 min)",
    )


def _drift(r: dict) -> tuple[str, str, str]:
    every = r["all_markets"]
    markets = ", ".join(f"{name} {m['critical_pct']:g}%" for name, m in r["markets"].items())
    return (
        f"`make bench-drift`: the drift check on every real week with two years before it ({every['weeks']} weeks)",
        f"critical on **{every['critical_pct']:g}%** of weeks ({markets}); "
        f"{every['seconds_per_report_mean']:.1f} s per region and week",
        "none: the false-alarm rate of the defaults",
    )


def _retention(r: dict) -> tuple[str, str, str]:
    last = r["months"][-1]
    before, after = sum(last["before"].values()), sum(last["after"].values())
    return (
        f"`make bench-retention`: the embedded home after {last['month']} simulated months, regions "
        + ", ".join(r["regions"]),
        f"{before / 1e6:,.0f} MB before maintenance, **{after / 1e6:,.0f} MB** after",
        "none: the growth per month",
    )


def _cnn_lstm(r: dict) -> tuple[str, str, str]:
    runs = ", ".join(f"{name} {region['default']['total_seconds']:.0f} s" for name, region in r["regions"].items())
    return (
        f"`python -m benchmarks.cnn_lstm_device --device {r['device']}`: the CNN-LSTM step, budget `default`, "
        f"on {r['device_name']}",
        f"tuning + refit {runs}; NP epoch {r['epochs']['default']['seconds_per_epoch']:.3f} s",
        "none: device comparison",
    )


def _scale(r: dict) -> tuple[str, str, str]:
    tiers = r["tiers"]
    first, last = tiers[0], tiers[-1]
    return (
        f"`make bench-scale`: ingestion, `forecast_generation`, data_quality, retraining at "
        f"{', '.join(str(t['zones']) for t in tiers)} zones",
        f"forecast task-seconds per zone {first['per_zone']['forecast_tasks_s']:.2f} s at {first['zones']} zones, "
        f"**{last['per_zone']['forecast_tasks_s']:.2f} s** at {last['zones']}; ingestion per zone "
        f"{first['per_zone']['ingestion_s']:.3f} / {last['per_zone']['ingestion_s']:.3f} s",
        "per-zone cost flat or falling as zones grow",
    )


ROWS: dict[str, Callable[[dict], tuple[str, str, str]]] = {
    "storage_upsert": _storage,
    "ingestion": _ingestion,
    "training": _training,
    "serving": _serving,
    "drift_calibration": _drift,
    "retention": _retention,
    "cnn_lstm_cpu": _cnn_lstm,
    "cnn_lstm_cuda": _cnn_lstm,
    "scale": _scale,
}


def _machine(record: dict) -> str:
    machine = record.get("machine") or record.get("epoch_machine") or {}
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; "
        f"`{str(machine.get('git_commit', '?'))[:7]}`, {str(machine.get('recorded_at', '?'))[:10]}"
    )


def render_page(results: Path = RESULTS) -> str:
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated at build time from benchmarks/results/*.json by benchmarks/summary.py. -->",
        "",
        "Speed and accuracy goals are measured by the benchmarks in `benchmarks/` (never by timed tests) and",
        "recorded in `benchmarks/results/` with the machine and the commit. Every figure on this page is read",
        "from those JSON files when the site is built; rerun a benchmark and rebuild to update it.",
        "How each was run, the attempts to close the accuracy gap and the run timings: `benchmarks/README.md`.",
        "",
        "## Speed",
        "",
        "| benchmark | result | target | machine, commit, date |",
        "|---|---|---|---|",
    ]
    for name, row in ROWS.items():
        path = results / f"{name}.json"
        if not path.exists():
            continue
        try:
            record = json.loads(path.read_text())
            cells = row(record)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read the benchmark result ({exc!r}); rerun the benchmark") from exc
        lines.append("| " + " | ".join((*cells, _machine(record))) + " |")
    accuracy = sorted(results.glob("accuracy_*.json"))
    if accuracy:
        lines += ["", "## Accuracy against the published EPF benchmark", ""]
        records = [json.loads(p.read_text()) for p in accuracy]
        whole = [r for r in records if r["period"]["days"] >= 365]
        at_lear = [r["market"] for r in whole if r["ratios"]["mae_vs_lear_ensemble"] <= 1.005]
        lines += [
            f"On the whole test periods the product's MAE is at or below LEAR's (ratio <= 1.00) in {len(at_lear)} of "
            f"{len(whole)} markets ({', '.join(at_lear) or 'none'}) and below the DNN ensemble's in "
            f"{sum(r['ratios']['mae_vs_dnn_ensemble'] < 1 for r in whole)}; the goal, at or below LEAR everywhere, "
            + ("is met." if len(at_lear) == len(whole) else "is not met."),
            "",
        ]
        lines += summary_lines(records)[2:]
        lines += ["", "![MAE of ours, LEAR and DNN per market](assets/accuracy-vs-published.png)", ""]
        lines += [
            f"![A representative fortnight, {p.stem.removeprefix('accuracy_')}](assets/results/{p.stem}.png)"
            for p in accuracy
            if p.with_suffix(".png").exists()
        ]
    return "\n".join(lines) + "\n"


def accuracy_chart(results: Path = RESULTS) -> bytes:
    """PNG: per market (whole test period), the MAE of ours, LEAR and DNN side by side, from ``accuracy_*.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(p.read_text()) for p in sorted(results.glob("accuracy_*.json"))]
    records = [r for r in records if r["period"]["days"] >= 365]  # the whole periods, not the quick scopes
    series = {"ours": "ensemble", "LEAR (Lago et al. 2021)": "lear_ensemble", "DNN (Lago et al. 2021)": "dnn_ensemble"}
    figure, axes = plt.subplots(figsize=(8, 4), dpi=110)
    width = 0.8 / len(series)
    for index, (label, key) in enumerate(series.items()):
        xs = [m + (index - 1) * width for m in range(len(records))]
        bars = axes.bar(xs, [r["metrics"][key]["mae"] for r in records], width, label=label)
        axes.bar_label(bars, fmt="%.2f", fontsize=7)
    axes.set_xticks(range(len(records)), [f"{r['market']} ({r['period']['days']} days)" for r in records])
    axes.set_ylabel("MAE, per MWh (lower is better)")
    axes.set_title("Day-ahead accuracy on the published EPF test periods")
    axes.legend(fontsize=8)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()


def drift_tables(results: Path = RESULTS) -> str:
    """docs/drift.md's measured tables, read from ``drift_power.json`` and ``drift_performance.json``."""
    lines: list[str] = []
    power_path, performance_path = results / "drift_power.json", results / "drift_performance.json"
    if power_path.exists():
        power = json.loads(power_path.read_text())
        markets = power["markets"]
        regions = list(markets)
        goal = set(power["goal_detection_pct"])
        lines += [
            "### Measured power and false alarms of the rules",
            "",
            f"`benchmarks/results/drift_power.json` ({_machine(power)}), product thresholds: % of weeks where the "
            "change's own rule is critical, naming its family (and series); in brackets where any rule is critical.",
            "",
            f"| change in the current week | {' | '.join(regions)} |",
            f"|---|{'---|' * len(regions)}",
            "| none: weeks critical (any rule; goal <= 5%) | "
            + " | ".join(
                f"{m['clean_critical_pct']:g}% ({m['clean_critical_weeks']}/{m['weeks']})" for m in markets.values()
            )
            + " |",
            "| none: weeks warn or critical | "
            + " | ".join(f"{m['clean_warn_or_critical_pct']:g}%" for m in markets.values())
            + " |",
        ]
        from benchmarks.drift_power import GOAL

        goals = {change for family, change in GOAL.items() if family in goal}
        for name in markets[regions[0]]["changes"]:
            mark = " (goal >= 90%)" if name in goals else ""
            cells = " | ".join(
                f"{m['changes'][name]['named_pct']:g}% ({m['changes'][name]['any_critical_pct']:g}%)"
                for m in markets.values()
            )
            lines.append(f"| {name}{mark} | {cells} |")
        lines += [
            "",
            "| rule | warn | critical | clean weeks critical by this rule alone, % |",
            "|---|---|---|---|",
        ]
        for family, levels in power["product_thresholds"].items():
            alone = ", ".join(f"{r} {m['false_alarm_pct_per_family'][family]:g}" for r, m in markets.items())
            lines.append(f"| `{family}` | {levels['warn']:g} | {levels['critical']:g} | {alone} |")
        lines += ["", "![Operating curves of the drift rules](assets/results/drift_power.png)", ""]
    if performance_path.exists():
        performance = json.loads(performance_path.read_text())
        lines += [
            "### Measured false alarms and delay of the performance CUSUM",
            "",
            f"`benchmarks/results/drift_performance.json` ({_machine(performance)}): the published LEAR and DNN "
            "ensembles of the four markets as champions, every served week.",
            "",
            "| calibration | holdout | weeks | clean weeks critical | warn or critical | x1.5 on the last 3 days "
            "flagged | x1.5 from day 1 flagged within 3 days | within 7 days |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for variant, by_holdout in performance["pooled"].items():
            for holdout, c in by_holdout.items():
                lines.append(
                    f"| {variant} | {holdout} | {c['weeks']} | {c['false_alarm_pct']:g}% | "
                    f"{c['warn_or_critical_pct']:g}% | {c['x1.5_last_3_days_flagged_pct']:g}% | "
                    f"{c['x1.5_from_day_1_flagged_within_3_days_pct']:g}% | "
                    f"{c['x1.5_from_day_1_flagged_within_7_days_pct']:g}% |"
                )
        lines.append("")
    return "\n".join(lines)


def scale_tables(results: Path = RESULTS) -> str:
    """docs/scaling.md's measured table, read from ``scale.json`` (``benchmarks.scale``)."""
    from benchmarks.scale import capacity, table

    path = results / "scale.json"
    if not path.exists():
        return "_No `benchmarks/results/scale.json` yet: run `make bench-scale`._\n"
    record = json.loads(path.read_text())
    lines = [
        f"`benchmarks/results/scale.json` ({_machine(record)}); run time {record['run_time']}, "
        f"{record['backfill_days']} days per zone in the store, budget `{record['budget']}`.",
        "",
        *table(record["tiers"]),
        "",
        "![Seconds per zone against zones](assets/results/scale.png)",
        "",
    ]
    training = results / "training.json"
    default_s = None
    if training.exists():  # make bench-training: one region's retraining on the default budget, the slowest region
        default_s = max(r["total_seconds"] for r in json.loads(training.read_text())["regions"].values())
    rows = capacity(record["tiers"], default_s)
    lines += [
        "**Arithmetic from these measurements, not measured itself**: a 2-core worker serves "
        "deadline / (seconds per zone) x processes zones, the seconds per zone from the largest tier that "
        "measured it (retraining on the `default` budget: the slowest region of `make bench-training`); "
        "two processes side by side for the retraining (the `ml_training_pool`'s 2 slots, one thread per fit: two "
        "such fits do not slow each other on 2 cores, `benchmarks/README.md`), one for the ingestion cycle (one "
        "process's loop) and one for the forecast: its seconds come from `airflow dags test`, which runs every task "
        "in one process, while under the Local or Celery executor each of a zone's four task instances also starts "
        "a process of its own (not measured here), so the forecast's figure is an upper bound. Workers = zones / "
        "zones per worker, rounded up."
        + (
            f" Retraining at {', '.join(str(t['zones']) for t in record['tiers'] if 'retraining' not in t)} zones "
            "was not run in this record (hours on 2 cores)."
            if any("retraining" not in t for t in record["tiers"])
            else ""
        ),
        "",
        "| work | deadline | s per zone (measured at N zones) | processes | zones per 2-core worker "
        "| workers for 46 zones | workers for 4,000 nodes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in rows.items():
        at = f"{c['measured_at_zones']}" if c["measured_at_zones"] else "`make bench-training`"
        lines.append(
            f"| {name} | {c['deadline_s'] / 60:g} min | {c['seconds_per_zone']:.3f} ({at}) | {c['processes']} "
            f"| {c['zones_per_worker']:,} | {c['workers_for_46']} | {c['workers_for_4000']} |"
        )
    lines.append("")
    return "\n".join(lines)
