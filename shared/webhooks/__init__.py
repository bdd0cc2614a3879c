"""Webhook helpers; signature handling lives in :mod:`shared.webhooks.signatures`."""
