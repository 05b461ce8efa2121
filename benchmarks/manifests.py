"""`make bench`: manifests at scale.

Generates a git repository of 10,000 VMs in 100 wave files and measures, in one run:

- validate (read, parse with positions, validate, effective specs, cross-file rules)
  against parsing the same files with PyYAML's C loader and nothing else. The baseline
  runs with the garbage collector paused, as validate does, so the ratio is not flattered;
- plan between two commits that differ in 1% of the VMs, against validate: once with the
  changes in ten files (a typical pull request: one tier resized across ten waves) and
  once spread over every file (the worst case: both revisions must be read in full), the
  latter both ways, the base validated in a second process (as plan does) and in this one.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from orchestration.gitops.git import GitRepository
from orchestration.gitops.plan import build_plan
from orchestration.local.synthetic import write_estate
from orchestration.manifests import disk
from orchestration.manifests.validation import validate_files

NOW = datetime(2026, 11, 26, tzinfo=UTC)


@dataclass(frozen=True)
class Estate:
    repo: Path
    paths: list[Path]
    base: str
    head_few: str
    changed_few: int
    head_spread: str
    changed_spread: int
    size_mb: float


def _git(repo: Path, *args: str) -> str:
    author = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]
    return subprocess.run(
        ["git", *author, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def build_estate(repo: Path, waves: int, vms_per_wave: int) -> Estate:
    folder = repo / "manifests" / "waves"
    paths = write_estate(folder, waves, vms_per_wave)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "estate")
    base = _git(repo, "rev-parse", "HEAD")
    one_percent = max(1, waves * vms_per_wave // 100)

    files_few = min(10, waves)
    few = {
        w: frozenset(range(one_percent // files_few)) for w in range(0, waves, waves // files_few)
    }
    write_estate(folder, waves, vms_per_wave, few)
    _git(repo, "commit", "-qam", "1% in ten files")
    head_few = _git(repo, "rev-parse", "HEAD")

    spread = {w: frozenset(range(max(1, one_percent // waves))) for w in range(waves)}
    write_estate(folder, waves, vms_per_wave, spread)
    _git(repo, "commit", "-qam", "1% in every file")
    head_spread = _git(repo, "rev-parse", "HEAD")

    _git(repo, "checkout", "--quiet", base)
    return Estate(
        repo=repo,
        paths=paths,
        base=base,
        head_few=head_few,
        changed_few=sum(len(v) for v in few.values()),
        head_spread=head_spread,
        changed_spread=sum(len(v) for v in spread.values()),
        size_mb=sum(p.stat().st_size for p in paths) / 1e6,
    )


def timed(action: Callable[[], object], repeats: int, *, gc_paused: bool = False) -> float:
    """Median wall time of ``repeats`` runs, each from a clean collector state."""
    times = []
    for _ in range(repeats):
        gc.unfreeze()
        gc.collect()
        if gc_paused:
            gc.disable()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
        gc.enable()
    return statistics.median(times)


def measure(estate: Estate, total: int, repeats: int) -> dict[str, float]:
    git = GitRepository(estate.repo)

    def bare_parse() -> None:
        for path in estate.paths:
            yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)

    def validate() -> None:
        files, _ = disk.read(estate.paths)
        result = validate_files(files, now=NOW)
        assert result.valid
        assert len(result.vms) == total

    def plan(head: str, expected: int, *, parallel: bool | None = None) -> Callable[[], None]:
        def run() -> None:
            result = build_plan(
                git, git.resolve(estate.base), git.resolve(head), now=NOW, parallel=parallel
            )
            assert result.totals["changed"] == expected, result.totals

        return run

    return {
        "parse": timed(bare_parse, repeats, gc_paused=True),
        "validate": timed(validate, repeats),
        "plan_few": timed(plan(estate.head_few, estate.changed_few), repeats),
        "plan_spread": timed(plan(estate.head_spread, estate.changed_spread), repeats),
        "plan_spread_one_process": timed(
            plan(estate.head_spread, estate.changed_spread, parallel=False), repeats
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waves", type=int, default=100)
    parser.add_argument("--vms-per-wave", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    total = args.waves * args.vms_per_wave

    with tempfile.TemporaryDirectory(prefix="wavepilot-bench-") as workdir:
        estate = build_estate(Path(workdir), args.waves, args.vms_per_wave)
        seconds = measure(estate, total, args.repeats)

    parse, validate = seconds["parse"], seconds["validate"]
    table = Table(title=f"Manifests: {total:,} VMs in {args.waves} files ({estate.size_mb:.1f} MB)")
    for column, justify in (("Measure", "left"), ("Seconds", "right"), ("Ratio", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("Goal", justify="right")
    table.add_row("parse only (PyYAML CSafeLoader)", f"{parse:.3f}", "1.00x parse", "")
    table.add_row(
        "wavepilot validate", f"{validate:.3f}", f"{validate / parse:.2f}x parse", "<= 3x"
    )
    spread = f"plan, {estate.changed_spread} VMs changed in all {args.waves} files"
    for key, label, goal in (
        ("plan_few", f"plan, {estate.changed_few} VMs changed in 10 files", "<= 2x"),
        ("plan_spread", spread, "<= 2x"),
        ("plan_spread_one_process", f"{spread}, base in this process (before)", ""),
    ):
        table.add_row(
            label, f"{seconds[key]:.3f}", f"{seconds[key] / validate:.2f}x validate", goal
        )
    Console(width=110).print(table)
    print(
        f"median of {args.repeats} runs each; command: make bench (python -m benchmarks.manifests)"
    )
    print(
        "plan validates the base files that differ from head in a second process when they are "
        f"large: {seconds['plan_spread_one_process'] / seconds['plan_spread']:.2f}x faster than "
        "in one process"
    )


if __name__ == "__main__":
    main()
