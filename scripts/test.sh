#!/usr/bin/env bash
# Run the test suite. Each pytest worker starts its own throwaway PostgreSQL and Redis on free
# ports from local binaries (tests/harness/services.py); the machine's servers are used only
# when named by AUTOMATIONS_TEST_DATABASE_URL / AUTOMATIONS_TEST_REDIS_URL. An unavailable
# service skips its tests with a loud summary (under CI=true it fails them instead). Extra
# arguments go to pytest.
source "$(dirname "$0")/_venv.sh"
# --dist loadgroup keeps each xdist_group (e.g. the fault scenarios) on one worker, serially.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadgroup "$@"
