"""`modelops`: the command line of the platform (demo, status, audit, and each stage by hand)."""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelops.cli_score import SCORE_OPTIONS
from modelops.errors import ModelOpsError

if TYPE_CHECKING:
    from modelops.services.stage_service import Endpoint
    from modelops.settings import Settings
    from serving.tokens import StoreOnly


def stage_flow(name: str) -> Any:
    """The flow of a stage command (flows/<name>.py defines the flow <name>)."""
    import importlib

    return getattr(importlib.import_module(f"flows.{name}"), name)


def stage_result(command: str, params: dict[str, Any]) -> Any:
    """Run a stage's flow in this process (against the configured Prefect API); its result as JSON-ready data.
    The stage service's children run stages through this too."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from modelops.cli_output import as_data

    # Prefect's heartbeat thread sleeps in one-second steps and each flow run (sub-flows too) waits for it to stop:
    # up to a second per flow, a third of an `approve`. A run started here is already covered without it: it is
    # tagged with its owning process, and a run whose process died is marked Crashed (modelops.recovery) by the
    # next command, or at once by the stage service that forked it. Deployment runs of the stack keep heartbeats.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return as_data(stage_flow(command)(**params))


# Options of the CLI itself, not parameters of the stage's flow.
_CLI_OPTIONS = ("command", "handler", "json", "debug", "own_server", "decision", "comment", "sign", "progress")


def _cmd_demo(_: argparse.Namespace) -> int:
    from modelops.demo import run_demo

    return run_demo()


def _cmd_status(args: argparse.Namespace) -> int:
    from modelops.platform import get_platform
    from modelops.reporting import STATUS_SEPARATOR, status_blocks, status_data
    from modelops.spec import load_all_specs

    platform = get_platform(catalog=not args.store_only)
    metrics = {spec.name: spec.monitoring.performance.metric for spec in load_all_specs()}
    models = [args.model] if args.model else None  # None: every registered model
    # The store first: with --store-only, MLflow is neither imported nor opened.
    if args.model and not platform.store.governed_versions(args.model) and (
            args.store_only or not platform.catalog.has_model(args.model)):
        from modelops.errors import CatalogError

        where = ("the governance store (--store-only)" if args.store_only
                 else "the MLflow registry or the governance store")
        raise CatalogError(f"no model {args.model!r} in {where}", "`modelops status` without a model lists every model")
    if args.json:
        from modelops.cli_output import as_json

        print(as_json(status_data(platform, models, metrics, not args.store_only)))
    else:
        from modelops.cli_render import show

        show(status_blocks(platform, models, metrics, not args.store_only), STATUS_SEPARATOR)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from modelops.platform import get_platform

    if args.model == "verify":
        return _verify_audit(args)
    from modelops.reporting import audit_blocks, audit_data

    if args.json:
        from modelops.cli_output import as_json

        print(as_json(audit_data(get_platform(), args.model)))
    else:
        from modelops.cli_render import show

        show(audit_blocks(get_platform(), args.model))
    return 0


def _verify_audit(args: argparse.Namespace) -> int:
    """Exit 0 when the whole audit chain and its outside heads hold, 1 naming the first bad record."""
    from modelops.cli_render import answer
    from modelops.platform import get_platform
    from tasks.audit import verify_audit

    verdict = verify_audit(get_platform())
    data = {"ok": verdict.ok, "records": verdict.records, "problem": None if verdict.ok else verdict.problem}
    if verdict.ok or args.json:
        answer(args, data, [f"audit trail intact: {verdict.records} records, every link and hash verified, outside "
                            "heads match"])
        return 0 if verdict.ok else 1
    print(f"audit trail BROKEN: {verdict.problem}", file=sys.stderr)
    return 1


def _cmd_report(args: argparse.Namespace) -> int:
    from modelops.compliance import cmd_report

    return cmd_report(args)


def _cmd_kpis(args: argparse.Namespace) -> int:
    from modelops.kpis import cmd_kpis

    return cmd_kpis(args)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from modelops.platform import get_platform
    from tasks.integrity import reconcile_catalog

    from modelops.cli_render import answer

    platform = get_platform()
    changed = {model: reconcile_catalog(platform, model)
               for model in ([args.model] if args.model else platform.catalog.model_names())}
    answer(args, [{"model": model, "changes": changes} for model, changes in changed.items()],
           [f"{model}: " + ("; ".join(changes) if changes else "MLflow already mirrors the governance store")
            for model, changes in changed.items()])
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    """Every problem of every spec, each naming the file, the field and the fix; exit 1 when there is one."""
    from modelops.checks import check_config_dir
    from modelops.cli_render import answer
    from modelops.settings import load_settings

    checked = [{"file": str(path), "model": spec.name if spec is not None else None,
                "owner": spec.owner if spec is not None else None,
                "risk_tier": spec.risk_tier.value if spec is not None else None,
                "ok": not problems and spec is not None, "problems": [str(p) for p in problems]}
               for path, spec, problems in check_config_dir(load_settings().config_dir)]
    answer(args, checked, [f"ok    {c['model']} (owner {c['owner']}, risk tier {c['risk_tier']})"
                           for c in checked if c["ok"]])
    failed = [c for c in checked if not c["ok"]]
    for item in failed if not args.json else []:
        problems = item["problems"]
        print(f"FAIL  {Path(item['file']).stem}: {len(problems)} problem{'s' if len(problems) > 1 else ''}",
              file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_deployments(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modelops.generated import differences, display_path, generated_files, write_files
    from modelops.settings import load_settings

    files = generated_files(Path.cwd(), load_settings().config_dir)
    if args.write:
        written = write_files(files)
        print("wrote: " + ", ".join(display_path(path) for path in written) if written else "every generated file is current")
        return 0
    stale = differences(files)
    for message in stale:
        print(message, file=sys.stderr)
    if stale:
        print("fix:   run `modelops deployments --write` (edit the specs or modelops/services/prefect_template.py, "
              "not the generated files) and commit the result", file=sys.stderr)
        return 1
    print("prefect.yaml, the spec's JSON Schema and docs/spec-reference.md match the specs")
    return 0


def _cmd_labels(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.prediction_log import record_ground_truth
    from tasks.scoring import read_batch

    path = Path(args.path)
    from modelops.cli_render import answer

    batch = record_ground_truth(get_platform(), load_spec(args.model), read_batch(path), str(path))
    answer(args, {"model": args.model, "labels": batch.rows, "path": str(path)},
           [f"recorded {batch.rows} labels for {args.model}"])
    return 0


def _token_admin(check: bool = True) -> StoreOnly:
    """The store alone: token commands run against it directly, importing neither Prefect nor MLflow. Issuing and
    revoking gateway tokens is a modelops_engineer's (once the platform has people)."""
    from modelops.people import PEOPLE_ADMIN, authorize
    from modelops.settings import load_settings
    from serving.tokens import store_platform

    admin = store_platform(load_settings())
    if check:
        authorize(admin.store, "manage API tokens", PEOPLE_ADMIN)
    return admin


