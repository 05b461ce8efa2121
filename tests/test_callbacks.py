"""Status callbacks: signing, the retry policy, the https transport and the handler.

Delivery logic runs against a fake transport with a fake clock and sleep (no waiting); the
real transport runs against the loopback receiver, with real TLS; the handler runs against
emulated DynamoDB (moto, in-process) with a recording transport.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.base import BaseProvider
from moto.events.models import EventPattern

from orchestration import wiring
from orchestration.adapters.callback_transport import (
    CallbackResponse,
    CallbackRoute,
    CallbackTransportError,
    HttpsCallbackTransport,
    system_tls_context,
)
from orchestration.adapters.secrets import (
    CallbackSettings,
    SigningSecretMissingError,
    SigningSecretSource,
)
from orchestration.adapters.state_store import MigrationStore
from orchestration.clock import SYSTEM_CLOCK
from orchestration.events import EventDetail, MigrationCompleted, MigrationRequested
from orchestration.gitops.requests import request_for
from orchestration.handlers import callback_handler
from orchestration.local.callback_receiver import CallbackReceiver, ReceiverMode
from orchestration.manifests.validation import ManifestFile, validate_files
from orchestration.migration_request import MigrationRequest
from orchestration.pipeline.callbacks import (
    CALLBACK_DETAIL_TYPES,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackEvent,
    CallbackSender,
    CallbackSignatureError,
    DeliveryOutcome,
    RetryPolicy,
    callback_body,
    callback_event_pattern,
    callback_url_problem,
    parse_retry_after,
    signature,
    signed_headers,
    verify_signature,
)
from orchestration.pipeline.reporter import Identity, routing_of
from tests.conftest import NOW, REPO_ROOT
from tests.support.aws_fixtures import EmulatedAws, emulated_aws
from tests.support.lambda_context import FakeLambdaContext

__all__ = ["emulated_aws"]  # the fixture, re-exported for pytest

SECRET = "whsec-test-0123456789abcdef"
CMDB = "https://cmdb.contoso.com/hooks/wavepilot"
BILLING_OPS = "https://billing-ops.contoso.com/api/migration-events"
START = 1_765_580_400.0  # 2025-12-12T23:00:00Z, the fake wall clock's start


# --- fakes ---------------------------------------------------------------------------------


@dataclass
class SentRequest:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout: float


@dataclass
class ScriptedTransport:
    """Answers each URL from a script: a status, a ``(status, retry_after)`` or an error."""

    script: dict[str, list[int | tuple[int, str] | CallbackTransportError]] = field(
        default_factory=dict
    )
    default: int = 204
    sent: list[SentRequest] = field(default_factory=list)

    def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> CallbackResponse:
        self.sent.append(SentRequest(url, body, dict(headers), timeout))
        answers = self.script.get(url)
        answer = answers.pop(0) if answers else self.default
        if isinstance(answer, CallbackTransportError):
            raise answer
        if isinstance(answer, tuple):
            return CallbackResponse(answer[0], answer[1])
        return CallbackResponse(answer)


@dataclass
class FakeTime:
    """Wall and monotonic clocks that only move when the sender sleeps."""

    wall: float = START
    mono: float = 1_000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.wall += seconds
        self.mono += seconds

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


def _sender(transport: ScriptedTransport, clock: FakeTime, jitter: float = 1.0) -> CallbackSender:
    return CallbackSender(
        transport,
        SECRET,
        RetryPolicy(),
        sleep=clock.sleep,
        wall_clock=clock.now,
        monotonic=clock.monotonic,
        jitter=lambda: jitter,
    )


def _event(sequence: int = 7, detail_type: str = "MigrationStatusUpdated") -> CallbackEvent:
    event_id = str(uuid.uuid4())
    detail = {"migrationId": "mig-0123456789abcdef", "sequence": sequence}
    return CallbackEvent(
        event_id, detail_type, callback_body(event_id, detail_type, "2025-12-12T23:00:00Z", detail)
    )


def _verifies(request: SentRequest, now: float) -> bool:
    try:
        verify_signature(
            SECRET,
            body=request.body,
            timestamp_header=request.headers.get(TIMESTAMP_HEADER),
            signature_header=request.headers.get(SIGNATURE_HEADER),
            now=now,
        )
    except CallbackSignatureError:
        return False
    return True


# --- the body and its signature ------------------------------------------------------------


def test_the_signature_is_hmac_sha256_over_the_timestamp_a_dot_and_the_body() -> None:
    # GIVEN a body and a timestamp
    body = b'{"id":"e-1","detail":{"sequence":3}}'

    # WHEN it is signed
    header = signature(SECRET, 1_765_580_400, body)

    # THEN it is what a receiver computes with nothing but hmac and the documented recipe
    expected = hmac.new(SECRET.encode(), b"1765580400." + body, hashlib.sha256).hexdigest()
    assert header == f"v1={expected}"


def test_signed_headers_carry_the_event_id_timestamp_and_signature() -> None:
    event = _event()

    headers = signed_headers(SECRET, event.event_id, event.body, 1_765_580_400)

    assert headers == {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event.event_id,
        TIMESTAMP_HEADER: "1765580400",
        SIGNATURE_HEADER: signature(SECRET, 1_765_580_400, event.body),
    }


def test_the_body_is_the_events_id_type_time_and_detail_with_its_sequence() -> None:
    body = callback_body(
        "e-1", "MigrationCompleted", "2025-12-12T23:00:00Z", {"migrationId": "m", "sequence": 9}
    )

    assert json.loads(body) == {
        "id": "e-1",
        "detail-type": "MigrationCompleted",
        "time": "2025-12-12T23:00:00Z",
        "detail": {"migrationId": "m", "sequence": 9},
    }
    assert b" " not in body  # compact: the exact bytes are what is signed


def test_a_fresh_authentic_delivery_verifies() -> None:
    body = _event().body
    headers = signed_headers(SECRET, "e-1", body, int(START))

    verify_signature(
        SECRET,
        body=body,
        timestamp_header=headers[TIMESTAMP_HEADER],
        signature_header=headers[SIGNATURE_HEADER],
        now=START + 10,
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("tampered body", "no signature matches"),
        ("other secret", "no signature matches"),
        ("replayed later", "the timestamp is outside the replay window"),
        ("timestamp moved", "no signature matches"),
        ("no signature", "missing timestamp or signature header"),
        ("garbled timestamp", "the timestamp is not an integer"),
    ],
)
def test_a_delivery_that_is_not_authentic_or_not_fresh_is_rejected(
    change: str, reason: str
) -> None:
    # GIVEN a signed delivery, altered one way
    body = _event().body
    timestamp, now, secret = str(int(START)), START, SECRET
    header: str | None = signature(SECRET, int(START), body)
    if change == "tampered body":
        body = body.replace(b'"sequence":7', b'"sequence":8')
    elif change == "other secret":
        secret = "another-secret"
    elif change == "replayed later":
        now = START + 301
    elif change == "timestamp moved":
        timestamp = str(int(START) + 60)
    elif change == "no signature":
        header = None
    elif change == "garbled timestamp":
        timestamp = "soon"

    # WHEN the receiver verifies it, THEN it is rejected, saying why
    with pytest.raises(CallbackSignatureError) as raised:
        verify_signature(
            secret, body=body, timestamp_header=timestamp, signature_header=header, now=now
        )
    assert raised.value.reason == reason


def test_any_one_of_several_signatures_is_enough_for_rotation() -> None:
    body = _event().body
    old = signature("old-secret", int(START), body)
    new = signature(SECRET, int(START), body)

    verify_signature(
        SECRET,
        body=body,
        timestamp_header=str(int(START)),
        signature_header=f"{old}, {new}",
        now=START,
    )


def _docs_receiver_example() -> dict[str, Any]:
    text = (REPO_ROOT / "docs" / "CALLBACKS.md").read_text(encoding="utf-8")
    [code] = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    namespace: dict[str, Any] = {"__name__": "callbacks_docs_example"}
    exec(compile(code, "docs/CALLBACKS.md", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


def test_the_receiver_example_in_the_docs_accepts_what_the_sender_signs() -> None:
    # GIVEN the documented receiver, and a delivery from the real sender
    example = _docs_receiver_example()
    transport, clock = ScriptedTransport(), FakeTime()
    event = _event(sequence=5)
    _sender(transport, clock).deliver(CMDB, event, deadline=clock.mono + 30)
    [sent] = transport.sent

    # WHEN it verifies that delivery, a tampered one and a stale one
    verified = example["verify"](SECRET.encode(), sent.headers, sent.body, now=START)
    tampered = sent.body.replace(b'"sequence":5', b'"sequence":6')

    # THEN only the authentic, fresh one passes
    assert verified["detail"]["sequence"] == 5
    with pytest.raises(ValueError, match="bad signature"):
        example["verify"](SECRET.encode(), sent.headers, tampered, now=START)
    with pytest.raises(ValueError, match="replay window"):
        example["verify"](SECRET.encode(), sent.headers, sent.body, now=START + 301)


def test_the_receiver_example_in_the_docs_drops_duplicates_and_late_events() -> None:
    example = _docs_receiver_example()

    def deliver(sequence: int) -> int:
        event = _event(sequence=sequence)
        now = int(datetime.now(UTC).timestamp())
        headers = signed_headers(SECRET, event.event_id, event.body, now)
        status: int = example["handle"](SECRET.encode(), headers, event.body)
        return status

    assert [deliver(s) for s in (3, 3, 2, 4)] == [200, 200, 200, 200]
    assert example["latest_sequence"] == {"mig-0123456789abcdef": 4}


# --- which URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (CMDB, None),
        ("https://cmdb.contoso.com:8443/hooks?token=x", None),
        ("http://cmdb.contoso.com/hooks/wavepilot", "scheme 'http' is not https"),
        ("ftp://cmdb.contoso.com/", "scheme 'ftp' is not https"),
        ("cmdb.contoso.com/hooks", "scheme '(none)' is not https"),
        ("https:///hooks", "no host"),
        ("https://user:pass@cmdb.contoso.com/", "carries credentials"),
        ("https://localhost/hooks", "a loopback host"),
        ("https://127.0.0.1/hooks", "a private, loopback or link-local address"),
        ("https://169.254.169.254/latest/meta-data", "a private, loopback or link-local address"),
        ("https://10.0.1.23/hooks", "a private, loopback or link-local address"),
        ("https://[::1]/hooks", "a private, loopback or link-local address"),
        ("https://cmdb.contoso.com:99999/", "not a valid URL"),
    ],
)
def test_only_https_urls_to_public_hosts_are_acceptable(url: str, problem: str | None) -> None:
    assert callback_url_problem(url) == problem


# --- the retry policy -----------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_and_full_jitter_can_shrink_it_to_zero() -> None:
    policy = RetryPolicy(base_delay_seconds=0.5, max_delay_seconds=4.0)

    assert [policy.backoff_seconds(retry, jitter=1.0) for retry in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        4.0,
    ]
    assert policy.backoff_seconds(3, jitter=0.0) == 0.0
    assert policy.backoff_seconds(3, jitter=0.25) == 0.5


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(200, False), (301, False), (400, False), (404, False), (429, True), (500, True), (503, True)],
)
def test_only_429_and_5xx_answers_are_worth_retrying(status: int, retryable: bool) -> None:
    assert RetryPolicy.retryable_status(status) is retryable


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2025, 12, 12, 23, 0, tzinfo=UTC)

    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-1", now) is None


# --- delivery -------------------------------------------------------------------------------


def test_a_503_is_retried_after_a_backoff_and_the_next_200_delivers() -> None:
    # GIVEN an endpoint that is briefly unavailable
    transport, clock = ScriptedTransport({CMDB: [503, 200]}), FakeTime()

    # WHEN the event is delivered
    outcome = _sender(transport, clock).deliver(CMDB, _event(), deadline=clock.mono + 30)

    # THEN the second attempt delivers it, after one backoff, each attempt signed afresh
    assert outcome == DeliveryOutcome("cmdb.contoso.com", "delivered", 2, 200, "HTTP 200")
    assert clock.sleeps == [0.5]
    first, second = transport.sent
    assert first.headers[TIMESTAMP_HEADER] == str(int(START))
    assert second.headers[TIMESTAMP_HEADER] == str(int(START + 0.5))
    assert _verifies(first, START)
    assert _verifies(second, START)
    assert first.body == second.body
    assert first.headers[EVENT_ID_HEADER] == second.headers[EVENT_ID_HEADER]


def test_a_429_waits_as_long_as_retry_after_asks_within_the_cap() -> None:
    transport = ScriptedTransport({CMDB: [(429, "2"), (429, "120"), 200]})
    clock = FakeTime()

    outcome = _sender(transport, clock).deliver(CMDB, _event(), deadline=clock.mono + 30)

    assert outcome.result == "delivered"
    assert outcome.attempts == 3
    assert clock.sleeps == [2.0, RetryPolicy().max_retry_after_seconds]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_a_final_answer_is_not_retried(status: int) -> None:
    transport, clock = ScriptedTransport({CMDB: [status]}), FakeTime()

    outcome = _sender(transport, clock).deliver(CMDB, _event(), deadline=clock.mono + 30)

    assert outcome == DeliveryOutcome("cmdb.contoso.com", "failed", 1, status, f"HTTP {status}")
    assert clock.sleeps == []
    assert len(transport.sent) == 1


def test_a_dead_endpoint_is_tried_three_times_then_given_up_without_raising() -> None:
    # GIVEN an endpoint whose host refuses every connection
    refused = CallbackTransportError("ConnectionRefusedError: [Errno 111] Connection refused")
    transport = ScriptedTransport({CMDB: [refused, refused, refused, refused]})
    clock = FakeTime()

    # WHEN the event is delivered
    outcome = _sender(transport, clock).deliver(CMDB, _event(), deadline=clock.mono + 30)

    # THEN three attempts, two backoffs, and an outcome instead of an exception
    assert outcome.result == "failed"
    assert outcome.attempts == 3
    assert outcome.status is None
    assert outcome.reason.endswith("Connection refused; gave up")
    assert clock.sleeps == [0.5, 1.0]
    assert len(transport.sent) == 3


def test_the_last_status_is_reported_when_5xx_answers_never_stop() -> None:
    transport, clock = ScriptedTransport({CMDB: [502, 503, 500]}), FakeTime()

    outcome = _sender(transport, clock).deliver(CMDB, _event(), deadline=clock.mono + 30)

    assert outcome == DeliveryOutcome("cmdb.contoso.com", "failed", 3, 500, "HTTP 500; gave up")


def test_a_certificate_that_does_not_verify_is_not_retried() -> None:
    untrusted = CallbackTransportError("TLS verification failed", retryable=False)
    transport, clock = ScriptedTransport({CMDB: [untrusted]}), FakeTime()

    outcome = _sender(transport, clock).deliver(CMDB, _event(), deadline=clock.mono + 30)

    assert (outcome.result, outcome.attempts, clock.sleeps) == ("failed", 1, [])


@pytest.mark.parametrize(
    "url", ["http://cmdb.contoso.com/hooks/wavepilot", "https://169.254.169.254/latest"]
)
def test_an_unacceptable_url_is_refused_and_never_contacted(url: str) -> None:
    transport, clock = ScriptedTransport(), FakeTime()

    outcome = _sender(transport, clock).deliver(url, _event(), deadline=clock.mono + 30)

    assert outcome.result == "refused"
    assert outcome.attempts == 0
    assert transport.sent == []


def test_retries_stop_when_the_deadline_leaves_no_room_for_another_attempt() -> None:
    # GIVEN an endpoint that keeps answering 503 and a deadline 2 s away
    transport, clock = ScriptedTransport({CMDB: [(503, "5"), 503, 503]}), FakeTime()

    # WHEN the event is delivered
    outcome = _sender(transport, clock).deliver(CMDB, _event(), deadline=clock.mono + 2)

    # THEN it gives up instead of sleeping past the deadline, and the attempt was shortened
    assert outcome.result == "failed"
    assert outcome.attempts == 1
    assert outcome.reason == "HTTP 503; out of time"
    assert clock.sleeps == []
    assert transport.sent[0].timeout == 2.0


def test_one_dead_endpoint_does_not_stop_delivery_to_the_others() -> None:
    refused = CallbackTransportError("ConnectionRefusedError")
    transport = ScriptedTransport({BILLING_OPS: [refused, refused, refused]})
    clock = FakeTime()

    outcomes = _sender(transport, clock, jitter=0.0).deliver_all(
        [CMDB, BILLING_OPS, CMDB, "http://plain.contoso.com/"],
        _event(),
        deadline=clock.mono + 30,
    )

    assert [(o.host, o.result) for o in outcomes] == [
        ("cmdb.contoso.com", "delivered"),
        ("billing-ops.contoso.com", "failed"),
        ("plain.contoso.com", "refused"),
    ]
    assert [s.url for s in transport.sent].count(CMDB) == 1  # listed twice, posted once


# --- the https transport against the loopback receiver --------------------------------------


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    running = CallbackReceiver(SECRET).start()
    try:
        yield running
    finally:
        running.stop()


def _post(transport: HttpsCallbackTransport, url: str = CMDB) -> CallbackResponse:
    event = _event(sequence=11)
    now = int(datetime.now(UTC).timestamp())
    return transport.send(
        url, event.body, signed_headers(SECRET, event.event_id, event.body, now), 5
    )


def test_the_transport_posts_over_verified_tls_with_the_urls_host(
    receiver: CallbackReceiver,
) -> None:
    # WHEN a signed event is posted to a URL the route leads to the receiver
    response = _post(HttpsCallbackTransport(receiver.route), BILLING_OPS + "?tenant=ops")

    # THEN it arrives as sent: the URL's host and path, the signature verified
    assert response.status == 204
    [delivery] = receiver.received()
    assert (delivery.host, delivery.path) == (
        "billing-ops.contoso.com",
        "/api/migration-events?tenant=ops",
    )
    assert delivery.verified
    assert delivery.sequence == 11
    assert delivery.headers["Content-Type"] == "application/json"


def test_the_transport_does_not_trust_a_certificate_the_system_cas_did_not_sign(
    receiver: CallbackReceiver,
) -> None:
    # GIVEN a route to the receiver that trusts only the system CAs, as on AWS
    def system_cas_only(host: str, port: int) -> CallbackRoute:
        return CallbackRoute("127.0.0.1", receiver.port, system_tls_context())

    # WHEN posting, THEN TLS verification fails, for good
    with pytest.raises(CallbackTransportError) as raised:
        _post(HttpsCallbackTransport(system_cas_only))
    assert not raised.value.retryable
    assert receiver.received() == []


def test_the_transport_refuses_plain_http_even_when_called_directly(
    receiver: CallbackReceiver,
) -> None:
    with pytest.raises(ValueError, match="https"):
        _post(HttpsCallbackTransport(receiver.route), "http://cmdb.contoso.com/hooks")


def test_a_receiver_playing_dead_refuses_connections_or_answers_503(
    receiver: CallbackReceiver,
) -> None:
    transport = HttpsCallbackTransport(receiver.route)

    receiver.mode = ReceiverMode.UNAVAILABLE
    assert _post(transport) == CallbackResponse(503, "1")
    receiver.mode = ReceiverMode.REFUSING
    with pytest.raises(CallbackTransportError) as raised:
        _post(transport)

    assert raised.value.retryable
    assert [d.answered for d in receiver.received()] == [503]


def test_a_slow_answer_is_recorded_after_its_sender_gave_up_and_settle_waits_for_it(
    receiver: CallbackReceiver,
) -> None:
    # GIVEN a receiver answering later than the sender waits
    receiver.mode = ReceiverMode.SLOW
    receiver.slow_answer_seconds = 0.5
    event = _event(sequence=12)
    headers = signed_headers(SECRET, event.event_id, event.body, int(datetime.now(UTC).timestamp()))

    # WHEN the sender times out
    with pytest.raises(CallbackTransportError) as raised:
        HttpsCallbackTransport(receiver.route).send(CMDB, event.body, headers, 0.1)
    assert raised.value.retryable

    # THEN settle() returns once the late answer is given, and the attempt is on record
    assert receiver.settle(timeout=5)
    [delivery] = receiver.received()
    assert (delivery.sequence, delivery.answered) == (12, 204)
    assert delivery.answer_seconds >= 0.5


def test_the_receiver_answers_401_to_a_forged_signature(receiver: CallbackReceiver) -> None:
    event = _event()
    headers = signed_headers("not-the-secret", event.event_id, event.body, int(START))
    headers[TIMESTAMP_HEADER] = str(int(datetime.now(UTC).timestamp()))

    response = HttpsCallbackTransport(receiver.route).send(CMDB, event.body, headers, 5)

    assert response.status == 401
    [delivery] = receiver.received()
    assert delivery.signature_error == "no signature matches"


# --- the signing secret ---------------------------------------------------------------------


class FakeSecretsProvider(BaseProvider):
    """Powertools' provider contract; counts the Secrets Manager calls it stands in for."""

    def __init__(self, value: str | bytes) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # unannotated in Powertools
        self.value = value
        self.calls: list[str] = []

    def _get(self, name: str, **sdk_options: Any) -> str | bytes:
        self.calls.append(name)
        return self.value

    def _get_multiple(self, path: str, **sdk_options: Any) -> dict[str, str]:
        raise NotImplementedError


