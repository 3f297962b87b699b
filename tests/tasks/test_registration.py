"""The registration claim: one registration per set of inputs, and a claim left by a killed process does not block
the same inputs forever."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelops.recovery import Owner


def test_a_claim_whose_process_died_is_taken_over(state_home: Path) -> None:
    from modelops.platform import get_platform
    from tasks.registration import claim_or_wait

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = Owner.current()
    platform = get_platform()
    assert platform.store.claim_registration("m", "inputs", Owner(owner.host, dead.pid, "").text())
    # without the take-over this waits out its 5 s and raises; with it, this run holds the claim at once
    assert claim_or_wait(platform, "m", "inputs", wait_seconds=5) is None
    assert platform.store.registration_claimant("m", "inputs") == owner.text()


def test_a_live_claimant_is_waited_for_and_named(state_home: Path) -> None:
    import pytest

    from modelops.errors import CatalogError
    from modelops.platform import get_platform
    from tasks.registration import claim_or_wait

    platform = get_platform()
    alive = Owner.current().text()  # this very process holds it
    assert platform.store.claim_registration("m", "inputs", alive)
    with pytest.raises(CatalogError, match="has not finished"):
        claim_or_wait(platform, "m", "inputs", wait_seconds=1)