def _cmd_tokens_create(args: argparse.Namespace) -> int:
    from serving.tokens import ALL_MODELS, issue_token

    admin = _token_admin()
    token_id, token = issue_token(admin, args.client, [ALL_MODELS] if args.all_models else args.models)
    issued = admin.store.api_token(token_id)
    assert issued is not None  # just written
    models = list(issued.models)
    if args.json:
        from modelops.cli_output import as_json

        print(as_json({"id": token_id, "client": args.client, "models": models, "token": token}))
    else:
        print(token)
    # On stderr: `TOKEN=$(modelops tokens create ...)` captures the token alone.
    print(f"created API token {token_id} for {args.client} (models: {', '.join(models)}). This is the only time "
          "the token is shown: the store keeps just its hash, so it cannot be shown again. Send it as "
          "`Authorization: Bearer <token>`; revoke it with `modelops tokens revoke "
          f"{token_id}`.", file=sys.stderr)
    return 0


def _cmd_tokens_list(args: argparse.Namespace) -> int:
    tokens = _token_admin(check=False).store.api_tokens(include_revoked=args.all)
    if args.json:
        from modelops.cli_output import as_json

        print(as_json([{"id": t.id, "client": t.client, "models": list(t.models),
                        "created_at": t.created_at.isoformat(), "created_by": t.created_by,
                        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None, "revoked_by": t.revoked_by}
                       for t in tokens]))
        return 0
    if not tokens:
        print("no API tokens" if args.all else "no live API tokens (--all shows revoked ones too)")
        return 0
    from modelops.cli_render import Table, show

    when = "%Y-%m-%d %H:%M:%S"
    rows = [(t.id, t.client, ", ".join(t.models), t.created_at.strftime(when), t.created_by,
             f"{t.revoked_at.strftime(when)} by {t.revoked_by}" if t.revoked_at else "-") for t in tokens]
    show([Table(("id", "client", "models", "created (UTC)", "created by", "revoked (UTC)"), rows, rule=False)])
    return 0


