#!/usr/bin/env bash
# Every check, as CI runs it: lint, types, import layers, then unit and cloud tests on the lab.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit). The lab keeps running
# afterwards for the next run, unless STACKFERRY_LAB_STOP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
# Debian's Chromium, headless, for the tests that look at a page in a real browser
# (tests/browser.py): installed when missing, without the desktop it recommends.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  echo "apt-get install chromium fonts-dejavu-core" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
fi
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
