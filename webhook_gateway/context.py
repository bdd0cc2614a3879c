"""What the gateway's views need, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.clock import Clock
from shared.config import Settings


@dataclass
class Gateway:
    settings: Settings
    clock: Clock
    engine: Engine
    session_factory: sessionmaker[Session]
    celery: Celery


def gateway() -> Gateway:
    return current_app.extensions["automations"]  # type: ignore[no-any-return]
