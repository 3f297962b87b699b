"""Reproducing a registered version: retrain it from what was recorded (data window, parameters, code) and compare
the new model's predictions with the registered model's on the rows of that window.

Nothing is registered, logged to MLflow or deployed: the retrained model lives in memory only. The outcome is
appended to the audit trail (stage `reproduce`), so the record says when a version was last shown reproducible.
Where the inputs differ from the record (the data the loader returns for the window, the trainer's code, the
parameters) the report says so, since a mismatch then has a known cause."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelops.errors import CatalogError, ModelOpsError, UnsafeModelError
from modelops.lineage import registration_record, run_params
from modelops.platform import Platform
from modelops.spec import LifecycleSpec, Window, load_spec
from modelops.store.records import GovernedVersion

DEFAULT_TOLERANCE = 1e-6  # largest absolute difference of scores (probability, or predicted value) that matches
STAGE = "reproduce"


@dataclass(frozen=True)
class Reproduction:
    model: str
    version: str
    matched: bool
    tolerance: float
    rows: int
    max_abs_difference: float
    mean_abs_difference: float
    decisions_agree: float  # share of rows whose decision (class or value) is the same
    window_start: str
    window_end: str
    data_hash_recorded: str | None
    data_hash_now: str
    rows_recorded: int | None
    code_version_recorded: str | None
    code_version_now: str
    params: dict[str, Any]
    params_from: str  # where the parameters came from
    params_verified: bool  # the recorded fingerprint holds for them
    notes: list[str]

    @property
    def data_same(self) -> bool:
        return self.data_hash_recorded == self.data_hash_now

    @property
    def code_same(self) -> bool:
        return self.code_version_recorded == self.code_version_now

    @property
    def trainer_same(self) -> bool:
        """The trainer module's source is the recorded one (the commit may have moved for other files)."""
        return _source_digest(self.code_version_recorded) == _source_digest(self.code_version_now)

    def as_data(self) -> dict[str, Any]:
        return {**asdict(self), "data_same": self.data_same, "code_same": self.code_same,
                "trainer_same": self.trainer_same}


def _source_digest(code_version: str | None) -> str | None:
    """The trainer module's hash part of a code version (`<source hash>@<commit>`)."""
    return code_version.split("@", 1)[0] if code_version else None


def _commit(code_version: str | None) -> str | None:
    return code_version.split("@", 1)[1] if code_version and "@" in code_version else None


def code_note(recorded: str | None, now: str) -> str | None:
    """What differs between the recorded code version and the checkout's, and what that means."""
    if recorded == now:
        return None
    if recorded is None:
        return "no code version was recorded for this version: retrained with the current checkout's code"
    if _source_digest(recorded) == _source_digest(now):
        return (f"commit differs (recorded {_commit(recorded) or '-'}, checkout {_commit(now) or '-'}) but the trainer "
                f"module's source is the same ({_source_digest(now)}): other files changed since")
    return (f"the trainer's code differs from the recorded version: recorded {recorded}, current checkout {now}; "
            f"retrained with the current code (check out commit {_commit(recorded) or '?'} to retrain with the "
            "recorded code)")


def _candidate_params(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion,
                      lineage: Any) -> list[tuple[str, dict[str, Any]]]:
    trail = platform.store.audit_trail(spec.name)
    registered = registration_record(trail, governed.version)
    found = []
    if registered is not None and isinstance(registered.evidence.get("params"), dict):
        found.append(("the register record", dict(registered.evidence["params"])))
    logged = run_params(platform, lineage.run_id)
    if logged:
        found.append(("the MLflow training run", logged))
    found.append(("today's spec", dict(spec.training.params)))
    return found


def choose_params(platform: Platform, spec: LifecycleSpec, governed: GovernedVersion, lineage: Any,
                  window: Window) -> tuple[dict[str, Any], str, bool]:
    """(params, where from, verified): the first recorded parameters for which the version's fingerprint (which
    covers window, data hash, code version and parameters) holds; else the first recorded ones, unverified."""
    from tasks.training import TrainingInputs

    candidates = _candidate_params(platform, spec, governed, lineage)
    for source, params in candidates:
        inputs = TrainingInputs(window=window, data_hash=lineage.data_hash or "", code_version=lineage.code_version or "",
                                params=params, rows=0)
        if inputs.fingerprint == governed.fingerprint:
            return params, source, True
    source, params = candidates[0]
    return params, source, False


def fresh_scores(estimator: Any, features: pd.DataFrame, task: str, kind: str = "sklearn") -> np.ndarray:
    """What the registered model's pyfunc answers, from an in-memory estimator: the positive-class probability of a
    classifier (its pyfunc predicts with predict_proba), the value of a regressor. Other kinds score through the
    predictor their loader builds (tasks.model_kinds)."""
    if kind != "sklearn":
        from tasks.model_kinds import KINDS
        from tasks.scoring import predict_scores

        return predict_scores(KINDS[kind].wrap(estimator), features, task)
    if task == "classification":
        return np.asarray(estimator.predict_proba(features))[:, -1].astype("float64")
    return np.asarray(estimator.predict(features)).reshape(len(features)).astype("float64")


