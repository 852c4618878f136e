#!/usr/bin/env bash
# Run every sparse24 GPU check in one command (at most 5.5 minutes on an H100/H200) and write
# $OUT/gpu.json (default OUT: benchmarks/results/sparse24). Without a CUDA GPU it records 'skipped'
# and exits 0. Needs a CUDA build of torch: PYTHON=/path/to/python benchmarks/sparse24/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-benchmarks/results/sparse24}"
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
mkdir -p "$OUT"
PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" timeout 330 "$PYTHON" benchmarks/sparse24/gpu.py \
    --json "$OUT/gpu.json" "$@"
echo "wrote $OUT/gpu.json"
