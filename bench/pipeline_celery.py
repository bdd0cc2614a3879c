"""The benchmark's Celery app: the production app (same settings, same tasks) plus a no-op
task, so both are measured on the very same worker processes.

Run by ``bench/pipeline.py`` as ``celery -A pipeline_celery worker`` with ``bench/`` on the path.
"""

from __future__ import annotations

from shared.infra.config import load_settings
from worker.celery_app import create_celery

NOOP = "bench.noop"

app = create_celery(load_settings())


@app.task(name=NOOP)
def noop(_event_id: str) -> None:
    """Does nothing: the baseline cost of one task through broker, pool and acknowledgement."""
