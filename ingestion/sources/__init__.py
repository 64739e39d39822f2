"""Pricing-API clients, one module per provider, all with the same small interface.

A client is built from a ``ProviderConfig`` and an ``HttpTransport`` and answers
``fetch_prices(region, start, end)`` with rows in the canonical price schema
(``SOURCE_COLUMNS``): UTC ``ts``, the provider's own price unit (``kWh`` or ``MWh``) and
resolution (``PT15M``, ``PT60M`` ...). Converting to per-MWh hourly values is the aggregation's job
(``ingestion.aggregate``), so every client stays a faithful reader of its provider's format.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from ingestion.http import HttpTransport, ProviderConfig

SOURCE_COLUMNS = ("region", "source", "ts", "price", "currency", "unit", "resolution")


class PriceClient(Protocol):
    source: str

    def __init__(self, config: ProviderConfig, transport: HttpTransport) -> None: ...

    def regions(self) -> tuple[str, ...]:
        """The product regions this provider is configured to serve."""
        ...

    def fetch_prices(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Rows with ``start <= ts < end`` (UTC) in ``SOURCE_COLUMNS``; empty when the provider has none."""
        ...


def empty_prices() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in SOURCE_COLUMNS})
    frame["ts"] = pd.Series(dtype="datetime64[us, UTC]")
    frame["price"] = pd.Series(dtype=float)
    return frame
