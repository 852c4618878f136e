"""Quality benchmark: dense vs sparse->dense vs always-sparse vs weights-only vs activations-only on
tinyshakespeare at equal steps and seed; writes benchmarks/results/sparse24/quality.json and .png.

Each arm's run is cached in ``--cache`` as it finishes, so an interrupted run resumes. With
``--seeds 0,1,2`` every arm is trained once per seed; the JSON then also holds one record per arm with
the mean loss and every seed's gap to the dense run of the same seed.
Usage: .venv/bin/python benchmarks/sparse24/quality.py [--steps 300] [--dim 128] [--seeds 0,1,2] ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.common.corpus import corpus_bytes
from frugalml.common.errors import FrugalError
from frugalml.common.parsing import comma_list
from frugalml.common.report import print_table, write_json
from frugalml.common.threads import torch_threads
from frugalml.sparse24.bench.quality import QUALITY_ARMS, RunCache, plot_quality, quality_over_seeds
from frugalml.sparse24.model import LlamaConfig
from frugalml.sparse24.train import TrainConfig

RESULTS = Path(__file__).resolve().parents[1] / "results" / "sparse24"


def seed_list(text: str) -> list[int]:
    try:
        return comma_list(text, int, name="seed", non_empty=True)
    except FrugalError:
        message = f"expected comma-separated integers such as 0,1,2, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="tinyshakespeare.txt")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--arms", default=",".join(QUALITY_ARMS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--seeds",
        default=[0],
        type=seed_list,
        help="Comma-separated seeds of initialisation, batches and masks; each arm runs once per seed.",
    )
    parser.add_argument("--cache", default=str(RESULTS / "quality-runs.json"))
    parser.add_argument("--out", default=str(RESULTS / "quality"))
    args = parser.parse_args()
    model_config = LlamaConfig(
        dim=args.dim, n_layers=args.layers, n_heads=4, hidden=args.hidden, max_seq_len=args.seq_len
    )
    train_config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, eval_every=args.eval_every
    )
    try:
        arms = comma_list(args.arms, name="arm", allowed=QUALITY_ARMS, non_empty=True)
        corpus = corpus_bytes(args.data)
        cache = RunCache(args.cache)
    except FrugalError as error:
        parser.error(str(error))
    with torch_threads(args.threads):
        records, runs_by_seed = quality_over_seeds(
            model_config, train_config, corpus, args.data, arms, args.seeds, cache
        )
    print_table(records, title="sparse24 quality (ratio = dense loss / arm loss)")
    write_json(records, f"{args.out}.json")
    runs = runs_by_seed[args.seeds[0]]
    params = next(iter(runs.values()))["parameters"]
    title = f"sparse24 on {args.data}: {params / 1e6:.2f}M params, {args.steps} steps, seed {args.seeds[0]}"
    plot_quality(runs, train_config, f"{args.out}.png", title)


if __name__ == "__main__":
    main()
