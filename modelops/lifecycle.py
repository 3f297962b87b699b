"""Names of the life cycle: its stages. One place, so a misspelt stage is an error, not a silent no-op."""

from __future__ import annotations

from enum import Enum


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
