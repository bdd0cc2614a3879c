"""The stream process (``automations stream``): the gateway app serving live chat streams
(``GET /api/v1/chats/<id>/stream``) without a per-process limit, under gunicorn with many
threads (one per open stream; they wait on sockets, not on the CPU). The reverse proxy sends
only that route here (docs/operations.md "Live streams"), so hundreds of open streams never
take the threads that webhooks need in the gateway."""

from __future__ import annotations

from webhook_gateway.api.stream import configure_streams
from webhook_gateway.app import create_app

app = create_app()
configure_streams(app, max_streams=None)
