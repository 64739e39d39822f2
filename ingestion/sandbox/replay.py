"""The bundled market history as the sandbox serves it, at any requested time.

A requested instant inside a market's history is served as is. One outside it is shifted by a
whole number of 364-day years (52 weeks, so weekdays and the daily/weekly shape are kept) into
the history, and the real price of that shifted hour is served for the requested hour.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd

from core.markets import MARKETS, load_market

YEAR = pd.Timedelta(days=364)


class ReplayHistory:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._loaded: dict[str, pd.Series] = {}  # a region's history, read once per server
        # the server's threads ask for the same region at once, and a pandas index builds its
        # lookup tables on first use without a lock (a race there reads as "duplicate labels")
        self._lock = threading.RLock()

    def _series(self, region: str) -> pd.Series:
        with self._lock:
            if region not in self._loaded:
                prices = load_market(region, self.data_dir).prices
                self._loaded[region] = pd.Series(
                    prices["price"].to_numpy(), index=pd.DatetimeIndex(prices["ts"]), name=region
                )
            return self._loaded[region]

    def currency(self, region: str) -> str:
        return MARKETS[region].currency

    def hourly(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        """Hourly real prices (per MWh) for ``start <= ts < end``, ts in UTC as requested."""
        series = self._series(region)
        first, last = series.index[0], series.index[-1]
        hours = pd.date_range(start.ceil("h"), end, freq="h", inclusive="left", tz="UTC")
        if len(hours) == 0:
            return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
        source_ts = []
        for ts in hours:
            shift = 0
            if ts > last:
                shift = int(np.ceil((ts - last) / YEAR))
            elif ts < first:
                shift = -int(np.ceil((first - ts) / YEAR))
            source_ts.append(ts - shift * YEAR)
        with self._lock:
            values = series.reindex(pd.DatetimeIndex(source_ts)).to_numpy()
        return pd.Series(values, index=hours, name=region)
