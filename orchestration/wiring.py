"""The pipeline's composition root: every collaborator its handlers use, built here only.

Each Lambda handler (``orchestration/handlers/``) asks this module for what it needs; nothing
else in the pipeline builds adapters or services. Collaborators are built once per process
(one Lambda container), on first use, never at import: tests and the embedded default set the
environment first. Powertools' idempotency persistence layer is built the same way.

Public interface (the operator CLI and the Slack bot's wiring, ``bot/wiring.py``, use these
too): ``clock``, ``store``, ``reporter``, ``lanes``, ``steps``, ``approvals``, ``rollbacks``.
MGN and EC2 have no hub client: every call goes to a migration's lane (its target account and
Region) through ``lanes()``, ``orchestration/adapters/lanes.py``.

Swapping parts (the embedded default, tests): the ``use_*`` hooks below replace one part for
the process and forget what was built with the old one; ``None`` restores the AWS default.
``reset()`` forgets everything built (clients and settings included) and keeps the hooks'
choices: call it after changing the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
)

from orchestration.adapters import aws
from orchestration.adapters.callback_transport import CallbackTransport, HttpsCallbackTransport
from orchestration.adapters.dead_letters import DeadLetterQueue
from orchestration.adapters.event_bus import EventBus
from orchestration.adapters.github_rest import DEFAULT_REST_OPTIONS, GitHubRest, RestOptions
from orchestration.adapters.health import AddressResolver, HealthProber, direct
from orchestration.adapters.lanes import LaneSessions
from orchestration.adapters.launch_ledger import DynamoLaunchLedger
from orchestration.adapters.parks import ParkStore
from orchestration.adapters.secrets import (
    CallbackSettings,
    GitHubSettings,
    GitHubTokenSource,
    SigningSecretSource,
)
from orchestration.adapters.state_store import MigrationStore
from orchestration.adapters.stepfunctions import StepFunctionsAdapter
from orchestration.adapters.wave_control import WaveControlStore
from orchestration.adapters.wave_deployments import WaveDeploymentStore
from orchestration.clock import SYSTEM_CLOCK, Clock
from orchestration.gitops.github_deployments import WaveDeployments
from orchestration.gitops.progress_reporter import WaveProgressReporter
from orchestration.gitops.wave_progress import Links
from orchestration.pipeline.approvals import ApprovalService
from orchestration.pipeline.batched_launches import BatchedLaunches
from orchestration.pipeline.finalize_now import FinalizeNowService
from orchestration.pipeline.manual_rollback import RollbackService
from orchestration.pipeline.mgn_grouping_sync import MgnGroupingSync
from orchestration.pipeline.parking import ParkService
from orchestration.pipeline.removal import RemovalService
from orchestration.pipeline.reporter import StatusReporter
from orchestration.pipeline.steps import MigrationSteps
from orchestration.pipeline.wave_control import WaveControlService
from orchestration.settings import settings

__all__ = [
    "approvals",
    "callback_signing_secret",
    "callback_transport",
    "clock",
    "github_progress",
    "github_progress_dead_letters",
    "github_settings",
    "ingress_idempotency",
    "ingress_persistence",
    "lanes",
    "launches",
    "removals",
    "reporter",
    "request_dead_letters",
    "reset",
    "rollbacks",
    "stepfunctions",
    "steps",
    "store",
    "use_callback_transport",
    "use_clock",
    "use_github_options",
    "use_health_address_resolver",
]

# --- the parts the embedded default swaps ------------------------------------------------

_clock: Clock = SYSTEM_CLOCK
_health_address_resolver: AddressResolver = direct
_callback_transport: CallbackTransport | None = None
_github_options: RestOptions = DEFAULT_REST_OPTIONS


def use_clock(clock: Clock | None) -> None:
    """The clock every service reads "now" from (a simulated one for a rehearsal); ``None``
    restores real time."""
    global _clock  # noqa: PLW0603 - a process-wide hook, set once at start
    _clock = clock or SYSTEM_CLOCK
    reset()


def use_health_address_resolver(resolver: AddressResolver | None) -> None:
    """Where health checks connect for an instance's address. The embedded default maps
    emulated instances to loopback listeners; on AWS the address is used as it is."""
    global _health_address_resolver  # noqa: PLW0603 - a process-wide hook, set once at start
    _health_address_resolver = resolver or direct
    reset()


def use_callback_transport(transport: CallbackTransport | None) -> None:
    """How callbacks reach their hosts. The embedded default routes them to its loopback
    receiver; tests use fakes; ``None`` restores the real transport to the real hosts."""
    global _callback_transport  # noqa: PLW0603 - a process-wide hook, set once at start
    _callback_transport = transport
    reset()


def use_github_options(options: RestOptions | None) -> None:
    """How patient the GitHub client is (the embedded default's stand-in answers at once, so
    it spaces nothing); ``None`` restores GitHub's pacing."""
    global _github_options  # noqa: PLW0603 - a process-wide hook, set once at start
    _github_options = options or DEFAULT_REST_OPTIONS


