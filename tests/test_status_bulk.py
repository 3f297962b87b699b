"""`modelops status` reads every model's facts in a handful of queries: what it reports must be exactly what it
reported when it asked MLflow and the store model by model (the expected values below were printed by that
per-model implementation on this very scenario)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from benchmarks.catalog_scale import _fact, model_name, populate_catalog, populate_store


def _scenario(platform: Any) -> None:
    """Three models, three versions each (v3 @champion, v2 @challenger), then every kind of disagreement and gate
    state the report distinguishes."""
    from modelops.catalog import TAG_VALIDATION
    from modelops.store.records import MonitoringPoint

    populate_catalog(platform, 3, 3)
    populate_store(platform, 3, 3)
    store, client = platform.store, platform.catalog.client
    a, b, c = (model_name(i) for i in range(3))
    # a: v1 retired, a tag edited in MLflow, a version made in MLflow around the platform, monitoring and sweeps
    store.record(_fact(a, "1", "retire", "retire-version", "retired", {}), store.retire_version(a, "1", "old"))
    client.set_model_version_tag(a, "2", TAG_VALIDATION, "failed")
    client.create_model_version(a, source=(platform.settings.artifact_root / "stray").as_uri())
    for kind, verdict in (("sweep", "ok"), ("monitor", "ok"), ("monitor", "breach"), ("sweep", "drift")):
        store.record_monitoring_run(model=a, version="3", window_start=datetime(2025, 3, 1, tzinfo=timezone.utc),
                                    window_end=datetime(2025, 3, 8, tzinfo=timezone.utc), rows=100, verdict=verdict,
                                    report_path=None, kind=kind, points=[
                                        MonitoringPoint("drift", "share_drifted", 0.5, 0.3, verdict),
                                        MonitoringPoint("drift-column", "x1", 0.9, 0.1, verdict),
                                        MonitoringPoint("volume", "rows", 100.0, None, "ok")])
    # b: @champion moved in MLflow, @challenger removed; v2's approval rejected, v1's pending
    client.set_registered_model_alias(b, "champion", "1")
    client.delete_registered_model_alias(b, "challenger")
    store.record(_fact(b, "2", "approve", "human-decision", "rejected", {}),
                 store.set_approval(b, "2", "rejected", ["no"], "bench"))
    store.record(_fact(b, "1", "approve", "human-decision", "pending", {}),
                 store.set_approval(b, "1", "pending", [], "bench"))
    # c: no challenger serves any more; a fourth version registered but never judged
    store.record(_fact(c, None, "deploy", "end-challenger", "ended", {}), store.end_role(c, "challenger", "gone"))
    client.delete_registered_model_alias(c, "challenger")
    manifest = {"MLmodel": "0" * 64}
    client.create_model_version(c, source=(platform.settings.artifact_root / "c4").as_uri())
    store.record(_fact(c, "4", "register", "register-external", "registered", {}), store.add_version(
        model=c, version="4", source="external", fingerprint="f" * 64, chain="continue", content_hash="1" * 64,
        manifest=manifest, registered_by="bench"))


def _comparable(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lead times depend on when the test ran: only whether one is known is compared."""
    return [{**model, "versions": [{**v, "lead_time": v["lead_time"] != "-"} for v in model["versions"]]}
            for model in data]


def _version(version: str, serves_as: list[str], aliases: list[str], state: str, validation: str | None,
             approval: str | None, value: float | None, lead: bool, day: int) -> dict[str, Any]:
    return {"version": version, "serves_as": serves_as, "mlflow_aliases": aliases, "state": state,
            "trained_on": f"2025-01-{day:02d}..2025-03-01", "validation": validation, "approval": approval,
            "holdout_metric": "roc_auc", "holdout_value": value, "lead_time": lead}


def _monitoring(verdict: str) -> dict[str, Any]:
    return {"version": "3", "window": ["2025-03-01T00:00:00", "2025-03-08T00:00:00"], "verdict": verdict,
            "values": [{"check": "drift", "metric": "share_drifted", "value": 0.5, "limit": 0.3, "verdict": verdict},
                       {"check": "drift-column", "metric": "x1", "value": 0.9, "limit": 0.1, "verdict": verdict},
                       {"check": "volume", "metric": "rows", "value": 100.0, "limit": None, "verdict": "ok"}]}


A, B, C = (model_name(i) for i in range(3))
EXPECTED: list[dict[str, Any]] = [
    {"model": A, "versions": [
        _version("1", [], [], "retired", "passed", "approved", 0.7, False, 2),
        _version("2", ["challenger"], ["@challenger"], "serving", "passed", "approved", 0.7, False, 3),
        _version("3", ["champion"], ["@champion"], "serving", "passed", "approved", 0.7, True, 4)],
     "findings": [f"FINDING: MLflow holds v4 of {A}, which has no governance record: it never serves",
                  f"FINDING: MLflow tag lifecycle_state of {A} v1 says 'standby', the store says 'retired'",
                  f"FINDING: MLflow tag validation_status of {A} v2 says 'failed', the store says 'passed'"],
     "monitoring": _monitoring("breach"), "sweep": {"version": "3", "verdict": "drift"}},
    {"model": B, "versions": [
        _version("1", [], ["@champion"], "pending", "passed", "pending", 0.7, False, 2),
        _version("2", ["challenger"], [], "serving", "passed", "rejected", 0.7, False, 3),
        _version("3", ["champion"], [], "serving", "passed", "approved", 0.7, True, 4)],
     "findings": [f"FINDING: MLflow alias @champion of {B} names v1, but the governance store serves v3 "
                  f"(`modelops reconcile {B}` resets it)",
                  f"FINDING: MLflow alias @challenger of {B} names no version, but the governance store serves v2 "
                  f"(`modelops reconcile {B}` resets it)",
                  f"FINDING: MLflow tag approval_status of {B} v1 says 'approved', the store says 'pending'",
                  f"FINDING: MLflow tag approval_status of {B} v2 says 'approved', the store says 'rejected'"],
     "monitoring": None, "sweep": None},
    {"model": C, "versions": [
        _version("1", [], [], "approved", "passed", "approved", 0.7, False, 2),
        _version("2", [], [], "approved", "passed", "approved", 0.7, False, 3),
        _version("3", ["champion"], ["@champion"], "serving", "passed", "approved", 0.7, True, 4),
        {**_version("4", [], [], "registered", None, None, None, False, 1), "trained_on": "external"}],
     "findings": [], "monitoring": None, "sweep": None},
]


