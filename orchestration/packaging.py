"""``make package``: the Lambda deployment package, reproducibly, for Terraform's runtime.

One zip serves every function (Terraform's ``aws_lambda_function.this`` takes one
``var.lambda_package_path`` for all of them, each with its own ``handler``): the runtime code
of ``orchestration`` and ``bot`` and the ``[project] dependencies`` of pyproject.toml, exact
pins, as wheels for the Lambda runtime and architecture (not the build machine's). boto3 and
botocore are included although the runtime provides them: the pinned ones are newer, and the
package should run what the tests ran.

Not deployed: ``orchestration/local/`` (the embedded runtime, moto) and this module; the build
fails if a handler's imports reach either. Reproducible: sorted entries, fixed timestamps
(1980-01-01, or ``SOURCE_DATE_EPOCH``), fixed permissions, no ``__pycache__``/``.pyc``, so two
builds from the same inputs are byte-identical.

Caches (gitignored): ``.lambda-cache/wheels/<target>/`` holds the downloaded wheels (a warm
build installs with ``--no-index`` from it), ``.lambda-cache/site/<key>/`` the installed
dependencies per requirement set; ``dist/`` is reused as is while its inputs are unchanged.

    python -m orchestration.packaging [--output dist/wavepilot-lambda.zip] [--force]
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# What Terraform deploys (terraform/lambda.tf: runtime, architectures); a test checks these
# against it. The wheels are chosen for them, not for the build machine.
LAMBDA_RUNTIME = "python3.11"
LAMBDA_ARCHITECTURE = "x86_64"
# python3.11 runs on Amazon Linux 2 (glibc 2.26): manylinux2014 (glibc 2.17) wheels load there,
# manylinux_2_28 ones would not.
PLATFORM_BY_ARCHITECTURE = {
    "x86_64": "manylinux2014_x86_64",
    "arm64": "manylinux2014_aarch64",
}

PACKAGE_NAME = "wavepilot-lambda.zip"
DEFAULT_OUTPUT = REPO_ROOT / "dist" / PACKAGE_NAME
CACHE_DIR = REPO_ROOT / ".lambda-cache"
PROJECT_PACKAGES = ("orchestration", "bot")
# Never deployed: the embedded runtime, and the build itself.
EXCLUDED = ("orchestration/local", "orchestration/packaging.py")
EXCLUDED_MODULES = ("orchestration.local", "orchestration.packaging")
# pip --target's console scripts are of no use in Lambda.
EXCLUDED_DEPENDENCY_DIRS = ("bin",)
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
COMPRESS_LEVEL = 6  # zlib default: level 9 takes twice as long for 1% less
BUILD_FORMAT = "1"  # bump when the zip layout changes, so cached packages are rebuilt


class PackagingError(RuntimeError):
    """The package cannot be built as specified (a dependency, an import, a conflict)."""


@dataclass(frozen=True)
class Target:
    runtime: str = LAMBDA_RUNTIME
    architecture: str = LAMBDA_ARCHITECTURE

    @property
    def python_version(self) -> str:
        """``python3.11`` -> ``3.11``."""
        return self.runtime.removeprefix("python")

    @property
    def platform(self) -> str:
        return PLATFORM_BY_ARCHITECTURE[self.architecture]

    @property
    def tag(self) -> str:
        return f"cp{self.python_version.replace('.', '')}-{self.platform}"

    def pip_options(self) -> list[str]:
        return [
            "--platform",
            self.platform,
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--only-binary=:all:",
        ]


@dataclass(frozen=True)
class BuildResult:
    path: Path
    sha256: str
    size: int
    reused: bool
    seconds: float


def runtime_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """``[project] dependencies``: exact pins only (not the ``local`` extra, not dev)."""
    with pyproject.open("rb") as handle:
        requirements: list[str] = tomllib.load(handle)["project"]["dependencies"]
    loose = [r for r in requirements if "==" not in r]
    if loose:
        raise PackagingError(f"runtime dependencies must be pinned exactly: {loose}")
    return sorted(requirements)


def fixed_date_time() -> tuple[int, int, int, int, int, int]:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return FIXED_DATE_TIME
    moment = time.gmtime(max(int(epoch), 315532800))  # zip cannot go before 1980
    return (
        moment.tm_year,
        moment.tm_mon,
        moment.tm_mday,
        moment.tm_hour,
        moment.tm_min,
        moment.tm_sec - moment.tm_sec % 2,
    )


def _skipped(relative: Path) -> bool:
    return (
        "__pycache__" in relative.parts
        or relative.suffix in {".pyc", ".pyo"}
        or any(part.startswith(".") for part in relative.parts)
    )


def project_files(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Archive name -> file, for the deployed part of ``orchestration`` and ``bot``."""
    files: dict[str, Path] = {}
    for package in PROJECT_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            relative = path.relative_to(root)
            name = relative.as_posix()
            if not path.is_file() or _skipped(relative):
                continue
            if any(name == e or name.startswith(f"{e}/") for e in EXCLUDED):
                continue
            files[name] = path
    return files


