"""Every Prefect event the platform emits, in one place.

Resources are `modelops.model.<name>`; the version (and what the next stage needs) travels in the payload,
so deployment triggers in prefect.yaml can template it into the next run's parameters.
"""

from __future__ import annotations

from typing import Any

PREFIX = "modelops.model"

REGISTERED = f"{PREFIX}.registered"
VALIDATED = f"{PREFIX}.validated"
VALIDATION_FAILED = f"{PREFIX}.validation-failed"
APPROVED = f"{PREFIX}.approved"
REJECTED = f"{PREFIX}.rejected"
APPROVAL_PENDING = f"{PREFIX}.approval-pending"
DEPLOYED = f"{PREFIX}.deployed"
SCORED = f"{PREFIX}.scored"
MONITORED = f"{PREFIX}.monitored"
DRIFT_DETECTED = f"{PREFIX}.drift-detected"
PERFORMANCE_DEGRADED = f"{PREFIX}.performance-degraded"
DATA_QUALITY_FAILED = f"{PREFIX}.data-quality-failed"
SLA_BREACHED = f"{PREFIX}.sla-breached"
BIAS_DETECTED = f"{PREFIX}.bias-detected"
RETRAINED = f"{PREFIX}.retrained"
PROMOTED = f"{PREFIX}.promoted"
RETIRED = f"{PREFIX}.retired"

ALL_EVENTS = (
    REGISTERED, VALIDATED, VALIDATION_FAILED, APPROVED, REJECTED, APPROVAL_PENDING, DEPLOYED, SCORED,
    MONITORED, DRIFT_DETECTED, PERFORMANCE_DEGRADED, DATA_QUALITY_FAILED, SLA_BREACHED, BIAS_DETECTED, RETRAINED,
    PROMOTED, RETIRED,
)


# Resource label a breach event carries when it asks for retraining (the retrain trigger matches on it), so that
# breaches inside the retrain cool-down, or of models whose spec does not retrain, start nothing.
RETRAIN_LABEL = "modelops.retrain"
# Resource label of registered / validated / approved events: "continue" lets the triggers take the version on
# to the next stage; a retrain's challenger says "stop", because only winning the comparison promotes it.
CHAIN_LABEL = "modelops.chain"
# The same flag as a version tag, for the MLflow UI; the event label comes from the governance store's record.
CHAIN_TAG = "modelops.chain"


def model_resource(model: str, labels: dict[str, str] | None = None) -> dict[str, str]:
    return {"prefect.resource.id": f"{PREFIX}.{model}", "prefect.resource.name": model, **(labels or {})}


def emit_model_event(event: str, model: str, version: str | None, payload: dict[str, Any] | None = None,
                     labels: dict[str, str] | None = None) -> None:
    """Emit a model life cycle event; the version is always in the payload."""
    from prefect.events import emit_event

    if event not in ALL_EVENTS:
        raise ValueError(f"unknown event {event!r}; add it to modelops.events")
    body = {"model": model, "version": version, **(payload or {})}
    emit_event(event=event, resource=model_resource(model, labels), payload=body)
