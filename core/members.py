"""The ensemble's members by name, and the forecast column that carries each member's own forecast.

The registered model answers each member's forecast beside the ensemble's (``yhat_<member>``),
and the ``forecasts`` table stores them (migration 0007), so a retraining can weigh the members
by what they served (``training.ensemble.calibrate_on_served``) and anyone can see which member
carried or failed a day.
"""

from __future__ import annotations

MEMBER_NAMES: tuple[str, ...] = ("xgboost", "lightgbm", "cnn_lstm", "lear")


def member_column(name: str) -> str:
    """The forecast column of member ``name`` (``lear`` -> ``yhat_lear``)."""
    return f"yhat_{name}"


MEMBER_COLUMNS: tuple[str, ...] = tuple(member_column(name) for name in MEMBER_NAMES)
