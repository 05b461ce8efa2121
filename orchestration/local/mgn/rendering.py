"""Records to wire JSON, shaped exactly as botocore's MGN model describes them.

Every dict built here is checked against the model (`conformance`) before it is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestration.local.mgn.model import (
    JobLogEntry,
    JobRecord,
    LaunchConfigurationRecord,
    LaunchMilestones,
    SourceServerRecord,
)
from orchestration.local.mgn.post_launch import render_status
from orchestration.local.mgn.replication import (
    ReplicationView,
    disconnected_view,
    view_replication,
)
from orchestration.local.mgn.states import ReplicationError
from orchestration.local.mgn.wire_format import format_duration, format_timestamp

JsonObject = dict[str, Any]


def _without_none(values: JsonObject) -> JsonObject:
    """MGN omits absent members rather than sending null."""
    return {key: value for key, value in values.items() if value is not None}


def _timestamp(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment is not None else None


def replication_view_of(server: SourceServerRecord, now: datetime) -> ReplicationView:
    if server.replication_disconnected_at is not None:
        return disconnected_view(server.replication, server.stalls)
    return view_replication(server.replication, server.stalls, now)


def render_source_server(server: SourceServerRecord, now: datetime) -> JsonObject:
    view = replication_view_of(server, now)
    return _without_none(
        {
            "sourceServerID": server.source_server_id,
            "arn": server.arn,
            "isArchived": server.is_archived,
            "tags": dict(server.tags),
            "replicationType": "AGENT_BASED",
            "userProvidedID": server.user_provided_id,
            "applicationID": server.application_id,
            "sourceProperties": _source_properties(server),
            "dataReplicationInfo": _data_replication_info(server, view),
            "lifeCycle": _life_cycle(server, view, now),
            "launchedInstance": _launched_instance(server),
        }
    )


def _source_properties(server: SourceServerRecord) -> JsonObject:
    hints = _without_none({"hostname": server.hostname, "fqdn": server.fqdn})
    return _without_none(
        {
            "lastUpdatedDateTime": format_timestamp(server.added_at),
            "recommendedInstanceType": server.recommended_instance_type,
            # A server whose agent reported no hints has no identificationHints at all.
            "identificationHints": hints or None,
            "disks": [
                {"deviceName": name, "bytes": size}
                for name, size in zip(
                    server.disk_device_names, server.replication.disk_bytes, strict=True
                )
            ],
            "cpus": [{"cores": server.cpu_cores, "modelName": "Intel(R) Xeon(R) Platinum 8272CL"}],
            "ramBytes": server.ram_bytes,
            "os": {"fullString": server.os_full_string},
            "networkInterfaces": [
                {"macAddress": _mac_address(server, index), "ips": [ip], "isPrimary": index == 0}
                for index, ip in enumerate(server.private_ips)
            ]
            or None,
        }
    )


def _mac_address(server: SourceServerRecord, index: int) -> str:
    """A stable, locally administered MAC address per NIC (02:...)."""
    digits = f"{server.sequence:06x}{index:02x}"[-8:]
    return "02:00:" + ":".join(digits[i : i + 2] for i in range(0, 8, 2))


def _ebs_encryption(key_arn: str | None) -> JsonObject:
    return (
        {"ebsEncryption": "CUSTOM", "ebsEncryptionKeyArn": key_arn}
        if key_arn
        else {"ebsEncryption": "DEFAULT"}
    )


def render_replication_configuration(server: SourceServerRecord) -> JsonObject:
    """GetReplicationConfiguration's answer: the members the emulator models."""
    return {
        "sourceServerID": server.source_server_id,
        "name": server.launch_configuration.name,
        **_ebs_encryption(server.ebs_encryption_key_arn),
    }


def render_replication_template(template_id: str, arn: str, key_arn: str | None) -> JsonObject:
    """One item of DescribeReplicationConfigurationTemplates."""
    return {
        "replicationConfigurationTemplateID": template_id,
        "arn": arn,
        **_ebs_encryption(key_arn),
    }


def _data_replication_info(server: SourceServerRecord, view: ReplicationView) -> JsonObject:
    disks = [
        {
            "deviceName": name,
            "totalStorageBytes": total,
            "replicatedStorageBytes": replicated,
            "rescannedStorageBytes": 0,
            "backloggedStorageBytes": backlogged,
        }
        for name, total, replicated, backlogged in zip(
            server.disk_device_names,
            server.replication.disk_bytes,
            view.replicated_bytes,
            view.backlogged_bytes,
            strict=True,
        )
    ]
    error = (
        {"error": view.stall.error.value, "rawError": view.stall.raw_error}
        if view.stall is not None
        else None
    )
    return _without_none(
        {
            "dataReplicationState": view.state.value,
            "lagDuration": format_duration(view.lag) if view.lag is not None else None,
            "etaDateTime": _timestamp(view.eta),
            "lastSnapshotDateTime": _timestamp(view.last_snapshot_at),
            "replicatedDisks": disks,
            "dataReplicationInitiation": _without_none(
                {
                    # Absent while the server waits for a replication slot.
                    "startDateTime": _timestamp(server.replication.started_at),
                    "steps": [{"name": step.name, "status": step.status} for step in view.steps],
                }
            ),
            "dataReplicationError": error,
        }
    )


