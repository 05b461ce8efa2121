"""Every AWS call a handler makes end to end is allowed by its IAM policy, and nothing more is.

One embedded run covers the paths that call AWS differently: a VM approved (the Approve button
in Slack) and migrated with two callback URLs (the callback handler reading its signing key
from Secrets Manager, as on AWS), a rejection (the Reject button and its modal), an approval
nobody answers (it expires), a failed test launch (each rolled back), an operator's rollback
from Slack (``/wavepilot rollback``, then the confirmation button), ``/wavepilot status`` for a
migration and for a wave, a duplicate delivery and a malformed message (to the request DLQ),
a VM removed from the manifests (``publish --cancel-removed``) at its approval gate (rolled
back, its server out of MGN's application) and another after it finalized (out of MGN's
application at once),
a body on the Slack status queue that is no status event (to the status DLQ; the same on the
GitHub progress queue), the
scheduled monitor while an approval waits (invoked as its schedule would), and each wave's
progress on GitHub (the GitHub stand-in, the token read from Secrets Manager as on AWS). The
recorder (``orchestration/local/api_recorder.py``) attributes each call to the function whose
handler made it; the Slack app, served over loopback HTTP rather than through the Lambda
dispatcher, is attributed to ``slack_app`` by ``BoltHttpServer``, its lazy listeners too.
Calls made with a lane's role session (MGN, EC2 and IAM in the wave's target account and Region)
are the target role's, not the function's: the recorder tells them apart by the credentials that
sign them (moto's STS knows which role an access key was issued for), and their union must
equal the policy of ``terraform/modules/target-account``. The hub's functions call
``sts:AssumeRole`` instead.
Terraform's policies are read from ``terraform/iam.tf`` with python-hcl2 and evaluated per
function; the comparison goes both ways, with an explicit list of the actions a function is
granted that no handler calls here (AWS's own use of the role, or a path only AWS takes), each
with its reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import hcl2
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.commands import ROLLBACK_CONFIRM_ACTION
from orchestration import wiring
from orchestration.adapters.state_store import MigrationRecord
from orchestration.local.api_calls import ApiCallCounter
from orchestration.local.api_recorder import (
    ApiCallRecorder,
    harness,
    iam_action,
    running_function,
)
from orchestration.local.driver import MigrationDriver, MigrationOutcome, first_listed_approver
from orchestration.local.mgn import LaunchType
from orchestration.local.slack.model import EphemeralMessage
from orchestration.local.system import EmbeddedSystem, LocalGitHub, SystemOptions
from orchestration.migration_request import MigrationRequest
from orchestration.naming import (
    BOT_FUNCTIONS,
    FUNCTIONS,
    GITHUB_PROGRESS_MESSAGE_GROUP,
    SCHEDULED_FUNCTIONS,
    ResourceNames,
)
from orchestration.pipeline.finalize_now import FinalizeNowError
from orchestration.pipeline.mgn_grouping import MANAGED_TAGS, mgn_application_name
from orchestration.post_launch_actions import ACTIONS_TAG
from orchestration.statemachine import LaunchSettings, Timings
from tests.support.github_server import github_stand_in
from tests.support.pipeline import example_requests, spec_of

TERRAFORM = Path(__file__).resolve().parent.parent / "terraform"
TARGET_MODULE = TERRAFORM / "modules" / "target-account"
# The unanswered approval expires within the test; long enough that a busy machine (four test
# workers on two cores) still decides the others before theirs does, and boots its instances
# within the launch timeout.
TIMINGS = replace(Timings.local(), launch_timeout_seconds=30, approval_timeout_seconds=15)
WAVE_1_CHANNEL = "C07WAVE0001"
GITHUB_REPOSITORY = "contoso/waves"
COMMIT = "c" * 40  # the commit tests.support.pipeline publishes the example requests from
OPERATOR = "U07BOBOPS01"  # an operator of wave-1 (manifests/waves/wave-1.yaml)
POST_LAUNCH_ACTION = {"name": "smoke", "ssmDocument": "Contoso-Smoke", "order": 1001}


@dataclass(frozen=True)
class Allowance:
    """An action a function is granted that no handler calls: AWS uses the role itself."""

    action: str
    reason: str
    functions: frozenset[str] | None = None  # None: every function

    def applies_to(self, function: str) -> bool:
        return self.functions is None or function in self.functions


EVENT_SOURCE_MAPPED = frozenset({"ingress_handler", "slack_notifier", "report_github_progress"})
# EventBridge targets (and the Slack app's lazy listeners): local.async_functions in Terraform.
ASYNC_FUNCTIONS = frozenset({"start_migration", "callback_handler", "slack_app"})

ALLOWANCES: tuple[Allowance, ...] = (
    Allowance(
        "logs:CreateLogStream", "the Lambda runtime writes the function's log group as its role"
    ),
    Allowance("logs:PutLogEvents", "the Lambda runtime writes the function's log group"),
    Allowance(
        "xray:PutTraceSegments", "tracing is Active: Lambda's X-Ray daemon sends as the role"
    ),
    Allowance("xray:PutTelemetryRecords", "tracing is Active: the X-Ray daemon's telemetry"),
    Allowance(
        "kms:Decrypt",
        "the key encrypts the function's environment variables (Lambda decrypts them at init "
        "as the role), the state table, the secrets and the queues; the services decrypt on "
        "the caller's behalf. moto does not encrypt, so no KMS call is ever made locally",
    ),
    Allowance(
        "kms:GenerateDataKey",
        "SSE-KMS: SQS generates a data key on a sender's behalf (the request and status DLQs, "
        "the event target DLQ for failed asynchronous invocations); moto does not encrypt",
        EVENT_SOURCE_MAPPED | ASYNC_FUNCTIONS,
    ),
    Allowance(
        "sqs:ReceiveMessage",
        "SQS event source mappings (request queue, Slack status queue) poll with the role",
        EVENT_SOURCE_MAPPED,
    ),
    Allowance(
        "sqs:DeleteMessage",
        "the event source mapping deletes the records the handler did not report as failed",
        EVENT_SOURCE_MAPPED,
    ),
    Allowance(
        "sqs:GetQueueAttributes",
        "the event source mapping reads the queue's attributes",
        EVENT_SOURCE_MAPPED,
    ),
    Allowance(
        "secretsmanager:GetSecretValue",
        "on AWS the bot token (and the app's signing secret) come from Secrets Manager "
        "(SLACK_BOT_TOKEN_SECRET_ARN, SLACK_SIGNING_SECRET_ARN); the embedded system sets "
        "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (the callback handler's secret is read from "
        "Secrets Manager here)",
        frozenset({"slack_app", "slack_notifier"}),
    ),
    Allowance(
        "dynamodb:DeleteItem",
        "Powertools idempotency deletes the in-progress record when the request's processing "
        "raises (the run's failures are all handled, so it never does)",
        frozenset({"ingress_handler"}),
    ),
    Allowance(
        "dynamodb:GetItem",
        "Powertools idempotency reads the existing record when a conditional put fails without "
        "returning it (DynamoDB, and moto, return it: ReturnValuesOnConditionCheckFailure)",
        frozenset({"ingress_handler"}),
    ),
    Allowance(
        "dynamodb:GetItem",
        "an event put before events carried their routing (retried by EventBridge or Lambda "
        "across the deployment) is routed by the migration's record; every event here carries "
        "its routing, so the callback handler reads nothing (docs/ARCHITECTURE.md)",
        frozenset({"callback_handler"}),
    ),
    Allowance(
        "sqs:SendMessage",
        "asynchronous invocations (EventBridge targets, the Slack app's lazy listeners) that "
        "fail go to the event target DLQ (on-failure destination), sent by Lambda with the "
        "function's role",
        ASYNC_FUNCTIONS,
    ),
    Allowance(
        "sts:AssumeRole",
        "on Lambda every function has its own process and so its own cache of lane sessions, "
        "and assumes the target role itself; in the embedded process the functions share one "
        "cache, so whichever function reaches a lane first assumes the role for all (the run "
        "asserts that some function did)",
        frozenset(
            {
                "ingress_handler",
                "validate_input",
                "prepare_source",
                "trigger_migration",
                "verify_migration",
                "finalize_cutover",
                "rollback_handler",
                "monitor_migrations",
                "coordinate_launches",
                "request_approval",  # batched: the gate verifies the test launch first
            }
        ),
    ),
    Allowance(
        "dynamodb:DeleteItem",
        "a request whose lane's loop it claimed but could not start (StartExecution refused) "
        "gives the lease up, so the next request starts the loop; Step Functions starts it here",
        frozenset({"request_launch"}),
    ),
    Allowance(
        "states:DescribeExecution",
        "a new revision of a migration whose last execution may still run looks at that "
        "execution (tests/test_pipeline_e2e.py::"
        "test_a_new_revision_waits_while_the_earlier_execution_runs); here every VM is new",
        frozenset({"start_migration"}),
    ),
    Allowance(
        "states:ListExecutions",
        "only for a record written before records kept their last execution's ARN: the running "
        "executions are listed to find an earlier revision's",
        frozenset({"start_migration"}),
    ),
    Allowance(
        "dynamodb:Query",
        "a cutover whose application has dependsOn reads the wave's migrations (gsi1) until "
        "the applications it goes after have cut over; the example wave has no dependsOn "
        "(tests/test_steps_unit.py and test_pipeline_e2e.py cover the gate)",
        frozenset({"trigger_migration"}),
    ),
    Allowance(
        "lambda:InvokeFunction",
        "on Lambda, Bolt runs the Slack app's lazy listeners by invoking the function itself "
        "asynchronously; the embedded system runs them on Bolt's thread pool",
        frozenset({"slack_app"}),
    ),
)

ALL_FUNCTIONS = (*FUNCTIONS, *SCHEDULED_FUNCTIONS, *BOT_FUNCTIONS)


# --- Terraform: the actions each function's role is granted -------------------------------


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if not str(k).startswith("__")}
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def _unquote(value: Any) -> str:
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


@cache
def _terraform() -> dict[str, Any]:
    """``locals`` merged, and the ``aws_iam_policy_document`` data sources by name."""
    merged_locals: dict[str, Any] = {}
    documents: dict[str, Any] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            parsed = _strip(hcl2.load(handle))
        for block in parsed.get("locals", []):
            merged_locals.update(block)
        for block in parsed.get("data", []):
            for kind, named in block.items():
                if _unquote(kind) == "aws_iam_policy_document":
                    documents.update({_unquote(k): v for k, v in named.items()})
    return {"locals": merged_locals, "documents": documents}


CAPABILITIES_FOR_EACH = re.compile(r"local\.lambda_capabilities\[each\.key\]")
# ``contains(["a", "b"], each.key) ? [1] : []`` or ``contains(local.some_list, each.key) ...``
CONDITIONAL_FOR_EACH = re.compile(
    r"^\$\{contains\((?:\[(?P<names>[^\]]*)\]|local\.(?P<local>\w+)), each\.key\)"
    r" \? \[1\] : \[\]\}$"
)


def granted_actions() -> dict[str, set[str]]:
    """Function -> every action in ``data.aws_iam_policy_document.lambda[function]``.

    Static ``statement`` blocks apply to every function; the ``dynamic "statement"`` over
    ``local.lambda_capabilities[each.key]`` adds the named ``local.lambda_statements``; a
    ``dynamic`` block guarded by ``contains([...], each.key)`` applies to the functions listed.
    Any other shape fails loudly, so a change to iam.tf cannot make this check vacuous.
    """
    tf = _terraform()
    capabilities: dict[str, list[str]] = tf["locals"]["lambda_capabilities"]
    statements: dict[str, Any] = tf["locals"]["lambda_statements"]
    document = tf["documents"]["lambda"]
    granted: dict[str, set[str]] = {name: set() for name in capabilities}
    for statement in document.get("statement", []):
        for function in granted:
            granted[function] |= {_unquote(a) for a in statement["actions"]}
    for dynamic in document.get("dynamic", []):
        [(label, body)] = dynamic.items()
        assert _unquote(label) == "statement", label
        for_each = str(body["for_each"])
        [content] = body["content"]
        if CAPABILITIES_FOR_EACH.search(for_each):
            assert content["actions"] == "${statement.value.actions}", content
            for function, names in capabilities.items():
                for name in names:
                    granted[function] |= {
                        _unquote(a) for a in statements[_unquote(name)]["actions"]
                    }
        elif match := CONDITIONAL_FOR_EACH.match(for_each):
            if match["local"]:
                listed = {_unquote(n) for n in tf["locals"][match["local"]]}
            else:
                listed = {_unquote(n.strip()) for n in match["names"].split(",")}
            assert listed <= granted.keys(), listed - granted.keys()
            for function in listed:
                granted[function] |= {_unquote(a) for a in content["actions"]}
        else:
            pytest.fail(f"iam.tf: a dynamic statement this test cannot evaluate: {for_each}")
    return granted


def target_role_actions() -> set[str]:
    """Every action of ``data.aws_iam_policy_document.target`` in the target-account module."""
    return module_policy_actions("target")


def module_policy_actions(policy: str) -> set[str]:
    """Every action of ``data.aws_iam_policy_document.<policy>`` in the target-account module
    (``grouping_reader``: the pull request plan's read-only role, tests/test_mgn_drift.py)."""
    actions: set[str] = set()
    for path in sorted(TARGET_MODULE.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            parsed = _strip(hcl2.load(handle))
        for block in parsed.get("data", []):
            for kind, named in block.items():
                if _unquote(kind) != "aws_iam_policy_document":
                    continue
                for name, document in named.items():
                    if _unquote(name) == policy:
                        for statement in document.get("statement", []):
                            actions |= {_unquote(a) for a in statement["actions"]}
                        assert not document.get("dynamic"), "a statement this test cannot read"
    assert actions, "the module's policy was found"
    return actions


# --- the recorder on its own --------------------------------------------------------------


def _unreachable_client(service: str) -> Any:
    """A client whose calls fail fast (nothing listens): ``before-call`` still fires."""
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client(  # type: ignore[call-overload]
        service,
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.2),
    )


def _call(client: Any, operation: str, **params: Any) -> None:
    with contextlib.suppress(BotoCoreError, ClientError):
        getattr(client, operation)(**params)


def test_the_recorder_attributes_calls_to_the_running_function_only() -> None:
    with ApiCallRecorder() as recorder:
        sfn = _unreachable_client("stepfunctions")
        sqs = _unreachable_client("sqs")
        _call(sqs, "list_queues")  # outside any handler: nobody's
        with running_function("fn-a"):
            _call(sfn, "list_executions", stateMachineArn="arn:aws:states:::stateMachine:x")
            with running_function("fn-b"):
                _call(sqs, "list_queues")
            _call(sqs, "list_queues")
            # A thread the handler starts does not inherit its context.
            thread = threading.Thread(
                target=_call, args=(sqs, "get_queue_url"), kwargs={"QueueName": "q"}
            )
            thread.start()
            thread.join()
            # Work it submits to a thread pool is its own (as on Lambda: one role per process).
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(_call, sqs, "get_queue_url", QueueName="q").result()
        with ThreadPoolExecutor(max_workers=1) as pool:  # submitted outside: nobody's
            pool.submit(_call, sqs, "get_queue_url", QueueName="q").result()
    _call(sqs, "list_queues")  # stopped: not recorded
    assert recorder.by_function() == {
        "fn-a": {"sqs:GetQueueUrl": 1, "sqs:ListQueues": 1, "states:ListExecutions": 1},
        "fn-b": {"sqs:ListQueues": 1},
    }


def test_the_harness_calls_are_nobodys_and_not_counted_as_aws_calls() -> None:
    # The VM stand-ins look an address up from a health check's (a handler's) thread.
    counter = ApiCallCounter().start()
    try:
        with ApiCallRecorder() as recorder:
            sqs = boto3.client(  # boto3's default session: the one the counter hooks
                "sqs",
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                endpoint_url="http://127.0.0.1:9",
                config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.2),
            )
            with running_function("fn-a"):
                _call(sqs, "list_queues")
                with harness():
                    _call(sqs, "get_queue_url", QueueName="q")
                _call(sqs, "list_queues")
    finally:
        counter.stop()
    assert recorder.by_function() == {"fn-a": {"sqs:ListQueues": 2}}
    assert counter.by_operation() == {"sqs.ListQueues": 2}


