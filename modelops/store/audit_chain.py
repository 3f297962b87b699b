"""The audit trail's hash chain: plain functions, no database.

Record n's hash is sha256(canonical(record n) with record n-1's hash inside), starting from GENESIS. Editing a
record changes its hash; deleting, inserting or reordering records breaks the sequence or the links. A rewrite of
the whole table with a freshly computed chain is caught by heads kept outside the store (a file in the state
directory and a tag on the MLflow registered model): each must still be a link of the chain.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

GENESIS = "0" * 64


def _utc_text(value: datetime) -> str:
    # SQLite hands datetimes back naive; everything stored is UTC, so both spellings hash alike.
    aware = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return aware.isoformat(timespec="microseconds")


def normalise_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence exactly as the JSON column will give it back (dates as text, tuples as lists)."""
    return json.loads(json.dumps(evidence, default=str))


def record_hash(*, seq: int, prev_hash: str, at: datetime, actor: str, stage: str, action: str, model: str,
                version: str | None, outcome: str, evidence: dict[str, Any], event: str | None,
                flow_run_id: str | None) -> str:
    canonical = json.dumps([seq, prev_hash, _utc_text(at), actor, stage, action, model, version, outcome,
                            evidence, event, flow_run_id], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class AuditFact:
    """What a stage did, to be appended to the audit chain."""

    actor: str
    stage: str
    action: str
    model: str
    version: str | None
    outcome: str
    evidence: dict[str, Any]
    event: str | None
    flow_run_id: str | None


@dataclass(frozen=True)
class AuditEntry(AuditFact):
    """A fact as appended: when, at which position of the chain, under which hash."""

    at: datetime
    seq: int
    record_hash: str


@dataclass(frozen=True)
class ChainRow(AuditEntry):
    """One stored audit record, as read back from the table for verification."""

    id: int
    prev_hash: str

    def computed_hash(self) -> str:
        return record_hash(seq=self.seq, prev_hash=self.prev_hash, at=self.at, actor=self.actor, stage=self.stage,
                           action=self.action, model=self.model, version=self.version, outcome=self.outcome,
                           evidence=self.evidence, event=self.event, flow_run_id=self.flow_run_id)


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str
    where: str  # which copy outside the store said so

    def text(self) -> str:
        return f"{self.seq}:{self.hash}"


def parse_head(text: str, where: str) -> ChainHead | None:
    seq, _, digest = text.partition(":")
    return ChainHead(int(seq), digest, where) if seq.isdigit() and len(digest) == 64 else None


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    records: int
    problem: str | None = None
    # The first record found wrong (its seq), for `modelops audit verify` to name.
    first_bad_seq: int | None = None


def verify_chain(rows: Iterable[ChainRow], heads: Iterable[ChainHead] = ()) -> ChainVerdict:
    """Walk the records by sequence and check that none is missing, that they were stored in that order, that
    each links to the one before and that each one's content and position still give its hash; then check the
    heads kept outside the store."""
    expected_prev, expected_seq, last_id, count = GENESIS, 1, 0, 0
    hashes: dict[int, str] = {}
    for row in sorted(rows, key=lambda r: r.seq):
        count += 1
        where = f"audit record seq {row.seq} (id {row.id}, {row.stage}/{row.action} of {row.model} v{row.version})"
        if row.seq != expected_seq:
            return ChainVerdict(False, count, f"{where}: expected seq {expected_seq}, a record was deleted before it",
                                expected_seq)
        if row.id < last_id:
            return ChainVerdict(False, count, f"{where}: stored before the record it follows (inserted or "
                                              "reordered)", row.seq)
        if row.computed_hash() != row.record_hash:
            return ChainVerdict(False, count, f"{where}: its content or position does not match its hash (edited "
                                              "or moved)", row.seq)
        if row.prev_hash != expected_prev:
            return ChainVerdict(False, count, f"{where}: it does not link to the record before it (inserted, "
                                              "reordered or the chain was recomputed)", row.seq)
        hashes[row.seq] = row.record_hash
        expected_prev, expected_seq, last_id = row.record_hash, expected_seq + 1, row.id
    for head in heads:
        if hashes.get(head.seq) != head.hash:
            found = "missing" if head.seq not in hashes else f"hash {hashes[head.seq][:12]}.."
            return ChainVerdict(False, count, f"the chain head kept in {head.where} ({head.seq}:{head.hash[:12]}..) "
                                              f"is not in the store's chain (seq {head.seq} is {found}): the table "
                                              "was rewritten or truncated", head.seq)
    return ChainVerdict(True, count)
