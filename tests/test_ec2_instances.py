"""The EC2 adapter's reads of launched instances, on moto through the real boto3 client."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
from botocore.stub import Stubber
from moto import mock_aws

from orchestration.adapters.ec2 import Ec2Adapter


def test_instances_are_read_in_bulk_and_an_unknown_id_is_left_out(aws_env: None) -> None:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        calls: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        ec2.meta.events.register("before-call.ec2", count)
        image = ec2.describe_images()["Images"][0]["ImageId"]
        launched = [
            instance["InstanceId"]
            for instance in ec2.run_instances(
                ImageId=image, MinCount=250, MaxCount=250, InstanceType="t3.large"
            )["Instances"]
        ]
        calls.clear()
        adapter = Ec2Adapter(ec2, boto3.client("iam", region_name="us-east-1"))

        seen = adapter.instances([*launched, "i-0123456789abcdef0"])

        assert set(seen) == set(launched)
        # 200 IDs per DescribeInstances filter, 100 per DescribeInstanceStatus
        assert calls == {"DescribeInstances": 2, "DescribeInstanceStatus": 3}
        first = seen[launched[0]]
        assert (first.state, first.instance_type, first.up) == ("running", "t3.large", True)
        assert first.private_ip
        assert adapter.instance("i-0123456789abcdef0") is None
        assert adapter.instance(launched[1]) == seen[launched[1]]


def test_instances_launched_one_by_one_are_all_read_in_one_call_per_200(aws_env: None) -> None:
    """MGN launches each server's instance alone: a job's 200 instances are 200
    reservations, and DescribeInstances pages by reservation (moto's page, asked for none,
    holds 100). Every one is read, in one call per 200 IDs: none is left for its verify step
    to ask EC2 about alone."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        calls: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        ec2.meta.events.register("before-call.ec2", count)
        image = ec2.describe_images()["Images"][0]["ImageId"]
        launched = [
            ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.large")[
                "Instances"
            ][0]["InstanceId"]
            for _ in range(250)
        ]
        calls.clear()
        adapter = Ec2Adapter(ec2, boto3.client("iam", region_name="us-east-1"))

        seen = adapter.instances(launched)

        assert set(seen) == set(launched)
        assert all(instance.up for instance in seen.values())
        assert calls == {"DescribeInstances": 2, "DescribeInstanceStatus": 3}


def test_a_reply_that_stops_early_is_read_to_its_last_page(aws_env: None) -> None:
    """EC2 may answer part of a filter with a NextToken whatever the page size asked: the
    instances of the next pages are read too (and each page asks for 1,000 reservations)."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    wanted = ["i-0000000000000000a", "i-0000000000000000b"]
    filters = [{"Name": "instance-id", "Values": wanted}]

    def page(instance_id: str) -> dict[str, Any]:
        return {
            "Reservations": [
                {
                    "Instances": [
                        {
                            "InstanceId": instance_id,
                            "State": {"Name": "running"},
                            "InstanceType": "t3.large",
                        }
                    ]
                }
            ]
        }

    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_instances",
            {**page(wanted[0]), "NextToken": "more"},
            {"Filters": filters, "MaxResults": 1000},
        )
        stub.add_response(
            "describe_instances",
            page(wanted[1]),
            {"Filters": filters, "MaxResults": 1000, "NextToken": "more"},
        )
        stub.add_response(
            "describe_instance_status",
            {"InstanceStatuses": []},
            {"InstanceIds": wanted, "IncludeAllInstances": True},
        )
        seen = Ec2Adapter(ec2, boto3.client("iam", region_name="us-east-1")).instances(wanted)
        stub.assert_no_pending_responses()

    assert sorted(seen) == wanted
    assert {instance.state for instance in seen.values()} == {"running"}
