"""Which versions serve a batch: the champion (or a pinned version), and the challenger sharing or shadowing its
traffic. Decided from the governance store only; MLflow's aliases are never consulted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelops import events
from modelops.errors import CatalogError, NotApprovedError
from modelops.lifecycle import ApprovalStatus, Role, Stage
from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from tasks import as_task
from tasks.audit import record_stage
from tasks.integrity import VerifiedModel, load_verified_model, report_alias_findings
from tasks.outputs import publish_parts, write_part
from tasks.prediction_log import log_predictions
from tasks.routing import PINNED, SHADOW, routes_to_challenger
from tasks.scoring import score_frame_task



def scoring_version(platform: Platform, spec: LifecycleSpec, version: str | None) -> tuple[str, str]:
    """(version, role): the version named, or the champion the store deploys; either must be approved."""
    store = platform.store
    role = PINNED if version else Role.champion
    if version is None:
        report_alias_findings(platform, spec, "scoring")
        version = store.serving_version(spec.name, Role.champion)
    if version is None:
        raise CatalogError(f"{spec.name} has no champion to score with", "deploy an approved version first")
    if store.approval_status(spec.name, version) != ApprovalStatus.approved:
        raise NotApprovedError(f"{spec.name} v{version} is not approved for scoring", "approve and deploy it first")
    return version, role


scoring_version_task = as_task(scoring_version)


def serving_challenger(platform: Platform, spec: LifecycleSpec) -> str | None:
    """The approved version the store deploys as challenger, sharing (champion_challenger) or shadowing (shadow)
    the traffic, if any."""
    if spec.deploy.strategy == "champion":
        return None
    version = platform.store.serving_version(spec.name, Role.challenger)
    if version is None or platform.store.approval_status(spec.name, version) != ApprovalStatus.approved:
        return None
    return version


def routed_to_challenger(ids: pd.Series, share: float) -> np.ndarray:
    """Stable split by prediction id: the same request always goes to the same side, online or in batch."""
    return np.fromiter((routes_to_challenger(key, share) for key in ids.astype(str)), dtype=bool, count=len(ids))


@dataclass
class ChallengerShare:
    version: str | None
    rows: int  # requests the challenger scored (all of them when it shadows)


def score_challenger(platform: Platform, spec: LifecycleSpec, frame: pd.DataFrame, outputs: pd.DataFrame,
                     log: pd.DataFrame, source: str,
                     digest: str) -> tuple[pd.DataFrame, pd.DataFrame, ChallengerShare]:
    """Let the serving challenger score its share: a shadow scores every request unserved (its own log); a
    challenger answers the requests routed to it (their outputs and log rows become its). Returns the outputs,
    the champion's log rows and the challenger's share."""
    challenger = serving_challenger(platform, spec)
    if challenger is None:
        return outputs, log, ChallengerShare(None, 0)
    outputs = outputs.copy()
    shadow = spec.deploy.strategy == "shadow"
    routed = (np.ones(len(frame), dtype=bool) if shadow
              else routed_to_challenger(outputs["prediction_id"], spec.deploy.challenger_traffic_share))
    model: VerifiedModel = load_verified_model(platform, spec, challenger, "scoring")
    try:
        ch_outputs, ch_log = score_frame_task(spec, model, model.columns, frame.loc[routed], source)
    finally:
        model.close()  # a worker of its own environment stops with the chunk
    log_predictions(platform, spec.name, challenger, SHADOW if shadow else Role.challenger, ch_log, source,
                    digest)
    if not shadow:
        outputs.loc[routed, ["prediction", "score"]] = ch_outputs[["prediction", "score"]].to_numpy()
        outputs.loc[routed, "version"] = challenger
        log = log[~routed]
    return outputs, log, ChallengerShare(challenger, len(ch_log))


score_challenger_task = as_task(score_challenger)


def record_scored_chunk(platform: Platform, spec: LifecycleSpec, version: str, role: str, outputs: pd.DataFrame,
                        log: pd.DataFrame, source: str, chunk_digest: str, parts: Path, index: int) -> str:
    """One scored chunk: the champion's prediction log rows, then its output part. The log is keyed by the chunk's
    digest (logging a chunk again replaces its rows), and the part, written last and atomically, marks the chunk
    done: a run killed in between scores the chunk again without a duplicate anywhere. Returns the log's batch id."""
    batch = log_predictions(platform, spec.name, version, role, log, source, chunk_digest)
    write_part(outputs, parts, index)
    return batch.id


record_scored_chunk_task = as_task(record_scored_chunk)


def record_scored_batch(spec: LifecycleSpec, version: str, source: str, parts: Path, chunks: int, target: Path,
                        batch_id: str, challenger: ChallengerShare) -> int:
    """Publish the output file (tagged with the batch id) from the chunks' parts and record the audit of the scored
    batch. Returns the rows written."""
    rows = publish_parts(parts, chunks, target, batch_id)
    record_stage(stage=Stage.score, action="score-batch", model=spec.name, version=version, outcome="scored",
                 evidence={"input": source, "output": str(target), "rows": rows, "chunks": chunks,
                           "batch_id": batch_id, "strategy": spec.deploy.strategy, "challenger": challenger.version,
                           "challenger_rows": challenger.rows},
                 event=events.SCORED)
    return rows


record_scored_batch_task = as_task(record_scored_batch)
