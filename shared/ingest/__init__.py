"""Webhook ingest domain logic: plain functions over a session and a clock.

The gateway's view only translates HTTP to these calls and back.
"""

from shared.ingest.events import (
    BAD_SIGNATURE_ERROR,
    DELIVERY_ID_HEADERS,
    RecordedEvent,
    count_events,
    delivery_id_from,
    record_bad_signature,
    record_event,
)
from shared.ingest.payload import PreparedPayload, prepare_payload
from shared.ingest.secrets import read_secret, valid_secrets
from shared.ingest.triggers import TriggerCache, TriggerSnapshot, load_trigger, parse_trigger_id

__all__ = [
    "BAD_SIGNATURE_ERROR",
    "DELIVERY_ID_HEADERS",
    "PreparedPayload",
    "RecordedEvent",
    "TriggerCache",
    "TriggerSnapshot",
    "count_events",
    "delivery_id_from",
    "load_trigger",
    "parse_trigger_id",
    "prepare_payload",
    "read_secret",
    "record_bad_signature",
    "record_event",
    "valid_secrets",
]
