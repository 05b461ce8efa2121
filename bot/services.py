"""What the Slack app decides with: the same services as the pipeline and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from bot.directory import SlackDirectory
from orchestration.adapters.state_store import MigrationStore
from orchestration.handlers import wiring
from orchestration.pipeline.approvals import ApprovalService
from orchestration.pipeline.manual_rollback import RollbackService
from orchestration.settings import settings


@dataclass(frozen=True)
class BotServices:
    store: MigrationStore
    approvals: ApprovalService
    rollbacks: RollbackService
    directory: SlackDirectory

    @classmethod
    def from_environment(cls, directory: SlackDirectory) -> BotServices:
        config = settings()
        store = wiring.store()
        return cls(
            store=store,
            approvals=wiring.approvals(),
            rollbacks=RollbackService(
                store,
                wiring.stepfunctions(),
                config.state_machine_arn,
                wiring.clock,
                config.default_approvers,
            ),
            directory=directory,
        )