def _dependency_files(site: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site)
        if not path.is_file() or "__pycache__" in relative.parts:
            continue
        if relative.suffix in {".pyc", ".pyo"} or relative.parts[0] in EXCLUDED_DEPENDENCY_DIRS:
            continue
        files[relative.as_posix()] = path
    return files


def _module_of(name: str) -> str:
    """``orchestration/handlers/wiring.py`` -> ``orchestration.handlers.wiring``."""
    module = name.removesuffix(".py").replace("/", ".")
    return module.removesuffix(".__init__")


def _imports(source: Path, module: str) -> Iterator[str]:
    """Every module an import statement in ``source`` names, at any depth (lazy ones too)."""
    is_package = source.name == "__init__.py"
    for node in ast.walk(ast.parse(source.read_bytes(), str(source))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base_parts = parts if is_package else parts[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def forbidden_imports(files: dict[str, Path], handlers: Iterable[str]) -> list[str]:
    """Import chains from a handler's module to an excluded module (empty when none)."""
    modules = {_module_of(name): path for name, path in files.items() if name.endswith(".py")}
    problems: list[str] = []
    reported: set[str] = set()
    for handler in handlers:
        start = handler.rpartition(".")[0]
        chains = {start: [start]}
        pending = [start]
        while pending:
            current = pending.pop()
            path = modules.get(current)
            if path is None:
                continue
            for imported in _imports(path, current):
                if any(imported == e or imported.startswith(f"{e}.") for e in EXCLUDED_MODULES):
                    if current not in reported:  # once per importing module
                        reported.add(current)
                        problems.append(" -> ".join([*chains[current], imported]))
                elif imported in modules and imported not in chains:
                    chains[imported] = [*chains[current], imported]
                    pending.append(imported)
    return sorted(set(problems))


def _inputs_key(target: Target, requirements: list[str], files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    digest.update(f"{BUILD_FORMAT}\n{target.tag}\n{fixed_date_time()}\n".encode())
    digest.update("\n".join(requirements).encode())
    for name, path in sorted(files.items()):
        digest.update(f"\n{name}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _pip(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def installed_dependencies(
    target: Target, requirements: list[str], cache: Path = CACHE_DIR
) -> Path:
    """The dependencies installed for ``target`` (``pip install --target``), built once per
    requirement set; wheels come from the cache, from the index only when the cache lacks one."""
    key = hashlib.sha256(f"{target.tag}\n{chr(10).join(requirements)}".encode()).hexdigest()
    site = cache / "site" / key[:16]
    if (site / ".complete").exists():
        return site
    wheels = cache / "wheels" / target.tag
    wheels.mkdir(parents=True, exist_ok=True)
    staging = site.with_name(f"{site.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    install = [
        "install",
        "--quiet",
        "--no-compile",
        "--no-index",
        "--find-links",
        str(wheels),
        "--target",
        str(staging),
        *target.pip_options(),
        *requirements,
    ]
    if _pip(*install).returncode != 0:  # the cache lacks a wheel: fetch them, then again
        downloaded = _pip(
            "download", "--quiet", "--dest", str(wheels), *target.pip_options(), *requirements
        )
        if downloaded.returncode != 0:
            raise PackagingError(f"pip download failed:\n{downloaded.stderr}")
        shutil.rmtree(staging, ignore_errors=True)
        installed = _pip(*install)
        if installed.returncode != 0:
            raise PackagingError(f"pip install failed:\n{installed.stderr}")
    (staging / ".complete").write_text("\n".join(requirements) + "\n")
    shutil.rmtree(site, ignore_errors=True)
    staging.rename(site)
    return site


def write_zip(entries: dict[str, Path], output: Path) -> None:
    """Entries in name order, each with the same timestamp and mode: the same bytes each time."""
    date_time = fixed_date_time()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f"{output.name}.partial")
    with zipfile.ZipFile(
        partial, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
    ) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.create_system = 3  # unix, so external_attr holds the mode
            info.external_attr = (stat.S_IFREG | FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name].read_bytes(), compresslevel=COMPRESS_LEVEL)
    partial.replace(output)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_entries(
    target: Target, handlers: Iterable[str] = (), *, root: Path = REPO_ROOT
) -> tuple[dict[str, Path], str]:
    """Everything the zip holds (name -> file) and the key of its inputs."""
    requirements = runtime_requirements(root / "pyproject.toml")
    project = project_files(root)
    problems = forbidden_imports(project, handlers)
    if problems:
        raise PackagingError(
            "deployed code imports what is never deployed:\n  " + "\n  ".join(problems)
        )
    key = _inputs_key(target, requirements, project)
    dependencies = _dependency_files(installed_dependencies(target, requirements))
    clashes = sorted(project.keys() & dependencies.keys())
    if clashes:
        raise PackagingError(f"dependencies ship files the project does too: {clashes[:5]}")
    return {**dependencies, **project}, key


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """One build at a time (pytest-xdist workers may ask for the package together)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(
    output: Path = DEFAULT_OUTPUT,
    *,
    target: Target | None = None,
    handlers: Iterable[str] = (),
    force: bool = False,
) -> BuildResult:
    """Build the package into ``output``; reuse it when nothing it is made of has changed."""
    started = time.monotonic()
    target = target or Target()
    with _exclusive(CACHE_DIR / "build.lock"):
        return _build(output, target, handlers, force=force, started=started)


def _build(
    output: Path, target: Target, handlers: Iterable[str], *, force: bool, started: float
) -> BuildResult:
    entries, key = package_entries(target, handlers)
    stamp = output.with_name(f"{output.name}.inputs")
    if not force and output.exists() and stamp.exists() and stamp.read_text().strip() == key:
        reused = True
    else:
        write_zip(entries, output)
        stamp.write_text(key + "\n")
        reused = False
    digest = sha256_of(output)
    output.with_name(f"{output.name}.sha256").write_text(f"{digest}  {output.name}\n")
    return BuildResult(output, digest, output.stat().st_size, reused, time.monotonic() - started)


def terraform_handlers(terraform: Path = REPO_ROOT / "terraform") -> list[str]:
    """Every ``handler`` in ``local.lambda_functions`` (needs python-hcl2, a dev dependency)."""
    import hcl2

    handlers: list[str] = []
    for path in sorted(terraform.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle)
        for block in parsed.get("locals", []):
            for function in block.get("lambda_functions", {}).values():
                if isinstance(function, dict) and "handler" in function:
                    handlers.append(str(function["handler"]).strip('"'))
    return sorted(handlers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--force", action="store_true", help="rewrite the zip even if current")
    options = parser.parse_args(argv)
    try:
        handlers = terraform_handlers()
    except ImportError:  # without python-hcl2 the import check has nothing to start from
        handlers = []
    try:
        result = build(options.output, handlers=handlers, force=options.force)
    except PackagingError as exc:
        print(f"make package: {exc}", file=sys.stderr)
        return 1
    target = Target()
    state = "unchanged, reused" if result.reused else "built"
    shown = (
        result.path.relative_to(REPO_ROOT) if result.path.is_relative_to(REPO_ROOT) else result.path
    )
    print(
        f"{shown} ({state}, {result.size / 1_048_576:.1f} MiB,"
        f" {target.runtime} {target.architecture}, {result.seconds:.1f} s)\nsha256 {result.sha256}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
