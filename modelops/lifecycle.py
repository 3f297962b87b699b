"""Names of the life cycle: its stages, the states a version passes through, the verdicts of its gates and the
outcomes of a retrain. One place, so a misspelt name is an error, not a silent no-op.

Each is a `StrEnum`: a member *is* its string, so audit records, store rows and MLflow tags keep exactly the
values they always had (`ApprovalStatus.approved == "approved"`).
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Stage(str, Enum):
    """A life cycle stage; each has a standard flow in flows/<stage>.py that a spec may override per model."""

    register = "register"
    validate = "validate"
    approve = "approve"
    deploy = "deploy"
    score = "score"
    monitor = "monitor"
    retrain = "retrain"
    retire = "retire"


class Role(StrEnum):
    """The MLflow alias (and store deployment role) a serving version holds."""

    champion = "champion"
    challenger = "challenger"


class VersionState(StrEnum):
    """A version's life cycle state as its MLflow `lifecycle_state` tag mirrors it."""

    registered = "registered"
    validated = "validated"
    validation_failed = "validation_failed"
    approved = "approved"
    rejected = "rejected"
    pending_approval = "pending_approval"
    serving = "serving"
    challenger = "challenger"
    standby = "standby"
    retired = "retired"


# States before a version serves: validate and approve may move between them, never out of serving ones.
PRE_SERVING_STATES = frozenset({VersionState.registered, VersionState.validated, VersionState.validation_failed,
                                VersionState.approved, VersionState.rejected, VersionState.pending_approval})


class ApprovalStatus(StrEnum):
    approved = "approved"
    rejected = "rejected"
    pending = "pending"


class GateStatus(StrEnum):
    """The verdict of validation as a whole, and of its security scan."""

    passed = "passed"
    failed = "failed"


class ComparisonOutcome(StrEnum):
    """The audit outcome of a retrain's champion/challenger comparison."""

    challenger_wins = "challenger-wins"
    champion_kept = "champion-kept"


class RetrainOutcome(StrEnum):
    promoted = "promoted"
    champion_kept = "champion-kept"
    failed_validation = "failed-validation"
    not_approved = "not-approved"
    already_champion = "already-champion"


class AuditOutcome(StrEnum):
    """Outcomes of audit records that are not a status above."""

    deployed = "deployed"
    ended = "ended"
    retired = "retired"
    challenger = "challenger"
    passed = "passed"
    failed = "failed"


# The audit actions that register a version (trained here, or an external model file).
REGISTER_ACTIONS = ("train-and-register", "register-external")
