"""Cron schedules; see :mod:`shared.cron.schedule`."""
