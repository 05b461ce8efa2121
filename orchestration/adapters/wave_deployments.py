"""What GitHub was last shown of each wave's deployment, one item per wave and commit.

``WAVEDEPLOYMENT#<wave>`` / ``<commit>`` in the state table: the deployment's ID (so the
wave's later events never create a second one), the status last posted and the digest of the
result comment last posted (so a redelivered event posts nothing again). The reporter of a
wave's progress is its only writer, one batch at a time (its FIFO queue has one group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestration.gitops.wave_progress import Shown

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def wave_deployment_key(wave: str, commit: str) -> dict[str, str]:
    return {"pk": f"WAVEDEPLOYMENT#{wave}", "sk": commit}


class WaveDeploymentStore:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, wave: str, commit: str) -> Shown | None:
        item = self._table.get_item(Key=wave_deployment_key(wave, commit), ConsistentRead=True).get(
            "Item"
        )
        return _shown(item) if item else None

    def save(self, wave: str, commit: str, shown: Shown) -> None:
        self._table.put_item(
            Item={
                **wave_deployment_key(wave, commit),
                "wave": wave,
                "commit": commit,
                "deploymentId": shown.deployment_id,
                "statusKey": shown.status_key,
                "commentDigest": shown.comment_digest,
            }
        )


def _shown(item: dict[str, Any]) -> Shown:
    return Shown(
        deployment_id=int(item["deploymentId"]),
        status_key=str(item.get("statusKey", "")),
        comment_digest=str(item.get("commentDigest", "")),
    )
