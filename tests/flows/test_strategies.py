"""Deployment strategies of the spec: champion/challenger traffic split and shadow scoring."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_api")]
ROOT = Path(__file__).resolve().parents[2]


def set_strategy(config_dir: Path, strategy: str, share: float) -> None:
    path = config_dir / "models" / "flight-delay.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["deploy"].update(strategy=strategy, challenger_traffic_share=share)
    path.write_text(yaml.safe_dump(raw))


def test_challenger_split_and_shadow(state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelops.demo import onboard, write_traffic
    from flows.approve import approve
    from flows.deploy import deploy
    from flows.register import register
    from flows.score import score
    from flows.validate import validate
    from modelops.platform import get_platform
    from modelops.spec import load_spec
    from tasks.prediction_log import logged_predictions

    config_dir = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", config_dir)
    monkeypatch.setenv("MODELOPS_CONFIG_DIR", str(config_dir))
    set_strategy(config_dir, "champion_challenger", 0.3)
    platform = get_platform()
    assert onboard("flight-delay") == "1"

    candidate = register(model="flight-delay", train_start=date(2013, 1, 15), train_end=date(2013, 3, 1),
                         chain=False).version
    platform.catalog.set_alias("flight-delay", "challenger", candidate)  # as a retrain nominates it
    batch, _ = write_traffic(platform, load_spec("flight-delay"), date(2013, 3, 15), date(2013, 3, 18))
    unapproved = score(model="flight-delay", input_path=str(batch))
    assert unapproved.challenger is None and unapproved.challenger_rows == 0

    assert validate(model="flight-delay", version=candidate).passed
    assert approve(model="flight-delay", version=candidate).status == "approved"
    deploy(model="flight-delay", version=candidate, role="challenger")
    split = score(model="flight-delay", input_path=str(batch))
    outputs = pd.read_parquet(split.output_path)
    share = (outputs["version"] == candidate).mean()
    assert split.challenger == candidate and 0.25 < share < 0.35
    assert split.challenger_rows == (outputs["version"] == candidate).sum()
    champion_log = logged_predictions(platform, "flight-delay", "1", None, None)
    challenger_log = logged_predictions(platform, "flight-delay", candidate, None, None)
    assert set(challenger_log["role"]) == {"challenger"} and len(challenger_log) == split.challenger_rows
    # every request was answered by exactly one version, and logged under it
    served = set(outputs.loc[outputs["version"] == candidate, "prediction_id"])
    assert served == set(challenger_log["prediction_id"])
    assert served.isdisjoint(set(champion_log.loc[champion_log["batch_id"] == split.batch_id, "prediction_id"]))

    set_strategy(config_dir, "shadow", 0.3)
    shadow_batch, _ = write_traffic(platform, load_spec("flight-delay"), date(2013, 3, 18), date(2013, 3, 20))
    shadowed = score(model="flight-delay", input_path=str(shadow_batch))
    assert set(pd.read_parquet(shadowed.output_path)["version"]) == {"1"}
    shadow_log = logged_predictions(platform, "flight-delay", candidate, None, None)
    assert (shadow_log["role"] == "shadow").sum() == shadowed.rows == shadowed.challenger_rows
