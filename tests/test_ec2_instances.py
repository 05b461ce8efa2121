"""The EC2 adapter's reads of launched instances, on moto through the real boto3 client."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
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
