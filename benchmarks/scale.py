"""Cost per zone as the number of zones grows: 4, 16, 46 and 200 zones on one machine (#20).

The zones, in order (``scale_regions``): the four bundled markets (NP, PJM, BE, FR, real history
loaded from ``data/markets/``), then the other ENTSO-E bidding zones of the bundled catalogue with
their real EIC codes and time zones, then synthetic zones (``SYN_001`` ...: a valid EIC with its
check character, the time zone and holidays of an ENTSO-E zone) up to 200. Every zone beyond the
four gets ``sandbox = { replays = "BE" | "FR", shift_days = k }`` with a distinct ``k``, so the
pricing sandbox serves a real price history under each EIC, and no two zones see the same prices.
The run writes that catalogue (``EOPT_REGION_CATALOGUE``) into its home.

Per tier of N zones, in a fresh store (embedded SQLite) and one MLflow registry for all tiers:

1. **backfill** (set-up, timed): the bundled four from their history files, the others through
   ``eopt ingest``'s path (ENTSO-E prices and the A65/A69 forecasts from the sandbox), for the
   ``--backfill-days`` before the run day;
2. **ingestion**: one 15-minute cycle (``run_cycle``: every provider, every zone) at the run time;
3. **champions** (set-up): the bundled four and one ENTSO-E template zone are trained on the
   ``smoke`` budget (66-day window) and promoted; every other zone's champion is a registered
   copy of the template's version (``copy_model_version``, promoted by hand, audited): a forecast
   costs the same whichever zone's data a model learned from, and training every zone is the
   retraining measurement below;
4. **forecast**: ``airflow dags test forecast_generation`` with ``EOPT_REGIONS`` = the N zones,
   a fresh Airflow metadata DB: every task's duration from ``task_instance``;
5. **data_quality**: every check of every zone and the report, in one process (``eopt quality``'s
   path: the DAG's tasks without Airflow's per-task overhead);
6. **retraining** (``--retrain-zones``, default 4,16,46): every zone of the tier retrained on the
   smoke budget in a row, one process (``retrain_region``), each zone's seconds;
7. the store's size on disk, and the peak RSS of this process and its children per step.

The sandbox runs in this process with a high request limit, so the figures are the product's own
cost (ENTSO-E's real limit is 400 requests a minute per token: docs/scaling.md does that sum).

    python -m benchmarks.scale [--zones 4,16,46,200] [--retrain-zones 4,16,46] [--backfill-days 70]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import sqlalchemy as sa

from benchmarks.machine import describe_machine, write_results
from core.regions import BUNDLED_CATALOGUE, Catalogue, Region, eic_check_character, load_catalogue, region_toml
from core.settings import PROJECT_ROOT, Settings, child_environment, use_catalogue

RESULTS = Path(__file__).resolve().parent / "results"
BUNDLED = ("NP", "PJM", "BE", "FR")
REPLAYED = ("BE", "FR")  # the bundled ENTSO-E markets: their histories carry the A65/A69 stand-ins
TIERS = (4, 16, 46, 200)
RUN_TIME = pd.Timestamp("2016-12-30 23:00", tz="UTC")  # BE and FR end on 2016-12-31
TRAINING = {
    "EOPT_TRAINING_WINDOW_DAYS": "66",  # the shortest window training accepts (tests/eopt/test_new_zone.py)
    "EOPT_VALIDATION_DAYS": "14",
    "EOPT_TEST_DAYS": "14",
    "EOPT_TRAINING_THREADS": "1",
}
DEADLINES_S = {"ingestion": 300.0, "forecast": 120.0, "retraining": 6 * 3600.0}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the zones -----------------------------------------------------------------------------------


def synthetic_eic(index: int) -> str:
    """A 16-character EIC of a synthetic zone: ``10YSYN`` + 9 digits + its check character."""
    body = f"10YSYN{index:09d}"
    return body + eic_check_character(body)


def scale_regions(n: int, bundled: Catalogue | None = None) -> list[Region]:
    """The first ``n`` zones of the benchmark: the bundled four, the catalogue's other ENTSO-E zones
    (each replaying BE or FR, shifted by a distinct number of days), then synthetic zones."""
    catalogue = bundled or load_catalogue(BUNDLED_CATALOGUE)
    if n < len(BUNDLED):
        raise ValueError(f"--zones: at least the {len(BUNDLED)} bundled markets, not {n}")
    out = [catalogue.get(code).model_copy(update={"enabled": True}) for code in BUNDLED]
    entsoe = [r for code, r in catalogue.regions.items() if code not in BUNDLED and r.ids.entsoe]
    for i in range(n - len(BUNDLED)):
        shift = {"replays": REPLAYED[i % len(REPLAYED)], "shift_days": i + 1}
        if i < len(entsoe):
            data = entsoe[i].model_dump(exclude_none=True)
        else:
            template = entsoe[i % len(entsoe)].model_dump(exclude_none=True)
            k = i - len(entsoe) + 1
            data = {
                **template,
                "code": f"SYN_{k:03d}",
                "name": f"synthetic zone {k} ({template['zone']})",
                "ids": {"entsoe": synthetic_eic(k)},
            }
        out.append(Region.model_validate({**data, "enabled": True, "sandbox": shift}))
    return out


def write_scale_catalogue(path: Path, regions: list[Region]) -> Catalogue:
    """The operator catalogue of the run (validated by reading it back)."""
    path.write_text("version = 1\n\n" + "\n".join(region_toml(r) for r in regions), encoding="utf-8")
    return load_catalogue(path)


# -- measuring -----------------------------------------------------------------------------------


class PeakRss:
    """The peak resident memory of this process and all its children while the block runs (polled)."""

    def __init__(self, interval_s: float = 0.1, include_self: bool = True) -> None:
        self.interval_s, self.include_self, self.peak = interval_s, include_self, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me] * self.include_self + me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a child that ended between the listing and the read
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return round(self.peak / 2**20, 1)


def _timed(step: dict, name: str, fn, *args, include_self: bool = True, **kwargs) -> Any:
    with PeakRss(include_self=include_self) as rss:
        started = time.perf_counter()
        value = fn(*args, **kwargs)
        seconds = time.perf_counter() - started
    step[name] = {"seconds": round(seconds, 2), "peak_rss_mib": rss.mib}
    _log(f"  {name}: {seconds:.1f} s, peak RSS {rss.mib} MiB")
    return value


# -- one tier ------------------------------------------------------------------------------------


def _backfill(settings: Settings, store, cache, regions: list[Region], days: int) -> dict:
    from core.markets import load_market
    from pipelines.electricity_price_ingestion import backfill

    start, end = RUN_TIME.floor("D") - pd.Timedelta(days=days), RUN_TIME.floor("D") - pd.Timedelta(hours=1)
    rows = 0
    for region in regions:
        if region.code in BUNDLED:
            history = load_market(region.code, settings.stores.market_data_dir)
            cut = history.between(start, end)
            exogenous = history.between(start, RUN_TIME + pd.Timedelta(hours=24))
            rows += store.upsert_history(cut.prices, exogenous.exogenous).prices.inserted
    replayed = [r.code for r in regions if r.code not in BUNDLED]
    if replayed:
        report = backfill(
            settings.with_overrides(regions=",".join(replayed)),
            store,
            cache,
            start,
            end,
            sources=["entsoe"],
            chunk_days=30,
        )
        if report.failures:
            raise SystemExit(f"backfill {start}..{end}: {report.failures}")
        rows += report.inserted
    with store.engine.connect() as conn:
        zones = conn.execute(sa.text("SELECT COUNT(DISTINCT region) FROM electricity_prices")).scalar_one()
    if zones != len(regions):
        raise SystemExit(f"backfill: prices stored for {zones} of {len(regions)} zones; check the sandbox's catalogue")
    return {"rows": rows, "zones_with_prices": int(zones)}


def _champions(settings: Settings, store, regions: list[Region], template: str | None) -> dict:
    """Train what has no champion among the bundled four and the template; copy the template's to the rest."""
    from pipelines.model_retraining import retrain_region
    from registry.models import champion, registered_model_name
    from registry.promotion import promote_version
    from storage.promotions import PromotionStore
    from training.tracking import configure

    client = configure(settings)
    promotions = PromotionStore(store.engine)
    trained: dict[str, float] = {}
    for code in [r.code for r in regions if r.code in BUNDLED] + ([template] if template else []):
        if champion(client, code) is None:
            started = time.perf_counter()
            outcome = retrain_region(settings, store, code)
            trained[code] = round(time.perf_counter() - started, 1)
            promote_version(
                client, promotions, code, outcome.candidate.version, "benchmark: smoke model", "benchmarks.scale"
            )
            _log(f"  trained {code} in {trained[code]} s")
    copied = 0
    source = champion(client, template) if template else None
    for region in regions:
        if region.code in BUNDLED or region.code == template or champion(client, region.code) is not None:
            continue
        assert source is not None
        version = client.copy_model_version(source.uri, registered_model_name(region.code))
        promote_version(
            client,
            promotions,
            region.code,
            str(version.version),
            f"benchmark: copy of {source.uri} (a forecast costs the same whichever zone a model learned from)",
            "benchmarks.scale",
        )
        copied += 1
    return {"trained_seconds": trained, "copied": copied}


