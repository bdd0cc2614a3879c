"""Live chat events (SPEC 9 "Live stream"): what the runner tells open streams as it happens.

The runner publishes, the stream endpoint subscribes. Events are hints for live viewers, never
the record: the database is. A viewer subscribes first, then reads the snapshot, so nothing
that commits after the snapshot is missed; an event published before the snapshot only
repeats what the snapshot shows.

Event names (``event``) and their ``data``:

* ``status``  ``{"status": "running" | "waiting" | "pending" | "paused" | "error"}``
* ``delta``   ``{"text": "..."}``: streamed text of the reply being written (combined, not
  per token)
* ``message`` ``{"message": <the API's ChatMessage JSON>}``: a message was stored
* ``retry``   ``{"retry": {"attempt", "kind", "delay_ms", "retrying_at"}}``
* ``error``   ``{"last_error": {...}}``

The implementations (Redis pub/sub for fleets, and one that works without Redis in embedded
mode) live here too; :func:`live_events` picks one from the settings.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

__all__ = ["EVENTS", "LiveEvents", "NullLiveEvents", "channel"]

#: every event name a stream may carry (besides ``snapshot``, which the endpoint builds)
EVENTS = ("status", "delta", "message", "retry", "error")


def channel(chat_id: uuid.UUID) -> str:
    """The pub/sub channel of one chat."""
    return f"automations:chat:{chat_id}"


class LiveEvents(Protocol):
    def publish(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        """Tell the chat's open streams; never raises (a lost hint is harmless)."""


class NullLiveEvents:
    """Publishes nothing: for callers without live viewers (tests, tools)."""

    def publish(self, chat_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        return None
