"""Quality benchmark: dense vs sparse->dense vs always-sparse vs weights-only vs activations-only on
tinyshakespeare at equal steps and seed; writes benchmarks/results/sparse24-quality.json and .png.

Each arm's run is cached in ``--cache`` as it finishes, so an interrupted run resumes. With
``--seeds 0,1,2`` every arm is trained once per seed; the JSON then also holds one record per arm with
the mean loss and every seed's gap to the dense run of the same seed.
Usage: .venv/bin/python benchmarks/sparse24/quality.py [--steps 300] [--dim 128] [--seeds 0,1,2] ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from frugalml.common.corpus import corpus_bytes
from frugalml.common.errors import FrugalError
from frugalml.common.files import atomic_write
from frugalml.common.report import print_table, write_json
from frugalml.sparse24.bench import QUALITY_ARMS, plot_quality, quality_records, run_arm, seed_summary_records
from frugalml.sparse24.model import LlamaConfig
from frugalml.sparse24.train import TrainConfig

RESULTS = Path(__file__).resolve().parents[1] / "results"


def seed_list(text: str) -> list[int]:
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
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
    parser.add_argument("--cache", default=str(RESULTS / "sparse24-quality-runs.json"))
    parser.add_argument("--out", default=str(RESULTS / "sparse24-quality"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_config = LlamaConfig(
        dim=args.dim, n_layers=args.layers, n_heads=4, hidden=args.hidden, max_seq_len=args.seq_len
    )
    try:
        corpus = corpus_bytes(args.data)
    except FrugalError as error:
        parser.error(str(error))
    cache = Path(args.cache)
    try:
        cached = json.loads(cache.read_text()) if cache.exists() else {}
    except json.JSONDecodeError as error:
        parser.error(f"the run cache {cache} is not valid JSON ({error}); move it or pass another --cache")
    seeds = args.seeds
    arms = args.arms.split(",")
    records, runs_by_seed = [], {}
    for seed in seeds:
        train_config = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            eval_every=args.eval_every,
            seed=seed,
        )
        key = json.dumps([model_config.to_dict(), repr(train_config), args.data])
        done = cached.setdefault(key, {})
        for arm in arms:
            if arm not in done:
                done[arm] = run_arm(arm, model_config, train_config, corpus)
                with atomic_write(cache, "w") as f:
                    json.dump(cached, f)
                loss = done[arm]["final_val_loss"]
                print(f"seed {seed} {arm}: final validation loss {loss:.4f}", flush=True)
        runs = runs_by_seed[seed] = {arm: done[arm] for arm in arms}
        label = f", seed {seed}" if len(seeds) > 1 else ""
        records += quality_records(runs, model_config, train_config, label)
    if len(seeds) > 1:
        records += seed_summary_records(runs_by_seed, model_config, train_config)
    print_table(records, title="sparse24 quality (ratio = dense loss / arm loss)")
    write_json(records, f"{args.out}.json")
    runs = runs_by_seed[seeds[0]]
    params = next(iter(runs.values()))["parameters"]
    plot_quality(
        runs,
        train_config,
        f"{args.out}.png",
        f"sparse24 on {args.data}: {params / 1e6:.2f}M params, {args.steps} steps, seed {seeds[0]}",
    )


if __name__ == "__main__":
    main()
