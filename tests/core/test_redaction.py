"""Registered credentials are masked in texts, payloads and log lines, in the forms they travel in."""

from __future__ import annotations

import base64
import logging
import tomllib
from pathlib import Path

from core.redaction import (
    PRODUCT_PACKAGES,
    REDACTING_FILTER,
    install_log_redaction,
    redact,
    redact_bytes,
    register_basic_credentials,
    register_secret,
)


def test_redact__masks_the_secret_its_url_quoted_form_and_a_basic_header():
    register_secret("tok/en+with=signs")
    register_basic_credentials("acc_redaction_test", "sk_redaction_test")
    basic = base64.b64encode(b"acc_redaction_test:sk_redaction_test").decode()
    text = (
        "GET /api?securityToken=tok%2Fen%2Bwith%3Dsigns&x=1 tok/en+with=signs "
        f"Authorization: Basic {basic} account acc_redaction_test key sk_redaction_test"
    )
    assert redact(text) == "GET /api?securityToken=***&x=1 *** Authorization: Basic *** account *** key ***"
    assert redact_bytes(text.encode()) == redact(text).encode()


def test_redact__leaves_text_without_a_secret_and_ignores_values_too_short_to_mask():
    register_secret("abc", None, "")
    assert redact("abc: a price of 42.0 EUR/MWh") == "abc: a price of 42.0 EUR/MWh"


def test_log_filter__masks_arguments_and_tracebacks_of_the_http_libraries_loggers(caplog):
    register_secret("log-secret-4711")
    install_log_redaction()
    assert REDACTING_FILTER in logging.getLogger("urllib3.connectionpool").filters
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug('%s "GET %s HTTP/1.1" 200', "http://h", "/api?t=log-secret-4711")
    try:
        raise RuntimeError("refused log-secret-4711")
    except RuntimeError:
        logging.getLogger("ingestion.http").exception("failed for %s", "log-secret-4711")
    assert 'http://h "GET /api?t=*** HTTP/1.1" 200' in caplog.text
    assert "failed for ***" in caplog.text and "RuntimeError: refused ***" in caplog.text
    assert "log-secret-4711" not in caplog.text


def test_log_redaction__covers_every_package_of_the_product():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    packages = {*pyproject["tool"]["importlinter"]["root_packages"], "dags"}
    assert set(PRODUCT_PACKAGES) == packages  # a new package's loggers get the filter too
