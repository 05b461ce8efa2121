"""Terraform agrees with the Python code: names, handlers, placeholders, environment, IAM.

Offline and fast: the ``.tf`` files are parsed with python-hcl2, never planned. Strings come
back quoted (``'"abc"'``) and expressions wrapped (``'${var.x}'``); the helpers below undo that.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from pydantic import AliasChoices

from bot.config import BotSettings
from orchestration.events import EVENT_TYPES, PRIORITY_EVENT_TYPES
from orchestration.gitops.wave_progress import PROGRESS_DETAIL_TYPES
from orchestration.local.provision import REQUEST_MAX_RECEIVE_COUNT, REQUEST_VISIBILITY_TIMEOUT
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
from orchestration.pipeline.callbacks import CALLBACK_DETAIL_TYPES, CALLBACK_ROUTING_PATTERN
from orchestration.settings import Settings
from orchestration.statemachine import (
    COORDINATOR_DEFINITION_FILE,
    COORDINATOR_FUNCTION_PLACEHOLDERS,
    DEFINITION_FILE,
    FUNCTION_PLACEHOLDERS,
    LANE_QUOTA_NAMES,
    MAX_RUNS_PER_LOOP,
    LaunchSettings,
    Timings,
    placeholders,
)

REPO = Path(__file__).resolve().parent.parent
TERRAFORM = REPO / "terraform"
ALL_FUNCTIONS = FUNCTIONS + SCHEDULED_FUNCTIONS + BOT_FUNCTIONS
TF_FILES = sorted(TERRAFORM.glob("*.tf"))
TFVARS_FILES = sorted((TERRAFORM / "environments").glob("*.tfvars"))

# Set by the Lambda runtime itself; Lambda refuses it as a function environment variable.
LAMBDA_RESERVED = {"AWS_REGION"}
# What every handler reads (orchestration/settings.py and orchestration/observability.py).
HANDLER_ENVIRONMENT = {
    "AWS_REGION",
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
    "DEBUG",
    "DEFAULT_APPROVERS",
    "IDEMPOTENCY_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}
FUNCTION_ONLY_ENVIRONMENT = {
    "callback_handler": {"CALLBACK_SIGNING_SECRET_ARN"},
    "report_github_progress": {
        "GITHUB_REPOSITORY",
        "GITHUB_TOKEN_SECRET_ARN",
        "GITHUB_API_URL",
        "GITHUB_PROGRESS_DLQ_URL",
    },
}
# bot/config.py settings that exist for the embedded default only (plain-text credentials, the
# Slack stand-in's URL, its accelerated clock): never set on AWS.
BOT_LOCAL_ONLY = {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_API_URL", "SLACK_TIME_SCALE"}
# The Slack bot's contract (bot/config.py): what each bot function reads.
BOT_ENVIRONMENT = {
    "slack_app": {
        "SLACK_BOT_TOKEN_SECRET_ARN",
        "SLACK_SIGNING_SECRET_ARN",
        "DYNAMODB_TABLE_NAME",
        "EVENTBRIDGE_BUS_NAME",
        "STATE_MACHINE_ARN",
        "DEFAULT_APPROVERS",
        "SLACK_DEFAULT_CHANNEL",
        # A pause, resume or cancel asks the notifier (its status queue) to edit the summary.
        "SLACK_STATUS_QUEUE_URL",
        "POWERTOOLS_SERVICE_NAME",
    },
    "slack_notifier": {
        "SLACK_BOT_TOKEN_SECRET_ARN",
        "SLACK_STATUS_DLQ_URL",
        "SLACK_PRIORITY_DLQ_URL",
        "SLACK_STATUS_QUEUE_URL",
        "SLACK_PRIORITY_QUEUE_URL",
        "SLACK_MAX_RECEIVES",
        "DYNAMODB_TABLE_NAME",
        "SLACK_DEFAULT_CHANNEL",
        "DEFAULT_APPROVERS",
        "POWERTOOLS_SERVICE_NAME",
    },
}
WILDCARD_ACTION = re.compile(r"\*")


# --- parsing helpers -------------------------------------------------------------------------


@cache
def _parsed(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = _without_markers(hcl2.load(handle))
    return parsed


def _without_markers(node: Any) -> Any:
    """Drop the parser's ``__is_block__`` / ``__comments__`` bookkeeping keys."""
    if isinstance(node, dict):
        return {
            key: _without_markers(value)
            for key, value in node.items()
            if not (isinstance(key, str) and key.startswith("__"))
        }
    if isinstance(node, list):
        return [_without_markers(item) for item in node]
    return node


