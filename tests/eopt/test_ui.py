"""The two UIs a person uses, driven by headless Chromium against what `eopt up` (`make up`) starts.

NP is retrained once (smoke budget, short window) into a temporary ``EOPT_HOME`` and its version
promoted to Production (alias ``champion``), then `up` starts airflow standalone, the MLflow
server and the sandbox on free ports over the same stores. Selenium drives Debian's ``chromium``
through ``chromedriver`` (``tests/browser.py``; ``scripts/ensure-services.sh`` installs both when missing):

- Airflow: the login form refuses a wrong password, accepts the printed one, and the Dags page
  lists the four pipelines;
- MLflow: the registered-models page lists the NP model with its ``champion`` alias, and the
  version page shows stage Production.

Screenshots of each page go to ``.eopt/screenshots/`` of the checkout, to look at afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from core.settings import Settings
from eopt.services import ADMIN_USER, Ports, down, up
from registry.models import registered_model_name
from registry.promotion import promote_version
from storage.promotions import PromotionStore
from tests.browser import WAIT_S, headless_chromium, require_chromium, screenshot, wait_for_text
from tests.eopt.test_services import DAGS, free_ports
from tests.registry_fixtures import REGION, trained_np

pytestmark = pytest.mark.e2e


@dataclass
class Platform:
    settings: Settings
    ports: Ports
    password: str
    version: str

    def airflow(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports.airflow}{path}"

    def mlflow(self, fragment: str) -> str:
        return f"http://127.0.0.1:{self.ports.mlflow}/#{fragment}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    require_chromium()
    trained = trained_np(tmp_path_factory, "ui")
    version = str(trained.outcome.candidate.version)
    promote_version(
        trained.client,
        PromotionStore(trained.store.engine),
        REGION,
        version,
        reason="UI test: the version the registry page must show in Production",
        actor="test_ui",
    )
    ports = Ports(*free_ports(3))
    try:
        up(trained.settings, ports, lambda line: None, timeout_s=240)
        password = (trained.settings.airflow.home / "admin-password").read_text().strip()
        yield Platform(trained.settings, ports, password, version)
    finally:
        down(trained.settings, lambda line: None)


@pytest.fixture
def browser() -> Iterator[Any]:
    with headless_chromium() as driver:
        yield driver


def dismiss_mlflow_overlays(driver) -> None:
    """Close the first-visit "new Model Registry UI" dialog and the assistant side panel, if shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Try it now']"):
        button.click()
    WebDriverWait(driver, WAIT_S).until(
        lambda d: (
            not any(b.is_displayed() for b in d.find_elements(By.XPATH, "//button[normalize-space()='Try it now']"))
        )
    )
    for button in driver.find_elements(By.XPATH, "//button[@aria-label='Close']"):  # the assistant panel
        if button.is_displayed():
            button.click()


def sign_in(driver, platform: Platform, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(platform.airflow("/"))
    WebDriverWait(driver, WAIT_S).until(expected_conditions.url_contains("/auth/login"))
    WebDriverWait(driver, WAIT_S).until(expected_conditions.presence_of_element_located((By.NAME, "username")))
    driver.find_element(By.NAME, "username").send_keys(ADMIN_USER)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()


def test_airflow_ui__refuses_a_wrong_password_then_lists_the_four_dags_for_the_printed_one(platform, browser):
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    sign_in(browser, platform, "not-the-password")
    wait_for_text(browser, "Invalid credentials")
    assert "/auth/login" in browser.current_url

    sign_in(browser, platform, platform.password)
    WebDriverWait(browser, WAIT_S).until(expected_conditions.url_to_be(platform.airflow("/")))
    wait_for_text(browser, "Health", "MetaDatabase", "Scheduler")
    screenshot(browser, "airflow-home")

    browser.get(platform.airflow("/dags"))
    text = wait_for_text(browser, f"{len(DAGS)} Dags", *sorted(DAGS))
    assert {"0 6 * * *", "*/15 * * * *", "0 * * * *", "0 2 * * 0"} <= set(text.splitlines())  # their schedules
    screenshot(browser, "airflow-dags")


def test_mlflow_ui__shows_the_registered_model_and_its_production_champion_version(platform, browser):
    name = registered_model_name(REGION)
    browser.get(platform.mlflow("/models"))
    wait_for_text(browser, "Registered Models", name, f"Version {platform.version}", "champion")
    dismiss_mlflow_overlays(browser)
    screenshot(browser, "mlflow-models")

    browser.get(platform.mlflow(f"/models/{name}/versions/{platform.version}"))
    text = wait_for_text(browser, f"Version {platform.version}", "Production", "champion")
    lines = text.splitlines()
    stage = lines.index(next(line for line in lines if line.startswith("Stage")))
    assert "Production" in lines[stage : stage + 3]  # the stage field itself reads Production
    assert "promoted manually" in text  # the registry tags the product wrote
    dismiss_mlflow_overlays(browser)
    screenshot(browser, "mlflow-production-version")
