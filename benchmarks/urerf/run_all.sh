#!/usr/bin/env bash
# The measurements behind benchmarks/results/urerf*.json: quality vs peers (the paper's noise figure
# and Drosophila) and speed vs peers, each measured in one run. Takes ~30-60 min on 2 shared cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
FRUGAL="${FRUGAL:-.venv/bin/frugal}"
OUT=benchmarks/results
export FRUGAL_DATA="${FRUGAL_DATA:-$(pwd)/../shared/data}"

"$FRUGAL" urerf reproduce --datasets linear,helix,sphere --noise 0,10,100 \
    --peers euclidean,isomap,umap,rf,rte,pynndescent,treeple --trees 300 --seeds 3 -q \
    --json "$OUT/urerf_reproduce.json"
"$FRUGAL" urerf drosophila --peers euclidean,isomap,umap,rf,treeple --trees 300 --seeds 3 -q \
    --json "$OUT/urerf_drosophila.json"
"$FRUGAL" urerf bench --peers isomap,umap,rf,rte,pynndescent,treeple --n 5000 --p 13 --trees 100 \
    --no-high-p --no-quality --rounds 3 -q --json "$OUT/urerf_speed.json"
"$FRUGAL" urerf bench --peers umap,rf,rte,treeple --n 1000 --p 1003 --trees 100 \
    --no-high-p --no-quality --scale 50000 --rounds 3 -q --json "$OUT/urerf_speed_highp.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
