"""Alerts on monitoring breaches: one Block Kit message per model and check, repeated only after the spec's
cool-down, a recovery announced once, every delivery attempt recorded (a failure never passes silently)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from modelops.platform import Platform
from modelops.spec import LifecycleSpec
from tasks import as_task
from tasks.verdicts import BREACH, OK
from tasks.monitoring import CheckResult, MonitorReport

RETRYABLE = (ConnectionError, TimeoutError, OSError)


@dataclass
class AlertOutcome:
    sent: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def build_message(report: MonitorReport, check: CheckResult, kind: str, links: dict[str, str]) -> tuple[str,
                                                                                                      list[dict]]:
    title = (f"{report.model} v{report.version}: {check.check.replace('_', ' ')} "
             + ("BREACH" if kind == "alert" else "recovered"))
    text = f"{title} - {check.summary}"
    values = "\n".join(f"• {name}: {_fmt(value)}" + (f" (limit {_fmt(limit)})" if limit is not None else "")
                       for name, (value, limit) in check.values.items())
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": (":rotating_light: " if kind == "alert" else
                                                                   ":white_check_mark: ") + title}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Model*\n{report.model}"},
            {"type": "mrkdwn", "text": f"*Version*\nv{report.version}"},
            {"type": "mrkdwn", "text": f"*Check*\n{check.check}: {check.verdict}"},
            {"type": "mrkdwn", "text": f"*Window*\n{report.window_start:%Y-%m-%d} .. {report.window_end:%Y-%m-%d}"},
        ]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{check.summary}\n{values}"}},
    ]
    if links:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": " | ".join(f"<{url}|{name}>" for name, url in links.items())}]})
    return text, blocks


def deliver(channel: Any, text: str, blocks: list[dict], attempts: int = 3, backoff_seconds: float = 0.5) -> tuple[
        bool, int, str | None]:
    """(delivered, attempts made, last error). Network errors and Slack's rate limit are retried."""
    from slack_sdk.errors import SlackApiError

    error = None
    for attempt in range(1, attempts + 1):
        try:
            channel.post(text, blocks)
            return True, attempt, None
        except SlackApiError as exc:
            error = f"Slack refused the message: {exc.response.get('error', exc)}"
            status = exc.response.status_code
            if status != 429 and status < 500:
                return False, attempt, error  # a wrong token or channel does not heal by retrying
        except RETRYABLE as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            time.sleep(backoff_seconds * attempt)
    return False, attempts, error


def load_channel(block_name: str) -> tuple[Any, str | None]:
    from blocks.slack import SlackAlertChannel

    try:
        return SlackAlertChannel.load(block_name), None
    except Exception as exc:  # noqa: BLE001 - any failure to load is reported as an undelivered alert
        return None, (f"Slack block {block_name!r} cannot be loaded ({exc}); create it: "
                      f"SlackAlertChannel(bot_token=..., channel=...).save({block_name!r})")


def process_alerts(platform: Platform, spec: LifecycleSpec, report: MonitorReport, links: dict[str, str]) -> \
        AlertOutcome:
    outcome = AlertOutcome()
    if "alert" not in spec.monitoring.on_breach or spec.monitoring.alerts.slack_block is None:
        return outcome
    store = platform.store
    channel, channel_error = None, None
    for name, check in report.checks.items():
        if check.verdict == BREACH:
            if not store.claim_alert(spec.name, name, spec.monitoring.alerts.cooldown_hours):
                outcome.suppressed.append(name)
                continue
            kind = "alert"
        elif check.verdict == OK and store.claim_recovery(spec.name, name):
            kind = "recovery"
        else:
            continue
        delivered, attempts, error = False, 0, "not attempted"
        try:
            if channel is None and channel_error is None:
                channel, channel_error = load_channel(spec.monitoring.alerts.slack_block)
            text, blocks = build_message(report, check, kind, links)
            if channel is None:
                attempts, error = 1, channel_error
            else:
                delivered, attempts, error = deliver(channel, text, blocks)
            store.record_alert_delivery(model=spec.name, version=report.version, check=name, kind=kind,
                                        channel=channel.destination if channel else
                                        spec.monitoring.alerts.slack_block, attempts=attempts,
                                        delivered=delivered, error=error, message={"text": text})
        finally:
            if not delivered:
                # Undo the claim, whatever stopped the delivery, so that the next run tries again.
                if kind == "alert":
                    store.release_alert(spec.name, name)
                else:
                    store.unclaim_recovery(spec.name, name)
        if delivered:
            (outcome.sent if kind == "alert" else outcome.recovered).append(name)
        else:
            outcome.failed.append(f"{name}: {error}")
    return outcome


process_alerts_task = as_task(process_alerts)


def alert_finding(platform: Platform, spec: LifecycleSpec, version: str | None, check: str, title: str,
                  detail: str) -> bool:
    """An integrity finding (tampered files, aliases that disagree with the store) to the model's alert channel,
    with the same cool-down and delivery record as monitoring alerts. Returns whether it was delivered."""
    alerts = spec.monitoring.alerts
    if alerts.slack_block is None or not platform.store.claim_alert(spec.name, check, alerts.cooldown_hours):
        return False
    channel, error = load_channel(alerts.slack_block)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f":warning: {title}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": detail[:2900]}},
    ]
    delivered, attempts = False, 1
    if channel is not None:
        delivered, attempts, error = deliver(channel, title, blocks)
    platform.store.record_alert_delivery(model=spec.name, version=version, check=check, kind="alert",
                                         channel=channel.destination if channel else alerts.slack_block,
                                         attempts=attempts, delivered=delivered, error=error,
                                         message={"text": f"{title}: {detail}"})
    if not delivered:
        platform.store.release_alert(spec.name, check)
    return delivered
