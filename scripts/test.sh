#!/usr/bin/env bash
# Every check, as CI runs it: lint, types, import layers, then unit and cloud tests on the lab.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit). The lab keeps running
# afterwards for the next run, unless STACKFERRY_LAB_STOP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
if [ "${STACKFERRY_LAB_STOP:-0}" = 1 ]; then
  trap '.venv/bin/python -m devcloud down' EXIT
fi
.venv/bin/python -m devcloud up --ceph
set +e
.venv/bin/pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
