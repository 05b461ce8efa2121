"""LaneFacts: a wave's VMs share one look at the lane's network; problems are always fresh."""

from __future__ import annotations

from datetime import timedelta

from orchestration.pipeline.lane_facts import FACTS_MAX_AGE, LaneFacts
from tests.support.fakes import FixedClock


def test_a_good_answer_is_kept_a_minute_and_a_bad_one_never() -> None:
    clock = FixedClock()
    facts = LaneFacts(clock)
    looks: list[str] = []

    def subnet_exists() -> bool:
        looks.append("subnet")
        return answer

    answer = True
    assert all(facts.get(("lane", "subnet-1"), subnet_exists, good=bool) for _ in range(100))
    assert looks == ["subnet"]  # a wave's hundred VMs, one look

    clock.advance(FACTS_MAX_AGE + timedelta(seconds=1))
    answer = False  # the subnet was deleted: a minute later, a fresh look says so
    assert not facts.get(("lane", "subnet-1"), subnet_exists, good=bool)
    assert not facts.get(("lane", "subnet-1"), subnet_exists, good=bool)
    assert looks == ["subnet"] * 3  # a bad answer is looked at again every time

    answer = True
    assert facts.get(("lane", "subnet-1"), subnet_exists, good=bool)
    assert facts.get(("other lane", "subnet-1"), subnet_exists, good=bool)  # its own key
    assert looks == ["subnet"] * 5
