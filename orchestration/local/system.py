"""The embedded default: the whole pipeline on one machine, every part real, on loopback.

- moto (with the runtime layer in ``orchestration/local/runtime``) runs SQS, EventBridge,
  DynamoDB, Lambda (dispatching in-process to the real handlers), Step Functions (executing
  the real ASL file), EC2 and IAM;
- the MGN emulator speaks MGN's wire protocol to the real boto3 ``mgn`` client;
- launched instances' services are stood in for on loopback, so health checks are real.

Resources are created by the names in ``orchestration/naming.py``, which Terraform uses too.
"""

from __future__ import annotations

import io
import json
import math
import os
import secrets
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from bot import wiring as bot_wiring
from orchestration import wiring
from orchestration.adapters.callback_transport import HttpsCallbackTransport
from orchestration.adapters.github_rest import RestOptions
from orchestration.events import EVENT_SOURCE, slack_event_patterns
from orchestration.gitops.wave_progress import progress_event_pattern
from orchestration.health_checks import HealthCheckSpec
from orchestration.local.api_calls import ApiCallCounter
from orchestration.local.callback_receiver import CallbackReceiver
from orchestration.local.estate import (
    HUB_LANE,
    Estate,
    assumed_role_sessions,
    ensure_role,
    lane_of_spec,
    open_account,
    provision_lane_estates,
)
from orchestration.local.mgn import (
    SOURCE_SERVER_ID_TAG,
    AssumedRoleEc2Ports,
    Boto3Ec2LaunchPort,
    EmulatorSettings,
    LaneId,
    MgnEmulator,
    MgnFleet,
    SimulatedClock,
)
from orchestration.local.mgn.ec2_port import MGN_SERVICE_ROLE_NAME
from orchestration.local.provision import REQUEST_MAX_RECEIVE_COUNT, ProvisionedResources, provision
from orchestration.local.runtime import LOCAL_ACCOUNT_ID, LOCAL_REGION, LocalAwsRuntime
from orchestration.local.slack import BoltHttpServer, SlackClock, SlackStandIn
from orchestration.local.virtual_clock import VirtualClock
from orchestration.local.vm_standins import VmStandIns
from orchestration.naming import (
    BOT_FUNCTIONS,
    FUNCTIONS,
    GITHUB_PROGRESS_MESSAGE_GROUP,
    SCHEDULED_FUNCTIONS,
    SLACK_PRIORITY_MESSAGE_GROUP,
    SLACK_STATUS_BATCH_SIZE,
    SLACK_STATUS_BATCHING_WINDOW_SECONDS,
    ResourceNames,
    handler_path,
)
from orchestration.pipeline.callbacks import callback_event_pattern
from orchestration.pipeline.spec import MigrationSpec
from orchestration.statemachine import (
    LaunchSettings,
    Timings,
    render_coordinator_definition,
    render_definition,
)

# terraform/locals.tf lambda_reserved_concurrency.slack_notifier: one notifier at a time, so
# its in-process pacing sees every Slack call and no two batches fold one thread at once.
NOTIFIER_RESERVED_CONCURRENCY = 1

# Who approves hand-written requests (no manifest, no approvers) on the embedded default.
LOCAL_APPROVER = "U0LOCALOPS01"
# The simulated directory: every Slack user group a manifest names has one member, the
# migration lead. (With the Slack bot, usergroups.users.list answers this instead.)
LOCAL_GROUP_MEMBER = "U0LOCALLEAD1"


# The embedded Slack workspace: the bot posts every thread of a migration without a wave
# channel (hand-written requests) here.
LOCAL_DEFAULT_CHANNEL = "C0WAVEPILOT"
# The embedded Slack's clock runs as many times faster than real time as the local pipeline
# is compressed: its polls wait 1 s where AWS's wait 60 s (Timings). Slack's rate limits
# refill on that clock and the bot paces and honours Retry-After on it, so Slack's budget per
# migration is what it would be on AWS (MGN's clock, at 3600x, compresses far more).
LOCAL_SLACK_SPEED = float(
    Timings.aws().poll_initial_seconds // Timings.local().poll_initial_seconds
)


