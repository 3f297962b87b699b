"""score: score a batch file (Parquet/CSV) with the deployed version and keep the prediction log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow
from pydantic import BaseModel

from modelops import events
from modelops.catalog import CHALLENGER, CHAMPION
from modelops.errors import CatalogError, ModelOpsError, NotApprovedError
from modelops.flows.parameters import ModelName, Version
from modelops.platform import get_platform
from modelops.spec import LifecycleSpec, load_spec
from modelops.tasks.approval import APPROVED
from modelops.tasks.audit import record_stage
from modelops.tasks.prediction_log import log_failed_batch, log_predictions, write_parquet_atomically
from modelops.tasks.scoring import file_digest, read_batch_task, score_frame_task


class Scored(BaseModel):
    model: str
    version: str
    rows: int
    output_path: str
    batch_id: str
    positive_rate: float | None = None
    challenger: str | None = None
    challenger_rows: int = 0


def serving_challenger(spec: LifecycleSpec) -> str | None:
    """The approved @challenger that shares (champion_challenger) or shadows (shadow) the traffic, if any."""
    if spec.deploy.strategy == "champion":
        return None
    platform = get_platform()
    version = platform.catalog.version_for_alias(spec.name, CHALLENGER)
    if version is None or platform.store.approval_status(spec.name, version) != APPROVED:
        return None  # a retrain's candidate is not approved yet: it sees no traffic
    return version


def routed_to_challenger(ids: pd.Series, share: float) -> np.ndarray:
    """Stable split by prediction id: the same request always goes to the same side."""
    buckets = pd.util.hash_array(ids.astype(str).to_numpy()) % 10_000
    return buckets < int(share * 10_000)


@flow(name="score", log_prints=True)
def score(model: ModelName, input_path: str, version: Version | None = None, output_path: str | None = None) -> Scored:
    """Score with `version`, or with the current @champion when none is given."""
    spec = load_spec(model)
    platform = get_platform()
    catalog = platform.catalog
    role = "pinned" if version else CHAMPION
    version = version or catalog.version_for_alias(spec.name, CHAMPION)
    if version is None:
        raise CatalogError(f"{model} has no @champion to score with", "deploy an approved version first")
    if platform.store.approval_status(spec.name, version) != APPROVED:
        raise NotApprovedError(f"{model} v{version} is not approved for scoring", "approve and deploy it first")
    pyfunc = catalog.load_for_serving(spec.name, version, spec.validation.security)  # refuses retired and unscanned versions
    source = Path(input_path).resolve()
    frame = read_batch_task(source)
    digest = file_digest(source)
    try:
        outputs, log = score_frame_task(spec, pyfunc, catalog.input_columns(spec.name, version), frame, str(source))
    except ModelOpsError as exc:
        log_failed_batch(platform, spec, version, role, frame, str(source), digest, str(exc))
        raise
    outputs["version"] = version
    challenger = serving_challenger(spec) if role == CHAMPION else None
    challenger_rows = 0
    if challenger is not None:
        shadow = spec.deploy.strategy == "shadow"
        # A shadow scores every request unserved; a challenger answers only the requests routed to it.
        routed = (np.ones(len(frame), dtype=bool) if shadow
                  else routed_to_challenger(outputs["prediction_id"], spec.deploy.challenger_traffic_share))
        ch_outputs, ch_log = score_frame_task(spec, catalog.load_for_serving(spec.name, challenger, spec.validation.security),
                                              catalog.input_columns(spec.name, challenger), frame.loc[routed],
                                              str(source))
        log_predictions(platform, spec, challenger, "shadow" if shadow else CHALLENGER, ch_log, str(source), digest)
        challenger_rows = len(ch_log)
        if not shadow:
            outputs.loc[routed, ["prediction", "score"]] = ch_outputs[["prediction", "score"]].to_numpy()
            outputs.loc[routed, "version"] = challenger
            log = log[~routed]
    target = Path(output_path) if output_path else (
        platform.settings.outputs_dir / spec.name / f"{source.stem}.v{version}.parquet")
    write_parquet_atomically(outputs, target)
    batch = log_predictions(platform, spec, version, role, log, str(source), digest)
    positive_rate = float(outputs["prediction"].mean()) if spec.task == "classification" else None
    record_stage(stage="score", action="score-batch", model=spec.name, version=version, outcome="scored",
                 evidence={"input": str(source), "output": str(target), "rows": len(outputs), "batch_id": batch.id,
                           "strategy": spec.deploy.strategy, "challenger": challenger,
                           "challenger_rows": challenger_rows},
                 event=events.SCORED)
    print(f"{model} v{version}: scored {len(outputs)} rows of {source.name} -> {target}")
    return Scored(model=model, version=version, rows=len(outputs), output_path=str(target), batch_id=batch.id,
                  positive_rate=positive_rate, challenger=challenger, challenger_rows=challenger_rows)
