"""SQS on the local runtime: moto's answers, at a cost that does not grow with the queue.

moto's ``Queue.attributes`` builds every attribute, counting the queue's messages three
times, and moto reads it for one value in every SendMessage and for every message
ReceiveMessage returns; the runtime replaces it (``moto_patches``) with a mapping that
computes a value when read. boto3 against the runtime's moto server, as the system calls it;
"plain moto" is moto's own property, called on the same queue. No timings: the tests count
the scans.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import Queue, sqs_backends

from orchestration.local.runtime import MOTO_PATCH_POINTS, start_local_aws
from orchestration.local.runtime.moto_backends import has_visible_message

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

REGION = "us-east-1"
QUEUE_SIZE = 500
LONG = 900  # seconds: in flight and delayed messages stay so for the whole test
COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_not_visible",
    "approximate_number_of_messages_delayed",
)


@pytest.fixture
def sqs() -> Iterator[SQSClient]:
    with start_local_aws(poll_event_sources=False) as runtime:
        client: SQSClient = boto3.client(
            "sqs", endpoint_url=runtime.endpoint_url, region_name=REGION
        )
        yield client


def _queue(queue_url: str) -> Queue:
    """moto's queue behind a URL (``.../<account>/<name>``)."""
    account_id, name = queue_url.rsplit("/", 2)[1:]
    queue: Queue = sqs_backends[account_id][REGION].queues[name]
    return queue


def _plain_moto_attributes(queue: Queue) -> dict[str, Any]:
    original = next(p for p in MOTO_PATCH_POINTS if p.symbol.endswith("Queue.attributes"))
    attributes: dict[str, Any] = original.original()(queue)
    return attributes


def _answered(attributes: dict[str, Any]) -> dict[str, str]:
    """What moto's GetQueueAttributes response makes of the backend's attributes."""
    return {key: str(value) for key, value in attributes.items() if value is not None}


def _standard_queue(sqs: SQSClient) -> str:
    """Every branch of moto's attributes: a policy, a redrive policy, a KMS key."""
    dlq_url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage"}],
    }
    queue_url = sqs.create_queue(
        QueueName="standard",
        Attributes={
            "VisibilityTimeout": str(LONG),
            "Policy": json.dumps(policy),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
            "KmsMasterKeyId": "alias/aws/sqs",
        },
    )["QueueUrl"]
    for body in ("visible-1", "visible-2", "in-flight"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    sqs.send_message(QueueUrl=queue_url, MessageBody="delayed", DelaySeconds=LONG)
    assert len(sqs.receive_message(QueueUrl=queue_url).get("Messages", [])) == 1
    return queue_url


def _fifo_queue(sqs: SQSClient, name: str = "status.fifo") -> str:
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "true",
            "VisibilityTimeout": str(LONG),
        },
    )["QueueUrl"]
    for group in ("a", "b", "c"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"body-{group}", MessageGroupId=group)
    assert len(sqs.receive_message(QueueUrl=queue_url).get("Messages", [])) == 1
    return queue_url


@pytest.mark.parametrize(
    ("make_queue", "counts"),
    [(_standard_queue, ("2", "1", "1")), (_fifo_queue, ("2", "1", "0"))],
    ids=["standard", "fifo"],
)
def test_get_queue_attributes_answers_as_plain_moto(
    sqs: SQSClient, make_queue: Callable[[SQSClient], str], counts: tuple[str, str, str]
) -> None:
    queue_url = make_queue(sqs)
    queue = _queue(queue_url)
    plain = _plain_moto_attributes(queue)

    # In the server: the same keys, order and values (None included) as moto's dict.
    assert list(queue.attributes.items()) == list(plain.items())

    answered = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert answered == _answered(plain)
    assert (
        answered["ApproximateNumberOfMessages"],
        answered["ApproximateNumberOfMessagesNotVisible"],
        answered["ApproximateNumberOfMessagesDelayed"],
    ) == counts
    for names in (
        ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        ["ApproximateNumberOfMessagesDelayed", "MessageRetentionPeriod"],
        ["ContentBasedDeduplication", "FifoQueue", "DeduplicationScope"],
        ["Policy", "RedrivePolicy", "QueueArn"],
        ["KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled"],
    ):
        response = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)  # type: ignore[arg-type]
        expected = {name: value for name, value in answered.items() if name in names}
        assert response.get("Attributes", {}) == expected, names


def test_content_based_deduplication_still_drops_a_duplicate(sqs: SQSClient) -> None:
    queue_url = _fifo_queue(sqs)
    sqs.send_message(QueueUrl=queue_url, MessageBody="body-d", MessageGroupId="d")
    sqs.send_message(QueueUrl=queue_url, MessageBody="body-d", MessageGroupId="d")
    assert [message.body for message in _queue(queue_url)._messages].count("body-d") == 1
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes == {"ApproximateNumberOfMessages": "3"}  # b, c and d