def _cmd_tokens_revoke(args: argparse.Namespace) -> int:
    from serving.tokens import revoke_token

    from modelops.cli_render import answer

    admin = _token_admin()
    if revoke_token(admin, args.token_id):
        answer(args, {"id": args.token_id, "revoked": True, "changed": True},
               [f"revoked API token {args.token_id}: the gateway refuses it once it reloads its token table"])
        return 0
    token = admin.store.api_token(args.token_id)
    assert token is not None and token.revoked_at is not None  # revoke_token found it revoked
    answer(args, {"id": args.token_id, "revoked": True, "changed": False},
           [f"API token {args.token_id} was revoked already ({token.revoked_at:%Y-%m-%d %H:%M:%S} UTC by "
            f"{token.revoked_by}): nothing changed"])
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from modelops.services.stack import up
    from modelops.settings import load_settings

    services = up(load_settings(), prefect_port=args.prefect_port, mlflow_port=args.mlflow_port,
                  with_mlflow=not args.no_mlflow, gateway_port=None if args.no_gateway else args.gateway_port,
                  gateway_workers=args.gateway_workers, with_streaming=not args.no_streaming, workers=args.workers,
                  with_postgres=args.postgres)
    urls = {s.name: s.url for s in services}
    print(f"Prefect UI:   {urls['prefect-server']}  (deployments: {urls['prefect-server']}/deployments)")
    api_url = f"{urls['prefect-server']}/api"
    print(f"Prefect API:  {api_url}  (export PREFECT_API_URL={api_url})")
    workers = [name for name in urls if name.startswith("modelops-worker-")]
    if workers:
        print(f"Workers:      {', '.join(workers)} on work pool modelops-stages (more, on any machine: README, "
              "\"Work pools and workers\")")
    if "stage-service" in urls:
        print(f"Stage service: {urls['stage-service']}  (stage commands run there, in a warm process)")
    if "postgres" in urls:
        print(f"PostgreSQL:   {urls['postgres']}  (databases governance, mlflow, prefect)")
    if "mlflow-ui" in urls:
        print(f"MLflow UI:    {urls['mlflow-ui']}")
    if "gateway" in urls:
        print(f"Gateway:      {urls['gateway']}  (POST /v1/models/<name>/predict; tokens: modelops tokens create)")
    if "redis" in urls or any(name.startswith("stream-") for name in urls):
        from modelops.services.redis_server import redis_url

        consumers = [name[len("stream-"):] for name in urls if name.startswith("stream-")]
        print(f"Streaming:    {redis_url(load_settings())}  (XADD modelops:<model>:in data <row JSON>; consumers: "
              f"{', '.join(consumers) or 'none, no spec has deploy.targets stream'})")
    print("Logs and pids: " + ", ".join(f"{s.name} pid {s.pid} -> {s.log}" for s in services))
    print("Stop with: modelops down")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from serving.server import serve

    print(f"Gateway on http://{args.host}:{args.port} (Ctrl-C stops it; predictions acknowledged are logged first)")
    serve(args.host, args.port, args.workers)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from modelops.services.stack import down
    from modelops.settings import load_settings

    from modelops.cli_render import answer

    stopped = down(load_settings())
    answer(args, {"stopped": stopped}, ["stopped: " + (", ".join(stopped) if stopped else "nothing was running")])
    return 0


def _cmd_slack(args: argparse.Namespace) -> int:
    import os

    from blocks.slack import SlackAlertChannel

    from pydantic import ValidationError

    token, webhook = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("SLACK_WEBHOOK_URL")
    if not token and not webhook:
        print("error: set SLACK_BOT_TOKEN (with --channel) or SLACK_WEBHOOK_URL in the environment", file=sys.stderr)
        return 2
    if token and not args.channel:
        print("error: a bot token needs --channel (e.g. --channel '#modelops-alerts')", file=sys.stderr)
        return 2
    try:
        block = SlackAlertChannel(bot_token=token, channel=args.channel) if token else SlackAlertChannel(
            webhook_url=webhook)
    except ValidationError as exc:
        # Only the messages: pydantic's full error would echo the secret it was given.
        print("error: " + "; ".join(e["msg"] for e in exc.errors()), file=sys.stderr)
        return 2
    block.save(args.name, overwrite=True)
    print(f"saved Slack alert channel block {args.name!r} ({block.destination}); name it in a spec's "
          "monitoring.alerts.slack_block")
    return 0


