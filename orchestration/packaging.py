"""``make package``: the Lambda deployment package, reproducibly, for Terraform's runtime.

One zip serves every function (Terraform's ``aws_lambda_function.this`` takes one
``var.lambda_package_path`` for all of them, each with its own ``handler``): the runtime code
of ``orchestration`` and ``bot`` and the dependencies in ``requirements/lambda.txt`` (``make
lock`` writes it: ``[project] dependencies`` and what they need, every version pinned, every
wheel's sha256), as wheels for the Lambda runtime and architecture (not the build machine's).
The runtime and architecture are read from terraform/lambda.tf, the one place they are set.
boto3 and botocore are included although the runtime provides them: the pinned ones are newer,
and the package should run what the tests ran.

Not deployed: ``orchestration/local/`` (the embedded runtime, moto), the CLI's extras (PyGithub,
Jinja2) and the build itself; the build fails if a handler's imports reach an excluded module,
or if a wheel's tags do not fit the runtime. Reproducible: pip installs with
``--require-hashes`` (a cold cache fetches the very same wheels), sorted entries, fixed
timestamps (1980-01-01, or ``SOURCE_DATE_EPOCH``), fixed permissions, no
``__pycache__``/``.pyc``, so two builds from the same inputs are byte-identical.

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
import re
import shutil
import stat
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_TERRAFORM = REPO_ROOT / "terraform" / "lambda.tf"
LAMBDA_LOCK = REPO_ROOT / "requirements" / "lambda.txt"
# The architecture name pip's platform tags use, and the newest glibc the wheels may need:
# manylinux2014 (glibc 2.17) loads on every Lambda Python runtime (python3.13 runs on Amazon
# Linux 2023, glibc 2.34), and every compiled dependency ships such a wheel.
MACHINE_BY_ARCHITECTURE = {"x86_64": "x86_64", "arm64": "aarch64"}
MANYLINUX_GLIBC_MINOR = 17
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}

PACKAGE_NAME = "wavepilot-lambda.zip"
DEFAULT_OUTPUT = REPO_ROOT / "dist" / PACKAGE_NAME
CACHE_DIR = REPO_ROOT / ".lambda-cache"
PROJECT_PACKAGES = ("orchestration", "bot")
# Never deployed: the embedded runtime, and the build itself.
# What runs on a developer's machine only: the embedded system, the rehearsal (which drives
# it), and the tools that build the package.
EXCLUDED = (
    "orchestration/local",
    "orchestration/rehearsal",
    "orchestration/packaging.py",
    "orchestration/lambda_lock.py",
)
EXCLUDED_MODULES = (
    "orchestration.local",
    "orchestration.rehearsal",
    "orchestration.packaging",
    "orchestration.lambda_lock",
)
# pip --target's console scripts are of no use in Lambda.
EXCLUDED_DEPENDENCY_DIRS = ("bin",)
# Marks a finished install in the cache (it holds the lock); not part of the package.
COMPLETE_MARKER = ".complete"
# What pip --target adds that would make two builds differ: nothing else is read from the clock.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
COMPRESS_LEVEL = 6  # zlib default: level 9 takes twice as long for 1% less
BUILD_FORMAT = "2"  # bump when the zip layout changes, so cached packages are rebuilt


class PackagingError(RuntimeError):
    """The package cannot be built as specified (a dependency, an import, a conflict)."""


def terraform_runtime(lambda_tf: Path = LAMBDA_TERRAFORM) -> tuple[str, str]:
    """``(runtime, architecture)`` of ``aws_lambda_function.this``: Terraform's, read here rather
    than repeated (a regular expression: ``make package`` must not need python-hcl2)."""
    text = lambda_tf.read_text(encoding="utf-8")
    runtime = re.search(r'^\s*runtime\s*=\s*"(python3\.\d+)"', text, re.MULTILINE)
    architectures = re.search(r'^\s*architectures\s*=\s*\[\s*"(\w+)"\s*\]', text, re.MULTILINE)
    if runtime is None or architectures is None:
        raise PackagingError(f'{lambda_tf}: no runtime = "python3.N" / architectures = [...]')
    return runtime.group(1), architectures.group(1)


LAMBDA_RUNTIME, LAMBDA_ARCHITECTURE = terraform_runtime()


@dataclass(frozen=True)
class Target:
    runtime: str = LAMBDA_RUNTIME
    architecture: str = LAMBDA_ARCHITECTURE

    @property
    def python_version(self) -> str:
        """``python3.13`` -> ``3.13``."""
        return self.runtime.removeprefix("python")

    @property
    def interpreter(self) -> str:
        """``cp313``: the CPython tag of the runtime's interpreter."""
        return f"cp{self.python_version.replace('.', '')}"

    @property
    def platform(self) -> str:
        """The platform pip selects wheels for (it also takes older manylinux tags)."""
        return f"{LEGACY_MANYLINUX[MANYLINUX_GLIBC_MINOR]}_{self.machine}"

    @property
    def machine(self) -> str:
        return MACHINE_BY_ARCHITECTURE[self.architecture]

    @property
    def tag(self) -> str:
        return f"{self.interpreter}-{self.platform}"

    def supported_tags(self) -> frozenset[Tag]:
        """Every wheel tag the runtime loads: ``cp313``, ``abi3`` or pure Python, for manylinux
        up to glibc 2.17 on the architecture, or ``any``."""
        version = (3, int(self.python_version.split(".")[1]))
        platforms = []
        for minor in range(MANYLINUX_GLIBC_MINOR, 4, -1):
            platforms.append(f"manylinux_2_{minor}_{self.machine}")
            if minor in LEGACY_MANYLINUX:
                platforms.append(f"{LEGACY_MANYLINUX[minor]}_{self.machine}")
        return frozenset(
            [
                *cpython_tags(version, abis=[self.interpreter], platforms=platforms),
                *compatible_tags(version, self.interpreter, platforms),
            ]
        )

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