def _unquote(value: Any) -> Any:
    """``'"abc"'`` -> ``'abc'``; anything else unchanged."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _blocks(kind: str) -> Iterator[dict[str, Any]]:
    for path in TF_FILES:
        yield from _parsed(path).get(kind, [])


def _locals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in _blocks("locals"):
        for key, value in block.items():
            assert key not in merged, f"local.{key} is defined twice"
            merged[key] = value
    return merged


def _labelled(kind: str) -> dict[str, dict[str, Any]]:
    """``variable`` / ``output`` blocks by their unquoted label."""
    return {_unquote(label): body for block in _blocks(kind) for label, body in block.items()}


def _resources(resource_type: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in _blocks("resource"):
        for type_label, named in block.items():
            if _unquote(type_label) != resource_type:
                continue
            for name, body in named.items():
                found[_unquote(name)] = body
    assert found, f"no {resource_type} resource"
    return found


def _evaluate(template: str, values: dict[str, str]) -> str:
    """Evaluate a quoted string with simple ``${var.x}`` / ``${local.x}`` interpolations."""
    text = str(_unquote(template))
    for reference, value in values.items():
        text = text.replace("${" + reference + "}", value)
    assert "${" not in text, f"unevaluated interpolation in {template}"
    return text


def _name_values(environment: str) -> dict[str, str]:
    project = _unquote(_labelled("variable")["project_name"]["default"])
    prefix = _evaluate(
        _locals()["name_prefix"], {"var.project_name": project, "var.environment": environment}
    )
    return {"local.name_prefix": prefix}


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


# --- the files -------------------------------------------------------------------------------


def test_the_increment_has_its_files() -> None:
    expected = {
        "versions.tf",
        "main.tf",
        "variables.tf",
        "locals.tf",
        "kms.tf",
        "sqs.tf",
        "dynamodb.tf",
        "eventbridge.tf",
        "lambda.tf",
        "stepfunctions.tf",
        "iam.tf",
        "outputs.tf",
        "monitoring.tf",
        "github_oidc.tf",
        "network.tf",
        "cloudtrail.tf",
        "schedules.tf",
    }
    assert expected <= {path.name for path in TF_FILES}
    assert {path.name for path in TFVARS_FILES} >= {"dev.tfvars", "prod.tfvars"}


@pytest.mark.parametrize("path", TF_FILES + TFVARS_FILES, ids=lambda path: path.name)
def test_every_file_parses(path: Path) -> None:
    assert isinstance(_parsed(path), dict)


def test_versions_and_backend() -> None:
    terraform = list(_blocks("terraform"))
    text = repr(terraform)
    assert ">= 1.5" in text
    assert "~> 5." in text
    backends = [backend for block in terraform for backend in block.get("backend", [])]
    assert any('"s3"' in backend for backend in backends), "a partial S3 backend"


# --- variables -------------------------------------------------------------------------------


def test_every_variable_is_typed_and_described() -> None:
    variables = _labelled("variable")
    assert variables
    for name, body in variables.items():
        assert "type" in body, f"variable {name} has no type"
        assert _unquote(body.get("description", "")).strip(), f"variable {name} has no description"


def test_project_name_defaults_to_the_python_default() -> None:
    assert _unquote(_labelled("variable")["project_name"]["default"]) == ResourceNames().project


def test_timings_default_to_the_aws_timings() -> None:
    default = _labelled("variable")["timings"]["default"]
    assert default == dataclasses.asdict(Timings.aws())


@pytest.mark.parametrize("path", TFVARS_FILES, ids=lambda path: path.name)
def test_environment_files_set_only_declared_variables(path: Path) -> None:
    values = set(_parsed(path))
    assert values <= _labelled("variable").keys()
    assert {"environment", "aws_region", "lambda_package_path"} <= values
    assert _unquote(_parsed(path)["environment"]) == path.stem
    if "timings" in values:
        assert set(_parsed(path)["timings"]) == set(dataclasses.asdict(Timings.aws()))


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_names_are_built_as_naming_builds_them(environment: str) -> None:
    # GIVEN the Python names for the default project and this environment
    python = ResourceNames(project="wavepilot", environment=environment)
    values = _name_values(environment)
    # WHEN Terraform's name locals are evaluated the same way
    names = {key: _evaluate(value, values) for key, value in _locals()["names"].items()}
    # THEN every name ResourceNames has is the same in Terraform
    expected = {
        field: getattr(python, field)
        for field, member in vars(ResourceNames).items()
        if isinstance(member, property) and field != "prefix"
    }
    assert names == expected
    assert values["local.name_prefix"] == python.prefix
    functions = _locals()["lambda_functions"]
    assert set(functions) == set(ALL_FUNCTIONS)
    for function in ALL_FUNCTIONS:
        assert _evaluate(functions[function]["name"], values) == python.function(function)


@pytest.mark.parametrize(
    ("resource_type", "name", "attribute", "local_name"),
    [
        ("aws_sqs_queue", "requests", "name", "request_queue"),
        ("aws_sqs_queue", "requests_dlq", "name", "request_dead_letter_queue"),
        ("aws_cloudwatch_event_bus", "this", "name", "event_bus"),
        ("aws_dynamodb_table", "state", "name", "state_table"),
        ("aws_sfn_state_machine", "this", "name", "state_machine"),
        ("aws_iam_role", "state_machine", "name", "state_machine_role"),
        ("aws_cloudwatch_event_rule", "migration_requested", "name", "migration_requested_rule"),
        ("aws_cloudwatch_event_rule", "status_callbacks", "name", "status_callbacks_rule"),
    ],
)
def test_resources_take_their_names_from_the_locals(
    resource_type: str, name: str, attribute: str, local_name: str
) -> None:
    assert _resources(resource_type)[name][attribute] == "${local.names." + local_name + "}"


# --- functions -------------------------------------------------------------------------------


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_every_handler_in_terraform_is_the_codes_and_imports(function: str) -> None:
    handler = _unquote(_locals()["lambda_functions"][function]["handler"])
    assert handler == handler_path(function)
    module_name, _, attribute = handler.rpartition(".")
    if function in BOT_FUNCTIONS and importlib.util.find_spec("bot.handlers") is None:
        # The bot's handlers are written beside this; once bot/handlers/ exists they must import.
        pytest.skip("bot/handlers/ is not written yet")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_every_function_has_a_lambda() -> None:
    functions = _locals()["lambda_functions"]
    assert set(functions) == set(ALL_FUNCTIONS)
    lambdas = _resources("aws_lambda_function")
    assert set(lambdas) == {"this"}
    resource = lambdas["this"]
    assert resource["for_each"] == "${local.lambda_functions}"
    assert resource["function_name"] == "${each.value.name}"
    assert resource["handler"] == "${each.value.handler}"
    # python3.11 was deprecated on 2026-06-30; python3.13 is supported until 2029-06-30.
    assert _unquote(resource["runtime"]) == "python3.13"


def test_every_function_gets_the_environment_its_handlers_read() -> None:
    # GIVEN what the settings model reads, beside the list handlers are known to read
    aliases: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            aliases.add(str(alias.choices[0]))
        elif isinstance(alias, str):
            aliases.add(alias)
    assert aliases <= HANDLER_ENVIRONMENT
    # WHEN the functions' environment is read from Terraform
    function = _resources("aws_lambda_function")["this"]
    assert function["environment"][0]["variables"] == "${local.lambda_environment[each.key]}"
    merged = _locals()["lambda_environment"]
    assert "local.common_environment" in merged
    assert "local.function_environment" in merged
    assert "!contains(local.bot_functions, key)" in merged
    assert "local.bot_environment" in merged
    assert [_unquote(item) for item in _locals()["bot_functions"]] == list(BOT_FUNCTIONS)
    common = set(_locals()["common_environment"])
    specific = {key: set(value) for key, value in _locals()["function_environment"].items()}
    bot = {key: set(value) for key, value in _locals()["bot_environment"].items()}
    # THEN every function has every variable a handler reads, but the runtime's own
    assert common == HANDLER_ENVIRONMENT - LAMBDA_RESERVED
    assert not (common | set().union(*specific.values(), *bot.values())) & LAMBDA_RESERVED
    assert specific == FUNCTION_ONLY_ENVIRONMENT
    # AND the bot's functions get what the bot reads (and its metrics namespace), nothing else
    assert set(bot) == set(BOT_FUNCTIONS)
    for name, expected in BOT_ENVIRONMENT.items():
        assert bot[name] - {"POWERTOOLS_METRICS_NAMESPACE"} == expected, name
    # AND every setting of the bot's model is set on a bot function, but the local-only ones
    bot_aliases = {
        str(field.validation_alias)
        for field in BotSettings.model_fields.values()
        if isinstance(field.validation_alias, str)
    }
    assert bot_aliases - BOT_LOCAL_ONLY <= set().union(*bot.values())
    assert not BOT_LOCAL_ONLY & set().union(*bot.values())


def test_the_ingress_function_reads_the_request_queue_in_partial_batches() -> None:
    mapping = _resources("aws_lambda_event_source_mapping")["requests"]
    assert mapping["function_name"] == '${aws_lambda_function.this["ingress_handler"].arn}'
    assert mapping["event_source_arn"] == "${aws_sqs_queue.requests.arn}"
    assert mapping["batch_size"] == 10
    assert [_unquote(kind) for kind in mapping["function_response_types"]] == [
        "ReportBatchItemFailures"
    ]
    ingress_timeout = _locals()["lambda_functions"]["ingress_handler"]["timeout"]
    assert ingress_timeout <= REQUEST_VISIBILITY_TIMEOUT


def test_the_request_queue_matches_the_local_one() -> None:
    queue = _resources("aws_sqs_queue")["requests"]
    assert queue["visibility_timeout_seconds"] == REQUEST_VISIBILITY_TIMEOUT
    assert "aws_sqs_queue.requests_dlq.arn" in queue["redrive_policy"]
    assert f"maxReceiveCount = {REQUEST_MAX_RECEIVE_COUNT}" in queue["redrive_policy"]
    for name, body in _resources("aws_sqs_queue").items():
        assert body["kms_master_key_id"] == "${aws_kms_key.this.arn}", name


def test_the_table_matches_the_local_one() -> None:
    table = _resources("aws_dynamodb_table")["state"]
    assert (_unquote(table["hash_key"]), _unquote(table["range_key"])) == ("pk", "sk")
    index = table["global_secondary_index"][0]
    assert _unquote(index["name"]) == "gsi1"
    assert (_unquote(index["hash_key"]), _unquote(index["range_key"])) == ("gsi1pk", "gsi1sk")
    assert _unquote(table["ttl"][0]["attribute_name"]) == "expiration"
    assert table["ttl"][0]["enabled"] is True
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["server_side_encryption"][0]["kms_key_arn"] == "${aws_kms_key.this.arn}"


def test_the_key_rotates() -> None:
    assert _resources("aws_kms_key")["this"]["enable_key_rotation"] is True


def _hcl(value: Any) -> str:
    """A JSON value as python-hcl2 prints an HCL expression (``{a = [{b = "c"}]}``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_hcl(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_hcl(item) for item in value) + "]"
    return json.dumps(value)


def test_rules_target_the_functions_the_local_runtime_targets() -> None:
    targets = _resources("aws_cloudwatch_event_target")
    assert targets["start_migration"]["arn"] == '${aws_lambda_function.this["start_migration"].arn}'
    assert targets["start_migration"]["rule"] == (
        "${aws_cloudwatch_event_rule.migration_requested.name}"
    )
    assert targets["callback_handler"]["arn"] == (
        '${aws_lambda_function.this["callback_handler"].arn}'
    )
    assert targets["callback_handler"]["rule"] == (
        "${aws_cloudwatch_event_rule.status_callbacks.name}"
    )
    for name, target in targets.items():
        assert target["retry_policy"], name
        assert target["dead_letter_config"], name
    detail_types = [_unquote(item) for item in _locals()["callback_detail_types"]]
    assert tuple(detail_types) == CALLBACK_DETAIL_TYPES
    # AND the callback rule filters on the events' routing as the local runtime's rule does
    pattern = _resources("aws_cloudwatch_event_rule")["status_callbacks"]["event_pattern"]
    assert "local.callback_detail_types" in pattern
    assert f"detail = {_hcl(CALLBACK_ROUTING_PATTERN)}" in pattern
    permissions = _resources("aws_lambda_permission")
    assert {
        body["function_name"]
        for body in permissions.values()
        if _unquote(body["principal"]) == "events.amazonaws.com"
    } == {
        '${aws_lambda_function.this["start_migration"].function_name}',
        '${aws_lambda_function.this["callback_handler"].function_name}',
        '${aws_lambda_function.this["monitor_migrations"].function_name}',
    }
    # EventBridge may send undeliverable events to the DLQ from every rule with a target.
    dead_letter_sources = _policy_document("event_target_dlq")["statement"][0]["condition"][0]
    assert set(dead_letter_sources["values"]) == {
        "${aws_cloudwatch_event_rule." + target["rule"].split(".")[1] + ".arn}"
        for target in targets.values()
    }


def test_every_scheduled_function_runs_every_five_minutes() -> None:
    # GIVEN the scheduled functions (naming.SCHEDULED_FUNCTIONS)
    rules = _resources("aws_cloudwatch_event_rule")
    targets = _resources("aws_cloudwatch_event_target")
    permissions = _resources("aws_lambda_permission")
    invoke_configs = _resources("aws_lambda_function_event_invoke_config")
    assert SCHEDULED_FUNCTIONS == ("monitor_migrations",)
    for function in SCHEDULED_FUNCTIONS:
        # THEN a rule on the default bus fires every 5 minutes
        rule = rules[function]
        assert "event_bus_name" not in rule, "schedules run on the default bus"
        assert "event_pattern" not in rule
        assert rule["schedule_expression"] == "${local.monitor_schedule}"
        assert _unquote(_locals()["monitor_schedule"]) == "rate(5 minutes)"
        # AND its target is the function, with retries bounded by the next run and a DLQ
        target = targets[function]
        assert target["rule"] == f"${{aws_cloudwatch_event_rule.{function}.name}}"
        assert target["arn"] == f'${{aws_lambda_function.this["{function}"].arn}}'
        assert target["retry_policy"][0]["maximum_event_age_in_seconds"] <= 300
        assert target["dead_letter_config"][0]["arn"] == "${aws_sqs_queue.event_target_dlq.arn}"
        # AND only that rule may invoke it
        [permission] = [
            body
            for body in permissions.values()
            if body["function_name"] == f'${{aws_lambda_function.this["{function}"].function_name}}'
        ]
        assert _unquote(permission["principal"]) == "events.amazonaws.com"
        assert _unquote(permission["action"]) == "lambda:InvokeFunction"
        assert permission["source_arn"] == f"${{aws_cloudwatch_event_rule.{function}.arn}}"
        # AND a failed run is not retried (the next one comes), so it needs no destination
        config = invoke_configs[function]
        assert config["maximum_retry_attempts"] == 0
        assert "destination_config" not in config
        assert function not in [_unquote(name) for name in _locals()["async_functions"]]
        # AND it is the function the alarms' comments name, with a one-minute timeout
        assert _locals()["lambda_functions"][function]["timeout"] == 60
        assert _locals()["lambda_reserved_concurrency"][function] == 1


def test_the_monitor_may_read_exactly_what_it_reads() -> None:
    granted = _bot_actions("monitor_migrations")
    assert set(granted) == {
        "sts:AssumeRole",  # MGN's DescribeSourceServers in each lane, through the target role
        "dynamodb:Query",
        "dynamodb:GetItem",
        "kms:Decrypt",
    }
    assert granted["dynamodb:Query"] == ["${aws_dynamodb_table.state.arn}/index/gsi1"]
    assert granted["dynamodb:GetItem"] == ["${aws_dynamodb_table.state.arn}"]


# --- the state machine -----------------------------------------------------------------------


def test_the_state_machine_renders_the_shared_definition_with_every_placeholder() -> None:
    # GIVEN the state machine resource
    machine = _resources("aws_sfn_state_machine")["this"]
    # THEN it renders the ASL file the local runtime renders, with the placeholder local
    match = re.fullmatch(
        r'\$\{templatefile\("\$\{path\.module\}/(?P<path>[^"]+)", '
        r"local\.state_machine_placeholders\)\}",
        machine["definition"],
    )
    assert match, machine["definition"]
    definition = (TERRAFORM / match["path"]).resolve()
    assert definition.name == DEFINITION_FILE
    assert definition.is_file()
    # AND that local supplies exactly the placeholders the file has
    assert set(_locals()["state_machine_placeholders"]) == placeholders()
    assert machine["logging_configuration"]
    assert machine["tracing_configuration"][0]["enabled"] is True


def test_placeholders_take_the_right_function_and_timing() -> None:
    values = _locals()["state_machine_placeholders"]
    for placeholder, function in FUNCTION_PLACEHOLDERS.items():
        assert values[placeholder] == f'${{aws_lambda_function.this["{function}"].arn}}'
    for field in dataclasses.fields(Timings):
        pascal = "".join(part.capitalize() for part in field.name.split("_"))
        assert values[pascal] == f"${{var.timings.{field.name}}}"


def test_the_launch_settings_default_to_the_aws_launch_settings() -> None:
    default = _labelled("variable")["launch"]["default"]
    assert {k: _unquote(v) if isinstance(v, str) else v for k, v in default.items()} == (
        dataclasses.asdict(LaunchSettings.aws())
    )


def test_a_loop_hands_over_within_the_bounds_launch_settings_allow() -> None:
    launch = _labelled("variable")["launch"]
    # Optional: a launch object written before handovers keeps working, with the default.
    assert "hand_over_after_runs = optional(number, 1000)" in launch["type"]
    assert LaunchSettings.aws().hand_over_after_runs == 1000
    assert any(
        validation["condition"]
        == (
            "${var.launch.hand_over_after_runs >= 1 && "
            f"var.launch.hand_over_after_runs <= {MAX_RUNS_PER_LOOP}}}"
        )
        for validation in launch["validation"]
    ), launch["validation"]


def test_the_launch_coordinator_renders_its_definition_and_may_invoke_only_its_function() -> None:
    machine = _resources("aws_sfn_state_machine")["launch_coordinator"]
    assert machine["name"] == "${local.names.launch_coordinator}"
    assert machine["role_arn"] == "${aws_iam_role.launch_coordinator.arn}"
    match = re.fullmatch(
        r'\$\{templatefile\("\$\{path\.module\}/(?P<path>[^"]+)", '
        r"local\.launch_coordinator_placeholders\)\}",
        machine["definition"],
    )
    assert match, machine["definition"]
    assert (TERRAFORM / match["path"]).resolve().name == COORDINATOR_DEFINITION_FILE
    values = _locals()["launch_coordinator_placeholders"]
    assert set(values) == placeholders(COORDINATOR_DEFINITION_FILE)
    for placeholder, function in COORDINATOR_FUNCTION_PLACEHOLDERS.items():
        assert values[placeholder] == f'${{aws_lambda_function.this["{function}"].arn}}'
    for field in dataclasses.fields(LaunchSettings):
        pascal = "".join(part.capitalize() for part in field.name.split("_"))
        if pascal == "QuotasByLane":  # rendered as JSON, named as the loop's config names them
            assert values[pascal].startswith("${jsonencode(")
            assert "var.launch.quotas_by_lane" in values[pascal]
            for name, in_config in LANE_QUOTA_NAMES.items():
                assert f"{in_config} = quotas.{name}" in values[pascal]
        elif pascal in values:
            assert values[pascal] == f"${{var.launch.{field.name}}}"
    placeholders_of_migration = _locals()["state_machine_placeholders"]
    assert placeholders_of_migration["LaunchDesign"] == "${var.launch.design}"
    policy = _policy_document("launch_coordinator")
    invoking = [
        statement
        for statement in policy["statement"]
        if any("lambda:" in _unquote(action) for action in statement["actions"])
    ]
    assert len(invoking) == 1
    assert [_unquote(action) for action in invoking[0]["actions"]] == ["lambda:InvokeFunction"]
    assert all('["coordinate_launches"]' in resource for resource in invoking[0]["resources"])


def test_the_state_machine_may_invoke_only_the_pipeline_functions() -> None:
    pipeline = [_unquote(item) for item in _locals()["pipeline_functions"]]
    assert sorted(pipeline) == sorted(FUNCTION_PLACEHOLDERS.values())
    policy = next(
        body
        for block in _blocks("data")
        for type_label, named in block.items()
        if _unquote(type_label) == "aws_iam_policy_document"
        for name, body in named.items()
        if _unquote(name) == "state_machine"
    )
    invoking = [
        statement
        for statement in policy["statement"]
        if any("lambda:" in _unquote(action) for action in statement["actions"])
    ]
    assert len(invoking) == 1
    assert [_unquote(action) for action in invoking[0]["actions"]] == ["lambda:InvokeFunction"]
    assert "local.pipeline_functions" in invoking[0]["resources"]


# --- IAM -------------------------------------------------------------------------------------


def _actions() -> list[str]:
    found: list[str] = []
    for path in TF_FILES:
        for key, value in _walk(_parsed(path)):
            if key in {"actions", "not_actions", "Action", "NotAction"} and isinstance(value, list):
                found.extend(_unquote(item) for item in value)
    return found


def test_no_policy_statement_uses_a_wildcard_action() -> None:
    actions = _actions()
    assert len(actions) > 20, "the walk found the policy statements"
    wildcards = [action for action in actions if WILDCARD_ACTION.search(action)]
    assert not wildcards
    assert all(re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action) for action in actions), actions