def _cmd_recover(_: argparse.Namespace) -> int:
    # The work is done on start, as for every command that runs flows (_with_prefect): nothing more to do here.
    return 0


def _stage_parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in _CLI_OPTIONS and v is not None}


def _run_stage(args: argparse.Namespace) -> int:
    if getattr(args, "sign", None) and not getattr(args, "decision", None):
        raise ModelOpsError("--sign signs a decision, and none was given", "add --decision approve|reject (and the "
                                                                          "--comment you will enter in the form)")
    if getattr(args, "decision", None):  # a person's decision, not a run of the approve stage
        from modelops.cli_people import cmd_approve_decision

        return cmd_approve_decision(args)
    from modelops.cli_progress import progress_shown
    from tasks.progress import reporting_to

    with progress_shown(args) as bars, reporting_to(bars):
        data = stage_result(args.command, _stage_parameters(args))
    _print_stage_result(args, data)
    return 0


def _print_stage_result(args: argparse.Namespace, data: Any) -> None:
    from modelops.cli_output import as_json, breach_note, stage_blocks

    if args.json:
        print(as_json(data))
    else:
        from modelops.cli_render import show

        show(stage_blocks(args.command, data))
    note = breach_note(args.command, data, getattr(args, "own_server", False))
    if note:
        print(note, file=sys.stderr)


