"""Alerts through the real slack_sdk clients against a local receiver."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from blocks.slack import SlackAlertChannel
from modelops.spec import AlertSpec, LifecycleSpec, load_spec
from tasks.alerting import process_alerts
from tasks.monitoring import CheckResult, MonitorReport
from tests.slack_receiver import SlackReceiver, start_receiver

TOKEN = "xoxb-test-token-never-logged"


def token_stored(home: Path) -> bool:
    """Whether the token sits anywhere in the governance store (its WAL included)."""
    files = list(home.glob("governance.db*"))
    assert files
    return any(TOKEN.encode() in f.read_bytes() for f in files)


class TestSlackAlertChannelStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[SlackAlertChannel]:
        return SlackAlertChannel

    def test_has_a_valid_image(self, block: type[SlackAlertChannel]) -> None:
        # Prefect's version downloads the logo; this machine has no internet, so check the address instead.
        assert str(block._logo_url).startswith("https://") and str(block._logo_url).endswith(".png")


@pytest.fixture
def receiver() -> Iterator[SlackReceiver]:
    found, server = start_receiver()
    yield found
    server.shutdown()


def test_a_channel_needs_exactly_one_way_in() -> None:
    with pytest.raises(ValueError, match="either bot_token"):
        SlackAlertChannel()
    with pytest.raises(ValueError, match="needs a channel"):
        SlackAlertChannel(bot_token=TOKEN)
    with pytest.raises(ValueError, match="not both"):
        SlackAlertChannel(bot_token=TOKEN, channel="#x", webhook_url="http://127.0.0.1/webhook")


def report(verdict: str) -> MonitorReport:
    check = CheckResult("drift", verdict, "2 of 11 columns drifted (worst: temp 4.91)",
                        {"drifted_share": (0.18, 0.15)})
    return MonitorReport("flight-delay", "3", datetime(2013, 7, 1, tzinfo=timezone.utc),
                         datetime(2013, 8, 1, tzinfo=timezone.utc), 28280, {"drift": check})


def spec_alerting_to(receiver: SlackReceiver, block: str, channel: str) -> LifecycleSpec:
    """flight-delay's spec with its alerts going to a block (saved on the test API) that posts to the receiver."""
    SlackAlertChannel(bot_token=TOKEN, channel=channel, api_base_url=receiver.api_base_url).save(block,
                                                                                                  overwrite=True)
    base = load_spec("flight-delay")
    return base.model_copy(update={"monitoring": base.monitoring.model_copy(
        update={"alerts": AlertSpec(slack_block=block, cooldown_hours=6)})})


@pytest.mark.usefixtures("prefect_api")
def test_breach_alerts_once_per_cool_down_and_recovery_is_announced_once(
        state_home: Path, receiver: SlackReceiver) -> None:
    from modelops.platform import get_platform

    spec = spec_alerting_to(receiver, "alerts-once", "#modelops-alerts")
    platform = get_platform()
    links = {"Prefect run": "http://127.0.0.1:4200/runs/flow-run/abc"}

    first = process_alerts(platform, spec, report("breach"), links)
    assert first.sent == ["drift"] and first.failed == []
    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert message["_path"] == "/api/chat.postMessage" and message["channel"] == "#modelops-alerts"
    assert receiver.headers[0]["Authorization"] == f"Bearer {TOKEN}"
    blocks = str(message["blocks"])
    for expected in ("flight-delay", "v3", "drift: breach", "drifted_share: 0.18 (limit 0.15)", "temp 4.91",
                     "<http://127.0.0.1:4200/runs/flow-run/abc|Prefect run>"):
        assert expected in blocks

    again = process_alerts(platform, spec, report("breach"), links)
    assert again.suppressed == ["drift"] and len(receiver.messages) == 1

    recovered = process_alerts(platform, spec, report("ok"), links)
    assert recovered.recovered == ["drift"] and "recovered" in receiver.messages[-1]["text"]
    assert process_alerts(platform, spec, report("ok"), links).recovered == []
    assert len(receiver.messages) == 2

    deliveries = platform.store.alert_deliveries("flight-delay")
    assert [(d.kind, d.delivered) for d in deliveries] == [("alert", True), ("recovery", True)]
    # the token reached Slack's API (above) and nowhere in the governance store
    assert not token_stored(state_home)


@pytest.mark.usefixtures("prefect_api")
def test_delivery_failures_are_retried_recorded_and_never_silent(state_home: Path, receiver: SlackReceiver) -> None:
    from modelops.platform import get_platform

    spec = spec_alerting_to(receiver, "alerts-flaky", "#ops")
    platform = get_platform()

    receiver.script = [("error", "invalid_auth")]  # a wrong token does not heal by retrying
    refused = process_alerts(platform, spec, report("breach"), {})
    assert refused.sent == [] and "invalid_auth" in refused.failed[0]
    assert receiver.requests == 1

    receiver.script = [("status", 503), ("status", 503)]  # Slack having a bad minute: retried, then delivered
    retried = process_alerts(platform, spec, report("breach"), {})
    assert retried.sent == ["drift"] and len(receiver.messages) == 1

    deliveries = platform.store.alert_deliveries("flight-delay")
    assert [(d.delivered, d.attempts) for d in deliveries][-2:] == [(False, 1), (True, 3)]
    assert "invalid_auth" in deliveries[-2].error
    assert not token_stored(state_home)


def test_webhook_delivery_uses_the_real_webhook_client(receiver: SlackReceiver) -> None:
    SlackAlertChannel(webhook_url=f"{receiver.url}/webhook/T000/B000").post("hello", blocks=[])
    assert receiver.messages[0]["_path"] == "/webhook/T000/B000" and receiver.messages[0]["text"] == "hello"
