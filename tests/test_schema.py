"""The committed JSON Schema matches the models, and editors can use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from orchestration import cli
from orchestration.manifests.schema import SCHEMA_PATH, wave_json_schema_text
from tests.conftest import REPO_ROOT


def test_committed_schema_matches_the_models() -> None:
    committed = (REPO_ROOT / SCHEMA_PATH).read_text(encoding="utf-8")

    assert committed == wave_json_schema_text(), (
        "manifests/wave.schema.json is stale: run `make schema` and commit it"
    )


def test_schema_check_command_fails_on_a_stale_copy(tmp_path: Path) -> None:
    stale = tmp_path / "wave.schema.json"
    stale.write_text("{}\n")

    assert cli.main(["schema", "--check", str(stale)]) == cli.EXIT_INVALID
    assert cli.main(["schema", "--check", str(REPO_ROOT / SCHEMA_PATH)]) == cli.EXIT_OK


def test_every_example_wave_references_the_schema_and_satisfies_it() -> None:
    schema = json.loads((REPO_ROOT / SCHEMA_PATH).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    waves = sorted((REPO_ROOT / "manifests" / "waves").glob("*.yaml"))
    assert len(waves) >= 3

    for path in waves:
        text = path.read_text()
        assert text.startswith("# yaml-language-server: $schema=../wave.schema.json\n"), path
        document = _load_as_editors_see_it(text)
        errors = sorted(validator.iter_errors(document), key=str)
        assert errors == [], f"{path.name}: {errors[0].message if errors else ''}"


def test_schema_rejects_what_the_models_reject() -> None:
    schema = json.loads((REPO_ROOT / SCHEMA_PATH).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    document = _load_as_editors_see_it(
        (REPO_ROOT / "manifests" / "waves" / "wave-1.yaml").read_text()
    )
    vm = document["applications"][0]["vms"][0]
    vm["instanceType"] = "t3.huge"
    vm["subnetId"] = "subnet-123"
    vm["tags"] = {"aws:owner": "x"}
    vm["surprise"] = True

    messages = {error.json_path for error in validator.iter_errors(document)}

    vm_path = "$.applications[0].vms[0]"
    assert {
        f"{vm_path}.instanceType",
        f"{vm_path}.subnetId",
        f"{vm_path}.tags",
        vm_path,
    } <= messages


def _load_as_editors_see_it(text: str) -> Any:
    """YAML as JSON Schema tooling sees it: timestamps stay text."""
    loader = _EditorView(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _EditorView(yaml.SafeLoader):
    yaml_constructors = {  # noqa: RUF012 - PyYAML's own class-level registry, copied
        **yaml.SafeLoader.yaml_constructors,
        "tag:yaml.org,2002:timestamp": yaml.SafeLoader.construct_yaml_str,
    }


def test_committed_event_schemas_match_the_event_models() -> None:
    from orchestration.events import event_json_schemas

    folder = REPO_ROOT / "docs" / "events"
    expected = event_json_schemas()

    assert sorted(p.name for p in folder.glob("*.schema.json")) == sorted(expected)
    for name, text in expected.items():
        assert (folder / name).read_text(encoding="utf-8") == text, (
            f"docs/events/{name} is stale: run `make schema` and commit it"
        )
