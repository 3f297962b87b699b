"""Signed approvals: a person's decision is an Ed25519 signature made with their approver token, over exactly what
they decide (this request for this version's content, approve or reject, this comment).

Why not the token itself in the form: open-source Prefect keeps a run's input readable through its API for anyone
who can open the run, so a bearer token typed into the form could be copied and replayed on any other version for
as long as it lives, or the input deleted and reposted with the other decision. A signature is useless anywhere
else: it names one request, one content hash, one decision and one comment. The token never leaves the approver's
machine; the store keeps only the public key (in the token's hash-chained issue record, too), so reading the
store gives nothing to sign with either.

The token text keeps the platform's format (modelops.credentials): its 32 random secret bytes are the key's seed.
An approval code reads `<token id>.<signing time, Unix seconds>.<signature, base64url>`. The signing time is
signed too: a code is good for CODE_TTL_SECONDS, so one read from a run's input cannot be held back and replayed
after its signer decided otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from modelops.credentials import TOKEN

STATEMENT_KIND = "modelops-approval/1"
# 64 signature bytes are 86 base64url characters (the last one carries 4 spare bits: parse_code refuses the
# spellings that are not the canonical one, so a code's text names one signature).
CODE = re.compile(r"([0-9a-f]{16})\.([0-9]{10})\.([A-Za-z0-9_-]{86})")
CODE_TTL_SECONDS = 30 * 60  # time to paste the code into the form and submit it
CLOCK_SKEW_SECONDS = 300


@dataclass(frozen=True)
class Statement:
    """What an approver signs. `request_opened_at` names the one approval request (a version has at most one)."""

    model: str
    version: str
    content_hash: str
    request_opened_at: datetime
    decision: str
    comment: str
    signed_at: int = 0  # Unix seconds; set by `sign`, read back from the code

    def canonical(self) -> bytes:
        opened = self.request_opened_at.astimezone(timezone.utc).isoformat(timespec="microseconds")
        return json.dumps([STATEMENT_KIND, self.model, self.version, self.content_hash, opened, self.decision,
                           hashlib.sha256(self.comment.encode()).hexdigest(), self.signed_at],
                          separators=(",", ":")).encode()


def _seed(token: str) -> bytes | None:
    match = TOKEN.fullmatch(token.strip())
    if match is None:
        return None
    try:
        return base64.urlsafe_b64decode(match.group(2) + "=")
    except (binascii.Error, ValueError):
        return None


def public_key_of(token: str) -> str:
    """The hex public key of a well-formed token (what the store keeps)."""
    seed = _seed(token)
    if seed is None or len(seed) != 32:
        raise ValueError("not an approver token")
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw,
                                                                               PublicFormat.Raw).hex()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign(token: str, statement: Statement, now: datetime | None = None) -> str | None:
    """The approval code for `statement`, signed now, or None when `token` is not a well-formed token."""
    match, seed = TOKEN.fullmatch(token.strip()), _seed(token)
    if match is None or seed is None or len(seed) != 32:
        return None
    signed_at = int((now or datetime.now(timezone.utc)).timestamp())
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(replace(statement, signed_at=signed_at).canonical())
    return f"{match.group(1)}.{signed_at}.{_b64(signature)}"


@dataclass(frozen=True)
class ParsedCode:
    token_id: str
    signed_at: int
    signature: bytes


def parse_code(code: str) -> ParsedCode | None:
    """The parts of a well-formed approval code in its one canonical spelling, else None."""
    match = CODE.fullmatch(code.strip())
    if match is None:
        return None
    signature = base64.urlsafe_b64decode(match.group(3) + "==")
    if _b64(signature) != match.group(3):
        return None
    return ParsedCode(match.group(1), int(match.group(2)), signature)


def age_problem(signed_at: int, now: datetime | None = None) -> str | None:
    """Why a code signed at `signed_at` is no longer (or not yet) good, or None."""
    current = (now or datetime.now(timezone.utc)).timestamp()
    if signed_at > current + CLOCK_SKEW_SECONDS:
        return "the approval code is signed in the future: check the clock of the machine that signed it"
    if current - signed_at > CODE_TTL_SECONDS:
        return (f"the approval code was signed {int((current - signed_at) // 60)} minutes ago; a code is good for "
                f"{CODE_TTL_SECONDS // 60} minutes: sign again (`modelops approve --sign`)")
    return None


def verifies(public_key_hex: str, statement: Statement, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(signature, statement.canonical())
    except (InvalidSignature, ValueError):
        return False
    return True
