"""`python -m modelops.services.runner`: serve every stage deployment until stopped, rendered at start from the
configured config directory (MODELOPS_CONFIG_DIR): the committed prefect.yaml is the same render of configs/."""

from __future__ import annotations

import os
import sys

# A flow run's return value is kept (as JSON in Settings.runner_results, which `up` names), so a caller of
# `run_deployment` - `make demo` through the stack - reads what the stage returned (modelops.demo_runs); task
# results are not (a task may return a whole data frame). JSON, not pickle: the runner (or a worker) loads each flow
# from its file, so a pickled result names a module (`register`) that only that process has.
RESULT_ENV = {"PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true", "PREFECT_RESULTS_DEFAULT_SERIALIZER": "json",
              "PREFECT_TASKS_DEFAULT_PERSIST_RESULT": "false"}


def main() -> int:
    from modelops.settings import configure_environment

    configure_environment()
    if not os.environ.get("PREFECT_API_URL"):
        print("PREFECT_API_URL is not set: start the stack with `modelops up`", file=sys.stderr)
        return 2
    for key, value in RESULT_ENV.items():
        os.environ.setdefault(key, value)
    from prefect import serve

    from modelops.services.concurrency import apply_model_limits
    from modelops.services.deployments import runner_deployments

    apply_model_limits()
    # Stopping the stack must not pause the deployments: the next `modelops up` serves them again as they were.
    serve(*runner_deployments(), pause_on_shutdown=False, print_starting_message=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
