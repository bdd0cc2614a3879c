"""Celery entry point: ``celery -A worker.app worker``."""

from shared.infra.config import load_settings
from worker.celery_app import create_celery

app = create_celery(load_settings())