ARN = "arn:aws:secretsmanager:us-east-1:444455556666:secret:wavepilot/callbacks-AbCdEf"


def _settings(**values: str) -> CallbackSettings:
    return CallbackSettings.model_validate(values)


def test_locally_the_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", "from-the-env")
    monkeypatch.delenv("CALLBACK_SIGNING_SECRET_ARN", raising=False)

    assert SigningSecretSource(CallbackSettings()).current() == "from-the-env"


def test_on_aws_the_secret_comes_from_secrets_manager_and_is_cached() -> None:
    # GIVEN an ARN (which wins over a local value) and a provider standing in for AWS
    provider = FakeSecretsProvider(b"from-secrets-manager")
    source = SigningSecretSource(
        _settings(CALLBACK_SIGNING_SECRET_ARN=ARN, CALLBACK_SIGNING_SECRET="local"),
        provider_factory=lambda: provider,
    )

    # WHEN it is read for three invocations
    values = {source.current() for _ in range(3)}

    # THEN Secrets Manager was asked once
    assert values == {"from-secrets-manager"}
    assert provider.calls == [ARN]


@pytest.mark.parametrize(
    "values",
    [{}, {"CALLBACK_SIGNING_SECRET": ""}, {"CALLBACK_SIGNING_SECRET_ARN": ARN}],
)
def test_without_a_usable_secret_nothing_is_sent_unsigned(values: dict[str, str]) -> None:
    source = SigningSecretSource(
        _settings(**values), provider_factory=lambda: FakeSecretsProvider("")
    )

    with pytest.raises(SigningSecretMissingError):
        source.current()


