"""gunicorn settings, derived from the one settings object."""

from shared.config import load_settings

_settings = load_settings()

bind = _settings.bind
workers = _settings.gateway_workers
threads = _settings.gateway_threads
worker_class = "gthread"
# SIGTERM: stop accepting, finish in-flight requests for up to this long, then exit.
graceful_timeout = 30
timeout = 60
keepalive = 5
accesslog = None  # the app writes structured access logs itself
errorlog = "-"
loglevel = _settings.log_level.lower()
