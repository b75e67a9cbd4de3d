#!/usr/bin/env bash
# What watching costs, measured on the lent GPU host (issue 4 acceptance 5, issue 10 item 1).
# One device call, carry .gpu:  bash scripts/gpu_sampler_cost.sh
# 1. builds a CPU-only llama-server (gpu_cpu_server.sh);
# 2. benchmarks/sampler_cost.py: the CPU share of each sampler and of all of them at default
#    rates, idle and while the server generates;
# 3. (NOISE=N) benchmarks/decode_noise.py, below;
# 4. benchmarks/observer.py: decode tokens/s of the bench demo model with threads on every core,
#    interleaved: nothing watching, coder-tui's dashboard, coder-tui chatting, and nvitop (from
#    the carried wheel) in a pseudo-terminal.
# Results land in $OUT: log.txt, build.log, sampler_cost.json/.md, observer.md.
START=$(date +%s)
source "$(dirname "$0")/gpu_cpu_server.sh"
SAMPLER_S=${SAMPLER_S:-12}
if [ "$SAMPLER_S" != 0 ]; then  # SAMPLER_S=0: the observer only
  timeout 300 python3 benchmarks/sampler_cost.py --seconds "$SAMPLER_S" --no-append \
    --json "$OUT/sampler_cost.json" --md "$OUT/sampler_cost.md" || echo "sampler_cost exited with $?"
fi
# NOISE=N: first, benchmarks/decode_noise.py with N requests of NOISE_TOKENS (default 1024) to a
# free and a pinned server in turn: how much one request's speed varies with nothing watching.
if [ -n "${NOISE:-}" ]; then
  timeout 240 python3 benchmarks/decode_noise.py --requests "$NOISE" --tokens "${NOISE_TOKENS:-1024}" \
    || echo "decode_noise exited with $?"
fi
# THREADS: server thread counts to observe with, one run each (default: every core; 0: none).
# OBSERVER_ARGS: more options for observer.py (e.g. --also-busy-refresh 2).
for t in ${THREADS:-$(nproc)}; do
  [ "$t" = 0 ] && break
  left=$(( START + 585 - $(date +%s) ))
  echo "observer, $t threads, with $left s left"
  [ "$left" -gt 60 ] || break
  # --time-budget-s: no round is started that would end past the call's limit (ROUNDS can be
  # generous); the timeout stays as a guard.
  timeout "$left" python3 benchmarks/observer.py --rounds "${ROUNDS:-3}" --tokens "${TOKENS:-384}" \
    --threads "$t" --time-budget-s $(( left - 15 )) --append-to "$OUT/observer.md" ${OBSERVER_ARGS:-} \
    || echo "observer exited with $?"
done
echo "== done in $(( $(date +%s) - START )) s"