def test_every_function_has_its_own_role_and_known_capabilities() -> None:
    capabilities = _locals()["lambda_capabilities"]
    statements = _locals()["lambda_statements"]
    assert set(capabilities) == set(ALL_FUNCTIONS)
    for function, names in capabilities.items():
        unknown = {_unquote(name) for name in names} - statements.keys()
        assert not unknown, f"{function}: {unknown}"
    role = _resources("aws_iam_role")["lambda"]
    assert role["for_each"] == "${local.lambda_functions}"
    assert _resources("aws_lambda_function")["this"]["role"] == (
        "${aws_iam_role.lambda[each.key].arn}"
    )


# --- outputs ---------------------------------------------------------------------------------


def test_outputs_the_quick_start_uses() -> None:
    outputs = _labelled("output")
    assert {"sqs_queue_url", "state_machine_arn", "event_bus_name"} <= outputs.keys()
    for name, body in outputs.items():
        assert _unquote(body.get("description", "")).strip(), f"output {name} has no description"


def test_terraform_renders_the_definition_as_python_does() -> None:
    # templatefile() also reads "%{" directives and "$${" escapes, which render() does not.
    text = (
        Path(__file__).resolve().parent.parent / "orchestration/statemachine" / DEFINITION_FILE
    ).read_text(encoding="utf-8")
    assert "%{" not in text
    assert "$${" not in text
    assert len(re.findall(r"\$\{", text)) == len(re.findall(r"\$\{\w+\}", text))


