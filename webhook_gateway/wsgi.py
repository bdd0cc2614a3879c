"""WSGI entry point: ``gunicorn webhook_gateway.wsgi:app``."""

from webhook_gateway.app import create_app

app = create_app()
