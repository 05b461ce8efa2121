"""The bot's composition root: everything its two Lambda functions use, built here only.

``slack_notifier`` asks for ``notifier()`` and ``status_dead_letters()``; ``slack_app`` for
``request_handler()``; the embedded default serves ``slack_app()`` on loopback, built exactly
as on Lambda. Built once per process, on first use (never at import: secrets are read on the
first request, and tests and the embedded default set the environment first).

The pipeline's services (approvals, rollbacks, the migration store, the clock) come from the
pipeline's composition root through its public interface (``orchestration/wiring.py``), so
the clock the bot reads is the one the embedded default may swap (``use_clock``).
``reset()`` forgets what both built: it is the one reset for the whole process.
"""

from __future__ import annotations

import threading
from functools import cache

from slack_bolt import App
from slack_bolt.adapter.aws_lambda import SlackRequestHandler
from slack_sdk import WebClient

from bot.acknowledgements import HandledMessages
from bot.app import build_app
from bot.config import BotSettings, SlackSecrets, bot_settings
from bot.directory import SlackDirectory
from bot.group_approvals import GroupApprovalMessages, GroupStore
from bot.notifier import StatusNotifier
from bot.owed_roots import OwedRootsQueue
from bot.services import BotServices
from bot.slack_api import PacedSlack, PacingClock, SlackUsage, web_client
from bot.summary_notifier import WaveSummaryNotifier
from bot.thread_store import ThreadStore, WaveSummaryStore
from orchestration import wiring as pipeline
from orchestration.adapters import aws
from orchestration.adapters.dead_letters import DeadLetterQueue
from orchestration.adapters.wave_control import WaveControlStore
from orchestration.adapters.wave_predictions import WavePredictionStore
from orchestration.clock import Clock
from orchestration.events import EventDetail
from orchestration.naming import SLACK_PRIORITY_QUEUE_SUFFIX
from orchestration.settings import settings

__all__ = [
    "clock",
    "max_receives",
    "notifier",
    "request_handler",
    "reset",
    "services",
    "slack_app",
    "status_dead_letters",
]


def _config() -> BotSettings:
    return bot_settings()


def clock() -> Clock:
    """The pipeline's clock (``orchestration.wiring.use_clock`` swaps both)."""
    return pipeline.clock()


@cache
def _secrets() -> SlackSecrets:
    return SlackSecrets(_config())


@cache
def _slack_clock() -> PacingClock:
    time = clock()  # the bot paces and waits out Retry-After on the pipeline's clock
    return PacingClock(
        _config().time_scale,
        monotonic=time.monotonic,
        sleep=time.sleep,
        epoch=lambda: time.now().timestamp(),
    )


# --- slack_notifier ----------------------------------------------------------------------

_building_notifier = threading.Lock()


def notifier() -> StatusNotifier:
    """Once per container even when a batch's first records arrive on several threads (one
    pacer must see every call)."""
    with _building_notifier:
        return _notifier()


@cache
def _notifier() -> StatusNotifier:
    config = _config()
    clock = _slack_clock()
    usage = SlackUsage()  # what the notifier asked of Slack in this container
    client = web_client(
        _secrets().bot_token(), config.api_url, clock=clock, usage=usage, rate_limit_retries=0
    )
    table = aws.state_table(settings().table_name, settings().aws_region)
    threads, slack = ThreadStore(table), PacedSlack(client, clock, usage)

    def channel_for(event: EventDetail) -> str:
        routed = event.routing.slack_channel if event.routing is not None else ""
        return routed or config.default_channel

    return StatusNotifier(
        threads,
        pipeline.store(),
        slack,
        config.default_channel,
        summaries=WaveSummaryNotifier(
            WaveSummaryStore(table),
            threads,
            slack,
            WavePredictionStore(table),
            WaveControlStore(table),
        ),
        groups=GroupApprovalMessages(GroupStore(table), pipeline.store(), slack, channel_for),
    )


@cache
def status_dead_letters(source_queue_arn: str = "") -> DeadLetterQueue | None:
    """The DLQ of the queue a body came from (the priority queue's, else the status queue's)
    for bodies that are not status events (None: not configured, such a body is retried until
    the queue's redrive policy moves it)."""
    config = _config()
    url = (
        config.priority_dead_letter_queue_url
        if source_queue_arn.endswith(SLACK_PRIORITY_QUEUE_SUFFIX)
        else config.status_dead_letter_queue_url
    )
    return DeadLetterQueue(aws.sqs(), url) if url else None


def max_receives() -> int:
    """The status and priority queues' ``maxReceiveCount`` (0: not configured)."""
    return _config().max_receives


@cache
def handled_messages() -> HandledMessages:
    """Deletes what the notifier handled from the priority queue (a FIFO group waits for
    every message in flight; the status queue is a standard queue, whose event source mapping
    deletes a batch's successes: nothing waits behind one not deleted yet)."""
    return HandledMessages(aws.sqs(), {SLACK_PRIORITY_QUEUE_SUFFIX: _config().priority_queue_url})


@cache
def owed_roots_queue() -> OwedRootsQueue | None:
    """Where the notifier reminds itself of owed roots (None: not configured; owed roots are
    then paid by later events only)."""
    url = _config().status_queue_url
    return OwedRootsQueue(aws.sqs(), url) if url else None


# --- slack_app -----------------------------------------------------------------------------


@cache
def _app_client() -> WebClient:
    return web_client(
        _secrets().bot_token(), _config().api_url, clock=_slack_clock(), usage=SlackUsage()
    )


@cache
def services() -> BotServices:
    """What the app decides with: the pipeline's services and Slack's directory."""
    return BotServices(
        store=pipeline.store(),
        approvals=pipeline.approvals(),
        rollbacks=pipeline.rollbacks(),
        directory=SlackDirectory(_app_client()),
        wave_control=pipeline.wave_control(),
        parks=pipeline.parks(),
        finalizes=pipeline.finalize_now(),
    )


@cache
def slack_app() -> App:
    """The Bolt app; its services are built on the first request that needs them."""
    return build_app(
        client=_app_client(),
        signing_secret=_secrets().signing_secret(),
        services=services,
        clock=clock(),
        process_before_response=True,
        owed_queue=owed_roots_queue,
    )


@cache
def request_handler() -> SlackRequestHandler:
    """Bolt's Lambda adapter over ``slack_app()`` (function URL requests, lazy listeners)."""
    return SlackRequestHandler(slack_app())


def reset() -> None:
    """Forget what the bot and the pipeline built, and the settings of both."""
    with _building_notifier:
        for built in (
            _secrets,
            _slack_clock,
            _notifier,
            status_dead_letters,
            handled_messages,
            owed_roots_queue,
            _app_client,
            services,
            slack_app,
            request_handler,
        ):
            built.cache_clear()
    bot_settings.cache_clear()
    pipeline.reset()
