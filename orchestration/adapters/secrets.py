"""Secrets read from Secrets Manager on AWS, or from the environment on the embedded default.

The callback signing key and the GitHub token (progress on GitHub) are here; the bot's Slack
credentials (``bot/config.py``) are read with the same provider and cache time.

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


class GitHubSettings(BaseSettings):
    """Where a wave's progress is shown on GitHub (``report_github_progress``).

    ``GITHUB_REPOSITORY`` (``owner/name``, the repository whose merges publish the waves) and
    a token: ``GITHUB_TOKEN_SECRET_ARN`` names a Secrets Manager secret (a plain string: a
    fine-grained token, or a GitHub App installation token kept fresh there) on AWS;
    ``GITHUB_TOKEN`` on the embedded default. Without both, progress is not reported.
    """

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True)

    repository: str = Field(default="", validation_alias="GITHUB_REPOSITORY")
    token: SecretStr | None = Field(default=None, validation_alias="GITHUB_TOKEN")
    token_secret_arn: str | None = Field(default=None, validation_alias="GITHUB_TOKEN_SECRET_ARN")
    api_url: str = Field(default="https://api.github.com", validation_alias="GITHUB_API_URL")
    # Where a body that is no status event goes, with its reason (it can never succeed).
    dead_letter_queue_url: str = Field(default="", validation_alias="GITHUB_PROGRESS_DLQ_URL")

    @property
    def configured(self) -> bool:
        has_token = bool(self.token_secret_arn) or (
            self.token is not None and bool(self.token.get_secret_value())
        )
        return bool(self.repository) and has_token


class GitHubTokenMissingError(RuntimeError):
    """The secret named by GITHUB_TOKEN_SECRET_ARN is empty or not a string."""


class GitHubTokenSource:
    """The token: from Secrets Manager when an ARN is configured (cached like the signing key,
    so a rotated token is picked up without a deployment), else from the variable."""

    def __init__(
        self,
        config: GitHubSettings,
        provider_factory: Callable[[], BaseProvider] | None = None,
    ) -> None:
        self._config = config
        self._provider_factory = provider_factory or secrets_provider
        self._provider: BaseProvider | None = None

    def current(self) -> str:
        """Raises ``GetParameterError`` when Secrets Manager fails (an AWS error: retried)."""
        if self._config.token_secret_arn:
            if self._provider is None:
                self._provider = self._provider_factory()
            value = self._provider.get(self._config.token_secret_arn, max_age=SECRET_CACHE_SECONDS)
            token = value.decode("utf-8") if isinstance(value, bytes) else value
            if not isinstance(token, str) or not token.strip():
                raise GitHubTokenMissingError(
                    "the secret named by GITHUB_TOKEN_SECRET_ARN is not a non-empty string"
                )
            return token.strip()
        if self._config.token is not None and self._config.token.get_secret_value():
            return self._config.token.get_secret_value()
        raise GitHubTokenMissingError("set GITHUB_TOKEN_SECRET_ARN (AWS) or GITHUB_TOKEN (local)")
