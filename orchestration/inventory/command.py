"""``wavepilot import``: read an inventory, write one wave file per wave, say what to fill.

Exit status: 0 every row imported and the written waves validate as they are; 1 the waves
need the listed values filled (or some rows were refused); 2 nothing could be imported
(the file is refused, or every row is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from orchestration.cli_errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from orchestration.clock import SYSTEM_CLOCK
from orchestration.inventory.emit import EmittedWave, emit_wave
from orchestration.inventory.sources import (
    FORMATS,
    MAX_INVENTORY_BYTES,
    InventoryFormat,
    InventoryRefusedError,
    RowProblem,
    decode_inventory,
    detect_format,
    parse_inventory,
)
from orchestration.inventory.waves import (
    ExistingWave,
    ValueToFill,
    WaveDraft,
    WaveSettings,
    draft_wave,
    existing_wave,
    group_waves,
)
from orchestration.manifests import disk
from orchestration.manifests.findings import Finding
from orchestration.manifests.limits import LIMITS
from orchestration.manifests.validation import ManifestFile, validate_files


@dataclass(frozen=True)
class ImportOptions:
    inventory: Path
    output: Path
    inventory_format: InventoryFormat | None = None
    wave: str | None = None
    given: WaveSettings = field(default_factory=WaveSettings)


@dataclass(frozen=True)
class ImportResult:
    """What an import would write, and everything to tell the person (pure: nothing written)."""

    files: dict[Path, str]
    drafts: dict[Path, tuple[WaveDraft, EmittedWave]]
    problems: tuple[RowProblem, ...]


def read_inventory_text(path: Path) -> str:
    """The inventory's text, refused before reading when it is over the size limit."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if size > MAX_INVENTORY_BYTES:
        raise UsageError(
            f"{path.name}: {size:,} bytes is over the {MAX_INVENTORY_BYTES // (1024 * 1024)} MiB "
            "limit for an inventory: split it into several files"
        )
    try:
        return decode_inventory(path.name, path.read_bytes())
    except InventoryRefusedError as exc:
        raise UsageError(str(exc)) from None


def plan_import(
    name: str,
    text: str,
    output: Path,
    *,
    inventory_format: InventoryFormat | None = None,
    wave: str | None = None,
    given: WaveSettings | None = None,
) -> ImportResult:
    """The wave files an inventory's text becomes, given the files already in ``output``."""
    chosen = inventory_format or detect_format(text)
    if chosen is None:
        raise UsageError(
            f"{name}: not an inventory this command reads (a CMF server list, an MGN import CSV "
            f"or `az vm list` JSON): say which with --format {'|'.join(FORMATS)}"
        )
    if chosen == "azure" and not wave:
        raise UsageError(f"{name}: Azure VMs have no wave: name it with --wave NAME")
    try:
        inventory = parse_inventory(name, text, chosen)
    except InventoryRefusedError as exc:
        raise UsageError(str(exc)) from None
    rows = [(given or WaveSettings()).fill(row) for row in inventory.rows]
    waves, refused = group_waves(rows, wave_name=wave)
    problems = [*inventory.problems, *refused]
    files: dict[Path, str] = {}
    drafts: dict[Path, tuple[WaveDraft, EmittedWave]] = {}
    for wave_name, rows in waves.items():
        path = output / f"{wave_name}.yaml"
        draft, wave_problems = draft_wave(wave_name, rows, _existing(path))
        problems.extend(wave_problems)
        if not draft.applications:
            continue
        emitted = emit_wave(draft, source_file=name, inventory_format=chosen)
        files[path] = emitted.text
        drafts[path] = (draft, emitted)
    problems.sort(key=lambda problem: problem.origin.number)
    return ImportResult(files, drafts, tuple(problems))


def _existing(path: Path) -> ExistingWave | None:
    """The values filled in an earlier import of this wave, when its file can be read."""
    if not path.is_file() or path.stat().st_size > LIMITS.file_bytes:
        return None  # a file the validator would refuse has nothing to keep
    try:
        document = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=yaml.BaseLoader)  # noqa: S506 - the base loader builds only strings, lists and dicts
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return None
    return existing_wave(document)


def run_import(options: ImportOptions) -> int:
    text = read_inventory_text(options.inventory)
    result = plan_import(
        options.inventory.name,
        text,
        options.output,
        inventory_format=options.inventory_format,
        wave=options.wave,
        given=options.given,
    )
    for problem in result.problems:
        print(problem)
    if not result.files:
        print(f"nothing imported from {options.inventory.name}: no row could be imported")
        return EXIT_USAGE
    options.output.mkdir(parents=True, exist_ok=True)
    to_fill = 0
    placeholder_lines: set[tuple[str, int]] = set()
    for path, text_out in result.files.items():
        path.write_text(text_out, encoding="utf-8", newline="\n")
        draft, emitted = result.drafts[path]
        for caution in draft.warnings:
            print(caution)
        messages = values_to_fill_messages(draft, emitted, path)
        for message in messages:
            print(message)
        to_fill += len(messages)
        placeholder_lines |= {(str(path), line) for line in emitted.lines.values()}
        vms = sum(len(app.vms) for app in draft.applications)
        print(
            f"wrote {path}: {_count(len(draft.applications), 'application')}, {_count(vms, 'VM')}"
        )
    errors = _validation_errors(result.files, options.output)
    # What the placeholders do not explain (a name already used in another wave, ...).
    for finding in errors:
        if (finding.path, finding.line) not in placeholder_lines:
            print(finding)
    if not errors and not result.problems:
        print("ok: the written waves validate as they are")
        return EXIT_OK
    if errors:
        written = " ".join(str(path) for path in result.files)
        print(
            f"{_count(len(errors), 'validation error')} in the written waves "
            f"({_count(to_fill, 'value')} to fill): fill them, then run "
            f"`wavepilot validate {written}`"
        )
    if result.problems:
        print(f"{len(result.problems)} rows not imported: see above")
    return EXIT_FAILED


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def values_to_fill_messages(draft: WaveDraft, emitted: EmittedWave, path: Path) -> list[str]:
    """One line per placeholder written: rows sharing a lifted placeholder are named together."""
    by_line: dict[tuple[int | None, str, str | None, str], list[ValueToFill]] = {}
    for value in draft.to_fill:
        line = emitted.lines.get((value.vm, value.key))
        by_line.setdefault((line, value.column, value.value, value.why), []).append(value)
    messages = []
    for (line, _, _, _), values in by_line.items():
        others = [str(value.origin.number) for value in values[1:]]
        unit = values[0].origin.unit + ("s" if len(others) > 1 else "")
        also = f" (also {unit} {', '.join(others)})" if others else ""
        where = f" -> fill in {path}:{line}" if line else ""
        messages.append(f"{values[0]}{also}{where}")
    return messages


def _validation_errors(files: dict[Path, str], output: Path) -> list[Finding]:
    """The validator's errors in the written files, checked with the other waves beside them."""
    others = [
        path
        for path in disk.discover([str(output)])
        if path.resolve() not in {written.resolve() for written in files}
    ]
    manifests, _ = disk.read(others)
    written = [ManifestFile(str(path), text) for path, text in files.items()]
    validation = validate_files([*manifests, *written], now=SYSTEM_CLOCK.now())
    names = {str(path) for path in files}
    return [finding for finding in validation.errors if finding.path in names]
