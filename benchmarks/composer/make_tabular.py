"""Compute a tabular benchmark: the MAD-proxy score of every architecture of a small space.

Writes ``src/frugalml/composer/tabular_<name>.json`` with its settings. Evaluations run one at a
time in this process (torch with one thread), seed after seed, and each is stored in the SQLite
result cache as it finishes, so a killed run resumes where it stopped (cached results cost
nothing). ``--cpu-minutes`` time-boxes the run: when this process has used that much CPU it starts
no new evaluation, and the table averages the seeds completed for all architectures (the JSON
records the seeds planned and the seeds used). With several seeds the JSON also holds every seed's
scores and the seed-to-seed rank agreement.

    python benchmarks/composer/make_tabular.py --seeds 0,1,2,3,4 --cpu-minutes 40 --name AM_6_5seeds

The space of architectures that differ (the 125 three-layer strings over attention, linear
attention, short convolution, sliding-window attention and the SwiGLU MLP) over five seeds, with
the cheapest proxy setting that ``proxy_study.py`` found reliable (the defaults: recall and
selective copy, 100 steps, width 32; about 3.3 CPU-seconds per architecture and seed, so about
35 CPU-minutes in all). Run it again after a kill to resume; the JSON records
``agreement.pairwise_rho``, the better half's rho and how often the top-1 stays top-1:

    python benchmarks/composer/make_tabular.py --primitives ALCSM --layers 3 --seeds 0,1,2,3,4 \
        --name ALCSM_3

The same space on the 4-task proxy that the proxy study then chose among the better half (about
5.7 CPU-seconds per architecture and seed; 35 CPU-minutes for three seeds):

    python benchmarks/composer/make_tabular.py --primitives ALCSM --layers 3 \
        --tasks recall,selective_copy,fuzzy_recall,memorization --seeds 0,1,2 --name ALCSM_3_4tasks

The same space on the proxy study's byte-level LM proxy exactly as the study measured it
(``lm_steps=100``: 100 steps, width 32, sequence length 64, lr 3e-3, batch 64; about 3.8 CPU-s per
architecture and seed). Built after the CPU fidelity run had scored the MAD tables, so its
fidelity is not a blind test:

    python benchmarks/composer/make_tabular.py --primitives ALCSM --layers 3 --proxy lm \
        --steps 100 --width 32 --seq-len 64 --seeds 0,1,2 --name ALCSM_3_lm
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.composer.bench.build_table import PACKAGE, TableSettings, build_table


def main() -> None:
    defaults = TableSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primitives", default="AM")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--tasks", default="recall,selective_copy")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument(
        "--proxy", dest="proxy_kind", choices=("mad", "lm"), default="mad", help="MAD tasks or byte-level LM."
    )
    parser.add_argument("--lr", type=float, default=None, help="Learning rate (default 5e-3 MAD, 3e-3 LM).")
    parser.add_argument("--seq-len", type=int, default=None, help="Sequence length of every task.")
    parser.add_argument("--vocab", type=int, default=None, help="Vocabulary size of every task.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--cpu-minutes", type=float, default=None, help="Stop after this much CPU time.")
    parser.add_argument("--name", default=None, help="Table name (default <primitives>_<layers>).")
    parser.add_argument("--note", default="", help="A remark stored in the JSON (e.g. why a run stopped).")
    parser.add_argument("--cache", default=defaults.cache)
    parser.add_argument("--out", type=Path, default=PACKAGE, help="Folder of the table (default: built in).")
    args = parser.parse_args()
    out = args.out
    del args.out
    if args.lr is None:
        args.lr = 3e-3 if args.proxy_kind == "lm" else 5e-3
    build_table(TableSettings(**vars(args)), out)


if __name__ == "__main__":
    main()
