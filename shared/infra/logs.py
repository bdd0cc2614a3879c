"""JSON-structured logging for every process: one JSON object per line on stderr.

Every long-running process formats its records with :class:`JsonFormatter`:

* the gateway through gunicorn's ``logconfig_dict`` setting (:func:`gunicorn_logconfig`, used
  by ``webhook_gateway/gunicorn_conf.py``): gunicorn's error and access logs and the app's
  own loggers;
* the worker and beat through Celery's logging signals (``worker/celery_app.py``): Celery's
  own loggers, the task loggers and the worker's redirected stdout/stderr;
* anything else that calls :func:`configure_logging` (``worker/app.py`` before Celery takes
  over, the gateway app outside gunicorn).

Never log secrets or whole payloads.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_logging", "gunicorn_logconfig"]

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields, "exc"}`` on one line.

    Never raises: a message whose arguments do not fit its format, or an extra field that
    cannot be serialized, still gives one line of valid JSON.
    """

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format in someone's log call: keep what there is
            message = f"{record.msg!s} {record.args!r}"
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": message,
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):  # e.g. an int beyond 64 bits
            return json.dumps(entry, default=str, skipkeys=True)


def configure_logging(level: str = "INFO") -> None:
    """Send every record (and Python warnings) to stderr as JSON lines, at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)


def gunicorn_logconfig(level: str, *, access_log: bool = False) -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error log, its access log and the app's loggers all
    as JSON lines on stderr.

    gunicorn's access log stays off unless ``access_log`` (the app writes one structured
    ``automations.access`` line per request itself, without query strings); when on, its
    lines are JSON too.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {
            # handlers [] replaces gunicorn's plain-text handlers; records reach root's
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {
                "level": "INFO" if access_log else "WARNING",
                "handlers": [],
                "propagate": True,
            },
        },
    }
