"""API tokens of the applications that call the online scoring gateway: issued and revoked from the CLI, checked by
the gateway on every request against an in-memory snapshot of the governance store.

A token reads `mop_<id>_<secret>`. The id is public (token lists, logs, metrics); the secret is 32 random bytes,
shown once when the token is issued. The store keeps only the SHA-256 of the whole text, so the gateway finds a
token by its id in a dict and checks it with one hash and one constant-time comparison, without touching the store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Literal, Mapping, Protocol

from modelops.credentials import TOKEN_ID as _TOKEN_ID, digest_matches, mint_token, parse_token, token_digest
from modelops.errors import ModelOpsError, SpecError
from modelops.files import replace_atomically
from modelops.platform import _state_lock, current_actor
from modelops.settings import Settings
from modelops.spec import MODEL_NAME, load_spec, spec_path
from modelops.store.records import ACCESS_STAGE, AuditEntry, AuditFact, GovernanceStore, TokenCredential

ALL_MODELS = "*"
# A client name labels metrics and log lines: plain characters only.
_CLIENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Longer than any well-formed header: refused before any work is spent on it.
_MAX_HEADER = 128

Reason = Literal["missing", "malformed", "unknown", "revoked", "wrong-secret", "out-of-scope"]
REASONS: tuple[Reason, ...] = ("missing", "malformed", "unknown", "revoked", "wrong-secret", "out-of-scope")


class AccessDenied(Exception):
    """A request the gateway refuses: 401 without a valid token, 403 with a valid token not scoped to the model.
    `reason` is a short code for metrics; the message names the token by its public id at most, never its text."""

    def __init__(self, status: int, reason: Reason, message: str, token_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.token_id = token_id

    @property
    def headers(self) -> dict[str, str]:
        """The WWW-Authenticate challenge RFC 6750 asks of a 401 or 403 answer to a bearer token."""
        if self.reason == "missing":
            return {"WWW-Authenticate": 'Bearer realm="modelops"'}
        error = "insufficient_scope" if self.status == 403 else "invalid_token"
        return {"WWW-Authenticate": f'Bearer realm="modelops", error="{error}"'}


def _presented_token(authorization_header: str | None) -> tuple[str, str]:
    """(token id, token text) of an `Authorization: Bearer <token>` header."""
    if not authorization_header or not authorization_header.strip():
        raise AccessDenied(401, "missing", "no API token: send the header `Authorization: Bearer <token>`")
    if len(authorization_header) > _MAX_HEADER:
        raise AccessDenied(401, "malformed", "the Authorization header is too long to hold an API token")
    scheme, _, credentials = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AccessDenied(401, "malformed", "the Authorization header must read `Bearer <token>`")
    token = credentials.strip()
    token_id = parse_token(token)
    if token_id is None:
        raise AccessDenied(401, "malformed", "the bearer token is not a ModelOps API token (mop_<id>_<secret>)")
    return token_id, token


@dataclass(frozen=True)
class _Grant:
    client: str
    digest: bytes
    models: frozenset[str]
    revoked: bool


@dataclass(frozen=True)
class TokenTable:
    """Every token of the store at one moment, read-only: the gateway swaps in a fresh table to see changes, so a
    request never sees half of one."""

    grants: Mapping[str, _Grant]

    @classmethod
    def load(cls, store: GovernanceStore) -> TokenTable:
        return cls.of(store.token_credentials())

    @classmethod
    def of(cls, credentials: Iterable[TokenCredential]) -> TokenTable:
        grants = {c.id: _Grant(client=c.client, digest=bytes.fromhex(c.token_hash), models=frozenset(c.models),
                               revoked=c.revoked) for c in credentials}
        return cls(MappingProxyType(grants))

    @property
    def live(self) -> int:
        """How many tokens work (for a gauge or a log line; not __len__, which would make an empty table falsy)."""
        return sum(not grant.revoked for grant in self.grants.values())

    def authorize(self, authorization_header: str | None, model: str) -> str:
        """The client a request comes from, if its token may call `model`; AccessDenied otherwise."""
        token_id, token = _presented_token(authorization_header)
        grant = self.grants.get(token_id)
        if grant is None:
            raise AccessDenied(401, "unknown", f"API token {token_id} does not exist", token_id)
        if not digest_matches(token, grant.digest):
            raise AccessDenied(401, "wrong-secret", f"API token {token_id}: wrong secret", token_id)
        if grant.revoked:
            raise AccessDenied(401, "revoked", f"API token {token_id} was revoked", token_id)
        if ALL_MODELS not in grant.models and model not in grant.models:
            raise AccessDenied(403, "out-of-scope", f"API token {token_id} of {grant.client} may not call model "
                                                    f"{model!r}", token_id)
        return grant.client


# --- issuing and revoking (the CLI) ----------------------------------------------------------------------------
class StorePlatform(Protocol):
    """What token administration needs of the platform: modelops.platform.Platform has it, and so has the lighter
    StoreOnly the CLI uses."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> GovernanceStore: ...


