"""Registry actions around the gate: score, decide, move the aliases (stages mirror them), record everything.

- ``gate_candidate``: re-score the candidate AND the current champion on the same recent holdout
  (``training.evaluation``), ask ``registry.gate.decide_promotion``, then promote (alias
  ``champion``; stage view: Production, the previous one archived) or archive the candidate.
  Either way the version gets ``eopt.gate.*`` tags and the decision a row in ``model_promotions``.
- ``promote_version``: a person's manual promotion, with their reason, audited.
- ``rollback``: the champion that the current one replaced comes back, audited.

Nothing here changes Production unless every MLflow call before it succeeded: a registry that
is down, or a candidate whose artifacts are missing, raises ``RegistryError`` first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.settings import Settings
from registry.gate import Evaluation, GateDecision, GatePolicy, decide_promotion
from registry.models import ARCHIVED, CHALLENGER, CHAMPION, PRODUCTION, champion, mirror_stage, registered_model_name
from storage.prices import PriceStore
from storage.promotions import PromotionStore
from training.evaluation import read_holdout, score_model

log = logging.getLogger(__name__)

# The promoted version's absolute errors on the gate's holdout, on its run: drift.performance reads them.
HOLDOUT_ERRORS_FOLDER = "promotion"


def holdout_errors_artifact(version: str) -> str:
    """The run artifact holding a promoted version's holdout errors: one file per version, since a
    run can back several versions (a model registered again) and each is judged on its own window."""
    return f"{HOLDOUT_ERRORS_FOLDER}/holdout_errors_v{version}.json"


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; Production is unchanged. The message says why."""


@dataclass(frozen=True)
class PromotionOutcome:
    region: str
    name: str
    version: str
    decision: GateDecision
    candidate: Evaluation
    champion: Evaluation | None
    baseline: Evaluation
    champion_version_before: str | None
    champion_version_after: str | None
    champion_mape_after: float | None


def policy_for(settings: Settings, region: str) -> GatePolicy:
    return GatePolicy(
        mape_threshold=settings.mape_threshold(region), min_improvement=settings.training.promotion_min_improvement
    )


def _drop_alias_if_on(client: MlflowClient, name: str, alias: str, version: str) -> None:
    try:
        if str(client.get_model_version_by_alias(name, alias).version) == str(version):
            client.delete_registered_model_alias(name, alias)
    except MlflowException:
        pass  # no such alias


def make_champion(client: MlflowClient, name: str, version: str) -> None:
    """Alias ``champion`` on ``version``, then its stage view: Production, the previous one archived.

    Should the stage view fail, the alias goes back to the version it named before, so that a failed
    promotion leaves Production unchanged and alias and stage still agree."""
    try:
        previous: str | None = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        previous = None  # no champion yet
    client.set_registered_model_alias(name, CHAMPION, version)
    try:
        mirror_stage(client, name, version, PRODUCTION)
    except Exception:
        if previous is None:
            client.delete_registered_model_alias(name, CHAMPION)
        else:
            client.set_registered_model_alias(name, CHAMPION, previous)
        raise
    _drop_alias_if_on(client, name, CHALLENGER, version)


def _tags(client: MlflowClient, name: str, version: str, tags: dict[str, object]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:5000])


def _registry_call(what: str, region: str, call):
    try:
        return call()
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RegistryError(f"{region}: {what} failed ({first}); Production is unchanged") from None