def test_iam_prefixes_come_from_the_signing_name() -> None:
    session = boto3.Session(region_name="us-east-1")
    for service, operation, action in [
        ("stepfunctions", "SendTaskSuccess", "states:SendTaskSuccess"),
        ("events", "PutEvents", "events:PutEvents"),
        ("mgn", "ListSourceServerActions", "mgn:ListSourceServerActions"),
        ("ec2", "DescribeInstances", "ec2:DescribeInstances"),
        ("iam", "GetInstanceProfile", "iam:GetInstanceProfile"),
        ("dynamodb", "TransactWriteItems", "dynamodb:TransactWriteItems"),
        ("secretsmanager", "GetSecretValue", "secretsmanager:GetSecretValue"),
    ]:
        model = session.client(service).meta.service_model.operation_model(operation)  # type: ignore[call-overload]
        assert iam_action(model) == action


# --- the end-to-end run -------------------------------------------------------------------


@dataclass
class Run:
    recorded: dict[str, dict[str, int]]  # Terraform function key -> IAM action -> calls
    by_role: dict[str, dict[str, int]]  # assumed role name -> IAM action -> calls
    outcomes: dict[str, MigrationOutcome]
    expected: dict[str, tuple[str, str]]  # migration ID -> (execution status, record status)


def _approver_for(approve: str, reject: set[str]) -> Any:
    def decide(record: MigrationRecord, approvers: tuple[str, ...]) -> tuple[str, str] | None:
        if record.migration_id == approve:
            return first_listed_approver(record, approvers)
        if record.migration_id in reject:
            return "REJECTED", "U07ALICE001"
        return None  # nobody answers: the approval expires

    return decide


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _ephemeral(system: EmbeddedSystem, user: str, text: str) -> EphemeralMessage | None:
    assert system.slack is not None
    return next((m for m in system.slack.ephemeral_messages(user) if text in m.text), None)