# --- the Slack bot ---------------------------------------------------------------------------


def _policy_document(name: str) -> dict[str, Any]:
    for block in _blocks("data"):
        for type_label, named in block.items():
            if _unquote(type_label) != "aws_iam_policy_document":
                continue
            for label, body in named.items():
                if _unquote(label) == name:
                    found: dict[str, Any] = body
                    return found
    raise AssertionError(f"no aws_iam_policy_document.{name}")


def test_the_status_rule_sends_every_routine_event_to_the_standard_status_queue() -> None:
    # GIVEN the status rule and its target
    rule = _resources("aws_cloudwatch_event_rule")["status_to_slack"]
    target = _resources("aws_cloudwatch_event_target")["slack_status"]
    # THEN the rule matches every event type but the priority path's, from the bus
    assert rule["name"] == "${local.names.status_to_slack_rule}"
    assert rule["event_bus_name"] == "${aws_cloudwatch_event_bus.this.name}"
    assert re.search(
        r'"detail-type"\s*=\s*\[\{\s*"?anything-but"?\s*=\s*local\.slack_priority_detail_types',
        rule["event_pattern"],
    ), rule["event_pattern"]
    assert {"MigrationRequested", *CALLBACK_DETAIL_TYPES} == set(EVENT_TYPES)
    # AND the target is the status queue (standard: no message group), with retries and a DLQ
    assert target["arn"] == "${aws_sqs_queue.slack_status.arn}"
    assert target["rule"] == "${aws_cloudwatch_event_rule.status_to_slack.name}"
    assert "sqs_target" not in target
    assert target["retry_policy"][0]["maximum_retry_attempts"] > 0
    assert target["dead_letter_config"][0]["arn"] == "${aws_sqs_queue.event_target_dlq.arn}"
    # AND EventBridge may send to the queue only from this rule
    statement = _policy_document("slack_status")["statement"][0]
    assert [_unquote(action) for action in statement["actions"]] == ["sqs:SendMessage"]
    assert statement["condition"][0]["values"] == [
        "${aws_cloudwatch_event_rule.status_to_slack.arn}"
    ]


