"""`modelops people ...` and `modelops approve ... --decision`: the command implementations (modelops.cli registers
their parsers). People commands work on the governance store alone (no Prefect, no MLflow)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from typing import Any

from modelops.errors import ModelOpsError, NotPermittedError


def _admin() -> Any:
    from modelops.settings import load_settings
    from serving.tokens import store_platform

    return store_platform(load_settings())


def cmd_people_add(args: argparse.Namespace) -> int:
    from modelops.cli_render import answer
    from modelops.people import add_person

    roles = sorted(set(args.roles or []))
    added = add_person(_admin(), args.name, args.roles or [])
    answer(args, {"name": args.name, "roles": roles, "changed": added},
           [f"added {args.name} ({', '.join(roles) or 'no roles yet'})" if added else
            f"{args.name} exists already: nothing changed (grant roles with `modelops people grant`)"])
    return 0


def cmd_people_list(args: argparse.Namespace) -> int:
    people = _admin().store.people()
    if args.json:
        from modelops.cli_output import as_json

        print(as_json([{"name": p.name, "roles": list(p.roles), "created_at": p.created_at.isoformat(),
                        "created_by": p.created_by} for p in people]))
        return 0
    if not people:
        print("no people yet: bootstrap with MODELOPS_USER=<you> modelops people add <you> --role modelops_engineer")
        return 0
    from modelops.cli_render import Table, show

    show([Table(("name", "roles"), [(p.name, ", ".join(p.roles) or "-") for p in people], plain_headers=False)])
    return 0


def cmd_people_grant(args: argparse.Namespace) -> int:
    from modelops.cli_render import answer
    from modelops.people import grant_role

    changed = grant_role(_admin(), args.name, args.role)
    answer(args, {"name": args.name, "role": args.role, "holds": True, "changed": changed},
           [f"{args.name} now holds {args.role}" if changed else f"{args.name} held {args.role} already"])
    return 0


def cmd_people_revoke(args: argparse.Namespace) -> int:
    from modelops.cli_render import answer
    from modelops.people import revoke_role

    changed = revoke_role(_admin(), args.name, args.role)
    answer(args, {"name": args.name, "role": args.role, "holds": False, "changed": changed},
           [f"{args.name} no longer holds {args.role}" if changed else f"{args.name} did not hold {args.role}"])
    return 0


def cmd_people_token(args: argparse.Namespace) -> int:
    from modelops.people import TOKEN_ENV, issue_approver_token

    token_id, token = issue_approver_token(_admin(), args.name, args.days)
    print(token)
    # On stderr: `export MODELOPS_APPROVER_TOKEN=$(modelops people token <you>)` captures the token alone.
    print(f"issued approver token {token_id} for {args.name}, valid {args.days} days; any older token of "
          f"{args.name} stopped working. This is the only time it is shown (the store keeps only its public key). "
          f"Keep it in {TOKEN_ENV} on your machine: `modelops approve --decision` signs with it, and `modelops "
          "approve --decision ... --sign` prints the approval code for the form in the Prefect UI. Never paste the "
          "token itself anywhere, nor pass it as a command-line argument.", file=sys.stderr)
    return 0


def _request_to_decide(model: str, version: str, open_one: bool) -> tuple[Any, Any, Any, Any]:
    """(platform, version, human-approval rule, open request) for a person's decision; the request is opened
    when `open_one` and none exists. Refused when nothing waits for people."""
    from modelops.approval_policy import effective_policy
    from modelops.lifecycle import ApprovalStatus
    from modelops.platform import get_platform
    from tasks.context import resolve_model_version
    from tasks.decisions import apply_approval_policy, approval_spec
    from tasks.human_approval import expire, open_request

    platform = get_platform()
    mv = resolve_model_version(model, version)
    rules = apply_approval_policy(platform, mv)
    if rules.status != ApprovalStatus.pending:
        raise ModelOpsError(f"{model} v{version} needs no people: the policy {rules.status} it "
                            f"({'; '.join(rules.reasons)})", "nothing to decide; see `modelops audit " + model + "`")
    rule = effective_policy(approval_spec(platform, mv)).human_approvals
    request = platform.store.approval_request(model, version)
    if request is None and open_one:
        open_request(platform, mv, rules, rule, None)
        request = platform.store.approval_request(model, version)
    if request is None:
        raise ModelOpsError(f"nobody has been asked to approve {model} v{version} yet",
                            f"run `modelops approve {model} --version {version}` first (or decide without --sign)")
    if request.open and request.deadline <= datetime.now(timezone.utc):
        if not open_one:  # signing records nothing
            raise ModelOpsError(f"the approval deadline of {model} v{version} passed "
                                f"({request.deadline:%Y-%m-%d %H:%M} UTC)", "register and validate a new version "
                                                                            "to ask again")
        expire(platform, mv, request, rule)  # the deadline run may not have come yet: the outcome is the same
        request = platform.store.approval_request(model, version)
    if not request.open:
        raise ModelOpsError(f"{model} v{version} was decided already ({request.outcome})",
                            "register and validate a new version to ask again")
    return platform, mv, rule, request


def approval_code(model: str, version: str, decision: str, comment: str) -> str:
    """The code that signs this decision with the approver token in the environment (`approve --sign`)."""
    from modelops.approval_signing import sign
    from modelops.people import TOKEN_ENV
    from tasks.human_approval import statement_for

    token = os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise NotPermittedError(f"{TOKEN_ENV} is not set", "export your approver token (`modelops people token "
                                                           "<you>` prints it) and sign again")
    _, mv, _, request = _request_to_decide(model, version, open_one=False)
    code = sign(token, statement_for(mv, request, decision, comment))
    if code is None:
        raise NotPermittedError(f"{TOKEN_ENV} does not hold an approver token (expected mop_<id>_<secret>)",
                                "export the token `modelops people token <you>` printed")
    return code


def decide(model: str, version: str, decision: str, comment: str) -> dict[str, Any]:
    """A person's decision from the command line, signed with the approver token from the environment: judged and
    recorded as a form would be; a final decision cancels the run still waiting for it."""
    from modelops.approval_signing import sign
    from modelops.lifecycle import ApprovalStatus
    from modelops.people import TOKEN_ENV
    from tasks.human_approval import Submission, people_decision, record_submission, statement_for, stop_waiting

    platform, mv, rule, request = _request_to_decide(model, version, open_one=True)
    token = os.environ.get(TOKEN_ENV, "")
    code = sign(token, statement_for(mv, request, decision, comment)) if token.strip() else None
    counted, refusal = record_submission(platform, mv, Submission(
        decision=decision, comment=comment, code=code, via="cli"), rule)
    if not counted:
        raise NotPermittedError(f"the decision was refused and recorded: {refusal}",
                                f"set {TOKEN_ENV} to your own approver token (`modelops people token <you>`); the "
                                "approver role is needed, and nobody approves a version they registered or retrained")
    outcome = people_decision(platform, mv, rule)
    waiting = platform.store.approval_request(model, version)
    if outcome.status != ApprovalStatus.pending and waiting is not None:
        stop_waiting(waiting.flow_run_id, f"decided on the command line: {outcome.status}")
    return {"model": model, "version": version, "status": outcome.status, "reasons": outcome.reasons,
            "approvals_needed": outcome.approvals_needed}


def cmd_approve_decision(args: argparse.Namespace) -> int:
    from modelops.cli_output import as_json

    if args.sign:
        code = approval_code(args.model, args.version, args.decision, args.comment or "")
        print(as_json({"approval_code": code}) if args.json else code)
        if not args.json:
            print(f"signed: {args.decision} on {args.model} v{args.version} with the comment "
                  f"{(args.comment or '')!r}. Enter exactly this decision and comment in the form.", file=sys.stderr)
        return 0
    result = decide(args.model, args.version, args.decision, args.comment or "")
    if args.json:
        print(as_json(result))
    else:
        more = f"; {result['approvals_needed']} more approval(s) needed" if result["approvals_needed"] else ""
        print(f"{args.model} v{args.version}: {result['status']}{more} ({'; '.join(result['reasons'])})")
    return 0


def register_parsers(sub: Any, common: argparse.ArgumentParser, machine: argparse.ArgumentParser) -> None:
    """`modelops people add|list|grant|revoke|token`."""
    from modelops.credentials import DEFAULT_TOKEN_DAYS

    people = sub.add_parser("people", help="people of the platform and their roles (data_scientist, "
                                           "modelops_engineer, approver, operator, auditor); MODELOPS_USER says who "
                                           "you are")
    commands = people.add_subparsers(dest="people_command", required=True)
    add = commands.add_parser("add", parents=[machine], help="add a person (the first one bootstraps: yourself, as "
                                                            "modelops_engineer)")
    add.set_defaults(handler=cmd_people_add)
    add.add_argument("name")
    add.add_argument("--role", dest="roles", action="append", metavar="ROLE", help="a role (repeatable)")
    listing = commands.add_parser("list", parents=[machine], help="people and the roles they hold")
    listing.set_defaults(handler=cmd_people_list)
    for verb, handler, what in (("grant", cmd_people_grant, "grant a role (never to yourself)"),
                                ("revoke", cmd_people_revoke, "revoke a role")):
        command = commands.add_parser(verb, parents=[machine], help=what)
        command.set_defaults(handler=handler)
        command.add_argument("name")
        command.add_argument("role")
    token = commands.add_parser("token", parents=[common], help="issue your personal approver token (printed once; "
                                                                "your older one stops working)")
    token.set_defaults(handler=cmd_people_token)
    token.add_argument("name", help="you (MODELOPS_USER): nobody issues someone else's token")
    token.add_argument("--days", type=int, default=DEFAULT_TOKEN_DAYS, help="days until it expires (1-366)")
