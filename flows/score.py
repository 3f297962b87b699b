"""score: score a batch file (Parquet/CSV) with the deployed version and keep the prediction log."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from pydantic import BaseModel

from modelops.lineage_events import STAGE_HOOKS
from modelops.errors import ModelOpsError
from flows.dispatch import hand_over
from flows.parameters import ModelName, Version
from modelops.lifecycle import Role, Stage
from modelops.platform import get_platform
from modelops.spec import LifecycleSpec, load_spec
from tasks.integrity import load_verified_model
from tasks.outputs import check_overwrite, output_target
from tasks.prediction_log import batch_id_for, log_failed_batch_task
from tasks.scoring import file_digest, read_batch_task, score_frame_task
from tasks.serving import ChallengerShare, record_scored_batch_task, score_challenger_task, scoring_version_task


class Scored(BaseModel):
    model: str
    version: str
    rows: int
    output_path: str
    batch_id: str
    positive_rate: float | None = None
    challenger: str | None = None
    challenger_rows: int = 0


@flow(name="score", log_prints=True, **STAGE_HOOKS)
def score(model: ModelName, input_path: str, version: Version | None = None, output_path: str | None = None) -> Scored:
    """Score with `version`, or with the version the governance store deploys as champion. `output_path` is a
    Parquet file name inside the output root (default `<model>/<input>.v<version>.parquet`)."""
    handed, result = hand_over(Stage.score, dict(model=model, input_path=input_path, version=version,
                               output_path=output_path))
    return result if handed else standard_score(load_spec(model), input_path, version, output_path)


def standard_score(spec: LifecycleSpec, input_path: str, version: str | None = None,
                   output_path: str | None = None) -> Scored:
    platform = get_platform()
    version, role = scoring_version_task(platform, spec, version)
    source = Path(input_path).resolve()
    digest = file_digest(source) if source.is_file() else ""
    target = output_target(platform.settings.outputs_dir, output_path,
                           f"{spec.name}/{source.stem}.v{version}.parquet")
    check_overwrite(target, batch_id_for(spec.name, version, role, digest))
    model = load_verified_model(platform, spec, version, "scoring")  # refuses retired, unscanned, changed files
    frame = read_batch_task(source)
    try:
        outputs, log = score_frame_task(spec, model, model.columns, frame, str(source))
    except ModelOpsError as exc:
        log_failed_batch_task(platform, spec, version, role, frame, str(source), digest, str(exc))
        raise
    outputs["version"] = version
    challenger = ChallengerShare(None, 0)
    if role == Role.champion:
        outputs, log, challenger = score_challenger_task(platform, spec, frame, outputs, log, str(source), digest)
    batch_id = record_scored_batch_task(platform, spec, version, role, outputs, log, source, digest, target,
                                        challenger)
    print(f"{spec.name} v{version}: scored {len(outputs)} rows of {source.name} -> {target}")
    return Scored(model=spec.name, version=version, rows=len(outputs), output_path=str(target), batch_id=batch_id,
                  positive_rate=float(outputs["prediction"].mean()) if spec.task == "classification" else None,
                  challenger=challenger.version, challenger_rows=challenger.rows)
