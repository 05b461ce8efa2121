"""``make bench``'s rehearsal leg names each VM that did not migrate, with why."""

from __future__ import annotations

from benchmarks.rehearsal import not_migrated


def test_each_vm_that_did_not_migrate_is_named_with_its_first_failed_step() -> None:
    report = {
        "vms": [
            {"migrationId": "mig-ok", "outcome": "migrated", "recordStatus": "COMPLETED"},
            {
                "migrationId": "mig-back",
                "outcome": "rolled-back",
                "recordStatus": "ROLLED_BACK",
                "failure": {"step": "VerifyCutover", "at": {}, "message": "launch timed out"},
            },
            {"migrationId": "mig-quiet", "outcome": "failed", "recordStatus": "FAILED"},
        ]
    }

    lines = not_migrated({"batched": (report, 1.0)})

    assert lines == [
        "batched: mig-back rolled-back (record ROLLED_BACK): VerifyCutover failed: "
        "launch timed out",
        "batched: mig-quiet failed (record FAILED): no failed step in its history",
    ]
