#!/usr/bin/env bash
# The README's test command: install coder-tui with the server and dev extras, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e '.[server,dev]'
make check
export CODER_TUI_REQUIRE_SERVER=1
set +e
python3 -m pytest -q -p no:cacheprovider "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$code"
