#!/usr/bin/env bash
# What asking streamed costs the server's decode speed on the lent GPU host's 16 cores
# (issue 21): one device call, carry .gpu:  bash scripts/gpu_stream_cost.sh
# Builds the CPU-only llama-server (gpu_cpu_server.sh; reused on a warm machine), then runs
# benchmarks/stream_cost.py with threads on every core, then (OBSERVER_S > 0) observer.py for
# the rest. Results in $OUT: stream_cost.md/.log, observer.md/.log.
START=$(date +%s)
source "$(dirname "$0")/gpu_cpu_server.sh"
cd benchmarks
budget=$(( ${STREAM_S:-300} ))
timeout $(( budget + 60 )) python3 stream_cost.py --rounds 200 --tokens "${TOKENS:-1024}" \
  --time-budget-s "$budget" >"$OUT/stream_cost.md" 2> >(tee "$OUT/stream_cost.log" >&2) \
  || echo "stream_cost exited with $?"
cat "$OUT/stream_cost.md"
left=$(( START + 585 - $(date +%s) ))
if [ "${OBSERVER_S:-0}" != 0 ] && [ "$left" -gt 90 ]; then
  timeout "$left" python3 observer.py --rounds 100 --tokens "${TOKENS:-1024}" \
    --time-budget-s $(( left - 20 )) ${OBSERVER_ARGS:-} >"$OUT/observer.md" \
    2> >(tee "$OUT/observer.log" >&2) || echo "observer exited with $?"
  cat "$OUT/observer.md"
fi
echo "== done in $(( $(date +%s) - START )) s"