def _operator_rolls_back(system: EmbeddedSystem, migration_id: str) -> None:
    """At the approval gate: ``/wavepilot rollback``, then the confirmation button."""
    assert system.slack is not None
    _wait_for(
        "the approval gate",
        lambda: (
            (record := wiring.store().get(migration_id)) is not None
            and record.step == "AwaitApproval"
        ),
        timeout=60,
    )
    _monitor_runs(system)
    system.slack.slash_command(
        user=OPERATOR, channel=WAVE_1_CHANNEL, text=f"rollback {migration_id} licence problem"
    )
    question = _wait_for(
        "the rollback confirmation", lambda: _ephemeral(system, OPERATOR, "Roll back *")
    )
    system.slack.click_ephemeral_button(
        user=OPERATOR, message=question, action_id=ROLLBACK_CONFIRM_ACTION
    )


def _monitor_runs(system: EmbeddedSystem) -> None:
    """The scheduled monitor, once, while an approval waits (so it reads that migration too)."""
    response = system.client("lambda").invoke(
        FunctionName=system.function_arns["monitor_migrations"], Payload=b"{}"
    )
    assert "FunctionError" not in response, response["Payload"].read()
    figures = json.loads(response["Payload"].read())
    assert figures["PendingApprovals"] >= 1, figures


