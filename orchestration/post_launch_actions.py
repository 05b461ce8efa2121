"""Post-launch actions: the SSM documents MGN runs on a launched instance, and what MGN
reported of them. Plain types below the pipeline and the adapters, as ``health_checks``.

The migration's spec carries the actions (:mod:`orchestration.pipeline.spec`), the MGN
adapter sets them on the source server and reads their results from the launch job's
participating servers (:mod:`orchestration.adapters.mgn`), and the pipeline decides what the
results mean (:mod:`orchestration.pipeline.post_launch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from orchestration.wire import WireModel

# Wavepilot's actions in MGN are ``wavepilot-<name>``: what it may update or remove; actions
# with other IDs (set by hand in MGN's console) are left alone.
ACTION_ID_PREFIX = "wavepilot-"
# The tag Wavepilot puts on a source server before it gives it actions (and takes off once
# none of its actions are left): a server without it holds none of Wavepilot's actions, so
# a VM with no actions in its manifest needs no ListSourceServerActions.
ACTIONS_TAG = "wavepilot:post-launch-actions"

ExecutionStatus = Literal["IN_PROGRESS", "SUCCESS", "FAILED"]


class PostLaunchActionSpec(WireModel):
    """One action, as the spec carries it (camelCase on the wire, like every part of it)."""

    name: str
    ssm_document: str
    parameters: dict[str, list[str]] = Field(default_factory=dict)
    order: int
    must_succeed_for_cutover: bool = True
    timeout_seconds: int = 3600

    @property
    def action_id(self) -> str:
        """Its MGN action ID (``wavepilot-<name>``)."""
        return f"{ACTION_ID_PREFIX}{self.name}"


@dataclass(frozen=True, slots=True)
class SourceServerAction:
    """An action as MGN stores it on a source server (ListSourceServerActions)."""

    action_id: str
    action_name: str
    document_identifier: str
    order: int
    must_succeed_for_cutover: bool
    timeout_seconds: int | None
    parameters: dict[str, list[str]] = field(default_factory=dict, hash=False)
    active: bool = True

    @property
    def wavepilots(self) -> bool:
        """Whether Wavepilot set it (and so may change or remove it)."""
        return self.action_id.startswith(ACTION_ID_PREFIX)

    def matches(self, wanted: PostLaunchActionSpec) -> bool:
        """Whether MGN already holds exactly the wanted action (nothing to put)."""
        return (
            self.action_id == wanted.action_id
            and self.action_name == wanted.name
            and self.document_identifier == wanted.ssm_document
            and self.order == wanted.order
            and self.must_succeed_for_cutover == wanted.must_succeed_for_cutover
            and self.timeout_seconds == wanted.timeout_seconds
            and self.parameters == wanted.parameters
            and self.active
        )


@dataclass(frozen=True, slots=True)
class ActionExecution:
    """One action's run on a launched instance (a participating server's
    ``postLaunchActionsStatus.postLaunchActionsLaunchStatusList`` entry)."""

    action_name: str
    ssm_document: str
    status: ExecutionStatus
    must_succeed_for_cutover: bool
    failure_reason: str = ""
    execution_id: str = ""


@dataclass(frozen=True, slots=True)
class PostLaunchStatus:
    """A participating server's ``postLaunchActionsStatus``: when the SSM agent was seen on
    the instance (None: not yet) and each action's run so far."""

    ssm_agent_discovered: bool = False
    executions: tuple[ActionExecution, ...] = ()
