#!/usr/bin/env bash
# The measurements behind benchmarks/results/urerf/*.json (indexed in benchmarks/results/README.md),
# in priority order: quality vs peers (the paper's noise figure, Drosophila) and speed vs peers, each measured in
# one run, then the scale check, the engine against an earlier commit and the cost of the load checks; collect.py merges them into
# summary.json + summary.png. treeple's wheels import only against the scikit-learn they were built
# for: set FRUGAL_TREEPLE_PYTHON to a Python where it imports (e.g. a throwaway venv with
# scikit-learn 1.6.1 and treeple 0.10.3) and it runs there, otherwise it is reported unavailable.
# On two cores this takes one to two hours; widen --noise / --peers / --rounds on a bigger machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
FRUGAL="${FRUGAL:-.venv/bin/frugal}"
OUT=benchmarks/results/urerf
export FRUGAL_DATA="${FRUGAL_DATA:-$(pwd)/../shared/data}"
mkdir -p "$OUT"

"$FRUGAL" urerf reproduce --datasets linear,helix,sphere --noise 0,10,100 \
    --peers euclidean,isomap,rf,rte --trees 300 --seeds 3 -q --json "$OUT/noise-figure.json"
"$FRUGAL" urerf reproduce --datasets helix,linear,sphere --noise 10,100 \
    --peers euclidean,treeple,treeple-axis --trees 300 --seeds 3 -q --json "$OUT/noise-figure-treeple.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
"$FRUGAL" urerf bench --peers rf,rte,isomap,umap,treeple,treeple-axis --n 5000 --p 13 --trees 100 \
    --no-high-p --no-quality --rounds 2 -q --json "$OUT/speed.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
"$FRUGAL" urerf drosophila --peers euclidean,isomap,umap,rf --trees 300 --seeds 3 -q \
    --json "$OUT/drosophila.json"
"$FRUGAL" urerf drosophila --peers euclidean,isomap,umap,rf --trees 300 --seeds 3 --min-parent 30 -q \
    --json "$OUT/drosophila-min-parent-30.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
"$FRUGAL" urerf bench --peers rf,rte,treeple,treeple-axis --n 1000 --p 1003 --trees 100 --no-high-p \
    --no-quality --rounds 2 -q --json "$OUT/speed-high-p.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
"$FRUGAL" urerf bench --peers rte --n 1000 --p 13 --trees 10 --no-high-p --no-quality --rounds 1 \
    --scale 50000 -q --json "$OUT/scale.json"
.venv/bin/python benchmarks/urerf/engine.py eafba52 "$OUT/engine.json"
.venv/bin/python benchmarks/urerf/load_checks.py "$OUT/load-checks.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
