"""``wavepilot publish`` against moto's SQS: shape, batching, retries, idempotency, FIFO."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from orchestration import cli
from orchestration.gitops.git import GitRepository
from orchestration.gitops.plan import Plan, build_plan
from orchestration.gitops.publish import RequestPublisher
from orchestration.manifests.model import EffectiveVm
from orchestration.migration_request import MigrationRequest
from orchestration.request_identity import vm_revision
from tests.conftest import NOW
from tests.support.gitrepo import GitRepo
from tests.support.waves import VmText, azure_id, wave_text

WAVE = "manifests/waves/wave-1.yaml"
SEED_FIELDS = [
    "migrationId", "appName", "source", "target", "environment", "wave",
    "sourceVmId", "targetVmName", "instanceType", "subnetId", "securityGroupIds",
]  # fmt: skip
EVENTS = Path(__file__).parent / "events"


@pytest.fixture
def sqs(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def _receive_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", []):
        messages.extend(batch)
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def _publish(repo: GitRepo, base: str, head: str, queue_url: str, *extra: str) -> int:
    return cli.main(
        ["publish", "--repo", str(repo.root), "--base", base, "--head", head,
         "--queue-url", queue_url, *extra]
    )  # fmt: skip


def _build(repo: GitRepo, base: str, head: str) -> Plan:
    git = GitRepository(repo.root)
    return build_plan(git, git.resolve(base), git.resolve(head), now=NOW)


@pytest.fixture
def two_commits(git_repo: GitRepo) -> tuple[GitRepo, str, str]:
    git_repo.write(WAVE, wave_text("wave-1", [VmText(f"web-{i:02d}") for i in range(3)]))
    base = git_repo.commit("base")
    vms = [VmText("web-00", instance_type="m6i.large")] + [
        VmText(f"web-{i:02d}") for i in range(1, 26)
    ]
    git_repo.write(WAVE, wave_text("wave-1", vms))
    head = git_repo.commit("resize web-00, add 23 VMs")
    return git_repo, base, head


def test_publish_sends_the_seed_fields_plus_vm_revision_and_provenance(
    sqs: Any, two_commits: tuple[GitRepo, str, str]
) -> None:
    repo, base, head = two_commits
    queue_url = sqs.create_queue(QueueName="requests")["QueueUrl"]

    assert _publish(repo, base, head, queue_url) == cli.EXIT_OK

    messages = _receive_all(sqs, queue_url)
    assert len(messages) == 24  # 1 changed + 23 added; the 2 unchanged send nothing
    bodies = {json.loads(m["Body"])["targetVmName"]: json.loads(m["Body"]) for m in messages}
    web00 = bodies["web-00"]
    assert all(field in web00 for field in SEED_FIELDS)
    assert (web00["source"], web00["target"]) == ("azure", "aws")
    assert web00["sourceVmId"] == azure_id("web-00")
    assert web00["instanceType"] == "m6i.large"
    assert web00["securityGroupIds"] == ["sg-0a1b2c3d"]
    assert web00["spec"]["instanceType"] == "m6i.large"
    assert web00["provenance"]["commit"] == head
    assert web00["provenance"]["manifestPath"] == WAVE
    assert web00["provenance"]["author"] == "Ann Engineer <ann@contoso.com>"
    assert len(web00["revision"]) == 16
    attributes = messages[0]["MessageAttributes"]
    assert attributes["action"]["StringValue"] == "migrate"
    # Every body parses back into the contract the ingress uses, and its revision is the
    # hash of the spec it carries.
    for body in bodies.values():
        MigrationRequest.model_validate(body)
        assert vm_revision(EffectiveVm.model_validate(body["spec"])) == body["revision"]


def test_publish_batches_ten_at_a_time(sqs: Any, two_commits: tuple[GitRepo, str, str]) -> None:
    repo, base, head = two_commits
    queue_url = sqs.create_queue(QueueName="requests")["QueueUrl"]
    calls: list[int] = []
    client = boto3.client("sqs", region_name="us-east-1")
    client.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch",
        lambda params, **_: calls.append(len(params["Entries"])),
    )
    plan = _build(repo, base, head)
    report = RequestPublisher(client, queue_url).publish(plan.requests)

    assert calls == [10, 10, 4]
    assert len(report.sent) == 24
    assert report.ok


def test_publishing_the_same_range_twice_sends_identical_messages(
    sqs: Any, two_commits: tuple[GitRepo, str, str]
) -> None:
    repo, base, head = two_commits
    queue_url = sqs.create_queue(QueueName="requests")["QueueUrl"]

    assert _publish(repo, base, head, queue_url) == cli.EXIT_OK
    first = sorted(m["Body"] for m in _receive_all(sqs, queue_url))
    assert _publish(repo, base, head, queue_url) == cli.EXIT_OK
    second = sorted(m["Body"] for m in _receive_all(sqs, queue_url))

    assert first == second
    keys = {(json.loads(b)["migrationId"], json.loads(b)["revision"]) for b in first}
    assert len(keys) == 24


def test_fifo_queue_groups_by_migration_and_deduplicates_a_repeat(
    sqs: Any, two_commits: tuple[GitRepo, str, str]
) -> None:
    repo, base, head = two_commits
    queue_url = sqs.create_queue(QueueName="requests.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]

    assert _publish(repo, base, head, queue_url) == cli.EXIT_OK
    assert _publish(repo, base, head, queue_url) == cli.EXIT_OK

    messages = _receive_all(sqs, queue_url)
    assert len(messages) == 24  # the repeat was dropped by SQS deduplication
    for message in messages:
        body = json.loads(message["Body"])
        assert message["Attributes"]["MessageGroupId"] == body["migrationId"]
        assert message["Attributes"]["MessageDeduplicationId"] == (
            f"{body['migrationId']}-{body['revision']}-migrate"
        )


def test_partial_batch_failures_are_retried_until_sent(
    sqs: Any, two_commits: tuple[GitRepo, str, str]
) -> None:
    """SQS can fail single entries of a batch (SenderFault false): only those are resent."""
    repo, base, head = two_commits
    queue_url = sqs.create_queue(QueueName="requests")["QueueUrl"]
    client = boto3.client("sqs", region_name="us-east-1")
    injected: list[str] = []  # entry IDs withheld from SQS and reported back as failed
    in_flight: list[str] = []

    def withhold_one_entry(params: dict[str, Any], **_: Any) -> None:
        if len(injected) < 2 and len(params["Entries"]) > 1:
            entry_id = params["Entries"].pop()["Id"]
            injected.append(entry_id)
            in_flight.append(entry_id)

    def report_it_failed(parsed: dict[str, Any], **_: Any) -> None:
        while in_flight:
            failure = {"Id": in_flight.pop(), "SenderFault": False, "Code": "InternalError"}
            parsed.setdefault("Failed", []).append(failure)

    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", withhold_one_entry)
    client.meta.events.register("after-call.sqs.SendMessageBatch", report_it_failed)
    plan = _build(repo, base, head)
    report = RequestPublisher(client, queue_url, sleep=lambda _: None).publish(plan.requests)

    assert report.ok
    assert len(injected) == 2
    assert report.retried_entries == 2
    received = _receive_all(sqs, queue_url)
    assert len(received) == 24
    assert len({m["Body"] for m in received}) == 24


def test_publish_refuses_invalid_head_and_sends_nothing(
    sqs: Any, git_repo: GitRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    base = git_repo.commit("base")
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01"), VmText("web-02", "t3.huge")]))
    head = git_repo.commit("broken")
    queue_url = sqs.create_queue(QueueName="requests")["QueueUrl"]

    assert _publish(git_repo, base, head, queue_url) == cli.EXIT_INVALID

    out = capsys.readouterr().out
    assert f"{WAVE}:28:23: applications[0].vms[1].instanceType" in out
    assert "refusing to publish" in out
    assert _receive_all(sqs, queue_url) == []


def test_dry_run_prints_bodies_and_sends_nothing(
    sqs: Any, two_commits: tuple[GitRepo, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, base, head = two_commits
    queue_url = sqs.create_queue(QueueName="requests")["QueueUrl"]

    assert _publish(repo, base, head, queue_url, "--dry-run") == cli.EXIT_OK

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 24
    assert json.loads(lines[0])["action"] == "migrate"
    assert _receive_all(sqs, queue_url) == []


def test_removed_vms_send_nothing_unless_asked_to_cancel(sqs: Any, git_repo: GitRepo) -> None:
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01"), VmText("web-02")]))
    base = git_repo.commit("base")
    git_repo.write(WAVE, wave_text("wave-1", [VmText("web-01")]))
    head = git_repo.commit("drop web-02")
    queue_url = sqs.create_queue(QueueName="requests")["QueueUrl"]

    assert _publish(git_repo, base, head, queue_url) == cli.EXIT_OK
    assert _receive_all(sqs, queue_url) == []

    assert _publish(git_repo, base, head, queue_url, "--cancel-removed") == cli.EXIT_OK
    [message] = _receive_all(sqs, queue_url)
    body = json.loads(message["Body"])
    assert (body["action"], body["targetVmName"]) == ("cancel", "web-02")


def test_queue_url_comes_from_the_seed_environment_variable(
    sqs: Any, two_commits: tuple[GitRepo, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, base, head = two_commits
    queue_url = sqs.create_queue(QueueName="requests")["QueueUrl"]
    monkeypatch.setenv("SQS_QUEUE_URL", queue_url)

    argv = ["publish", "--repo", str(repo.root), "--base", base, "--head", head]
    assert cli.main(argv) == cli.EXIT_OK
    assert len(_receive_all(sqs, queue_url)) == 24


def test_the_seed_quick_start_message_is_a_valid_request() -> None:
    body = json.loads((EVENTS / "seed_quick_start_request.json").read_text())

    request = MigrationRequest.model_validate(body)

    assert request.migration_id == "mig-12345"
    assert request.revision is None
    assert request.effective_vm is None
    assert {k: v for k, v in request.body().items() if k != "action"} == body
