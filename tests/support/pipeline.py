"""Requests built from the example manifests, with cutover windows moved to the present."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestration.gitops.requests import request_for
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.spec import MigrationSpec
from tests.conftest import REPO_ROOT

WINDOW = re.compile(r"(?m)^(  (?:start|end)): .*$")


def example_requests(
    wave: str = "wave-1",
    *,
    opens_in: timedelta = timedelta(hours=-1),
    lasts: timedelta = timedelta(hours=2),
    approval_scope: str | None = None,
    finalize_after: str | None = None,
    depends_on: dict[str, list[str]] | None = None,
    on_failure: str | None = None,
    post_launch_actions: list[dict[str, Any]] | None = None,
    renamed_to: str | None = None,
) -> list[MigrationRequest]:
    """The example wave's requests; ``approval_scope`` sets the wave's ``approval.scope``
    (the examples leave it to the default, ``application``), ``finalize_after`` its
    ``finalizeAfter`` (0 by default), ``depends_on`` applications' ``dependsOn``,
    ``on_failure`` its ``onFailure`` (rollback by default),
    ``post_launch_actions`` the wave defaults' ``postLaunchActions`` (manifest keys),
    ``renamed_to`` the wave's name (its VMs as if moved to another wave)."""
    path = REPO_ROOT / "manifests" / "waves" / f"{wave}.yaml"
    start = datetime.now(UTC) + opens_in
    times = iter([start.isoformat(), (start + lasts).isoformat()])
    text = WINDOW.sub(lambda m: f"{m.group(1)}: {next(times)}", path.read_text())
    if approval_scope is not None:
        text = text.replace("\ndefaults:", f"\napproval:\n  scope: {approval_scope}\ndefaults:", 1)
    if post_launch_actions is not None:
        # JSON is YAML: one flow-style line in the wave's defaults
        text = text.replace(
            "\ndefaults:\n",
            f"\ndefaults:\n  postLaunchActions: {json.dumps(post_launch_actions)}\n",
            1,
        )
    if finalize_after is not None:
        text = text.replace("\ndefaults:", f"\nfinalizeAfter: {finalize_after}\ndefaults:", 1)
    if on_failure is not None:
        text = text.replace("\ndefaults:", f"\nonFailure: {on_failure}\ndefaults:", 1)
    if renamed_to is not None:
        assert f"\nname: {wave}\n" in text, wave
        text = text.replace(f"\nname: {wave}\n", f"\nname: {renamed_to}\n", 1)
    for app, names in (depends_on or {}).items():
        entry = f"\n  - name: {app}\n"
        assert entry in text, app
        text = text.replace(entry, f"{entry}    dependsOn: [{', '.join(names)}]\n", 1)
    name = path if renamed_to is None else path.with_name(f"{renamed_to}.yaml")
    result = validate_files([ManifestFile(str(name), text)], now=datetime.now(UTC))
    assert result.valid, result.findings
    return [
        request_for(vm, commit="c" * 40, author="Dana Migration <dana@contoso.com>")
        for vm in result.vms
    ]


def spec_of(request: MigrationRequest) -> MigrationSpec:
    assert request.revision is not None
    return MigrationSpec.from_request(request, request.revision, "test")


def states_entered(execution_arn: str) -> list[str]:
    """The names of the states an execution entered, in order (its history, every page)."""
    from orchestration.adapters import aws

    entered: list[str] = []
    pages = aws.stepfunctions().get_paginator("get_execution_history")
    for page in pages.paginate(executionArn=execution_arn):
        entered.extend(
            event["stateEnteredEventDetails"]["name"]
            for event in page["events"]
            if "stateEnteredEventDetails" in event
        )
    return entered
