"""Find and read wave files on disk for ``wavepilot validate``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from orchestration.manifests import decoding
from orchestration.manifests.findings import Finding
from orchestration.manifests.validation import ManifestFile, is_wave_file


class PathNotFoundError(Exception):
    """A path given on the command line does not exist."""


def discover(paths: Iterable[str]) -> list[Path]:
    """Wave files named directly, and every ``*.yaml``/``*.yml`` under named folders."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_wave_file(p.name)))
        elif path.is_file():
            found.append(path)
        else:
            raise PathNotFoundError(raw)
    return list(dict.fromkeys(found))


def read(paths: Iterable[Path]) -> tuple[list[ManifestFile], list[Finding]]:
    """Read wave files as UTF-8; a file that is too large or not text is a finding, not a crash.

    The size is checked before the file is read, so a huge file costs nothing.
    """
    files: list[ManifestFile] = []
    findings: list[Finding] = []
    for path in paths:
        shown = _display_path(path)
        try:
            manifest = decoding.too_large(shown, path.stat().st_size) or decoding.decode(
                shown, path.read_bytes()
            )
        except OSError as exc:
            findings.append(Finding(shown, 1, 1, f"cannot read the file: {exc.strerror}"))
            continue
        if manifest.unreadable is not None:
            findings.append(manifest.unreadable)
        else:
            files.append(manifest)
    return files, findings


def _display_path(path: Path) -> str:
    """Relative to the working directory when inside it: what GitHub annotations expect."""
    try:
        return (
            Path(os.path.relpath(path)).as_posix()
            if not path.is_absolute() or path.is_relative_to(Path.cwd())
            else path.as_posix()
        )
    except ValueError:  # pragma: no cover - another drive on Windows
        return path.as_posix()