# --- the handler ----------------------------------------------------------------------------


def _wave_2_request() -> MigrationRequest:
    path = REPO_ROOT / "manifests" / "waves" / "wave-2.yaml"
    result = validate_files([ManifestFile(str(path), path.read_text())], now=NOW)
    [vm] = [vm for vm in result.vms if vm.effective_vm.target_vm_name == "billing-app-prod-01"]
    return request_for(vm, commit="a" * 40, author="Ann")


def _seed_request() -> MigrationRequest:
    body = (Path(__file__).parent / "events" / "seed_quick_start_request.json").read_text()
    return MigrationRequest.model_validate_json(body)


def _recorded(request: MigrationRequest) -> MigrationRequest:
    from orchestration.adapters import aws
    from orchestration.settings import settings

    store = MigrationStore(aws.state_table(settings().table_name, settings().aws_region))
    store.record_request(request, request.revision or "0" * 16, "corr-1", SYSTEM_CLOCK.now())
    return request


def _bus_event(
    request: MigrationRequest, detail_type: str, sequence: int = 17, *, routed: bool = True
) -> dict[str, Any]:
    """The event as the pipeline puts it; ``routed=False``: as it was put before routing."""
    identity: dict[str, Any] = {
        "migration_id": request.migration_id,
        "wave": request.wave,
        "app_name": request.app_name,
        "target_vm_name": request.target_vm_name,
        "correlation_id": "corr-1",
        "sequence": sequence,
        "timestamp": datetime(2025, 12, 12, 23, 40, tzinfo=UTC),
        "routing": routing_of(Identity.of(request, "corr-1")) if routed else None,
    }
    detail: EventDetail = (
        MigrationCompleted.model_validate(
            {**identity, "target_instance_id": "i-0abc", "duration_seconds": 5400.0}
        )
        if detail_type == "MigrationCompleted"
        else MigrationRequested.model_validate(
            {**identity, "revision": "0" * 16, "request": request}
        )
    )
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "wavepilot.migrations",
        "account": "123456789012",
        "time": "2025-12-12T23:40:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail.model_dump(mode="json", by_alias=True),
    }


