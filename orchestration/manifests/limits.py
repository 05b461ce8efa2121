"""What a wave file may cost to read: bounds no real wave comes near.

The manifests job runs on every pull request, so a file built to hang the parser or to
exhaust memory (deep nesting, an alias bomb, a 100 MB file) must be refused before it is
expensive. Each bound is far above what a real wave needs and low enough that the worst
file within all of them is validated in well under two seconds and 200 MB.
docs/MANIFESTS.md ("Limits") says why each value was chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ManifestLimits:
    """The bounds one wave file is checked against, before and while it is parsed."""

    file_bytes: int = 4 * MIB
    """Size of the file on disk (or of the git blob), checked before it is read."""

    depth: int = 32
    """Levels of nested lists and mappings; a wave needs 8 (health checks of a VM)."""

    values: int = 100_000
    """Scalars, lists and mappings written in the file."""

    aliases: int = 10_000
    """``*alias`` references in the file."""

    expanded_values: int = 100_000
    """Values once every alias is replaced by a copy of what it names (what validation sees)."""

    scalar_chars: int = 4_096
    """Characters in one scalar; the longest field a wave allows is 500 (``description``)."""

    vms: int = 1_000
    """VMs in one wave file, over all its applications."""


LIMITS = ManifestLimits()
