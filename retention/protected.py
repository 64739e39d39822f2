"""What retention never removes: the registered model versions operators serve or roll back to, and their runs.

Per registered model of the product (``electricity-price-<region>``) a version is kept when it is
in Production or Staging, carries an alias (``champion``, ``challenger``), or is among the newest
``archived_champions`` former champions in the promotion history, or is the champion's rollback
target (the version it replaced, which ``registry.promotion.rollback`` brings back) whatever
``archived_champions`` says. The MLflow runs behind kept versions, and their parent runs, are
kept too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from registry.models import CHAMPION, PRODUCTION, STAGING
from storage.promotions import PromotionStore

MODEL_PREFIX = "electricity-price-"
PARENT_TAG = "mlflow.parentRunId"


@dataclass
class Protected:
    versions: dict[str, set[str]] = field(default_factory=dict)  # model name -> kept versions
    runs: set[str] = field(default_factory=set)

    def describe(self) -> list[str]:
        return [f"kept {name} versions {', '.join(sorted(v, key=int))}" for name, v in sorted(self.versions.items())]


def former_champions(promotions: PromotionStore, name: str, keep: int) -> list[str]:
    """The newest ``keep`` versions that were made champion (by the gate, by hand or by a rollback), newest first."""
    history = promotions.history()
    if history.empty or keep == 0:
        return []
    promoted = history[(history["model_name"] == name) & history["promoted"].astype(bool)]
    return list(dict.fromkeys(str(v) for v in promoted["candidate_version"]))[: keep + 1]


def protected(client: MlflowClient, promotions: PromotionStore, archived_champions: int) -> Protected:
    """Every version and run that retention must keep (``archived_champions``: K, the rollback targets kept)."""
    out = Protected()
    for model in client.search_registered_models(f"name LIKE '{MODEL_PREFIX}%'"):
        kept: set[str] = set()
        versions = client.search_model_versions(f"name = '{model.name}'")
        for version in versions:
            if version.current_stage in (PRODUCTION, STAGING) or version.aliases:
                kept.add(str(version.version))
            if CHAMPION in (version.aliases or []):
                target = promotions.promoted_over(model.name.removeprefix(MODEL_PREFIX), str(version.version))
                if target is not None:
                    kept.add(target)
        # the current champion counts among the promoted ones, hence K + 1 from the history
        kept.update(former_champions(promotions, model.name, archived_champions))
        out.versions[model.name] = kept
        for version in versions:
            if str(version.version) in kept and version.run_id:
                out.runs.add(version.run_id)
    for run_id in list(out.runs):
        try:
            parent = client.get_run(run_id).data.tags.get(PARENT_TAG)
        except MlflowException:  # the version outlived its run (removed by hand): nothing more to keep
            continue
        if parent:
            out.runs.add(parent)
    return out
