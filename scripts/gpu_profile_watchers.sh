#!/usr/bin/env bash
# Where coder-tui's CPU goes on the lent GPU host while the server has every core (issue 10).
# One device call, carry .gpu:  bash scripts/gpu_profile_watchers.sh [--tokens 4096] [--seconds 8]
# Builds a CPU-only llama-server (gpu_cpu_server.sh), then scripts/profile_watchers.py records
# coder-tui in a terminal, on the dashboard and chatting, with py-spy (from the carried wheel).
# Results in $OUT: log.txt, *.txt folded stacks.
source "$(dirname "$0")/gpu_cpu_server.sh"
timeout 400 python3 scripts/profile_watchers.py "$OUT" "$@"