@dataclass(frozen=True)
class StoreOnly:
    settings: Settings
    store: GovernanceStore


def store_platform(settings: Settings) -> StoreOnly:
    """The settings and the governance store without the MLflow catalog: token commands import neither MLflow nor
    Prefect. Opened under the state directory's init lock, as get_platform() opens it, so two processes never
    migrate a new store at once."""
    with _state_lock(settings.home / "run" / "init.lock"):
        store = GovernanceStore(settings.governance_url)
        store.open()
    return StoreOnly(settings=settings, store=store)


def _check_client(client: str) -> None:
    if not _CLIENT.fullmatch(client):
        raise ModelOpsError(f"{client!r} is not a client name",
                            "name the consuming application with 1-100 letters, digits, '.', '_' or '-', starting "
                            "with a letter or digit (it labels the gateway's metrics and logs)")


def token_scope(models: Iterable[str], config_dir: Path) -> tuple[str, ...]:
    """The models a token may call, sorted: each one a life cycle spec in config_dir, or ("*",) for every model."""
    names = sorted(set(models))
    if not names:
        raise ModelOpsError("a token needs a scope, and no model was named",
                            "name each model it may call (--model NAME, repeatable), or --all-models")
    if ALL_MODELS in names:
        if len(names) > 1:
            raise ModelOpsError("a token scoped to every model ('*') cannot name models as well",
                                "give either the model names or --all-models")
        return (ALL_MODELS,)
    for name in names:
        if not re.fullmatch(MODEL_NAME, name) or not spec_path(name, config_dir).is_file():
            known = sorted(path.stem for path in (config_dir / "models").glob("*.yaml"))
            raise SpecError(f"no model is named {name!r}: a token can only be scoped to a model with a life cycle "
                            f"spec in {config_dir / 'models'}", f"pick from: {', '.join(known) or 'none yet'}")
        load_spec(name, config_dir)  # a spec that does not load names its field here
    return tuple(names)


def _access_facts(action: str, outcome: str, actor: str, token_id: str, client: str,
                  models: tuple[str, ...]) -> list[AuditFact]:
    """One record in the trail of each model the token may call (or of '*'): id, client and scope, never the token
    or its hash."""
    evidence = {"token_id": token_id, "client": client, "models": list(models)}
    return [AuditFact(actor=actor, stage=ACCESS_STAGE, action=action, model=model, version=None, outcome=outcome,
                      evidence=evidence, event=None, flow_run_id=None) for model in models]


def publish_head_file(settings: Settings, entry: AuditEntry) -> None:
    """Keep the head file outside the store current, as every stage does (tasks.audit.publish_head; not imported
    here, it loads Prefect). The MLflow tag copies of the head move on with each model's next stage record: a copy
    only has to be a link of the chain, and the file, which `audit verify` requires, is the newest."""
    path = settings.home / "audit-head.json"
    try:
        current = json.loads(path.read_text())["seq"] if path.is_file() else 0
    except (ValueError, KeyError, TypeError):
        current = 0  # unreadable: overwrite with a good head
    if entry.seq > current:
        text = json.dumps({"seq": entry.seq, "hash": entry.record_hash}).encode()
        replace_atomically(path, lambda handle: handle.write(text))


def issue_token(platform: StorePlatform, client: str, models: list[str],
                actor: str | None = None) -> tuple[str, str]:
    """A new token for `client`, scoped to `models` (spec names, or ["*"]): (token id, token text). The text is
    returned once and stored nowhere; the store keeps its hash, the audit trail its id, client and scope."""
    _check_client(client)
    scope = token_scope(models, platform.settings.config_dir)
    token_id, token = mint_token()
    who = actor or current_actor()
    entries = platform.store.record_all(
        _access_facts("create-token", "created", who, token_id, client, scope),
        platform.store.add_api_token(token_id=token_id, client=client, token_hash=token_digest(token), models=scope,
                                     created_by=who))
    publish_head_file(platform.settings, entries[-1])
    return token_id, token


def revoke_token(platform: StorePlatform, token_id: str, actor: str | None = None) -> bool:
    """Stop a token from working (once the gateway reloads its table). True when this call revoked it, False when
    it was revoked already: revoking is idempotent, so a script revoking a leaked token can simply run again."""
    if not _TOKEN_ID.fullmatch(token_id):
        # Not echoed: someone may have pasted the whole token.
        raise ModelOpsError("that is not a token id (16 hex digits)",
                            "give the id `modelops tokens list` shows (the part after mop_ and before the next _)")
    token = platform.store.api_token(token_id)
    if token is None:
        raise ModelOpsError(f"no API token has the id {token_id}", "see `modelops tokens list --all`")
    who = actor or current_actor()
    entries = platform.store.record_all(
        _access_facts("revoke-token", "revoked", who, token_id, token.client, token.models),
        platform.store.revoke_api_token(token_id, who))
    if not entries:
        return False
    publish_head_file(platform.settings, entries[-1])
    return True