def _run_stage_in_service(args: argparse.Namespace, settings: Settings, service: Endpoint) -> int:
    """The stage through the stack's stage service (modelops.services.stage_service): the same flow run in a warm
    process, answered with the same result or error; this process imports neither Prefect nor MLflow."""
    from modelops.cli_progress import progress_shown
    from modelops.services.stage_service import run_stage, stage_parameters

    with progress_shown(args) as bars:  # the service sends the run's steps before its answer
        answer = run_stage(service, args.command, stage_parameters(_stage_parameters(args), Path.cwd()), bars)
    if answer.get("restarting"):  # the service is loading changed code: this time, run the stage here
        return _with_prefect(args, settings)
    if answer.get("ok"):
        args.own_server = False
        _print_stage_result(args, answer.get("result"))
        return 0
    if getattr(args, "debug", False) and answer.get("traceback"):
        print(answer["traceback"], file=sys.stderr, end="")
    return _print_error(str(answer.get("what")), str(answer.get("fix") or ""), int(answer.get("code", 1)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelops", description=__doc__)
    # Every command takes --debug; every command that prints data takes --json (JSON alone on stdout).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show Prefect's logs and the traceback of an error "
                                                             "here (they always go to <state home>/logs/cli.log)")
    machine = argparse.ArgumentParser(add_help=False, parents=[common])
    machine.add_argument("--json", action="store_true", help="print the full result as JSON")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_: str, parents: list[argparse.ArgumentParser] | None = None,
                handler: Callable[[argparse.Namespace], int] | None = None) -> argparse.ArgumentParser:
        added = sub.add_parser(name, help=help_, parents=parents or [common])
        if handler:
            added.set_defaults(handler=handler)
        return added

    command("demo", "run the whole life cycle on real data", handler=_cmd_demo)
    status = command("status", "every model (or one): versions, aliases, last verdicts", [machine], _cmd_status)
    status.add_argument("model", nargs="?", help="only this model")
    status.add_argument("--store-only", action="store_true", help="the governance store's facts alone, without "
                        "reading MLflow (fast with thousands of versions; MLflow's disagreements are not listed)")
    audit = command("audit", "a model's audit trail, oldest first, with all its evidence; `audit verify` checks the "
                             "whole hash chain and exits non-zero naming the first tampered record", [machine],
                    _cmd_audit)
    audit.add_argument("model", help="a model name, or `verify`")
    report = command("report", "a model's compliance report: model card, data, metrics, fairness, approvals with "
                               "evidence, deployments, monitoring history, open findings", handler=_cmd_report)
    report.add_argument("model")
    report.add_argument("--output", "-o", help="write to this file (default: stdout)")
    report.add_argument("--format", choices=["markdown", "html"], help="default: html for a .html output, else "
                                                                       "markdown")
    kpis = command("kpis", "life cycle KPIs of every model from the audit trail: lead time, approval wait, "
                           "monitoring coverage, revalidation, retrains and rollbacks per month", [machine],
                   _cmd_kpis)
    kpis.add_argument("--as-of", help="judge revalidation and monitoring as of this time (ISO 8601, UTC; default: "
                                      "now)")
    reconcile = command("reconcile", "reset MLflow aliases and tags to what the governance store says",
                        [machine], _cmd_reconcile)
    reconcile.add_argument("model", nargs="?")
    command("check", "verify every spec in configs/models against its data (a sample through the loader), metric "
                     "names, cron and per-model flows", [machine], _cmd_check)
    deployments = command("deployments", "render prefect.yaml (per-model schedules) from the specs, with the spec's "
                                         "JSON Schema and reference page", handler=_cmd_deployments)
    mode = deployments.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the files that differ")
    mode.add_argument("--check", action="store_true", help="exit 1 naming every committed file that differs")
    command("recover", "close the flow runs and MLflow runs of processes that were killed (every stage does this "
                       "on start)", handler=_cmd_recover)
    start = command("up", "start Prefect server, stage runner (prefect.yaml) and MLflow UI on loopback; while it "
                          "runs, every command uses that server", handler=_cmd_up)
    start.add_argument("--prefect-port", type=int, default=4200)
    start.add_argument("--mlflow-port", type=int, default=5000)
    start.add_argument("--no-mlflow", action="store_true", help="do not start the MLflow UI")
    start.add_argument("--gateway-port", type=int, default=8080, help="port of the online gateway")
    start.add_argument("--gateway-workers", type=int, default=None, help="gateway worker processes (default: "
                                                                        "one per core)")
    start.add_argument("--no-gateway", action="store_true", help="do not start the online gateway")
    start.add_argument("--no-streaming", action="store_true", help="do not start Redis and the streaming consumers")
    start.add_argument("--workers", type=int, default=0, metavar="N",
                       help="run the stages on a Prefect process work pool served by N workers instead of the "
                            "single stage runner (more workers can join from other machines)")
    start.add_argument("--postgres", action="store_true", help="keep the governance store, MLflow and the Prefect "
                       "server in an embedded PostgreSQL in the state directory (remembered: later commands and "
                       "`up` use it too)")
    serve = command("serve", "start the online gateway alone: every deployed model behind one HTTP service",
                    handler=_cmd_serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    command("down", "stop what `modelops up` started", [machine], _cmd_down)
    slack = command("slack-block", "save the Slack alert channel block from SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL "
                                   "(secrets stay out of configs)", handler=_cmd_slack)
    slack.add_argument("--name", default="modelops-alerts")
    slack.add_argument("--channel", help="channel for a bot token, e.g. #modelops-alerts")
    labels = command("labels", "record ground truth (id column + target) for logged predictions", [machine],
                     _cmd_labels)
    labels.add_argument("model")
    labels.add_argument("path")

    from modelops.cli_lineage import add_commands as add_lineage_commands

    add_lineage_commands(command, machine)

    tokens = sub.add_parser("tokens", help="API tokens of the applications that call the online scoring gateway")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = token_commands.add_parser("create", parents=[machine], help="issue a token scoped to models; it is "
                                                                         "printed once and cannot be shown again")
    create.set_defaults(handler=_cmd_tokens_create)
    create.add_argument("client", help="the consuming application's name")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--model", dest="models", action="append", metavar="NAME",
                       help="a model the token may call (repeatable)")
    scope.add_argument("--all-models", action="store_true", help="the token may call every model")
    listing = token_commands.add_parser("list", parents=[machine], help="tokens (never their secrets or hashes)")
    listing.set_defaults(handler=_cmd_tokens_list)
    listing.add_argument("--all", action="store_true", help="revoked tokens too")
    revoke = token_commands.add_parser("revoke", parents=[machine], help="stop a token from working")
    revoke.set_defaults(handler=_cmd_tokens_revoke)
    revoke.add_argument("token_id", help="the id `tokens list` shows")

    from modelops.cli_people import register_parsers

    register_parsers(sub, common, machine)

    def stage(name: str, help_: str, *options: tuple[str, dict[str, Any]]) -> None:
        added = command(name, help_, [machine], _run_stage)
        added.add_argument("model")
        for flag, kwargs in options:
            added.add_argument(flag, **kwargs)

    stage("register", "train (or take --model-uri) and register a version",
          ("--train-start", {}), ("--train-end", {}), ("--model-uri", {}))
    stage("validate", "run the validation gates (a version validated before keeps its verdict unless --force)",
          ("--version", {"required": True}),
          ("--force", {"action": "store_true", "default": None,
                       "help": "a fresh verdict, e.g. after changing a threshold in the spec"}))
    stage("approve", "apply the approval policy; with --decision, decide as a person (your approver token in "
                     "MODELOPS_APPROVER_TOKEN, never on the command line)", ("--version", {"required": True}),
          ("--decision", {"choices": ["approve", "reject"]}), ("--comment", {"help": "why (recorded)"}),
          ("--sign", {"action": "store_true", "default": None,
                      "help": "with --decision: only print the approval code that signs this decision and comment, "
                              "for the approval form in the Prefect UI (nothing is recorded)"}))
    stage("deploy", "serve an approved version", ("--version", {"required": True}),
          ("--role", {"choices": ["champion", "challenger"], "help": "default: champion for a model's first "
                      "version, else challenger (promoted by winning the comparison)"}),
          ("--reason", {"help": "a person's recorded decision to promote a version that has not won a comparison "
                                "(only where the spec's deploy.promotion allows it)"}))
    stage("score", "score a Parquet/CSV file or a SQL table/query, chunk by chunk (a killed run resumes)",
          *SCORE_OPTIONS)
    stage("monitor", "judge the newest window", ("--window-end", {}), ("--window-days", {"type": int}))
    stage("retrain", "retrain, compare and promote", ("--as-of", {}))
    sweep = command("sweep", "drift verdicts of every model in one run", [machine], _run_stage)
    sweep.add_argument("--chunk-size", type=int)
    stage("retire", "retire a version", ("--version", {"required": True}), ("--reason", {}),
          ("--dry-run", {"action": argparse.BooleanOptionalAction, "default": True}))
    return parser


