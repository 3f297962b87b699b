"""People, roles and approver tokens in the governance store: the bootstrap, role checks of stages, four eyes on
access, tokens only their owner sees, and rows written around the platform never honoured."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from modelops.errors import NotPermittedError
from modelops.approval_signing import Statement, sign
from modelops.people import add_person, approval_signer, authorize_stage, grant_role, issue_approver_token, revoke_role
from tests.store.tamper import drop_append_only_triggers

# What an approver signs; the signature (not the token) is what the store is shown.
DECISION = Statement(model="bike-demand", version="3", content_hash="c" * 64,
                     request_opened_at=datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc), decision="approve",
                     comment="reviewed")


def signer(store: Any, token: str, now: datetime | None = None) -> tuple[str | None, str | None]:
    """Signed and checked at `now` (default: the clock's)."""
    return approval_signer(store, sign(token, DECISION, now), DECISION, now=now)


@pytest.fixture
def platform(governance_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The store alone (as the people commands use it): stage checks and `audit verify` open the whole platform."""
    from modelops.settings import load_settings
    from serving.tokens import store_platform

    monkeypatch.delenv("MODELOPS_USER", raising=False)
    return store_platform(load_settings())


def act_as(monkeypatch: pytest.MonkeyPatch, person: str) -> None:
    monkeypatch.setenv("MODELOPS_USER", person)


def team(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    act_as(monkeypatch, "alice")
    add_person(platform, "alice", ["modelops_engineer"])
    add_person(platform, "bob", ["approver"])
    add_person(platform, "dana", ["data_scientist"])


def test_before_the_first_person_every_stage_runs_as_before(platform: Any) -> None:
    assert authorize_stage("deploy", "bike-demand") == "user:pytest"


def test_the_first_person_can_only_bootstrap_themselves(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    act_as(monkeypatch, "mallory")
    with pytest.raises(NotPermittedError, match="the first person can only add themselves"):
        add_person(platform, "alice", ["modelops_engineer"])
    assert not platform.store.has_people()


def test_the_first_person_cannot_make_themselves_an_approver(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    act_as(monkeypatch, "alice")
    with pytest.raises(NotPermittedError, match="cannot make themselves an approver"):
        add_person(platform, "alice", ["modelops_engineer", "approver"])


def test_once_people_exist_a_command_without_a_person_is_refused(platform: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    monkeypatch.delenv("MODELOPS_USER")
    with pytest.raises(NotPermittedError, match="set MODELOPS_USER"):
        authorize_stage("register", "bike-demand")


def test_a_data_scientist_may_not_deploy_and_the_refusal_is_recorded(platform: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    act_as(monkeypatch, "dana")
    assert authorize_stage("register", "bike-demand") == "person:dana"
    with pytest.raises(NotPermittedError, match="dana may not deploy: it needs one of the roles modelops_engineer, "
                                                "operator"):
        authorize_stage("deploy", "bike-demand")
    [refused] = [r for r in platform.store.audit_trail("bike-demand") if r.action == "refused"]
    assert refused.actor == "person:dana" and refused.evidence["attempted"] == "deploy"


def test_the_service_runs_stages_but_is_nobody_who_could_approve(platform: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "00000000-0000-0000-0000-000000000001")  # as a runner sets it
    assert authorize_stage("deploy", "bike-demand") == "service:modelops"
    with pytest.raises(NotPermittedError, match="needs a person, and service:modelops is acting"):
        issue_approver_token(platform, "bob")


def test_nobody_grants_a_role_to_themselves(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    with pytest.raises(NotPermittedError, match="alice cannot grant a role to themselves"):
        grant_role(platform, "alice", "approver")


def test_only_a_modelops_engineer_grants_roles(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    act_as(monkeypatch, "bob")
    with pytest.raises(NotPermittedError, match="bob may not grant roles"):
        grant_role(platform, "dana", "approver")


def test_the_last_modelops_engineer_keeps_the_role(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    with pytest.raises(NotPermittedError, match="alice is the last modelops_engineer"):
        revoke_role(platform, "alice", "modelops_engineer")


def test_a_role_granted_in_the_database_around_the_platform_is_not_honoured(platform: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.store.db import session_scope
    from modelops.store.schema import RoleGrant

    team(platform, monkeypatch)
    with session_scope(platform.store.url) as session:
        session.execute(insert(RoleGrant).values(person="dana", role="approver", granted_at=datetime.now(timezone.utc),
                                                 granted_by="person:dana"))
    assert platform.store.person("dana").roles == ("data_scientist",)


def test_a_personal_token_is_issued_only_to_its_owner(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    with pytest.raises(NotPermittedError, match="alice cannot issue bob's approver token"):
        issue_approver_token(platform, "bob")


def test_only_an_approver_gets_an_approver_token(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    act_as(monkeypatch, "dana")
    with pytest.raises(NotPermittedError, match="dana does not hold the approver role"):
        issue_approver_token(platform, "dana")


def test_a_new_token_replaces_the_old_one(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    act_as(monkeypatch, "bob")
    old_id, old = issue_approver_token(platform, "bob")
    _, new = issue_approver_token(platform, "bob")
    assert signer(platform.store, new) == ("bob", None)
    assert signer(platform.store, old) == (None, f"approver token {old_id} was replaced or revoked")
    issued = [r for r in platform.store.audit_trail("*") if r.action == "issue-approver-token"]
    assert [r.actor for r in issued] == ["person:bob", "person:bob"]
    assert old not in str([r.evidence for r in issued]) and new not in str([r.evidence for r in issued])


def test_an_expired_token_is_refused(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    act_as(monkeypatch, "bob")
    token_id, token = issue_approver_token(platform, "bob", days=1)
    assert signer(platform.store, token, now=datetime.now(timezone.utc) + timedelta(hours=23)) == ("bob", None)
    person, reason = signer(platform.store, token, now=datetime.now(timezone.utc) + timedelta(days=1, minutes=1))
    assert person is None and reason.startswith(f"approver token {token_id} expired")


def test_an_expiry_extended_in_the_table_is_not_honoured(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.store.db import session_scope
    from modelops.store.schema import PersonToken

    team(platform, monkeypatch)
    act_as(monkeypatch, "bob")
    token_id, token = issue_approver_token(platform, "bob", days=1)
    with session_scope(platform.store.url) as session:
        session.execute(update(PersonToken).values(expires_at=datetime.now(timezone.utc) + timedelta(days=3650)))
    assert signer(platform.store, token) == (None, f"approver token {token_id} is not valid")


def test_a_token_with_a_wrong_secret_is_refused(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    team(platform, monkeypatch)
    act_as(monkeypatch, "bob")
    token_id, token = issue_approver_token(platform, "bob")
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    person, reason = signer(platform.store, forged)
    assert person is None and reason.startswith(f"the approval code is no signature of this decision by approver "
                                                f"token {token_id}")


def test_the_store_keeps_no_approver_secret(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.approval_signing import public_key_of
    from modelops.store.db import session_scope
    from modelops.store.schema import PersonToken

    team(platform, monkeypatch)
    act_as(monkeypatch, "bob")
    token_id, token = issue_approver_token(platform, "bob")
    secret = token.rsplit("_", 1)[1]
    with session_scope(platform.store.url) as session:
        [row] = session.scalars(select(PersonToken)).all()
        stored = str({c.name: getattr(row, c.name) for c in PersonToken.__table__.columns})
    trail = str([r.evidence for r in platform.store.audit_trail("*")])
    assert secret not in stored and secret not in trail
    assert row.public_key == public_key_of(token) and public_key_of(token) in trail


def test_a_public_key_swapped_in_the_table_is_not_honoured(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone who can write the store (not the audit chain) puts their own key on bob's token."""
    from modelops.approval_signing import public_key_of
    from modelops.credentials import mint_token
    from modelops.store.db import session_scope
    from modelops.store.schema import PersonToken

    team(platform, monkeypatch)
    act_as(monkeypatch, "bob")
    token_id, _ = issue_approver_token(platform, "bob")
    _, mallory = mint_token()
    with session_scope(platform.store.url) as session:
        session.execute(update(PersonToken).values(public_key=public_key_of(mallory)))
    as_bob = mallory.replace(mallory.split("_")[1], token_id)  # mallory's secret under bob's token id
    assert signer(platform.store, as_bob) == (None, f"approver token {token_id} is not valid")


def test_an_issue_record_edited_in_place_backs_no_token(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The append-only trigger dropped, the issue record and the row both rewritten to mallory's key: the record
    no longer matches its hash, and every check of people and tokens stops (fails closed) until it is repaired."""
    from modelops.approval_signing import public_key_of
    from modelops.credentials import mint_token
    from modelops.errors import StoreIntegrityError
    from modelops.store.db import session_scope
    from modelops.store.schema import AuditEvent, PersonToken

    team(platform, monkeypatch)
    act_as(monkeypatch, "bob")
    token_id, token = issue_approver_token(platform, "bob")
    assert signer(platform.store, token) == ("bob", None)
    _, mallory = mint_token()
    with session_scope(platform.store.url) as session:
        drop_append_only_triggers(session.connection())
        record = session.scalars(select(AuditEvent).where(AuditEvent.action == "issue-approver-token")).one()
        record.evidence = {**record.evidence, "public_key": public_key_of(mallory)}
        session.execute(update(PersonToken).values(public_key=public_key_of(mallory)))
    as_bob = mallory.replace(mallory.split("_")[1], token_id)
    with pytest.raises(StoreIntegrityError, match="\\(issue-approver-token\\) is not an intact link"):
        signer(platform.store, as_bob)


def test_a_broken_revocation_record_stops_access_checks_rather_than_reviving_the_grant(
        platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.errors import StoreIntegrityError
    from modelops.store.db import session_scope
    from modelops.store.schema import AuditEvent, RoleGrant

    team(platform, monkeypatch)
    grant_role(platform, "dana", "approver")
    revoke_role(platform, "dana", "approver")
    assert platform.store.person("dana").roles == ("data_scientist",)
    with session_scope(platform.store.url) as session:
        drop_append_only_triggers(session.connection())
        record = session.scalars(select(AuditEvent).where(AuditEvent.action == "revoke-role")).one()
        record.evidence = {**record.evidence, "grant_id": -1}
        session.execute(update(RoleGrant).where(RoleGrant.role == "approver").values(revoked_at=None,
                                                                                      revoked_by=None))
    with pytest.raises(StoreIntegrityError, match="access record seq .* \\(revoke-role\\) is not an intact link"):
        platform.store.person("dana")


def test_deleting_every_person_row_does_not_switch_access_checks_off(platform: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import delete

    from modelops.store.db import session_scope
    from modelops.store.schema import Person, PersonToken, RoleGrant

    team(platform, monkeypatch)
    act_as(monkeypatch, "dana")
    with session_scope(platform.store.url) as session:
        for table in (RoleGrant, PersonToken, Person):
            session.execute(delete(table))
    with pytest.raises(NotPermittedError, match="dana.*is not a person of this platform"):
        authorize_stage("register", "bike-demand")


def test_people_changes_keep_the_audit_chain_intact(platform: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.platform import get_platform
    from tasks.audit import verify_audit

    team(platform, monkeypatch)
    grant_role(platform, "dana", "approver")
    revoke_role(platform, "dana", "approver")
    verdict = verify_audit(get_platform())
    assert verdict.ok, verdict.problem
    assert [r.action for r in platform.store.audit_trail("*")] == ["add-person", "add-person", "add-person",
                                                                   "grant-role", "revoke-role"]
