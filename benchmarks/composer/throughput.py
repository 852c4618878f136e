"""CPU training throughput and decoding latency of the searched architecture vs the AM x k baseline.

The pair comes from ``composer_fidelity_gpu_runs.json`` (the quality comparison: the N0-aggregated,
stacked architecture and its parameter-matched Llama-style baseline) unless given. Timed with
:func:`frugalml.common.timing.compare` (ABBA rounds, 1 torch thread, thread-CPU clock, so other
processes on the shared machine do not count). Writes ``benchmarks/results/composer_throughput.json``.

    python benchmarks/composer/throughput.py [--ours MAAAAMMAAAAM --peer AMAMAMAMAM] [--width 256]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from frugalml.common.report import Record, print_table, write_json
from frugalml.common.timing import compare
from frugalml.composer import HybridConfig, HybridLM, kv_cache_bytes

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main() -> None:
    runs = json.loads((RESULTS / "composer_fidelity_gpu_runs.json").read_text())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", default=runs["grown"])
    parser.add_argument("--peer", default=runs["baseline"])
    parser.add_argument("--width", type=int, default=runs["settings"]["quality_width"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--new", type=int, default=32, help="Tokens generated after a seq-len prompt.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models, optimizers = {}, {}
    for arch in (args.ours, args.peer):
        torch.manual_seed(0)
        models[arch] = HybridLM(
            HybridConfig.make(
                arch, width=args.width, heads=4, kv_heads=2, mlp_ratio=4.0, window=args.seq_len // 4
            )
        )
        optimizers[arch] = torch.optim.AdamW(models[arch].parameters(), lr=1e-3)
    x = torch.randint(0, 256, (args.batch, args.seq_len + 1), generator=torch.Generator().manual_seed(0))
    prompt = x[:1, : args.seq_len]

    def train_step(arch: str) -> None:
        loss = models[arch].loss(x[:, :-1], x[:, 1:])
        optimizers[arch].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[arch].step()

    def generate(arch: str) -> None:
        with torch.no_grad():
            models[arch].generate(prompt, args.new)

    setting = (
        f"width {args.width}, heads 4, kv_heads 2, 1 torch thread, thread-CPU clock, "
        f"{args.rounds} ABBA rounds"
    )
    train = compare(
        lambda: train_step(args.ours),
        lambda: train_step(args.peer),
        rounds=args.rounds,
        clock=time.thread_time,
    )
    tokens = args.batch * args.seq_len
    decode = compare(
        lambda: generate(args.ours), lambda: generate(args.peer), rounds=args.rounds, clock=time.thread_time
    )
    cfg = {a: m.cfg for a, m in models.items()}
    records = [
        Record(
            "composer",
            f"CPU training throughput {args.ours} vs {args.peer} (batch {args.batch} x "
            f"{args.seq_len}, AdamW step)",
            "tokens/s",
            "tokens/s",
            tokens / train.ours.median,
            "Llama-style AM x k",
            tokens / train.peer.median,
            higher_is_better=True,
            spread={"ours_s": [train.ours.min, train.ours.max], "peer_s": [train.peer.min, train.peer.max]},
            notes=setting,
        ),
        Record.from_comparison(
            decode,
            system="composer",
            workload=f"CPU decoding {args.ours} vs {args.peer} ({args.new} tokens after a "
            f"{args.seq_len}-token prompt, KV cache, batch 1)",
            peer="Llama-style AM x k",
            metric="generation time",
            notes=setting,
        ),
        Record(
            "composer",
            f"KV cache at {args.seq_len + args.new} tokens: {args.ours} vs {args.peer}",
            "KV-cache bytes (bf16)",
            "bytes",
            kv_cache_bytes(cfg[args.ours], args.seq_len + args.new),
            "Llama-style AM x k",
            kv_cache_bytes(cfg[args.peer], args.seq_len + args.new),
            higher_is_better=False,
        ),
    ]
    print_table(records, "composer: searched architecture vs AM x k on CPU")
    write_json(records, RESULTS / "composer_throughput.json")


if __name__ == "__main__":
    main()