# Commands that run flows or talk to Prefect's API.
_PREFECT_HANDLERS = (_run_stage, _cmd_demo, _cmd_slack, _cmd_recover)


class _ExpectedError(logging.Filter):
    """A ModelOpsError says what is wrong and how to fix it: main() prints that, and the run's log keeps the
    message, without a traceback that would bury it (a traceback helps with bugs, not with bad input)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ModelOpsError):
            record.exc_info, record.exc_text = None, None
        return True


class _NoErrorReports(logging.Filter):
    """Prefect reports a failing run in the terminal with its own error records ("Encountered exception during
    execution", "Finished in state Failed", often with a traceback); main() says the same in two lines, so these
    go to the log file only (and to the terminal with --debug)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("prefect"):
            return True
        # A failed run's final state comes at INFO (shown when PREFECT_LOGGING_LEVEL lets INFO through).
        failed_state = record.getMessage().startswith(("Finished in state Failed", "Finished in state Crashed"))
        return record.levelno < logging.ERROR and not failed_state


class _CliLogFile(logging.FileHandler):
    """Everything Prefect logs in a CLI process, tracebacks included."""


def cli_log_path(settings: Settings) -> Path:
    return settings.home / "logs" / "cli.log"


def _replace_filter(target: logging.Filterer, kind: type[logging.Filter], wanted: bool) -> None:
    for old in [f for f in target.filters if isinstance(f, kind)]:
        target.removeFilter(old)
    if wanted:
        target.addFilter(kind())


class _CurrentStderr(io.TextIOBase):
    """Whatever sys.stderr is at the moment of writing. Prefect's console handler keeps the stream it was made with;
    in one process that outlives many commands (tests, notebooks) that stream may have been replaced and closed
    since, and writing to it fails in the middle of a flow. Resolving it at each write never goes stale."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except ValueError:  # closed: the process's own stderr is still there
            return sys.__stderr__.write(text) if sys.__stderr__ else len(text)

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except ValueError:
            pass

    def isatty(self) -> bool:
        try:
            return sys.stderr.isatty()
        except ValueError:
            return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(sys.stderr, "encoding", None) or "utf-8"


CURRENT_STDERR = _CurrentStderr()


def route_logs(settings: Settings, debug: bool) -> None:
    """After Prefect configured logging (at its import): its records also go to the CLI's log file, and its error
    reports leave the terminal unless --debug. Repeatable in one process (tests call main() many times)."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # Prefect configures logging on first use; later calls only adjust levels
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CliLogFile)]:
        root.removeHandler(handler)
        handler.close()
    path = cli_log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    log_file = _CliLogFile(path, encoding="utf-8")
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(log_file)
    for handler in [h for h in root.handlers if isinstance(h, PrefectConsoleHandler)]:
        _replace_filter(handler, _NoErrorReports, not debug)
        handler.stream = CURRENT_STDERR  # not setStream: it flushes the old stream, which may be closed
        handler.console.file = CURRENT_STDERR
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        _replace_filter(logging.getLogger(name), _ExpectedError, True)


