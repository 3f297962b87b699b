"""People, their roles and their personal approver tokens: who may do what, checked by stage flows and CLI
commands, every change recorded in the audit trail (stage `access`, trail `*`).

Who acts (modelops.platform.current_actor): a person named by MODELOPS_USER on the command line, the service
identity in every run a Prefect runner starts for a deployment (triggers, schedules). The service may run every
stage (an approval run applies the policy) but a person's approval always needs that person's approver token:
open-source Prefect has no user accounts, so neither a form nor an environment variable proves who decided.

Until the first person is added the platform runs as before, for the owner of its state directory alone (stages
unchecked; no human approval is possible, as nobody holds a token). `modelops people add <you> --role
modelops_engineer` with MODELOPS_USER=<you> is the bootstrap: only possible while the store has no people, only for
yourself. From then on every command and stage checks roles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace as with_fields
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Iterable

from modelops.approval_signing import Statement, age_problem, parse_code, public_key_of, verifies
from modelops.credentials import DEFAULT_TOKEN_DAYS, TOKEN, mint_token
from modelops.errors import ModelOpsError, NotPermittedError
from modelops.platform import SERVICE_ACTOR, current_actor
from modelops.store.records import ACCESS_STAGE, PEOPLE_SCOPE, AuditFact, Change, GovernanceStore, PersonInfo
from serving.tokens import StorePlatform as AdminPlatform, publish_head_file

PERSON_NAME = re.compile(r"[a-z][a-z0-9._-]{0,99}")
TOKEN_ENV = "MODELOPS_APPROVER_TOKEN"


class Role(StrEnum):
    data_scientist = "data_scientist"
    modelops_engineer = "modelops_engineer"
    approver = "approver"
    operator = "operator"
    auditor = "auditor"


DS, ENG, APPROVER, OPS = Role.data_scientist, Role.modelops_engineer, Role.approver, Role.operator
# Who may run each stage. Running `approve` applies the policy; a person's approval decision needs more (an
# approver token, the approver role and four eyes: modelops.approvals).
STAGE_ROLES: dict[str, frozenset[Role]] = {
    "register": frozenset({DS, ENG}), "validate": frozenset({DS, ENG}), "approve": frozenset({DS, ENG, APPROVER}),
    "deploy": frozenset({ENG, OPS}), "score": frozenset({DS, ENG, OPS}), "monitor": frozenset({ENG, OPS}),
    "sweep": frozenset({ENG, OPS}), "retrain": frozenset({DS, ENG}), "retire": frozenset({ENG}),
}
PEOPLE_ADMIN = frozenset({ENG})


@dataclass(frozen=True)
class Identity:
    kind: str  # person | service | user (an OS user: a platform without people)
    name: str

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


def identity_of(actor: str) -> Identity:
    kind, _, name = actor.partition(":")
    return Identity(kind, name) if name else Identity("user", actor)


def current_identity() -> Identity:
    return identity_of(current_actor())


def person_actor(name: str) -> str:
    return f"person:{name}"


def check_person_name(name: str) -> None:
    if not PERSON_NAME.fullmatch(name):
        raise ModelOpsError(f"{name!r} is not a person's name",
                            "use 1-100 lowercase letters, digits, '.', '_' or '-', starting with a letter (e.g. "
                            "alice or a.smith); MODELOPS_USER names people the same way")


def role_of(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ModelOpsError(f"{text!r} is not a role", f"use one of: {', '.join(Role)}") from None


def acting_person(store: GovernanceStore, action: str, identity: Identity | None = None) -> PersonInfo:
    """The person acting, who must exist: a command that needs a person refuses the service and OS users."""
    who = identity or current_identity()
    if who.kind != "person":
        raise NotPermittedError(f"{action} needs a person, and {who.actor} is acting",
                                "set MODELOPS_USER to your name (see `modelops people list`)")
    person = store.person(who.name)
    if person is None:
        raise NotPermittedError(f"{action}: MODELOPS_USER names {who.name!r}, who is not a person of this platform",
                                "ask a modelops_engineer to run `modelops people add " + who.name + "`")
    return person


def authorize(store: GovernanceStore, action: str, allowed: Iterable[Role], identity: Identity | None = None) -> str:
    """The actor, if it may do `action`; NotPermittedError naming the roles it needs otherwise. The service may run
    every stage; before the first person exists, everyone may (see the module's doc)."""
    who = identity or current_identity()
    if who.actor == SERVICE_ACTOR and action in STAGE_ROLES:
        return who.actor
    if not store.has_people():
        return who.actor
    person = acting_person(store, action, who)
    needed = sorted(allowed)
    if not set(person.roles) & set(needed):
        raise NotPermittedError(f"{person.name} may not {action}: it needs one of the roles {', '.join(needed)}, "
                                f"and {person.name} holds {', '.join(person.roles) or 'none'}",
                                f"ask a modelops_engineer: `modelops people grant {person.name} {needed[0]}`")
    return who.actor


def authorize_stage(stage: str, model: str | None) -> str:
    """Stage flows call this first: the actor, if it may run `stage`; a refusal is recorded, then raised."""
    from modelops.platform import get_platform

    store = get_platform().store
    try:
        return authorize(store, stage, STAGE_ROLES[stage])
    except NotPermittedError as exc:
        entry = store.record_audit(actor=current_actor(), stage=ACCESS_STAGE, action="refused",
                                   model=model or PEOPLE_SCOPE, version=None, outcome="refused",
                                   evidence={"attempted": stage, "reason": exc.what})
        publish_head_file(get_platform().settings, entry)
        raise


# --- administration (the CLI) ----------------------------------------------------------------------------------
def _facts(action: str, outcome: str, actor: str, evidence: dict[str, object]) -> list[AuditFact]:
    return [AuditFact(actor=actor, stage=ACCESS_STAGE, action=action, model=PEOPLE_SCOPE, version=None,
                      outcome=outcome, evidence=evidence, event=None, flow_run_id=None)]


def _record(admin: AdminPlatform, action: str, outcome: str, actor: str, evidence: dict[str, object],
            change: Change) -> bool:
    entries = admin.store.record_all(_facts(action, outcome, actor, evidence), change)
    if entries:
        publish_head_file(admin.settings, entries[-1])
    return bool(entries)


def add_person(admin: AdminPlatform, name: str, roles: list[str]) -> bool:
    """A new person with `roles`; True when added, False when the name exists already. The first person is the
    bootstrap: only while the store has no people, only for the person acting, and with modelops_engineer among
    their roles (someone must be able to add the others)."""
    check_person_name(name)
    wanted = sorted({role_of(r) for r in roles})
    store = admin.store
    who = current_identity()
    if not store.has_people():
        if who.kind != "person" or who.name != name:
            raise NotPermittedError("the platform has no people yet: the first person can only add themselves",
                                    f"run it as them: MODELOPS_USER={name} modelops people add {name} --role "
                                    "modelops_engineer")
        if ENG not in wanted or APPROVER in wanted:
            raise NotPermittedError("the first person must hold modelops_engineer (to add the others) and cannot "
                                    "make themselves an approver",
                                    f"`modelops people add {name} --role modelops_engineer`; then add approvers, "
                                    "whom another modelops_engineer or you grant the role")
        action_note = "bootstrap: the first person"
    else:
        actor = acting_person(store, "adding people")
        _require_admin(actor, "add people")
        if actor.name == name:
            raise NotPermittedError(f"{name} exists already", "see `modelops people list`")
        action_note = ""
    return _record(admin, "add-person", "added", who.actor,
                   {"person": name, "roles": [str(r) for r in wanted], **({"note": action_note} if action_note else {})},
                   store.add_person(name, who.actor, [str(r) for r in wanted]))


def _require_admin(person: PersonInfo, what: str) -> None:
    if not set(person.roles) & PEOPLE_ADMIN:
        raise NotPermittedError(f"{person.name} may not {what}: it needs the role modelops_engineer",
                                "ask a modelops_engineer (`modelops people list` shows who)")


def grant_role(admin: AdminPlatform, name: str, role: str) -> bool:
    """True when granted, False when held already. Nobody grants a role to themselves."""
    wanted = role_of(role)
    actor = acting_person(admin.store, "granting roles")
    _require_admin(actor, "grant roles")
    if actor.name == name:
        raise NotPermittedError(f"{name} cannot grant a role to themselves",
                                "another modelops_engineer grants it (four eyes on access too)")
    return _record(admin, "grant-role", "granted", person_actor(actor.name), {"person": name, "role": str(wanted)},
                   admin.store.grant_role(name, str(wanted), person_actor(actor.name)))


def revoke_role(admin: AdminPlatform, name: str, role: str) -> bool:
    """True when revoked, False when not held. The last modelops_engineer keeps the role (no lock-out)."""
    wanted = role_of(role)
    actor = acting_person(admin.store, "revoking roles")
    _require_admin(actor, "revoke roles")
    engineers = [p.name for p in admin.store.people() if ENG in p.roles]
    if wanted == ENG and engineers == [name]:
        raise NotPermittedError(f"{name} is the last modelops_engineer: without one nobody can manage people",
                                "grant modelops_engineer to someone else first")
    return _record(admin, "revoke-role", "revoked", person_actor(actor.name), {"person": name, "role": str(wanted)},
                   admin.store.revoke_role(name, str(wanted), person_actor(actor.name)))


def issue_approver_token(admin: AdminPlatform, name: str, days: int = DEFAULT_TOKEN_DAYS) -> tuple[str, str]:
    """(token id, token text) of a new personal approver token; the person's older tokens stop working. Only the
    person themselves may issue it (nobody else ever sees it), and only while they hold the approver role."""
    actor = acting_person(admin.store, "issuing an approver token")
    if actor.name != name:
        raise NotPermittedError(f"{actor.name} cannot issue {name}'s approver token: a personal token is shown only "
                                "to its owner", f"{name} runs `MODELOPS_USER={name} modelops people token {name}`")
    if APPROVER not in actor.roles:
        raise NotPermittedError(f"{name} does not hold the approver role", "ask a modelops_engineer: "
                                                                           f"`modelops people grant {name} approver`")
    if not 1 <= days <= 366:
        raise ModelOpsError(f"--days {days} is out of range", "give 1 to 366 days")
    token_id, token = mint_token()
    public_key = public_key_of(token)
    expires = datetime.now(timezone.utc) + timedelta(days=days)
    # The public key goes into the hash-chained record too: a key swapped in the table does not match it.
    _record(admin, "issue-approver-token", "issued", person_actor(name),
            {"person": name, "approver_token_id": token_id, "public_key": public_key,
             "expires_at": expires.isoformat()},
            admin.store.add_person_token(token_id=token_id, person=name, public_key=public_key, expires_at=expires))
    return token_id, token


def approval_signer(store: GovernanceStore, code: str | None, statement: Statement, live: bool = True,
                    now: datetime | None = None) -> tuple[str | None, str | None]:
    """(person, None) when `code` is a valid signature of `statement` by an approver token the platform issued to
    that person and, when `live`, neither replaced nor expired now (a vote already cast is checked again without
    `live`: replacing one's token later does not undo it); (None, why not) otherwise. The reason names the token
    by its public id at most."""
    if not code or not code.strip():
        return None, "no approval code was given (sign your decision with your approver token)"
    parsed = parse_code(code)
    if parsed is None and TOKEN.fullmatch(code.strip()):
        return None, ("that is an approver token, not an approval code: the token is exposed now (anyone who can "
                      "read the run's input saw it), issue a new one with `modelops people token` and sign with it")
    if parsed is None:
        return None, ("the approval code is malformed (expected <token id>.<signing time>.<signature>, as `modelops approve "
                      "--sign` prints it; an approver token itself is never pasted anywhere)")
    token_id = parsed.token_id
    credential = store.person_credential(token_id)
    if credential is None:
        return None, f"approver token {token_id} is not valid"
    if credential.public_key is None:
        return None, f"approver token {token_id} predates signed approvals: issue a new one (`modelops people token`)"
    if not verifies(credential.public_key, with_fields(statement, signed_at=parsed.signed_at), parsed.signature):
        return None, (f"the approval code is no signature of this decision by approver token {token_id}: a wrong "
                      "token, or signed for another version, request, decision or comment (sign exactly what you "
                      "submit)")
    if live and (too_old := age_problem(parsed.signed_at, now)):
        return None, too_old
    if live and credential.revoked:
        return None, f"approver token {token_id} was replaced or revoked"
    if live and credential.expires_at <= (now or datetime.now(timezone.utc)):
        return None, f"approver token {token_id} expired at {credential.expires_at:%Y-%m-%d %H:%M} UTC"
    return credential.person, None
