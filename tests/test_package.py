"""The Lambda package (``make package``): Terraform's runtime, every handler imports from it
alone, nothing local in it, the same bytes every build.

The package is built once per session into ``dist/`` and reused while its inputs are unchanged
(``orchestration/packaging.py``); a cold build downloads the wheels from the package index.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import hcl2
import pytest

from orchestration.packaging import (
    FILE_MODE,
    BuildResult,
    Target,
    build,
    fixed_date_time,
    forbidden_imports,
    package_entries,
    project_files,
    sha256_of,
    terraform_handlers,
    write_zip,
)

TERRAFORM = Path(__file__).resolve().parent.parent / "terraform"


def _lambda_function() -> dict[str, object]:
    with (TERRAFORM / "lambda.tf").open(encoding="utf-8") as handle:
        parsed = hcl2.load(handle)
    for block in parsed["resource"]:
        for kind, named in block.items():
            if kind.strip('"') == "aws_lambda_function":
                body: dict[str, object] = named['"this"']
                return body
    raise AssertionError("terraform/lambda.tf has no aws_lambda_function.this")


def test_the_package_targets_terraforms_runtime_and_architecture() -> None:
    function = _lambda_function()
    target = Target()
    assert str(function["runtime"]).strip('"') == target.runtime
    assert [str(a).strip('"') for a in function["architectures"]] == [  # type: ignore[attr-defined]
        target.architecture
    ]
    assert target.pip_options()[:2] == ["--platform", "manylinux2014_x86_64"]


def test_terraform_names_handlers() -> None:
    handlers = terraform_handlers()
    assert "orchestration.handlers.ingress_handler.handler" in handlers
    assert all(h.count(".") >= 2 for h in handlers), handlers


@pytest.fixture(scope="module")
def package() -> BuildResult:
    # `make package` refuses a handler that imports orchestration.local; here the import
    # check is its own test, so the others still report on the rest of the package.
    return build()


def test_no_handler_imports_what_is_never_deployed() -> None:
    assert forbidden_imports(project_files(), terraform_handlers()) == []


def _runs_the_target_locally() -> bool:
    target = Target()
    return (
        sys.platform == "linux"
        and platform.machine() == target.architecture
        and f"{sys.version_info.major}.{sys.version_info.minor}" == target.python_version
    )


IMPORT_EVERY_HANDLER = textwrap.dedent(
    """
    import importlib, json, sys
    sys.path.insert(0, sys.argv[1])
    results = {}
    for handler in sys.argv[2:]:
        module, _, attribute = handler.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attribute, None)
            results[handler] = "ok" if callable(found) else f"no callable {attribute}"
        except BaseException as exc:
            results[handler] = f"{type(exc).__name__}: {exc}"
    for name in ("orchestration.local", "moto", "pytest"):
        try:
            importlib.import_module(name)
            results[name] = "importable"
        except ImportError:
            results[name] = "absent"
    results["sys.path"] = [p for p in sys.path if "site-packages" in p]
    print(json.dumps(results))
    """
)


@pytest.mark.skipif(
    not _runs_the_target_locally(),
    reason="the package's compiled wheels are for the Lambda target, not this machine",
)
def test_every_terraform_handler_imports_from_the_package_alone(
    package: BuildResult, tmp_path: Path
) -> None:
    unpacked = tmp_path / "task"  # Lambda's /var/task
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(unpacked)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    handlers = terraform_handlers()
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": str(unpacked),
    }
    # -I: no PYTHON* variables, no user site; -S: no site-packages at all, the dev venv's
    # included. The handlers see the package and the standard library, as on Lambda.
    python = [str(venv / "bin" / "python"), "-I", "-S", "-c", IMPORT_EVERY_HANDLER]
    completed = subprocess.run(
        [*python, str(unpacked), *handlers],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    failed = {h: results[h] for h in handlers if results[h] != "ok"}
    assert not failed, f"handlers that do not import from the package: {failed}"
    assert results["orchestration.local"] == "absent"
    assert results["moto"] == "absent"
    assert results["pytest"] == "absent"
    assert results["sys.path"] == []


def test_the_package_holds_runtime_code_only_with_fixed_metadata(package: BuildResult) -> None:
    with zipfile.ZipFile(package.path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.startswith(("orchestration/local/", "bin/"))]
    assert "orchestration/packaging.py" not in names
    for expected in (
        "orchestration/handlers/ingress_handler.py",
        "orchestration/statemachine/migration.asl.json",
        "bot/__init__.py",
        "boto3/__init__.py",
        "botocore/__init__.py",
        "pydantic_core/__init__.py",
        "aws_lambda_powertools/__init__.py",
    ):
        assert expected in names, expected
    assert [n for n in names if n.startswith("orchestration/templates/") and n.endswith(".j2")]
    assert [n for n in names if n.startswith("pydantic_core/") and "x86_64-linux-gnu" in n]
    assert not [n for n in names if n.startswith(("moto/", "pytest/", "hcl2/", "mypy/"))]
    assert {info.date_time for info in infos} == {fixed_date_time()}
    assert {info.external_attr >> 16 & 0o777 for info in infos} == {FILE_MODE}


def test_two_builds_are_byte_identical(package: BuildResult, tmp_path: Path) -> None:
    entries, _ = package_entries(Target())
    again = tmp_path / "again.zip"
    write_zip(entries, again)
    assert sha256_of(again) == package.sha256 == sha256_of(package.path)
