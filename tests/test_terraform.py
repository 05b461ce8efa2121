"""Terraform agrees with the Python code: names, handlers, placeholders, environment, IAM.

Offline and fast: the ``.tf`` files are parsed with python-hcl2, never planned. Strings come
back quoted (``'"abc"'``) and expressions wrapped (``'${var.x}'``); the helpers below undo that.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from pydantic import AliasChoices

from orchestration.local.provision import REQUEST_MAX_RECEIVE_COUNT, REQUEST_VISIBILITY_TIMEOUT
from orchestration.naming import FUNCTIONS, ResourceNames, handler_path
from orchestration.pipeline.callbacks import CALLBACK_DETAIL_TYPES
from orchestration.settings import Settings
from orchestration.statemachine import DEFINITION_FILE, FUNCTION_PLACEHOLDERS, Timings, placeholders

TERRAFORM = Path(__file__).resolve().parent.parent / "terraform"
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
    "MGN_REGION",
    "DEBUG",
    "DEFAULT_APPROVERS",
    "IDEMPOTENCY_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}
FUNCTION_ONLY_ENVIRONMENT = {"callback_handler": {"CALLBACK_SIGNING_SECRET_ARN"}}
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
    for function in FUNCTIONS:
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


def test_every_function_has_a_lambda_with_its_handler() -> None:
    functions = _locals()["lambda_functions"]
    assert set(functions) == set(FUNCTIONS)
    for function in FUNCTIONS:
        handler = _unquote(functions[function]["handler"])
        assert handler == handler_path(function)
        module_name, _, attribute = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module_name), attribute))
    lambdas = _resources("aws_lambda_function")
    assert set(lambdas) == {"this"}
    resource = lambdas["this"]
    assert resource["for_each"] == "${local.lambda_functions}"
    assert resource["function_name"] == "${each.value.name}"
    assert resource["handler"] == "${each.value.handler}"
    assert _unquote(resource["runtime"]) == "python3.11"


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
    variables = function["environment"][0]["variables"]
    assert variables == (
        "${merge(local.common_environment, lookup(local.function_environment, each.key, {}))}"
    )
    common = set(_locals()["common_environment"])
    specific = {key: set(value) for key, value in _locals()["function_environment"].items()}
    # THEN every function has every variable a handler reads, but the runtime's own
    assert common == HANDLER_ENVIRONMENT - LAMBDA_RESERVED
    assert not (common | set().union(*specific.values())) & LAMBDA_RESERVED
    assert specific == FUNCTION_ONLY_ENVIRONMENT


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
    permissions = _resources("aws_lambda_permission")
    assert {body["function_name"] for body in permissions.values()} == {
        '${aws_lambda_function.this["start_migration"].function_name}',
        '${aws_lambda_function.this["callback_handler"].function_name}',
    }


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
    assert set(capabilities) == set(FUNCTIONS)
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
