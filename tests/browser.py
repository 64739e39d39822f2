"""Headless Chromium for the tests that look at a page as a person would (the UIs, the docs site).

Selenium drives Debian's ``chromium`` through ``chromedriver`` (``scripts/ensure-services.sh``
installs both when missing). Without them a test is skipped with the reason, or fails when
``EOPT_REQUIRE_SERVICES=1``. Screenshots go to ``.eopt/screenshots/`` of the checkout.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings

SCREENSHOTS = Path(__file__).resolve().parents[1] / ".eopt" / "screenshots"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT_S = 60


def require_chromium() -> None:
    """Skip (or fail under ``EOPT_REQUIRE_SERVICES=1``) when chromium or chromedriver is missing."""
    if CHROMIUM and CHROMEDRIVER:
        return
    message = "chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)"
    if Settings.from_env().require_services:
        pytest.fail(f"{message} (EOPT_REQUIRE_SERVICES=1 makes this a failure)", pytrace=False)
    pytest.skip(message)


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver at 1440x1000, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, *texts: str) -> str:
    """The page's visible text once it holds every one of ``texts`` (pages may render client-side)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, WAIT_S).until(lambda d: all(t in d.find_element(By.TAG_NAME, "body").text for t in texts))
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"{driver.current_url} never showed {texts}; it shows:\n{body[:2000]}") from None
    return driver.find_element(By.TAG_NAME, "body").text


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not write {path}"
    assert path.stat().st_size > 10_000  # a rendered page, not an empty canvas
    return path
