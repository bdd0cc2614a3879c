"""The event pipeline (SPEC 5): plain domain functions over a session, a clock and options.

Celery tasks in :mod:`worker.tasks.events` are thin wrappers around these.
"""

from shared.pipeline.dry_run import DryRunResult, dry_run
from shared.pipeline.locks import automation_lock_key, lock_automation
from shared.pipeline.options import PipelineOptions
from shared.pipeline.process import (
    DROPPED_DISABLED,
    DROPPED_TRIGGER_DELETED,
    Outcome,
    describe_error,
    mark_failed,
    note_transient_error,
    process_event,
)
from shared.pipeline.sweeper import SweepResult, sweep_pending

__all__ = [
    "DROPPED_DISABLED",
    "DROPPED_TRIGGER_DELETED",
    "DryRunResult",
    "Outcome",
    "PipelineOptions",
    "SweepResult",
    "automation_lock_key",
    "describe_error",
    "dry_run",
    "lock_automation",
    "mark_failed",
    "note_transient_error",
    "process_event",
    "sweep_pending",
]
