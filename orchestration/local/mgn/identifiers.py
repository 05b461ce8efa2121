"""IDs and ARNs in MGN's formats (`s-` + 17 hex, `mgnjob-` + 17 hex, `wave-` / `app-` + 17
alphanumerics)."""

from __future__ import annotations

import random


class IdFactory:
    """Issues source server and job IDs; a seed makes a run's IDs reproducible.

    Not for secrets: these are identifiers, so `random` is the right tool.
    """

    def __init__(self, seed: int | None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - identifiers, not secrets
        # Waves and applications draw from their own sequence, so a seeded run's server and
        # job IDs do not depend on how many of them the pipeline created.
        self._grouping_random = random.Random(None if seed is None else f"grouping-{seed}")  # noqa: S311

    def _hex(self, length: int, source: random.Random | None = None) -> str:
        return "".join((source or self._random).choice("0123456789abcdef") for _ in range(length))

    def source_server_id(self) -> str:
        return f"s-{self._hex(17)}"

    def job_id(self) -> str:
        return f"mgnjob-{self._hex(17)}"

    def wave_id(self) -> str:
        return f"wave-{self._hex(17, self._grouping_random)}"

    def application_id(self) -> str:
        return f"app-{self._hex(17, self._grouping_random)}"


class ArnFactory:
    """ARNs of one account and Region."""

    def __init__(self, account_id: str, region: str) -> None:
        self._prefix = f"arn:aws:mgn:{region}:{account_id}"

    def source_server(self, source_server_id: str) -> str:
        return f"{self._prefix}:source-server/{source_server_id}"

    def job(self, job_id: str) -> str:
        return f"{self._prefix}:job/{job_id}"

    def wave(self, wave_id: str) -> str:
        return f"{self._prefix}:wave/{wave_id}"

    def application(self, application_id: str) -> str:
        return f"{self._prefix}:application/{application_id}"
