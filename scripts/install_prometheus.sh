#!/usr/bin/env bash
# Install Prometheus and promtool from Debian's `prometheus` package, for the exporter's tests
# (promtool check metrics, and a real Prometheus scraping `coder-tui export`). Idempotent: does
# nothing when both are already on PATH. Needs root (CI runs as root) or passwordless sudo.
# The package's systemd service is never used: the tests run the binary on loopback themselves.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus already installed: $(prometheus --version 2>&1 | head -n 1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# --no-install-recommends: the recommended node exporter and web UI assets are not needed.
$SUDO apt-get install -y --no-install-recommends prometheus

command -v prometheus >/dev/null && command -v promtool >/dev/null
echo "installed: $(prometheus --version 2>&1 | head -n 1)"
