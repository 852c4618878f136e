#!/usr/bin/env bash
# Proxy fidelity and quality at 2-5M parameters on a CUDA GPU, plus the BO ablation on the CPU cores
# beside it, in one command (about 6 minutes on an H100/H200 with 16 cores). Results go to $OUT
# (default benchmarks/results/composer); the SQLite cache there makes a rerun resume.
#   OUT=/tmp/out STEPS=1000 BATCH=32 benchmarks/composer/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-benchmarks/results/composer}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
STEPS="${STEPS:-1000}"
BATCH="${BATCH:-32}"
SEEDS="${SEEDS:-0 1 2}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
mkdir -p "$OUT"
nvidia-smi -L || true
( timeout "${BO_TIMEOUT:-420}" "$PYTHON" benchmarks/composer/bo_ablation.py --seeds ${BO_SEEDS:-0 40} --workers "${BO_WORKERS:-10}" > "$OUT/bo.log" 2>&1
  cp benchmarks/results/composer/bo-ablation-am-6.json "$OUT/" 2>/dev/null ) &
bo=$!
fid=(benchmarks/composer/fidelity.py --device "${DEVICE:-cuda}" --threads 2 --steps "$STEPS" --batch "$BATCH"
     --cache "$OUT/fidelity-gpu.sqlite")
"$PYTHON" "${fid[@]}" --steps 5 --archs 4 --fidelity-only --cache /tmp/composer_smoke.sqlite \
    --out tmp-smoke || exit 1
rm -f benchmarks/results/composer/tmp-smoke*
pids=()
for s in $SEEDS; do
    timeout "${SEED_TIMEOUT:-330}" "$PYTHON" "${fid[@]}" --seeds "$s" --quality-seeds "$s" \
        --out "tmp-seed$s" > "/tmp/composer_seed$s.log" 2>&1 &
    pids+=($!)
done
done_seeds=()
i=0
for s in $SEEDS; do
    wait "${pids[$i]}" && done_seeds+=("$s")
    i=$((i + 1))
done
cat /tmp/composer_seed*.log > "$OUT/fidelity.log"
rm -f benchmarks/results/composer/tmp-seed*
if [ ${#done_seeds[@]} -gt 0 ]; then
    "$PYTHON" "${fid[@]}" --seeds "${done_seeds[@]}" --quality-seeds "${done_seeds[@]}" \
        --out fidelity-gpu 2>&1 | tee -a "$OUT/fidelity.log"
    [ "$OUT" = benchmarks/results/composer ] || cp benchmarks/results/composer/fidelity-gpu*.json "$OUT/"
fi
wait "$bo"