def _data_quality(settings: Settings, store, codes: list[str]) -> dict:
    from core.runs import run_folder
    from pipelines import data_quality as flow
    from training.tracking import configure

    client = configure(settings)
    run = f"scale_{len(codes)}"
    folder = run_folder(settings.quality_dir, run)
    payloads = flow.run_checks(store, client, settings, codes, RUN_TIME, folder)
    report = flow.generate_quality_report(store, client, settings, run, RUN_TIME, folder, payloads)
    summary = report.summary()
    return {k: summary[k] for k in ("health_score", "ok", "warn", "critical", "skipped")}


def _retrain(settings: Settings, store, codes: list[str]) -> dict[str, float]:
    from pipelines.model_retraining import retrain_region

    seconds = {}
    for code in codes:
        started = time.perf_counter()
        retrain_region(settings, store, code)
        seconds[code] = round(time.perf_counter() - started, 1)
        _log(f"  retrained {code}: {seconds[code]} s")
    return seconds


def run_tier(root: Path, regions: list[Region], backfill_days: int, retrain: bool) -> dict:
    from benchmarks.serving import dag_run
    from ingestion.sandbox.server import Sandbox, SandboxConfig
    from pipelines.electricity_price_ingestion import run_cycle
    from storage.cache import PriceCache
    from storage.database import create_store_engine, upgrade
    from storage.prices import PriceStore

    n, codes = len(regions), [r.code for r in regions]
    catalogue_path = root / f"regions-{n}.toml"
    catalogue = write_scale_catalogue(catalogue_path, regions)
    use_catalogue(catalogue)  # this process's own lookups (the ENTSO-E parser's EIC -> region) see the synthetic zones
    store_path = root / f"store-{n}.db"
    database_url = f"sqlite:///{store_path}"
    limits = dict.fromkeys(("flatpeak", "nrel", "openei", "iea", "entsoe"), 100_000)
    step: dict[str, Any] = {"zones": n}
    with Sandbox(
        SandboxConfig(data_dir=PROJECT_ROOT / "data" / "markets", catalogue=catalogue, requests_per_minute=limits)
    ) as sandbox:
        env = {
            "EOPT_HOME": str(root),
            "EOPT_DATABASE_URL": database_url,
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "EOPT_REGION_CATALOGUE": str(catalogue_path),
            "EOPT_REGIONS": ",".join(codes),
            "EOPT_PRICING_SANDBOX_URL": sandbox.url,
            "EOPT_TRAINING_BUDGET": "smoke",
            "EOPT_LOG_LEVEL": "WARNING",
            **TRAINING,
        }
        settings = Settings.from_env(child_environment(**env))
        engine = create_store_engine(database_url)
        upgrade(engine)
        store = PriceStore(engine)
        cache = PriceCache.from_url(None, ttl_prices_s=60, ttl_forecasts_s=60)
        filled = _timed(step, "backfill", _backfill, settings, store, cache, regions, backfill_days)
        step["backfill"].update(filled)
        # untimed: one zone's cycle inside the backfilled days, so the timed cycle pays no first-call imports
        run_cycle(settings.with_overrides(regions=codes[0]), RUN_TIME - pd.Timedelta(days=3), store, cache)
        report = _timed(step, "ingestion", run_cycle, settings, RUN_TIME, store, cache)
        step["ingestion"].update(rows_stored=int(report.stored["inserted"]), failures=report.failures)
    template = next((c for c in codes if c not in BUNDLED), None)
    step["champions"] = _champions(settings, store, regions, template)
    own = {
        k: v for k, v in env.items() if k not in ("EOPT_HOME", "EOPT_REGIONS", "EOPT_LOG_LEVEL")
    }  # dag_run sets those
    dag = _timed(step, "forecast", dag_run, settings, codes, RUN_TIME, extra_env=own, include_self=False)
    step["forecast"].update(
        tasks_span_s=dag["tasks_span_s"],
        task_seconds_sum=dag["task_seconds_sum"],
        command_wall_s=dag["command_wall_s"],
        returncode=dag["returncode"],
        task_instances=len(dag["tasks"]),
        failed=sorted(t for t, v in dag["tasks"].items() if v["state"] != "success"),
        forecast_zones=len(dag["forecasts"]),
        fallbacks=sorted(r for r, f in dag["forecasts"].items() if f["is_fallback"]),
        per_task_seconds=_per_task(dag["tasks"]),
        log_tail=dag["log_tail"],
    )
    step["data_quality"] = {}
    quality = _timed(step, "data_quality", _data_quality, settings, store, codes)
    step["data_quality"].update(quality)
    if retrain:
        seconds = _timed(step, "retraining", _retrain, settings, store, codes)
        step["retraining"]["per_zone"] = seconds
    engine.dispose()
    step["store_bytes"] = store_path.stat().st_size
    return step


