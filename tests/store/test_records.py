from __future__ import annotations


from sqlalchemy import inspect

from modelops.store.db import engine_for
from modelops.store.records import AuditFact, GovernanceStore


def test_migrations_create_every_table_at_the_newest_revision(governance_url: str) -> None:
    url = governance_url
    tables = set(inspect(engine_for(url)).get_table_names())
    assert {"alembic_version", "audit_events", "approvals", "deployments", "lineage", "prediction_batches",
            "ground_truth_batches", "monitoring_runs", "monitoring_results"} <= tables
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from modelops.store.db import MIGRATIONS

    head = ScriptDirectory.from_config(Config(str(MIGRATIONS))).get_current_head()
    with engine_for(url).connect() as connection:
        assert connection.exec_driver_sql("select version_num from alembic_version").scalar() == head


def test_every_audit_record_is_appended_in_order_with_a_chain_link(governance_url: str) -> None:
    records = GovernanceStore(governance_url)
    fact = dict(actor="user:a", stage="validate", action="run-gates", model="m", version="1", outcome="passed",
                evidence={"auc": 0.7})
    first = records.record_audit(**fact)
    second = records.record_audit(**fact)  # the same words twice are two facts: nothing is silently dropped
    records.record_audit(**{**fact, "stage": "approve", "outcome": "approved"})
    trail = records.audit_trail("m")
    assert [(e.stage, e.outcome, e.seq) for e in trail] == [("validate", "passed", 1), ("validate", "passed", 2),
                                                            ("approve", "approved", 3)]
    assert first.record_hash != second.record_hash
    assert trail[0].at <= trail[1].at <= trail[2].at and trail[0].at.tzinfo is not None
    assert records.verify_audit([]).ok


def test_a_change_with_nothing_to_change_writes_no_record(governance_url: str) -> None:
    records = GovernanceStore(governance_url)
    fact = AuditFact(actor="user:a", stage="deploy", action="serve", model="m", version="1", outcome="deployed",
                     evidence={}, event=None, flow_run_id=None)
    assert records.record(fact, records.start_deployment("m", "1", "champion", "champion", "user:a"))
    assert records.record(fact, records.start_deployment("m", "1", "champion", "champion", "user:a")) is None
    assert [e.seq for e in records.audit_trail("m")] == [1]
    # the head was not advanced by the empty change: the next record links on without a gap
    records.record_audit(actor="user:a", stage="score", action="x", model="m", version="1", outcome="scored",
                         evidence={})
    assert records.verify_audit([]).ok and records.audit_trail("m")[-1].seq == 2


def test_a_new_champion_ends_the_previous_deployment(governance_url: str) -> None:
    records = GovernanceStore(governance_url)
    fact = AuditFact(actor="user:a", stage="deploy", action="serve", model="m", version="1", outcome="deployed",
                     evidence={}, event=None, flow_run_id=None)
    records.record(fact, records.start_deployment("m", "1", "champion", "champion", "user:a"))
    first_served = records.first_served_at("m", "1")
    replaced = records.record(fact, records.start_deployment("m", "2", "champion", "champion", "user:a"))
    assert replaced is not None and replaced.evidence["replaced"] == ["1"]
    assert records.serving_version("m", "champion") == "2"
    assert records.first_served_at("m", "1") == first_served


def test_one_retrain_per_model_per_cool_down(governance_url: str) -> None:
    records = GovernanceStore(governance_url)
    assert records.claim_retrain("m", "1", "drift", cooldown_hours=24) is None
    earlier = records.claim_retrain("m", "1", "drift", cooldown_hours=24)
    assert earlier is not None
    assert records.claim_retrain("other", "1", "drift", cooldown_hours=24) is None  # each model on its own
    assert records.claim_retrain("m", "1", "drift", cooldown_hours=0) is None  # cool-down over


def test_alert_claims_allow_one_announcement_per_cool_down_and_one_recovery(governance_url: str) -> None:
    records = GovernanceStore(governance_url)
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


def test_the_integrity_migration_chains_records_written_before_it(governance_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from modelops.store.db import MIGRATIONS

    url = governance_url
    engine = create_engine(url)
    config = Config(str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        for n in range(3):
            connection.exec_driver_sql(
                "INSERT INTO audit_events (at, actor, stage, action, model, version, outcome, evidence, dedup_key) "
                f"VALUES ('2026-11-01 10:00:0{n}.000000', 'user:a', 'register', 'act', 'm', '{n}', 'ok', "
                f"'{{\"n\": {n}}}', 'key-{n}')")
    engine.dispose()
    records = GovernanceStore(url)  # opening the store migrates it to the newest revision
    assert records.verify_audit([]).ok
    assert [e.seq for e in records.audit_trail("m")] == [1, 2, 3]
    assert records.record_audit(actor="user:a", stage="validate", action="act", model="m", version="1",
                                outcome="passed", evidence={}).seq == 4
    assert records.verify_audit([]).ok


def test_a_limited_monitoring_history_is_the_newest_runs_oldest_first_each_with_its_own_results(
        governance_url: str) -> None:
    from datetime import datetime, timedelta, timezone

    from modelops.store.records import MonitoringPoint

    governance = GovernanceStore(governance_url)
    start = datetime(2013, 3, 1, tzinfo=timezone.utc)
    for day in range(3):
        governance.record_monitoring_run(model="m", version="1", window_start=start + timedelta(days=day),
                                         window_end=start + timedelta(days=day + 1), rows=10 + day, verdict="ok",
                                         report_path=None, points=[MonitoringPoint("drift", "drifted_share",
                                                                                   day / 10, 0.2, "ok")])
    newest = governance.monitoring_history("m", limit=2)
    assert [run.rows for run, _ in newest] == [11, 12]
    assert [[result.value for result in results] for _, results in newest] == [[0.1], [0.2]]
    assert [run.rows for run, _ in governance.monitoring_history("m")] == [10, 11, 12]
