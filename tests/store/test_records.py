from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from modelops.store.db import engine_for
from modelops.store.records import GovernanceStore


def store(tmp_path: Path) -> GovernanceStore:
    return GovernanceStore(f"sqlite:///{tmp_path / 'governance.db'}")


def test_migrations_create_every_table_at_the_newest_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'governance.db'}"
    tables = set(inspect(engine_for(url)).get_table_names())
    assert {"alembic_version", "audit_events", "approvals", "deployments", "lineage", "prediction_batches",
            "ground_truth_batches", "monitoring_runs", "monitoring_results"} <= tables
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from modelops.store.db import MIGRATIONS

    head = ScriptDirectory.from_config(Config(str(MIGRATIONS))).get_current_head()
    with engine_for(url).connect() as connection:
        assert connection.exec_driver_sql("select version_num from alembic_version").scalar() == head


def test_the_same_audit_fact_is_recorded_once_and_the_trail_keeps_order(tmp_path: Path) -> None:
    records = store(tmp_path)
    fact = dict(actor="user:a", stage="validate", action="run-gates", model="m", version="1", outcome="passed",
                evidence={"auc": 0.7})
    assert records.record_audit(**fact) is True
    assert records.record_audit(**fact) is False
    assert records.record_audit(**{**fact, "outcome": "failed"}) is True
    records.record_audit(**{**fact, "stage": "approve", "outcome": "approved"})
    trail = records.audit_trail("m")
    assert [(e.stage, e.outcome) for e in trail] == [("validate", "passed"), ("validate", "failed"),
                                                     ("approve", "approved")]
    assert trail[0].at <= trail[1].at <= trail[2].at and trail[0].at.tzinfo is not None


def test_a_new_champion_ends_the_previous_deployment(tmp_path: Path) -> None:
    records = store(tmp_path)
    assert records.start_deployment("m", "1", "champion", "champion", "user:a")
    assert records.start_deployment("m", "1", "champion", "champion", "user:a") is None  # idempotent
    first_served = records.first_served_at("m", "1")
    assert records.start_deployment("m", "2", "champion", "champion", "user:a")
    assert records.end_deployments("m", "1", "retired") == 0  # already ended by the replacement
    assert records.first_served_at("m", "1") == first_served
    assert records.end_deployments("m", "2", "retired") == 1


def test_one_retrain_per_model_per_cool_down(tmp_path: Path) -> None:
    records = store(tmp_path)
    assert records.claim_retrain("m", "1", "drift", cooldown_hours=24) is None
    earlier = records.claim_retrain("m", "1", "drift", cooldown_hours=24)
    assert earlier is not None
    assert records.claim_retrain("other", "1", "drift", cooldown_hours=24) is None  # each model on its own
    assert records.claim_retrain("m", "1", "drift", cooldown_hours=0) is None  # cool-down over


def test_alert_claims_allow_one_announcement_per_cool_down_and_one_recovery(tmp_path: Path) -> None:
    records = store(tmp_path)
    assert records.alert_state("m", "drift") == (False, None)
    assert records.claim_alert("m", "drift", cooldown_hours=6)
    assert not records.claim_alert("m", "drift", cooldown_hours=6)  # inside the cool-down
    assert records.claim_alert("m", "drift", cooldown_hours=0)  # cool-down over: remind
    records.release_alert("m", "drift")  # delivery failed: try again next run
    assert records.alert_state("m", "drift") == (True, None)
    assert records.claim_alert("m", "drift", cooldown_hours=6)
    assert records.claim_recovery("m", "drift") is True
    assert records.claim_recovery("m", "drift") is False  # announced once
    assert records.alert_state("m", "drift")[0] is False
    # announced, recovered, breached again and undelivered: the next run must try again at once
    assert records.claim_alert("m", "drift", cooldown_hours=6)
    records.release_alert("m", "drift")
    assert records.claim_alert("m", "drift", cooldown_hours=6)
