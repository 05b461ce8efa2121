"""What one migration runs on: the request, normalised for the pipeline.

A request published from a manifest carries the full effective VM (``spec`` on the wire).
A hand-written request (the seed's Quick Start message) carries only the seed's fields; the
rest takes defaults, and its MGN source server is looked up by ``sourceVmId`` (as a source
server ID if it looks like one, then as the agent's ``userProvidedID``). Types here are
deliberately plain: the manifest rules were enforced at publish time, and live checks (does
the subnet exist?) are ``validate_input``'s job, with messages that say what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from orchestration.health_checks import HealthCheckSpec
from orchestration.migration_request import MigrationRequest
from orchestration.post_launch_actions import PostLaunchActionSpec
from orchestration.wire import WireModel

SOURCE_SERVER_ID = re.compile(r"s-[0-9a-zA-Z]{17}")


class PipelineModel(WireModel):
    """What the pipeline passes between steps (camelCase in the state machine's JSON)."""


class SourceHints(PipelineModel):
    """How to find the MGN source server, in resolution order."""

    source_vm_id: str
    source_server_id: str | None = None
    user_provided_id: str | None = None
    hostname: str | None = None


class MigrationSpec(PipelineModel):
    migration_id: str
    revision: str
    correlation_id: str
    wave: str
    app_name: str
    environment: str
    target_vm_name: str
    # The wave's target (a hand-written request names none: it lands where the pipeline runs).
    target_account_id: str = ""
    target_region: str = ""
    source: SourceHints
    os_family: Literal["windows", "linux"] | None = None
    instance_type: str
    subnet_id: str
    security_group_ids: list[str]
    test_subnet_id: str
    test_security_group_ids: list[str]
    iam_instance_profile: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    boot_mode: str = "USE_SOURCE"
    os_byol: bool = False
    health_checks: list[HealthCheckSpec] = Field(default_factory=list)
    callback_urls: list[str] = Field(default_factory=list)
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None
    slack_channel: str | None = None
    approvers: list[str] = Field(default_factory=list)
    operators: list[str] = Field(default_factory=list)
    requested_by: str = ""
    # What one approval decision covers (the manifest's ``approval.scope``). A hand-written
    # request names no group: each VM is approved on its own, as before scopes existed.
    approval_scope: Literal["vm", "application", "wave"] = "vm"
    # The hold between a verified cutover and FinalizeCutover (the manifest's
    # ``finalizeAfter``): 0 finalizes at once, as a hand-written request always does.
    finalize_after_minutes: int = 0
    # The SSM documents MGN runs on each launched instance (the manifest's
    # ``postLaunchActions``); a hand-written request has none.
    post_launch_actions: list[PostLaunchActionSpec] = Field(default_factory=list)
    # The applications of the same wave whose cutovers go before this one's (the manifest's
    # ``dependsOn``, direct dependencies only): none for a hand-written request.
    cutover_after: list[str] = Field(default_factory=list)
    # A failure before the cutover: roll back at once, or park (nothing running, Retry or
    # Roll back in the thread) for ``park_for_minutes`` before rolling back (the manifest's
    # ``onFailure`` and ``parkFor``). A hand-written request rolls back, as before.
    on_failure: Literal["rollback", "park"] = "rollback"
    park_for_minutes: int = 0

    @property
    def approval_group(self) -> str:
        """The group this VM's approval belongs to ("" for ``vm`` scope)."""
        return approval_group(self.approval_scope, self.wave, self.app_name)

    @classmethod
    def from_request(
        cls,
        request: MigrationRequest,
        revision: str,
        correlation_id: str,
        *,
        default_approvers: Sequence[str] = (),
    ) -> MigrationSpec:
        common = {
            "migration_id": request.migration_id,
            "revision": revision,
            "correlation_id": correlation_id,
            "wave": request.wave,
            "app_name": request.app_name,
            "environment": request.environment,
            "target_vm_name": request.target_vm_name,
            "requested_by": request.provenance.author if request.provenance else "",
        }
        vm = request.effective_vm
        if vm is None:
            looks_like_id = SOURCE_SERVER_ID.fullmatch(request.source_vm_id) is not None
            return cls.model_validate(
                {
                    **common,
                    "source": {
                        "source_vm_id": request.source_vm_id,
                        "source_server_id": request.source_vm_id if looks_like_id else None,
                        "user_provided_id": None if looks_like_id else request.source_vm_id,
                    },
                    "instance_type": request.instance_type,
                    "subnet_id": request.subnet_id,
                    "security_group_ids": request.security_group_ids,
                    "test_subnet_id": request.subnet_id,
                    "test_security_group_ids": request.security_group_ids,
                    "approvers": list(default_approvers),
                    "operators": list(default_approvers),
                }
            )
        return cls.model_validate(
            {
                **common,
                "source": {
                    "source_vm_id": vm.source.azure_resource_id,
                    "source_server_id": vm.source.source_server_id,
                    "user_provided_id": vm.source.user_provided_id,
                    "hostname": vm.source.hostname,
                },
                "target_account_id": vm.target_account_id,
                "target_region": vm.target_region,
                "os_family": vm.os_family,
                "instance_type": vm.instance_type,
                "subnet_id": vm.subnet_id,
                "security_group_ids": vm.security_group_ids,
                "test_subnet_id": vm.test_subnet_id,
                "test_security_group_ids": vm.test_security_group_ids,
                "iam_instance_profile": vm.iam_instance_profile,
                "tags": vm.tags,
                "boot_mode": vm.boot_mode,
                "os_byol": vm.os_byol,
                "health_checks": [check.model_dump() for check in vm.health_checks],
                "callback_urls": vm.callback_urls,
                "window_start": vm.cutover_window.start,
                "window_end": vm.cutover_window.end,
                "slack_channel": vm.slack_channel,
                "approvers": vm.approvers,
                "operators": vm.operators,
                "approval_scope": vm.approval_scope,
                "finalize_after_minutes": vm.finalize_after_minutes,
                "cutover_after": vm.cutover_after,
                "on_failure": vm.on_failure,
                "park_for_minutes": vm.park_for_minutes,
                "post_launch_actions": [
                    {
                        "name": action.name,
                        "ssm_document": action.ssm_document,
                        "parameters": action.parameters or {},
                        "order": action.order,
                        "must_succeed_for_cutover": action.must_succeed_for_cutover,
                        "timeout_seconds": action.timeout_seconds,
                    }
                    for action in vm.post_launch_actions
                ],
            }
        )

    def in_window(self, now: datetime) -> Literal["before", "open", "closed"]:
        if self.window_start is not None and now < self.window_start:
            return "before"
        if self.window_end is not None and now >= self.window_end:
            return "closed"
        return "open"


def approval_group(scope: str, wave: str, app_name: str) -> str:
    """The key of an approval group: ``<wave>/<app>`` (application scope), ``<wave>`` (wave
    scope), "" for ``vm`` scope (no group). Wave and application names are slugs, so the
    ``/`` is unambiguous."""
    if scope == "application":
        return f"{wave}/{app_name}"
    if scope == "wave":
        return wave
    return ""
