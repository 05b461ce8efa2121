"""Synthetic estates: many wave files of many VMs, written like the examples.

Used by ``wavepilot demo --vms N`` and by ``make bench``.
"""

from __future__ import annotations

import random
from pathlib import Path

SUBSCRIPTIONS = [f"{i:08x}-1d2f-4a6b-8c9d-0e1f2a3b4c5d" for i in range(8)]
RESIZED = {"m6i.large": "m6i.2xlarge", "m6i.xlarge": "m6i.2xlarge", "r6i.2xlarge": "r6i.4xlarge"}
TIERS = [("web", "m6i.large", 443), ("app", "m6i.xlarge", 8080), ("db", "r6i.2xlarge", 5432)]


def wave_yaml(
    wave: int,
    vms_per_wave: int,
    *,
    resized: frozenset[int] = frozenset(),
    window: tuple[str, str] | None = None,
    callback_url: str | None = None,
) -> str:
    """One wave file; VMs whose index is in ``resized`` get a bigger instance type; every VM
    posts its status events to ``callback_url`` if given."""
    rng = random.Random(wave)  # noqa: S311 - reproducible synthetic data, not security
    lines = [
        "# yaml-language-server: $schema=../wave.schema.json",
        f"name: wave-{wave:03d}",
        f"description: Synthetic wave {wave}",
        "environment: prod",
        "target:",
        '  accountId: "444455556666"',
        "  region: eu-west-1",
        "cutoverWindow:",
        f"  start: {window[0] if window else f'2027-{1 + wave % 12:02d}-09T21:00:00+01:00'}",
        f"  end: {window[1] if window else f'2027-{1 + wave % 12:02d}-10T09:00:00+01:00'}",
        "slackChannel: C07WAVE0001",
        "approvers: [S07MIGLEADS, U07CAROL001]",
        "operators: [U07BOBOPS01]",
        "defaults:",
        *([f"  callbackUrls: [{callback_url}]"] if callback_url else []),
        "  subnetId: subnet-0e31f42a53b64c758",
        "  securityGroupIds: [sg-0e31f42a53b64c758]",
        "  testSubnetId: subnet-0e31f42a53b64c999",
        "  iamInstanceProfile: wavepilot-ssm-instance",
        "  tags:",
        '    CostCenter: "6300"',
        f"    MigrationWave: wave-{wave:03d}",
        "applications:",
    ]
    apps = max(1, vms_per_wave // 10)
    index = 0
    for app in range(apps):
        count = vms_per_wave // apps + (1 if app < vms_per_wave % apps else 0)
        os_family = "windows" if app % 3 == 0 else "linux"
        lines += [
            f"  - name: app-{wave:03d}-{app:02d}",
            "    defaults:",
            f"      osFamily: {os_family}",
            f"      tags: {{Application: app-{wave:03d}-{app:02d}}}",
            "    vms:",
        ]
        for _ in range(count):
            tier, instance_type, port = TIERS[index % 3]
            if index in resized:
                instance_type = RESIZED[instance_type]
            name = f"w{wave:03d}-{tier}-{index:03d}"
            subscription = SUBSCRIPTIONS[rng.randrange(len(SUBSCRIPTIONS))]
            lines += [
                "      - source:",
                f"          azureResourceId: /subscriptions/{subscription}/resourceGroups/"
                f"rg-wave-{wave:03d}/providers/Microsoft.Compute/virtualMachines/{name}",
                f"          userProvidedId: {name}",
                f"        targetVmName: {name}",
                f"        instanceType: {instance_type}",
                f"        tags: {{Tier: {tier}}}",
                "        healthChecks:",
                f"          - {{type: tcp, port: {port}}}",
            ]
            index += 1
    return "\n".join(lines) + "\n"


def write_estate(
    folder: Path, waves: int, vms_per_wave: int, resized: dict[int, frozenset[int]] | None = None
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for wave in range(waves):
        path = folder / f"wave-{wave:03d}.yaml"
        path.write_text(
            wave_yaml(wave, vms_per_wave, resized=(resized or {}).get(wave, frozenset()))
        )
        paths.append(path)
    return paths