@pytest.fixture
def platform(state_home: Path) -> Any:
    from modelops.platform import get_platform

    platform = get_platform()
    _scenario(platform)
    return platform


@pytest.mark.parametrize("per_model_reads", [0, 10], ids=["mlflow-read-at-once", "mlflow-read-per-model"])
def test_status_of_every_model_is_what_the_per_model_reading_reported(platform: Any, per_model_reads: int,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops import status_facts
    from modelops.reporting import status_data

    monkeypatch.setattr(status_facts, "PER_MODEL_READS", per_model_reads)

    models = platform.catalog.model_names()
    assert _comparable(status_data(platform, models, {m: "roc_auc" for m in models})) == EXPECTED
    assert _comparable(status_data(platform, None, {m: "roc_auc" for m in models})) == EXPECTED


def test_status_of_one_model_is_its_part_of_every_model_status(platform: Any) -> None:
    from modelops.reporting import status_data

    assert _comparable(status_data(platform, [B], {B: "roc_auc"})) == [EXPECTED[1]]


def test_status_text_names_a_model_without_any_governed_version(platform: Any) -> None:
    """A model MLflow holds that the platform never registered: its versions are findings, its table empty."""
    from modelops.reporting import status_text

    platform.catalog.client.create_registered_model("outsider")
    platform.catalog.client.create_model_version("outsider", source=(platform.settings.artifact_root / "o").as_uri())
    text = status_text(platform, None, {})
    assert "FINDING: MLflow holds v1 of outsider, which has no governance record: it never serves" in text


def test_store_only_status_is_the_full_status_without_what_only_mlflow_says(platform: Any) -> None:
    """--store-only never reads MLflow: every governed model's versions, roles, verdicts and monitoring as in the
    full status, MLflow's aliases unknown (null) and no disagreement with MLflow claimed either way."""
    from modelops.reporting import STORE_ONLY_NOTE, status_data, status_text

    platform.catalog.client.create_registered_model("outsider")  # MLflow only: the store has never heard of it
    metrics = {m: "roc_auc" for m in (A, B, C)}
    unknown_aliases = [{**model, "findings": [], "versions": [{**v, "mlflow_aliases": None} for v in model["versions"]]}
                       for model in EXPECTED]
    assert _comparable(status_data(platform, None, metrics, mlflow=False)) == unknown_aliases
    text = status_text(platform, None, metrics, mlflow=False)
    assert "not read" in text and text.rstrip().endswith(STORE_ONLY_NOTE) and "outsider" not in text


def test_status_of_an_unknown_model_says_so_and_how_to_list_the_models(
        platform: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    assert main(["status", "no-such-model"]) != 0
    err = capsys.readouterr().err
    assert "no model 'no-such-model' in the MLflow registry or the governance store" in err
    assert "`modelops status` without a model lists every model" in err


# MLflow's store pointed at a database that refuses connections; the governance store as the test made it.
MLFLOW_DOWN = {"MODELOPS_TRACKING_URI": "postgresql+psycopg://nobody@127.0.0.1:1/mlflow"}


def _with_mlflow_down(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env={**os.environ, **MLFLOW_DOWN}, text=True, capture_output=True,
                          timeout=300)


def test_store_only_status_answers_while_mlflows_store_cannot_be_opened(platform: Any) -> None:
    """`status --store-only` neither imports MLflow nor opens its store (seconds of a command's start): it still
    reports every governed version, where the full status, in the same environment, stops naming MLflow's store."""
    store_only = _with_mlflow_down("-m", "modelops.cli", "status", "--store-only", "--json", B)
    assert store_only.returncode == 0, store_only.stderr
    assert [v["version"] for v in json.loads(store_only.stdout)[0]["versions"]] == \
        [v["version"] for v in EXPECTED[1]["versions"]]
    full = _with_mlflow_down("-m", "modelops.cli", "status", B)
    assert full.returncode != 0 and "the MLflow tracking store at" in full.stderr and "cannot be opened" in full.stderr


def test_the_platform_of_a_stage_refuses_at_once_when_mlflows_store_cannot_be_opened(platform: Any) -> None:
    """A stage's platform opens MLflow before anything is changed (a deploy must not serve a version it then cannot
    mirror); only a platform asked for the store alone opens without it, and its store answers."""
    stage = _with_mlflow_down("-c", "from modelops.platform import get_platform; get_platform()")
    assert stage.returncode != 0 and "the MLflow tracking store at" in stage.stderr, stage.stderr
    store_alone = _with_mlflow_down("-c", "from modelops.platform import get_platform; "
                                          "print(get_platform(catalog=False).store.governed_models())")
    assert store_alone.returncode == 0, store_alone.stderr
    assert store_alone.stdout.strip() == repr(sorted([A, B, C]))