def gate_candidate(
    client: MlflowClient,
    settings: Settings,
    store: PriceStore,
    promotions: PromotionStore,
    region: str,
    version: str,
    *,
    actor: str = "model_retraining",
    holdout_end: pd.Timestamp | None = None,
) -> PromotionOutcome:
    """Score candidate and champion on the same holdout, decide, apply and record."""
    name = registered_model_name(region)
    version = str(version)
    _registry_call(f"reading {name} version {version}", region, lambda: client.get_model_version(name, version))
    current = _registry_call(f"reading the champion of {name}", region, lambda: champion(client, region))
    end = holdout_end
    if end is None:
        latest = store.latest_ts(region)
        if latest is None:
            raise RegistryError(f"{region}: no prices to score the candidate on; Production is unchanged")
        end = latest + pd.Timedelta(hours=1)
    holdout = read_holdout(store, region, end, settings.training.test_days)
    candidate_score = _registry_call(
        f"scoring {name} version {version}", region, lambda: score_model(f"models:/{name}/{version}", region, holdout)
    )
    hours = candidate_score.hours
    candidate = Evaluation.from_metrics(f"candidate v{version}", candidate_score.metrics, hours)
    baseline = Evaluation.from_metrics("seasonal naive", candidate_score.naive_metrics, hours)
    champion_eval = None
    notes: list[str] = []
    if current is not None and current.version != version:
        try:
            score = score_model(current.uri, region, holdout)
            champion_eval = Evaluation.from_metrics(f"champion v{current.version}", score.metrics, hours)
        except Exception as exc:
            notes.append(
                f"champion v{current.version} could not be re-scored ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); judged without it"
            )
            log.error("%s: %s", region, notes[-1])
    policy = policy_for(settings, region)
    decision = decide_promotion(candidate, champion_eval, baseline, policy)
    # a champion that could not be scored is not "no champion": say what happened instead
    reasons = [r for r in decision.reasons if not (notes and r == "no champion yet")] + notes
    now = datetime.now(UTC)
    window = f"{holdout.frame['target_ts'].min()} .. {holdout.frame['target_ts'].max()} ({hours} h)"
    tags = {
        "eopt.gate.decision": "promoted" if decision.promote else "rejected",
        "eopt.gate.reasons": "; ".join(reasons),
        "eopt.gate.mape_threshold": policy.mape_threshold,
        "eopt.gate.champion_version": current.version if current else "none",
        "eopt.gate.holdout": window,
        "eopt.gate.decided_at": now.isoformat(timespec="seconds"),
        "eopt.gate.candidate_mae": f"{candidate.mae:.6g}",
        "eopt.gate.candidate_mape": f"{candidate.mape:.6g}",
        "eopt.gate.naive_mae": f"{baseline.mae:.6g}",
        **({"eopt.gate.champion_mae": f"{champion_eval.mae:.6g}"} if champion_eval else {}),
    }
    if decision.promote:
        # the promoted model's own holdout errors: the reference of the forecast-performance drift check
        run_id = _registry_call(
            f"reading {name} version {version}", region, lambda: client.get_model_version(name, version).run_id
        )
        if run_id:
            errors = {
                "version": version,
                "holdout": window,
                "target_ts": list(candidate_score.target_hours),
                "absolute_error": list(candidate_score.absolute_errors),
            }
            _registry_call(
                f"storing the holdout errors of {name} version {version}",
                region,
                lambda: client.log_dict(run_id, errors, holdout_errors_artifact(version)),
            )
        _registry_call(f"promoting {name} version {version}", region, lambda: make_champion(client, name, version))
    else:

        def archive() -> None:
            _drop_alias_if_on(client, name, CHALLENGER, version)
            mirror_stage(client, name, version, ARCHIVED)

        _registry_call(f"archiving {name} version {version}", region, archive)
    _registry_call(f"tagging {name} version {version}", region, lambda: _tags(client, name, version, tags))
    metrics = {
        "holdout": window,
        "candidate": candidate.__dict__,
        "baseline": baseline.__dict__,
        **({"champion": champion_eval.__dict__} if champion_eval else {}),
    }
    promotions.record(
        region=region,
        model_name=name,
        candidate_version=version,
        champion_version=current.version if current else None,
        action="gate",
        promoted=decision.promote,
        reasons=reasons,
        metrics=metrics,
        mape_threshold=policy.mape_threshold,
        actor=actor,
        decided_at=now,
    )
    after = version if decision.promote else (current.version if current else None)
    mape_after = candidate.mape if decision.promote else (champion_eval.mape if champion_eval else None)
    log.info(
        "%s: %s version %s %s: %s",
        region,
        name,
        version,
        "PROMOTED to Production" if decision.promote else "rejected and archived",
        "; ".join(reasons),
    )
    return PromotionOutcome(
        region,
        name,
        version,
        GateDecision(decision.promote, decision.checks, reasons),
        candidate,
        champion_eval,
        baseline,
        current.version if current else None,
        after,
        mape_after,
    )


