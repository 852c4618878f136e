"""Generation latency per token of the incremental decoder vs recomputing the prefix, and real cache bytes.

For each architecture: greedy generation of ``--new`` tokens after a ``--prompt``-token prompt, ours =
:meth:`HybridLM.generate` (KV cache / recurrent / conv state), baseline = the same model re-running
the whole prefix for every token (no cache); both must emit the same tokens. The decoder's real
state bytes are recorded against the analytic ``kv_cache_bytes``. Writes
``benchmarks/results/composer_decode.json``.

    python benchmarks/composer/decode.py [--width 64] [--prompt 128] [--new 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from frugalml.common.report import Record, print_table, write_json
from frugalml.common.timing import compare
from frugalml.composer import HybridConfig, HybridLM, kv_cache_bytes, state_bytes

RESULTS = Path(__file__).resolve().parents[1] / "results"
ARCHS = ("AMAMAM", "AAMMMM", "SMSMSM", "LMLMLM", "CMCMCM", "AEAEAE")


def recompute(model: HybridLM, prompt: torch.Tensor, new: int) -> torch.Tensor:
    out = prompt
    for _ in range(new):
        out = torch.cat((out, model(out)[:, -1].argmax(-1, keepdim=True)), dim=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--archs", default=",".join(ARCHS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = []
    settings = (
        f"width {args.width}, heads 4, kv_heads 2, window 32, vocab 256, batch 1, "
        f"prompt {args.prompt}, {args.new} new tokens, greedy, 1 torch thread, thread-CPU clock, "
        f"{args.rounds} ABBA rounds"
    )
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        model = HybridLM(HybridConfig.make(arch, width=args.width, heads=4, kv_heads=2, window=32)).eval()
        prompt = torch.randint(0, 256, (1, args.prompt), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            same = torch.equal(model.generate(prompt, args.new), recompute(model, prompt, args.new))
            comparison = compare(
                lambda m=model, p=prompt: m.generate(p, args.new),
                lambda m=model, p=prompt: recompute(m, p, args.new),
                rounds=args.rounds,
                clock=time.thread_time,
            )
            _, states = model.prefill(prompt)
        per_token = Record.from_comparison(
            comparison,
            system="composer",
            workload=f"decode {arch}",
            peer="recompute prefix (no cache)",
            metric="time per token",
            notes=f"{settings}; ours includes the prompt prefill, "
            f"amortised over the new tokens; same tokens: {same}",
        )
        per_token.ours /= args.new
        per_token.peer_value /= args.new
        per_token.spread["ours"] = [v / args.new for v in per_token.spread["ours"]]
        per_token.spread["peer"] = [v / args.new for v in per_token.spread["peer"]]
        records.append(per_token)
        for length in (args.prompt, args.prompt + args.new):
            if length != args.prompt:
                with torch.no_grad():
                    _, states = model.prefill(torch.cat((prompt, prompt[:, : args.new]), dim=1))
            records.append(
                Record(
                    "composer",
                    f"decode state {arch} at {length} tokens",
                    "cache bytes (fp32)",
                    "bytes",
                    state_bytes(states),
                    "analytic kv_cache_bytes",
                    kv_cache_bytes(model.cfg, length, bytes_per_element=4),
                    notes="measured bytes of the decoder's tensors vs the analytic count",
                )
            )
    print_table(records, "incremental decoding")
    write_json(records, RESULTS / "composer_decode.json")


if __name__ == "__main__":
    main()
