"""In-process botocore transport: the embedded system's servers answer their own process's
clients without a socket, byte for byte what the socket would have carried; other URLs, other
processes and a stopped server behave as before."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.httpsession import URLLib3Session

from orchestration.local.mgn.server import LoopbackServer
from orchestration.local.runtime import LocalAwsRuntime
from orchestration.local.runtime.in_process_transport import (
    TRANSPORT_ENVIRONMENT_KEY,
    Reply,
    in_process_enabled,
    unregister,
)

NO_RETRIES = Config(retries={"max_attempts": 0, "total_max_attempts": 1})


class SocketSends:
    """Counts what botocore sends over the network (URLLib3Session.send)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = URLLib3Session.send

        def send(session: URLLib3Session, request: Any) -> Any:
            self.count += 1
            return original(session, request)

        monkeypatch.setattr(URLLib3Session, "send", send)


@pytest.fixture
def socket_sends(monkeypatch: pytest.MonkeyPatch) -> SocketSends:
    return SocketSends(monkeypatch)


@pytest.fixture
def runtime() -> Iterator[LocalAwsRuntime]:
    with LocalAwsRuntime() as started:
        yield started


def test_the_runtimes_own_clients_skip_the_socket_and_get_motos_answers(
    runtime: LocalAwsRuntime, socket_sends: SocketSends
) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=runtime.endpoint_url)
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "ä/ö?&"}, "n": {"N": "1"}})
    item = dynamodb.get_item(TableName="t", Key={"pk": {"S": "ä/ö?&"}})["Item"]
    assert item == {"pk": {"S": "ä/ö?&"}, "n": {"N": "1"}}
    # moto's errors come back as botocore's ClientError with AWS's code, as over the wire.
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(
            TableName="t",
            Item={"pk": {"S": "ä/ö?&"}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    # A REST operation with the resource in the path and a query string (Lambda, SQS query).
    sqs = boto3.client("sqs", endpoint_url=runtime.endpoint_url)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"a": "é"}))
    [message] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert json.loads(message["Body"]) == {"a": "é"}
    assert socket_sends.count == 0
    # Another process reaches the same moto over loopback HTTP, and sees the same state.
    with urllib.request.urlopen(f"{runtime.endpoint_url}/moto-api/data.json") as reply:  # noqa: S310
        assert reply.status == 200


def test_a_stopped_runtimes_url_is_refused_over_the_socket(socket_sends: SocketSends) -> None:
    with LocalAwsRuntime() as started:
        endpoint = started.endpoint_url
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRIES,
    )
    with pytest.raises(EndpointConnectionError):
        dynamodb.list_tables()
    assert socket_sends.count == 1


def test_http_only_when_asked(monkeypatch: pytest.MonkeyPatch, socket_sends: SocketSends) -> None:
    assert in_process_enabled({})
    assert not in_process_enabled({TRANSPORT_ENVIRONMENT_KEY: "http"})
    monkeypatch.setenv(TRANSPORT_ENVIRONMENT_KEY, "http")
    with LocalAwsRuntime() as started:
        boto3.client("dynamodb", endpoint_url=started.endpoint_url).list_tables()
    assert socket_sends.count == 1


def test_an_answer_server_gets_the_request_as_the_socket_would_carry_it(
    socket_sends: SocketSends,
) -> None:
    seen: list[tuple[str, str, Mapping[str, str], bytes]] = []

    def answer(method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        seen.append((method, path, dict(headers), body))
        reply = b'{"tags": {"k": "v"}}'
        return Reply(
            200, {"Content-Type": "application/json", "Content-Length": str(len(reply))}, reply
        )

    def exchange() -> tuple[dict[str, Any], tuple[str, str, Mapping[str, str], bytes]]:
        arn = "arn:aws:mgn:eu-west-1:111122223333:source-server/s-1234567890abcdef0"
        mgn = boto3.client(
            "mgn",
            endpoint_url=server.url,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=NO_RETRIES,
        )
        tags = mgn.list_tags_for_resource(resourceArn=arn)["tags"]
        return tags, seen.pop()

    server = LoopbackServer(answer)
    server.start()
    try:
        in_process = exchange()
        assert socket_sends.count == 0
        unregister(server.url or "")  # the same call, over the socket this time
        over_socket = exchange()
        assert socket_sends.count == 1
    finally:
        server.stop()
    assert in_process[0] == over_socket[0] == {"k": "v"}
    (method, path, headers, body), (method2, path2, headers2, body2) = in_process[1], over_socket[1]
    assert (method, path, body) == (method2, path2, body2)
    assert "%3A" in path  # the ARN label percent-encoded, as sent
    signed = {"authorization", "x-amz-date", "content-length", "host", "content-type"}

    def picked(found: Mapping[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in found.items() if k.lower() in signed}

    assert set(picked(headers)) == set(picked(headers2))
