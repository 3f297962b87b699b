"""API tokens against a real SQLite governance store in a fresh state directory: issuing, checking a request's
Authorization header, revoking, what the store and the audit trail keep, and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from modelops.errors import ModelOpsError, SpecError
from modelops.settings import load_settings
from modelops.store.db import engine_for
from serving.tokens import AccessDenied, StoreOnly, TokenTable, issue_token, revoke_token, store_platform

ROOT = Path(__file__).resolve().parents[2]
MODEL, OTHER = "flight-delay", "bike-demand"


@pytest.fixture
def admin(state_home: Path) -> StoreOnly:
    return store_platform(load_settings())


def bearer(token: str) -> str:
    return f"Bearer {token}"


def secret_of(token: str) -> str:
    return token.split("_", 2)[2]


def denied(table: TokenTable, header: str | None, model: str = MODEL) -> AccessDenied:
    with pytest.raises(AccessDenied) as caught:
        table.authorize(header, model)
    return caught.value


def test_an_issued_token_authorizes_its_client_for_its_models(admin: StoreOnly) -> None:
    token_id, token = issue_token(admin, "checkout", [MODEL])
    assert token.startswith(f"mop_{token_id}_") and len(secret_of(token)) >= 43
    assert TokenTable.load(admin.store).authorize(bearer(token), MODEL) == "checkout"


def test_a_wrong_secret_is_refused_with_401(admin: StoreOnly) -> None:
    token_id, token = issue_token(admin, "checkout", [MODEL])
    forged = f"mop_{token_id}_{'A' * 43}"
    refused = denied(TokenTable.load(admin.store), bearer(forged))
    assert (refused.status, refused.reason, refused.token_id) == (401, "wrong-secret", token_id)
    assert secret_of(forged) not in str(refused) and secret_of(token) not in str(refused)


def test_an_unknown_token_id_is_refused_with_401(admin: StoreOnly) -> None:
    _, token = issue_token(admin, "checkout", [MODEL])
    stranger = f"mop_{'0' * 16}_{secret_of(token)}"
    refused = denied(TokenTable.load(admin.store), bearer(stranger))
    assert (refused.status, refused.reason) == (401, "unknown")
    assert secret_of(token) not in refused.message


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer mop_123_abc", "{token}",
                                    "Bearer {token} extra", "Bearer {token}" + " " * 200, "Token {token}"])
def test_a_malformed_authorization_header_is_refused_with_401(admin: StoreOnly, header: str) -> None:
    _, token = issue_token(admin, "checkout", [MODEL])
    refused = denied(TokenTable.load(admin.store), header.format(token=token))
    assert (refused.status, refused.reason) == (401, "malformed")
    assert secret_of(token) not in refused.message
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="modelops", error="invalid_token"'


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_missing_authorization_header_is_refused_with_401(admin: StoreOnly, header: str | None) -> None:
    issue_token(admin, "checkout", [MODEL])
    refused = denied(TokenTable.load(admin.store), header)
    assert (refused.status, refused.reason) == (401, "missing")
    assert refused.headers == {"WWW-Authenticate": 'Bearer realm="modelops"'}


def test_a_model_outside_the_tokens_scope_is_refused_with_403(admin: StoreOnly) -> None:
    token_id, token = issue_token(admin, "checkout", [MODEL])
    refused = denied(TokenTable.load(admin.store), bearer(token), OTHER)
    assert (refused.status, refused.reason, refused.token_id) == (403, "out-of-scope", token_id)
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]


def test_a_revoked_token_is_refused_once_the_table_is_reloaded(admin: StoreOnly) -> None:
    token_id, token = issue_token(admin, "checkout", [MODEL])
    before = TokenTable.load(admin.store)
    assert revoke_token(admin, token_id) is True
    assert (before.live, TokenTable.load(admin.store).live) == (1, 0)
    # A loaded table is a snapshot: the revocation reaches requests through the next load, not half-way.
    assert before.authorize(bearer(token), MODEL) == "checkout"
    refused = denied(TokenTable.load(admin.store), bearer(token))
    assert (refused.status, refused.reason, refused.token_id) == (401, "revoked", token_id)


def test_revoking_a_revoked_token_changes_nothing(admin: StoreOnly) -> None:
    token_id, _ = issue_token(admin, "checkout", [MODEL])
    assert revoke_token(admin, token_id) is True
    first = admin.store.api_token(token_id)
    assert revoke_token(admin, token_id, actor="user:someone-else") is False
    assert admin.store.api_token(token_id) == first
    assert [e.action for e in admin.store.audit_trail(MODEL)] == ["create-token", "revoke-token"]


def test_an_all_models_token_may_call_every_model(admin: StoreOnly) -> None:
    _, token = issue_token(admin, "reporting", ["*"])
    table = TokenTable.load(admin.store)
    assert [table.authorize(bearer(token), model) for model in (MODEL, OTHER)] == ["reporting", "reporting"]


def test_a_token_cannot_be_scoped_to_a_model_without_a_spec(admin: StoreOnly) -> None:
    with pytest.raises(SpecError, match="no model is named 'no-such-model'") as caught:
        issue_token(admin, "checkout", [MODEL, "no-such-model"])
    assert MODEL in caught.value.fix and OTHER in caught.value.fix
    assert admin.store.api_tokens(include_revoked=True) == []  # nothing half-issued


def test_a_client_name_must_be_plain(admin: StoreOnly) -> None:
    with pytest.raises(ModelOpsError, match="is not a client name"):
        issue_token(admin, "checkout\nservice", [MODEL])


def test_the_store_never_holds_a_token_in_clear(admin: StoreOnly, state_home: Path) -> None:
    token_id, token = issue_token(admin, "checkout", [MODEL, OTHER])
    revoke_token(admin, token_id)
    engine_for(admin.settings.governance_url).dispose()  # connections closed: the WAL is checkpointed
    files = list(state_home.rglob("governance.db*"))
    assert files
    for path in files:
        assert secret_of(token).encode() not in path.read_bytes(), path
    with engine_for(admin.settings.governance_url).connect() as connection:
        stored = connection.execute(text("SELECT token_hash FROM api_tokens")).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()


def test_creating_and_revoking_are_audited_in_each_scoped_models_trail_without_the_secret(
        admin: StoreOnly) -> None:
    token_id, token = issue_token(admin, "checkout", [OTHER, MODEL], actor="user:ops")
    revoke_token(admin, token_id, actor="user:security")
    stored_hash = hashlib.sha256(token.encode()).hexdigest()
    for model in (MODEL, OTHER):
        trail = admin.store.audit_trail(model)
        assert [(e.stage, e.action, e.outcome, e.actor) for e in trail] == [
            ("access", "create-token", "created", "user:ops"), ("access", "revoke-token", "revoked", "user:security")]
        for entry in trail:
            assert entry.evidence == {"token_id": token_id, "client": "checkout", "models": [OTHER, MODEL]}
    chain = admin.store.audit_chain()
    assert all(secret_of(token) not in json.dumps(row.evidence) and stored_hash not in json.dumps(row.evidence)
               for row in chain)
    assert admin.store.verify_audit([]).ok
    head = json.loads((admin.settings.home / "audit-head.json").read_text())
    assert (head["seq"], head["hash"]) == (chain[-1].seq, chain[-1].record_hash)


def test_the_whole_audit_verification_holds_after_token_changes(admin: StoreOnly) -> None:
    from modelops.platform import get_platform
    from tasks.audit import verify_audit

    token_id, _ = issue_token(admin, "checkout", [MODEL])
    issue_token(admin, "reporting", ["*"])
    revoke_token(admin, token_id)
    verdict = verify_audit(get_platform())
    assert verdict.ok, verdict.problem
    assert verdict.records == 3


def test_a_token_row_written_around_the_platform_is_reported(admin: StoreOnly) -> None:
    issue_token(admin, "checkout", [MODEL])  # backed by its record: not reported
    with engine_for(admin.settings.governance_url).begin() as connection:
        connection.execute(text("INSERT INTO api_tokens (id, client, token_hash, models, created_at, created_by) "
                                "VALUES ('00000000000000aa', 'intruder', :hash, '[\"*\"]', '2026-11-29 00:00:00', "
                                "'user:nobody')"), {"hash": "0" * 64})
    problems = admin.store.unbacked_state(MODEL)
    assert problems == ["API token 00000000000000aa (client intruder, models *): no create-token record has this "
                        "client and these models"]
    assert admin.store.unbacked_state(OTHER) == problems  # it may call every model, so every model reports it


def test_the_gateway_never_honours_a_token_row_written_around_the_platform(admin: StoreOnly) -> None:
    token = "mop_00000000000000ab_" + "s" * 43
    with engine_for(admin.settings.governance_url).begin() as connection:
        connection.execute(text("INSERT INTO api_tokens (id, client, token_hash, models, created_at, created_by) "
                                "VALUES ('00000000000000ab', 'intruder', :hash, '[\"*\"]', '2026-11-29 00:00:00', "
                                "'user:nobody')"), {"hash": hashlib.sha256(token.encode()).hexdigest()})
    issued_id, issued = issue_token(admin, "checkout", [MODEL])  # the table does load, with the backed token
    table = TokenTable.load(admin.store)
    assert table.authorize(bearer(issued), MODEL) == "checkout"
    assert denied(table, bearer(token)).reason == "unknown"


def test_a_token_pasted_into_a_failing_command_is_not_written_to_the_cli_log(
        admin: StoreOnly, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import cli_log_path, main

    _, token = issue_token(admin, "checkout", [MODEL])
    assert main(["tokens", "revoke", token]) == 2  # the whole token where its id belongs
    capsys.readouterr()
    logged = cli_log_path(admin.settings).read_text()
    assert "tokens revoke mop_<redacted>" in logged and secret_of(token) not in logged


def test_a_scope_widened_around_the_platform_is_reported(admin: StoreOnly) -> None:
    token_id, _ = issue_token(admin, "checkout", [MODEL])
    with engine_for(admin.settings.governance_url).begin() as connection:
        connection.execute(text("UPDATE api_tokens SET models = :models WHERE id = :id"),
                           {"models": json.dumps([OTHER, MODEL]), "id": token_id})
    assert admin.store.unbacked_state(OTHER) == [f"API token {token_id} (client checkout, models {OTHER}, {MODEL}): "
                                                 "no create-token record has this client and these models"]


def test_the_cli_creates_lists_and_revokes_tokens(admin: StoreOnly, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    assert main(["tokens", "create", "checkout", "--model", MODEL, "--model", OTHER]) == 0
    created = capsys.readouterr()
    token = created.out.strip()
    token_id = token.split("_")[1]
    assert "cannot be shown again" in created.err and token not in created.err
    assert TokenTable.load(admin.store).authorize(bearer(token), OTHER) == "checkout"

    assert main(["tokens", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert json.loads(listed)[0] | {"created_at": None} == {
        "id": token_id, "client": "checkout", "models": [OTHER, MODEL], "created_at": None, "created_by": "user:pytest",
        "revoked_at": None, "revoked_by": None}
    assert secret_of(token) not in listed and hashlib.sha256(token.encode()).hexdigest() not in listed

    assert main(["tokens", "revoke", token_id]) == 0
    assert f"revoked API token {token_id}" in capsys.readouterr().out
    assert main(["tokens", "list"]) == 0
    assert token_id not in capsys.readouterr().out  # live tokens only
    assert main(["tokens", "list", "--all"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(token_id))
    assert "by user:pytest" in row
    assert denied(TokenTable.load(admin.store), bearer(token)).reason == "revoked"


def test_the_cli_reports_an_unknown_token_id_cleanly(admin: StoreOnly, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    assert main(["tokens", "revoke", "0123456789abcdef"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["error: no API token has the id 0123456789abcdef",
                                "fix:   see `modelops tokens list --all`"]


def test_the_token_commands_import_neither_prefect_nor_mlflow(state_home: Path) -> None:
    code = ("import sys; from modelops.cli import main; "
            "assert main(['tokens', 'create', 'checkout', '--all-models']) == 0; "
            "assert main(['tokens', 'list']) == 0; "
            "print(sorted(m for m in ('prefect', 'mlflow') if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_a_store_at_revision_0004_gains_the_token_table_when_opened(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from modelops.store.db import MIGRATIONS
    from modelops.store.records import GovernanceStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    config = Config(str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    assert "api_tokens" not in inspect(engine).get_table_names()
    engine.dispose()
    store = GovernanceStore(url)
    store.open()  # opening migrates to the newest revision
    columns = {c["name"] for c in inspect(engine_for(url)).get_columns("api_tokens")}
    assert columns == {"id", "client", "token_hash", "models", "created_at", "created_by", "revoked_at",
                       "revoked_by"}
    assert store.api_tokens(include_revoked=True) == [] and store.token_credentials() == []
