"""Configuration, read once from the environment into a typed model.

The seed's variables keep their meaning: ``AWS_REGION``, ``EVENTBRIDGE_BUS_NAME``,
``DYNAMODB_TABLE_NAME`` and ``MGN_REGION`` (defaults to ``AWS_REGION``). The rest are
Wavepilot's own and documented in the README. Two seed variables are not the handlers':
``SQS_QUEUE_URL`` (the request queue) is ``wavepilot publish``'s default ``--queue-url``, and
``DEBUG`` sets the log level (``observability.py``, before any settings are read) and the
CLI's tracebacks (``cli_errors.py``).
"""

from __future__ import annotations

from functools import cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestration.naming import ResourceNames


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True)

    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    event_bus_name: str = Field(
        default="wavepilot-local-bus", validation_alias="EVENTBRIDGE_BUS_NAME"
    )
    table_name: str = Field(default="wavepilot-local-state", validation_alias="DYNAMODB_TABLE_NAME")
    dead_letter_queue_url: str = Field(default="", validation_alias="REQUEST_DLQ_URL")
    state_machine_arn: str = Field(default="", validation_alias="STATE_MACHINE_ARN")
    # Batched launches: each lane's coordinator loop is an execution of this state machine.
    launch_coordinator_arn: str = Field(default="", validation_alias="LAUNCH_COORDINATOR_ARN")
    mgn_region_override: str | None = Field(default=None, validation_alias="MGN_REGION")
    idempotency_days: int = Field(default=90, ge=1, validation_alias="IDEMPOTENCY_DAYS")
    default_approvers_text: str = Field(default="", validation_alias="DEFAULT_APPROVERS")
    # Lanes (a target account + Region, DESIGN.md decision 12): the role assumed in each,
    # the hub's own account (a request naming no target runs in the hub's lane) and the lanes
    # the scheduled monitor watches ("account/region,account/region"; empty: the hub's lane).
    target_role_name: str = Field(
        default_factory=lambda: ResourceNames().target_role, validation_alias="TARGET_ROLE_NAME"
    )
    hub_account_id: str = Field(default="", validation_alias="HUB_ACCOUNT_ID")
    target_lanes_text: str = Field(default="", validation_alias="TARGET_LANES")

    @property
    def default_approvers(self) -> list[str]:
        """Approvers for requests that carry none (hand-written ones, like the seed's)."""
        return [item.strip() for item in self.default_approvers_text.split(",") if item.strip()]

    @property
    def mgn_region(self) -> str:
        return self.mgn_region_override or self.aws_region

    @property
    def target_lanes(self) -> list[tuple[str, str]]:
        """``TARGET_LANES`` as (account, Region) pairs, in the order given, without repeats."""
        lanes: list[tuple[str, str]] = []
        for item in self.target_lanes_text.replace(";", ",").split(","):
            account, _, region = item.strip().partition("/")
            if account and region and (account, region) not in lanes:
                lanes.append((account, region))
        return lanes


@cache
def settings() -> Settings:
    """The process's settings; read on first use so tests can set the environment first."""
    return Settings()
