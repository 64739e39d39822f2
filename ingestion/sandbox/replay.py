"""The bundled market history as the sandbox serves it, at any requested time.

A requested instant inside a market's history is served as is. One outside it is shifted by a
whole number of 364-day years (52 weeks, so weekdays and the daily/weekly shape are kept) into
the history, and the real price of that shifted hour is served for the requested hour. A market's
day-ahead exogenous forecasts (``exogenous``) are replayed the same way.

The regions served are those of the region catalogue with a bundled history file, and those whose
entry names one to replay (``sandbox = { replays = "BE", shift_days = 7 }``): such a region gets the
other's real series lagged by ``shift_days``, so a zone without bundled history can be backfilled,
trained and forecast against the sandbox with nothing but its catalogue entry.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd

from core.markets import load_market
from core.regions import Catalogue
from core.settings import current_catalogue

YEAR = pd.Timedelta(days=364)


class ReplayHistory:
    def __init__(self, data_dir: Path, catalogue: Catalogue | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.catalogue = catalogue if catalogue is not None else current_catalogue()
        self._loaded: dict[tuple[str, str], pd.Series] = {}  # a region's series, read once per server
        # the server's threads ask for the same region at once, and a pandas index builds its
        # lookup tables on first use without a lock (a race there reads as "duplicate labels")
        self._lock = threading.RLock()

    def _series(self, region: str, variable: str = "price") -> pd.Series:
        with self._lock:
            if (region, variable) not in self._loaded:
                entry = self.catalogue.get(region)
                original, shift = region, pd.Timedelta(0)
                if entry.history is None and entry.sandbox is not None:
                    original, shift = entry.sandbox.replays, pd.Timedelta(days=entry.sandbox.shift_days)
                history = load_market(original, self.data_dir, self.catalogue)
                self._loaded[(region, "price")] = pd.Series(
                    history.prices["price"].to_numpy(),
                    index=pd.DatetimeIndex(history.prices["ts"]) + shift,
                    name=region,
                )
                for name, rows in history.exogenous.groupby("variable"):
                    self._loaded[(region, str(name))] = pd.Series(
                        rows["value"].to_numpy(), index=pd.DatetimeIndex(rows["ts"]) + shift, name=name
                    )
            if (region, variable) not in self._loaded:
                raise KeyError(f"the bundled history of {region} has no series {variable!r}")
            return self._loaded[(region, variable)]

    def served(self, region: str) -> bool:
        """Whether the sandbox has a history to replay for ``region``."""
        entry = self.catalogue.regions.get(region)
        return entry is not None and (entry.history is not None or entry.sandbox is not None)

    def timezone(self, region: str) -> str:
        return self.catalogue.get(region).timezone

    def currency(self, region: str) -> str:
        return self.catalogue.get(region).currency

    def regions_by_id(self, provider: str) -> dict[str, str]:
        """A provider's identifier (a string id) -> the served region it names, from the catalogue."""
        return {
            str(entry.ids.of(provider)): code
            for code, entry in self.catalogue.regions.items()
            if self.served(code) and isinstance(entry.ids.of(provider), str)
        }

    def hourly(self, region: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        """Hourly real prices (per MWh) for ``start <= ts < end``, ts in UTC as requested."""
        return self._replay(self._series(region), start, end, region)

    def exogenous(self, region: str, variable: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        """A market's hourly real day-ahead forecast ``variable`` (e.g. ``system_load_forecast``, MW)
        for ``start <= ts < end``, replayed like the prices."""
        return self._replay(self._series(region, variable), start, end, variable)

    def _replay(self, series: pd.Series, start: pd.Timestamp, end: pd.Timestamp, name: str) -> pd.Series:
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
        return pd.Series(values, index=hours, name=name)
