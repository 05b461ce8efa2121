"""The Lambda package (``make package``): Terraform's runtime, built from a lock with hashes,
only what the handlers import, every handler imports from it alone under the runtime's Python,
nothing local in it, the same bytes every build.

The package is built once per session into ``dist/`` and reused while its inputs are unchanged
(``orchestration/packaging.py``); a cold build downloads the locked wheels from the index.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import hcl2
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from orchestration.lambda_lock import Locked, closure
from orchestration.packaging import (
    FILE_MODE,
    LAMBDA_LOCK,
    BuildResult,
    Target,
    build,
    fixed_date_time,
    forbidden_imports,
    lock_targets,
    locked_pins,
    package_entries,
    project_files,
    runtime_requirements,
    sha256_of,
    terraform_handlers,
    third_party_imports,
    unsupported_wheels,
    write_zip,
)

REPO = Path(__file__).resolve().parent.parent
TERRAFORM = REPO / "terraform"
PYPROJECT = REPO / "pyproject.toml"
# Never in the Lambda package: the CLI's extra, the embedded runtime's, the dev tools.
NOT_SHIPPED = ("github", "jinja2", "requests", "moto", "werkzeug", "cryptography", "pytest")
# Standard library modules Python 3.12 and 3.13 removed (PEP 594, PEP 632, imp, lib2to3).
REMOVED_BY_3_13 = frozenset(
    {
        *("aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt"),
        *("distutils", "imghdr", "imp", "lib2to3", "mailcap", "msilib", "nis", "nntplib"),
        *("ossaudiodev", "pipes", "smtpd", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib"),
    }
)


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
    # GIVEN Terraform's function, parsed as Terraform would (packaging reads it with a regex)
    function = _lambda_function()
    target = Target()
    # THEN the package is built for exactly that runtime and architecture
    assert str(function["runtime"]).strip('"') == target.runtime == "python3.13"
    assert [str(a).strip('"') for a in function["architectures"]] == [  # type: ignore[attr-defined]
        target.architecture
    ]
    assert target.pip_options()[:2] == ["--platform", "manylinux2014_x86_64"]
    assert target.tag == "cp313-manylinux2014_x86_64"
    # AND the deployment guide names it
    assert f"`{target.runtime}`" in (REPO / "docs" / "DEPLOY.md").read_text(encoding="utf-8")


def _lock_entries(lock: Path = LAMBDA_LOCK) -> list[str]:
    """The lock's requirements, one logical line each (continuations joined)."""
    text = lock.read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_the_lambda_lock_pins_and_hashes_every_requirement_for_the_runtime() -> None:
    entries = _lock_entries()
    assert entries
    for entry in entries:
        # THEN each line is one exact pin with the sha256 of at least one wheel, nothing else
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[^\s]+( +--hash=sha256:[0-9a-f]{64})+", entry), entry
    # AND it holds the hashes of the runtime's wheels (make lock after a runtime change)
    assert Target() in lock_targets()
    # AND its versions are the ones the tests ran (requirements/lock.txt), pyproject's included
    tested = locked_pins(REPO / "requirements" / "lock.txt")
    assert {name: tested.get(name) for name in locked_pins()} == locked_pins()
    for requirement in map(Requirement, runtime_requirements()):
        assert locked_pins()[canonicalize_name(requirement.name)] == str(
            requirement.specifier
        ).removeprefix("==")


def test_the_lambda_lock_is_exactly_what_the_runtime_dependencies_need() -> None:
    # GIVEN the installed metadata of the same versions (this virtualenv is built from the lock)
    resolved = {
        canonicalize_name(name): Locked(
            name, importlib.metadata.version(name), importlib.metadata.requires(name) or []
        )
        for name in locked_pins()
    }
    # WHEN the closure of [project] dependencies is walked with the runtime's markers
    needed = closure(runtime_requirements(), resolved, Target())
    # THEN the lock holds that and nothing more
    assert needed == set(locked_pins())


def _declared() -> dict[str, set[str]]:
    """Normalised distribution names pyproject.toml declares, by where."""
    with PYPROJECT.open("rb") as handle:
        project = tomllib.load(handle)

    def names(requirements: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in requirements}

    declared = {"dependencies": names(project["project"]["dependencies"])}
    for extra, requirements in project["project"]["optional-dependencies"].items():
        declared[extra] = names(requirements)
    declared["dev"] = names(project["dependency-groups"]["dev"])
    return declared


