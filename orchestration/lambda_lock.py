"""``make lock``'s second half: ``requirements/lambda.txt``, the Lambda package's lock.

The package ships ``[project] dependencies`` and what they need under the Lambda runtime,
nothing else (not the ``cli`` and ``local`` extras, not the dev group), at the versions of
``requirements/lock.txt``: the ones the tests ran. Each line carries the sha256 of the wheel
for each target in ``LOCK_TARGETS``: Terraform's runtime, and the lowest Python the project
supports, for which ``tests/test_package.py`` builds the same versions to import every handler
on a machine without the runtime's interpreter. ``orchestration/packaging.py`` installs the
lock with ``--require-hashes --no-deps``: a cold cache fetches the very same files.

pip evaluates environment markers for the interpreter that runs it, never for
``--python-version``; so pip resolves here only to find each wheel and its metadata, and the
closure is walked again with the target's markers: what the runtime's Python does not need is
dropped, and a requirement only it needs is an error rather than a missing module on Lambda.

    python -m orchestration.lambda_lock [--output requirements/lambda.txt]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from orchestration.packaging import (
    LAMBDA_LOCK,
    LOCK_TARGETS_PREFIX,
    REPO_ROOT,
    PackagingError,
    Target,
    runtime_requirements,
)

DEV_LOCK = REPO_ROOT / "requirements" / "lock.txt"
# Terraform's runtime first: its closure is what the lock holds.
LOCK_TARGETS = (Target(), Target(runtime="python3.11"))


@dataclass
class Locked:
    name: str
    version: str
    requires: list[str]
    hashes: set[str] = field(default_factory=set)


def marker_environment(target: Target) -> dict[str, str]:
    """The values environment markers see on the target (Linux, CPython, its version)."""
    environment = {key: str(value) for key, value in default_environment().items()}
    environment.update(
        python_version=target.python_version,
        python_full_version=f"{target.python_version}.0",
        implementation_name="cpython",
        implementation_version=f"{target.python_version}.0",
        platform_python_implementation="CPython",
        platform_machine=target.machine,
        platform_system="Linux",
        sys_platform="linux",
        os_name="posix",
    )
    return environment


def resolve(target: Target, requirements: list[str]) -> dict[NormalizedName, Locked]:
    """Every distribution pip picks for ``target`` at the dev lock's versions, with the sha256
    of the wheel it picked (``pip install --dry-run --report``; nothing is installed)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            "--target",
            str(Path(scratch) / "target"),
            *target.pip_options(),
            "--constraint",
            str(DEV_LOCK),
            *requirements,
        ]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise PackagingError(f"pip could not resolve for {target.tag}:\n{completed.stderr}")
        installs = json.loads(report.read_text())["install"]
    resolved: dict[NormalizedName, Locked] = {}
    for item in installs:
        metadata = item["metadata"]
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        resolved[canonicalize_name(metadata["name"])] = Locked(
            metadata["name"], metadata["version"], metadata.get("requires_dist", []), {digest}
        )
    return resolved


def closure(
    requirements: list[str], resolved: dict[NormalizedName, Locked], target: Target
) -> set[NormalizedName]:
    """The distributions ``requirements`` need on ``target``, markers evaluated for it."""
    environment = marker_environment(target)
    needed: set[NormalizedName] = set()
    seen: set[tuple[NormalizedName, str]] = set()
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name not in resolved:
            raise PackagingError(
                f"{target.runtime} needs {requirement}, which pip did not resolve"
                " (pip evaluates markers for the Python that runs it): add it to"
                " [project] dependencies"
            )
        needed.add(name)
        for extra in ["", *sorted(requirement.extras)]:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for dependency in map(Requirement, resolved[name].requires):
                marker = dependency.marker
                if marker is None or marker.evaluate({**environment, "extra": extra}):
                    pending.append(dependency)
    return needed


def lock(targets: tuple[Target, ...] = LOCK_TARGETS) -> str:
    """The text of requirements/lambda.txt."""
    requirements = runtime_requirements()
    primary = resolve(targets[0], requirements)
    needed = closure(requirements, primary, targets[0])
    for other in targets[1:]:
        for name, locked in resolve(other, requirements).items():
            if name in needed:
                if locked.version != primary[name].version:
                    raise PackagingError(
                        f"{name}: {locked.version} for {other.tag}, {primary[name].version}"
                        f" for {targets[0].tag}"
                    )
                primary[name].hashes |= locked.hashes
    lines = [
        "# The Lambda package's dependencies, with the sha256 of each wheel. Written by",
        "# `make lock` (python -m orchestration.lambda_lock): [project] dependencies and what",
        "# they need on the Lambda runtime, at requirements/lock.txt's versions. Do not edit.",
        f"{LOCK_TARGETS_PREFIX}{' '.join(f'{t.runtime}/{t.architecture}' for t in targets)}",
    ]
    for name in sorted(needed):
        locked = primary[name]
        hashes = " \\\n".join(f"    --hash=sha256:{digest}" for digest in sorted(locked.hashes))
        lines.append(f"{locked.name}=={locked.version} \\\n{hashes}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, default=LAMBDA_LOCK)
    options = parser.parse_args(argv)
    try:
        text = lock()
    except PackagingError as exc:
        print(f"make lock: {exc}", file=sys.stderr)
        return 1
    options.output.write_text(text)
    count = text.count("==")
    print(
        f"{options.output.name}: {count} distributions for {', '.join(t.tag for t in LOCK_TARGETS)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
