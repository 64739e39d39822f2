"""The bundled real market history (open EPF benchmark) mapped to the canonical price schema.

Files follow the epftoolbox layout: a timestamp column of local clock hours, the price, and two
day-ahead exogenous forecasts; 24 rows per local day. ``data/markets/README.md`` documents the
mapping of those local hours to UTC; :func:`local_day_hours_to_utc` implements it.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.regions import Catalogue, CatalogueError, Region
from core.settings import current_catalogue, use_catalogue

HISTORY_SOURCE = "epf-history"
# What a model's features read of its market: the local day, the holidays and the exogenous series.
FEATURE_FIELDS = ("zone", "holidays", "exogenous")

log = logging.getLogger(__name__)


class MarketDataError(ValueError):
    """A market file is missing or malformed; the message names the file and the row."""


# A market is a region of the catalogue (core/regions.toml, or EOPT_REGION_CATALOGUE): its zone,
# currency, holidays, bundled history file and exogenous series are data, not code.
Market = Region


def get_market(region: str, catalogue: Catalogue | None = None) -> Market:
    """The catalogue entry of ``region`` (default: this process's catalogue, see
    ``core.settings.current_catalogue``)."""
    try:
        return (catalogue or current_catalogue()).get(region)
    except CatalogueError as exc:
        raise MarketDataError(str(exc)) from None


def register_market(market: Market) -> None:
    """Add ``market`` to this process's catalogue (a benchmark's market file that no entry describes)."""
    catalogue = current_catalogue()
    use_catalogue(catalogue.model_copy(update={"regions": {**catalogue.regions, market.code: market}}))


def adopt_market(market: Market) -> Market:
    """Make a trained model's own market (``market``) the definition its features are built with in this
    process, and return the process's entry for the region.

    A region this process's catalogue lacks (a model trained under another ``EOPT_REGION_CATALOGUE``,
    served by ``mlflow models serve`` without it) is added. Where the catalogue has the region with
    another zone, holidays or exogenous series than the model was trained with, those fields are taken
    from the model (the features must be the training's) and a warning says so; the rest of the entry
    (providers, thresholds) stays the catalogue's.
    """
    catalogue = current_catalogue()
    known = catalogue.regions.get(market.code)
    if known is None:
        register_market(market)
        return market
    differing = [name for name in FEATURE_FIELDS if getattr(known, name) != getattr(market, name)]
    if not differing:
        return known
    log.warning(
        "%s: the model was trained with another %s than this process's region catalogue (%s) gives; its features "
        "use the model's own (%s); retrain the region to use the catalogue's",
        market.code,
        ", ".join(differing),
        catalogue.source,
        "; ".join(f"{name} {getattr(market, name)!r}" for name in differing),
    )
    adopted = known.model_copy(update={name: getattr(market, name) for name in differing})
    register_market(adopted)
    return adopted


def bundled_markets(catalogue: Catalogue | None = None) -> dict[str, Market]:
    """The regions with a bundled history file, in catalogue order."""
    return (catalogue or current_catalogue()).with_history()


@dataclass(frozen=True)
class MarketHistory:
    market: Market
    prices: pd.DataFrame  # region, source, ts (UTC), price, currency, unit, resolution
    exogenous: pd.DataFrame  # region, source, ts (UTC), variable, value

    def between(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> MarketHistory:
        """The part with ``start <= ts < end`` (UTC bounds; None is open)."""

        def cut(frame: pd.DataFrame) -> pd.DataFrame:
            keep = pd.Series(True, index=frame.index)
            if start is not None:
                keep &= frame["ts"] >= start
            if end is not None:
                keep &= frame["ts"] < end
            return frame.loc[keep].reset_index(drop=True)

        return MarketHistory(self.market, cut(self.prices), cut(self.exogenous))


# The files parsed in this process: (their content's digest, how the market reads it) -> the frames.
# Each caller gets copies; a file changed on disk has another digest.
_PARSED: dict[tuple[str, str, str, str, tuple[str, ...]], MarketHistory] = {}
_PARSED_LIMIT = 8  # the four bundled markets, and room for the regions a catalogue adds


def read_market_file(path: Path, market: Market) -> MarketHistory:
    """Read one market file into UTC price and exogenous frames, refusing anything malformed.

    A file is parsed once per process (the sandbox and the tests read the same files many times):
    a later read of the same content, for a market with the same time zone, currency and exogenous
    names, gets copies of the frames parsed the first time."""
    path = Path(path)
    if len(market.exogenous) != 2:
        raise MarketDataError(
            f"{path}: region {market.region} names {len(market.exogenous)} exogenous series; a market file has 2"
        )
    if not path.is_file():
        raise MarketDataError(
            f"market file for {market.region} not found at {path}; "
            "restore it from the repository (data/markets/) or set EOPT_MARKET_DATA_DIR"
        )
    content = path.read_bytes()
    key = (
        hashlib.blake2b(content, digest_size=16).hexdigest(),
        market.region,
        market.timezone,
        market.currency,
        tuple(market.exogenous),
    )
    if key not in _PARSED:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = _parse_market_file(path, io.BytesIO(content), market)
    parsed = _PARSED[key]
    return MarketHistory(market, parsed.prices.copy(), parsed.exogenous.copy())


def _parse_market_file(path: Path, content: io.BytesIO, market: Market) -> MarketHistory:
    try:
        raw = pd.read_csv(content, dtype=str, skipinitialspace=True, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MarketDataError(f"{path}: not a readable CSV ({exc})") from None
    if raw.shape[1] != 4:
        raise MarketDataError(
            f"{path}: expected 4 columns (timestamp, price, two exogenous forecasts), "
            f"found {raw.shape[1]}: {', '.join(map(str, raw.columns))}"
        )
    raw.columns = ["local", "price", *market.exogenous]
    local = pd.to_datetime(raw["local"].str.strip(), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    _fail_on_bad(path, raw, local.isna(), "local", "timestamp is not YYYY-MM-DD HH:MM:SS")
    values = {}
    for column in ("price", *market.exogenous):
        numbers = pd.to_numeric(raw[column].str.strip(), errors="coerce")
        _fail_on_bad(path, raw, ~np.isfinite(numbers.to_numpy(dtype=float)), column, "not a finite number")
        values[column] = numbers.astype(float)
    frame = pd.DataFrame({"local": local, **values})
    _check_whole_days(path, frame["local"])
    utc = local_day_hours_to_utc(frame, market.timezone, path)

    prices = pd.DataFrame(
        {
            "region": market.region,
            "source": HISTORY_SOURCE,
            "ts": utc["ts"],
            "price": utc["price"],
            "currency": market.currency,
            "unit": "MWh",
            "resolution": "PT60M",
        }
    )
    exogenous = (
        utc.melt(id_vars=["ts"], value_vars=list(market.exogenous), var_name="variable", value_name="value")
        .assign(region=market.region, source=HISTORY_SOURCE)
        .loc[:, ["region", "source", "ts", "variable", "value"]]
        .sort_values(["ts", "variable"], kind="stable")
        .reset_index(drop=True)
    )
    return MarketHistory(market, prices, exogenous)


def load_market(region: str, data_dir: Path, catalogue: Catalogue | None = None) -> MarketHistory:
    """The bundled history of ``region`` (its catalogue entry's ``history`` file in ``data_dir``)."""
    market = get_market(region, catalogue)
    if market.file_name is None:
        raise MarketDataError(
            f"region {market.region} has no bundled history (no `history` in its catalogue entry); "
            f"backfill it from its providers with `eopt ingest` instead"
        )
    return read_market_file(Path(data_dir) / market.file_name, market)


def _fail_on_bad(path: Path, raw: pd.DataFrame, bad: pd.Series | np.ndarray, column: str, what: str) -> None:
    bad = np.asarray(bad)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        shown = "local" if column == "local" else column
        raise MarketDataError(
            f"{path}, line {first + 2}, column {shown}: {what} (value {raw.iloc[first][column]!r}); "
            f"{int(bad.sum())} such row(s) in the file"
        )


def _check_whole_days(path: Path, local: pd.Series) -> None:
    if local.duplicated().any():
        first = local[local.duplicated()].iloc[0]
        raise MarketDataError(f"{path}: local hour {first} appears more than once; each day must list hours 0-23 once")
    hours = local.dt.hour.groupby(local.dt.normalize()).agg(["count", "min", "max"])
    bad = hours[(hours["count"] != 24) | (hours["min"] != 0) | (hours["max"] != 23)]
    if len(bad):
        day = bad.index[0]
        raise MarketDataError(
            f"{path}: local day {day.date()} has {int(bad.iloc[0]['count'])} rows, expected 24 (hours 0-23); "
            f"{len(bad)} incomplete day(s) in the file"
        )
    if not local.is_monotonic_increasing:
        raise MarketDataError(f"{path}: rows are not in time order")
    days = local.dt.normalize().drop_duplicates()
    gaps = (days.diff() != pd.Timedelta(days=1)).to_numpy()[1:]
    if gaps.any():
        after = days.iloc[int(np.flatnonzero(gaps)[0]) + 1]
        raise MarketDataError(f"{path}: days are missing before {after.date()}; the history must be contiguous")


def local_day_hours_to_utc(frame: pd.DataFrame, timezone: str, path: Path | str = "<frame>") -> pd.DataFrame:
    """Map 24-per-day local clock hours to UTC instants (see data/markets/README.md).

    The skipped spring-forward hour is dropped; the repeated fall-back hour's value is given to
    both instants. Returns ``frame`` without ``local``, with ``ts`` (UTC), sorted and gapless.
    """
    local = frame["local"]
    n = len(local)
    first = local.dt.tz_localize(timezone, ambiguous=np.ones(n, dtype=bool), nonexistent="NaT")
    second = local.dt.tz_localize(timezone, ambiguous=np.zeros(n, dtype=bool), nonexistent="NaT")
    repeated = first.notna() & (first != second)
    body = frame.drop(columns=["local"])
    mapped = pd.concat([body.assign(ts=first), body.loc[repeated].assign(ts=second[repeated])], ignore_index=True)
    mapped = mapped.loc[mapped["ts"].notna()]
    mapped["ts"] = mapped["ts"].dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    mapped = mapped.sort_values("ts", kind="stable").reset_index(drop=True)
    steps = mapped["ts"].diff().dropna()
    if len(steps) and (steps != pd.Timedelta(hours=1)).any():
        at = mapped["ts"].iloc[int(np.flatnonzero((steps != pd.Timedelta(hours=1)).to_numpy())[0]) + 1]
        raise MarketDataError(f"{path}: the UTC series is not hourly around {at} after mapping from {timezone}")
    return mapped[["ts", *list(body.columns)]]