@pytest.fixture
def transport(
    emulated_aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ScriptedTransport]:
    monkeypatch.setenv("CALLBACK_SIGNING_SECRET", SECRET)
    monkeypatch.delenv("CALLBACK_SIGNING_SECRET_ARN", raising=False)
    wiring.reset()
    scripted = ScriptedTransport()
    wiring.use_callback_transport(scripted)
    try:
        yield scripted
    finally:
        wiring.use_callback_transport(None)
        wiring.reset()


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = callback_handler.handler(
        event, FakeLambdaContext(function_name="callback_handler")
    )
    return result


def test_a_status_event_is_posted_signed_to_every_callback_url_the_event_names(
    transport: ScriptedTransport,
) -> None:
    # GIVEN an event of a wave-2 migration routed to the two callback URLs of its manifest,
    # and no record of the migration in the table (the handler does not read it)
    request = _wave_2_request()
    event = _bus_event(request, "MigrationCompleted", sequence=17)
    assert event["detail"]["routing"]["callbackUrls"] == [CMDB, BILLING_OPS]

    # WHEN its MigrationCompleted event reaches the handler
    result = _invoke(event)

    # THEN both URLs receive the event, signed, with its id, type, time and sequence
    assert result == {"eventId": event["id"], "delivered": 2, "failed": 0, "refused": 0}
    assert [s.url for s in transport.sent] == [CMDB, BILLING_OPS]
    for sent in transport.sent:
        assert _verifies(sent, datetime.now(UTC).timestamp())
        assert sent.headers[EVENT_ID_HEADER] == event["id"]
        body = json.loads(sent.body)
        # AND the routing stays in AWS: no receiver learns another's URL
        assert body == {
            "id": event["id"],
            "detail-type": "MigrationCompleted",
            "time": "2025-12-12T23:40:00Z",
            "detail": {k: v for k, v in event["detail"].items() if k != "routing"},
        }
        assert body["detail"]["sequence"] == 17
        assert "contoso.com" not in json.dumps(body["detail"])


