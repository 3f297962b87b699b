"""The reported attack, end to end: a real flight-delay pipeline whose skops file gained a reduce node that calls
`numpy.testing._private.utils.runstring` with code. Registered by URI, it never runs its code at any stage and
never gets near serving."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from modelops.errors import NotApprovedError
from tests.tasks.model_dirs import edit_schema
from tests.tasks.test_security_corpus import globals_call_node, python

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
MODEL = "flight-delay"


def crafted_run(marker: Path) -> str:
    """Log a really trained flight-delay pipeline, then plant the payload in its stored skops file."""
    from modelops.platform import get_platform
    from modelops.spec import Window, load_spec
    from tasks.training import prepare_training, train_and_log

    platform = get_platform()
    spec = load_spec(MODEL)
    frame, inputs = prepare_training(spec, Window(start=date(2013, 1, 1), end=date(2013, 1, 15)))
    logged = train_and_log(spec, frame, inputs, platform.catalog)
    [stored] = list(platform.settings.artifact_root.rglob("model.skops"))  # the one model logged here
    edit_schema(stored.parent, lambda schema: schema["content"]["content"].update(
        memory=globals_call_node("numpy.testing._private.utils.runstring", python(marker))))
    return logged.model_uri


def test_a_crafted_skops_file_runs_no_code_and_never_serves(state_home: Path, tmp_path: Path) -> None:
    from modelops.demo import write_traffic
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.score import score
    from flows.validate import validate
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    marker = tmp_path / "marker"
    version = register(model=MODEL, model_uri=crafted_run(marker)).version
    validated = validate(model=MODEL, version=version)
    assert not validated.passed
    assert any("numpy.testing._private.utils.runstring" in failure for failure in validated.failures)
    decision = approve(model=MODEL, version=version)
    assert decision.status == "rejected"
    with pytest.raises(NotApprovedError):
        deploy(model=MODEL, version=version)
    batch, _ = write_traffic(get_platform(), load_spec(MODEL), date(2013, 2, 15), date(2013, 2, 16))
    with pytest.raises(NotApprovedError):
        score(model=MODEL, input_path=str(batch), version=version)
    assert not marker.exists()
    audited = [(e.stage, e.outcome) for e in get_platform().store.audit_trail(MODEL)]
    assert ("validate", "failed") in audited and ("approve", "rejected") in audited
