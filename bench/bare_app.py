"""Baseline for bench/ingest.py: the least a webhook endpoint can do on the same stack.

Flask under the same gunicorn settings, the same SQLAlchemy engine settings as the gateway's
ingest path (no pre-ping, autocommit); per request it only verifies the GitHub HMAC of
the raw body and inserts one row (the body as JSON) into ``automation_events``. No trigger
lookup, dedup, payload handling, broker, metrics or logs.

Environment: BENCH_DATABASE_URL, BENCH_SECRET (64 hex), BENCH_AUTOMATION_ID, BENCH_TRIGGER_ID.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, request
from sqlalchemy import text

from shared.infra.db.engine import make_engine

app = Flask("bare")
_engine = make_engine(
    os.environ["BENCH_DATABASE_URL"], pool_pre_ping=False, isolation_level="AUTOCOMMIT"
)
_secret = os.environ["BENCH_SECRET"].encode()
_automation_id = os.environ["BENCH_AUTOMATION_ID"]
_trigger_id = os.environ["BENCH_TRIGGER_ID"]
_INSERT = text(
    "INSERT INTO automation_events (id, automation_id, trigger_id, received_at, delivery_id,"
    " payload, status, occurrences, publish_attempts)"
    " VALUES (:id, :aid, :tid, :now, :did, CAST(:body AS jsonb), 'pending', 1, 0)"
)


@app.get("/healthz")
def healthz() -> Response:
    return Response('{"status":"ok"}', 200, mimetype="application/json")


@app.post("/hook")
def hook() -> Response:
    body = request.get_data()
    expected = "sha256=" + hmac.new(_secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
        return Response('{"error":"invalid_signature"}', 401, mimetype="application/json")
    event_id = str(uuid.uuid4())
    with _engine.connect() as conn:
        conn.execute(
            _INSERT,
            {
                "id": event_id,
                "aid": _automation_id,
                "tid": _trigger_id,
                "now": datetime.now(UTC),
                "did": request.headers.get("X-GitHub-Delivery"),
                "body": body.decode(),
            },
        )
    return Response(f'{{"event_id":"{event_id}"}}', 202, mimetype="application/json")
