"""The bot's wiring forgets everything it built when told to (a new embedded system, a test).

Every builder is cached per container; one left out of ``reset()`` keeps a client of the
previous embedded system (its moto port is gone): the owed-roots reminder did, and its sends
failed in the next rehearsal of the same test process.
"""

from __future__ import annotations

import inspect

from bot import wiring


def test_reset_forgets_every_cached_builder() -> None:
    cached = sorted(
        name
        for name, value in vars(wiring).items()
        if callable(value) and hasattr(value, "cache_clear") and value.__module__ == wiring.__name__
    )
    cleared = inspect.getsource(wiring.reset)

    assert cached, "the wiring caches its builders"
    assert [name for name in cached if f"{name}," not in cleared] == []
