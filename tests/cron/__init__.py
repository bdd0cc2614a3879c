"""Cron triggers (SPEC 6) and maintenance jobs (SPEC 8)."""
