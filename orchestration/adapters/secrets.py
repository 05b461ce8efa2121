"""Secrets read from Secrets Manager on AWS, or from the environment on the embedded default.

The callback signing key is here; the bot's Slack credentials (``bot/config.py``) are read
with the same provider and cache time.

Secrets Manager is read with Powertools Parameters, at most every ``SECRET_CACHE_SECONDS``
per container, so a rotated secret is picked up without a deployment.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.base import BaseProvider
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestration.adapters import aws

# A rotated secret is picked up within this time (callback receivers accept both during
# rotation, see docs/CALLBACKS.md).
SECRET_CACHE_SECONDS = 300


class CallbackSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True)

    signing_secret: SecretStr | None = Field(
        default=None, validation_alias="CALLBACK_SIGNING_SECRET"
    )
    signing_secret_arn: str | None = Field(
        default=None, validation_alias="CALLBACK_SIGNING_SECRET_ARN"
    )


class SigningSecretMissingError(RuntimeError):
    """Neither variable is set (or the secret is empty): sending unsigned is not an option."""


class SigningSecretSource:
    """The HMAC key: from Secrets Manager when an ARN is configured, else from the variable."""

    def __init__(
        self,
        config: CallbackSettings,
        provider_factory: Callable[[], BaseProvider] | None = None,
    ) -> None:
        self._config = config
        self._provider_factory = provider_factory or secrets_provider
        self._provider: BaseProvider | None = None

    def current(self) -> str:
        """Raises ``GetParameterError`` when Secrets Manager fails (an AWS error: retried)."""
        if self._config.signing_secret_arn:
            if self._provider is None:
                self._provider = self._provider_factory()
            value = self._provider.get(
                self._config.signing_secret_arn, max_age=SECRET_CACHE_SECONDS
            )
            secret = value.decode("utf-8") if isinstance(value, bytes) else value
            if not isinstance(secret, str) or not secret:
                raise SigningSecretMissingError(
                    "the secret named by CALLBACK_SIGNING_SECRET_ARN is not a non-empty string"
                )
            return secret
        if self._config.signing_secret is not None:
            secret = self._config.signing_secret.get_secret_value()
            if secret:
                return secret
        raise SigningSecretMissingError(
            "set CALLBACK_SIGNING_SECRET_ARN (AWS) or CALLBACK_SIGNING_SECRET (local)"
        )


def secrets_provider() -> BaseProvider:
    return SecretsProvider(boto_config=aws.RETRIES)
