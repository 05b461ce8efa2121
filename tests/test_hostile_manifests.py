"""Hostile manifests: every file an attacker can put in a pull request gets a quick, clear answer.

The small cases live in ``tests/corpus/hostile/``; the big ones (100 MB, nesting 100,000
deep, a million values) are generated into ``tmp_path``. Each is validated in-process for
its exact finding, and by ``wavepilot validate`` in a subprocess with its address space
capped, to show it is answered in under 2 s and 200 MB, not just trusted to be.

The 2 s are the child's CPU time (user + system, from ``wait4``): on a shared CI runner the
wall clock measures the neighbours. A wall-clock cap still ends a child that hangs.
"""

from __future__ import annotations

import os
import random
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestration.gitops.git import GitRepository
from orchestration.manifests import disk
from orchestration.manifests.findings import Finding
from orchestration.manifests.limits import LIMITS
from orchestration.manifests.validation import validate_files

REPO = Path(__file__).parents[1]
HOSTILE = Path(__file__).parent / "corpus" / "hostile"
MINIMAL = (Path(__file__).parent / "corpus" / "valid" / "minimal.yaml").read_text(encoding="utf-8")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MB = 1024 * 1024
BUDGET_SECONDS = 2.0  # CPU time, interpreter start-up and imports included
HANG_SECONDS = 30.0  # wall clock, however loaded the machine is
BUDGET_BYTES = 200 * MB

TAG = "is not allowed: a wave manifest holds only strings, numbers, booleans, lists and mappings"
DEEP = "more than 32 levels of nested lists and mappings (the limit)"
BOMB = "with its aliases expanded, the file holds more than 100,000 values (the limit)"
CONTROL = "is not allowed in YAML: a wave manifest is text"
NAME = "name: the wave is called 'minimal' but its file is"

# The first finding of each committed hostile file, as `wavepilot validate` prints it.
FIRST_FINDING: dict[str, str] = {
    "alias-as-key": "2:4: keys must be strings, not a mapping",
    "alias-bomb-in-wave": f"19:25: {BOMB}: this alias copies 19,531",
    "alias-bomb-keys": f"7:14: {BOMB}",
    "alias-bomb-mappings": f"6:52: {BOMB}",
    "alias-bomb-sequences": f"7:8: {BOMB}: this alias copies 66,430",
    "bidi-override": "4:14: description: '\\u202etxt.exe\\u202c order' contains a control or "
    "invisible character, U+202E (RIGHT-TO-LEFT OVERRIDE) at position 1",
    "binary-tag": f"2:7: the YAML tag !!binary {TAG}",
    "c0-control": f"2:11: control character U+001B {CONTROL}",
    "c1-control": f"2:11: control character U+009B {CONTROL}",
    "custom-tag": f"2:7: the YAML tag !Ref {TAG}",
    "deep-block-sequence": f"2:65: {DEEP}",
    "deep-flow-mapping": f"2:128: {DEEP}",
    "deep-in-tags": f"17:46: {DEEP}",
    "escaped-controls": "17:9: defaults.tags: the value of tag 'Owner' contains a control or "
    "invisible character, U+0000 (a control character) at position 2",
    "huge-int": "2:1: a: unknown key 'a'",
    "latin1": "4:17: not UTF-8 text (invalid continuation byte at byte 67): "
    "if it is text, save it as UTF-8",
    "long-instance-type": "15:17: defaults.instanceType: 'm6i.largem6i.large",
    "nul-byte": f"2:11: control character U+0000 {CONTROL}",
    "nul-bytes": f"1:1: control character U+0000 {CONTROL}",
    "omap-tag": f"2:7: the YAML tag !!omap {TAG}",
    "python-name": f"2:7: the YAML tag !!python/name:os.system {TAG}",
    "python-object-apply": f"2:7: the YAML tag !!python/object/apply:os.system {TAG}",
    "python-object-new": f"2:7: the YAML tag !!python/object/new:subprocess.Popen {TAG}",
    "random-bytes": "1:1: not UTF-8 text (invalid continuation byte at byte 0)",
    "recursive-alias": "2:11: alias *a refers to a list or mapping that contains it",
    "recursive-alias-mapping": "2:11: alias *a refers to a list or mapping that contains it",
    "set-tag": f"2:7: the YAML tag !!set {TAG}",
    "tag-directive": f"4:7: the YAML tag !!python/object/apply:os.system {TAG}",
    "tag-on-key": f"2:1: the YAML tag !!python/name:os.system {TAG}",
    "two-documents-many": "3:1: the file holds more than one YAML document: one wave per file",
    "utf16be": "1:1: the file looks like UTF-16 (big-endian) text (no byte-order mark): "
    "save it as UTF-8",
    "utf16be-bom": "1:1: the file is UTF-16 (big-endian) text: save it as UTF-8",
    "utf16le": "1:1: the file looks like UTF-16 (little-endian) text (no byte-order mark)",
    "utf16le-bom": "1:1: the file is UTF-16 (little-endian) text: save it as UTF-8",
    "utf32be": "1:1: the file looks like UTF-32 (big-endian) text (no byte-order mark)",
    "utf32be-bom": "1:1: the file is UTF-32 (big-endian) text: save it as UTF-8",
    "utf32le": "1:1: the file looks like UTF-32 (little-endian) text (no byte-order mark)",
    "utf32le-bom": "1:1: the file is UTF-32 (little-endian) text: save it as UTF-8",
    # Accepted: the only finding is that the wave inside is named after minimal.yaml.
    "utf8-bom": f"2:7: {NAME}",
}


