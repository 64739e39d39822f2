"""The one settings object."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.regions import BUNDLED_CATALOGUE, CatalogueError, load_catalogue
from core.settings import FLAT_NAMES, GROUPS, PROJECT_ROOT, Settings, SettingsError


def test_defaults__are_the_embedded_stores_under_eopt_home(tmp_path):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    assert settings.stores.home == tmp_path.resolve()
    assert settings.stores.database_url == f"sqlite:///{tmp_path.resolve() / 'prices.db'}"
    assert settings.stores.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert settings.stores.mlflow_registry_uri == settings.stores.mlflow_tracking_uri
    assert settings.stores.redis_url is None  # in-process cache
    assert settings.regions == ("NP", "PJM", "BE", "FR")
    assert settings.stores.market_data_dir == PROJECT_ROOT / "data" / "markets"
    assert settings.require_services is False


def test_home_defaults_to_dot_eopt_in_the_project():
    assert Settings.from_env({}).stores.home == PROJECT_ROOT / ".eopt"


def test_environment__overrides_each_default():
    settings = Settings.from_env(
        {
            "EOPT_DATABASE_URL": "postgresql://eopt@db:5432/prices",
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "REDIS_URL": "redis://cache:6379/0",
            "EOPT_REGIONS": "np, fr",
            "EOPT_CACHE_TTL_PRICES_S": "60",
            "EOPT_REQUIRE_SERVICES": "1",
        }
    )
    assert settings.stores.database_url == "postgresql://eopt@db:5432/prices"
    assert settings.stores.mlflow_registry_uri == "http://mlflow:5000"
    assert settings.stores.redis_url == "redis://cache:6379/0"
    assert settings.regions == ("NP", "FR")
    assert settings.stores.cache_ttl_prices_s == 60
    assert settings.require_services is True


def test_with_overrides__returns_a_changed_copy(tmp_path):
    base = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    changed = base.with_overrides(redis_url="redis://x:6379/1")
    assert changed.stores.redis_url == "redis://x:6379/1" and base.stores.redis_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EOPT_CACHE_TTL_PRICES_S": "soon"}, "EOPT_CACHE_TTL_PRICES_S='soon' is not a whole number"),
        ({"EOPT_CACHE_TTL_FORECASTS_S": "-5"}, "EOPT_CACHE_TTL_FORECASTS_S='-5' must be positive"),
        ({"EOPT_REGIONS": "NP,XX"}, "EOPT_REGIONS names XX, not in the region catalogue"),
        ({"EOPT_REQUIRE_SERVICES": "maybe"}, "EOPT_REQUIRE_SERVICES='maybe' is not a switch"),
    ],
)
def test_malformed_values__name_the_variable(env, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for path in PROJECT_ROOT.glob("*/**/*.py"):
        relative = path.relative_to(PROJECT_ROOT)
        if relative.parts[0] in {".venv", "tests", ".eopt", "build"} or relative == Path("core/settings.py"):
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            readers.append(str(relative))
    assert readers == []


def test_quality_settings__default_to_the_documented_limits_and_read_their_variables(tmp_path):
    default = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    assert (default.quality.window_days, default.quality.max_gap_h, default.quality.price_outlier_z) == (7, 1, 15.0)
    assert (
        default.quality.drift_column_threshold,
        default.quality.drift_share_threshold,
        default.quality.retrain_on_drift,
    ) == (0.75, 0.5, False)
    assert (default.alerts.enable_slack, default.alerts.email_to, default.alerts.metrics_port) == (False, (), 9108)
    assert default.quality_dir == tmp_path.resolve() / "quality"
    changed = Settings.from_env(
        {
            "EOPT_HOME": str(tmp_path),
            "EOPT_DRIFT_SHARE_THRESHOLD": "0.3",
            "EOPT_RETRAIN_ON_DRIFT": "1",
            "EOPT_ALERT_EMAIL_TO": "a@example.com, b@example.com",
            "EOPT_ACCURACY_MAPE_CRITICAL": "12.5",
            "EOPT_METRICS_PORT": "9200",
        }
    )
    assert (changed.quality.drift_share_threshold, changed.quality.retrain_on_drift) == (0.3, True)
    assert changed.alerts.email_to == ("a@example.com", "b@example.com")
    assert (changed.quality.accuracy_mape_critical, changed.alerts.metrics_port) == (12.5, 9200)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EOPT_DRIFT_SHARE_THRESHOLD": "1.5"}, "EOPT_DRIFT_SHARE_THRESHOLD='1.5' must be between 0.0 and 1.0"),
        ({"EOPT_PRICE_OUTLIER_Z": "0.5"}, "EOPT_PRICE_OUTLIER_Z='0.5' must be at least 1.0"),
        ({"EOPT_RETRAIN_ON_DRIFT": "maybe"}, "EOPT_RETRAIN_ON_DRIFT='maybe' is not a switch"),
        ({"EOPT_ACCURACY_RMAE_FACTOR": "x"}, "EOPT_ACCURACY_RMAE_FACTOR='x' is not a number"),
    ],
)
def test_quality_settings__refuse_malformed_values_naming_the_variable(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"EOPT_TEST_DAYS": "abc"},
            "EOPT_TEST_DAYS='abc' is not a whole number; set it to a positive integer such as 56",
        ),
        ({"EOPT_TRAINING_DEVICE": "gpu"}, "EOPT_TRAINING_DEVICE='gpu' is not a device; use auto, cpu or cuda"),
        ({"EOPT_INGESTION_SOURCES": "nrel,acme"}, "EOPT_INGESTION_SOURCES names unknown source(s) acme"),
        (
            {"EOPT_MODEL_MAPE_THRESHOLDS": "PJM=20,XX=3"},
            "EOPT_MODEL_MAPE_THRESHOLDS names XX, not in the region catalogue",
        ),
        ({"EOPT_AIRFLOW_TASK_RETRIES": "-1"}, "EOPT_AIRFLOW_TASK_RETRIES='-1' must be 0 or more"),
        ({"EOPT_METRICS_PORT": "0"}, "EOPT_METRICS_PORT='0' must be positive"),
    ],
)
def test_a_bad_value_of_a_nested_field__names_its_variable_and_what_to_set(env, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert message in str(caught.value)


def test_each_group_reads_its_variables_and_derives_defaults_from_eopt_home(tmp_path):
    settings = Settings.from_env(
        {
            "EOPT_HOME": str(tmp_path),
            "EOPT_TEST_DAYS": "28",
            "EOPT_TRAINING_THREADS": "0",
            "EOPT_TUNING_TRIALS": "3",
            "EOPT_PRICING_SANDBOX_URL": "http://127.0.0.1:8765/",
            "EOPT_NREL_URL": "http://nrel.test",
            "EOPT_FLATPEAK_ACCOUNT_ID": "acct",
            "EOPT_NREL_API_KEY": "k",
            "EOPT_MODEL_MAPE_THRESHOLDS": "",
            "EOPT_AIRFLOW_DEADLINE_ALERTS": "false",
            "EOPT_LOG_LEVEL": "debug",
        }
    )
    home = tmp_path.resolve()
    assert settings.stores.optuna_storage == f"sqlite:///{home / 'optuna.db'}"
    assert settings.stores.mlflow_artifact_root == home / "mlartifacts" and settings.airflow.home == home / "airflow"
    assert (settings.training.test_days, settings.training.threads, settings.training.tuning_trials) == (28, 0, 3)
    assert settings.training.model_mape_thresholds == {} and settings.mape_threshold("NP") == 10.0
    assert settings.providers.sandbox_url == "http://127.0.0.1:8765" and settings.providers.urls == {
        "nrel": "http://nrel.test"
    }
    assert settings.providers.logins == {"flatpeak": "acct"} and settings.providers.api_keys == {
        "nrel": "k",
        "openei": "k",
    }
    assert settings.airflow.deadline_alerts is False and settings.log_level == "DEBUG"
    assert Settings.from_env({}).training.model_mape_thresholds == {}  # the thresholds are the catalogue's


def test_from_env_with_a_mapping__ignores_the_process_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EOPT_HOME", str(tmp_path))
    monkeypatch.setenv("EOPT_TEST_DAYS", "nonsense")
    assert Settings.from_env({}).stores.home == PROJECT_ROOT / ".eopt"
    with pytest.raises(SettingsError, match="EOPT_TEST_DAYS"):
        Settings.from_env()


def test_with_overrides__takes_the_flat_names_and_checks_values(tmp_path):
    base = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    changed = base.with_overrides(
        enable_slack_alerts=True,
        price_ingestion_min_records=5,
        model_mape_threshold=12.0,
        model_mape_thresholds={},
        database_url="postgresql://db/x",
    )
    assert (changed.alerts.enable_slack, changed.providers.min_records) == (True, 5)
    assert changed.mape_threshold("NP") == 12.0 and changed.stores.database_url == "postgresql://db/x"
    assert base.alerts.enable_slack is False and base.stores.home == changed.stores.home
    with pytest.raises(SettingsError, match="EOPT_PRICE_INGESTION_MIN_RECORDS=0 must be positive"):
        base.with_overrides(price_ingestion_min_records=0)
    with pytest.raises(SettingsError, match="unknown setting 'no_such_setting'"):
        base.with_overrides(no_such_setting=1)


def test_secrets__never_appear_in_repr_or_str_of_the_settings(tmp_path):
    secrets = {
        "EOPT_FLATPEAK_ACCOUNT_ID": "acct-s3cret1",
        "EOPT_FLATPEAK_API_KEY": "key-s3cret2",
        "EOPT_NREL_API_KEY": "key-s3cret3",
        "EOPT_ENTSOE_TOKEN": "token-s3cret4",
        "EOPT_DATABASE_URL": "postgresql://eopt:pw-s3cret5@db/prices",
        "REDIS_URL": "redis://:pw-s3cret6@cache:6379/0",
        "EOPT_OPTUNA_STORAGE": "postgresql://eopt:pw-s3cret7@db/optuna",
    }
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path), **secrets})
    shown = repr(settings) + str(settings) + repr(settings.providers) + str(settings.stores)
    assert [name for name, value in secrets.items() if value.split("@")[0].split(":")[-1] in shown] == []
    assert settings.providers.api_keys["entsoe"] == "token-s3cret4"  # the code that needs a secret gets it


def test_the_settings_module__does_not_write_the_process_environment(monkeypatch, tmp_path):
    import os

    before = dict(os.environ)
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    settings.airflow_environment(EXTRA="1")
    settings.with_overrides(redis_url="redis://x:6379/1")
    assert dict(os.environ) == before
    assert "environ[" not in (PROJECT_ROOT / "core" / "settings.py").read_text()


def test_generated_reference_and_env_example__are_fresh():
    from core.settings_reference import render_env_example, render_reference, stale

    assert stale() == [], "run `eopt settings reference` and commit docs/configuration.md and .env.example"
    reference = render_reference()
    env_example = render_env_example("")
    for group, model in GROUPS.items():
        for name, field in model.model_fields.items():
            if group is None and name in GROUPS:
                continue
            assert field.description, f"{group}.{name} has no description"
            assert f"`{field.validation_alias}`" in reference and f"#{field.validation_alias}=" in env_example


def test_flat_names__cover_every_setting_once():
    assert len(FLAT_NAMES) == len(set(FLAT_NAMES.values()))
    assert FLAT_NAMES["database_url"] == ("stores", "database_url") and FLAT_NAMES["airflow_home"] == (
        "airflow",
        "home",
    )
    assert FLAT_NAMES["regions"] == (None, "regions")


def test_no_code_reads_the_flat_attributes_of_before_the_groups():
    """``scripts/settings_codemod.py`` rewrites ``settings.database_url`` into ``settings.stores.database_url``;
    after a merge, run it (``python scripts/settings_codemod.py``) when this fails."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("settings_codemod", PROJECT_ROOT / "scripts" / "settings_codemod.py")
    codemod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(codemod)
    sources = [path.read_text() for path in codemod.files([])]
    factories = codemod.settings_factories(sources)
    stale = [
        str(path.relative_to(PROJECT_ROOT))
        for path, text in zip(codemod.files([]), sources, strict=True)
        if codemod.rewrite(text, factories) != text
    ]
    assert stale == []
    assert (
        codemod.rewrite("x = settings.home\ny = config.regions\n") == "x = settings.stores.home\ny = config.regions\n"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("localhost:6379", "is not a Redis URL (its scheme is not redis, rediss or unix)"),
        ("http://127.0.0.1:6379/0", "is not a Redis URL"),
        ("redis://:s3cretpw@127.0.0.1:notaport/0", "has a port that is not a number from 0 to 65535"),
        ("redis://:s3cretpw@127.0.0.1:6379/cache", "needs a host and, after it, a database number"),
    ],
)
def test_redis_url__a_malformed_one_names_the_variable_and_never_repeats_the_value(url, problem):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"REDIS_URL": url})
    message = str(caught.value)
    assert message.startswith("REDIS_URL ") and problem in message
    assert "set it to e.g. redis://127.0.0.1:6379/0" in message
    assert url not in message and "s3cretpw" not in message


