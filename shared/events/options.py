"""Knobs of the event pipeline, derived from :class:`shared.infra.config.Settings`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.infra.config import Settings
from shared.triggers.filters import FILTER_BUDGET_MS

#: The rate-limit window of SPEC 5 step 6 ("in the last hour").
RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class PipelineOptions:
    """What :func:`shared.pipeline.process_event` needs from the configuration.

    ``synchronous_commit`` False (the default) commits pipeline transactions on PostgreSQL with
    ``synchronous_commit = off`` (transaction-local): the commit returns before its WAL is
    flushed, which saves a disk flush per event. It is safe here because the outcome and the
    event's status change commit atomically: if the server crashes within the WAL writer's
    delay (~200 ms), the whole outcome is lost *together with* the status change, the event is
    ``pending`` again and the sweeper re-publishes it. Any later transaction that committed
    synchronously (the chat runner, the gateway) flushes the WAL up to and including ours, so
    nothing can durably depend on a lost outcome. The gateway's event insert is unaffected.

    ``prepared_statements`` runs the PostgreSQL statements as server-side prepared statements
    (:mod:`shared.infra.db.prepared`), which saves planning them for every event.
    """

    message_payload_max_bytes: int = 16_384
    rate_window: timedelta = RATE_WINDOW
    synchronous_commit: bool = False
    prepared_statements: bool = True
    #: CPU milliseconds the filter and labels of one event may take
    filter_budget_ms: float = FILTER_BUDGET_MS

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineOptions:
        return cls(
            message_payload_max_bytes=settings.message_payload_max_bytes,
            prepared_statements=settings.db_prepared_statements,
            filter_budget_ms=settings.filter_budget_ms,
        )
