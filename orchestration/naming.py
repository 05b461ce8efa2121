"""Resource names: the one place the embedded runtime and Terraform take them from.

Terraform builds the same names from ``var.project_name`` and ``var.environment``
(``terraform/locals.tf``); a test checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResourceNames:
    project: str = "wavepilot"
    environment: str = "local"

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.environment}"

    @property
    def request_queue(self) -> str:
        return f"{self.prefix}-requests"

    @property
    def request_dead_letter_queue(self) -> str:
        return f"{self.prefix}-requests-dlq"

    @property
    def event_bus(self) -> str:
        return f"{self.prefix}-bus"

    @property
    def state_table(self) -> str:
        return f"{self.prefix}-state"

    @property
    def state_machine(self) -> str:
        return f"{self.prefix}-migration"

    @property
    def lambda_role(self) -> str:
        return f"{self.prefix}-lambda"

    @property
    def target_role(self) -> str:
        """The role in every target account (and the hub, when it is a target) through which
        the pipeline's steps call MGN, EC2 and IAM there: ``terraform/modules/target-account``
        creates it, the hub's functions may assume only roles of this name."""
        return f"{self.prefix}-target"

    @property
    def grouping_reader_role(self) -> str:
        """The read-only role in a target account through which the pull request's plan reads
        MGN's waves, applications and source servers (``wavepilot plan --mgn-drift``):
        ``terraform/modules/target-account`` creates it when given the hub's manifest plan
        role, the only principal it trusts."""
        return f"{self.prefix}-grouping-reader"

    @property
    def state_machine_role(self) -> str:
        return f"{self.prefix}-states"

    @property
    def launch_coordinator(self) -> str:
        """The launch coordinator loop (batched launches): one execution per busy lane."""
        return f"{self.prefix}-launch-coordinator"

    @property
    def launch_coordinator_role(self) -> str:
        return f"{self.prefix}-launch-coordinator"

    @property
    def migration_requested_rule(self) -> str:
        return f"{self.prefix}-migration-requested"

    @property
    def status_callbacks_rule(self) -> str:
        return f"{self.prefix}-status-callbacks"

    @property
    def event_target_dead_letter_queue(self) -> str:
        """Events EventBridge could not deliver, and failed asynchronous Lambda calls."""
        return f"{self.prefix}-events-dlq"

    @property
    def callback_signing_secret(self) -> str:
        return f"{self.prefix}-callback-signing"

    @property
    def kms_alias(self) -> str:
        return f"alias/{self.prefix}"

    @property
    def slack_status_queue(self) -> str:
        """The routine status events on their way to the Slack bot: a standard queue read in
        batches filled within a batching window (the bot orders each migration's events by
        their ``sequence``)."""
        return f"{self.prefix}{SLACK_STATUS_QUEUE_SUFFIX}"

    @property
    def slack_status_dead_letter_queue(self) -> str:
        return f"{self.prefix}-slack-status-dlq"

    @property
    def status_to_slack_rule(self) -> str:
        return f"{self.prefix}-status-to-slack"

    @property
    def slack_priority_queue(self) -> str:
        """What a person must act on or know at once (``events.PRIORITY_EVENT_TYPES``), on
        its way to the Slack bot beside the status queue, never behind it (FIFO)."""
        return f"{self.prefix}{SLACK_PRIORITY_QUEUE_SUFFIX}"

    @property
    def slack_priority_dead_letter_queue(self) -> str:
        return f"{self.prefix}-slack-priority-dlq.fifo"

    @property
    def priority_to_slack_rule(self) -> str:
        return f"{self.prefix}-priority-to-slack"

    @property
    def slack_bot_token_secret(self) -> str:
        return f"{self.prefix}-slack-bot-token"

    @property
    def slack_signing_secret(self) -> str:
        return f"{self.prefix}-slack-signing-secret"

    @property
    def github_progress_queue(self) -> str:
        """Status events on their way to ``report_github_progress`` (FIFO, one group)."""
        return f"{self.prefix}-github-progress.fifo"

    @property
    def github_progress_dead_letter_queue(self) -> str:
        return f"{self.prefix}-github-progress-dlq.fifo"

    @property
    def status_to_github_rule(self) -> str:
        return f"{self.prefix}-status-to-github"

    @property
    def github_token_secret(self) -> str:
        """The token ``report_github_progress`` calls GitHub with (a plain string)."""
        return f"{self.prefix}-github-token"

    def function(self, handler: str) -> str:
        """``ingress_handler`` -> ``wavepilot-prod-ingress-handler``."""
        return f"{self.prefix}-{handler.replace('_', '-')}"


# Every Lambda function: the seed's eight names plus those this design adds
# (start_migration names executions; request_approval is the approval gate; request_launch
# and coordinate_launches are the batched launch design's: an execution's request to its
# lane's coordinator, and the coordinator loop's run; report_github_progress shows each wave's
# progress on GitHub).
FUNCTIONS: tuple[str, ...] = (
    "ingress_handler",
    "start_migration",
    "validate_input",
    "prepare_source",
    "trigger_migration",
    "verify_migration",
    "request_approval",
    "finalize_cutover",
    "callback_handler",
    "rollback_handler",
    "request_launch",
    "coordinate_launches",
    "report_github_progress",
)


# Functions run on a schedule (an EventBridge rule in Terraform; none locally, where tests and
# the operator invoke them): the monitor that puts the figures the alarms watch.
SCHEDULED_FUNCTIONS: tuple[str, ...] = ("monitor_migrations",)

# The Slack bot's functions: the Bolt app behind the Slack endpoint (slash commands, buttons,
# modals) and the notifier that keeps each migration's thread from the status queue.
BOT_FUNCTIONS: tuple[str, ...] = ("slack_app", "slack_notifier")

# The status queue is a standard queue: a FIFO target gets one fixed MessageGroupId from
# EventBridge (SqsParameters cannot take it from the event), so a FIFO status queue was one
# group, read one small batch at a time with no batching window (FIFO has none), and every
# message the bot had handled but SQS had not yet deleted held all migrations' events. The bot
# orders a migration's events by their ``sequence`` and drops what is older than its thread.
# Its event source mapping reads batches of ten, filled within a window of this many seconds
# (terraform var.slack_status_batching_window_seconds; the embedded mapping keeps the same).
# None by default: a wave's events come in bursts (a job's results, a coordinator's answers)
# that fill batches without one, and a window holds the notifier's owed-roots reminders on
# this queue for its length too (200 VMs rehearsed: 10 s, roots shown 2x later for 0.4 fewer
# calls per VM; 2 s, 1.3x later, no fewer calls: docs/BENCHMARKS.md).
SLACK_STATUS_BATCHING_WINDOW_SECONDS = 0
SLACK_STATUS_BATCH_SIZE = 10
# The priority queue's one group: approvals and failures in order among themselves, one batch
# at a time, whatever the status queue holds.
SLACK_PRIORITY_MESSAGE_GROUP = "priority-events"
# The GitHub progress queue's one group: one batch at a time, so two batches never race to
# create a wave's deployment.
GITHUB_PROGRESS_MESSAGE_GROUP = "github-progress"
# How the notifier tells a record from the priority queue (its event source ARN ends so).
SLACK_PRIORITY_QUEUE_SUFFIX = "-slack-priority.fifo"
SLACK_STATUS_QUEUE_SUFFIX = "-slack-status"


def handler_path(function: str) -> str:
    """The Lambda ``Handler`` setting: the same string locally and in Terraform."""
    if function in BOT_FUNCTIONS:
        return f"bot.handlers.{function}.handler"
    return f"orchestration.handlers.{function}.handler"
