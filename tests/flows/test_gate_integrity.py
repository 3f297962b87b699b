"""The gates cannot be walked around with ordinary access: an MLflow client that edits tags and aliases, write access
to the artifact store, the governance database or a flow parameter. Each test replays an attack that worked
before the governance store became the system of record."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import date
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
import yaml

from modelops.errors import CatalogError, NotApprovedError, OutputPathError, RetiredVersionError, TamperedModelError
from tests.slack_receiver import SlackReceiver, start_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
ROOT = Path(__file__).resolve().parents[2]
MODEL = "bike-demand"


@pytest.fixture
def receiver() -> Iterator[SlackReceiver]:
    found, server = start_receiver()
    yield found
    server.shutdown()


@pytest.fixture
def alerting_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: SlackReceiver) -> Path:
    """The shipped configs, with bike-demand's alerts going (through a saved block) to the local receiver."""
    from blocks.slack import SlackAlertChannel

    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    path = config_dir / "models" / f"{MODEL}.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["monitoring"]["alerts"] = {"slack_block": "integrity-alerts", "cooldown_hours": 6}
    path.write_text(yaml.safe_dump(raw))
    SlackAlertChannel(bot_token="xoxb-integrity", channel="#modelops", api_base_url=receiver.api_base_url).save(
        "integrity-alerts", overwrite=True)
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
    return config_dir


def traffic(name: str = "traffic") -> Path:
    """A real batch of July 2011 hours (inputs only) in the inbox."""
    from modelops.demo import write_traffic
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    batch, _ = write_traffic(get_platform(), load_spec(MODEL), date(2011, 7, 1), date(2011, 7, 8))
    return batch.rename(batch.with_name(f"{name}.parquet"))


def mlflow_client():  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    from modelops.platform import get_platform

    uri = get_platform().settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register_second_version() -> str:
    from flows.register import register

    return register(model=MODEL, train_start=date(2011, 2, 1), train_end=date(2011, 4, 1), chain=False).version


def test_tags_edited_in_mlflow_do_not_approve_a_never_validated_version(state_home: Path) -> None:
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.score import score

    version = register(model=MODEL).version
    client = mlflow_client()
    for key, value in {"validation_status": "passed", "security_scan": "passed", "holdout_mae": "10.0",
                       "holdout_r2": "0.99", "approval_status": "approved"}.items():
        client.set_model_version_tag(MODEL, version, key, value)
    decision = approve(model=MODEL, version=version)
    assert decision.status == "rejected"
    assert any("validation has not passed (validation: not run)" in reason for reason in decision.reasons)
    with pytest.raises(NotApprovedError):
        deploy(model=MODEL, version=version)
    client.set_registered_model_alias(MODEL, "champion", version)
    with pytest.raises(NotApprovedError):
        score(model=MODEL, input_path=str(traffic()), version=version)


def test_a_retired_version_stays_retired_whatever_mlflow_says(state_home: Path) -> None:
    from modelops.demo import onboard
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.retire import retire
    from flows.score import score

    version = onboard(MODEL)
    assert retire(model=MODEL, version=version, dry_run=False, allow_champion=True).changed
    client = mlflow_client()
    client.set_model_version_tag(MODEL, version, "lifecycle_state", "standby")
    client.set_registered_model_alias(MODEL, "champion", version)
    batch = traffic()
    with pytest.raises(RetiredVersionError):
        score(model=MODEL, input_path=str(batch), version=version)
    with pytest.raises(CatalogError, match="no champion"):
        score(model=MODEL, input_path=str(batch))  # the alias names it, the store serves nothing
    with pytest.raises(RetiredVersionError):
        deploy(model=MODEL, version=version)
    assert approve(model=MODEL, version=version).status == "rejected"
    from modelops.platform import get_platform
    from modelops.reporting import findings_text

    findings = findings_text(get_platform(), MODEL)
    assert f"FINDING: MLflow tag lifecycle_state of {MODEL} v{version} says 'standby', the store says 'retired'" \
        in findings


