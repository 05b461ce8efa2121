"""Read manifests straight out of git revisions (real git, no checkout needed)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestration.manifests import decoding
from orchestration.manifests.validation import ManifestFile, is_wave_file

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_NULL_SHA = "0" * 40


class GitError(Exception):
    """A git command failed; the message says what to do, or is git's own explanation."""


class RevisionNotFoundError(GitError):
    """A revision named on the command line is not in the repository."""


@dataclass(frozen=True, slots=True)
class Revision:
    """A resolved revision: a commit, or the empty tree (nothing published yet)."""

    name: str
    sha: str

    @property
    def is_empty(self) -> bool:
        return self.sha == EMPTY_TREE

    @property
    def short(self) -> str:
        return "(empty)" if self.is_empty else self.sha[:7]


class GitRepository:
    """A git work tree or bare repository on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def discover(cls, start: Path | None = None) -> GitRepository:
        """The repository holding ``start`` (default: the working directory)."""
        folder = start or Path.cwd()
        if not folder.is_dir():
            raise GitError(f"no such folder: {folder}")
        try:
            top = _run(["git", "rev-parse", "--show-toplevel"], cwd=folder).strip()
        except GitError as exc:
            if "not a git repository" not in str(exc):
                raise
            raise GitError(
                f"{folder.resolve()} is not inside a git repository: run wavepilot in the "
                "repository that holds the wave manifests, or pass --repo PATH"
            ) from None
        return cls(Path(top))

    def _git(self, *args: str, stdin: str | None = None) -> str:
        return _run(["git", *args], cwd=self.root, stdin=stdin)

    def resolve(self, rev: str) -> Revision:
        """Resolve a ref, SHA or the empty tree.

        GitHub sends an all-zero SHA as ``before`` for a new branch; it and the empty
        tree's ID both mean "nothing was there before".
        """
        if rev in (EMPTY_TREE, _NULL_SHA, "empty"):
            return Revision(rev, EMPTY_TREE)
        try:
            sha = self._git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
        except GitError as exc:
            if re.fullmatch(r"[0-9a-f]{40}", rev):
                raise RevisionNotFoundError(
                    f"commit {rev} is not in this repository (a force push rewrote history, or "
                    "the clone is shallow): fetch it, or publish by hand from the last commit "
                    "you know was published: wavepilot publish --base <that commit> --head <sha>"
                ) from exc
            raise RevisionNotFoundError(
                f"unknown revision {rev!r}: no branch, tag or commit of that name in "
                f"{self.root} (fetch it first, e.g. git fetch origin {rev}, or use 'empty' "
                "for nothing published yet)"
            ) from exc
        return Revision(rev, sha.strip())

    def read_files(self, revision: Revision, directory: str) -> list[ManifestFile]:
        """Every wave file under ``directory`` at ``revision``, paths relative to the repo root."""
        if revision.is_empty:
            return []
        listing = self._git(
            "ls-tree", "-r", "-z", "-l", "--full-tree", revision.sha, "--", directory
        )
        entries: list[tuple[str, str]] = []
        # A blob over the size limit is reported, not read (-l lists each blob's size).
        refused: dict[str, ManifestFile] = {}
        for record in listing.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            _mode, kind, object_id, blob_size = meta.split()
            if kind == "blob" and is_wave_file(path):
                too_large = decoding.too_large(path, int(blob_size))
                if too_large is None:
                    entries.append((object_id, path))
                else:
                    refused[path] = too_large
        if not entries:
            return list(refused.values())
        output = _run_bytes(
            ["git", "cat-file", "--batch"],
            cwd=self.root,
            stdin="".join(f"{object_id}\n" for object_id, _ in entries).encode(),
        )
        files: list[ManifestFile] = []
        offset = 0
        for _, path in entries:
            header_end = output.index(b"\n", offset)
            size = int(output[offset:header_end].split()[2])
            body = output[header_end + 1 : header_end + 1 + size]
            offset = header_end + 1 + size + 1
            files.append(decoding.decode(path, body))
        return [*files, *refused.values()]

    def last_authors(
        self, revision: Revision, paths: Iterable[str], *, since: Revision
    ) -> dict[str, str]:
        """``Name <email>`` of the last commit that touched each path, in one ``git log``.

        Only commits after ``since`` are searched when it is a commit; a path no such
        commit touched is looked up in the whole history.
        """
        wanted = set(paths)
        if revision.is_empty or not wanted:
            return {}
        authors: dict[str, str] = {}
        spans = [revision.sha] if since.is_empty else [f"{since.sha}..{revision.sha}", revision.sha]
        for span in spans:
            missing = sorted(wanted - authors.keys())
            if not missing:
                break
            log = self._git(
                "log", "--format=%x00%an <%ae>", "--name-only", "--no-renames", span, "--", *missing
            )
            for block in log.split("\0")[1:]:
                author, _, names = block.partition("\n")
                for name in names.split("\n"):
                    if name in wanted:
                        authors.setdefault(name, author)
        return authors


def _run(args: list[str], *, cwd: Path, stdin: str | None = None) -> str:
    return _run_bytes(args, cwd=cwd, stdin=None if stdin is None else stdin.encode()).decode(
        "utf-8", errors="replace"
    )


def _run_bytes(args: list[str], *, cwd: Path, stdin: bytes | None = None) -> bytes:
    """Run git; every way it can fail becomes a :class:`GitError` with git's last word."""
    try:
        completed = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, check=True)
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.CalledProcessError as exc:
        output = (exc.stderr or exc.stdout or b"").decode("utf-8", errors="replace")
        detail = output.strip().splitlines()
        raise GitError(f"{' '.join(args[:3])} failed: {detail[-1] if detail else exc}") from None
    return completed.stdout
