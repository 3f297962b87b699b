"""The error vocabulary at the platform's boundaries.

Every error says what is wrong and how to fix it, so flows branch on the type and users read the message.
"""

from __future__ import annotations


class ModelOpsError(Exception):
    """Base class: `what` failed, and `fix` tells the user what to do about it."""

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}" + (f" -> {fix}" if fix else ""))

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Raised on a Dask worker, the error crosses to the flow pickled: it must keep `what` and `fix` apart.
        return type(self), (self.what, self.fix)


class SpecError(ModelOpsError):
    """A life cycle spec (configs/models/<name>.yaml) is missing or invalid."""


class DataError(ModelOpsError):
    """Training, holdout or batch data is missing, empty or unreadable."""


class SchemaMismatchError(DataError):
    """Input does not match the model's signature (a column is missing or has the wrong type)."""


class CatalogError(ModelOpsError):
    """The model catalog (MLflow) does not hold what was asked for."""


class UnsafeModelError(ModelOpsError):
    """A model artifact failed the security scan and must not be loaded."""


class NotApprovedError(ModelOpsError):
    """A version that is not approved was asked to serve."""


class RetiredVersionError(ModelOpsError):
    """A retired version was asked to serve or to be promoted."""


class ModelEnvironmentError(ModelOpsError):
    """A model's own environment (its logged library versions) cannot be built, or its scoring worker failed."""


class TamperedModelError(UnsafeModelError):
    """A model's files differ from the content hash pinned when it was registered."""


class StoreIntegrityError(ModelOpsError):
    """The governance store's records were changed outside the platform (audit chain broken, rows missing)."""


class OutputPathError(ModelOpsError):
    """A batch output would be written outside the output root or over a file that is not its own."""


class NotPermittedError(ModelOpsError):
    """The person (or service) acting may not do this: a role is missing, or a rule (four eyes) forbids it."""


class ApprovalClosedError(ModelOpsError):
    """A vote or decision came after the approval request was decided or its deadline passed."""
