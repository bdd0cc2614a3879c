# Sourced by run.sh and test.sh: create .venv and install the project when needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null; then
  echo "error: $PY not found; install Python 3.11 or newer" >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Python 3.11 or newer is required ($("$PY" --version) found)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv…" >&2
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "python3-venv is missing; installing it with apt-get…" >&2
      apt-get update -qq && apt-get install -y -qq "python3-venv" "python$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv" >/dev/null 2>&1 \
        || apt-get install -y -qq python3-venv >/dev/null
      "$PY" -m venv .venv
    else
      echo "error: '$PY -m venv' failed; install the venv module (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
# Reinstall when pyproject.toml changed since the last install.
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "installing dependencies into .venv (first run takes a minute)…" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS:-dev}]"
  touch .venv/.installed
fi
