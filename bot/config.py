"""The bot's configuration: Slack credentials, where Slack is, and how fast its clock runs.

Locally the bot token and signing secret are ``SLACK_BOT_TOKEN`` and ``SLACK_SIGNING_SECRET``;
on AWS ``SLACK_BOT_TOKEN_SECRET_ARN`` and ``SLACK_SIGNING_SECRET_ARN`` name Secrets Manager
secrets (plain strings), read with Powertools Parameters and cached for five minutes, so a
rotated secret needs no deployment. ``SLACK_API_URL`` points the Web API client elsewhere
(the embedded default's stand-in); ``SLACK_DEFAULT_CHANNEL`` is where migrations without a
wave channel (hand-written requests) get their thread. ``SLACK_TIME_SCALE`` is for the
embedded default only: its Slack stand-in runs its clock that many times faster than real
time, so the bot paces and honours ``Retry-After`` on that clock (1 on AWS).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from aws_lambda_powertools.utilities.parameters.base import BaseProvider
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestration.adapters.secrets import SECRET_CACHE_SECONDS, secrets_provider

SLACK_API_URL = "https://slack.com/api/"


class SlackCredentialsMissingError(RuntimeError):
    """Neither the variable nor the secret ARN is set: the bot cannot talk to Slack."""


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True)

    bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    bot_token_secret_arn: str | None = Field(
        default=None, validation_alias="SLACK_BOT_TOKEN_SECRET_ARN"
    )
    signing_secret: SecretStr | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    signing_secret_arn: str | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET_ARN"
    )
    api_url: str = Field(default=SLACK_API_URL, validation_alias="SLACK_API_URL")
    default_channel: str = Field(default="", validation_alias="SLACK_DEFAULT_CHANNEL")
    time_scale: float = Field(default=1.0, gt=0, validation_alias="SLACK_TIME_SCALE")
    status_dead_letter_queue_url: str = Field(default="", validation_alias="SLACK_STATUS_DLQ_URL")
    priority_dead_letter_queue_url: str = Field(
        default="", validation_alias="SLACK_PRIORITY_DLQ_URL"
    )
    # The notifier's own status queue: owed-roots reminders (bot/owed_roots.py).
    status_queue_url: str = Field(default="", validation_alias="SLACK_STATUS_QUEUE_URL")
    # The priority queue: the notifier deletes what it handled from both (bot/acknowledgements.py).
    priority_queue_url: str = Field(default="", validation_alias="SLACK_PRIORITY_QUEUE_URL")
    # The status and priority queues' maxReceiveCount: a record failing on its last receive
    # is dead-lettered by the notifier, with why (0: unknown, SQS's redrive moves it).
    max_receives: int = Field(default=0, ge=0, validation_alias="SLACK_MAX_RECEIVES")


class SlackSecrets:
    """The bot token and signing secret, from Secrets Manager on AWS or the environment."""

    def __init__(
        self,
        config: BotSettings,
        provider_factory: Callable[[], BaseProvider] | None = None,
    ) -> None:
        self._config = config
        self._provider_factory = provider_factory or secrets_provider
        self._provider: BaseProvider | None = None

    def bot_token(self) -> str:
        return self._read(
            self._config.bot_token_secret_arn,
            self._config.bot_token,
            ("SLACK_BOT_TOKEN_SECRET_ARN", "SLACK_BOT_TOKEN"),
        )

    def signing_secret(self) -> str:
        return self._read(
            self._config.signing_secret_arn,
            self._config.signing_secret,
            ("SLACK_SIGNING_SECRET_ARN", "SLACK_SIGNING_SECRET"),
        )

    def _read(self, arn: str | None, value: SecretStr | None, names: tuple[str, str]) -> str:
        if arn:
            if self._provider is None:
                self._provider = self._provider_factory()
            secret = self._provider.get(arn, max_age=SECRET_CACHE_SECONDS)
            text = secret.decode("utf-8") if isinstance(secret, bytes) else secret
            if isinstance(text, str) and text:
                return text
            raise SlackCredentialsMissingError(f"the secret {names[0]} names is empty")
        if value is not None and value.get_secret_value():
            return value.get_secret_value()
        raise SlackCredentialsMissingError(f"set {names[0]} (AWS) or {names[1]} (local)")


@cache
def bot_settings() -> BotSettings:
    return BotSettings()
