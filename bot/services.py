"""What the Slack app decides with: the same services as the pipeline and the CLI (built by
``bot/wiring.py`` from the pipeline's composition root)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.directory import SlackDirectory
from orchestration.adapters.state_store import MigrationStore
from orchestration.pipeline.approvals import ApprovalService
from orchestration.pipeline.finalize_now import FinalizeNowService
from orchestration.pipeline.manual_rollback import RollbackService
from orchestration.pipeline.parking import ParkService
from orchestration.pipeline.wave_control import WaveControlService


@dataclass(frozen=True)
class BotServices:
    store: MigrationStore
    approvals: ApprovalService
    rollbacks: RollbackService
    directory: SlackDirectory
    wave_control: WaveControlService
    parks: ParkService
    finalizes: FinalizeNowService