def _vms(count: int) -> str:
    item = (
        "      - source: {{azureResourceId: /subscriptions/6f1c2a90-3b7e-4d5a-9c11-2f8e7a4b9d10/"
        "resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-{0}, "
        "userProvidedId: vm-{0}}}\n        targetVmName: vm-{0}\n"
    )
    head, _, _ = MINIMAL.partition("    vms:\n")
    return head + "    vms:\n" + "".join(item.format(i) for i in range(count))


# Files too big to commit, built at run time: name -> (bytes, first finding after "path:").
GENERATED: dict[str, Callable[[], tuple[bytes, str]]] = {
    "deep-flow-sequences": lambda: (b"a: " + b"[" * 100_000 + b"]" * 100_000, f"1:35: {DEEP}"),
    "deep-flow-mappings": lambda: (b"{a: " * 100_000 + b"x" + b"}" * 100_000, f"1:129: {DEEP}"),
    "deep-flow-mixed": lambda: (b"[{a: " * 50_000 + b"x" + b"}]" * 50_000, f"1:81: {DEEP}"),
    "deep-block-mappings": lambda: (
        "".join(" " * i + "a:\n" for i in range(2_000)).encode(),
        f"33:33: {DEEP}",
    ),
    "deep-block-sequences": lambda: (b"- " * 100_000 + b"x\n", f"1:65: {DEEP}"),
    "huge-file": lambda: (b"- x\n" * (25 * MB), "1:1: the file is 104,857,600 bytes: a wave file"),
    "many-values": lambda: (
        b"[" + b"1," * (2 * MB - 100) + b"1]",
        "1:200000: more than 100,000 values in one file",
    ),
    "many-keys": lambda: (
        ("{" + ", ".join(f"k{i}: 1" for i in range(300_000)) + "}").encode(),
        "1:",
    ),
    "many-documents": lambda: (b"--- a\n" * 600_000, "2:1: the file holds more than one"),
    "huge-plain-scalar": lambda: (b"a: " + b"x" * (3 * MB), "1:4: a value of 3,145,728 characters"),
    "huge-quoted-scalar": lambda: (b'a: "' + b"x" * (3 * MB) + b'"', "1:4: a value of 3,145,728"),
    "long-comment-line": lambda: (("#" + "x" * (4 * MB - 2000) + "\n" + MINIMAL).encode(), "3:7:"),
    "many-vms": lambda: (
        _vms(LIMITS.vms + 1).encode(),
        "2021:9: applications[0].vms[1000]: more than 1,000 VMs",
    ),
    "vms-at-the-limit": lambda: (_vms(LIMITS.vms).encode(), f"2:7: {NAME}"),
    "random-megabyte": lambda: (
        random.Random(1).randbytes(MB),  # noqa: S311 - reproducible junk, not secrets
        "1:1: not UTF-8 text",
    ),
    "nul-megabyte": lambda: (b"\0" * MB, f"1:1: control character U+0000 {CONTROL}"),
}


def _committed() -> list[str]:
    return sorted(path.stem for path in HOSTILE.glob("*.yaml"))


def _first_finding(path: Path) -> Finding:
    files, unreadable = disk.read([path])
    findings = sorted([*unreadable, *validate_files(files, now=NOW).findings])
    assert findings, f"{path.name} was accepted"
    return findings[0]


def test_every_committed_file_has_an_expectation() -> None:
    assert _committed() == sorted(FIRST_FINDING)