def test_an_event_from_before_routing_is_routed_by_the_migration_record(
    transport: ScriptedTransport,
) -> None:
    # GIVEN a recorded wave-2 migration and an event put before events carried routing
    request = _recorded(_wave_2_request())
    event = _bus_event(request, "MigrationCompleted", routed=False)
    assert event["detail"]["routing"] is None

    # WHEN it reaches the handler (an EventBridge retry across the deployment)
    result = _invoke(event)

    # THEN the record's callback URLs receive it, as before routing
    assert (result["delivered"], result["failed"]) == (2, 0)
    assert [s.url for s in transport.sent] == [CMDB, BILLING_OPS]


def test_the_rule_sends_only_events_of_migrations_with_callback_urls() -> None:
    # GIVEN the callback rule's pattern, as the embedded system and Terraform create it
    pattern = EventPattern.load(json.dumps(callback_event_pattern("wavepilot.migrations")))

    def matches(request: MigrationRequest, detail_type: str = "MigrationCompleted") -> bool:
        event: Any = _bus_event(request, detail_type)
        return bool(pattern.matches_event(event))

    # THEN a status event of a migration with callback URLs matches
    assert matches(_wave_2_request())
    # AND neither a migration without any (a hand-written request) nor the request itself
    assert not matches(_seed_request())
    assert not matches(_wave_2_request(), "MigrationRequested")


