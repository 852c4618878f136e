"""A gated FFN block with a ReLU gate (d_model 2048, hidden 8192, random weights, the gate's bias
set so about 10% of its outputs are live): sparsify_ (up projection only where the gate is live,
down projection skipping zeros) vs the same block in plain torch, 1 thread, 1 and 4 rows.

    .venv/bin/python benchmarks/maskedmm/gated_up.py --json benchmarks/results/maskedmm/gated-up.json
"""

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--live", type=float, default=0.1, help="share of the gate's outputs that are live")
    args = parser.parse_args()
    from frugalml.common.errors import FrugalError, InvalidInputError
    from frugalml.common.report import print_table, write_json
    from frugalml.maskedmm.bench import gated

    try:
        if not 0 < args.live <= 1 or not 1 <= args.rounds <= 10_000:
            raise InvalidInputError("--live must lie in (0, 1] and --rounds in 1..10000")
        records = gated.measure(live=args.live, rounds=args.rounds)
    except FrugalError as exc:
        raise SystemExit(f"error: {exc}") from None
    print_table(records, title="maskedmm: gated FFN block, ReLU gate")
    write_json(records, args.json)


if __name__ == "__main__":
    main()
