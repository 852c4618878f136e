r"""ReLU-sparse transformer inference end to end: a ReLU^2 decoder's prefill and decode tokens/s with
maskedmm (``frugalml.maskedmm.torch.sparsify_``) vs the same model in plain torch and torch.compile,
on the same threads.

Trains a small byte-level decoder on the tiny Shakespeare corpus (``$FRUGAL_DATA`` or
``--corpus``), records each FFN layer's activation density, then measures it as it is and at
d_model 2048 (FFN 4x) with its activation patterns replayed: decode and prefill at batch
1/4/16/64 on 1 and 2 threads, a per-layer breakdown of decode time, the density at each batch size
and, at batch 1, the ideal bound of a decode step bound by the weight bytes it reads.

Full run, on a quiet machine (about an hour):
    FRUGAL_DATA=../shared/data .venv/bin/python benchmarks/maskedmm/e2e.py \
        --json benchmarks/results/maskedmm/e2e.json
Quick run (a few minutes; smaller training, batch 1 and 4, 1 thread, no torch.compile):
    FRUGAL_DATA=../shared/data .venv/bin/python benchmarks/maskedmm/e2e.py --quick \
        --json benchmarks/results/maskedmm/e2e-quick.json
"""

import argparse
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes: see the module's docstring")
    parser.add_argument("--json", type=Path, required=True, help="write the records here (and a PNG beside)")
    parser.add_argument("--corpus", type=Path, default=None, help="a text file to train on")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: 3000, quick 600)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per comparison")
    parser.add_argument(
        "--activation-l1",
        type=float,
        default=None,
        help="L1 weight on FFN activations in training (default 0.15; 0: plain)",
    )
    parser.add_argument(
        "--threads", type=str, default=None, help="thread counts, e.g. 1,2 (default: quick 1, full 1,2)"
    )
    parser.add_argument(
        "--batches", type=str, default=None, help="batch sizes, e.g. 1,4 (default: quick 1,4, full 1,4,16,64)"
    )
    parser.add_argument("--prompt", type=int, default=None, help="prompt tokens (default: 64, quick 32)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    from frugalml.maskedmm.bench.spin import apply_spin_settings

    apply_spin_settings()  # before OpenMP starts: idle workers of torch and maskedmm then sleep
    from frugalml.common.errors import FrugalError
    from frugalml.common.report import write_json
    from frugalml.maskedmm.bench import e2e

    try:
        from frugalml.common.parsing import comma_list

        config = e2e.configure(
            quick=args.quick,
            steps=args.steps,
            rounds=args.rounds,
            activation_l1=args.activation_l1,
            threads=None
            if args.threads is None
            else tuple(comma_list(args.threads, int, name="--threads value")),
            batches=None
            if args.batches is None
            else tuple(comma_list(args.batches, int, name="--batches value")),
            prompt=args.prompt,
        )
        partial = args.json.with_name(args.json.stem + "-partial.json")
        records = e2e.run(
            config,
            quiet=args.quiet,
            corpus_path=args.corpus,
            checkpoint=lambda done: write_json(done, partial),
        )
    except FrugalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    e2e.publish(records, args.json)
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