@functools.cache
def _distributions_by_top_level() -> dict[str, set[str]]:
    """Top-level module -> the installed distributions providing it (read once: it is slow)."""
    return {
        top: {canonicalize_name(d) for d in distributions}
        for top, distributions in importlib.metadata.packages_distributions().items()
    }


def _distributions_of(top_level: str) -> set[str]:
    return _distributions_by_top_level().get(top_level, set())


def test_the_runtime_dependencies_are_what_the_handlers_import() -> None:
    # GIVEN every module outside the project a handler imports at run time
    imported = third_party_imports(project_files(), terraform_handlers())
    shipped = _declared()["dependencies"]
    # THEN each comes from a declared runtime dependency
    undeclared = {top: m for top, m in imported.items() if not _distributions_of(top) & shipped}
    assert not undeclared, f"imported by deployed code, not in [project] dependencies: {undeclared}"
    # AND each runtime dependency is imported by a handler (or none would be shipped for it)
    used = set().union(*(_distributions_of(top) for top in imported))
    assert shipped <= used, f"shipped but imported by no handler: {sorted(shipped - used)}"
    # AND the CLI's libraries are an extra, not shipped
    assert {"pygithub", "jinja2", "requests"} <= _declared()["cli"]
    assert not {"pygithub", "jinja2", "requests"} & set(locked_pins())


