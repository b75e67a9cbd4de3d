#!/usr/bin/env bash
# Install Prometheus and promtool (Debian's `prometheus` package) for the exporter's tests: promtool
# check metrics, and a real Prometheus scraping `coder-tui export`. Kept as a short name for
# scripts/install_system_deps.sh's `prometheus` group, which scripts/test.sh installs with the rest:
# skips them when present, else installs them as root or through sudo.
set -euo pipefail
exec bash "$(dirname "$0")/install_system_deps.sh" prometheus
