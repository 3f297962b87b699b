"""The platform's token format, for both kinds: the gateway's API tokens (serving.tokens), bearer tokens, and
people's personal approver tokens (modelops.people), which never travel: their secret seeds the key that signs
a person's decisions (modelops.approval_signing).

A token reads `mop_<id>_<secret>`. The id is public (lists, logs, audit records); the secret is 32 random bytes,
shown once when the token is issued. For an API token the store keeps only the SHA-256 of the whole text: the
secret is random, so there is nothing to guess or look up, and a slow KDF (which protects low-entropy passwords)
would only slow down every check. For an approver token it keeps only the public key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "mop_"
# 8 random bytes name a token: ids only need to be unique (a clash fails on the primary key, it never replaces a
# token). The secret's 32 bytes are what an attacker would have to guess.
_ID_HEX = 16
_SECRET_BYTES = 32
TOKEN = re.compile(r"mop_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")  # token_urlsafe(32) is always 43 characters
TOKEN_ID = re.compile(r"[0-9a-f]{16}")
# How long an approver token lives unless `modelops people token --days` says otherwise.
DEFAULT_TOKEN_DAYS = 90


def token_digest(token: str) -> str:
    """The SHA-256 (hex) the store keeps of a token's whole text."""
    return hashlib.sha256(token.encode()).hexdigest()


def mint_token() -> tuple[str, str]:
    """(public id, whole token text) of a new random token."""
    token_id = secrets.token_hex(_ID_HEX // 2)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def parse_token(text: str) -> str | None:
    """The id of a well-formed token text, else None."""
    match = TOKEN.fullmatch(text.strip())
    return match.group(1) if match else None


def digest_matches(token: str, digest: bytes | str) -> bool:
    """Whether `token` hashes to the stored digest, compared in constant time."""
    expected = bytes.fromhex(digest) if isinstance(digest, str) else digest
    return hmac.compare_digest(hashlib.sha256(token.strip().encode()).digest(), expected)