def test_every_distribution_the_code_imports_is_declared() -> None:
    # GIVEN every top-level import of the project's code, tests and benchmarks
    declared = set().union(*_declared().values())
    undeclared: dict[str, str] = {}
    for folder in ("orchestration", "bot", "tests", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for top in _top_level_imports(path):
                distributions = _distributions_of(top) - {"wavepilot"}
                if distributions and not distributions & declared:
                    undeclared.setdefault(top, str(path.relative_to(REPO)))
    # THEN pyproject.toml names its distribution (not merely something that pulls it in)
    assert not undeclared, undeclared


def _top_level_imports(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_deployed_code_uses_nothing_python_3_13_removed() -> None:
    used: dict[str, str] = {}
    for name, path in project_files().items():
        if name.endswith(".py"):
            for top in _top_level_imports(path) & REMOVED_BY_3_13:
                used[top] = name
    assert not used, used


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


IMPORT_EVERY_HANDLER = textwrap.dedent(
    """
    import importlib, json, pathlib, sys
    sys.path.insert(0, sys.argv[1])
    results = {"python": list(sys.version_info[:2])}
    for handler in sys.argv[2:]:
        module, _, attribute = handler.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), attribute, None)
            results[handler] = "ok" if callable(found) else f"no callable {attribute}"
        except BaseException as exc:
            results[handler] = f"{type(exc).__name__}: {exc}"
    for name in ("orchestration.local", "moto", "pytest", "github", "jinja2"):
        try:
            importlib.import_module(name)
            results[name] = "importable"
        except ImportError:
            results[name] = "absent"
    results["sys.path"] = [p for p in sys.path if "site-packages" in p]
    # Every file the package ships compiles under this interpreter (syntax it accepts).
    results["syntax errors"] = []
    for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
        try:
            compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            results["syntax errors"].append(f"{path}: {exc}")
    print(json.dumps(results))
    """
)


def _import_every_handler(package: Path, python: str, tmp_path: Path) -> None:
    """Unpack ``package`` as Lambda does and import every Terraform handler from it alone, in a
    fresh virtualenv of ``python`` with no site-packages at all."""
    unpacked = tmp_path / "task"  # Lambda's /var/task
    with zipfile.ZipFile(package) as archive:
        archive.extractall(unpacked)
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
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
    command = [str(venv / "bin" / "python"), "-I", "-S", "-c", IMPORT_EVERY_HANDLER]
    completed = subprocess.run(
        [*command, str(unpacked), *handlers],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    failed = {h: results[h] for h in handlers if results[h] != "ok"}
    assert not failed, f"handlers that do not import from the package: {failed}"
    for absent in ("orchestration.local", "moto", "pytest", "github", "jinja2"):
        assert results[absent] == "absent", absent
    assert results["sys.path"] == []
    assert results["syntax errors"] == []


def runtime_python(target: Target) -> str | None:
    """An interpreter of the runtime's Python version: ``$WAVEPILOT_LAMBDA_PYTHON``, else
    ``python3.13`` on PATH, else pyenv's; None when there is none (or a pyenv shim that has
    no such version active)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    version = target.python_version
    candidates = [
        os.environ.get("WAVEPILOT_LAMBDA_PYTHON", ""),
        shutil.which(f"python{version}") or "",
        *sorted(map(str, pyenv.glob(f"versions/{version}.*/bin/python{version}")), reverse=True),
    ]
    for candidate in filter(None, candidates):
        completed = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode == 0 and completed.stdout.strip() == target.python_version:
            return candidate
    return None


def test_every_terraform_handler_imports_from_the_package_under_the_runtimes_python(
    package: BuildResult, tmp_path: Path
) -> None:
    # GIVEN the package as deployed, and an interpreter of the runtime's version
    target = Target()
    if sys.platform != "linux" or platform.machine() != target.architecture:
        pytest.skip(f"the package's compiled wheels are for Linux {target.architecture}")
    python = runtime_python(target)
    if python is None:
        pytest.skip(
            f"no python{target.python_version} here (set WAVEPILOT_LAMBDA_PYTHON); the import"
            " check of a build for this interpreter runs instead"
        )
    # THEN every handler imports from it alone, and all its Python compiles
    _import_every_handler(package.path, python, tmp_path)


def test_every_terraform_handler_imports_from_a_build_for_this_python(tmp_path: Path) -> None:
    # GIVEN the same lock built for the Python running the tests (its wheels' hashes are in the
    # lock too): the project's code and the pure-Python dependencies are the package's own
    here = Target(runtime=f"python{sys.version_info.major}.{sys.version_info.minor}")
    if sys.platform != "linux" or platform.machine() != here.architecture:
        pytest.skip(f"the lock's wheels are for Linux {here.architecture}")
    if here not in lock_targets():
        pytest.skip(f"requirements/lambda.txt has no hashes for {here.runtime}")
    runtime = Target()
    if sys.platform == "linux" and platform.machine() == runtime.architecture:
        if runtime_python(runtime) is not None:
            pytest.skip(
                f"python{runtime.python_version} is here: the deployed package itself is"
                " import-checked under it (the test above); this build is its stand-in"
            )
    local = build(tmp_path / "local.zip", target=here, handlers=terraform_handlers())
    # THEN every handler imports from it alone, under this interpreter
    _import_every_handler(local.path, sys.executable, tmp_path)


def test_the_package_ships_only_wheels_the_runtime_loads(package: BuildResult) -> None:
    # GIVEN the WHEEL file pip kept for each shipped distribution
    with zipfile.ZipFile(package.path) as archive:
        wheels = {
            name.split("/")[0]: archive.read(name).decode()
            for name in archive.namelist()
            if re.fullmatch(r"[^/]+\.dist-info/WHEEL", name)
        }
    # THEN each is the runtime's CPython (cp313 or abi3) for manylinux x86_64, or pure Python
    assert len(wheels) == len(locked_pins())
    assert unsupported_wheels(wheels, Target()) == []
    assert "Tag: cp313-cp313-manylinux_2_17_x86_64" in wheels["pydantic_core-2.50.4.dist-info"]
    # AND a wheel for another Python would be refused
    assert unsupported_wheels(
        {"x.dist-info": "Tag: cp311-cp311-manylinux_2_17_x86_64\n"}, Target()
    ) == ["x.dist-info: cp311-cp311-manylinux_2_17_x86_64"]
    assert unsupported_wheels({"y.dist-info": "Tag: cp313-cp313-manylinux_2_34_x86_64\n"}, Target())
    assert not unsupported_wheels(
        {"z.dist-info": "Tag: cp39-abi3-manylinux2014_x86_64\n"}, Target()
    )


def test_the_package_holds_runtime_code_only_with_fixed_metadata(package: BuildResult) -> None:
    with zipfile.ZipFile(package.path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.startswith(".")]
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
    # The CLI's extra (PyGithub, Jinja2, requests) and the embedded runtime's are not shipped.
    shipped = {n.split("/")[0].lower() for n in names}
    assert not [
        n
        for n in NOT_SHIPPED
        if n in shipped or any(s.startswith(f"{n}-") and s.endswith(".dist-info") for s in shipped)
    ]
    assert not [n for n in shipped if n.startswith("pygithub-")]
    assert "orchestration/lambda_lock.py" not in names
    assert {info.date_time for info in infos} == {fixed_date_time()}
    assert {info.external_attr >> 16 & 0o777 for info in infos} == {FILE_MODE}


def test_two_builds_are_byte_identical(package: BuildResult, tmp_path: Path) -> None:
    entries, _ = package_entries(Target())
    again = tmp_path / "again.zip"
    write_zip(entries, again)
    assert sha256_of(again) == package.sha256 == sha256_of(package.path)
