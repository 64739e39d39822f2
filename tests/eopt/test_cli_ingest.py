"""`eopt ingest` (history backfill through the ingestion path) and `eopt sandbox`, as a user runs them."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request

import pytest
import sqlalchemy as sa

from tests.eopt.test_cli import EOPT, run_eopt


def test_ingest__backfills_a_window_in_chunks_and_a_rerun_adds_nothing(tmp_path, sandbox):
    env = {"EOPT_PRICING_SANDBOX_URL": sandbox.url}
    assert run_eopt(tmp_path, "db", "upgrade").returncode == 0
    first = run_eopt(
        tmp_path,
        "ingest",
        "--source",
        "entsoe",
        "--start",
        "2016-01-01",
        "--end",
        "2016-01-15",
        "--chunk-days",
        "7",
        extra_env=env,
    )
    assert first.returncode == 0, first.stderr
    assert "672 new and 0 updated hourly prices" in first.stdout  # 14 days x 24 h x BE, FR
    # and ENTSO-E's day-ahead load (A65) and wind + solar (A69) forecasts of the same hours
    assert "1344 new and 0 updated hourly exogenous values" in first.stdout
    assert "ingest" in first.stderr and "chunk" in first.stderr  # progress bar
    second = run_eopt(
        tmp_path, "ingest", "--source", "entsoe", "--start", "2016-01-01", "--end", "2016-01-15", extra_env=env
    )
    assert "0 new and 0 updated hourly prices" in second.stdout
    assert "0 new and 0 updated hourly exogenous values" in second.stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'prices.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM electricity_prices WHERE source = 'entsoe'")).scalar() == 672
        counts = conn.execute(
            sa.text("SELECT region, variable, count(*) FROM market_exogenous WHERE source = 'entsoe' GROUP BY 1, 2")
        ).all()
        assert sorted(counts) == [
            ("BE", "system_load_forecast", 336),
            ("BE", "wind_solar_forecast", 336),
            ("FR", "system_load_forecast", 336),
            ("FR", "wind_solar_forecast", 336),
        ]
        assert (
            conn.execute(sa.text("SELECT count(*) FROM api_health WHERE source = 'entsoe' AND status = 'ok'")).scalar()
            >= 4
        )


def test_ingest__a_failing_provider_exits_1_and_says_which_and_why(tmp_path, sandbox):
    from ingestion.sandbox.server import Fault

    sandbox.set_faults({"entsoe": Fault("500")})
    run_eopt(tmp_path, "db", "upgrade")
    result = run_eopt(
        tmp_path,
        "ingest",
        "--source",
        "entsoe",
        "--source",
        "iea",
        "--start",
        "2016-01-01",
        "--end",
        "2016-01-02",
        extra_env={"EOPT_PRICING_SANDBOX_URL": sandbox.url},
    )
    assert result.returncode == 1
    assert re.search(
        # per region its prices (A44), load forecast (A65) and wind and solar forecast (A69)
        r"entsoe failed in 6 chunk/region\(s\), first: \[2016-01-01\] BE: entsoe: gave up after 4 attempts: HTTP 500",
        result.stderr,
    )
    assert "72 new" in result.stdout  # iea's NP, BE and FR rows were still stored


def test_ingest__unknown_source_is_refused(tmp_path):
    result = run_eopt(tmp_path, "ingest", "--source", "bloomberg", "--start", "2016-01-01", "--end", "2016-01-02")
    assert result.returncode == 2 and "unknown source bloomberg" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sandbox_command__serves_until_stopped_and_reports_faults(tmp_path):
    port = _free_port()
    process = subprocess.Popen(
        [str(EOPT), "sandbox", "--port", str(port), "--fault", "iea=500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/stats", timeout=1) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/iea/rte/price/hourly/FRA/timeseries?from=2016-01-01&to=2016-01-01"
            )
        assert caught.value.code == 500
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert f"export EOPT_PRICING_SANDBOX_URL=http://127.0.0.1:{port}" in out


def test_sandbox_command__refuses_an_unknown_fault(tmp_path):
    result = run_eopt(tmp_path, "sandbox", "--fault", "entsoe=explode")
    assert result.returncode == 2 and "unknown sandbox fault 'explode'" in result.stderr
