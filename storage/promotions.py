"""The promotion history: every gate decision, manual promotion and rollback, with its reasons."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from storage.schema import model_promotions


class PromotionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(
        self,
        *,
        region: str,
        model_name: str,
        candidate_version: str,
        champion_version: str | None,
        action: str,
        promoted: bool,
        reasons: list[str],
        metrics: dict[str, Any] | None,
        mape_threshold: float | None,
        actor: str,
        decided_at: datetime | None = None,
    ) -> int:
        row = {
            "region": region,
            "model_name": model_name,
            "candidate_version": str(candidate_version),
            "champion_version": None if champion_version is None else str(champion_version),
            "action": action,
            "promoted": promoted,
            "reasons": reasons,
            "metrics": metrics,
            "mape_threshold": mape_threshold,
            "actor": actor[:128],
            "decided_at": decided_at or datetime.now(UTC),
        }
        with self.engine.begin() as conn:
            key = conn.execute(sa.insert(model_promotions).values(**row)).inserted_primary_key
        if key is None:  # SQLAlchemy gives None only for statements that are not single-row inserts
            raise RuntimeError("the promotion insert returned no primary key")
        return int(key[0])

    def history(self, region: str | None = None) -> pd.DataFrame:
        """Decisions, newest first."""
        t = model_promotions
        query = sa.select(t).order_by(t.c.decided_at.desc(), t.c.id.desc())
        if region is not None:
            query = query.where(t.c.region == region)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in t.columns])

    def promoted_over(self, region: str, version: str) -> str | None:
        """The champion that ``version`` replaced when it was last promoted (None if it replaced none).

        Rollbacks are skipped, so rolling back twice walks back two champions instead of toggling."""
        t = model_promotions
        query = (
            sa.select(t.c.champion_version)
            .where(
                t.c.region == region,
                t.c.candidate_version == str(version),
                t.c.promoted.is_(True),
                t.c.action != "rollback",
            )
            .order_by(t.c.decided_at.desc(), t.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()
