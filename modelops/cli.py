"""`modelops`: the command line of the platform (demo, status, audit, and each stage by hand)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any, Callable

from modelops.errors import ModelOpsError

if TYPE_CHECKING:
    from modelops.settings import Settings


def _stage(name: str) -> Callable[..., Any]:
    import importlib

    return getattr(importlib.import_module(f"flows.{name}"), name)


def _print_result(result: Any) -> None:
    print(result.model_dump_json(indent=2) if hasattr(result, "model_dump_json") else result)


def _cmd_demo(_: argparse.Namespace) -> int:
    from modelops.demo import run_demo

    return run_demo()


def _cmd_status(_: argparse.Namespace) -> int:
    from modelops.platform import get_platform
    from modelops.reporting import status_text
    from modelops.spec import load_all_specs

    platform = get_platform()
    metrics = {spec.name: spec.monitoring.performance.metric for spec in load_all_specs()}
    print(status_text(platform, platform.catalog.model_names(), metrics))
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from modelops.platform import get_platform

    if args.model == "verify":
        return _verify_audit()
    from modelops.reporting import audit_text

    print(audit_text(get_platform(), args.model))
    return 0


def _verify_audit() -> int:
    """Exit 0 when the whole audit chain and its outside heads hold, 1 naming the first bad record."""
    from modelops.platform import get_platform
    from tasks.audit import verify_audit

    verdict = verify_audit(get_platform())
    if verdict.ok:
        print(f"audit trail intact: {verdict.records} records, every link and hash verified, outside heads match")
        return 0
    print(f"audit trail BROKEN: {verdict.problem}", file=sys.stderr)
    return 1


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from modelops.platform import get_platform
    from tasks.integrity import reconcile_catalog

    platform = get_platform()
    for model in [args.model] if args.model else platform.catalog.model_names():
        changes = reconcile_catalog(platform, model)
        print(f"{model}: " + ("; ".join(changes) if changes else "MLflow already mirrors the governance store"))
    return 0


def _cmd_check(_: argparse.Namespace) -> int:
    """Every problem of every spec, each naming the file, the field and the fix; exit 1 when there is one."""
    from modelops.checks import check_config_dir
    from modelops.settings import load_settings

    failed = 0
    for path, spec, problems in check_config_dir(load_settings().config_dir):
        if not problems and spec is not None:
            print(f"ok    {spec.name} (owner {spec.owner}, risk tier {spec.risk_tier.value})")
            continue
        failed += 1
        print(f"FAIL  {path.stem}: {len(problems)} problem{'s' if len(problems) > 1 else ''}", file=sys.stderr)
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
    batch = record_ground_truth(get_platform(), load_spec(args.model), read_batch(path), str(path))
    print(f"recorded {batch.rows} labels for {args.model}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from modelops.services.stack import up
    from modelops.settings import load_settings

    services = up(load_settings(), prefect_port=args.prefect_port, mlflow_port=args.mlflow_port,
                  with_mlflow=not args.no_mlflow)
    urls = {s.name: s.url for s in services}
    print(f"Prefect UI:   {urls['prefect-server']}  (deployments: {urls['prefect-server']}/deployments)")
    print(f"Prefect API:  {urls['stage-runner']}  (export PREFECT_API_URL={urls['stage-runner']})")
    if "mlflow-ui" in urls:
        print(f"MLflow UI:    {urls['mlflow-ui']}")
    print("Logs and pids: " + ", ".join(f"{s.name} pid {s.pid} -> {s.log}" for s in services))
    print("Stop with: modelops down")
    return 0


def _cmd_down(_: argparse.Namespace) -> int:
    from modelops.services.stack import down
    from modelops.settings import load_settings

    stopped = down(load_settings())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
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


def _run_stage(args: argparse.Namespace) -> int:
    params = {k: v for k, v in vars(args).items() if k not in ("command", "handler") and v is not None}
    _print_result(_stage(args.command)(**params))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the whole life cycle on real data").set_defaults(handler=_cmd_demo)
    sub.add_parser("status", help="every model: versions, aliases, last verdicts").set_defaults(handler=_cmd_status)
    audit = sub.add_parser("audit", help="a model's audit trail, oldest first; `audit verify` checks the whole "
                                         "hash chain and exits non-zero naming the first tampered record")
    audit.add_argument("model", help="a model name, or `verify`")
    audit.set_defaults(handler=_cmd_audit)
    reconcile = sub.add_parser("reconcile", help="reset MLflow aliases and tags to what the governance store says")
    reconcile.add_argument("model", nargs="?")
    reconcile.set_defaults(handler=_cmd_reconcile)
    sub.add_parser("check", help="verify every spec in configs/models against its data (a sample through the loader), "
                               "metric names, cron and per-model flows").set_defaults(handler=_cmd_check)
    deployments = sub.add_parser("deployments", help="render prefect.yaml (per-model schedules) from the specs, "
                                                     "with the spec's JSON Schema and reference page")
    mode = deployments.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the files that differ")
    mode.add_argument("--check", action="store_true", help="exit 1 naming every committed file that differs")
    deployments.set_defaults(handler=_cmd_deployments)
    sub.add_parser("recover", help="close the flow runs and MLflow runs of processes that were killed (every "
                                   "stage does this on start)").set_defaults(handler=_cmd_recover)
    start = sub.add_parser("up", help="start Prefect server, stage runner (prefect.yaml) and MLflow UI on loopback")
    start.add_argument("--prefect-port", type=int, default=4200)
    start.add_argument("--mlflow-port", type=int, default=5000)
    start.add_argument("--no-mlflow", action="store_true", help="do not start the MLflow UI")
    start.set_defaults(handler=_cmd_up)
    sub.add_parser("down", help="stop what `modelops up` started").set_defaults(handler=_cmd_down)
    slack = sub.add_parser("slack-block", help="save the Slack alert channel block from SLACK_BOT_TOKEN or "
                                               "SLACK_WEBHOOK_URL (secrets stay out of configs)")
    slack.add_argument("--name", default="modelops-alerts")
    slack.add_argument("--channel", help="channel for a bot token, e.g. #modelops-alerts")
    slack.set_defaults(handler=_cmd_slack)
    labels = sub.add_parser("labels", help="record ground truth (id column + target) for logged predictions")
    labels.add_argument("model")
    labels.add_argument("path")
    labels.set_defaults(handler=_cmd_labels)

    def stage(name: str, help_: str, *options: tuple[str, dict[str, Any]]) -> None:
        command = sub.add_parser(name, help=help_)
        command.add_argument("model")
        for flag, kwargs in options:
            command.add_argument(flag, **kwargs)
        command.set_defaults(handler=_run_stage)

    stage("register", "train (or take --model-uri) and register a version",
          ("--train-start", {}), ("--train-end", {}), ("--model-uri", {}))
    stage("validate", "run the validation gates", ("--version", {"required": True}))
    stage("approve", "apply the approval policy", ("--version", {"required": True}))
    stage("deploy", "serve an approved version", ("--version", {"required": True}),
          ("--role", {"choices": ["champion", "challenger"]}))
    stage("score", "score a Parquet/CSV batch", ("--input-path", {"required": True}), ("--version", {}),
          ("--output-path", {}))
    stage("monitor", "judge the newest window", ("--window-end", {}), ("--window-days", {"type": int}))
    stage("retrain", "retrain, compare and promote", ("--as-of", {}))
    sweep = sub.add_parser("sweep", help="drift verdicts of every model in one run")
    sweep.add_argument("--chunk-size", type=int)
    sweep.set_defaults(handler=_run_stage)
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


def _no_traceback_for_expected_errors() -> None:
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_ExpectedError())


def _with_prefect(args: argparse.Namespace, settings: Settings) -> int:
    """Run a command against Prefect's API, one whose lifetime this process owns when none is configured; first
    close what killed processes left open, and name this process as the owner of the flow runs it starts."""
    import prefect

    from modelops.recovery import Owner, recover_orphaned_runs
    from modelops.services.temporary_server import use_owned_api

    use_owned_api(settings)
    _no_traceback_for_expected_errors()
    for line in recover_orphaned_runs():
        print(f"recovered: {line}", file=sys.stderr)
    with prefect.tags(*Owner.current().flow_run_tags()):
        return int(args.handler(args) or 0)


def main(argv: list[str] | None = None) -> int:
    from modelops.settings import configure_environment

    args = build_parser().parse_args(argv)
    settings = configure_environment()  # before anything imports prefect
    try:
        if args.handler in _PREFECT_HANDLERS:
            return _with_prefect(args, settings)
        return int(args.handler(args) or 0)
    except ModelOpsError as exc:
        print(f"error: {exc.what}", file=sys.stderr)
        if exc.fix:
            print(f"fix:   {exc.fix}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
