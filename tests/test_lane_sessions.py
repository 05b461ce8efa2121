"""``LaneSessions``: one role session per target account, cached, renewed before it expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestration.adapters.errors import TransientError
from orchestration.adapters.lanes import Lane, LaneRoleUnavailableError, LaneSessions
from tests.support.fakes import FixedClock

HUB = "123456789012"


class FakeSts:
    def __init__(self) -> None:
        self.assumed: list[str] = []
        self.refuse: dict[str, str] = {}  # account -> error code

    def assume_role(self, *, RoleArn: str, RoleSessionName: str, DurationSeconds: int) -> Any:  # noqa: N803 - boto3's names
        account = RoleArn.split(":")[4]
        if account in self.refuse:
            code = self.refuse[account]
            raise ClientError({"Error": {"Code": code, "Message": "not authorized"}}, "AssumeRole")
        self.assumed.append(RoleArn)
        n = len(self.assumed)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{n:016d}",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": datetime(2030, 1, 1, tzinfo=UTC),
            }
        }


def _sessions(sts: FakeSts, clock: FixedClock, built: list[tuple[str, str, str]]) -> LaneSessions:
    def factory(service: str, region: str, **credentials: str) -> Any:
        built.append((service, region, credentials["access_key_id"]))
        return object()

    return LaneSessions(
        sts=lambda: sts,
        client_factory=factory,
        role_name="wavepilot-prod-target",
        hub_account_id=lambda: HUB,
        default_region="us-east-1",
        clock=clock,
    )


def test_one_session_per_account_shared_by_its_regions_and_renewed_before_expiry() -> None:
    sts, clock = FakeSts(), FixedClock(datetime(2026, 3, 1, tzinfo=UTC))
    built: list[tuple[str, str, str]] = []
    lanes = _sessions(sts, clock, built)

    # GIVEN two Regions of one account and another account
    first = lanes.clients(Lane("444455556666", "us-east-1"))
    assert lanes.clients(Lane("444455556666", "us-east-1")) is first  # cached
    lanes.clients(Lane("444455556666", "eu-west-1"))
    lanes.clients(Lane("111122223333", "us-east-1"))

    # THEN one AssumeRole per account, clients per Region, with that account's session
    assert sts.assumed == [
        "arn:aws:iam::444455556666:role/wavepilot-prod-target",
        "arn:aws:iam::111122223333:role/wavepilot-prod-target",
    ]
    assert {(s, r) for s, r, _ in built} == {
        ("mgn", "us-east-1"),
        ("ec2", "us-east-1"),
        ("iam", "us-east-1"),
        ("mgn", "eu-west-1"),
        ("ec2", "eu-west-1"),
        ("iam", "eu-west-1"),
    }

    # WHEN the session is within ten minutes of its hour, on the injected clock
    clock.advance(timedelta(minutes=49))
    assert lanes.clients(Lane("444455556666", "us-east-1")) is first
    clock.advance(timedelta(minutes=2))
    renewed = lanes.clients(Lane("444455556666", "us-east-1"))

    # THEN it is renewed and the lane's clients rebuilt with the new credentials
    assert renewed is not first
    assert len(sts.assumed) == 3
    assert built[-1][2] == "ASIA0000000000000003"


def test_the_hub_is_a_lane_like_any_other_through_the_role() -> None:
    sts = FakeSts()
    built: list[tuple[str, str, str]] = []
    lanes = _sessions(sts, FixedClock(datetime(2026, 3, 1, tzinfo=UTC)), built)
    assert lanes.lane() == Lane(HUB, "us-east-1")
    lanes.clients(lanes.lane())
    assert sts.assumed == [f"arn:aws:iam::{HUB}:role/wavepilot-prod-target"]


def test_a_refused_role_names_account_region_role_and_the_module() -> None:
    sts = FakeSts()
    sts.refuse["999988887777"] = "AccessDenied"
    lanes = _sessions(sts, FixedClock(datetime(2026, 3, 1, tzinfo=UTC)), [])
    with pytest.raises(LaneRoleUnavailableError) as raised:
        lanes.clients(Lane("999988887777", "eu-west-1"))
    assert str(raised.value).startswith(
        "target account 999988887777 (Region eu-west-1): cannot assume role "
        "arn:aws:iam::999988887777:role/wavepilot-prod-target (AccessDenied: not authorized). "
        "Apply terraform/modules/target-account in account 999988887777"
    )


def test_throttled_sts_is_transient() -> None:
    sts = FakeSts()
    sts.refuse["999988887777"] = "Throttling"
    lanes = _sessions(sts, FixedClock(datetime(2026, 3, 1, tzinfo=UTC)), [])
    with pytest.raises(TransientError):
        lanes.clients(Lane("999988887777", "eu-west-1"))
