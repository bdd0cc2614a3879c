"""Celery entry point: ``celery -A worker.app worker`` (and ``beat``, ``inspect``)."""

from shared.infra.config import load_settings
from shared.infra.logs import configure_logging
from worker.celery_app import create_celery

settings = load_settings()
# JSON from the start: records and warnings (e.g. Celery's warning about running as root)
# that come before Celery sets up its logging; create_celery's signals keep it JSON after.
configure_logging(settings.log_level)
app = create_celery(settings)
