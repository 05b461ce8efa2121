"""Small, valid wave manifests written as YAML text, the way people write them."""

from __future__ import annotations

from dataclasses import dataclass, field

SUBSCRIPTION = "6f1c2a90-3b7e-4d5a-9c11-2f8e7a4b9d10"


def azure_id(vm: str, resource_group: str = "rg-test") -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Compute/virtualMachines/{vm}"
    )


@dataclass
class VmText:
    name: str
    instance_type: str = "t3.large"
    extra: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            "      - source:",
            f"          azureResourceId: {azure_id(self.name)}",
            f"          userProvidedId: {self.name}",
            f"        targetVmName: {self.name}",
            f"        instanceType: {self.instance_type}",
            *(f"        {line}" for line in self.extra),
        ]
        return "\n".join(lines) + "\n"


def wave_text(
    name: str,
    vms: list[VmText],
    *,
    app: str = "billing",
    account: str = "123456789012",
    window: tuple[str, str] = ("2027-01-09T21:00:00+01:00", "2027-01-10T09:00:00+01:00"),
) -> str:
    head = f"""\
name: {name}
environment: prod
target:
  accountId: "{account}"
  region: us-east-1
cutoverWindow:
  start: {window[0]}
  end: {window[1]}
slackChannel: C0123456789
approvers: [U0123456789]
operators: [U0123456780]
defaults:
  osFamily: linux
  subnetId: subnet-0a1b2c3d
  securityGroupIds: [sg-0a1b2c3d]
applications:
  - name: {app}
    vms:
"""
    return head + "".join(vm.render() for vm in vms)


def with_dependent_application(
    text: str, *, keep: int, name: str, depends_on: str, os_family: str = "linux"
) -> str:
    """A one-application wave file (``orchestration.local.synthetic.wave_yaml``) split in two:
    its first ``keep`` VMs stay, the others move to application ``name``, which goes after
    ``depends_on`` (``dependsOn``)."""
    marker = "      - source:\n"
    head, *vms = text.split(marker)
    return (
        head
        + "".join(marker + vm for vm in vms[:keep])
        + f"  - name: {name}\n    dependsOn: [{depends_on}]\n"
        + f"    defaults:\n      osFamily: {os_family}\n    vms:\n"
        + "".join(marker + vm for vm in vms[keep:])
    )
