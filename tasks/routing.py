"""Which side of a champion/challenger split a request goes to: one rule for batch, online and streaming traffic.

Light on purpose (no Prefect, no pandas): the online gateway calls it per request.
"""

from __future__ import annotations

import hashlib

PINNED = "pinned"  # the role of a version named by the caller rather than taken from the deployment record
SHADOW = "shadow"  # the challenger scoring a copy of the champion's traffic, unserved

BUCKETS = 10_000


def bucket(key: str) -> int:
    """A stable bucket in [0, BUCKETS) for a routing key: the same key lands on the same side every time, in every
    process (Python's hash() is salted per process, so it would not do)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % BUCKETS


def routes_to_challenger(key: str, share: float) -> bool:
    return bucket(key) < int(share * BUCKETS)
