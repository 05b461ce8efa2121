"""MGN's "BASIC" instance right-sizing: the smallest instance that fits the source's CPU and RAM.

With right-sizing BASIC (MGN's default), MGN launches this type and ignores the instance type
in the EC2 launch template; a pipeline that sets the type in the template must set
`targetInstanceTypeRightSizingMethod=NONE`. The emulator reproduces that on purpose.
"""

from __future__ import annotations

_GIB = 1024**3

# (vCPUs, memory GiB, type), smallest first: general purpose, as MGN tends to recommend.
_CANDIDATES: tuple[tuple[int, int, str], ...] = (
    (2, 4, "t3.medium"),
    (2, 8, "m5.large"),
    (4, 16, "m5.xlarge"),
    (8, 32, "m5.2xlarge"),
    (16, 64, "m5.4xlarge"),
    (32, 128, "m5.8xlarge"),
    (48, 192, "m5.12xlarge"),
    (64, 256, "m5.16xlarge"),
    (96, 384, "m5.24xlarge"),
)


def recommended_instance_type(cpu_cores: int, ram_bytes: int) -> str:
    for vcpus, memory_gib, instance_type in _CANDIDATES:
        if cpu_cores <= vcpus and ram_bytes <= memory_gib * _GIB:
            return instance_type
    return _CANDIDATES[-1][2]
