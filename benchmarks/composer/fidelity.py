"""Proxy fidelity and the quality comparison, on the byte-level LM proxy (stdlib corpus by default).

1. Fidelity: Spearman rank correlation (with a bootstrap CI over architectures) between the
   tabular MAD-proxy scores and the LM validation loss of the same architectures, picked evenly
   over the table's ranking among those whose size lies in ``--min-params..--max-params``.
2. Quality: the N0-aggregated architecture of the table's top cluster, stacked to ``--grow``
   layers at ``--quality-width``, against the parameter-matched Llama-style (AM) x k baseline at
   equal tokens and seeds; with tokens/s and KV-cache ratios.

Every LM run is stored in a SQLite result cache as soon as it finishes and the JSON results are
rewritten after each run, so a killed run resumes where it stopped (run the same command again).

``--picks`` fixes the architectures and ``--target-runs`` also correlates these LM runs with the
runs of a larger setting (a small LM as the proxy). ``benchmarks/composer/gpu.sh`` runs the
recorded GPU setting (``benchmarks/results/composer/fidelity-gpu*.json``).

    python benchmarks/composer/fidelity.py [--width 272] [--steps 800] [--archs 10] [--seeds 0]
        [--quality-width 256] [--grow 12] [--quality-seeds 0 1] [--device cpu] [--fidelity-only]
        [--picks A,B,..] [--target-runs RUNS.json] [--out NAME] [--table ALCSM_3] [--stack 2]

On this machine's CPU (the ALCSM_3 table against ~1M-parameter LMs, 2 seeds, resumable):

    python benchmarks/composer/fidelity.py --table ALCSM_3 --stack 2 --width 128 --archs 16 \
        --min-params 0 --max-params 1e9 --seeds 0 1 --steps 600 --fidelity-only --threads 1 \
        --out fidelity-cpu-alcsm-3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.composer.bench.fidelity import DEFAULT_CACHE, FidelitySettings, run_fidelity

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=272, help="Width of the fidelity runs.")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--min-params", type=float, default=1.99e6, help="Non-embedding parameters, low end.")
    parser.add_argument("--max-params", type=float, default=5e6, help="Non-embedding parameters, high end.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Seeds of the fidelity runs.")
    parser.add_argument("--quality-width", type=int, default=256)
    parser.add_argument("--grow", type=int, default=12, help="Layers the aggregated block is stacked to.")
    parser.add_argument("--quality-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--corpus", default="stdlib")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="torch device of the LM runs (cpu, cuda).")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="SQLite result cache.")
    parser.add_argument("--fidelity-only", action="store_true", help="Skip the quality comparison.")
    parser.add_argument("--picks", default=None, help="Comma-separated architectures instead of the spread.")
    parser.add_argument(
        "--target-runs",
        type=Path,
        default=None,
        help="A *-runs.json of larger LM runs of the same picks: also report the Spearman "
        "rho of these (small) LM runs against them (the LM itself as the proxy).",
    )
    parser.add_argument("--out", default="fidelity-2m", help="Result name under benchmarks/results/composer.")
    parser.add_argument("--table", default="AM_6", help="Tabular benchmark whose MAD scores are the proxy.")
    parser.add_argument("--stack", type=int, default=1, help="Train each pick stacked this many times.")
    args = parser.parse_args()
    run_fidelity(FidelitySettings(**vars(args)), RESULTS)


if __name__ == "__main__":
    main()