def _per_task(tasks: dict) -> dict[str, float]:
    """Seconds per task name, summed over the mapped instances (``generate_forecasts`` over all zones)."""
    sums: dict[str, float] = {}
    for task_id, t in tasks.items():
        name = task_id.split("[")[0]
        sums[name] = round(sums.get(name, 0.0) + (t["seconds"] or 0.0), 2)
    return sums


# -- the table -----------------------------------------------------------------------------------


def per_zone(tier: dict) -> dict[str, float | None]:
    n = tier["zones"]

    def each(name: str, key: str = "seconds") -> float | None:
        return round(tier[name][key] / n, 3) if name in tier and tier[name].get(key) is not None else None

    return {
        "ingestion_s": each("ingestion"),
        "forecast_tasks_s": each("forecast", "task_seconds_sum"),
        "forecast_span_s": each("forecast", "tasks_span_s"),
        "data_quality_s": each("data_quality"),
        "retraining_s": each("retraining"),
        "store_mib": round(tier["store_bytes"] / 2**20 / n, 2),
    }


def table(tiers: list[dict]) -> list[str]:
    lines = [
        "| zones | ingestion cycle s | forecast_generation: first task start to last end s (all tasks summed) "
        "| data_quality s | retraining (smoke) s | store MiB | peak RSS MiB (`airflow dags test` process) "
        "| load (1 min) after, commit |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in tiers:
        f = t["forecast"]
        retrain = f"{t['retraining']['seconds']:.1f}" if "retraining" in t else "not run"
        lines.append(
            f"| {t['zones']} | {t['ingestion']['seconds']:.2f} | {f['tasks_span_s']} ({f['task_seconds_sum']}) "
            f"| {t['data_quality']['seconds']:.1f} | {retrain} | {t['store_bytes'] / 2**20:.1f} "
            f"| {f['peak_rss_mib']:.0f} | {t.get('load_average_1m_after', '')}, `{str(t.get('git_commit', ''))[:7]}` |"
        )
    lines += [
        "",
        "Per zone (the row's figure divided by its zones):",
        "",
        "| zones | ingestion s/zone | forecast task-seconds/zone | forecast span s/zone | data_quality s/zone "
        "| retraining s/zone | store MiB/zone |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in tiers:
        p = per_zone(t)
        cells = [p[k] for k in ("ingestion_s", "forecast_tasks_s", "forecast_span_s", "data_quality_s")]
        rest = [p["retraining_s"], p["store_mib"]]
        lines.append(
            f"| {t['zones']} | " + " | ".join("" if v is None else f"{v:.3f}" for v in cells) + " | "
            f"{'' if rest[0] is None else f'{rest[0]:.1f}'} | {rest[1]:.2f} |"
        )
    return lines


def capacity(tiers: list[dict], default_retrain_s: float | None = None, slots: int = 2) -> dict[str, dict]:
    """Arithmetic from the measurements: zones one 2-core worker serves within each deadline, from the
    per-zone cost of the largest tier that measured it; ``slots`` processes side by side (the cores)."""

    def last(key: str) -> tuple[int, float] | None:
        found = [(t["zones"], t["per_zone"][key]) for t in tiers if t["per_zone"].get(key)]
        return found[-1] if found else None

    costs = {
        "ingestion": (last("ingestion_s"), DEADLINES_S["ingestion"], 1),  # one cycle is one process's loop
        # `airflow dags test` runs the tasks one after another in one process: counted as one process, since an
        # executor's second slot would also pay each task instance's own process start, which is not measured here
        "forecast": (last("forecast_span_s"), DEADLINES_S["forecast"], 1),
        "retraining (smoke)": (last("retraining_s"), DEADLINES_S["retraining"], slots),
    }
    if default_retrain_s:
        costs["retraining (default)"] = ((0, default_retrain_s), DEADLINES_S["retraining"], slots)
    out = {}
    for name, (measured, deadline, parallel) in costs.items():
        if measured is None:
            continue
        zones, per_zone_s = measured
        per_worker = int(deadline / per_zone_s * parallel)
        out[name] = {
            "measured_at_zones": zones,
            "seconds_per_zone": per_zone_s,
            "deadline_s": deadline,
            "processes": parallel,
            "zones_per_worker": per_worker,
            "workers_for_46": -(-46 // per_worker),
            "workers_for_4000": -(-4000 // per_worker),
        }
    return out


def plot(tiers: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zones = [t["zones"] for t in tiers]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (
        ("ingestion_s", "ingestion cycle"),
        ("forecast_tasks_s", "forecast_generation (task-seconds)"),
        ("data_quality_s", "data_quality"),
        ("retraining_s", "retraining, smoke"),
    ):
        points = [(z, per_zone(t)[key]) for z, t in zip(zones, tiers, strict=True) if per_zone(t)[key] is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(zones, [str(z) for z in zones])
    ax.set_xlabel("zones")
    ax.set_ylabel("seconds per zone")
    ax.set_title("Cost per zone as zones grow (2 cores)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zones", default=",".join(map(str, TIERS)), help="the tiers, ascending")
    parser.add_argument("--retrain-zones", default="4,16,46", help="tiers whose zones are all retrained (smoke budget)")
    parser.add_argument("--backfill-days", type=int, default=70, help="days of history per zone before the run day")
    parser.add_argument("--home", type=Path, default=None, help="the run's folder (default: a fresh temporary one)")
    parser.add_argument("--output", default="scale", help="results/<output>.json|.md|.png")
    parser.add_argument("--append", action="store_true", help="keep results/<output>.json's other tiers")
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite results/<output>.md|.png from its .json (a run cut short)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.render_only:
        render(json.loads((RESULTS / f"{args.output}.json").read_text()), args.output)
        return
    tiers = [int(z) for z in args.zones.split(",") if z.strip()]
    retrain = {int(z) for z in args.retrain_zones.split(",") if z.strip()}
    root = (args.home or Path(tempfile.mkdtemp(prefix="eopt-bench-scale-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    _log(f"home {root}; tiers {tiers}; retraining at {sorted(retrain)}; load {os.getloadavg()[0]:.1f}")
    all_regions = scale_regions(max(tiers))
    results: dict[str, Any] = {
        "benchmark": "scale",
        "home": str(root),
        "run_time": str(RUN_TIME),
        "backfill_days": args.backfill_days,
        "training": TRAINING,
        "budget": "smoke",
        "deadlines_s": DEADLINES_S,
        "machine": describe_machine(),
        "tiers": [],
    }
    out_json = RESULTS / f"{args.output}.json"
    if args.append:  # keep the recorded tiers that this run does not measure again
        kept = [t for t in json.loads(out_json.read_text())["tiers"] if t["zones"] not in tiers]
        results["tiers"] = kept
    for n in tiers:
        _log(f"{n} zones (load {os.getloadavg()[0]:.1f})")
        tier = run_tier(root, all_regions[:n], args.backfill_days, n in retrain)
        tier["load_average_1m_after"] = round(os.getloadavg()[0], 2)
        tier["per_zone"] = per_zone(tier)
        tier["git_commit"] = results["machine"]["git_commit"]
        results["tiers"] = sorted([*results["tiers"], tier], key=lambda t: t["zones"])
        out_json.write_text(json.dumps(results, indent=2, default=str) + "\n")  # each tier kept as it ends
    render(results, args.output)


def render(results: dict, output: str) -> None:
    plot(results["tiers"], RESULTS / f"{output}.png")
    lines = [
        *table(results["tiers"]),
        "",
        f"Run time {results['run_time']}; {results['backfill_days']} days backfilled per zone; embedded SQLite store; "
        "smoke budget, 66-day training window, one thread per fit. Zones beyond the bundled four are the catalogue's "
        "ENTSO-E zones (real EICs and time zones), then synthetic ones, each replaying BE's or FR's real history "
        "shifted by its own number of days; their champions are registered copies of one trained template (see "
        "`benchmarks/scale.py`). Forecast: `airflow dags test forecast_generation` (every task in one process, so "
        "each champion is loaded once); data_quality: every check and the report in one process. "
        f"Picture: `{output}.png`.",
    ]
    write_results(RESULTS, output, results, "Scale: cost per zone at 4 to 200 zones", lines)


if __name__ == "__main__":
    main()
