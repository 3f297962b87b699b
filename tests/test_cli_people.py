"""`modelops people ...`: people and roles from the command line, the token printed once, and gateway token
administration left to modelops engineers."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.cli import main


def _run(monkeypatch: pytest.MonkeyPatch, person: str, *argv: str) -> int:
    monkeypatch.setenv("MODELOPS_USER", person)
    return main(list(argv))


def test_people_are_added_granted_and_listed(state_home: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(monkeypatch, "alice", "people", "add", "alice", "--role", "modelops_engineer") == 0
    assert _run(monkeypatch, "alice", "people", "add", "bob", "--role", "approver") == 0
    assert _run(monkeypatch, "alice", "people", "grant", "bob", "auditor") == 0
    capsys.readouterr()
    assert _run(monkeypatch, "alice", "people", "list") == 0
    assert capsys.readouterr().out.splitlines() == ["alice  modelops_engineer", "bob    approver, auditor"]


def test_the_approver_token_is_printed_once_on_stdout_alone(state_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    _run(monkeypatch, "alice", "people", "add", "alice", "--role", "modelops_engineer")
    _run(monkeypatch, "alice", "people", "add", "bob", "--role", "approver")
    capsys.readouterr()
    assert _run(monkeypatch, "bob", "people", "token", "bob") == 0
    out, err = capsys.readouterr()
    assert out.startswith("mop_") and len(out.split()) == 1
    assert "only time it is shown" in err and out.strip() not in err


def test_a_data_scientist_cannot_issue_gateway_tokens(state_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _run(monkeypatch, "alice", "people", "add", "alice", "--role", "modelops_engineer")
    _run(monkeypatch, "alice", "people", "add", "dana", "--role", "data_scientist")
    capsys.readouterr()
    assert _run(monkeypatch, "dana", "tokens", "create", "checkout", "--model", "flight-delay") == 2
    err = capsys.readouterr().err
    assert "dana may not manage API tokens: it needs one of the roles modelops_engineer" in err
    assert "fix:" in err


def test_an_approver_token_cannot_be_given_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit):
        main(["approve", "flight-delay", "--version", "1", "--decision", "approve", "--token", "mop_x"])