def _removed_at_the_gate(system: EmbeddedSystem, request: MigrationRequest) -> None:
    """At the approval gate, the VM is removed from the manifests: ``publish
    --cancel-removed``'s cancel rolls it back (stop, start the rollback), and the rollback's
    end takes its server out of MGN's application (archived, left empty)."""
    _wait_for(
        "the removed VM's approval gate",
        lambda: (
            (record := wiring.store().get(request.migration_id)) is not None
            and record.step == "AwaitApproval"
        ),
        timeout=60,
    )
    MigrationDriver(system).send([request.model_copy(update={"action": "cancel"})])


def _removed_after_finalizing(system: EmbeddedSystem, request: MigrationRequest) -> None:
    """A finalized VM removed from the manifests: nothing to stop; the ingress takes its
    server out of MGN's application at once (and archives the application and wave left
    empty)."""
    MigrationDriver(system).send([request.model_copy(update={"action": "cancel"})])
    [audit] = _wait_for(
        "the finalized VM's cancel",
        lambda: wiring.store().migration_audit_trail(request.migration_id),
    )
    assert (audit["action"], audit["outcome"]) == ("cancel-removed", "finalized"), audit


def _status_commands(system: EmbeddedSystem, migration_id: str) -> None:
    """``/wavepilot status`` for a migration and for its wave (a query on the GSI)."""
    assert system.slack is not None
    for target, answer in [(migration_id, f"`{migration_id}`"), ("wave-1", "*wave-1*: ")]:
        system.slack.slash_command(user=OPERATOR, channel=WAVE_1_CHANNEL, text=f"status {target}")
        _wait_for(f"the status of {target}", _answered(system, answer))