def local_group_membership(user: str, group: str) -> bool:
    return user == LOCAL_GROUP_MEMBER and group.startswith("S")


LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
STATES_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


# MGN's service-linked role trusts MGN (AWS creates it at InitializeService).
MGN_SERVICE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "mgn.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _placeholder_zip() -> bytes:
    """Lambda needs a package; in-process dispatch runs the installed code instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "dispatched in-process to the installed package\n")
    return buffer.getvalue()


CLOCK_MODES = ("scaled", "simulated")
# A GitHub on loopback (a stand-in) answers at once: no spacing, short waits.
LOCAL_GITHUB_OPTIONS = RestOptions(
    retries=3,
    backoff_factor=0.05,
    secondary_rate_wait=1.0,
    max_rate_limit_wait=5.0,
    seconds_between_writes=0.0,
    timeout=10.0,
)


@dataclass(frozen=True)
class LocalGitHub:
    """Where the system shows each wave's progress (``report_github_progress``): a GitHub
    API (a stand-in on loopback in tests), the repository and a token. Without it the
    function is not wired, as on AWS without ``var.github_repository``."""

    api_url: str
    repository: str
    token: str = "ghs_local"  # noqa: S105 - the stand-in accepts any token

    @property
    def environment(self) -> dict[str, str]:
        return {
            "GITHUB_API_URL": self.api_url,
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_TOKEN": self.token,
        }


@dataclass
class SystemOptions:
    names: ResourceNames = field(default_factory=ResourceNames)
    timings: Timings = field(default_factory=Timings.local)
    # How MGN launches start: "per-vm" (each execution its own job) or "batched" (each lane's
    # launch coordinator packs them into jobs). None: the design's local defaults
    # (LaunchSettings.local(launch_design)), quotas and linger included.
    launch_design: str = "per-vm"
    launch: LaunchSettings | None = None
    mgn_speed: float = 3600.0  # simulated seconds per real second
    mgn_settings: EmulatorSettings = field(default_factory=EmulatorSettings)
    slack_speed: float = LOCAL_SLACK_SPEED
    # The Slack status queue's batching window (seconds of the system's clock: simulated
    # seconds on the simulated one), terraform's default unless said.
    slack_status_batching_window_seconds: float = SLACK_STATUS_BATCHING_WINDOW_SECONDS
    # "scaled": MGN and Slack on their own clocks at mgn_speed/slack_speed x wall time, the
    # rest in real time. "simulated": one VirtualClock drives every wait (Step Functions,
    # MGN, Slack, the bot, the driver) and the speed options are ignored (docs/LOCAL_RUNTIME.md).
    clock: str = "scaled"
    # The simulated clock's first instant (clock="simulated"); the real now by default.
    clock_start: datetime | None = None
    # Progress on GitHub: None leaves report_github_progress unwired.
    github: LocalGitHub | None = None

    def __post_init__(self) -> None:
        if self.clock not in CLOCK_MODES:
            raise ValueError(f"clock must be one of {CLOCK_MODES}, got {self.clock!r}")
        if self.launch is not None and self.launch.design != self.launch_design:
            raise ValueError("launch.design and launch_design disagree")

    @property
    def launch_settings(self) -> LaunchSettings:
        return self.launch or LaunchSettings.local(self.launch_design)


class EmbeddedSystem:
    """Start with ``with EmbeddedSystem() as system:``; ``seed()`` the VMs, then publish."""

    def __init__(self, options: SystemOptions | None = None) -> None:
        self.options = options or SystemOptions()
        self.names = self.options.names
        self._runtime: LocalAwsRuntime | None = None
        self._saved_environment: dict[str, str | None] = {}
        self.mgn: MgnEmulator | None = None  # the hub lane of `mgn_fleet`
        self.mgn_fleet: MgnFleet | None = None  # every MGN lane, on one endpoint
        self.standins: VmStandIns | None = None
        self.callbacks: CallbackReceiver | None = None  # every callback URL's stand-in
        self.resources: ProvisionedResources | None = None
        self.state_machine_arn = ""
        self.launch_coordinator_arn = ""
        self.function_arns: dict[str, str] = {}
        self._specs_by_server: dict[str, MigrationSpec] = {}
        self.estate: Estate | None = None  # the hub lane's, if a VM targets it
        self.estates: dict[LaneId, Estate] = {}  # every lane's
        self.lane_of_server: dict[str, LaneId] = {}  # source server ID -> its lane
        self._lane_ec2: dict[LaneId, Any] = {}  # EC2 of each lane (the landing zone's view)
        self._lambda_role_arn = ""
        self.api_calls: ApiCallCounter | None = None
        self.slack: SlackStandIn | None = None  # the workspace: channels, threads, users
        self._bolt: BoltHttpServer | None = None  # the bot's Slack app, served on loopback
        self._slack_channels: set[str] = set()
        self.clock: VirtualClock | None = None  # the simulated clock (clock="simulated")
        self._clock_participation: AbstractContextManager[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> EmbeddedSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> EmbeddedSystem:
        if self.options.clock == "simulated":
            self._start_virtual_clock()
        self.api_calls = ApiCallCounter().start()
        self._runtime = LocalAwsRuntime().start()
        try:
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_parts(self) -> None:
        names = self.names
        self.resources = provision(
            names,
            sqs=self.client("sqs"),
            dynamodb=self.client("dynamodb"),
            events=self.client("events"),
        )
        ec2 = self.client("ec2")
        clock = self._emulator_clock(self.options.mgn_speed)
        settings = self.options.mgn_settings
        if self.clock is not None:  # job transitions are applied by the MGN requests that look
            settings = replace(settings, background_settle_seconds=None)
        # Lanes other than the hub launch into their own moto account and Region.
        self.mgn_fleet = MgnFleet(
            AssumedRoleEc2Ports(),
            hub_ec2=Boto3Ec2LaunchPort(ec2),
            clock=clock,
            settings=settings,
        )
        self.mgn = self.mgn_fleet.hub
        mgn_endpoint = self.mgn_fleet.start()
        self.slack = SlackStandIn(
            bot_token=f"xoxb-local-{secrets.token_hex(12)}",
            signing_secret=secrets.token_hex(16),
            speed=self.slack_speed,
            clock=None if self.clock is None else SlackClock(simulated=self._emulator_clock(1.0)),
        ).start()
        self._add_slack_directory()
        self.state_machine_arn = (
            f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stateMachine:{names.state_machine}"
        )
        self.launch_coordinator_arn = (
            f"arn:aws:states:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stateMachine:"
            f"{names.launch_coordinator}"
        )
        self._set_environment(
            {
                "EVENTBRIDGE_BUS_NAME": self.resources.event_bus_name,
                "DYNAMODB_TABLE_NAME": self.resources.table_name,
                "SQS_QUEUE_URL": self.resources.request_queue_url,
                "REQUEST_DLQ_URL": self.resources.dead_letter_queue_url,
                "STATE_MACHINE_ARN": self.state_machine_arn,
                "LAUNCH_COORDINATOR_ARN": self.launch_coordinator_arn,
                "MGN_REGION": LOCAL_REGION,
                "HUB_ACCOUNT_ID": LOCAL_ACCOUNT_ID,
                "TARGET_ROLE_NAME": names.target_role,
                "TARGET_LANES": HUB_LANE.label,
                "AWS_ENDPOINT_URL_MGN": mgn_endpoint,
                "POWERTOOLS_METRICS_NAMESPACE": "WavepilotLocal",
                "POWERTOOLS_SERVICE_NAME": "wavepilot",
                "DEFAULT_APPROVERS": LOCAL_APPROVER,
                # No CloudWatch here: Powertools would print every EMF metric blob to stdout.
                "POWERTOOLS_METRICS_DISABLED": "true",
                # Per run, so a signature from another run never verifies.
                "CALLBACK_SIGNING_SECRET": secrets.token_urlsafe(32),
                "SLACK_BOT_TOKEN": self.slack.workspace.bot_token,
                "SLACK_SIGNING_SECRET": self.slack.signing_secret,
                "SLACK_API_URL": self.slack.api_url,
                "SLACK_DEFAULT_CHANNEL": LOCAL_DEFAULT_CHANNEL,
                "SLACK_TIME_SCALE": str(self.slack_speed),
                "SLACK_STATUS_DLQ_URL": self.resources.slack_status_dead_letter_queue_url,
                "SLACK_PRIORITY_DLQ_URL": self.resources.slack_priority_dead_letter_queue_url,
                "SLACK_STATUS_QUEUE_URL": self.resources.slack_status_queue_url,
                "SLACK_PRIORITY_QUEUE_URL": self.resources.slack_priority_queue_url,
                "SLACK_MAX_RECEIVES": str(REQUEST_MAX_RECEIVE_COUNT),
                **self._github_environment(),
            }
        )
        if self.options.github is not None:
            wiring.use_github_options(LOCAL_GITHUB_OPTIONS)
        self._forget_cached_clients()
        self._create_functions()
        # The hub is a lane like any other (hand-written requests, TARGET_LANES' default):
        # it gets the Wavepilot role too.
        self.prepare_account(LOCAL_ACCOUNT_ID)
        self._create_state_machine()
        self._create_rules()
        self.client("lambda").create_event_source_mapping(
            EventSourceArn=self.resources.request_queue_arn,
            FunctionName=self.function_arns["ingress_handler"],
            BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )
        # The notifier reads both of its queues, each with a poller of its own (and so a
        # busy probe of its own on the virtual clock), one batch at a time in all (reserved
        # concurrency 1, as on AWS): a batch of approvals never waits for the status queue's
        # backlog, only at most for the one batch in hand. The status queue's batches may be
        # filled within a window (terraform/lambda.tf; none by default); the priority
        # queue's go at once.
        self.client("lambda").put_function_concurrency(
            FunctionName=self.function_arns["slack_notifier"],
            ReservedConcurrentExecutions=NOTIFIER_RESERVED_CONCURRENCY,
        )
        self.client("lambda").create_event_source_mapping(
            EventSourceArn=self.resources.slack_status_queue_arn,
            FunctionName=self.function_arns["slack_notifier"],
            BatchSize=SLACK_STATUS_BATCH_SIZE,
            MaximumBatchingWindowInSeconds=math.ceil(
                self.options.slack_status_batching_window_seconds
            ),
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )
        self.client("lambda").create_event_source_mapping(
            EventSourceArn=self.resources.slack_priority_queue_arn,
            FunctionName=self.function_arns["slack_notifier"],
            BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )
        if self.options.github is not None:
            self._wire_github_progress()
        assert self._runtime is not None
        self._runtime.check_function_environments()
        self._runtime.initialize_handlers()
        self._lane_ec2[HUB_LANE] = ec2
        self.standins = VmStandIns(
            self._runtime.instance_tag_at, self._checks_for_server, SOURCE_SERVER_ID_TAG
        )
        wiring.use_health_address_resolver(self.standins.resolve)
        self._start_callback_receiver()
        self._start_slack_app()

    # --- the clock -----------------------------------------------------------------------

    @property
    def slack_speed(self) -> float:
        """Slack seconds per second of the system's time (1 on the simulated clock)."""
        return 1.0 if self.options.clock == "simulated" else self.options.slack_speed

    def _start_virtual_clock(self) -> None:
        """Every wait on one VirtualClock; this (the driver's) thread is counted on it."""
        self.clock = VirtualClock(self.options.clock_start).start()
        wiring.use_clock(self.clock)
        self._clock_participation = self.clock.participating()
        self._clock_participation.__enter__()

    def _emulator_clock(self, speed: float) -> SimulatedClock:
        """An emulator's clock: ``speed`` x wall time, or following the virtual clock."""
        if self.clock is None:
            return SimulatedClock(speed=speed)
        return SimulatedClock(speed=1.0, start=self.clock.now(), real_time=self.clock.monotonic)

    def _stop_virtual_clock(self) -> None:
        if self._clock_participation is not None:
            self._clock_participation.__exit__(None, None, None)
            self._clock_participation = None
        if self.clock is not None:
            self.clock.close()
            wiring.use_clock(None)

    def stop(self) -> None:
        if self._bolt is not None:
            self._bolt.stop()
            self._bolt = None
        if self.standins is not None:
            self.standins.stop()
        if self.mgn_fleet is not None:
            self.mgn_fleet.stop()
        if self._runtime is not None:
            self._runtime.stop()
            self._runtime = None
        if self.callbacks is not None:
            # After the runtime, so no invocation is left mid-delivery. The transport keeps
            # routing to the stopped receiver: a local run never posts to the real hosts.
            self.callbacks.stop()
            self.callbacks = None
        for key, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environment.clear()
        wiring.use_github_options(None)
        self._forget_cached_clients()
        if self.slack is not None:
            self.slack.stop()
        if self.api_calls is not None:
            self.api_calls.stop()
        self._stop_virtual_clock()

    # --- parts ---------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        # AWS_ENDPOINT_URL points every client at moto.
        return boto3.client(service, region_name=LOCAL_REGION)  # type: ignore[call-overload]

    def _set_environment(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved_environment.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    @staticmethod
    def _forget_cached_clients() -> None:
        bot_wiring.reset()  # the bot's and the pipeline's: clients, settings, services

    def _environment_for_functions(self) -> dict[str, str]:
        keys = (
            "EVENTBRIDGE_BUS_NAME",
            "DYNAMODB_TABLE_NAME",
            "SQS_QUEUE_URL",
            "REQUEST_DLQ_URL",
            "STATE_MACHINE_ARN",
            "LAUNCH_COORDINATOR_ARN",
            "MGN_REGION",
            "HUB_ACCOUNT_ID",
            "TARGET_ROLE_NAME",
            "TARGET_LANES",
            "POWERTOOLS_SERVICE_NAME",
            "POWERTOOLS_METRICS_NAMESPACE",
            "DEFAULT_APPROVERS",
            "POWERTOOLS_METRICS_DISABLED",
            "CALLBACK_SIGNING_SECRET",
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
            "SLACK_API_URL",
            "SLACK_DEFAULT_CHANNEL",
            "SLACK_TIME_SCALE",
            "SLACK_STATUS_DLQ_URL",
            "SLACK_PRIORITY_DLQ_URL",
            "SLACK_STATUS_QUEUE_URL",
            "SLACK_PRIORITY_QUEUE_URL",
            "SLACK_MAX_RECEIVES",
        )
        return {key: os.environ[key] for key in (*keys, *self._github_environment())}

    def _github_environment(self) -> dict[str, str]:
        """report_github_progress's settings, when the system is given a GitHub."""
        if self.options.github is None:
            return {}
        assert self.resources is not None
        return {
            **self.options.github.environment,
            "GITHUB_PROGRESS_DLQ_URL": self.resources.github_progress_dead_letter_queue_url,
        }

    def _create_functions(self) -> None:
        iam = self.client("iam")
        role_arn = iam.create_role(
            RoleName=self.names.lambda_role, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
        )["Role"]["Arn"]
        self._lambda_role_arn = role_arn
        lambda_client = self.client("lambda")
        package = _placeholder_zip()
        variables = self._environment_for_functions()
        # The Slack app is a function too: the stand-in reaches it over HTTP (as a function URL
        # would), and its lazy listeners, or a test, can invoke it as Lambda does.
        for function in (*FUNCTIONS, *SCHEDULED_FUNCTIONS, *BOT_FUNCTIONS):
            arn = lambda_client.create_function(
                FunctionName=self.names.function(function),
                Runtime="python3.11",
                Role=role_arn,
                Handler=handler_path(function),
                Code={"ZipFile": package},
                Timeout=self.options.timings.task_timeout_seconds,
                MemorySize=512,
                Environment={"Variables": variables},
            )["FunctionArn"]
            self.function_arns[function] = arn

    def _create_state_machine(self) -> None:
        role_arn = self.client("iam").create_role(
            RoleName=self.names.state_machine_role,
            AssumeRolePolicyDocument=json.dumps(STATES_TRUST),
        )["Role"]["Arn"]
        launch = self.options.launch_settings
        definition = render_definition(self.function_arns, self.options.timings, launch)
        created = self.client("stepfunctions").create_state_machine(
            name=self.names.state_machine, definition=json.dumps(definition), roleArn=role_arn
        )
        self.state_machine_arn = created["stateMachineArn"]
        # The launch coordinator loop (batched launches), with its own role, as on AWS.
        coordinator_role_arn = self.client("iam").create_role(
            RoleName=self.names.launch_coordinator_role,
            AssumeRolePolicyDocument=json.dumps(STATES_TRUST),
        )["Role"]["Arn"]
        coordinator = render_coordinator_definition(
            self.function_arns, self.options.timings, launch
        )
        created = self.client("stepfunctions").create_state_machine(
            name=self.names.launch_coordinator,
            definition=json.dumps(coordinator),
            roleArn=coordinator_role_arn,
        )
        self.launch_coordinator_arn = created["stateMachineArn"]

    def _create_rules(self) -> None:
        assert self.resources is not None
        events = self.client("events")
        events.put_rule(
            Name=self.names.migration_requested_rule,
            EventBusName=self.resources.event_bus_name,
            EventPattern=json.dumps(
                {"source": [EVENT_SOURCE], "detail-type": ["MigrationRequested"]}
            ),
        )
        events.put_targets(
            Rule=self.names.migration_requested_rule,
            EventBusName=self.resources.event_bus_name,
            Targets=[{"Id": "start-migration", "Arn": self.function_arns["start_migration"]}],
        )
        events.put_rule(
            Name=self.names.status_callbacks_rule,
            EventBusName=self.resources.event_bus_name,
            EventPattern=json.dumps(callback_event_pattern(EVENT_SOURCE)),
        )
        events.put_targets(
            Rule=self.names.status_callbacks_rule,
            EventBusName=self.resources.event_bus_name,
            Targets=[{"Id": "status-callbacks", "Arn": self.function_arns["callback_handler"]}],
        )
        # Two paths to Slack: the routine events, and what a person must act on or know at
        # once (events.PRIORITY_EVENT_TYPES); every event matches exactly one of the rules.
        routine, priority = slack_event_patterns(EVENT_SOURCE)
        for rule, pattern, target in (
            (
                self.names.status_to_slack_rule,
                routine,
                {"Id": "slack-status", "Arn": self.resources.slack_status_queue_arn},
            ),
            (
                self.names.priority_to_slack_rule,
                priority,
                {
                    "Id": "slack-priority",
                    "Arn": self.resources.slack_priority_queue_arn,
                    "SqsParameters": {"MessageGroupId": SLACK_PRIORITY_MESSAGE_GROUP},
                },
            ),
        ):
            events.put_rule(
                Name=rule,
                EventBusName=self.resources.event_bus_name,
                EventPattern=json.dumps(pattern),
            )
            events.put_targets(
                Rule=rule, EventBusName=self.resources.event_bus_name, Targets=[target]
            )

    def _wire_github_progress(self) -> None:
        """The rule to report_github_progress's FIFO queue (one group) and the queue's event
        source mapping, as terraform/eventbridge.tf and lambda.tf create them."""
        assert self.resources is not None
        events = self.client("events")
        events.put_rule(
            Name=self.names.status_to_github_rule,
            EventBusName=self.resources.event_bus_name,
            EventPattern=json.dumps(progress_event_pattern(EVENT_SOURCE)),
        )
        events.put_targets(
            Rule=self.names.status_to_github_rule,
            EventBusName=self.resources.event_bus_name,
            Targets=[
                {
                    "Id": "status-to-github",
                    "Arn": self.resources.github_progress_queue_arn,
                    "SqsParameters": {"MessageGroupId": GITHUB_PROGRESS_MESSAGE_GROUP},
                }
            ],
        )
        self.client("lambda").create_event_source_mapping(
            EventSourceArn=self.resources.github_progress_queue_arn,
            FunctionName=self.function_arns["report_github_progress"],
            BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )

    def _start_callback_receiver(self) -> None:
        """One loopback HTTPS receiver answers for every callback host (cmdb.contoso.com, ...);
        the real transport reaches it through a route that trusts its certificate only."""
        self.callbacks = CallbackReceiver(os.environ["CALLBACK_SIGNING_SECRET"]).start()
        wiring.use_callback_transport(HttpsCallbackTransport(self.callbacks.route))

    def _add_slack_directory(self) -> None:
        assert self.slack is not None
        self.slack.add_channel(LOCAL_DEFAULT_CHANNEL, "wavepilot-local")
        self.slack.add_user(
            LOCAL_APPROVER, name="local.ops", email="ops@wavepilot.local", real_name="Local Ops"
        )
        self.slack.add_user(
            LOCAL_GROUP_MEMBER,
            name="migration.lead",
            email="lead@wavepilot.local",
            real_name="Migration Lead",
        )

    def _add_to_slack(self, specs: Iterable[MigrationSpec]) -> None:
        """The channels, users and user groups the waves name (every group's member: the
        migration lead, as ``local_group_membership`` says)."""
        assert self.slack is not None
        for spec in specs:
            if spec.slack_channel and spec.slack_channel not in self._slack_channels:
                self._slack_channels.add(spec.slack_channel)
                self.slack.add_channel(spec.slack_channel, f"wave-{spec.wave}")
            for principal in (*spec.approvers, *spec.operators):
                if principal.startswith("S"):
                    self.slack.add_usergroup(principal, principal.lower(), [LOCAL_GROUP_MEMBER])
                elif principal not in {LOCAL_APPROVER, LOCAL_GROUP_MEMBER}:
                    self.slack.add_user(
                        principal,
                        name=principal.lower(),
                        email=f"{principal.lower()}@wavepilot.local",
                    )

    def _start_slack_app(self) -> None:
        """The bot's Bolt app on loopback, built as on Lambda; the stand-in sends it Slack's
        signed requests (slash commands, clicks, modal submissions)."""
        assert self.slack is not None
        self._bolt = BoltHttpServer(
            bot_wiring.slack_app(),
            function_name=self.names.function("slack_app"),
        )
        self.slack.connect_app(self._bolt.start())

    # --- the estate ----------------------------------------------------------------------

    def seed(
        self,
        specs: Iterable[MigrationSpec],
        *,
        disk_gib: int = 100,
        accounts_without_role: Iterable[str] = (),
        disks_gib: Mapping[str, Sequence[int]] | None = None,
        replication_bytes_per_second: Mapping[str, float] | None = None,
    ) -> dict[str, str]:
        """Create, in each VM's lane (its wave's target account and Region), what a landing
        zone holds before a wave: the account (its `OrganizationAccountAccessRole`), the
        Wavepilot target role trusting the hub's functions (not in `accounts_without_role`),
        MGN's service-linked role, the network and instance profiles the VMs name, and an MGN
        source server per VM, as if the replication agent had been installed on each.
        ``disks_gib`` and ``replication_bytes_per_second`` (by migration ID) give a VM its own
        disks (else one of ``disk_gib``) and initial sync rate (else the lane's bandwidth).
        Returns migration ID -> server ID."""
        specs = list(specs)
        assert self.mgn_fleet is not None
        self._add_to_slack(specs)
        endpoint = self._runtime.endpoint_url if self._runtime else None
        lanes = sorted({lane_of_spec(spec) for spec in specs})
        without_role = set(accounts_without_role)
        for account_id in sorted({lane.account_id for lane in lanes}):
            self.prepare_account(account_id, target_role=account_id not in without_role)
        self.estates.update(provision_lane_estates(specs, endpoint_url=endpoint))
        self.estate = self.estates.get(HUB_LANE)
        sessions = assumed_role_sessions(endpoint_url=endpoint)
        for lane in lanes:
            if lane not in self._lane_ec2:
                self._lane_ec2[lane] = sessions(*lane).client("ec2", endpoint_url=endpoint)
        self._watch_lanes(lanes)
        servers: dict[str, str] = {}
        for spec in specs:
            lane = lane_of_spec(spec)
            server = self.mgn_fleet.add_source_server(
                account_id=lane.account_id,
                region=lane.region,
                hostname=(spec.source.hostname or spec.target_vm_name).split(".")[0],
                fqdn=spec.source.hostname
                if spec.source.hostname and "." in spec.source.hostname
                else None,
                user_provided_id=spec.source.user_provided_id,
                os_family=spec.os_family or "linux",
                disk_gib=tuple((disks_gib or {}).get(spec.migration_id, (disk_gib,))),
                source_server_id=spec.source.source_server_id,
                **(
                    {
                        "replication_bytes_per_second": replication_bytes_per_second[
                            spec.migration_id
                        ]
                    }
                    if replication_bytes_per_second
                    and spec.migration_id in replication_bytes_per_second
                    else {}
                ),
            )
            servers[spec.migration_id] = server.source_server_id
            self._specs_by_server[server.source_server_id] = spec
            self.lane_of_server[server.source_server_id] = lane
        return servers

    def prepare_account(self, account_id: str, *, target_role: bool = True) -> None:
        """A target account as `terraform/modules/target-account` leaves it: the Wavepilot
        role (``ResourceNames.target_role``) trusting the hub's function role, and MGN's
        service-linked role (what `aws mgn initialize-service` creates). Idempotent."""
        endpoint = self._runtime.endpoint_url if self._runtime else None
        open_account(account_id, endpoint_url=endpoint)
        iam = assumed_role_sessions(endpoint_url=endpoint)(account_id, LOCAL_REGION).client(
            "iam", endpoint_url=endpoint
        )
        path, _, name = MGN_SERVICE_ROLE_NAME.rpartition("/")
        ensure_role(iam, name, MGN_SERVICE_TRUST, path=f"/{path}/")
        if target_role:
            trust = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": self._lambda_role_arn},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
            ensure_role(iam, self.names.target_role, trust, description="Wavepilot target role")

    def _watch_lanes(self, lanes: Iterable[LaneId]) -> None:
        """The monitor watches every lane seeded (TARGET_LANES, as Terraform's target_lanes)."""
        watched = [HUB_LANE.label, *os.environ.get("TARGET_LANES", "").split(",")]
        watched += [lane.label for lane in lanes]
        value = ",".join(dict.fromkeys(label for label in watched if label))
        if value == os.environ.get("TARGET_LANES"):
            return
        self._set_environment({"TARGET_LANES": value})
        variables = self._environment_for_functions()
        lambda_client = self.client("lambda")
        for arn in self.function_arns.values():
            lambda_client.update_function_configuration(
                FunctionName=arn, Environment={"Variables": variables}
            )
        self._forget_cached_clients()  # settings are read once

    def mgn_of_server(self, source_server_id: str) -> MgnEmulator:
        """The MGN lane that holds a seeded server (its faults, metrics, jobs)."""
        assert self.mgn_fleet is not None
        lane = self.lane_of_server.get(source_server_id, HUB_LANE)
        return self.mgn_fleet.lane(*lane)

    def lane_ec2(self, lane: LaneId) -> Any:
        """EC2 in a seeded lane's account and Region (the landing zone's administrator)."""
        return self._lane_ec2[lane]

    def _checks_for_server(self, source_server_id: str) -> list[HealthCheckSpec]:
        spec = self._specs_by_server.get(source_server_id)
        return list(spec.health_checks) if spec else []

    def counters(self) -> Any:
        assert self._runtime is not None
        return self._runtime.counters()

    def connection_file(self, path: Path | None = None) -> AbstractContextManager[Path]:
        """``with system.connection_file():`` publishes how `wavepilot status|approve|reject
        --local` reaches this runtime from another terminal (``.wavepilot/local.json``, mode
        0600), and removes it at the end. See orchestration/local/connection.py."""
        from orchestration.local.connection import LOCAL_GROUP_MEMBERS_KEY, published_connection

        return published_connection(path, extra={LOCAL_GROUP_MEMBERS_KEY: LOCAL_GROUP_MEMBER})
