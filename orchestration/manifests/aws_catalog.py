"""What AWS offers, read offline from the installed botocore's data files."""

from __future__ import annotations

from functools import cache

import botocore.loaders
import botocore.session


@cache
def ec2_instance_types() -> frozenset[str]:
    """Every instance type botocore's EC2 model lists (the ``InstanceType`` enum)."""
    model = botocore.loaders.Loader().load_service_model("ec2", "service-2")
    return frozenset(model["shapes"]["InstanceType"]["enum"])


@cache
def mgn_regions() -> frozenset[str]:
    """Regions of the ``aws`` partitions where botocore's endpoint data lists MGN."""
    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("mgn", partition_name=partition))
    return frozenset(regions)
