"""Build the bot from the environment: the same way on Lambda and on the embedded default."""

from __future__ import annotations

from functools import cache

from slack_bolt import App

from bot.app import build_app
from bot.config import SlackSecrets, bot_settings
from bot.directory import SlackDirectory
from bot.services import BotServices
from bot.slack_api import SlackClock, SlackUsage, web_client

# What the Slack app asked of Slack in this process (the embedded default reports it).
app_usage = SlackUsage()


def slack_app(*, process_before_response: bool = True) -> App:
    config = bot_settings()
    secrets = SlackSecrets(config)
    client = web_client(
        secrets.bot_token(), config.api_url, clock=SlackClock(config.time_scale), usage=app_usage
    )
    directory = SlackDirectory(client)

    @cache
    def services() -> BotServices:
        return BotServices.from_environment(directory)

    return build_app(
        client=client,
        signing_secret=secrets.signing_secret(),
        services=services,
        process_before_response=process_before_response,
    )
