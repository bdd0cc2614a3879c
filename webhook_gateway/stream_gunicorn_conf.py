"""gunicorn settings of the stream process (``automations stream``): the gateway's, except
that the bind address, workers and threads come from the command line, the metrics listener
(``AUTOMATIONS_METRICS_BIND``) stays the gateway's, and shutdown does not wait long for
streams, which never finish by themselves (clients reconnect)."""

from webhook_gateway.gunicorn_conf import (  # noqa: F401
    accesslog,
    child_exit,
    errorlog,
    keepalive,
    logconfig_dict,
    loglevel,
    on_exit,
    on_starting,
    timeout,
)

worker_class = "gthread"
graceful_timeout = 5
