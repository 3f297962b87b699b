"""Where alerts go: a Slack channel, reached with a bot token or an incoming webhook kept as secrets."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator


class SlackAlertChannel(Block):
    """A Slack channel that receives the platform's monitoring alerts and recoveries.

    Give either a bot token (with `chat:write`) and a channel, or an incoming webhook URL.
    """

    _block_type_name = "ModelOps Slack Alert Channel"
    _block_type_slug = "modelops-slack-alert-channel"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/c1965ecbf8704ee1ea20d77786de9a41ce1087d1-500x500.png"  # noqa: E501
    _documentation_url = "https://docs.slack.dev/tools/python-slack-sdk/web"
    _code_example = """
    ```python
    from blocks.slack import SlackAlertChannel

    channel = SlackAlertChannel.load("BLOCK_NAME")
    channel.post("flight-delay v3: drift breach", blocks=[])
    ```
    """

    bot_token: SecretStr | None = Field(None, description="Slack bot token with the chat:write scope.")
    channel: str | None = Field(None, description="Channel the bot posts in, such as #modelops-alerts.")
    webhook_url: SecretStr | None = Field(None, description="Incoming webhook URL, used instead of a bot token.")
    api_base_url: str = Field("https://slack.com/api/", description="Slack Web API base URL (a proxy or a test "
                                                                     "receiver can stand in).")
    timeout_seconds: int = Field(10, ge=1, le=120, description="Timeout of one delivery attempt in seconds.")

    @model_validator(mode="after")
    def _one_way_in(self) -> "SlackAlertChannel":
        if (self.bot_token is None) == (self.webhook_url is None):
            raise ValueError("give either bot_token (with channel) or webhook_url, not both and not neither")
        if self.bot_token is not None and not self.channel:
            raise ValueError("a bot_token needs a channel to post in")
        return self

    @property
    def destination(self) -> str:
        return self.channel or "incoming webhook"

    def post(self, text: str, blocks: list[dict[str, Any]]) -> None:
        """Deliver one message; raises SlackApiError or an OSError subclass when Slack does not accept it."""
        if self.bot_token is not None:
            from slack_sdk import WebClient

            client = WebClient(token=self.bot_token.get_secret_value(), base_url=self.api_base_url,
                               timeout=self.timeout_seconds)
            client.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
            return
        from slack_sdk.webhook import WebhookClient

        response = WebhookClient(self.webhook_url.get_secret_value(), timeout=self.timeout_seconds).send(  # type: ignore[union-attr]
            text=text, blocks=blocks)
        if response.status_code != 200:
            raise ConnectionError(f"webhook answered {response.status_code}: {response.body}")