def _answered(system: EmbeddedSystem, text: str) -> Callable[[], EphemeralMessage | None]:
    return lambda: _ephemeral(system, OPERATOR, text)


def _grouped_elsewhere_in_mgn(
    system: EmbeddedSystem, server_id: str, request: MigrationRequest
) -> None:
    """MGN's console already has the VM in a Wavepilot application of a retired wave, and
    its own wave and application archived (the application parked in another wave): placing
    it unarchives both, moves the application back, moves the server, and archives the
    application and wave it left (every grouping call the target role is granted)."""
    mgn = system.mgn_of_server(server_id)
    managed = dict(MANAGED_TAGS)
    retired_wave = mgn.add_wave("retired-wave", tags=managed)
    mgn.move_source_server(
        server_id, mgn.add_application("retired-wave/old-app", wave_id=retired_wave, tags=managed)
    )
    mgn.add_wave(request.wave, tags=managed, archived=True)
    mgn.add_application(
        mgn_application_name(request.wave, request.app_name),
        wave_id=mgn.add_wave("parking", tags=managed),
        tags=managed,
        archived=True,
    )


def _run_every_path() -> Run:
    # The migrated VM runs a post-launch action; its server still holds one an earlier
    # revision put, which the prepare step removes (Put/List/RemoveSourceServerAction).
    wave_2 = example_requests("wave-2", post_launch_actions=[POST_LAUNCH_ACTION])
    [with_callbacks] = [r for r in wave_2 if r.target_vm_name == "billing-app-prod-01"]
    [removed] = [r for r in wave_2 if r.target_vm_name == "payments-api-prod-01"]
    rejected, unanswered, failing, rolled_back = example_requests()[:4]
    requests = [with_callbacks, rejected, unanswered, failing, rolled_back, removed]
    recorder = ApiCallRecorder().start()
    try:
        with (
            pytest.MonkeyPatch.context() as patch,
            github_stand_in() as github,
            EmbeddedSystem(
                SystemOptions(
                    timings=TIMINGS, github=LocalGitHub(github.base_url, GITHUB_REPOSITORY)
                )
            ) as system,
        ):
            # Each wave's progress goes to the merged pull request of the publishing commit.
            github.add_pull(
                GITHUB_REPOSITORY, 1, base_sha="a" * 40, head_sha="b" * 40, merge_commit_sha=COMMIT
            )
            # As on AWS: the callback handler reads its key, and report_github_progress its
            # token, from Secrets Manager by ARN.
            secretsmanager = system.client("secretsmanager")
            arn = secretsmanager.create_secret(
                Name=system.names.callback_signing_secret,
                SecretString=os.environ["CALLBACK_SIGNING_SECRET"],
            )["ARN"]
            patch.setenv("CALLBACK_SIGNING_SECRET_ARN", arn)
            github_arn = secretsmanager.create_secret(
                Name=system.names.github_token_secret, SecretString="ghs_from_secrets_manager"
            )["ARN"]
            patch.setenv("GITHUB_TOKEN_SECRET_ARN", github_arn)  # before GITHUB_TOKEN
            wiring.reset()
            servers = system.seed([spec_of(r) for r in requests])
            _grouped_elsewhere_in_mgn(system, servers[with_callbacks.migration_id], with_callbacks)
            system.mgn_of_server(servers[failing.migration_id]).faults.fail_next_launch(
                servers[failing.migration_id], launch_type=LaunchType.TEST
            )
            system.mgn_of_server(servers[with_callbacks.migration_id]).add_source_server_action(
                servers[with_callbacks.migration_id],
                action_id="wavepilot-retired",
                action_name="retired",
                document_identifier="Contoso-Retired",
                order=1002,
            )
            # The rejected VM has no actions in its manifest, but an earlier revision gave
            # its server one (and the tag that says so): removed, then untagged.
            rejected_mgn = system.mgn_of_server(servers[rejected.migration_id])
            rejected_mgn.add_source_server_action(
                servers[rejected.migration_id],
                action_id="wavepilot-retired",
                action_name="retired",
                document_identifier="Contoso-Retired",
                order=1002,
            )
            rejected_mgn.tag_source_server(servers[rejected.migration_id], {ACTIONS_TAG: "managed"})
            driver = MigrationDriver(system)
            driver.send([*requests, with_callbacks, "{this is not json"])
            # Not a status event: the notifier sends it to the status DLQ with its reason.
            assert system.resources is not None
            system.client("sqs").send_message(
                QueueUrl=system.resources.slack_status_queue_url,
                MessageBody="{this is not a status event",
            )
            # Nor on the GitHub progress queue: report_github_progress dead-letters it.
            system.client("sqs").send_message(
                QueueUrl=system.resources.github_progress_queue_url,
                MessageBody="{this is not a status event either",
                MessageGroupId=GITHUB_PROGRESS_MESSAGE_GROUP,
                MessageDeduplicationId="iam-calls-unreadable-github",
            )
            operator = threading.Thread(
                target=_operator_rolls_back, args=(system, rolled_back.migration_id), daemon=True
            )
            operator.start()
            remover = threading.Thread(
                target=_removed_at_the_gate, args=(system, removed), daemon=True
            )
            remover.start()
            outcomes = driver.wait(
                [r.migration_id for r in requests],
                approver=_approver_for(with_callbacks.migration_id, {rejected.migration_id}),
                timeout=90,
            )
            operator.join(timeout=30)
            assert not operator.is_alive()
            remover.join(timeout=30)
            assert not remover.is_alive()
            _removed_after_finalizing(system, with_callbacks)
            trail = wiring.store().migration_audit_trail(rolled_back.migration_id)
            assert [(a["actor"], a["outcome"]) for a in trail] == [(OPERATOR, "started")]
            _status_commands(system, rolled_back.migration_id)
            # Both waves ended: each has its deployment and its result comment, made with the
            # token from Secrets Manager.
            _wait_for("each wave's result comment", lambda: len(github.comments) == 2)
            assert {d["environment"] for d in github.deployments_of(GITHUB_REPOSITORY)} == {
                "migration/wave-1",
                "migration/wave-2",
            }
            assert {r.authorization for r in github.requests} == {"Bearer ghs_from_secrets_manager"}
            names = {system.names.function(f): f for f in ALL_FUNCTIONS}
        # After stop(): every asynchronous invocation (callbacks) has finished.
        recorded = {names[name]: calls for name, calls in recorder.by_function().items()}
        by_role = recorder.by_role()
    finally:
        recorder.stop()
        wiring.reset()  # forget the Secrets Manager source with the variable
    return Run(
        recorded,
        by_role,
        outcomes,
        {
            with_callbacks.migration_id: ("SUCCEEDED", "COMPLETED"),
            rejected.migration_id: ("FAILED", "ROLLED_BACK"),
            unanswered.migration_id: ("FAILED", "ROLLED_BACK"),
            failing.migration_id: ("FAILED", "ROLLED_BACK"),
            rolled_back.migration_id: ("FAILED", "ROLLED_BACK"),
            removed.migration_id: ("FAILED", "ROLLED_BACK"),
        },
    )