def test_redis_url__the_forms_the_client_opens_are_kept_and_empty_means_the_in_process_cache():
    for url in ("redis://127.0.0.1:6379/0", "rediss://:pw@cache.example.com:6380/2", "unix:///run/redis.sock"):
        assert Settings.from_env({"REDIS_URL": url}).stores.redis_url == url
    assert Settings.from_env({"REDIS_URL": ""}).stores.redis_url is None


def test_mape_threshold__is_the_catalogue_entrys_then_the_catalogues_default_then_the_setting(tmp_path):
    bundled = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    assert {r: bundled.mape_threshold(r) for r in ("NP", "PJM", "BE", "FR")} == {
        "NP": 10.0,  # states none: EOPT_MODEL_MAPE_THRESHOLD
        "PJM": 20.0,
        "BE": 25.0,
        "FR": 25.0,
    }
    text = BUNDLED_CATALOGUE.read_text().replace("version = 1\n", "version = 1\nmape_threshold = 15.0\n", 1)
    own = tmp_path / "regions.toml"
    own.write_text(
        text + '\n[regions.ZZ]\nname = "An own zone"\nzone = "Europe/Amsterdam"\ncurrency = "EUR"\n'
        'holidays = { country = "NL" }\nexogenous = ["load_forecast"]\nmape_threshold = 30\n'
    )
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path), "EOPT_REGION_CATALOGUE": str(own)})
    assert {r: settings.mape_threshold(r) for r in ("NP", "PJM", "ZZ")} == {"NP": 15.0, "PJM": 20.0, "ZZ": 30.0}
    # the override setting still wins, per region; the plain threshold applies where nothing states one
    overridden = settings.with_overrides(model_mape_thresholds={"PJM": 11.0}, model_mape_threshold=9.0)
    assert {r: overridden.mape_threshold(r) for r in ("NP", "PJM", "ZZ")} == {"NP": 15.0, "PJM": 11.0, "ZZ": 30.0}
    plain = Settings.from_env({"EOPT_HOME": str(tmp_path), "EOPT_MODEL_MAPE_THRESHOLD": "8"})
    assert (plain.mape_threshold("NP"), plain.mape_threshold("BE")) == (8.0, 25.0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("mape_threshold = 0", "field mape_threshold: 0 is not a percentage above 0"),
        ('mape_threshold = "high"', "field mape_threshold: 'high' is not a percentage above 0"),
    ],
)
def test_mape_threshold__a_bad_catalogue_default_names_the_file_and_field(tmp_path, line, message):
    own = tmp_path / "regions.toml"
    own.write_text(BUNDLED_CATALOGUE.read_text().replace("version = 1\n", f"version = 1\n{line}\n", 1))
    with pytest.raises(CatalogueError, match=re.escape(f"{own}: {message}")):
        load_catalogue(own)
    entry = BUNDLED_CATALOGUE.read_text().replace("mape_threshold = 20.0", "mape_threshold = -5", 1)
    own.write_text(entry)
    with pytest.raises(CatalogueError, match=re.escape(f"{own}: region PJM, field mape_threshold")):
        load_catalogue(own)