def _with_prefect(args: argparse.Namespace, settings: Settings) -> int:
    """Run a command against Prefect's API: the server of `modelops up` when it runs, else one whose lifetime this
    process owns when none is configured; first close what killed processes left open, and name this process as
    the owner of the flow runs it starts."""
    import prefect

    from modelops.recovery import Owner, recover_orphaned_runs
    from modelops.services.temporary_server import use_owned_api

    args.own_server = use_owned_api(settings) is not None
    route_logs(settings, getattr(args, "debug", False))
    for line in recover_orphaned_runs():
        print(f"recovered: {line}", file=sys.stderr)
    with prefect.tags(*Owner.current().flow_run_tags()):
        return int(args.handler(args) or 0)


TOKEN_PATTERN = re.compile(r"mop_[0-9A-Za-z_-]+")


def log_exception(settings: Settings, argv: list[str], exc: BaseException) -> Path:
    import traceback
    from datetime import datetime, timezone

    path = cli_log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        # A gateway token pasted where an id was expected must not land in the log in clear.
        command = TOKEN_PATTERN.sub("mop_<redacted>", " ".join(argv))
        log.write(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} modelops {command} failed:\n"
                  + "".join(traceback.format_exception(exc)))
    return path


def _report(exc: BaseException, settings: Settings, args: argparse.Namespace, argv: list[str]) -> int:
    """The error in two lines (what, and how to fix it); its traceback goes to the log, and here with --debug."""
    import traceback

    log = log_exception(settings, argv, exc)
    if getattr(args, "debug", False):  # a command added without the common options has no --debug
        traceback.print_exception(exc, file=sys.stderr)
    return _print_error(*error_summary(exc, args.command, log))


def error_summary(exc: BaseException, command: str, log: Path) -> tuple[str, str, int]:
    """What went wrong, how to fix it, and the exit code (2: bad input or state, 1: a bug); the stage service
    answers with the same."""
    if isinstance(exc, ModelOpsError):
        what, fix, code = exc.what, exc.fix, 2
    elif type(exc).__name__ == "ParameterTypeError":  # Prefect's: a flow parameter out of its bounds
        problems = [line.strip(" -") for line in str(exc).splitlines()[1:] if line.strip()]
        what, fix, code = "invalid " + "; ".join(problems or [str(exc)]), f"see `modelops {command} --help`", 2
    else:
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        what = f"unexpected {type(exc).__name__}: {first_line}"
        fix, code = f"read the traceback in {log} (or rerun with --debug to see it here)", 1
    return what, fix, code


def _print_error(what: str, fix: str, code: int) -> int:
    print(f"error: {what}", file=sys.stderr)
    if fix:
        print(f"fix:   {fix}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    from modelops.settings import configure_environment

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    settings = configure_environment()  # before anything imports prefect
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its INFO lines (creating tables...) are noise here
    try:
        if args.handler is _run_stage and not getattr(args, "decision", None):
            from modelops.services.stage_service import running_socket

            service = running_socket(settings)
            if service is not None:
                return _run_stage_in_service(args, settings, service)
        if args.handler in _PREFECT_HANDLERS:
            return _with_prefect(args, settings)
        return int(args.handler(args) or 0)
    except Exception as exc:  # noqa: BLE001 - every error is reported the same way; the traceback is logged
        return _report(exc, settings, args, argv)


if __name__ == "__main__":
    sys.exit(main())