def _run_batched_paths() -> Run:
    """The batched launch design's functions: two VMs handed to their lane's coordinator,
    one migrated, one whose test launch fails in the shared job (rolled back); the loop hands
    the lane over to a fresh execution of itself after every run that leaves it busy. The wave
    holds verified cutovers (finalizeAfter): an operator finalizes the migrated one now."""
    migrated, failing = example_requests(finalize_after="24h")[:2]
    requests = [migrated, failing]
    recorder = ApiCallRecorder().start()
    options = SystemOptions(
        timings=replace(Timings.local(), approval_timeout_seconds=60),
        launch_design="batched",
        launch=replace(LaunchSettings.local("batched"), linger_seconds=1, hand_over_after_runs=1),
    )
    try:
        with EmbeddedSystem(options) as system:
            servers = system.seed([spec_of(r) for r in requests])
            system.mgn_of_server(servers[failing.migration_id]).faults.fail_next_launch(
                servers[failing.migration_id], launch_type=LaunchType.TEST
            )
            driver = MigrationDriver(system)
            driver.send(requests)

            def finalize_now(_statuses: dict[str, str], records: dict[str, Any]) -> None:
                record = records.get(migrated.migration_id)
                held = (
                    record is not None
                    and record.history[-1:]
                    and (
                        record.history[-1]["step"],
                        record.history[-1]["status"],
                    )
                    == ("FinalizeCutover", "WAITING")
                )
                if held:
                    with contextlib.suppress(FinalizeNowError):  # asked at the previous tick
                        wiring.finalize_now().request(migrated.migration_id, user=OPERATOR)

            outcomes = driver.wait(
                [r.migration_id for r in requests], timeout=120, on_tick=finalize_now
            )
            names = {system.names.function(f): f for f in ALL_FUNCTIONS}
        recorded = {names[name]: calls for name, calls in recorder.by_function().items()}
        by_role = recorder.by_role()
    finally:
        recorder.stop()
        wiring.reset()
    return Run(
        recorded,
        by_role,
        outcomes,
        {
            migrated.migration_id: ("SUCCEEDED", "COMPLETED"),
            failing.migration_id: ("FAILED", "ROLLED_BACK"),
        },
    )


