"""Core ``Table`` objects of the models the pipeline touches.

The hot path uses Core statements rather than ORM units of work: one event is a handful of
statements, and ORM identity-map bookkeeping would cost more than the database round trips.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from shared.models import Automation, AutomationEvent, AutomationTrigger, Chat, ChatMessage

events = cast(Table, AutomationEvent.__table__)
automations = cast(Table, Automation.__table__)
triggers = cast(Table, AutomationTrigger.__table__)
chats = cast(Table, Chat.__table__)
chat_messages = cast(Table, ChatMessage.__table__)
