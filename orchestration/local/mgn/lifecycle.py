"""The lifecycle transition table the emulator enforces (ConflictException otherwise).

    action                         allowed from                          to
    agent installed (seeding)      -                                     NOT_READY
    first CONTINUOUS replication   NOT_READY                             READY_FOR_TEST
    StartTest                      READY_FOR_TEST, TESTING               TESTING
    StartCutover                   READY_FOR_CUTOVER                     CUTTING_OVER
    test launch FAILED             TESTING                               READY_FOR_TEST
    cutover launch FAILED          CUTTING_OVER                          READY_FOR_CUTOVER
    ChangeServerLifeCycleState
      -> READY_FOR_TEST            TESTING, READY_FOR_CUTOVER            READY_FOR_TEST
      -> READY_FOR_CUTOVER         TESTING, CUTTING_OVER                 READY_FOR_CUTOVER
      -> CUTOVER                   CUTTING_OVER (cutover instance up)    CUTOVER
    FinalizeCutover                CUTTING_OVER, CUTOVER (instance up)   CUTOVER, replication off
    TerminateTargetInstances       any but TESTING, CUTTING_OVER, CUTOVER  (unchanged)
    DisconnectFromService          any (CUTOVER stays CUTOVER)           DISCONNECTED
    MarkAsArchived                 DISCONNECTED, CUTOVER                 (unchanged), isArchived,
                                                                         replication off

Everything also requires that no job is active on the server and, for launches, that
replication is CONTINUOUS. Setting the state a server is already in is a no-op, so retries
are safe. Why each choice was made is in docs/MGN_EMULATOR.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestration.local.mgn.states import LaunchType, LifeCycleState

_S = LifeCycleState

LAUNCH_ALLOWED_FROM: Mapping[LaunchType, frozenset[LifeCycleState]] = {
    # A repeated test launch replaces the previous test instance (MGN's CLEANUP events).
    LaunchType.TEST: frozenset({_S.READY_FOR_TEST, _S.TESTING}),
    # Cutover only after the server was marked ready for it: no cutover without a test.
    LaunchType.CUTOVER: frozenset({_S.READY_FOR_CUTOVER}),
}

STATE_DURING_LAUNCH: Mapping[LaunchType, LifeCycleState] = {
    LaunchType.TEST: _S.TESTING,
    LaunchType.CUTOVER: _S.CUTTING_OVER,
}

STATE_AFTER_FAILED_LAUNCH: Mapping[LaunchType, LifeCycleState] = {
    LaunchType.TEST: _S.READY_FOR_TEST,
    LaunchType.CUTOVER: _S.READY_FOR_CUTOVER,
}

USER_SETTABLE_FROM: Mapping[LifeCycleState, frozenset[LifeCycleState]] = {
    _S.READY_FOR_TEST: frozenset({_S.TESTING, _S.READY_FOR_CUTOVER}),
    _S.READY_FOR_CUTOVER: frozenset({_S.TESTING, _S.CUTTING_OVER}),
    _S.CUTOVER: frozenset({_S.CUTTING_OVER}),
}

TERMINATE_REFUSED_IN = frozenset({_S.TESTING, _S.CUTTING_OVER, _S.CUTOVER})

ARCHIVABLE_IN = frozenset({_S.DISCONNECTED, _S.CUTOVER})
