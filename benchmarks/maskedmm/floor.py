r"""The floor: the trained small decoder (d_model 128), whose down projections run dense at batch 1,
decoded one sequence at a time with ``sparsify_`` vs the same model in plain torch, interleaved,
on 1 and 2 threads (goal: never below 0.95x). Records ours in steady state (layers retired to
``nn.Linear``'s own forward), ours before retiring (right after a reset) and a dense copy (the
run's noise), and prefill of 32 tokens at batch 1 and 4 after the layers' trials settle.

    FRUGAL_DATA=../shared/data .venv/bin/python benchmarks/maskedmm/floor.py \
        --json benchmarks/results/maskedmm/floor.json

About 5 minutes: 600 training steps (the e2e quick recipe: 91-96% FFN zeros), then 31 rounds.
``--decode-batches 64`` measures decode at those batch sizes instead (after the layers' trials).
"""

import argparse
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="write the records here")
    parser.add_argument("--corpus", type=Path, default=None, help="a text file to train on")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    parser.add_argument("--rounds", type=int, default=31, help="rounds per comparison (alternating)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=str, default="1,2", help="thread counts (default 1,2)")
    parser.add_argument(
        "--decode-batches", type=str, default="", help="measure decode at these batch sizes instead, e.g. 64"
    )
    args = parser.parse_args()
    from frugalml.maskedmm.bench.spin import apply_spin_settings

    apply_spin_settings()  # before OpenMP starts: idle workers then sleep
    from frugalml.common.errors import FrugalError, InvalidInputError
    from frugalml.common.parsing import comma_list
    from frugalml.common.report import print_table, write_json
    from frugalml.maskedmm.bench import floor

    try:
        for name, value in (("steps", args.steps), ("rounds", args.rounds)):
            if not 1 <= value <= 1_000_000:
                raise InvalidInputError(f"--{name} must lie between 1 and 1000000, got {value}")
        threads = tuple(comma_list(args.threads, int, name="--threads value", non_empty=True))
        batches = (
            tuple(comma_list(args.decode_batches, int, name="--decode-batches value"))
            if args.decode_batches
            else ()
        )
        for name, values in (("threads", threads), ("decode-batches", batches)):
            if any(not 1 <= v <= 4096 for v in values):
                raise InvalidInputError(f"--{name} values must lie between 1 and 4096, got {values}")
        records = floor.run(
            steps=args.steps,
            rounds=args.rounds,
            threads=threads,
            corpus_path=args.corpus,
            quiet=args.quiet,
            decode_batches=batches,
        )
    except FrugalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print_table(records, title="maskedmm floor: decode batch 1 where the planner picks dense")
    write_json(records, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
