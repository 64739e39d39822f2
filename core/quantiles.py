"""The quantile levels every forecast carries, and their column names (one place for the whole product).

The registered model answers them (``serving.model_request``), the ``forecasts`` table stores them
(migration 0006), the cache document and the forecast-vs-actual fan show them. A level ``q`` is the
column ``q`` + its percentage on two digits: 0.05 is ``q05``, 0.5 is ``q50``, 0.95 is ``q95``.
"""

from __future__ import annotations

QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95)


def quantile_column(level: float) -> str:
    """The column of quantile ``level`` (0.05 -> ``q05``); a level that is not a whole percent is refused."""
    percent = round(level * 100)
    if not 0 < percent < 100 or abs(percent - level * 100) > 1e-9:
        raise ValueError(f"quantile level {level!r}: a column needs a whole percent strictly between 0 and 100")
    return f"q{percent:02d}"


QUANTILE_COLUMNS: tuple[str, ...] = tuple(quantile_column(q) for q in QUANTILE_LEVELS)
# The central intervals the quantiles bound: coverage -> (lower column, upper column).
CENTRAL_INTERVALS: dict[float, tuple[str, str]] = {0.5: ("q25", "q75"), 0.9: ("q05", "q95")}