def test_a_model_file_replaced_after_approval_is_refused_audited_and_alerted(
        state_home: Path, alerting_configs: Path, receiver: SlackReceiver) -> None:
    import mlflow.artifacts
    import skops.io
    from sklearn.dummy import DummyRegressor

    from modelops.demo import onboard
    from flows.approve import approve
    from flows.score import score
    from modelops.platform import get_platform

    version = onboard(MODEL)
    platform = get_platform()
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL}/{version}",
                                                         tracking_uri=platform.settings.tracking_uri,
                                                         dst_path=str(state_home / "peek")))
    # the artifact store's own copy, overwritten in place with a constant model of trusted types
    stored = next(p for p in (platform.settings.artifact_root).rglob("model.skops"))
    constant = DummyRegressor(strategy="constant", constant=1.0).fit([[0.0]], [1.0])
    stored.write_bytes(skops.io.dumps(constant))
    assert (model_dir / "model.skops").read_bytes() != stored.read_bytes()

    with pytest.raises(TamperedModelError, match="model.skops changed"):
        score(model=MODEL, input_path=str(traffic()))
    with pytest.raises(TamperedModelError):
        approve(model=MODEL, version=version)
    tampered = [e for e in platform.store.audit_trail(MODEL) if e.outcome == "tampered"]
    assert [e.evidence["occasion"] for e in tampered] == ["scoring", "approval"]
    assert platform.store.prediction_batches(MODEL) == []  # nothing was scored with the replaced file
    assert len(receiver.messages) == 1  # alerted once; the second finding waits out the cool-down
    assert "model files changed after registration" in receiver.messages[0]["text"]


def test_a_file_replaced_before_validation_is_refused(state_home: Path) -> None:
    import skops.io
    from sklearn.dummy import DummyRegressor

    from flows.register import register
    from flows.validate import validate
    from modelops.platform import get_platform

    version = register(model=MODEL).version
    stored = next(p for p in get_platform().settings.artifact_root.rglob("model.skops"))
    stored.write_bytes(skops.io.dumps(DummyRegressor().fit([[0.0]], [1.0])))
    with pytest.raises(TamperedModelError, match="refused at validation"):
        validate(model=MODEL, version=version)
    assert get_platform().store.governed_version(MODEL, version).validation_status is None


def test_a_prewritten_audit_row_cannot_suppress_a_record(state_home: Path) -> None:
    from modelops import events
    from modelops.demo import onboard
    from flows.retire import retire
    from modelops.platform import get_platform
    from tasks.audit import verify_audit
    from tests.conftest import model_events, wait_for

    version = onboard(MODEL)
    platform = get_platform()
    # the attacker writes, ahead of time, a row saying exactly what the coming retirement will say
    db = sqlite3.connect(state_home / "governance.db", isolation_level=None)
    db.execute("INSERT INTO audit_events (at, actor, stage, action, model, version, outcome, evidence, seq, "
               "prev_hash, record_hash) VALUES ('2026-01-01 00:00:00.000000', 'user:pytest', 'retire', "
               "'retire-version', ?, ?, 'retired', '{}', 9999, ?, ?)", (MODEL, version, "0" * 64, "f" * 64))
    assert retire(model=MODEL, version=version, reason="test", dry_run=False, allow_champion=True).changed
    genuine = [e for e in platform.store.audit_trail(MODEL) if e.stage == "retire" and e.seq != 9999]
    assert len(genuine) == 1 and genuine[0].evidence["reason"] == "test"
    assert wait_for(lambda: any(e.event == events.RETIRED for e in model_events(MODEL)))
    verdict = verify_audit(platform)
    assert not verdict.ok and verdict.first_bad_seq is not None