def test_progress_on_github_is_a_fifo_queue_of_one_group_fed_by_a_rule_off_until_configured() -> (
    None
):
    # GIVEN the rule to report_github_progress, its target, queue and event source mapping
    rule = _resources("aws_cloudwatch_event_rule")["status_to_github"]
    target = _resources("aws_cloudwatch_event_target")["github_progress"]
    queues = _resources("aws_sqs_queue")
    mapping = _resources("aws_lambda_event_source_mapping")["github_progress"]
    # THEN the rule takes the events wave_progress names, and is off without a repository
    assert rule["name"] == "${local.names.status_to_github_rule}"
    assert "local.github_progress_detail_types" in rule["event_pattern"]
    detail_types = [_unquote(t) for t in _locals()["github_progress_detail_types"]]
    assert tuple(detail_types) == PROGRESS_DETAIL_TYPES
    assert rule["state"] == '${local.github_progress_repository == "" ? "DISABLED" : "ENABLED"}'
    assert _locals()["github_progress_repository"] == (
        '${var.github_progress && var.github_repository != null ? var.github_repository : ""}'
    )
    # AND its target is the FIFO queue in naming's one group (one batch at a time)
    assert target["arn"] == "${aws_sqs_queue.github_progress.arn}"
    group = _unquote(target["sqs_target"][0]["message_group_id"])
    assert group == GITHUB_PROGRESS_MESSAGE_GROUP
    assert target["dead_letter_config"][0]["arn"] == "${aws_sqs_queue.event_target_dlq.arn}"
    queue, dead_letters = queues["github_progress"], queues["github_progress_dlq"]
    for body in (queue, dead_letters):
        assert body["fifo_queue"] is True
        assert body["kms_master_key_id"] == "${aws_kms_key.this.arn}"
    assert "aws_sqs_queue.github_progress_dlq.arn" in queue["redrive_policy"]
    assert queue["visibility_timeout_seconds"] == (
        "${6 * local.lambda_functions.report_github_progress.timeout}"
    )
    statement = _policy_document("github_progress")["statement"][0]
    assert statement["condition"][0]["values"] == [
        "${aws_cloudwatch_event_rule.status_to_github.arn}"
    ]
    # AND the function reads it in partial batches; its token's secret (which Terraform sets no
    # value of: test_secrets_are_encrypted_and_get_no_value_from_terraform) is named in its
    # environment with the repository
    assert mapping["function_name"] == ('${aws_lambda_function.this["report_github_progress"].arn}')
    assert [_unquote(kind) for kind in mapping["function_response_types"]] == [
        "ReportBatchItemFailures"
    ]
    environment = _locals()["function_environment"]["report_github_progress"]
    assert environment["GITHUB_TOKEN_SECRET_ARN"] == (
        "${aws_secretsmanager_secret.github_token.arn}"
    )
    assert environment["GITHUB_REPOSITORY"] == "${local.github_progress_repository}"


def test_the_priority_rule_sends_what_a_person_must_act_on_to_its_own_fifo_queue() -> None:
    # GIVEN the priority rule and its target
    rule = _resources("aws_cloudwatch_event_rule")["priority_to_slack"]
    target = _resources("aws_cloudwatch_event_target")["slack_priority"]
    # THEN the rule matches exactly the code's priority types, which the status rule excludes
    assert rule["name"] == "${local.names.priority_to_slack_rule}"
    assert rule["event_bus_name"] == "${aws_cloudwatch_event_bus.this.name}"
    assert re.search(
        r'"detail-type"\s*=\s*local\.slack_priority_detail_types', rule["event_pattern"]
    ), rule["event_pattern"]
    listed = [_unquote(t) for t in _locals()["slack_priority_detail_types"]]
    assert listed == list(PRIORITY_EVENT_TYPES)
    assert set(PRIORITY_EVENT_TYPES) < set(EVENT_TYPES)
    # AND the target is the priority queue with naming's group, retries and a DLQ
    assert target["arn"] == "${aws_sqs_queue.slack_priority.arn}"
    assert target["rule"] == "${aws_cloudwatch_event_rule.priority_to_slack.name}"
    group = _unquote(target["sqs_target"][0]["message_group_id"])
    assert group == SLACK_PRIORITY_MESSAGE_GROUP
    assert target["retry_policy"][0]["maximum_retry_attempts"] > 0
    assert target["dead_letter_config"][0]["arn"] == "${aws_sqs_queue.event_target_dlq.arn}"
    # AND EventBridge may send to the queue only from this rule
    statement = _policy_document("slack_priority")["statement"][0]
    assert [_unquote(action) for action in statement["actions"]] == ["sqs:SendMessage"]
    assert statement["condition"][0]["values"] == [
        "${aws_cloudwatch_event_rule.priority_to_slack.arn}"
    ]
    # AND a target that cannot deliver to it leaves the event in the events DLQ
    dlq_sources = _policy_document("event_target_dlq")["statement"][0]["condition"][0]["values"]
    assert "${aws_cloudwatch_event_rule.priority_to_slack.arn}" in dlq_sources


def test_the_bots_queues_are_encrypted_status_standard_priority_fifo_each_with_its_dlq() -> None:
    queues = _resources("aws_sqs_queue")
    redrive_allowed = _resources("aws_sqs_queue_redrive_allow_policy")
    names = _locals()["names"]
    # Both of the bot's queues, the same way but for FIFO (the priority queue beside the
    # status queue: one group, in order; the status queue standard, read within a window)
    for key, fifo in (("slack_status", False), ("slack_priority", True)):
        queue, dead_letters = queues[key], queues[f"{key}_dlq"]
        assert queue["name"] == f"${{local.names.{key}_queue}}"
        assert dead_letters["name"] == f"${{local.names.{key}_dead_letter_queue}}"
        for body in (queue, dead_letters):
            assert body.get("fifo_queue", False) is fifo
            assert body.get("content_based_deduplication", False) is fifo
            assert body["kms_master_key_id"] == "${aws_kms_key.this.arn}"
        for name in (f"{key}_queue", f"{key}_dead_letter_queue"):
            assert _unquote(names[name]).endswith(".fifo") is fifo
        assert f"aws_sqs_queue.{key}_dlq.arn" in queue["redrive_policy"]
        # The notifier knows the last receive (it dead-letters a failure there, with why).
        assert "maxReceiveCount = local.slack_max_receives" in queue["redrive_policy"]
        # Six times the notifier's timeout (AWS's advice for a Lambda event source).
        assert queue["visibility_timeout_seconds"] == (
            "${6 * local.lambda_functions.slack_notifier.timeout}"
        )
        # Its DLQ may be redriven back to it only (docs/RUNBOOK.md)
        allow = redrive_allowed[f"{key}_dlq"]
        assert allow["queue_url"] == f"${{aws_sqs_queue.{key}_dlq.id}}"
        assert f"aws_sqs_queue.{key}.arn" in allow["redrive_allow_policy"]
    assert _locals()["lambda_functions"]["slack_notifier"]["timeout"] == 60
    assert _locals()["slack_max_receives"] == REQUEST_MAX_RECEIVE_COUNT  # as locally
    notifier_environment = _locals()["bot_environment"]["slack_notifier"]
    assert notifier_environment["SLACK_MAX_RECEIVES"] == "${local.slack_max_receives}"