def promote_version(
    client: MlflowClient, promotions: PromotionStore, region: str, version: str, reason: str, actor: str
) -> str | None:
    """A person's promotion of ``version``, bypassing the gate; returns the champion it replaced."""
    if not reason.strip():
        raise RegistryError(f"{region}: a manual promotion needs a reason (--reason)")
    name = registered_model_name(region)
    version = str(version)
    _registry_call(f"reading {name} version {version}", region, lambda: client.get_model_version(name, version))
    current = _registry_call(f"reading the champion of {name}", region, lambda: champion(client, region))
    if current is not None and current.version == version:
        raise RegistryError(f"{region}: {name} version {version} is already the champion")
    _registry_call(f"promoting {name} version {version}", region, lambda: make_champion(client, name, version))
    now = datetime.now(UTC)
    _registry_call(
        "tagging",
        region,
        lambda: _tags(
            client,
            name,
            version,
            {
                "eopt.gate.decision": "promoted manually",
                "eopt.gate.reasons": f"manual: {reason}",
                "eopt.gate.champion_version": current.version if current else "none",
                "eopt.gate.decided_at": now.isoformat(timespec="seconds"),
                "eopt.gate.actor": actor,
            },
        ),
    )
    promotions.record(
        region=region,
        model_name=name,
        candidate_version=version,
        champion_version=current.version if current else None,
        action="manual",
        promoted=True,
        reasons=[f"manual: {reason}"],
        metrics=None,
        mape_threshold=None,
        actor=actor,
        decided_at=now,
    )
    return current.version if current else None


def rollback(
    client: MlflowClient, promotions: PromotionStore, region: str, actor: str, reason: str = ""
) -> tuple[str, str]:
    """Bring back the champion the current one replaced; returns (rolled back from, to)."""
    name = registered_model_name(region)
    current = _registry_call(f"reading the champion of {name}", region, lambda: champion(client, region))
    if current is None:
        raise RegistryError(f"{region}: {name} has no champion to roll back")
    previous = promotions.promoted_over(region, current.version)
    if previous is None:
        raise RegistryError(
            f"{region}: {name} version {current.version} replaced no earlier champion; nothing to roll back to"
        )
    _registry_call(f"reading {name} version {previous}", region, lambda: client.get_model_version(name, previous))
    _registry_call(f"restoring {name} version {previous}", region, lambda: make_champion(client, name, previous))
    now = datetime.now(UTC)
    text = f"rollback from v{current.version}" + (f": {reason}" if reason else "")
    _registry_call(
        "tagging",
        region,
        lambda: _tags(
            client,
            name,
            previous,
            {
                "eopt.gate.decision": "restored by rollback",
                "eopt.gate.reasons": text,
                "eopt.gate.decided_at": now.isoformat(timespec="seconds"),
                "eopt.gate.actor": actor,
            },
        ),
    )
    promotions.record(
        region=region,
        model_name=name,
        candidate_version=previous,
        champion_version=current.version,
        action="rollback",
        promoted=True,
        reasons=[text],
        metrics=None,
        mape_threshold=None,
        actor=actor,
        decided_at=now,
    )
    return current.version, previous


def registry_status(client: MlflowClient, region: str) -> pd.DataFrame:
    """Every version of the region's model with aliases, stage (their view), test metrics and the gate's verdict."""
    name = registered_model_name(region)
    if not client.search_registered_models(f"name = '{name}'"):
        return pd.DataFrame(
            columns=["region", "version", "stage", "aliases", "test_mae", "test_rmae", "test_mape", "gate", "created"]
        )
    aliases: dict[str, list[str]] = {}
    for alias, v in (client.get_registered_model(name).aliases or {}).items():
        aliases.setdefault(str(v), []).append(alias)
    rows = []
    for v in client.search_model_versions(f"name = '{name}'"):
        rows.append(
            {
                "region": region,
                "version": int(v.version),
                "stage": v.current_stage,
                "aliases": ",".join(sorted(aliases.get(str(v.version), []))),
                "test_mae": v.tags.get("eopt.test_mae", ""),
                "test_rmae": v.tags.get("eopt.test_rmae", ""),
                "test_mape": v.tags.get("eopt.test_mape", ""),
                "gate": v.tags.get("eopt.gate.decision", ""),
                "created": pd.Timestamp(v.creation_timestamp, unit="ms", tz="UTC").floor("s"),
            }
        )
    return pd.DataFrame(rows).sort_values("version", ascending=False).reset_index(drop=True)


__all__ = [
    "PromotionOutcome",
    "RegistryError",
    "gate_candidate",
    "make_champion",
    "policy_for",
    "promote_version",
    "registry_status",
    "rollback",
]