@pytest.mark.parametrize("name", sorted(FIRST_FINDING))
def test_a_committed_hostile_file_gets_its_finding(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a hostile file from the corpus, WHEN it is validated,
    monkeypatch.chdir(HOSTILE)
    finding = _first_finding(Path(f"{name}.yaml"))
    # THEN the first finding is the one that names the attack, where it is.
    assert str(finding).startswith(f"{name}.yaml:{FIRST_FINDING[name]}")


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_a_generated_hostile_file_gets_its_finding(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content, expected = GENERATED[name]()
    (tmp_path / f"{name}.yaml").write_bytes(content)
    monkeypatch.chdir(tmp_path)

    finding = _first_finding(Path(f"{name}.yaml"))

    assert str(finding).startswith(f"{name}.yaml:{expected}")


# --- measured in a subprocess --------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    status: int
    output: str
    seconds: float  # wall clock
    cpu_seconds: float
    peak_rss: int  # bytes
    peak_virtual: int  # bytes, read from /proc when the child reports it (baseline only)


def _run(args: list[str], cwd: Path, *, address_space: int | None = None) -> Run:
    """Run a Python child; its own peak RSS comes from wait4, not from all children so far."""

    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = {**os.environ, "PYTHONPATH": str(REPO), "GITHUB_ACTIONS": "false"}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=limit,  # noqa: PLW1509 - setrlimit must run in the child
    )
    watchdog = threading.Timer(HANG_SECONDS, child.kill)
    watchdog.start()
    assert child.stdout is not None
    try:
        with child.stdout:
            output = child.stdout.read().decode("utf-8", errors="replace")
        _, wait_status, usage = os.wait4(child.pid, 0)
    finally:
        watchdog.cancel()
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(wait_status)
    peaks = dict(re.findall(r"^(VmPeak):\s+(\d+) kB", output, re.MULTILINE))
    return Run(
        status=child.returncode,
        output=output,
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss=usage.ru_maxrss * 1024,
        peak_virtual=int(peaks.get("VmPeak", "0")) * 1024,
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """What `wavepilot validate` costs on a small valid file: interpreter, imports, pydantic."""
    folder = tmp_path_factory.mktemp("baseline")
    (folder / "minimal.yaml").write_text(MINIMAL, encoding="utf-8")
    script = (
        "import sys; from orchestration import cli; status = cli.main(['validate', "
        "'minimal.yaml']); print(open('/proc/self/status').read()); sys.exit(status)"
    )
    run = _run(["-c", script], folder)
    assert run.status == 0, run.output
    assert run.peak_virtual > 0
    return run


def _validate_hostile(path: Path, baseline: Run) -> Run:
    # The cap is 200 MB over the baseline's address space: past it, allocations fail and
    # the child would print a MemoryError traceback, which the assertions below refuse.
    run = _run(
        ["-m", "orchestration.cli", "validate", path.name],
        path.parent,
        address_space=baseline.peak_virtual + BUDGET_BYTES,
    )
    assert "Traceback" not in run.output, run.output[-2000:]
    assert run.status == 1, run.output[-2000:]
    assert re.match(rf"{re.escape(path.name)}:\d+:\d+: ", run.output), run.output[:500]
    assert run.cpu_seconds < BUDGET_SECONDS, f"{run.cpu_seconds:.2f} s of CPU"
    assert run.seconds < HANG_SECONDS
    assert run.peak_rss - baseline.peak_rss < BUDGET_BYTES, f"{run.peak_rss / MB:.0f} MB"
    return run


@pytest.mark.parametrize("name", sorted(FIRST_FINDING))
def test_wavepilot_validate_answers_a_committed_hostile_file_within_budget(
    name: str, baseline: Run
) -> None:
    _validate_hostile(HOSTILE / f"{name}.yaml", baseline)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_wavepilot_validate_answers_a_generated_hostile_file_within_budget(
    name: str, baseline: Run, tmp_path: Path
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(GENERATED[name]()[0])
    _validate_hostile(path, baseline)


# --- the same answers from git blobs (plan and publish read revisions, not the disk) -------


def test_git_blobs_that_are_too_large_or_not_utf8_are_findings_and_are_not_read(
    tmp_path: Path,
) -> None:
    # GIVEN a commit with a wave file over the size limit and one saved as Latin-1
    waves = tmp_path / "manifests" / "waves"
    waves.mkdir(parents=True)
    (waves / "huge.yaml").write_bytes(b"# padding\n" * (LIMITS.file_bytes // 10 + 1))
    (waves / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "hostile"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True)
    repo = GitRepository(tmp_path)

    # WHEN the revision's wave files are read and validated
    files = repo.read_files(repo.resolve("HEAD"), "manifests/waves")
    result = validate_files(files, now=NOW)

    # THEN each is reported as disk.read reports it, and the huge one was never read
    assert [str(finding) for finding in result.findings] == [
        "manifests/waves/huge.yaml:1:1: the file is 4,194,310 bytes: a wave file may have at "
        "most 4,194,304 (4 MiB, the limit): split the wave",
        "manifests/waves/latin1.yaml:1:10: not UTF-8 text (invalid continuation byte at byte 9): "
        "if it is text, save it as UTF-8",
    ]
    assert [file.text for file in files] == ["", ""]
