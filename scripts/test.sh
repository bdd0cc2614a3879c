#!/usr/bin/env bash
# Run the test suite. Uses PostgreSQL and Redis on 127.0.0.1 when they answer, otherwise
# starts throwaway ones from local binaries, otherwise skips those tests with a loud summary
# (under CI=true a missing service fails the run instead). Extra arguments go to pytest.
source "$(dirname "$0")/_venv.sh"
# --dist loadgroup keeps each xdist_group (e.g. the fault scenarios) on one worker, serially.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadgroup "$@"