def reproduce_version(platform: Platform, model: str, version: str,
                      tolerance: float = DEFAULT_TOLERANCE) -> Reproduction:
    from tasks.audit import record_stage
    from tasks.data import features_of
    from tasks.integrity import open_pinned_model
    from tasks.schema import conform_to_signature
    from tasks.scoring import decide, predict_scores
    from tasks.training import prepare_training, training_environment

    if tolerance < 0:
        raise ModelOpsError(f"tolerance {tolerance} is negative", "give a tolerance of 0 or more, e.g. 1e-6")
    spec = load_spec(model)
    governed = platform.store.governed_version(spec.name, version)
    if governed is None:
        raise CatalogError(f"{spec.name} v{version} has no governance record",
                           f"`modelops lineage {spec.name}` lists its versions")
    lineage = next((r for r in platform.store.lineage(spec.name) if r.version == version), None)
    if governed.source != "trained" or lineage is None or governed.train_start is None or governed.train_end is None:
        raise ModelOpsError(f"{spec.name} v{version} was registered by URI (built outside the platform): no data "
                            "window, code version or parameters were recorded to retrain it from",
                            "reproduce a version the platform trained (`modelops lineage` shows which)")
    window = Window(start=governed.train_start.date(), end=governed.train_end.date())
    frame, now = prepare_training(spec, window)
    params, params_from, verified = choose_params(platform, spec, governed, lineage, window)
    features = features_of(spec, frame)
    environment = training_environment(spec)
    if environment is not None:  # trained (and scored) again in its own environment, as it was registered
        from tasks.isolated_training import retrained_scores

        new = retrained_scores(spec, environment, features, frame[spec.data.target], dict(params),
                               platform.settings.home)
    else:
        estimator = spec.entry("trainer")(features, frame[spec.data.target], dict(params))
        new = fresh_scores(estimator, features, spec.task, spec.training.kind)
    # The registered model as pinned and scanned: a retired version too (reproducing it is reading, not serving).
    scan, registered = open_pinned_model(platform, spec, governed, "reproduction")
    if registered is None:
        raise UnsafeModelError(f"{spec.name} v{version} no longer passes the security scan: {scan.findings}",
                               "nothing was loaded; find out who changed its files")
    try:
        old = predict_scores(registered, conform_to_signature(frame, registered.columns, f"{spec.name} window"),
                             spec.task)
    finally:
        registered.close()  # a version in its own environment: its worker stops here
    difference = np.abs(new - old)
    agree = decide(new, spec.task, spec.deploy.decision_threshold) == decide(old, spec.task,
                                                                             spec.deploy.decision_threshold)
    registered_evidence = registration_record(platform.store.audit_trail(spec.name), version)
    rows_recorded = registered_evidence.evidence.get("rows") if registered_evidence else None
    notes = [note for note in [code_note(lineage.code_version, now.code_version)] if note]
    if lineage.data_hash != now.data_hash:
        notes.append(f"the data differs: the loader now returns {now.rows} rows with content sha256 "
                     f"{now.data_hash[:12]}.. for {window.start}..{window.end}, the version was trained on "
                     f"{rows_recorded if rows_recorded is not None else '?'} rows with "
                     f"{(lineage.data_hash or '-')[:12]}..: the source changed since; compared on today's rows")
    if not verified:
        notes.append(f"the parameters from {params_from} do not reproduce the recorded fingerprint "
                     f"({governed.fingerprint}): they may not be the ones trained with")
    max_diff = float(np.nanmax(difference)) if len(difference) else 0.0
    result = Reproduction(
        model=spec.name, version=version, matched=bool(max_diff <= tolerance), tolerance=tolerance, rows=len(frame),
        max_abs_difference=max_diff, mean_abs_difference=float(np.nanmean(difference)) if len(difference) else 0.0,
        decisions_agree=float(agree.mean()) if len(agree) else 1.0, window_start=str(window.start),
        window_end=str(window.end), data_hash_recorded=lineage.data_hash, data_hash_now=now.data_hash,
        rows_recorded=rows_recorded, code_version_recorded=lineage.code_version, code_version_now=now.code_version,
        params=params, params_from=params_from, params_verified=verified, notes=notes)
    data = result.as_data()
    record_stage(stage=STAGE, action="retrain-and-compare", model=spec.name, version=version,
                 outcome="matched" if result.matched else "differs", event=None,
                 evidence={k: data[k] for k in ("tolerance", "rows", "max_abs_difference", "decisions_agree",
                                                "data_same", "code_same", "trainer_same", "code_version_now",
                                                "params_verified",
                                                "notes")})
    return result


def _code_verdict(r: dict[str, Any]) -> str:
    if r["code_same"]:
        return "same version as recorded"
    return "trainer's source same as recorded, other commits since" if r["trainer_same"] else \
        "DIFFERS from the record"


def reproduction_text(r: dict[str, Any]) -> str:
    verdict = "MATCHES" if r["matched"] else "DOES NOT MATCH"
    lines = [f"{r['model']} v{r['version']}: the retrained model {verdict} the registered one on the "
             f"{r['rows']} rows of {r['window_start']}..{r['window_end']} (max |score difference| "
             f"{r['max_abs_difference']:.3g}, tolerance {r['tolerance']:g}; decisions agree on "
             f"{r['decisions_agree']:.2%} of rows)",
             f"  data: {'same content as recorded' if r['data_same'] else 'DIFFERS from the record'} "
             f"(sha256 {r['data_hash_now'][:12]}.., {r['rows']} rows)",
             f"  code: {_code_verdict(r)} (recorded {r['code_version_recorded'] or '-'}, checkout "
             f"{r['code_version_now']})",
             f"  params: {r['params']} from {r['params_from']}"
             + (" (the recorded fingerprint holds for them)" if r["params_verified"] else " (UNVERIFIED)"),
             "  nothing was registered or deployed: the retrained model was only compared, in memory"]
    lines += [f"  note: {note}" for note in r["notes"]]
    return "\n".join(lines)