def unsupported_wheels(wheel_metadata: Mapping[str, str], target: Target) -> list[str]:
    """The ``*.dist-info`` (name -> its ``WHEEL`` file's text) none of whose ``Tag:`` lines the
    target's interpreter and platform load; empty when every one fits."""
    supported = target.supported_tags()
    problems: list[str] = []
    for dist_info, text in sorted(wheel_metadata.items()):
        tags = [
            Tag(*line.partition(":")[2].strip().split("-"))
            for line in text.splitlines()
            if line.startswith("Tag:")
        ]
        if not tags or not supported.intersection(tags):
            problems.append(f"{dist_info}: {', '.join(str(t) for t in tags) or 'no Tag'}")
    return problems


def _wheel_metadata(site: Path) -> dict[str, str]:
    return {
        path.parent.name: path.read_text(encoding="utf-8")
        for path in sorted(site.glob("*.dist-info/WHEEL"))
    }


@dataclass(frozen=True)
class BuildResult:
    path: Path
    sha256: str
    size: int
    reused: bool
    seconds: float


def runtime_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """``[project] dependencies``: exact pins only (not the extras, not dev)."""
    with pyproject.open("rb") as handle:
        requirements: list[str] = tomllib.load(handle)["project"]["dependencies"]
    loose = [r for r in requirements if "==" not in r]
    if loose:
        raise PackagingError(f"runtime dependencies must be pinned exactly: {loose}")
    return sorted(requirements)


LOCK_TARGETS_PREFIX = "# targets: "


def lock_targets(lock: Path = LAMBDA_LOCK) -> list[Target]:
    """The targets whose wheels' hashes ``lock`` holds (its ``# targets:`` line)."""
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(LOCK_TARGETS_PREFIX):
            return [
                Target(*item.split("/")) for item in line.removeprefix(LOCK_TARGETS_PREFIX).split()
            ]
    return []


def locked_pins(lock: Path = LAMBDA_LOCK) -> dict[str, str]:
    """Normalised name -> version of each requirement in ``lock``."""
    pins: dict[str, str] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", line)
        if match:
            pins[_normalised(match.group(1))] = match.group(2)
    return pins


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_lock(
    target: Target, lock: Path = LAMBDA_LOCK, pyproject: Path = REPO_ROOT / "pyproject.toml"
) -> None:
    """The lock is for ``target`` and for pyproject.toml's pins, or ``make lock`` is due."""
    if not lock.exists():
        raise PackagingError(f"{lock.name} is missing: run make lock")
    if target not in lock_targets(lock):
        raise PackagingError(
            f"{lock.name} has no hashes for {target.runtime} {target.architecture}: run make lock"
        )
    pins = locked_pins(lock)
    for requirement in runtime_requirements(pyproject):
        name, _, version = requirement.partition("==")
        name = _normalised(name.split("[")[0])
        if pins.get(name) != version:
            raise PackagingError(
                f"{lock.name} pins {name} {pins.get(name)}, pyproject.toml {version}: run make lock"
            )


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
        if relative.as_posix() == COMPLETE_MARKER:
            continue
        files[relative.as_posix()] = path
    return files


def _module_of(name: str) -> str:
    """``orchestration/handlers/wiring.py`` -> ``orchestration.handlers.wiring``."""
    module = name.removesuffix(".py").replace("/", ".")
    return module.removesuffix(".__init__")


