"""The credentials the sandbox accepts by default; the embedded connections use the same values.

A module of its own so that the provider registry (``ingestion.providers``, read when a DAG file is
parsed) can name them without importing the sandbox server and the market history it replays.
"""

from __future__ import annotations

DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {
    "flatpeak": {"account_id": "acc_sandbox", "api_key": "sk_sandbox_flatpeak"},
    "nrel": {"api_key": "sandbox-nrel-key"},
    "openei": {"api_key": "sandbox-nrel-key"},  # OpenEI accepts NREL/NLR keys
    "iea": {},  # the IEA backend has no auth
    "entsoe": {"token": "sandbox-entsoe-token"},
}