# --- what the handlers ask for -----------------------------------------------------------


def clock() -> Clock:
    return _clock


@cache
def store() -> MigrationStore:
    config = settings()
    return MigrationStore(aws.state_table(config.table_name, config.aws_region))


@cache
def _event_bus() -> EventBus:
    return EventBus(aws.events(), settings().event_bus_name)


@cache
def reporter() -> StatusReporter:
    return StatusReporter(store(), _event_bus(), clock())


def _hub_account_id() -> str:
    """``HUB_ACCOUNT_ID`` (Terraform and the embedded default set it), else STS's answer."""
    configured = settings().hub_account_id
    if configured:
        return configured
    return str(aws.sts().get_caller_identity()["Account"])


@cache
def lanes() -> LaneSessions:
    """Role sessions and MGN/EC2/IAM adapters per lane (target account + Region), cached."""
    config = settings()
    return LaneSessions(
        sts=aws.sts,
        client_factory=aws.client_with_credentials,
        role_name=config.target_role_name,
        hub_account_id=cache(_hub_account_id),
        default_region=config.mgn_region,
        clock=clock(),
        partition=aws.partition(config.aws_region),
    )


@cache
def steps() -> MigrationSteps:
    return MigrationSteps(
        lanes=lanes(),
        prober=HealthProber(_health_address_resolver),
        reporter=reporter(),
        clock=clock(),
        wave_controls=wave_controls(),
        migrations=store(),
        finalize_requests=store(),
        grouping=grouping(),
    )


@cache
def grouping() -> MgnGroupingSync:
    """MGN's waves and applications kept equal to the manifests (each lane's)."""
    return MgnGroupingSync(lanes(), clock())


@cache
def removals() -> RemovalService:
    """What a VM's removal from the manifests does (``publish --cancel-removed``)."""
    return RemovalService(
        store=store(),
        rollbacks=rollbacks(),
        executions=stepfunctions(),
        reporter=reporter(),
        lanes=lanes(),
        grouping=grouping(),
        clock=clock(),
    )


@cache
def wave_controls() -> WaveControlStore:
    """Each wave's pause or cancel (the state table)."""
    config = settings()
    return WaveControlStore(aws.state_table(config.table_name, config.aws_region))


@cache
def wave_control() -> WaveControlService:
    return WaveControlService(wave_controls(), store(), rollbacks(), clock())


@cache
def launches() -> BatchedLaunches:
    """Batched launches: requests to each lane's coordinator, and the coordinator's runs."""
    config = settings()
    table = aws.state_table(config.table_name, config.aws_region)
    return BatchedLaunches(
        lanes=lanes(),
        ledger_for=lambda lane: DynamoLaunchLedger(table, lane),
        tasks=stepfunctions(),
        coordinator_arn=config.launch_coordinator_arn,
        reporter=reporter(),
        clock=clock(),
        wave_controls=wave_controls(),
        migrations=store(),
    )


@cache
def stepfunctions() -> StepFunctionsAdapter:
    return StepFunctionsAdapter(aws.stepfunctions())


