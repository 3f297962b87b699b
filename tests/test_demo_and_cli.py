"""The main job, twice in the same state directory, and the CLI that reads what it left behind."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]


def test_demo_run_again_redoes_nothing_and_shows_where_it_ended(state_home: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main
    from modelops.platform import get_platform

    assert main(["demo"]) == 0
    # flight-delay's own approval flow checked every origin airport, and the demo says so from its audit record.
    assert "segment check passed: roc_auc by origin EWR" in capsys.readouterr().out
    platform = get_platform()
    # The LightGBM model was served by the gateway and a stream consumer, processes that logged what they answered.
    sources = Counter()
    for batch in platform.store.prediction_batches("flight-delay-lgbm"):
        sources[batch.source.split("-", 1)[0]] += batch.rows
    assert sources["online:gateway"] == 200 and sources["online:stream"] > 900
    assert not [t for t in platform.store.api_tokens() if t.client == "demo-app"]  # its token was revoked
    trail_before = platform.store.audit_trail()
    # Run 2 redoes nothing: the story starts from nothing, and its winter model would now only be a newcomer.
    assert main(["demo"]) == 0
    assert "flight-delay already serves v2: the demo ran in this state directory before" in capsys.readouterr().out
    assert platform.store.audit_trail() == trail_before
    versions = {v.version: v for v in platform.catalog.versions("flight-delay")}
    # Run 1 ended with the summer model v2 champion and the winter model v1 retired.
    assert platform.catalog.aliases("flight-delay") == {"champion": "2"}
    assert sorted(versions) == ["1", "2"]
    governed = {g.version: g for g in platform.store.governed_versions("flight-delay")}
    assert governed["1"].retired and not governed["2"].retired
    assert versions["1"].tags["lifecycle_state"] == "retired"  # the MLflow mirror agrees
    # bike-demand retrains by its own flow (newest weeks): v2 champion, v1 retired.
    assert platform.catalog.aliases("bike-demand") == {"champion": "2"}
    bike_trail = platform.store.audit_trail("bike-demand")
    assert any(e.action == "nominate-challenger" and e.evidence["procedure"].startswith("bike-demand: the newest")
               for e in bike_trail)
    trail = platform.store.audit_trail("flight-delay")
    assert Counter(e.version for e in trail if e.stage == "register") == {"1": 1, "2": 1}

    capsys.readouterr()
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert "== flight-delay" in status and "== bike-demand" in status
    assert any(line.startswith("v2") and "@champion" in line and "serving" in line for line in status.splitlines())
    assert "last monitoring:" in status

    assert main(["audit", "flight-delay"]) == 0
    audit = capsys.readouterr().out.splitlines()
    assert audit[0].startswith("when (UTC)")
    rows = [line for line in audit[2:] if not line.startswith(" ")]  # the evidence is indented under its row
    assert len(rows) == len(trail)
    assert " register " in rows[0] and " retire " in rows[-1]
    assert rows == sorted(rows, key=lambda row: row[:19])


def test_cli_reports_bad_input_without_a_traceback(state_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.cli import main

    assert main(["validate", "flight-delay", "--version", "7"]) == 2
    err = capsys.readouterr().err
    assert "v7 has no governance record" in err and "fix:" in err and "Traceback" not in err
    assert main(["score", "no-such-model", "--input-path", "x.csv"]) == 2
    assert "no such life cycle spec" in capsys.readouterr().err


def test_help_does_not_import_the_heavy_libraries() -> None:
    code = ("import sys\nfrom modelops.cli import build_parser\nbuild_parser().format_help()\n"
            # rich only draws on a terminal; the store (SQLAlchemy) only answers commands that read it
            "heavy = {'prefect', 'mlflow', 'evidently', 'great_expectations', 'rich', 'sqlalchemy'} & set(sys.modules)\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
