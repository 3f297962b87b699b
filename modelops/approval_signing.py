"""Signed approvals: a person's decision is an Ed25519 signature made with their approver token, over exactly what
they decide (this request for this version's content, approve or reject, this comment).

Why not the token itself in the form: open-source Prefect keeps a run's input readable through its API for anyone
who can open the run, so a bearer token typed into the form could be copied and replayed on any other version for
as long as it lives, or the input deleted and reposted with the other decision. A signature is useless anywhere
else: it names one request, one content hash, one decision and one comment. The token never leaves the approver's
machine; the store keeps only the public key (in the token's hash-chained issue record, too), so reading the
store gives nothing to sign with either.

The token text keeps the platform's format (modelops.credentials): its 32 random secret bytes are the key's seed.
An approval code reads `<token id>.<signature, base64url>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from modelops.credentials import TOKEN

STATEMENT_KIND = "modelops-approval/1"
CODE = re.compile(r"([0-9a-f]{16})\.([A-Za-z0-9_-]{86})")  # 64 signature bytes are 86 base64url characters


@dataclass(frozen=True)
class Statement:
    """What an approver signs. `request_opened_at` names the one approval request (a version has at most one)."""

    model: str
    version: str
    content_hash: str
    request_opened_at: datetime
    decision: str
    comment: str

    def canonical(self) -> bytes:
        opened = self.request_opened_at.astimezone(timezone.utc).isoformat(timespec="microseconds")
        return json.dumps([STATEMENT_KIND, self.model, self.version, self.content_hash, opened, self.decision,
                           hashlib.sha256(self.comment.encode()).hexdigest()], separators=(",", ":")).encode()


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


def sign(token: str, statement: Statement) -> str | None:
    """The approval code for `statement`, or None when `token` is not a well-formed token."""
    match, seed = TOKEN.fullmatch(token.strip()), _seed(token)
    if match is None or seed is None or len(seed) != 32:
        return None
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(statement.canonical())
    return f"{match.group(1)}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def parse_code(code: str) -> tuple[str, bytes] | None:
    """(token id, signature) of a well-formed approval code, else None."""
    match = CODE.fullmatch(code.strip())
    if match is None:
        return None
    return match.group(1), base64.urlsafe_b64decode(match.group(2) + "==")


def verifies(public_key_hex: str, statement: Statement, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(signature, statement.canonical())
    except (InvalidSignature, ValueError):
        return False
    return True