@cache
def approvals() -> ApprovalService:
    return ApprovalService(store(), stepfunctions(), reporter(), clock())


@cache
def rollbacks() -> RollbackService:
    config = settings()
    return RollbackService(
        store(), stepfunctions(), config.state_machine_arn, clock(), config.default_approvers
    )


@cache
def finalize_now() -> FinalizeNowService:
    """An operator's "finalize now" of a held cutover (finalizeAfter)."""
    return FinalizeNowService(store(), clock(), settings().default_approvers)


@cache
def parks() -> ParkService:
    """Parked migrations (``onFailure: park``): Retry or Roll back by the wave's operators."""
    config = settings()
    return ParkService(
        ParkStore(aws.state_table(config.table_name, config.aws_region)),
        store(),
        stepfunctions(),
        reporter(),
        clock(),
        config.default_approvers,
    )


@cache
def request_dead_letters() -> DeadLetterQueue:
    """The request queue's DLQ, where the ingress sends what can never succeed."""
    url = settings().dead_letter_queue_url
    if not url:
        raise RuntimeError("REQUEST_DLQ_URL is not set: rejected requests would be lost")
    return DeadLetterQueue(aws.sqs(), url)


@cache
def ingress_idempotency() -> IdempotencyConfig:
    """Requests are idempotent on their business keys, ``migrationId`` + ``revision``."""
    return IdempotencyConfig(
        event_key_jmespath="[migrationId, revision]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings().idempotency_days * 86_400,
    )


@cache
def ingress_persistence() -> DynamoDBPersistenceLayer:
    """Powertools' idempotency records, in the state table (``idempotency#ingress_handler``)."""
    return DynamoDBPersistenceLayer(
        table_name=settings().table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="idempotency#ingress_handler",
        boto3_client=aws.dynamodb(),
    )


@cache
def callback_signing_secret() -> SigningSecretSource:
    return SigningSecretSource(CallbackSettings())


@cache
def callback_transport() -> CallbackTransport:
    return _callback_transport or HttpsCallbackTransport()


@cache
def github_settings() -> GitHubSettings:
    return GitHubSettings()


@cache
def _github_token() -> GitHubTokenSource:
    return GitHubTokenSource(github_settings())


@cache
def _wave_deployments() -> WaveDeploymentStore:
    config = settings()
    return WaveDeploymentStore(aws.state_table(config.table_name, config.aws_region))


@cache
def github_progress_dead_letters() -> DeadLetterQueue | None:
    """report_github_progress's DLQ (``GITHUB_PROGRESS_DLQ_URL``), for bodies that are no
    status event; None when not set (they are then logged and dropped)."""
    url = github_settings().dead_letter_queue_url
    return DeadLetterQueue(aws.sqs(), url) if url else None


@contextmanager
def github_progress() -> Iterator[WaveProgressReporter | None]:
    """The reporter of waves' progress on GitHub, or None when it is not configured
    (``GitHubSettings.configured``). Its client is built on the token as it is now (the
    Secrets Manager read is cached, so a rotated token is picked up) and closed after use."""
    config = github_settings()
    if not config.configured:
        yield None
        return
    client = GitHubRest(_github_token().current(), config.api_url, _github_options, clock())
    try:
        yield WaveProgressReporter(
            store(),
            _wave_deployments(),
            WaveDeployments(client, config.repository),
            Links(settings().aws_region, settings().state_machine_arn),
        )
    finally:
        client.close()


def reset() -> None:
    """Forget every collaborator built, the boto3 clients and the settings (not the hooks)."""
    for built in (
        store,
        _event_bus,
        reporter,
        lanes,
        steps,
        grouping,
        removals,
        launches,
        stepfunctions,
        approvals,
        rollbacks,
        parks,
        finalize_now,
        wave_controls,
        wave_control,
        request_dead_letters,
        ingress_idempotency,
        ingress_persistence,
        callback_signing_secret,
        callback_transport,
        github_settings,
        github_progress_dead_letters,
        _github_token,
        _wave_deployments,
    ):
        built.cache_clear()
    aws.reset()
