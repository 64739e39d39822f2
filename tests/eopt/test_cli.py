"""The `eopt` console script, run as a user runs it (a subprocess with its own environment)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EOPT = Path(sys.executable).parent / "eopt"


def run_eopt(home: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOPT_", "MLFLOW_", "REDIS_URL"))}
    env.update({"EOPT_HOME": str(home), "EOPT_LOG_LEVEL": "WARNING", **(extra_env or {})})
    return subprocess.run([str(EOPT), *args], capture_output=True, text=True, env=env, timeout=300)


def new_rows(stdout: str) -> int:
    match = re.search(r"total new rows: (\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


def test_load_history__a_window_loads_once_and_a_rerun_adds_nothing(tmp_path):
    assert run_eopt(tmp_path, "db", "upgrade").returncode == 0
    first = run_eopt(tmp_path, "load-history", "--region", "NP", "--start", "2018-12-01", "--end", "2018-12-08")
    assert first.returncode == 0, first.stderr
    assert new_rows(first.stdout) == 7 * 24
    assert "NP history" in first.stderr  # the progress bar

    second = run_eopt(tmp_path, "load-history", "--region", "NP", "--start", "2018-12-01", "--end", "2018-12-08")
    assert new_rows(second.stdout) == 0

    shown = run_eopt(tmp_path, "prices", "--region", "np", "--last", "48h")
    assert shown.returncode == 0, shown.stderr
    assert "NP: 48 price(s) in the 48h up to 2018-12-07T23:00:00+00:00" in shown.stdout
    assert len([line for line in shown.stdout.splitlines() if "epf-history" in line]) == 48


def test_load_history__all_four_markets_in_full_into_the_embedded_store(tmp_path):
    """The `make demo` acceptance: 52,416 rows per market, a second run reports 0 new rows."""
    run_eopt(tmp_path, "db", "upgrade")
    first = run_eopt(tmp_path, "load-history")
    assert first.returncode == 0, first.stderr
    for region in ("NP", "PJM", "BE", "FR"):
        assert re.search(rf"^\s*{region}\s+52416\s+52416\s+0\s+0\s", first.stdout, re.M), first.stdout
    assert new_rows(first.stdout) == 4 * 52_416
    assert (tmp_path / "prices.db").is_file()

    second = run_eopt(tmp_path, "load-history")
    assert new_rows(second.stdout) == 0


def test_unknown_region__exits_2_with_the_known_regions(tmp_path):
    result = run_eopt(tmp_path, "load-history", "--region", "XX")
    assert result.returncode == 2
    assert "unknown region XX; the region catalogue" in result.stderr and "holds NP, PJM, BE, FR, " in result.stderr


def test_unreachable_database__exits_1_with_a_clear_message(tmp_path):
    result = run_eopt(
        tmp_path, "db", "upgrade", extra_env={"EOPT_DATABASE_URL": "postgresql://eopt:pw123@127.0.0.1:1/x"}
    )
    assert result.returncode == 1
    assert "error: cannot reach the store at postgresql+psycopg2://eopt:***@127.0.0.1:1/x" in result.stderr
    assert "pw123" not in result.stderr and "Traceback" not in result.stderr


def test_store_not_migrated__tells_the_user_to_upgrade(tmp_path):
    result = run_eopt(tmp_path, "prices", "--region", "NP")
    assert result.returncode == 1 and "run `eopt db upgrade`" in result.stderr


def test_missing_market_file__names_it(tmp_path):
    data = tmp_path / "markets"
    data.mkdir()
    run_eopt(tmp_path, "db", "upgrade")
    result = run_eopt(tmp_path, "load-history", "--region", "FR", extra_env={"EOPT_MARKET_DATA_DIR": str(data)})
    assert result.returncode == 1
    assert f"market file for FR not found at {data / 'FR.csv'}" in result.stderr


def test_bad_setting__exits_2_naming_the_variable(tmp_path):
    result = run_eopt(tmp_path, "prices", "--region", "NP", extra_env={"EOPT_UPSERT_BATCH_ROWS": "lots"})
    assert result.returncode == 2 and "EOPT_UPSERT_BATCH_ROWS='lots' is not a whole number" in result.stderr


def test_bad_window__is_refused(tmp_path):
    run_eopt(tmp_path, "db", "upgrade")
    assert "is not a duration" in run_eopt(tmp_path, "prices", "--region", "NP", "--last", "soon").stderr
    result = run_eopt(tmp_path, "load-history", "--region", "NP", "--start", "2018-02-01", "--end", "2018-01-01")
    assert result.returncode == 2 and "is not before --end" in result.stderr


@pytest.mark.integration
def test_load_history__into_postgresql(tmp_path, postgres_url):
    env = {"EOPT_DATABASE_URL": postgres_url}
    upgraded = run_eopt(tmp_path, "db", "upgrade", extra_env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "TimescaleDB extension not available: plain PostgreSQL tables" in upgraded.stdout
    first = run_eopt(
        tmp_path, "load-history", "--region", "PJM", "--start", "2018-06-01", "--end", "2018-07-01", extra_env=env
    )
    assert new_rows(first.stdout) == 30 * 24
    assert (
        new_rows(
            run_eopt(
                tmp_path,
                "load-history",
                "--region",
                "PJM",
                "--start",
                "2018-06-01",
                "--end",
                "2018-07-01",
                extra_env=env,
            ).stdout
        )
        == 0
    )


@pytest.mark.integration
def test_load_history__refreshes_redis(tmp_path, redis_url):
    import redis

    run_eopt(tmp_path, "db", "upgrade")
    result = run_eopt(
        tmp_path, "load-history", "--region", "BE", "--start", "2016-12-30", extra_env={"REDIS_URL": redis_url}
    )
    assert result.returncode == 0, result.stderr
    assert redis.Redis.from_url(redis_url).ttl("eopt:prices:latest:BE") > 0


def test_eopt_is_installed_as_a_console_script():
    assert shutil.which("eopt", path=str(EOPT.parent)) is not None


def test_a_malformed_setting__exits_2_naming_it_without_a_traceback_or_its_secret(tmp_path):
    result = run_eopt(tmp_path, "prices", "--region", "NP", extra_env={"REDIS_URL": "redis://:s3cretpw@localhost:x/0"})
    assert result.returncode == 2
    assert "REDIS_URL has a port that is not a number" in result.stderr
    assert "Traceback" not in result.stderr and "s3cretpw" not in result.stdout + result.stderr


def test_prices__a_window_past_a_century_exits_2_naming_the_option(tmp_path):
    for last in ("99999999999999999w", "5300w"):
        result = run_eopt(tmp_path, "prices", "--region", "NP", "--last", last)
        assert result.returncode == 2, result.stderr
        assert f"Invalid value for --last: {last!r} is longer than 100 years" in result.stderr
        assert "Traceback" not in result.stderr


def test_eopt_airflow__runs_airflow_on_the_product_home_without_importing_the_rest_of_the_cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOPT_", "AIRFLOW", "MLFLOW_"))}
    env.update({"EOPT_HOME": str(tmp_path), "EOPT_LOG_LEVEL": "WARNING"})
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "eopt", "airflow", "config", "get-value", "core", "dags_folder"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(Path(__file__).resolve().parents[2] / "dags")
    # -X importtime lists what eopt imported before it became airflow (airflow itself runs without it)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert {"core.settings", "eopt.airflow_home"} <= imported
    assert not {"eopt.cli", "pandas", "sqlalchemy"} & imported


def test_eopt_airflow__a_malformed_setting_exits_2_naming_it(tmp_path):
    result = run_eopt(tmp_path, "airflow", "version", extra_env={"EOPT_UPSERT_BATCH_ROWS": "lots"})
    assert result.returncode == 2 and "EOPT_UPSERT_BATCH_ROWS='lots' is not a whole number" in result.stderr