def _run_group_decision() -> Run:
    """A group decision from Slack: three VMs of one application ready, approved together
    with the group message's Approve all ready (their decisions written together)."""
    from bot.group_approvals import GROUP_APPROVE_READY_ACTION
    from tests.test_group_approvals_e2e import APPROVER, FAST, _all_ready, _wave

    requests = _wave("wave-9", 3)
    recorder = ApiCallRecorder().start()
    try:
        with EmbeddedSystem(SystemOptions(timings=FAST)) as system:
            assert system.slack is not None
            system.seed([spec_of(r) for r in requests])
            driver = MigrationDriver(system)
            driver.send(requests)
            state = _all_ready(system, "wave-9/billing", 3)
            system.slack.click_button(
                user=APPROVER,
                channel=state.channel,
                message_ts=state.ts,
                action_id=GROUP_APPROVE_READY_ACTION,
                value=state.group,
            )
            outcomes = driver.wait([r.migration_id for r in requests], approver=None, timeout=240)
            names = {system.names.function(f): f for f in ALL_FUNCTIONS}
        recorded = {names[name]: calls for name, calls in recorder.by_function().items()}
        by_role = recorder.by_role()
    finally:
        recorder.stop()
        wiring.reset()
    return Run(
        recorded,
        by_role,
        outcomes,
        {r.migration_id: ("SUCCEEDED", "COMPLETED") for r in requests},
    )


