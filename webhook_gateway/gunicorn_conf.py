"""gunicorn settings, derived from the one settings object."""

import glob
import logging
import os
import shutil
import tempfile
from typing import Any

from shared.infra.config import load_settings
from shared.infra.crypto import warn_unencrypted_secrets
from shared.infra.logs import gunicorn_logconfig

_settings = load_settings()

bind = _settings.bind
workers = _settings.effective_gateway_workers
threads = _settings.gateway_threads
worker_class = "gthread"
# SIGTERM: stop accepting, finish in-flight requests for up to this long, then exit.
graceful_timeout = 30
timeout = 60
keepalive = 5
accesslog = None  # the app writes structured access logs itself
errorlog = "-"
loglevel = _settings.log_level.lower()
# Every line as JSON on stderr: gunicorn's error log, its access log (if turned on above) and
# the app's loggers (the app keeps this configuration: its root logger has a handler).
logconfig_dict = gunicorn_logconfig(_settings.log_level, access_log=accesslog is not None)
logging.captureWarnings(True)

# Prometheus metrics across worker processes: every worker writes its values to files in
# PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them. Set before any worker imports
# prometheus_client; a directory created here is private to this master and removed on exit.
_own_metrics_dir: str | None = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_metrics_dir = tempfile.mkdtemp(prefix="automations-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir

# Imported now, not inside child_exit: the arbiter calls child_exit while reaping workers,
# which can interrupt the master in the middle of another import of prometheus_client and
# then fails with a circular-import error.
from prometheus_client import CollectorRegistry, multiprocess, start_http_server  # noqa: E402


def on_starting(server: Any) -> None:
    # once per gateway (the workers are forked later and inherit that it was said), in JSON:
    # gunicorn has applied logconfig_dict by now
    if not _settings.keys:
        warn_unencrypted_secrets()
    # values left over from an earlier run would be added to this run's counters
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def when_ready(server: Any) -> None:
    """With ``AUTOMATIONS_METRICS_BIND``, serve the workers' aggregated metrics there, from the
    master (prometheus_client's own server, in a daemon thread); /metrics on the gateway's port
    then answers 404 (webhook_gateway.metrics)."""
    if not _settings.metrics_bind:
        return
    host, _, port = _settings.metrics_bind.rpartition(":")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    server.log.info("metrics on http://%s/metrics", _settings.metrics_bind)


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
