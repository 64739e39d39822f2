"""Validation of a cycle's hourly per-MWh price rows before they are stored.

Each rule rejects rows with a reason (the pipeline quarantines them); the rest are accepted:

| rule | rejects |
|---|---|
| schema | missing/non-UTC timestamp, non-numeric price, currency not 3 letters, unit not MWh |
| duplicates | more than one row for (region, source, ts) |
| range | a price outside the region's plausible range (negative prices are legal) |
| publication horizon | a timestamp later than the run time + the source's publication horizon |

``min_records`` (the ``price_ingestion_min_records`` variable) is checked on the accepted rows:
fewer than that fails the cycle (``ValidationFailed``) and nothing is stored from it; the next
cycle fetches the same window again, so nothing is lost. A region that the region catalogue in
use does not hold fails the cycle the same way, naming the region and the catalogue file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from core.regions import Catalogue

PRICE_COLUMNS = ("region", "source", "ts", "price", "currency", "unit", "resolution")


# Plausible hourly day-ahead/retail price range per region, per MWh in the region's currency.
# EU zones: SDAC harmonised clearing-price limits (-500 EUR/MWh; max raised to +4,000 in 2022-23).
# PJM: offer cap $1,000-2,000/MWh plus shortage pricing; negative LMPs are legal and can be deep.
def plausible_range(region: str, catalogue: Catalogue) -> tuple[float, float]:
    """The region's plausible price range per MWh: its entry's ``price_range`` in ``catalogue`` (the
    settings' catalogue, the one the providers were configured from). A region the catalogue does
    not hold raises ``ValidationFailed`` naming the region and the catalogue file."""
    from core.markets import MarketDataError, get_market

    try:
        low, high = get_market(region, catalogue).price_range
    except MarketDataError as exc:
        raise ValidationFailed(
            f"price rows for region {region}, which the region catalogue in use ({catalogue.source}) does not hold: "
            f"{exc}. The providers are configured from the settings' catalogue (EOPT_REGION_CATALOGUE); pass that "
            "catalogue to the validation"
        ) from None
    return low, high


# How far past the run time a source can have published prices: day-ahead auctions publish the
# next delivery day (at most ~48 h ahead in any zone); tariff-derived sources are served for the
# same window; the bundled history never reaches the future.
PUBLICATION_HORIZON: dict[str, pd.Timedelta] = {
    "entsoe": pd.Timedelta(hours=48),
    "iea": pd.Timedelta(hours=48),
    "flatpeak": pd.Timedelta(hours=48),
    "openei": pd.Timedelta(hours=48),
    "nrel": pd.Timedelta(hours=48),
}
DEFAULT_HORIZON = pd.Timedelta(0)


class ValidationFailed(ValueError):
    """The cycle as a whole is not fit to store."""


@dataclass(frozen=True)
class Validation:
    accepted: pd.DataFrame
    rejected: pd.DataFrame  # PRICE_COLUMNS + reason

    def summary(self) -> dict[str, object]:
        reasons = self.rejected["reason"].str.split(":").str[0].value_counts().to_dict() if len(self.rejected) else {}
        return {"accepted": len(self.accepted), "rejected": len(self.rejected), "rejected_by_reason": reasons}


def validate_prices(
    frame: pd.DataFrame, *, run_time: pd.Timestamp, catalogue: Catalogue, min_records: int = 0
) -> Validation:
    """Each row accepted or rejected with its reason (see the module's table). A region that
    ``catalogue`` (the settings' one) does not hold fails the whole cycle with ``ValidationFailed``
    naming it and the catalogue file: its rows cannot be checked, and storing none of them silently
    would hide a configuration error."""
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValidationFailed(
            f"price rows are missing column(s) {', '.join(missing)}; expected {', '.join(PRICE_COLUMNS)}"
        )
    rows = frame.loc[:, list(PRICE_COLUMNS)].copy()
    reason = pd.Series(pd.NA, index=rows.index, dtype=object)

    def reject(mask: pd.Series, why: str | pd.Series) -> None:
        take = mask & reason.isna()
        if isinstance(why, pd.Series):
            reason.loc[take] = why[take]
        else:
            reason.loc[take] = why

    ranges = {str(r): plausible_range(str(r), catalogue) for r in rows["region"].unique()}
    if not isinstance(rows["ts"].dtype, pd.DatetimeTZDtype) or str(rows["ts"].dtype.tz) != "UTC":
        raise ValidationFailed(f"price rows: ts is {rows['ts'].dtype}, not tz-aware UTC")
    reject(rows["ts"].isna(), "schema: missing timestamp")
    price = pd.to_numeric(rows["price"], errors="coerce")
    reject(price.isna() | ~price.abs().lt(float("inf")), "schema: price is missing or not a finite number")
    reject(~rows["currency"].astype(str).str.fullmatch(r"[A-Z]{3}"), "schema: currency is not an ISO 4217 code")
    reject(rows["unit"] != "MWh", "schema: unit is not MWh (aggregate first)")
    dupes = rows.duplicated(["region", "source", "ts"], keep=False)
    reject(dupes, "duplicate: more than one price for this region, source and hour")

    low = rows["region"].map(lambda r: ranges[str(r)][0])
    high = rows["region"].map(lambda r: ranges[str(r)][1])
    out_of_range = (price < low) | (price > high)
    reject(
        out_of_range,
        "range: price "
        + price.round(2).astype(str)
        + " outside the plausible range ["
        + low.astype(str)
        + ", "
        + high.astype(str)
        + "] for "
        + rows["region"].astype(str),
    )

    horizon = rows["source"].map(lambda s: PUBLICATION_HORIZON.get(s, DEFAULT_HORIZON))
    latest_allowed = run_time + horizon
    too_far = rows["ts"] > latest_allowed
    reject(
        too_far,
        "future: "
        + rows["ts"].astype(str)
        + " is beyond the publication horizon of "
        + rows["source"].astype(str)
        + " (run time + "
        + horizon.astype(str)
        + ")",
    )

    rejected = rows[reason.notna()].assign(reason=reason[reason.notna()].astype(str))
    accepted = rows[reason.isna()].assign(price=price[reason.isna()].astype(float)).reset_index(drop=True)
    if len(accepted) < min_records:
        raise ValidationFailed(
            f"only {len(accepted)} valid price rows this cycle (price_ingestion_min_records = {min_records}); "
            f"{len(rejected)} rejected. Check the providers' health (api_health) and the quarantine; nothing was stored"
        )
    return Validation(accepted, rejected.reset_index(drop=True))
