"""CLI commands of lineage and reproducibility: `lineage`, `explain-decision` and `reproduce`. They read the
governance store, MLflow and the prediction log; none runs a flow, so none needs Prefect's API. Imports stay
inside the handlers: `modelops --help` must not load MLflow or pandas."""

from __future__ import annotations

import argparse
from typing import Any, Callable

Command = Callable[..., argparse.ArgumentParser]


def _print(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    from modelops.cli_output import as_json

    print(as_json(data) if args.json else text(data))


def _cmd_lineage(args: argparse.Namespace) -> int:
    from modelops.cli_output import as_json
    from modelops.cli_render import show
    from modelops.lineage import LINEAGE_SEPARATOR, lineage_blocks, lineage_data, parse_target
    from modelops.platform import get_platform

    model, version = parse_target(args.target)
    data = lineage_data(get_platform(), model, version)
    if args.json:
        print(as_json(data))
    else:
        show(lineage_blocks(data), LINEAGE_SEPARATOR)
    return 0


def _cmd_explain_decision(args: argparse.Namespace) -> int:
    from modelops.explain import explain_decision, explanation_text
    from modelops.platform import get_platform

    _print(args, explain_decision(get_platform(), args.prediction_id, args.model), explanation_text)
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    """Exit 0 when the retrained model matches within the tolerance, 1 when it does not."""
    from modelops.lineage import parse_target
    from modelops.platform import get_platform
    from modelops.reproduce import DEFAULT_TOLERANCE, reproduce_version, reproduction_text

    model, version = parse_target(args.target, version_required=True)
    assert version is not None  # parse_target requires it
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    result = reproduce_version(get_platform(), model, version, tolerance)
    _print(args, result.as_data(), reproduction_text)
    return 0 if result.matched else 1


def add_commands(command: Command, machine: argparse.ArgumentParser) -> None:
    """Register the commands with the CLI's parser (`command` is build_parser's helper)."""
    lineage = command("lineage", "where a model's versions came from and where they went: data (loader, window, "
                                 "content hash) -> training run -> version -> validation and approvals -> "
                                 "deployments -> prediction batches", [machine], _cmd_lineage)
    lineage.add_argument("target", metavar="MODEL[/VERSION]", help="a model, or one version of it: flight-delay/2")
    explain = command("explain-decision", "which model made a decision: the version, role and deployment that "
                                          "answered a prediction id, the approval and evidence in force, the input "
                                          "row", [machine], _cmd_explain_decision)
    explain.add_argument("prediction_id", help="a batch row's id (the spec's id column) or an id the gateway "
                                               "answered in prediction_ids")
    explain.add_argument("--model", help="look in this model's prediction log only (default: every model's)")
    reproduce = command("reproduce", "retrain a version from its recorded data window, code and parameters and "
                                     "check that its predictions match the registered model's; registers nothing, "
                                     "serves nothing; exit 1 when they do not match", [machine], _cmd_reproduce)
    reproduce.add_argument("target", metavar="MODEL/VERSION", help="e.g. flight-delay/2")
    reproduce.add_argument("--tolerance", type=float, help="largest absolute score difference that matches "
                                                           "(default 1e-6: a deterministic trainer reproduces exactly)")
