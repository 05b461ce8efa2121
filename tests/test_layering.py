"""The layers import downward only: handlers -> pipeline -> adapters -> plain types.

Every import counts, ``if TYPE_CHECKING:`` ones included: an adapter that names a pipeline
type for mypy alone still knows the layer above it. The pipeline speaks in the adapters'
typed errors, so it never needs botocore (the adapters translate ``ClientError`` once).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> modules (and their submodules) it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "orchestration.adapters": (
        "orchestration.pipeline",
        "orchestration.handlers",
        "orchestration.local",
        "orchestration.wiring",
        "orchestration.operators",
        "orchestration.operator_cli",
        "orchestration.operator_render",
        "orchestration.cli",
        "bot",
    ),
    "orchestration.pipeline": (
        "orchestration.handlers",
        "orchestration.local",
        "orchestration.wiring",
        "orchestration.operators",
        "orchestration.operator_cli",
        "orchestration.operator_render",
        "orchestration.cli",
        "bot",
        "botocore",
        "boto3",
    ),
    "orchestration.handlers": ("orchestration.local", "bot"),
    # The operators' queries and decisions serve the Slack Lambda too: no terminal rendering.
    "orchestration.operators": (
        "rich",
        "orchestration.operator_render",
        "orchestration.operator_cli",
        "orchestration.terminal",
        "orchestration.cli",
        "orchestration.local",
    ),
    # Plain types shared by the layers above import none of them.
    "orchestration.health_checks": (
        "orchestration.pipeline",
        "orchestration.adapters",
        "orchestration.handlers",
        "orchestration.local",
        "orchestration.manifests",
        "bot",
        "botocore",
        "boto3",
    ),
    "orchestration.wire": ("orchestration", "bot", "botocore", "boto3"),
    # The launch coordinator's records: what its planning and its ledger's adapter share.
    "orchestration.launch_records": ("orchestration", "bot", "botocore", "boto3"),
}


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    return _imports_of(path.read_text(encoding="utf-8"), _package_of(path))


def _package_of(path: Path) -> str:
    module = _module_of(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports_of(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in ``source``, relative ones resolved in ``package``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # `from orchestration import pipeline` names a module
                yield node.lineno, f"{base}.{alias.name}"


def _files(package: str) -> list[Path]:
    path = ROOT.joinpath(*package.split("."))
    if path.is_dir():
        return sorted(path.rglob("*.py"))
    return [path.with_suffix(".py")]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(f"{prefix}.")


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in _files(package):
        for line, imported in _imports(path):
            if any(_within(imported, prefix) for prefix in forbidden) and not _within(
                imported, package
            ):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    return sorted(set(found))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(package: str) -> None:
    # GIVEN the layer's modules WHEN their imports are read THEN none reaches upward
    assert _violations(package, FORBIDDEN[package]) == []


def test_the_check_sees_upward_imports_for_mypy_and_by_package() -> None:
    # GIVEN an adapter's source importing the pipeline for mypy only, and as a package
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from orchestration.pipeline.spec import MigrationSpec\n"
        "from orchestration import pipeline\n"
        "from ..pipeline import steps\n"
    )
    # WHEN its imports are read
    imports = {name for _, name in _imports_of(source, "orchestration.adapters")}
    # THEN each reaches the pipeline
    assert {
        "orchestration.pipeline.spec",
        "orchestration.pipeline",
        "orchestration.pipeline.steps",
    } <= imports
