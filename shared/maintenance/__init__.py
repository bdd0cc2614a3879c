"""Periodic maintenance jobs run by beat (SPEC 8): the event retention purge."""

from shared.maintenance.purge import PurgeResult, purge_expired_events

__all__ = ["PurgeResult", "purge_expired_events"]
