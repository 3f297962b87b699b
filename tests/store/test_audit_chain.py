"""The audit trail is tamper-evident: an attacker with write access to the governance database (who can drop the
append-only triggers) edits, deletes, inserts, reorders or rewrites records; `modelops audit verify` names the
first bad record and exits non-zero."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from modelops.store.audit_chain import GENESIS, record_hash
from modelops.store.records import GovernanceStore
from tests.store.tamper import Connection, attacker


@pytest.fixture
def trail(governance_url: str) -> str:
    """Five audit records written by the platform, the head published outside the store; returns the store's URL."""
    from modelops.platform import get_platform
    from tasks.audit import publish_head

    platform = get_platform()
    for n, stage in enumerate(["register", "validate", "approve", "deploy", "score"], start=1):
        entry = platform.store.record_audit(actor="user:alice", stage=stage, action="act", model="m", version="1",
                                            outcome=f"outcome-{n}", evidence={"n": n})
        publish_head(platform, entry)
    return governance_url


def stored_time(value: Any) -> datetime:
    """A timestamp as the driver gives it back: text from SQLite, a datetime from PostgreSQL."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def stored_json(value: Any) -> Any:
    return value if isinstance(value, dict) else json.loads(value)


def verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from modelops.cli import main

    code = main(["audit", "verify"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_an_intact_trail_verifies(trail: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = verify(capsys)
    assert code == 0 and "5 records" in out


def test_the_database_refuses_updates_and_deletes_of_audit_records(trail: str) -> None:
    connection = Connection(trail)
    with pytest.raises(DBAPIError, match="append-only"):
        connection.execute("UPDATE audit_events SET outcome = 'approved' WHERE seq = 3")
    with pytest.raises(DBAPIError, match="append-only"):
        connection.execute("DELETE FROM audit_events WHERE seq = 3")
    assert connection.execute("SELECT outcome FROM audit_events WHERE seq = 3").fetchone() == ("outcome-3",)


def test_an_edited_record_is_named(trail: str, capsys: pytest.CaptureFixture[str]) -> None:
    attacker(trail).execute("UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 3")
    code, out = verify(capsys)
    assert code == 1 and "seq 3" in out and "edited" in out


def test_a_deleted_record_is_named(trail: str, capsys: pytest.CaptureFixture[str]) -> None:
    attacker(trail).execute("DELETE FROM audit_events WHERE seq = 2")
    code, out = verify(capsys)
    assert code == 1 and "expected seq 2" in out and "deleted" in out


def test_an_inserted_record_is_named(trail: str, capsys: pytest.CaptureFixture[str]) -> None:
    connection = attacker(trail)
    # a forged approval slipped in as seq 3, everything after it renumbered, with a well-formed hash of its own
    connection.execute("UPDATE audit_events SET seq = seq + 100 WHERE seq >= 3")
    connection.execute("UPDATE audit_events SET seq = seq - 99 WHERE seq >= 103")
    prev = connection.execute("SELECT record_hash FROM audit_events WHERE seq = 2").fetchone()[0]
    at = connection.execute("SELECT at FROM audit_events WHERE seq = 2").fetchone()[0]
    forged = record_hash(seq=3, prev_hash=prev, at=stored_time(at), actor="user:mallory", stage="approve",
                         action="act", model="m", version="1", outcome="approved", evidence={}, event=None,
                         flow_run_id=None)
    connection.execute("INSERT INTO audit_events (at, actor, stage, action, model, version, outcome, evidence, "
                       "seq, prev_hash, record_hash) VALUES (?, 'user:mallory', 'approve', 'act', 'm', '1', "
                       "'approved', '{}', 3, ?, ?)", (at, prev, forged))
    code, out = verify(capsys)
    assert code == 1 and "inserted or reordered" in out


def test_reordered_records_are_named(trail: str, capsys: pytest.CaptureFixture[str]) -> None:
    connection = attacker(trail)
    # swap the contents of records 2 and 3 (keeping each one's own hash): the order of facts changed
    rows = {seq: row for seq, *row in connection.execute(
        "SELECT seq, id FROM audit_events WHERE seq IN (2, 3)")}
    connection.execute("UPDATE audit_events SET seq = -1 WHERE id = ?", (rows[2][0],))
    connection.execute("UPDATE audit_events SET seq = 2 WHERE id = ?", (rows[3][0],))
    connection.execute("UPDATE audit_events SET seq = 3 WHERE id = ?", (rows[2][0],))
    code, out = verify(capsys)
    assert code == 1 and "seq 2" in out and "edited or moved" in out


def test_a_rewritten_table_is_caught_by_the_head_kept_outside(trail: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    connection = attacker(trail)
    # the attacker rewrites record 3 and recomputes the whole chain, so that it is internally consistent
    connection.execute("UPDATE audit_events SET outcome = 'approved' WHERE seq = 3")
    prev = GENESIS
    for row in connection.execute("SELECT id, seq, at, actor, stage, action, model, version, outcome, evidence, "
                                  "event, flow_run_id FROM audit_events ORDER BY id").fetchall():
        digest = record_hash(seq=row[1], prev_hash=prev, at=stored_time(row[2]), actor=row[3],
                             stage=row[4], action=row[5], model=row[6], version=row[7], outcome=row[8],
                             evidence=stored_json(row[9]), event=row[10], flow_run_id=row[11])
        connection.execute("UPDATE audit_events SET prev_hash = ?, record_hash = ? WHERE id = ?", (prev, digest,
                                                                                                    row[0]))
        prev = digest
    connection.execute("UPDATE audit_chain_head SET head_hash = ?", (prev,))
    assert GovernanceStore(trail).verify_audit([]).ok  # the store alone cannot tell
    code, out = verify(capsys)
    assert code == 1 and "audit-head.json" in out and "rewritten" in out


def test_a_truncated_table_is_caught_by_the_head_kept_outside(trail: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    connection = attacker(trail)
    connection.execute("DELETE FROM audit_events WHERE seq >= 4")  # the newest records: the chain stays linked
    code, out = verify(capsys)
    assert code == 1 and "seq 5 is missing" in out


def test_a_removed_head_file_fails_verification(trail: str, state_home: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (state_home / "audit-head.json").unlink()
    code, out = verify(capsys)
    assert code == 1 and "audit-head.json is gone" in out