def _merged(*runs: Run) -> Run:
    """Every run's calls together: a function's policy must cover all the paths it takes."""
    recorded: dict[str, dict[str, int]] = {}
    by_role: dict[str, dict[str, int]] = {}
    for run in runs:
        for merged, calls in ((recorded, run.recorded), (by_role, run.by_role)):
            for who, actions in calls.items():
                into = merged.setdefault(who, {})
                for action, count in actions.items():
                    into[action] = into.get(action, 0) + count
    return Run(
        recorded,
        by_role,
        {k: v for run in runs for k, v in run.outcomes.items()},
        {k: v for run in runs for k, v in run.expected.items()},
    )


def _diff(function: str, run: Run) -> tuple[set[str], set[str]]:
    """(called but not granted, granted but neither called nor allowed)."""
    granted = granted_actions()[function]
    called = set(run.recorded[function])
    allowed_unused = {a.action for a in ALLOWANCES if a.applies_to(function)}
    return called - granted, granted - called - allowed_unused


def test_every_call_is_granted_and_every_grant_is_called() -> None:
    """One run, one test (so pytest-xdist runs it once): every function's diff at once."""
    run = _merged(_run_every_path(), _run_batched_paths(), _run_group_decision())
    for migration_id, expected in run.expected.items():
        outcome = run.outcomes[migration_id]
        assert (outcome.status, outcome.record_status) == expected, outcome.cause
    assert set(ALL_FUNCTIONS) <= set(run.recorded), "every function ran and called AWS"
    assert set(run.recorded) <= set(granted_actions()), "a function Terraform does not define"
    assert set(granted_actions()) == set(ALL_FUNCTIONS)
    print("\nrecorded per function:")  # shown with -s
    for function, calls in run.recorded.items():
        print(f"  {function}: {calls}")
    problems: list[str] = []
    for function in ALL_FUNCTIONS:
        missing, unused = _diff(function, run)
        if missing:
            problems.append(f"{function}: called but not granted: {sorted(missing)}")
        if unused:
            problems.append(f"{function}: granted, never called, no allowance: {sorted(unused)}")
    assert not problems, "terraform/iam.tf disagrees with the recorded calls:\n  " + (
        "\n  ".join(problems)
    )
    # AND what the steps did in the lanes is exactly the target role's policy (both ways)
    print(f"target role: {run.by_role}")
    assert set(run.by_role) == {ResourceNames().target_role}, run.by_role
    in_lanes = set(run.by_role[ResourceNames().target_role])
    assert in_lanes == target_role_actions(), (
        f"called, not in the module: {sorted(in_lanes - target_role_actions())}; "
        f"in the module, never called: {sorted(target_role_actions() - in_lanes)}"
    )
    # AND the hub's functions reached the lanes only by assuming the role
    assert any("sts:AssumeRole" in calls for calls in run.recorded.values())
    for calls in run.recorded.values():
        assert not {a for a in calls if a.startswith(("mgn:", "ec2:", "iam:"))}, calls


def test_every_allowance_is_granted_somewhere() -> None:
    granted = granted_actions()
    for allowance in ALLOWANCES:
        functions = allowance.functions or frozenset(granted)
        assert any(allowance.action in granted.get(f, set()) for f in functions), allowance
