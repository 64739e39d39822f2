"""The registered model's request and response tables, and the checks a request must pass.

Request: the feature rows of one or more forecast origins, as built by
``training.features.inference_frame``: ``origin`` and ``target_ts`` as ISO-8601 UTC strings
(MLflow's schema has no time-zone-aware timestamp), ``horizon`` 0..23 and the region's feature
columns as numbers. Response: one row per requested hour with ``origin``, ``target_ts``, the
forecast ``yhat`` and its interval ``lower``/``upper``, and each member's forecast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIME_COLUMNS = ("origin", "target_ts")


class ModelInputError(ValueError):
    """A request the model cannot answer: missing, extra, non-numeric or infinite columns, bad timestamps."""


def to_model_input(frame: pd.DataFrame, feature_columns: list[str]) -> pd.DataFrame:
    """The request table of a feature frame: ISO strings for the times, the features in order."""
    out = pd.DataFrame({c: frame[c].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c in TIME_COLUMNS})
    features = frame[feature_columns].astype("float64")
    return pd.concat([out.reset_index(drop=True), features.reset_index(drop=True)], axis=1)


def from_model_input(request: pd.DataFrame, feature_columns: list[str]) -> pd.DataFrame:
    """The feature frame of a request, or ``ModelInputError`` saying which columns are wrong."""
    if not isinstance(request, pd.DataFrame):
        raise ModelInputError(f"expected a table of feature rows, got {type(request).__name__}")
    expected = [*TIME_COLUMNS, *feature_columns]
    missing = [c for c in expected if c not in request.columns]
    extra = [c for c in request.columns if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(map(str, extra))}")
        raise ModelInputError("; ".join(parts) + "; build the rows with training.features.inference_frame")
    if request.empty:
        raise ModelInputError("the request has no rows")
    frame = pd.DataFrame(index=request.index)
    for column in TIME_COLUMNS:
        parsed = pd.to_datetime(request[column], utc=True, errors="coerce", format="ISO8601")
        if parsed.isna().any():
            bad = request.loc[parsed.isna(), column].iloc[0]
            raise ModelInputError(
                f"column {column!r}: {bad!r} is not an ISO-8601 timestamp (e.g. 2018-12-24T23:00:00Z)"
            )
        frame[column] = parsed
    for column in feature_columns:
        values = pd.to_numeric(request[column], errors="coerce")
        not_numbers = values.isna() & request[column].notna()
        if not_numbers.any():
            raise ModelInputError(f"column {column!r}: {request.loc[not_numbers, column].iloc[0]!r} is not a number")
        infinite = np.isinf(values.to_numpy(dtype="float64"))
        if infinite.any():
            raise ModelInputError(
                f"column {column!r}: {values[infinite].iloc[0]} in {int(infinite.sum())} row(s) is not a finite "
                "number; send a finite value, or null where the value is unknown"
            )
        frame[column] = values.astype("float64")
    return frame


def to_response(frame: pd.DataFrame, forecast: pd.DataFrame) -> pd.DataFrame:
    times = {c: frame[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy() for c in TIME_COLUMNS}
    return pd.concat([pd.DataFrame(times, index=forecast.index), forecast], axis=1).reset_index(drop=True)
