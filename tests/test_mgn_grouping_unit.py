"""MGN's waves and applications against the manifests: the pure plan (desired vs MGN -> calls).

``plan_placement`` is what prepare_source runs per VM; ``plan_cleanup`` what it archives after
a move; ``plan_removal`` what a VM removed from the manifests leaves (``publish
--cancel-removed``). No MGN here: the end-to-end tests (tests/test_mgn_grouping_e2e.py,
tests/test_cancel_removed_e2e.py) run the same plans against the emulator through boto3.
"""

from __future__ import annotations

from orchestration.adapters.mgn import Grouping, MgnApplication, MgnWave
from orchestration.pipeline.mgn_grouping import (
    ArchiveApplication,
    ArchiveWave,
    AssociateApplication,
    AssociateSourceServer,
    CreateApplication,
    CreateWave,
    DisassociateApplication,
    DisassociateSourceServer,
    Placement,
    UnarchiveApplication,
    UnarchiveWave,
    mgn_application_name,
    plan_cleanup,
    plan_placement,
    plan_removal,
)

SERVER = "s-0123456789abcdef0"
WAVE_1 = MgnWave("wave-00000000000000001", "wave-1", managed=True)
WAVE_2 = MgnWave("wave-00000000000000002", "wave-2", managed=True)
INTRANET_1 = MgnApplication(
    "app-00000000000000001", "wave-1/intranet", wave_id=WAVE_1.wave_id, managed=True
)
INTRANET_2 = MgnApplication(
    "app-00000000000000002", "wave-2/intranet", wave_id=WAVE_2.wave_id, managed=True
)
DESIRED_1 = Placement.of("wave-1", "intranet")
DESIRED_2 = Placement.of("wave-2", "intranet")


def test_an_application_is_named_for_its_wave_as_mgn_names_are_unique_per_account() -> None:
    assert mgn_application_name("wave-1", "intranet") == "wave-1/intranet"
    assert Placement.of("wave-2", "intranet") == Placement("wave-2", "wave-2/intranet")


def test_an_empty_mgn_gets_the_wave_the_application_and_both_associations() -> None:
    plan = plan_placement(DESIRED_1, Grouping(), SERVER, None)

    assert plan.calls == (
        CreateWave("wave-1"),
        CreateApplication("wave-1/intranet"),
        AssociateApplication("wave-1", "wave-1/intranet"),
        AssociateSourceServer("wave-1/intranet", SERVER),
    )
    assert plan.left_application is None
    assert plan.drift == ()


def test_when_mgn_already_agrees_there_is_nothing_to_do() -> None:
    grouping = Grouping((WAVE_1,), (INTRANET_1,))

    plan = plan_placement(DESIRED_1, grouping, SERVER, INTRANET_1.application_id)

    assert plan.calls == ()
    assert plan.drift == ()


def test_a_second_vm_of_an_application_only_joins_it() -> None:
    plan = plan_placement(DESIRED_1, Grouping((WAVE_1,), (INTRANET_1,)), SERVER, None)

    assert plan.calls == (AssociateSourceServer("wave-1/intranet", SERVER),)


def test_a_vm_moved_to_another_wave_leaves_its_old_application_and_says_so() -> None:
    grouping = Grouping((WAVE_1,), (INTRANET_1,))

    plan = plan_placement(DESIRED_2, grouping, SERVER, INTRANET_1.application_id)

    assert plan.calls == (
        CreateWave("wave-2"),
        CreateApplication("wave-2/intranet"),
        AssociateApplication("wave-2", "wave-2/intranet"),
        DisassociateSourceServer(INTRANET_1.application_id, SERVER),
        AssociateSourceServer("wave-2/intranet", SERVER),
    )
    assert plan.left_application == INTRANET_1
    assert plan.drift == (
        "MGN had the server in application wave-1/intranet (wave wave-1); moved to "
        "wave-2/intranet (wave wave-2) as the manifests say",
    )


def test_a_server_moved_in_the_console_to_a_teams_own_application_is_drift_put_back() -> None:
    theirs = MgnApplication("app-0000000000000000f", "Payroll", wave_id=None, managed=False)
    grouping = Grouping((WAVE_1,), (INTRANET_1, theirs))

    plan = plan_placement(DESIRED_1, grouping, SERVER, theirs.application_id)

    assert plan.calls == (
        DisassociateSourceServer(theirs.application_id, SERVER),
        AssociateSourceServer("wave-1/intranet", SERVER),
    )
    assert "application Payroll, an application Wavepilot does not manage" in plan.drift[0]
    # and what is not Wavepilot's is never archived, even empty
    assert plan_cleanup(theirs, [], grouping, DESIRED_1) == ()