def test_the_notifier_reads_both_queues_in_partial_batches_one_at_a_time_each() -> None:
    mappings = _resources("aws_lambda_event_source_mapping")
    for key in ("slack_status", "slack_priority"):
        mapping = mappings[key]
        assert mapping["function_name"] == '${aws_lambda_function.this["slack_notifier"].arn}'
        assert mapping["event_source_arn"] == f"${{aws_sqs_queue.{key}.arn}}"
        assert mapping["batch_size"] == 10
        assert [_unquote(kind) for kind in mapping["function_response_types"]] == [
            "ReportBatchItemFailures"
        ]
    # The status queue's batches are filled within a window (as locally on the simulated
    # clock), by two pollers at most (the least Lambda allows); the priority queue's go at once
    status = mappings["slack_status"]
    assert status["batch_size"] == SLACK_STATUS_BATCH_SIZE
    assert status["maximum_batching_window_in_seconds"] == (
        "${var.slack_status_batching_window_seconds}"
    )
    window = _labelled("variable")["slack_status_batching_window_seconds"]
    assert window["default"] == SLACK_STATUS_BATCHING_WINDOW_SECONDS
    assert status["scaling_config"][0]["maximum_concurrency"] == 2
    assert "maximum_batching_window_in_seconds" not in mappings["slack_priority"]
    function = _resources("aws_lambda_function")["this"]
    assert function["reserved_concurrent_executions"] == (
        "${local.lambda_reserved_concurrency[each.key]}"
    )
    reserved = _locals()["lambda_reserved_concurrency"]
    assert set(reserved) == set(ALL_FUNCTIONS)
    # One notifier for both queues: its pacing sees every call, one batch folds a thread
    assert reserved["slack_notifier"] == 1
    # A reserved limit on the SQS-fed ingress handler would dead-letter throttled requests.
    assert reserved["ingress_handler"] is None


def test_the_slack_endpoint_is_a_function_url_that_slack_signs() -> None:
    url = _resources("aws_lambda_function_url")["slack_app"]
    assert url["function_name"] == '${aws_lambda_function.this["slack_app"].function_name}'
    assert _unquote(url["authorization_type"]) == "NONE"
    assert _locals()["lambda_functions"]["slack_app"]["timeout"] == 30
    permission = _resources("aws_lambda_permission")["slack_app_url"]
    assert _unquote(permission["action"]) == "lambda:InvokeFunctionUrl"
    assert _unquote(permission["function_url_auth_type"]) == "NONE"
    # Lazy listeners: the app re-invokes itself asynchronously, failures to the DLQ.
    assert "slack_app" in [_unquote(name) for name in _locals()["async_functions"]]


def _bot_actions(function: str) -> dict[str, list[str]]:
    """Action -> resources, over every capability of a bot function."""
    statements = _locals()["lambda_statements"]
    granted: dict[str, list[str]] = {}
    for name in _locals()["lambda_capabilities"][function]:
        statement = statements[_unquote(name)]
        for action in statement["actions"]:
            granted.setdefault(_unquote(action), []).extend(
                _unquote(resource) for resource in statement["resources"]
            )
    return granted


