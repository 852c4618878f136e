#!/usr/bin/env bash
# The measurements behind benchmarks/results/urerf*.json, in priority order: quality vs peers (the
# paper's noise figure, Drosophila) and speed vs peers, each measured in one run, then the scale
# check; collect.py merges them into urerf.json + urerf.png. On 2 cores shared with other jobs this
# takes about an hour; widen --noise / --peers / --rounds when the machine is yours.
set -euo pipefail
cd "$(dirname "$0")/../.."
FRUGAL="${FRUGAL:-.venv/bin/frugal}"
OUT=benchmarks/results
export FRUGAL_DATA="${FRUGAL_DATA:-$(pwd)/../shared/data}"

"$FRUGAL" urerf reproduce --datasets linear,helix,sphere --noise 0,10,100 \
    --peers euclidean,isomap,rf,rte,treeple --trees 300 --seeds 3 -q --json "$OUT/urerf_reproduce.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
"$FRUGAL" urerf bench --peers rf,rte,isomap,umap,pynndescent,treeple --n 5000 --p 13 --trees 100 \
    --no-high-p --no-quality --rounds 2 -q --json "$OUT/urerf_speed.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
"$FRUGAL" urerf drosophila --peers euclidean,isomap,umap,rf --trees 300 --seeds 3 --min-parent 30 -q \
    --json "$OUT/urerf_drosophila.json"
"$FRUGAL" urerf drosophila --peers euclidean --trees 300 --seeds 3 -q --json "$OUT/urerf_drosophila_default.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
"$FRUGAL" urerf bench --peers rf,rte,treeple --n 1000 --p 1003 --trees 100 --no-high-p --no-quality \
    --rounds 2 -q --json "$OUT/urerf_speed_highp.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
"$FRUGAL" urerf bench --peers treeple --n 1000 --p 13 --trees 10 --no-high-p --no-quality --rounds 1 \
    --scale 50000 -q --json "$OUT/urerf_scale.json"
.venv/bin/python benchmarks/urerf/collect.py "$OUT"
