"""The promotion gate: a pure function of two evaluations, the baseline and a policy.

A candidate reaches Production only when every check holds, each on the SAME holdout hours
(the champion is re-scored on them, never compared by a stale number):

| check | holds when |
|---|---|
| ``mape_threshold`` | the candidate's guarded MAPE is below the region's threshold |
| ``beats_seasonal_naive`` | its MAE is below the weekly seasonal-naive MAE (rMAE < 1) |
| ``beats_champion`` | its MAE is below the champion's by at least ``min_improvement`` (relative); holds when there is no champion |

Every check is reported with its numbers, pass or fail, so a rejection always says why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Evaluation:
    """One forecaster's metrics on the holdout hours (``core.metrics.evaluate``)."""

    label: str  # e.g. "candidate v7", "champion v5", "seasonal naive"
    mae: float
    rmae: float
    smape: float
    rmse: float
    mape: float
    hours: int

    @classmethod
    def from_metrics(cls, label: str, metrics: dict[str, float], hours: int) -> Evaluation:
        return cls(
            label,
            mae=float(metrics["mae"]),
            rmae=float(metrics["rmae"]),
            smape=float(metrics["smape"]),
            rmse=float(metrics["rmse"]),
            mape=float(metrics["mape"]),
            hours=hours,
        )


@dataclass(frozen=True)
class GatePolicy:
    mape_threshold: float  # percent, for this region
    min_improvement: float = 0.0  # relative MAE margin over the champion, e.g. 0.02 = 2% better


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    checks: dict[str, bool]
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        verdict = "promote" if self.promote else "reject"
        return f"{verdict}: " + "; ".join(self.reasons)

    def as_dict(self) -> dict:
        return asdict(self)


def decide_promotion(
    candidate: Evaluation, champion: Evaluation | None, baseline: Evaluation, policy: GatePolicy
) -> GateDecision:
    """Promote only if the candidate passes the MAPE threshold, beats the naive and beats the champion."""
    for evaluation in (candidate, baseline, *([champion] if champion else [])):
        if evaluation.hours != candidate.hours:
            raise ValueError(
                f"{evaluation.label} was scored on {evaluation.hours} hours, the candidate on "
                f"{candidate.hours}: the gate compares forecasters on the same hours only"
            )
    checks: dict[str, bool] = {}
    reasons: list[str] = []

    ok = math.isfinite(candidate.mape) and candidate.mape < policy.mape_threshold
    checks["mape_threshold"] = ok
    reasons.append(
        f"MAPE {candidate.mape:.2f}% {'<' if ok else '>='} threshold {policy.mape_threshold:.2f}%"
        if math.isfinite(candidate.mape)
        else "MAPE undefined (every holdout price is near zero)"
    )

    ok = candidate.mae < baseline.mae
    checks["beats_seasonal_naive"] = ok
    reasons.append(f"MAE {candidate.mae:.4f} {'<' if ok else '>='} seasonal naive {baseline.mae:.4f}")

    if champion is None:
        checks["beats_champion"] = True
        reasons.append("no champion yet")
    else:
        bar = champion.mae * (1 - policy.min_improvement)
        ok = candidate.mae < bar
        checks["beats_champion"] = ok
        margin = f" less {policy.min_improvement:.1%}" if policy.min_improvement else ""
        reasons.append(f"MAE {candidate.mae:.4f} {'<' if ok else '>='} {champion.label} {champion.mae:.4f}{margin}")
    return GateDecision(all(checks.values()), checks, reasons)