def _imports(source: Path, module: str) -> Iterator[str]:
    """Every module an import statement in ``source`` names, at any depth (lazy ones too)."""
    for node in ast.walk(ast.parse(source.read_bytes(), str(source))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield from _imports_of(node, module, source)


def _imports_of(node: ast.Import | ast.ImportFrom, module: str, source: Path) -> Iterator[str]:
    """The modules one import statement names (``from a import b``: ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        parts = module.split(".")
        base_parts = parts if source.name == "__init__.py" else parts[:-1]
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


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """The nodes inside ``if TYPE_CHECKING:`` blocks: imported by mypy, never at run time."""
    hidden: set[ast.AST] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for statement in node.body:  # type: ignore[attr-defined]
                hidden.update(ast.walk(statement))
    return hidden


def third_party_imports(files: dict[str, Path], handlers: Iterable[str]) -> dict[str, str]:
    """Top-level name of each module outside the project and the standard library that the
    handlers import at run time, directly or through project modules (their packages'
    ``__init__`` included) -> the first project module that imports it."""
    modules = {_module_of(name): path for name, path in files.items() if name.endswith(".py")}
    pending: list[str] = []
    for handler in handlers:
        parts = handler.rpartition(".")[0].split(".")
        pending.extend(".".join(parts[: i + 1]) for i in range(len(parts)))
    seen: set[str] = set()
    found: dict[str, str] = {}
    while pending:
        current = pending.pop()
        if current in seen or current not in modules:
            continue
        seen.add(current)
        tree = ast.parse(modules[current].read_bytes(), str(modules[current]))
        hidden = _type_checking_only(tree)
        for node in ast.walk(tree):
            if node in hidden or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for imported in _imports_of(node, current, modules[current]):
                top = imported.split(".")[0]
                if imported in modules:
                    parts = imported.split(".")
                    pending.extend(".".join(parts[: i + 1]) for i in range(len(parts)))
                elif top not in PROJECT_PACKAGES and top not in sys.stdlib_module_names:
                    found.setdefault(top, current)
    return dict(sorted(found.items()))


def _inputs_key(target: Target, lock: Path, files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    digest.update(f"{BUILD_FORMAT}\n{target.tag}\n{fixed_date_time()}\n".encode())
    digest.update(lock.read_bytes())
    for name, path in sorted(files.items()):
        digest.update(f"\n{name}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _pip(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def installed_dependencies(
    target: Target, lock: Path = LAMBDA_LOCK, cache: Path = CACHE_DIR
) -> Path:
    """The dependencies installed for ``target`` (``pip install --target``), built once per
    lock; wheels come from the cache, from the index only when the cache lacks one, and pip
    accepts only the files whose sha256 the lock names (``--require-hashes``). The lock is
    complete (``make lock`` resolved it for the target), so nothing is resolved here."""
    locked = lock.read_bytes()
    key = hashlib.sha256(f"{target.tag}\n".encode() + locked).hexdigest()
    site = cache / "site" / key[:16]
    if (site / COMPLETE_MARKER).exists():
        return site
    wheels = cache / "wheels" / target.tag
    wheels.mkdir(parents=True, exist_ok=True)
    staging = site.with_name(f"{site.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    from_lock = ["--require-hashes", "--no-deps", *target.pip_options(), "-r", str(lock)]
    install = [
        "install",
        "--quiet",
        "--no-compile",
        "--no-index",
        "--find-links",
        str(wheels),
        "--target",
        str(staging),
        *from_lock,
    ]
    if _pip(*install).returncode != 0:  # the cache lacks a wheel: fetch them, then again
        downloaded = _pip("download", "--quiet", "--dest", str(wheels), *from_lock)
        if downloaded.returncode != 0:
            raise PackagingError(f"pip download failed:\n{downloaded.stderr}")
        shutil.rmtree(staging, ignore_errors=True)
        installed = _pip(*install)
        if installed.returncode != 0:
            raise PackagingError(f"pip install failed:\n{installed.stderr}")
    (staging / COMPLETE_MARKER).write_bytes(locked)
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
    lock = root / LAMBDA_LOCK.relative_to(REPO_ROOT)
    check_lock(target, lock, root / "pyproject.toml")
    project = project_files(root)
    problems = forbidden_imports(project, handlers)
    if problems:
        raise PackagingError(
            "deployed code imports what is never deployed:\n  " + "\n  ".join(problems)
        )
    key = _inputs_key(target, lock, project)
    site = installed_dependencies(target, lock)
    unsupported = unsupported_wheels(_wheel_metadata(site), target)
    if unsupported:
        raise PackagingError(
            f"wheels {target.runtime} {target.architecture} cannot load:\n  "
            + "\n  ".join(unsupported)
        )
    dependencies = _dependency_files(site)
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
