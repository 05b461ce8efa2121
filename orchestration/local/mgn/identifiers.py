"""IDs and ARNs in MGN's formats (`s-` + 17 hex, `mgnjob-` + 17 hex)."""

from __future__ import annotations

import random


class IdFactory:
    """Issues source server and job IDs; a seed makes a run's IDs reproducible.

    Not for secrets: these are identifiers, so `random` is the right tool.
    """

    def __init__(self, seed: int | None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - identifiers, not secrets

    def _hex(self, length: int) -> str:
        return "".join(self._random.choice("0123456789abcdef") for _ in range(length))

    def source_server_id(self) -> str:
        return f"s-{self._hex(17)}"

    def job_id(self) -> str:
        return f"mgnjob-{self._hex(17)}"


class ArnFactory:
    """ARNs of one account and Region."""

    def __init__(self, account_id: str, region: str) -> None:
        self._prefix = f"arn:aws:mgn:{region}:{account_id}"

    def source_server(self, source_server_id: str) -> str:
        return f"{self._prefix}:source-server/{source_server_id}"

    def job(self, job_id: str) -> str:
        return f"{self._prefix}:job/{job_id}"