def test_an_application_moved_to_another_wave_in_the_console_is_moved_back() -> None:
    moved = MgnApplication(
        INTRANET_1.application_id, "wave-1/intranet", wave_id=WAVE_2.wave_id, managed=True
    )
    grouping = Grouping((WAVE_1, WAVE_2), (moved,))

    plan = plan_placement(DESIRED_1, grouping, SERVER, moved.application_id)

    assert plan.calls == (
        DisassociateApplication(WAVE_2.wave_id, moved.application_id),
        AssociateApplication("wave-1", "wave-1/intranet"),
    )
    assert plan.drift == (
        "MGN had application wave-1/intranet in wave wave-2; moved to wave wave-1 as the "
        "manifests say",
    )


def test_archived_waves_and_applications_of_the_same_name_are_unarchived_not_recreated() -> None:
    grouping = Grouping(
        (MgnWave(WAVE_1.wave_id, "wave-1", is_archived=True, managed=True),),
        (
            MgnApplication(
                INTRANET_1.application_id,
                "wave-1/intranet",
                wave_id=WAVE_1.wave_id,
                is_archived=True,
                managed=True,
            ),
        ),
    )

    plan = plan_placement(DESIRED_1, grouping, SERVER, None)

    assert plan.calls == (
        UnarchiveWave(WAVE_1.wave_id),
        UnarchiveApplication(INTRANET_1.application_id),
        AssociateSourceServer("wave-1/intranet", SERVER),
    )


def test_an_emptied_application_is_archived_and_its_wave_if_nothing_else_is_in_it() -> None:
    grouping = Grouping((WAVE_1,), (INTRANET_1,))

    assert plan_cleanup(INTRANET_1, [], grouping, DESIRED_2) == (
        ArchiveApplication(INTRANET_1.application_id),
        ArchiveWave(WAVE_1.wave_id),
    )


def test_nothing_is_archived_while_servers_or_applications_remain() -> None:
    other = MgnApplication("app-00000000000000003", "wave-1/crm", wave_id=WAVE_1.wave_id)
    grouping = Grouping((WAVE_1,), (INTRANET_1, other))

    assert plan_cleanup(INTRANET_1, ["s-0000000000000000a"], grouping, DESIRED_2) == ()
    assert plan_cleanup(INTRANET_1, [], grouping, DESIRED_2) == (
        ArchiveApplication(INTRANET_1.application_id),
    )


def test_a_move_within_a_wave_keeps_the_wave() -> None:
    grouping = Grouping((WAVE_1,), (INTRANET_1,))

    assert plan_cleanup(INTRANET_1, [], grouping, Placement.of("wave-1", "crm")) == (
        ArchiveApplication(INTRANET_1.application_id),
    )


def test_a_teams_own_wave_is_never_archived() -> None:
    theirs = MgnWave("wave-0000000000000000f", "Q3 cutovers", managed=False)
    app = MgnApplication("app-00000000000000001", "wave-1/intranet", theirs.wave_id, managed=True)

    assert plan_cleanup(app, [], Grouping((theirs,), (app,)), DESIRED_2) == (
        ArchiveApplication(app.application_id),
    )


def test_a_removed_vms_server_leaves_its_application_only_if_it_is_still_there() -> None:
    grouping = Grouping((WAVE_1, WAVE_2), (INTRANET_1, INTRANET_2))

    assert plan_removal(DESIRED_1, grouping, SERVER, INTRANET_1.application_id) == (
        DisassociateSourceServer(INTRANET_1.application_id, SERVER)
    )
    # The VM moved to wave-2, whose migration placed the server already: it stays there
    assert plan_removal(DESIRED_1, grouping, SERVER, INTRANET_2.application_id) is None
    # Never placed (or taken out in the console), or no such application in MGN
    assert plan_removal(DESIRED_1, grouping, SERVER, None) is None
    assert plan_removal(DESIRED_1, Grouping(), SERVER, INTRANET_1.application_id) is None


def test_a_removal_archives_the_emptied_application_and_wave_with_no_new_place_to_keep() -> None:
    grouping = Grouping((WAVE_1,), (INTRANET_1,))

    assert plan_cleanup(INTRANET_1, [], grouping, None) == (
        ArchiveApplication(INTRANET_1.application_id),
        ArchiveWave(WAVE_1.wave_id),
    )
    assert plan_cleanup(INTRANET_1, [SERVER], grouping, None) == ()
