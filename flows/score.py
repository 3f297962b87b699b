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
from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.lifecycle import ApprovalStatus, Stage
from modelops.platform import get_platform
from modelops.spec import LifecycleSpec, load_spec
from tasks.audit import record_stage
from tasks.integrity import load_verified_model, report_alias_findings
from tasks.outputs import check_overwrite, output_target, write_output
from tasks.prediction_log import batch_id_for, log_failed_batch, log_predictions
from tasks.scoring import file_digest, read_batch_task, score_frame_task


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
    """The approved version the store deploys as challenger, sharing (champion_challenger) or shadowing (shadow)
    the traffic, if any. MLflow's @challenger alias is not consulted."""
    if spec.deploy.strategy == "champion":
        return None
    platform = get_platform()
    version = platform.store.serving_version(spec.name, CHALLENGER)
    if version is None or platform.store.approval_status(spec.name, version) != ApprovalStatus.approved:
        return None
    return version


def routed_to_challenger(ids: pd.Series, share: float) -> np.ndarray:
    """Stable split by prediction id: the same request always goes to the same side."""
    buckets = pd.util.hash_array(ids.astype(str).to_numpy()) % 10_000
    return buckets < int(share * 10_000)


@flow(name="score", log_prints=True)
def score(model: ModelName, input_path: str, version: Version | None = None, output_path: str | None = None) -> Scored:
    """Score with `version`, or with the version the governance store deploys as champion. `output_path` is a
    Parquet file name inside the output root (default `<model>/<input>.v<version>.parquet`)."""
    handed, result = hand_over(Stage.score, dict(model=model, input_path=input_path, version=version,
                               output_path=output_path))
    return result if handed else standard_score(load_spec(model), input_path, version, output_path)


def standard_score(spec: LifecycleSpec, input_path: str, version: str | None = None,
                   output_path: str | None = None) -> Scored:
    model = spec.name
    platform = get_platform()
    store = platform.store
    role = "pinned" if version else CHAMPION
    if version is None:
        report_alias_findings(platform, spec, "scoring")
        version = store.serving_version(spec.name, CHAMPION)
    if version is None:
        raise CatalogError(f"{model} has no champion to score with", "deploy an approved version first")
    if store.approval_status(spec.name, version) != ApprovalStatus.approved:
        raise NotApprovedError(f"{model} v{version} is not approved for scoring", "approve and deploy it first")
    source = Path(input_path).resolve()
    digest = file_digest(source) if source.is_file() else ""
    target = output_target(platform.settings.outputs_dir, output_path,
                           f"{spec.name}/{source.stem}.v{version}.parquet")
    check_overwrite(target, batch_id_for(spec.name, version, role, digest))
    pyfunc = load_verified_model(platform, spec, version, "scoring")  # refuses retired, unscanned, changed files
    frame = read_batch_task(source)
    try:
        outputs, log = score_frame_task(spec, pyfunc, pyfunc.columns, frame, str(source))
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
        second = load_verified_model(platform, spec, challenger, "scoring")
        ch_outputs, ch_log = score_frame_task(spec, second, second.columns, frame.loc[routed], str(source))
        log_predictions(platform, spec, challenger, "shadow" if shadow else CHALLENGER, ch_log, str(source), digest)
        challenger_rows = len(ch_log)
        if not shadow:
            outputs.loc[routed, ["prediction", "score"]] = ch_outputs[["prediction", "score"]].to_numpy()
            outputs.loc[routed, "version"] = challenger
            log = log[~routed]
    batch = log_predictions(platform, spec, version, role, log, str(source), digest)
    write_output(outputs, target, batch.id)
    positive_rate = float(outputs["prediction"].mean()) if spec.task == "classification" else None
    record_stage(stage="score", action="score-batch", model=spec.name, version=version, outcome="scored",
                 evidence={"input": str(source), "output": str(target), "rows": len(outputs), "batch_id": batch.id,
                           "strategy": spec.deploy.strategy, "challenger": challenger,
                           "challenger_rows": challenger_rows},
                 event=events.SCORED)
    print(f"{model} v{version}: scored {len(outputs)} rows of {source.name} -> {target}")
    return Scored(model=model, version=version, rows=len(outputs), output_path=str(target), batch_id=batch.id,
                  positive_rate=positive_rate, challenger=challenger, challenger_rows=challenger_rows)
