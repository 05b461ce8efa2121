"""The bot's credentials: from the environment locally, from Secrets Manager on AWS."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from bot.config import BotSettings, SlackCredentialsMissingError, SlackSecrets


def test_on_aws_the_token_and_signing_secret_come_from_secrets_manager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        token = client.create_secret(Name="wavepilot-prod-slack-bot-token", SecretString="xoxb-1")
        signing = client.create_secret(Name="wavepilot-prod-slack-signing-secret")
        client.put_secret_value(SecretId=signing["ARN"], SecretString="s3cr3t")
        settings = BotSettings.model_validate(
            {
                "SLACK_BOT_TOKEN_SECRET_ARN": token["ARN"],
                "SLACK_SIGNING_SECRET_ARN": signing["ARN"],
                "SLACK_BOT_TOKEN": "ignored-when-an-arn-is-set",
            }
        )
        secrets = SlackSecrets(settings)

        assert secrets.bot_token() == "xoxb-1"
        assert secrets.signing_secret() == "s3cr3t"


def test_locally_they_come_from_the_environment_and_missing_ones_say_what_to_set() -> None:
    settings = BotSettings.model_validate({"SLACK_BOT_TOKEN": "xoxb-local"})
    secrets = SlackSecrets(settings)

    assert secrets.bot_token() == "xoxb-local"
    with pytest.raises(SlackCredentialsMissingError, match="SLACK_SIGNING_SECRET_ARN"):
        secrets.signing_secret()
