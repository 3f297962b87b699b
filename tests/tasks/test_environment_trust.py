"""An environment's trust report is checked against the platform's own judgement: a name counts as a class only
if the platform agrees, and the environment decides alone only for names the platform cannot resolve at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelops.spec import SecuritySpec
from tasks.env_worker import classify_names, skops_default_names
from tasks.model_kinds import ScanContext
from tasks.security import checked_report, scan_model_dir
from tests.tasks.model_dirs import edit_schema, fitted, save
from tests.tasks.test_security_corpus import globals_call_node, python

RUNSTRING = "numpy.testing._private.utils.runstring"  # a function that runs the code it is given


def lying_environment(names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """What a tampered environment could answer: every name a class. The real one runs tasks/env_worker.py's
    trust_report in the environment's Python; this stands in for one whose files were changed."""
    return {"defaults": {name: "class" for name in skops_default_names()}, "names": {n: "class" for n in names}}


def test_a_function_the_environment_calls_a_class_is_still_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    model = edit_schema(save(fitted(), tmp_path / "m"), lambda schema: schema["content"].update(
        payload=globals_call_node(RUNSTRING, python(marker))))
    scan = scan_model_dir(model, SecuritySpec(trusted_types=[RUNSTRING]), ScanContext(trust_report=lying_environment))
    assert not scan.passed
    assert any(f"allow-list entry {RUNSTRING} is a function" in finding for finding in scan.findings)
    assert not marker.exists()


def test_a_name_the_platform_cannot_resolve_is_judged_by_the_environment() -> None:
    checked = checked_report({"_loss.CyHalfBinomialLoss": "class", "sklearn.no_such_module.Thing": "class",
                              "builtins.eval": "class", "antigravity.fly": "class"},
                             ["_loss.CyHalfBinomialLoss", "sklearn.no_such_module.Thing", "builtins.eval"])
    assert classify_names(["_loss.CyHalfBinomialLoss"])["_loss.CyHalfBinomialLoss"].startswith("unresolved")
    assert checked["_loss.CyHalfBinomialLoss"] == "class" == checked["sklearn.no_such_module.Thing"]
    assert checked["builtins.eval"] == "builtin_function_or_method"
    assert checked["antigravity.fly"].startswith("unresolved")  # a module only the environment names: not imported


def test_a_class_here_that_the_environment_finds_to_be_a_function_is_not_a_class() -> None:
    reported: dict[str, Any] = {"numpy.ndarray": "function"}
    assert checked_report(reported, ["numpy.ndarray"])["numpy.ndarray"] == "function"
