"""A real git repository in a temporary folder, built commit by commit."""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitRepo:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main")
        self.git("config", "user.name", "Ann Engineer")
        self.git("config", "user.email", "ann@contoso.com")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.root, check=True, capture_output=True, text=True
        ).stdout.strip()

    def write(self, path: str, text: str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def remove(self, path: str) -> None:
        self.git("rm", "--quiet", path)

    def commit(self, message: str, *, author: str | None = None) -> str:
        self.git("add", "-A")
        extra = ["--author", author] if author else []
        self.git("commit", "--quiet", "--allow-empty", "-m", message, *extra)
        return self.git("rev-parse", "HEAD")
