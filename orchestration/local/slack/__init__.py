"""A local Slack: the Web API on loopback with Slack's errors and rate limits, and Slack's side
of slash commands, button clicks and modals, for the embedded runtime and its tests."""

from orchestration.local.slack.bolt_http import BoltHttpServer
from orchestration.local.slack.clock import SlackClock
from orchestration.local.slack.model import (
    AppResponse,
    ConfirmDialog,
    Edit,
    EphemeralMessage,
    Message,
    OpenedView,
    RecordedRequest,
    Thread,
)
from orchestration.local.slack.rate_limits import TIER_2, TIER_3, TIER_4, RateLimit, SlackRateLimits
from orchestration.local.slack.standin import SlackStandIn

__all__ = [
    "TIER_2",
    "TIER_3",
    "TIER_4",
    "AppResponse",
    "BoltHttpServer",
    "ConfirmDialog",
    "Edit",
    "EphemeralMessage",
    "Message",
    "OpenedView",
    "RateLimit",
    "RecordedRequest",
    "SlackClock",
    "SlackRateLimits",
    "SlackStandIn",
    "Thread",
]
