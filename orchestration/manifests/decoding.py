"""Bytes to manifest text, the same way from disk and from git.

A wave file is UTF-8 (a UTF-8 byte-order mark is accepted). A file in another encoding, or
one that is not text at all, is a finding that says what to do, and a file over the size
limit is refused before it is read.
"""

from __future__ import annotations

import codecs

from orchestration.manifests.findings import Finding
from orchestration.manifests.limits import LIMITS, MIB, ManifestLimits
from orchestration.manifests.validation import ManifestFile

# Longest first: the UTF-32 little-endian mark begins with the UTF-16 one.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)
_SAVE_AS_UTF8 = "save it as UTF-8"


def too_large(path: str, size: int, *, limits: ManifestLimits = LIMITS) -> ManifestFile | None:
    """A file of ``size`` bytes refused for its size, or None when it may be read."""
    if size <= limits.file_bytes:
        return None
    return _unreadable(
        path,
        1,
        1,
        f"the file is {size:,} bytes: a wave file may have at most {limits.file_bytes:,} "
        f"({limits.file_bytes / MIB:g} MiB, the limit): split the wave",
    )


def decode(path: str, raw: bytes, *, limits: ManifestLimits = LIMITS) -> ManifestFile:
    """The text of a wave file, or a file whose ``unreadable`` finding says why it is not."""
    refused = too_large(path, len(raw), limits=limits)
    if refused is not None:
        return refused
    for mark, encoding in _BYTE_ORDER_MARKS:
        if raw.startswith(mark):
            return _unreadable(path, 1, 1, f"the file is {encoding} text: {_SAVE_AS_UTF8}")
    guessed = _utf16_or_32_without_mark(raw)
    if guessed:
        return _unreadable(
            path, 1, 1, f"the file looks like {guessed} text (no byte-order mark): {_SAVE_AS_UTF8}"
        )
    try:
        return ManifestFile(path, raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw, exc.start)
        return _unreadable(
            path,
            line,
            col,
            f"not UTF-8 text ({exc.reason} at byte {exc.start}): if it is text, {_SAVE_AS_UTF8}",
        )


def _utf16_or_32_without_mark(raw: bytes) -> str | None:
    """UTF-16 or UTF-32 text without a byte-order mark, recognised as YAML does (1.2, 5.2).

    A YAML stream starts with an ASCII character, so zero bytes around it tell the
    encoding; the guess is kept only if the start of the file then reads as text.
    """
    head = raw[:4]
    if len(head) < 4:  # one UTF-32 code unit
        return None
    if head[:3] == b"\0\0\0":
        codec, name = "utf-32-be", "UTF-32 (big-endian)"
    elif head[1:] == b"\0\0\0":
        codec, name = "utf-32-le", "UTF-32 (little-endian)"
    elif head[0] == 0:
        codec, name = "utf-16-be", "UTF-16 (big-endian)"
    elif head[1] == 0:
        codec, name = "utf-16-le", "UTF-16 (little-endian)"
    else:
        return None
    try:
        sample = codecs.getincrementaldecoder(codec)().decode(raw[:1024])
    except UnicodeDecodeError:
        return None
    return name if all(c.isprintable() or c in "\t\r\n" for c in sample) else None


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of the byte at ``offset``."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", errors="replace"))
    return raw.count(b"\n", 0, offset) + 1, column + 1


def _unreadable(path: str, line: int, col: int, message: str) -> ManifestFile:
    return ManifestFile(path, "", unreadable=Finding(path, line, col, message))