def test_the_bot_functions_get_exactly_the_contracts_permissions() -> None:
    app = _bot_actions("slack_app")
    assert set(app) == {
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        # a group decision: its VMs' tokens and sequences read, their audits written together
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "events:PutEvents",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:StartExecution",
        "states:DescribeExecution",
        "states:StopExecution",
        "lambda:InvokeFunction",
        "sqs:SendMessage",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    assert app["sqs:SendMessage"] == ["${aws_sqs_queue.slack_status.arn}"]
    assert app["dynamodb:BatchGetItem"] == ["${aws_dynamodb_table.state.arn}"]
    assert app["dynamodb:BatchWriteItem"] == ["${aws_dynamodb_table.state.arn}"]
    assert sorted(app["secretsmanager:GetSecretValue"]) == [
        "${aws_secretsmanager_secret.slack_bot_token.arn}",
        "${aws_secretsmanager_secret.slack_signing.arn}",
    ]
    assert app["states:StartExecution"] == ["${local.state_machine_arn}"]
    assert app["states:StopExecution"][0].endswith(":execution:${local.names.state_machine}:*")
    assert app["lambda:InvokeFunction"] == [
        "${local.slack_app_arn}",
        "${local.slack_app_arn}:*",
    ]
    assert "local.lambda_functions.slack_app.name" in _locals()["slack_app_arn"]
    notifier = _bot_actions("slack_notifier")
    assert set(notifier) == {
        "secretsmanager:GetSecretValue",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    # The DLQs (unreadable bodies), and its own status queue (owed-roots reminders).
    assert set(notifier["sqs:SendMessage"]) == {
        "${aws_sqs_queue.slack_status_dlq.arn}",
        "${aws_sqs_queue.slack_priority_dlq.arn}",
        "${aws_sqs_queue.slack_status.arn}",
    }
    # The wave summary and the group approval message count on gsi1 only, never the table.
    assert notifier["dynamodb:Query"] == ["${aws_dynamodb_table.state.arn}/index/gsi1"]
    assert notifier["secretsmanager:GetSecretValue"] == [
        "${aws_secretsmanager_secret.slack_bot_token.arn}"
    ]
    assert set(notifier["sqs:ReceiveMessage"]) == {
        "${aws_sqs_queue.slack_status.arn}",
        "${aws_sqs_queue.slack_priority.arn}",
    }


def test_secrets_are_encrypted_and_get_no_value_from_terraform() -> None:
    secrets = _resources("aws_secretsmanager_secret")
    assert {
        "callback_signing",
        "slack_bot_token",
        "slack_signing",
        "github_token",
    } <= secrets.keys()
    assert secrets["github_token"]["name"] == "${local.names.github_token_secret}"
    assert secrets["slack_bot_token"]["name"] == "${local.names.slack_bot_token_secret}"
    assert secrets["slack_signing"]["name"] == "${local.names.slack_signing_secret}"
    for name, body in secrets.items():
        assert body["kms_key_id"] == "${aws_kms_key.this.arn}", name
    versions = [
        type_label
        for block in _blocks("resource")
        for type_label in block
        if _unquote(type_label) == "aws_secretsmanager_secret_version"
    ]
    assert not versions, "secret values are set with put-secret-value, never in the state"


def test_eventbridge_may_use_the_key_for_the_encrypted_queues() -> None:
    statements = _policy_document("kms")["statement"]
    principals = {
        _unquote(identifier)
        for statement in statements
        for principal in statement.get("principals", [])
        for identifier in principal["identifiers"]
    }
    assert {"events.amazonaws.com", "cloudwatch.amazonaws.com"} <= principals


# --- monitoring ------------------------------------------------------------------------------


def test_every_alarm_the_seed_lists_exists_and_notifies_the_topic() -> None:
    alarms = _resources("aws_cloudwatch_metric_alarm")
    # GIVEN the seed's key metrics and the approval alarm
    expected = {
        "dead_letters",
        "lambda_error_rate",
        "replication_lag",
        "replication_stalled",
        "state_machine_failures",
        "approvals_expired",
        "approval_waiting",
    }
    assert expected <= alarms.keys()
    for name, alarm in alarms.items():
        assert alarm["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"], name
    # THEN each has the seed's threshold
    dead_letters = alarms["dead_letters"]
    assert dead_letters["for_each"] == "${local.dead_letter_queues}"
    assert set(_locals()["dead_letter_queues"]) == {
        "requests",
        "events",
        "slack_status",
        "slack_priority",
        "github_progress",
    }
    assert (dead_letters["threshold"], _unquote(dead_letters["metric_name"])) == (
        5,
        "ApproximateNumberOfMessagesVisible",
    )
    error_rate = alarms["lambda_error_rate"]
    assert error_rate["for_each"] == "${local.lambda_functions}"
    assert error_rate["threshold"] == 1
    expression = next(query for query in error_rate["metric_query"] if "expression" in query)
    assert "100 * errors / invocations" in expression["expression"]
    lag = alarms["replication_lag"]
    assert (lag["threshold"], _unquote(lag["metric_name"])) == (600, "ReplicationLagSeconds")
    failures = alarms["state_machine_failures"]
    assert (failures["threshold"], failures["period"]) == (2, 3600)
    assert _unquote(failures["metric_name"]) == "ExecutionsFailed"
    assert _unquote(failures["comparison_operator"]) == "GreaterThanThreshold"


def test_the_approval_expiry_filter_matches_only_the_approval_gate() -> None:
    # The approval gate and, in the batched launch design, the launch requests are the only
    # tasks that can raise TaskTimedOut: the others call Lambda by ARN (LambdaFunctionTimedOut),
    # so the filter counts the expired approvals (and launch requests nobody answered in time,
    # which the per-vm default never makes).
    definition = json.loads(
        re.sub(
            r"\$\{\w+\}",
            "1",
            (REPO / "orchestration/statemachine" / DEFINITION_FILE).read_text(encoding="utf-8"),
        )
    )
    integrations = [
        name
        for name, state in definition["States"].items()
        if str(state.get("Resource", "")).startswith("arn:aws:states:::")
    ]
    assert sorted(integrations) == [
        "AwaitApproval",
        "AwaitParkDecision",  # a park nobody decided in time: counted too (monitoring.tf)
        "RequestCutover",
        "RequestTestLaunch",
        "VerifyTestAndAwaitApproval",  # batched: the approval gate that verifies first
    ]
    gate = definition["States"]["AwaitApproval"]
    assert gate["Resource"].endswith(".waitForTaskToken")
    assert any("States.Timeout" in catch["ErrorEquals"] for catch in gate["Catch"])
    metric_filter = _resources("aws_cloudwatch_log_metric_filter")["approvals_expired"]
    assert metric_filter["log_group_name"] == "${aws_cloudwatch_log_group.state_machine.name}"
    assert '$.type = \\"TaskTimedOut\\"' in metric_filter["pattern"]


def test_the_sns_topic_is_encrypted_and_email_is_optional() -> None:
    topic = _resources("aws_sns_topic")["alarms"]
    assert topic["kms_master_key_id"] == "${aws_kms_key.this.arn}"
    subscription = _resources("aws_sns_topic_subscription")["alarm_email"]
    assert subscription["count"] == "${var.alarm_email == null ? 0 : 1}"


def test_the_dashboard_shows_the_seeds_panels() -> None:
    body = _resources("aws_cloudwatch_dashboard")["this"]["dashboard_body"]
    for title in (
        "Migration success rate",
        "Migration duration",
        "Errors by type",
        "Replication lag",
        "Dead-letter queue depth",
    ):
        assert title in body, title
    # The metrics the handlers emit (orchestration/observability.py count()).
    for metric in ("RequestsRejected", "CallbacksFailed", "ExecutionsStarted"):
        assert metric in body, metric


def test_every_log_group_has_retention_and_encryption() -> None:
    groups = _resources("aws_cloudwatch_log_group")
    assert groups["lambda"]["for_each"] == "${local.lambda_functions}"
    assert "state_machine" in groups
    for name, group in groups.items():
        assert group["retention_in_days"] == "${var.log_retention_days}", name
        assert group["kms_key_id"] == "${aws_kms_key.this.arn}", name
    function = _resources("aws_lambda_function")["this"]
    assert function["logging_config"][0]["log_group"] == (
        "${aws_cloudwatch_log_group.lambda[each.key].name}"
    )
    assert _labelled("variable")["log_retention_days"]["default"] >= 365


# --- GitHub OIDC -----------------------------------------------------------------------------


def test_the_github_roles_are_the_ones_the_workflows_assume() -> None:
    workflows = REPO / ".github" / "workflows"
    text = (workflows / "publish.yml").read_text(encoding="utf-8") + (
        workflows / "deploy.yml"
    ).read_text(encoding="utf-8")
    text += (workflows / "manifests.yml").read_text(encoding="utf-8")
    assumed = set(re.findall(r"role-to-assume: \$\{\{ vars\.(\w+) \}\}", text))
    outputs = _labelled("output")
    by_variable = {
        "WAVEPILOT_PUBLISH_ROLE_ARN": "github_publish_role_arn",
        "TERRAFORM_PLAN_ROLE_ARN": "terraform_plan_role_arn",
        "TERRAFORM_APPLY_ROLE_ARN": "terraform_apply_role_arn",
        "WAVEPILOT_MANIFEST_PLAN_ROLE_ARN": "manifest_plan_role_arn",
    }
    assert assumed == set(by_variable)
    for variable, output in by_variable.items():
        assert variable in _unquote(outputs[output]["description"])


def test_the_publish_role_may_only_send_to_the_request_queue() -> None:
    statements = _policy_document("github_publish")["statement"]
    sqs = [statement for statement in statements if "sqs:" in repr(statement["actions"])]
    assert len(sqs) == 1
    assert [_unquote(action) for action in sqs[0]["actions"]] == ["sqs:SendMessage"]
    assert sqs[0]["resources"] == ["${aws_sqs_queue.requests.arn}"]
    trust = _policy_document("github_trust")["statement"][0]
    variables = {_unquote(condition["variable"]) for condition in trust["condition"]}
    assert variables == {
        "token.actions.githubusercontent.com:aud",
        "token.actions.githubusercontent.com:sub",
    }


def test_the_manifest_plan_role_is_off_by_default_and_may_only_assume_the_lanes_readers() -> None:
    # GIVEN the manifests workflow's pull request role (MGN drift in the plan)
    role = _plain(_resources("aws_iam_role")["manifest_plan"])
    variable = _labelled("variable")["manifest_plan_mgn_drift"]
    # THEN it exists only when asked for, with GitHub configured
    assert (variable["type"], variable["default"]) == ("bool", False)
    assert role["count"] == "${local.manifest_plan_enabled ? 1 : 0}"
    assert _locals()["manifest_plan_enabled"] == (
        "${local.github_enabled && var.manifest_plan_mgn_drift}"
    )
    # AND only pull requests of the repository may assume it (the default subject)
    assert role["assume_role_policy"] == (
        '${data.aws_iam_policy_document.github_trust["manifest_plan"].json}'
    )
    assert _locals()["github_subjects"]["manifest_plan"] == (
        "${length(var.github_manifest_plan_subjects) > 0 ? var.github_manifest_plan_subjects : "
        '["repo:${coalesce(var.github_repository, "none/none")}:pull_request"]}'
    )
    trust = _plain(_policy_document("github_trust"))
    assert trust["statement"][0]["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    # AND it holds one action: assuming the grouping reader role of each lane's account
    [statement] = _plain(_policy_document("manifest_plan"))["statement"]
    assert statement["actions"] == ["sts:AssumeRole"]
    assert statement["resources"] == (
        "${[for account in local.lane_accounts : "
        '"arn:${data.aws_partition.current.partition}:iam::${account}:role/'
        '${local.grouping_reader_role_name}"]}'
    )
    assert _locals()["lane_accounts"] == (
        '${distinct([for lane in local.target_lanes : split("/", lane)[0]])}'
    )
    policies = _plain(_resources("aws_iam_role_policy"))
    assert (
        policies["manifest_plan"]["policy"] == "${data.aws_iam_policy_document.manifest_plan.json}"
    )
    attachments = _plain(_resources("aws_iam_role_policy_attachment"))
    assert not [a for a in attachments.values() if "manifest_plan" in a["role"]]
    # AND the reader's name is naming.py's unless configured (the module's default too)
    assert _locals()["grouping_reader_role_name"] == (
        "${coalesce(var.grouping_reader_role_name, local.names.grouping_reader_role)}"
    )


# --- outputs ---------------------------------------------------------------------------------


def test_outputs_the_docs_use() -> None:
    outputs = _labelled("output")
    assert {
        "sqs_queue_url",
        "state_machine_arn",
        "event_bus_name",
        "slack_endpoint_url",
        "dashboard_url",
    } <= outputs.keys()
    assert outputs["slack_endpoint_url"]["value"] == (
        "${aws_lambda_function_url.slack_app.function_url}"
    )
    assert "aws_cloudwatch_dashboard.this.dashboard_name" in outputs["dashboard_url"]["value"]


# --- the target-account module (a lane's role) ---------------------------------------------------

MODULE = TERRAFORM / "modules" / "target-account"


def _module() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(MODULE.glob("*.tf")):
        for key, blocks in _parsed(path).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def test_the_module_has_its_files_and_typed_described_variables() -> None:
    assert {p.name for p in MODULE.glob("*.tf")} == {
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "versions.tf",
    }
    for block in _module()["variable"]:
        for name, body in block.items():
            assert body.get("type"), f"variable {name} has no type"
            assert body.get("description"), f"variable {name} has no description"
    for block in _module()["output"]:
        for name, body in block.items():
            assert body.get("description"), f"output {name} has no description"


@pytest.mark.parametrize("environment", ["local", "prod"])
def test_the_module_names_the_role_as_naming_and_the_hub_do(environment: str) -> None:
    [module_locals] = _module()["locals"]
    values = {"var.project_name": "wavepilot", "var.environment": environment}
    built = re.sub(
        r"\$\{(var\.\w+)\}", lambda m: values[m[1]], _unquote(module_locals["role_name"])
    )
    assert built == ResourceNames(environment=environment).target_role
    hub = _evaluate(
        _locals()["names"]["target_role"], {"local.name_prefix": f"wavepilot-{environment}"}
    )
    assert hub == built


def _plain(node: Any) -> Any:
    """Every quoted string in a parsed block, unquoted."""
    if isinstance(node, dict):
        return {_unquote(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    return _unquote(node) if isinstance(node, str) else node


def test_the_role_trusts_only_the_hub_functions_roles_in_the_hub_account() -> None:
    documents = {
        _unquote(name): _plain(body)
        for block in _module()["data"]
        for kind, named in block.items()
        if _unquote(kind) == "aws_iam_policy_document"
        for name, body in named.items()
    }
    [statement] = documents["trust"]["statement"]
    assert statement["actions"] == ["sts:AssumeRole"]
    [principals] = statement["principals"]
    assert (principals["type"], principals["identifiers"]) == (
        "AWS",
        "${var.hub_function_role_arns}",
    )
    [condition] = statement["condition"]
    assert (condition["variable"], condition["values"]) == (
        "aws:PrincipalAccount",
        ["${var.hub_account_id}"],
    )
    [organization] = statement["dynamic"]
    assert "aws:PrincipalOrgID" in json.dumps(organization)
    # AND the hub's functions may assume only roles of that name, in any account
    statements = _plain(_locals()["lambda_statements"])
    assert statements["assume_target_role"]["actions"] == ["sts:AssumeRole"]
    assert statements["assume_target_role"]["resources"] == [
        "arn:${data.aws_partition.current.partition}:iam::*:role/${local.names.target_role}"
    ]
    # AND no hub function holds an MGN, EC2 or IAM action of its own
    for name, statement_body in statements.items():
        for action in statement_body["actions"]:
            assert not action.startswith(("mgn:", "ec2:", "iam:")), (name, action)


def _module_documents() -> dict[str, Any]:
    return {
        _unquote(name): _plain(body)
        for block in _module()["data"]
        for kind, named in block.items()
        if _unquote(kind) == "aws_iam_policy_document"
        for name, body in named.items()
    }


@pytest.mark.parametrize("environment", ["local", "prod"])
def test_the_grouping_reader_is_named_as_naming_and_the_hub_name_it(environment: str) -> None:
    [module_locals] = _module()["locals"]
    values = {"var.project_name": "wavepilot", "var.environment": environment}
    default = re.search(
        r'"(\$\{var\.project_name\}[^"]*)"', module_locals["grouping_reader_role_name"]
    )
    assert default is not None
    built = re.sub(r"\$\{(var\.\w+)\}", lambda m: values[m[1]], default[1])
    assert built == ResourceNames(environment=environment).grouping_reader_role
    assert module_locals["grouping_reader_role_name"].startswith(
        "${coalesce(var.grouping_reader_role_name, "
    )


def test_the_grouping_reader_trusts_only_the_hub_plan_role_and_may_only_read_mgns_grouping() -> (
    None
):
    documents = _module_documents()
    # GIVEN the module's read-only role: created only given the hub's manifest plan role
    [module_locals] = _module()["locals"]
    assert module_locals["grouping_reader"] == "${var.hub_manifest_plan_role_arn != null}"
    roles = {
        _unquote(name): _plain(body)
        for block in _module()["resource"]
        for kind, named in block.items()
        if _unquote(kind) == "aws_iam_role"
        for name, body in named.items()
    }
    reader = roles["grouping_reader"]
    assert reader["count"] == "${local.grouping_reader ? 1 : 0}"
    assert reader["name"] == "${local.grouping_reader_role_name}"
    assert reader["assume_role_policy"] == (
        "${data.aws_iam_policy_document.grouping_reader_trust[0].json}"
    )
    # THEN it trusts that one role, in the hub account, and nothing else
    [statement] = documents["grouping_reader_trust"]["statement"]
    assert statement["actions"] == ["sts:AssumeRole"]
    [principals] = statement["principals"]
    assert (principals["type"], principals["identifiers"]) == (
        "AWS",
        ["${var.hub_manifest_plan_role_arn}"],
    )
    [condition] = statement["condition"]
    assert (condition["variable"], condition["values"]) == (
        "aws:PrincipalAccount",
        ["${var.hub_account_id}"],
    )
    # AND it may make exactly plan --mgn-drift's three MGN reads (tests/test_mgn_drift.py
    # records them), in the lanes' Regions only
    [reads] = documents["grouping_reader"]["statement"]
    assert reads["actions"] == [
        "mgn:DescribeSourceServers",
        "mgn:ListApplications",
        "mgn:ListWaves",
    ]
    assert reads["resources"] == ["*"]
    [region] = reads["condition"]
    assert (region["variable"], region["values"]) == ("aws:RequestedRegion", "${var.regions}")
    assert not documents["grouping_reader"].get("dynamic")


@pytest.mark.skipif(shutil.which("terraform") is None, reason="no terraform on PATH")
@pytest.mark.skipif(not Path("/opt/tf-plugins").is_dir(), reason="no provider mirror")
@pytest.mark.parametrize("directory", [TERRAFORM, MODULE], ids=["root", "target-account"])
def test_terraform_validates_offline_with_the_provider_mirror(
    directory: Path, tmp_path: Path
) -> None:
    """``terraform init -backend=false -plugin-dir=/opt/tf-plugins`` + ``validate``, in a copy
    (so no .terraform/ or lock file is left in the repository)."""
    copy = tmp_path / directory.name
    shutil.copytree(directory, copy, ignore=shutil.ignore_patterns(".terraform*"))
    if directory == TERRAFORM:
        shutil.copytree(
            REPO / "orchestration" / "statemachine", tmp_path / "orchestration" / "statemachine"
        )
    for command in (
        ["init", "-backend=false", "-input=false", "-plugin-dir=/opt/tf-plugins"],
        ["validate", "-no-color"],
    ):
        result = subprocess.run(
            ["terraform", f"-chdir={copy}", *command],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
