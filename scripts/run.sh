#!/usr/bin/env bash
# Run the whole service (gateway + worker + beat) on the embedded default: SQLite and a
# file-backed broker under ./var. Set AUTOMATIONS_* variables to use PostgreSQL and Redis.
EXTRAS=dev source "$(dirname "$0")/_venv.sh"
exec .venv/bin/automations up "$@"
