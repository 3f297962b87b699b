"""Every claim of the governance store, raced by real concurrent processes: exactly one wins. Concurrent audit
appends keep one unbroken chain."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from modelops.store.records import GovernanceStore

RACERS = 6


def _race(url: str, what: str, start: Any, index: int) -> Any:
    store = GovernanceStore(url)
    start.wait()  # every process is ready before any of them claims
    if what == "registration":
        return store.claim_registration("m", "fingerprint", f"racer-{index}")
    if what == "retrain":
        return store.claim_retrain("m", "1", "drift", cooldown_hours=24) is None
    if what == "alert":
        return store.claim_alert("m", "drift", cooldown_hours=6)
    if what == "audit":
        return [store.record_audit(actor=f"racer-{index}", stage="score", action="score-batch", model="m",
                                   version="1", outcome="scored", evidence={"n": n}).seq for n in range(10)]
    raise ValueError(what)


def race(url: str, what: str) -> list[Any]:
    GovernanceStore(url).approval_status("m", "1")  # migrate once, before the race
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(RACERS)
        with context.Pool(RACERS) as pool:
            return pool.starmap(_race, [(url, what, start, i) for i in range(RACERS)])


@pytest.mark.parametrize("claim", ["registration", "retrain", "alert"])
def test_exactly_one_concurrent_process_wins_a_claim(governance_url: str, claim: str) -> None:
    assert sorted(race(governance_url, claim)) == [False] * (RACERS - 1) + [True]


def test_concurrent_audit_appends_keep_one_unbroken_chain(governance_url: str) -> None:
    seqs = race(governance_url, "audit")
    assert sorted(s for batch in seqs for s in batch) == list(range(1, RACERS * 10 + 1))
    store = GovernanceStore(governance_url)
    assert store.verify_audit([]).ok
