#!/usr/bin/env bash
# Set up (on a fresh clone too) and run every check: lint, format, types (pyright strict), tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[dev,docs]"
echo "== ruff check";        .venv/bin/ruff check .
echo "== ruff format";       .venv/bin/ruff format --check .
echo "== pyright (strict)";  .venv/bin/pyright
echo "== pytest";            .venv/bin/pytest "$@"