def _life_cycle(server: SourceServerRecord, view: ReplicationView, now: datetime) -> JsonObject:
    stall = view.stall
    agent_silent = stall is not None and stall.error is ReplicationError.AGENT_NOT_SEEN
    last_seen = stall.started_at if stall is not None and agent_silent else now
    if server.replication_disconnected_at is not None:
        last_seen = server.replication_disconnected_at
    replicating_until = server.replication_disconnected_at or now
    elapsed = (
        format_duration(replicating_until - view.first_byte_at)
        if view.first_byte_at is not None
        else None
    )
    return _without_none(
        {
            "state": server.lifecycle_state.value,
            "addedToServiceDateTime": format_timestamp(server.added_at),
            "firstByteDateTime": _timestamp(view.first_byte_at),
            "elapsedReplicationDuration": elapsed,
            "lastSeenByServiceDateTime": format_timestamp(last_seen),
            "lastTest": _milestones(server.last_test),
            "lastCutover": _milestones(server.last_cutover),
        }
    )


def _milestones(milestones: LaunchMilestones) -> JsonObject | None:
    if milestones.initiated_at is None:
        return None
    return _without_none(
        {
            "initiated": {
                "apiCallDateTime": format_timestamp(milestones.initiated_at),
                "jobID": milestones.job_id,
            },
            "reverted": _api_call(milestones.reverted_at),
            "finalized": _api_call(milestones.finalized_at),
        }
    )


def _api_call(moment: datetime | None) -> JsonObject | None:
    return {"apiCallDateTime": format_timestamp(moment)} if moment is not None else None


def _launched_instance(server: SourceServerRecord) -> JsonObject | None:
    instance = server.launched_instance
    if instance is None:
        return None
    return {
        "ec2InstanceID": instance.ec2_instance_id,
        "jobID": instance.job_id,
        "firstBoot": instance.first_boot.value,
    }


def render_job(job: JobRecord, now: datetime) -> JsonObject:
    """A Job at `now` (its participating servers' post-launch actions move on the clock)."""
    return _without_none(
        {
            "jobID": job.job_id,
            "arn": job.arn,
            "type": job.job_type.value,
            "initiatedBy": job.initiated_by.value,
            "creationDateTime": format_timestamp(job.created_at),
            "endDateTime": _timestamp(job.ended_at),
            "status": job.status.value,
            "participatingServers": [
                _without_none(
                    {
                        "sourceServerID": participant.source_server_id,
                        "launchStatus": participant.launch_status.value
                        if participant.launch_status is not None
                        else None,
                        "launchedEc2InstanceID": participant.launched_ec2_instance_id,
                        "postLaunchActionsStatus": render_status(participant.post_launch, now)
                        if participant.post_launch is not None
                        else None,
                    }
                )
                for participant in job.participants.values()
            ],
            "tags": dict(job.tags),
        }
    )


def render_job_log_entry(entry: JobLogEntry) -> JsonObject:
    event_data = _without_none(
        {
            "sourceServerID": entry.source_server_id,
            "targetInstanceID": entry.target_instance_id,
            "rawError": entry.raw_error,
        }
    )
    return _without_none(
        {
            "logDateTime": format_timestamp(entry.at),
            "event": entry.event.value,
            "eventData": event_data or None,
        }
    )


def render_launch_configuration(
    server_id: str, configuration: LaunchConfigurationRecord
) -> JsonObject:
    return _without_none(
        {
            "sourceServerID": server_id,
            "name": configuration.name,
            "ec2LaunchTemplateID": configuration.ec2_launch_template_id,
            "launchDisposition": configuration.launch_disposition,
            "targetInstanceTypeRightSizingMethod": configuration.right_sizing,
            "copyPrivateIp": configuration.copy_private_ip,
            "copyTags": configuration.copy_tags,
            "licensing": {"osByol": configuration.os_byol},
            "bootMode": configuration.boot_mode,
            "postLaunchActions": configuration.post_launch_actions,
            "enableMapAutoTagging": configuration.enable_map_auto_tagging,
            "mapAutoTaggingMpeID": configuration.map_auto_tagging_mpe_id,
            "mapAutoTaggingKey": configuration.map_auto_tagging_key,
        }
    )
