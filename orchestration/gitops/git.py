"""Read manifests straight out of git revisions (real git, no checkout needed)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestration.manifests.validation import ManifestFile, is_wave_file

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_NULL_SHA = "0" * 40


class GitError(Exception):
    """A git command failed; the message is git's own explanation."""


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
        top = _run(["git", "rev-parse", "--show-toplevel"], cwd=start or Path.cwd()).strip()
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
                raise GitError(
                    f"commit {rev} is not in this repository (a force push rewrote history, or "
                    "the clone is shallow): fetch it, or publish by hand from the last commit "
                    "you know was published: wavepilot publish --base <that commit> --head <sha>"
                ) from exc
            raise
        return Revision(rev, sha.strip())

    def read_files(self, revision: Revision, directory: str) -> list[ManifestFile]:
        """Every wave file under ``directory`` at ``revision``, paths relative to the repo root."""
        if revision.is_empty:
            return []
        listing = self._git("ls-tree", "-r", "-z", "--full-tree", revision.sha, "--", directory)
        entries: list[tuple[str, str]] = []
        for record in listing.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            _mode, kind, object_id = meta.split()
            if kind == "blob" and is_wave_file(path):
                entries.append((object_id, path))
        if not entries:
            return []
        output = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.root,
            input="".join(f"{object_id}\n" for object_id, _ in entries).encode(),
            capture_output=True,
            check=True,
        ).stdout
        files: list[ManifestFile] = []
        offset = 0
        for _, path in entries:
            header_end = output.index(b"\n", offset)
            size = int(output[offset:header_end].split()[2])
            body = output[header_end + 1 : header_end + 1 + size]
            offset = header_end + 1 + size + 1
            files.append(ManifestFile(path=path, text=body.decode("utf-8", errors="replace")))
        return files

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
    try:
        completed = subprocess.run(
            args, cwd=cwd, input=stdin, capture_output=True, text=True, check=True
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise GitError(f"{' '.join(args[:3])} failed: {detail[-1] if detail else exc}") from None
    return completed.stdout