def test_a_failing_endpoint_is_logged_and_counted_but_never_fails_the_invocation(
    transport: ScriptedTransport, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN one endpoint that answers 404
    request = _recorded(_wave_2_request())
    transport.script[BILLING_OPS] = [404]

    # WHEN an event is handled
    result = _invoke(_bus_event(request, "MigrationCompleted"))

    # THEN the handler returns normally and logs the failure with the host, not the path
    assert (result["delivered"], result["failed"]) == (1, 1)
    failures = [r for r in caplog.records if r.getMessage() == "CALLBACK_FAILED"]
    assert [
        (vars(f)["callback_host"], vars(f)["http_status"], vars(f)["attempts"]) for f in failures
    ] == [("billing-ops.contoso.com", 404, 1)]
    assert all("/api/migration-events" not in str(vars(r)) for r in caplog.records)


def test_migration_requested_is_never_posted(transport: ScriptedTransport) -> None:
    request = _recorded(_wave_2_request())

    result = _invoke(_bus_event(request, "MigrationRequested", sequence=1))

    assert result["skipped"] == "not a callback event"
    assert transport.sent == []
    assert "MigrationRequested" not in CALLBACK_DETAIL_TYPES


@pytest.mark.parametrize("routed", [True, False], ids=["routed", "before routing"])
def test_a_request_without_a_spec_has_no_callbacks(
    transport: ScriptedTransport, routed: bool
) -> None:
    request = _recorded(_seed_request())

    result = _invoke(_bus_event(request, "MigrationCompleted", routed=routed))

    assert result["delivered"] == 0
    assert transport.sent == []


def test_an_event_from_before_routing_of_an_unknown_migration_sends_nothing(
    transport: ScriptedTransport,
) -> None:
    result = _invoke(_bus_event(_wave_2_request(), "MigrationCompleted", routed=False))

    assert (result["delivered"], result["failed"]) == (0, 0)
    assert transport.sent == []


def test_a_missing_signing_secret_is_the_handlers_own_fault_and_raises(
    transport: ScriptedTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _recorded(_wave_2_request())
    monkeypatch.delenv("CALLBACK_SIGNING_SECRET")
    wiring.reset()

    with pytest.raises(SigningSecretMissingError):
        _invoke(_bus_event(request, "MigrationCompleted"))
    assert transport.sent == []
