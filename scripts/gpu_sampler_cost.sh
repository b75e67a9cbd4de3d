#!/usr/bin/env bash
# What watching costs, measured on the lent GPU host (issue 4 acceptance 5, issue 10 item 1).
# One device call, carry .gpu:  bash scripts/gpu_sampler_cost.sh
# 1. builds a CPU-only llama-server (gpu_cpu_server.sh);
# 2. benchmarks/sampler_cost.py: the CPU share of each sampler and of all of them at default
#    rates, idle and while the server generates (SAMPLER_S=0 skips it);
# 3. benchmarks/observer.py: decode tokens/s of the bench demo model with threads on every core,
#    interleaved: nothing watching, coder-tui's dashboard, coder-tui chatting, and nvitop (from
#    the carried wheel) in a pseudo-terminal.
# Results land in $OUT: log.txt, build.log, sampler_cost.json/.md, observer-<threads>t.md (the
# table) and observer-<threads>t.log (the round lines: pool several calls' with
# `python3 benchmarks/observer.py --pool observer-*.log`).
START=$(date +%s)
source "$(dirname "$0")/gpu_cpu_server.sh"
SAMPLER_S=${SAMPLER_S:-12}
if [ "$SAMPLER_S" != 0 ]; then
  timeout 300 python3 benchmarks/sampler_cost.py --seconds "$SAMPLER_S" \
    --json "$OUT/sampler_cost.json" --md "$OUT/sampler_cost.md" || echo "sampler_cost exited with $?"
fi
# THREADS: server thread counts to observe with, one run each (default: every core; 0: none).
# OBSERVER_ARGS: more options for observer.py (e.g. --also-streamed).
for t in ${THREADS:-$(nproc)}; do
  [ "$t" = 0 ] && break
  left=$(( START + 585 - $(date +%s) ))
  echo "observer, $t threads, with $left s left"
  [ "$left" -gt 60 ] || break
  # --time-budget-s: no round is started that would end past the call's limit (ROUNDS can be
  # generous); the timeout stays as a guard.
  timeout "$left" python3 benchmarks/observer.py --rounds "${ROUNDS:-3}" --tokens "${TOKENS:-384}" \
    --threads "$t" --time-budget-s $(( left - 15 )) ${OBSERVER_ARGS:-} \
    >"$OUT/observer-${t}t.md" 2> >(tee "$OUT/observer-${t}t.log" >&2) \
    || echo "observer exited with $?"
  cat "$OUT/observer-${t}t.md"
done
echo "== done in $(( $(date +%s) - START )) s"