def test_a_message_past_its_retention_is_not_received(sqs: SQSClient) -> None:
    queue_url = sqs.create_queue(
        QueueName="short-lived", Attributes={"MessageRetentionPeriod": "60"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="old")
    (message,) = _queue(queue_url)._messages
    message.sent_timestamp -= 61_000  # type: ignore[assignment,operator]  # sent 61 seconds earlier
    assert sqs.receive_message(QueueUrl=queue_url).get("Messages", []) == []

    fresh_url = sqs.create_queue(
        QueueName="long-lived", Attributes={"MessageRetentionPeriod": "60"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=fresh_url, MessageBody="new")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=fresh_url)["Messages"]] == ["new"]


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count every evaluation of moto's message counts, in the server's threads too."""
    scans: Counter[str] = Counter()
    for name in COUNTS:
        getter = vars(Queue)[name].fget

        def counted(queue: Queue, name: str = name, getter: Any = getter) -> int:
            scans[name] += 1
            count: int = getter(queue)
            return count

        monkeypatch.setattr(Queue, name, property(counted))
    return scans


def _fill(sqs: SQSClient, queue_url: str, fifo: bool) -> None:
    for batch in range(QUEUE_SIZE // 10):
        entries: list[Any] = [
            {"Id": str(n), "MessageBody": f"backlog-{batch}-{n}"} for n in range(10)
        ]
        if fifo:
            for entry in entries:
                entry["MessageGroupId"] = f"group-{batch}-{entry['Id']}"
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_send_and_receive_do_not_scan_a_backed_up_queue(
    sqs: SQSClient, monkeypatch: pytest.MonkeyPatch, fifo: bool
) -> None:
    if fifo:
        queue_url = sqs.create_queue(
            QueueName="backlog.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
    else:
        queue_url = sqs.create_queue(QueueName="backlog")["QueueUrl"]
    _fill(sqs, queue_url, fifo)
    assert len(_queue(queue_url)._messages) == QUEUE_SIZE
    scans = _count_scans(monkeypatch)

    group = {"MessageGroupId": "one-more"} if fifo else {}
    sqs.send_message(QueueUrl=queue_url, MessageBody="one more", **group)  # type: ignore[arg-type]
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)["Messages"]
    assert len(received) == 1
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=received[0]["ReceiptHandle"])
    assert scans == Counter()

    # The counter sees the server's scans: asking for the counts is what scans.
    sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
    assert scans == Counter(dict.fromkeys(COUNTS, 1))


@pytest.mark.usefixtures("aws_env")
def test_canary_plain_moto_still_builds_every_attribute_to_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a runtime moto's own property answers, counting the queue on every send:
    when that stops, the runtime's replacement may be retired."""
    scans = _count_scans(monkeypatch)
    with mock_aws():
        client = boto3.client("sqs", region_name=REGION)
        queue_url = client.create_queue(QueueName="plain")["QueueUrl"]
        assert type(_queue(queue_url).attributes) is dict
        client.send_message(QueueUrl=queue_url, MessageBody="one")
    assert scans["approximate_number_of_messages"] > 0, (
        "moto.sqs.models.SQSBackend.send_message no longer builds Queue.attributes: re-check "
        "whether the runtime's replacement of moto.sqs.models.Queue.attributes is still needed"
    )


def _queue_arn(queue_url: str) -> str:
    account_id, name = queue_url.rsplit("/", 2)[1:]
    return f"arn:aws:sqs:{REGION}:{account_id}:{name}"


def test_the_busy_probe_sees_what_a_receive_would_return(sqs: SQSClient) -> None:
    """The virtual clock's probe against the answers of ReceiveMessage, on both kinds of queue:
    in flight, delayed and held FIFO groups are not work a poller can take now."""
    standard = sqs.create_queue(QueueName="probe-standard")["QueueUrl"]
    fifo = sqs.create_queue(
        QueueName="probe.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    assert not has_visible_message(_queue_arn(standard))
    assert not has_visible_message(f"arn:aws:sqs:{REGION}:123456789012:no-such-queue")

    sqs.send_message(QueueUrl=standard, MessageBody="later", DelaySeconds=LONG)
    assert not has_visible_message(_queue_arn(standard))
    sqs.send_message(QueueUrl=standard, MessageBody="now")
    assert has_visible_message(_queue_arn(standard))
    received = sqs.receive_message(QueueUrl=standard, VisibilityTimeout=LONG)["Messages"]
    assert [m["Body"] for m in received] == ["now"]
    assert not has_visible_message(_queue_arn(standard))

    # FIFO: one group's head in flight holds the rest of that group, not another group.
    for body in ("a1", "a2", "a3"):
        sqs.send_message(QueueUrl=fifo, MessageBody=body, MessageGroupId="a")
    assert has_visible_message(_queue_arn(fifo))
    head = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=1, VisibilityTimeout=LONG)
    assert [m["Body"] for m in head["Messages"]] == ["a1"]
    assert "Messages" not in sqs.receive_message(QueueUrl=fifo, VisibilityTimeout=LONG)
    assert not has_visible_message(_queue_arn(fifo))
    sqs.send_message(QueueUrl=fifo, MessageBody="b1", MessageGroupId="b")
    assert has_visible_message(_queue_arn(fifo))
    taken = sqs.receive_message(QueueUrl=fifo, VisibilityTimeout=LONG)["Messages"]
    assert [m["Body"] for m in taken] == ["b1"]
    assert not has_visible_message(_queue_arn(fifo))
    sqs.delete_message(QueueUrl=fifo, ReceiptHandle=head["Messages"][0]["ReceiptHandle"])
    assert has_visible_message(_queue_arn(fifo))  # a2 is the group's head now


def test_the_visible_messages_are_moto_s_read_on_one_clock_reading(sqs: SQSClient) -> None:
    """ReceiveMessage lists ``Queue.messages`` (the visible ones) before taking ten: the
    runtime's listing reads the clock once and must list exactly what moto's would."""
    queue_url = sqs.create_queue(QueueName="listing")["QueueUrl"]
    for n in range(30):
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=f"m{n}", DelaySeconds=LONG if n % 5 == 0 else 0
        )
    sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=7, VisibilityTimeout=LONG)
    queue = _queue(queue_url)
    original = next(p for p in MOTO_PATCH_POINTS if p.symbol.endswith("Queue.messages"))

    listed = [m.body for m in queue.messages]
    by_moto = [m.body for m in original.original()(queue)]

    assert listed == by_moto
    assert len(listed) == 30 - 6 - 7  # six delayed, seven in flight