def test_a_champion_alias_moved_in_mlflow_is_a_finding_and_never_serves(state_home: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main
    from modelops.demo import onboard
    from flows.score import score
    from modelops.platform import get_platform

    champion = onboard(MODEL)
    other = register_second_version()
    client = mlflow_client()
    client.set_registered_model_alias(MODEL, "champion", other)  # moved by hand onto an unapproved version
    scored = score(model=MODEL, input_path=str(traffic()))
    assert scored.version == champion
    platform = get_platform()
    findings = [e for e in platform.store.audit_trail(MODEL) if e.action == "compare-aliases"]
    assert findings and f"names v{other}" in findings[0].evidence["findings"][0]

    from flows.monitor import monitor

    assert monitor(model=MODEL).version == champion
    capsys.readouterr()
    assert main(["status"]) == 0
    assert f"FINDING: MLflow alias @champion of {MODEL} names v{other}" in capsys.readouterr().out
    assert main(["reconcile", MODEL]) == 0
    assert client.get_registered_model(MODEL).aliases["champion"] == int(champion)
    capsys.readouterr()
    main(["status"])
    assert "FINDING" not in capsys.readouterr().out


def test_batch_outputs_stay_under_the_output_root(state_home: Path) -> None:
    from modelops.demo import onboard
    from flows.score import score
    from modelops.platform import get_platform
    from tasks.audit import verify_audit

    onboard(MODEL)
    platform = get_platform()
    batch = traffic()
    store_file = state_home / "governance.db"
    before = store_file.read_bytes()[:100]
    with pytest.raises(OutputPathError, match="outside the output root"):
        score(model=MODEL, input_path=str(batch), output_path=str(store_file))
    with pytest.raises(OutputPathError, match="outside the output root"):
        score(model=MODEL, input_path=str(batch), output_path="../governance.parquet")
    assert store_file.read_bytes()[:100] == before and verify_audit(platform).ok
    foreign = platform.settings.outputs_dir / "someone-elses.parquet"
    foreign.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": [1]}).to_parquet(foreign)
    with pytest.raises(OutputPathError, match="not an earlier output of this batch"):
        score(model=MODEL, input_path=str(batch), output_path="someone-elses.parquet")
    assert pd.read_parquet(foreign)["x"].tolist() == [1]
    first = score(model=MODEL, input_path=str(batch), output_path="july.parquet")
    again = score(model=MODEL, input_path=str(batch), output_path="july.parquet")  # its own output: replaced
    assert first.output_path == again.output_path == str(platform.settings.outputs_dir / "july.parquet")


def test_gate_rows_written_around_the_platform_never_serve(state_home: Path) -> None:
    from modelops.demo import onboard
    from modelops.errors import StoreIntegrityError
    from flows.score import score
    from modelops.platform import get_platform
    from tasks.audit import verify_audit

    champion = onboard(MODEL)
    forged = register_second_version()
    db = sqlite3.connect(state_home / "governance.db", isolation_level=None)
    # the attacker makes v2 look validated, approved and deployed, touching no audit record
    db.execute("UPDATE version_records SET security_status = 'passed', validation_status = 'passed', "
               "validation_run_id = 'forged' WHERE model = ? AND version = ?", (MODEL, forged))
    db.execute("INSERT INTO approvals (model, version, status, reasons, decided_by, decided_at) VALUES "
               "(?, ?, 'approved', '[]', 'policy:approval', '2026-11-01 00:00:00')", (MODEL, forged))
    db.execute("UPDATE deployments SET ended_at = '2026-11-01 00:00:00' WHERE model = ? AND version = ?",
               (MODEL, champion))
    db.execute("INSERT INTO deployments (model, version, role, strategy, deployed_by, deployed_at) VALUES "
               "(?, ?, 'champion', 'champion', 'user:mallory', '2026-11-01 00:00:00')", (MODEL, forged))
    with pytest.raises(StoreIntegrityError, match="no audit record accounts for"):
        score(model=MODEL, input_path=str(traffic()))
    assert get_platform().store.prediction_batches(MODEL) == []
    verdict = verify_audit(get_platform())
    assert not verdict.ok and f"v{forged}: its approval 'approved' has no matching approve record" in verdict.problem


def test_a_reused_mlflow_version_number_is_refused(state_home: Path) -> None:
    from modelops.errors import StoreIntegrityError
    from flows.register import register

    first = register(model=MODEL).version
    mlflow_client().delete_registered_model(MODEL)  # MLflow will hand out v1 again
    with pytest.raises(StoreIntegrityError, match=f"version number v{first} again"):
        register(model=MODEL, train_start=date(2011, 2, 1), train_end=date(2011, 4, 1))
