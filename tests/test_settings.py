"""The one settings object."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT, Settings, SettingsError


def test_defaults__are_the_embedded_stores_under_eopt_home(tmp_path):
    settings = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    assert settings.home == tmp_path.resolve()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'prices.db'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert settings.mlflow_registry_uri == settings.mlflow_tracking_uri
    assert settings.redis_url is None  # in-process cache
    assert settings.regions == ("NP", "PJM", "BE", "FR")
    assert settings.market_data_dir == PROJECT_ROOT / "data" / "markets"
    assert settings.require_services is False


def test_home_defaults_to_dot_eopt_in_the_project():
    assert Settings.from_env({}).home == PROJECT_ROOT / ".eopt"


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
    assert settings.database_url == "postgresql://eopt@db:5432/prices"
    assert settings.mlflow_registry_uri == "http://mlflow:5000"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.regions == ("NP", "FR")
    assert settings.cache_ttl_prices_s == 60
    assert settings.require_services is True


def test_with_overrides__returns_a_changed_copy(tmp_path):
    base = Settings.from_env({"EOPT_HOME": str(tmp_path)})
    changed = base.with_overrides(redis_url="redis://x:6379/1")
    assert changed.redis_url == "redis://x:6379/1" and base.redis_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EOPT_CACHE_TTL_PRICES_S": "soon"}, "EOPT_CACHE_TTL_PRICES_S='soon' is not a whole number"),
        ({"EOPT_CACHE_TTL_FORECASTS_S": "-5"}, "EOPT_CACHE_TTL_FORECASTS_S='-5' must be positive"),
        ({"EOPT_REGIONS": "NP,XX"}, "EOPT_REGIONS names unknown region(s) XX"),
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
    assert (default.quality_window_days, default.quality_max_gap_h, default.price_outlier_z) == (7, 1, 15.0)
    assert (default.drift_column_threshold, default.drift_share_threshold, default.retrain_on_drift) == (0.75, 0.5, False)
    assert (default.enable_slack_alerts, default.alert_email_to, default.metrics_port) == (False, (), 9108)
    assert default.quality_dir == tmp_path.resolve() / "quality"
    changed = Settings.from_env({"EOPT_HOME": str(tmp_path), "EOPT_DRIFT_SHARE_THRESHOLD": "0.3",
                                 "EOPT_RETRAIN_ON_DRIFT": "1", "EOPT_ALERT_EMAIL_TO": "a@example.com, b@example.com",
                                 "EOPT_ACCURACY_MAPE_CRITICAL": "12.5", "EOPT_METRICS_PORT": "9200"})
    assert (changed.drift_share_threshold, changed.retrain_on_drift) == (0.3, True)
    assert changed.alert_email_to == ("a@example.com", "b@example.com")
    assert (changed.accuracy_mape_critical, changed.metrics_port) == (12.5, 9200)


@pytest.mark.parametrize(("env", "message"), [
    ({"EOPT_DRIFT_SHARE_THRESHOLD": "1.5"}, "EOPT_DRIFT_SHARE_THRESHOLD='1.5' must be between 0.0 and 1.0"),
    ({"EOPT_PRICE_OUTLIER_Z": "0.5"}, "EOPT_PRICE_OUTLIER_Z='0.5' must be at least 1.0"),
    ({"EOPT_RETRAIN_ON_DRIFT": "maybe"}, "EOPT_RETRAIN_ON_DRIFT='maybe' is not a switch"),
    ({"EOPT_ACCURACY_RMAE_FACTOR": "x"}, "EOPT_ACCURACY_RMAE_FACTOR='x' is not a number"),
])
def test_quality_settings__refuse_malformed_values_naming_the_variable(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Settings.from_env(env)
