# Conveniences; the scripts are the source of truth (they work without make).
.PHONY: run test lint ci
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
ci:
	bash .ci/run
