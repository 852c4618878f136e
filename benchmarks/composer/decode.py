"""Generation latency per token of the incremental decoder vs recomputing the prefix, and real cache bytes.

For each architecture: greedy generation of ``--new`` tokens after a ``--prompt``-token prompt, ours =
``HybridLM.generate`` (KV cache / recurrent / conv state), baseline = the same model re-running
the whole prefix for every token (no cache); both must emit the same tokens. The decoder's real
state bytes are recorded against the analytic ``kv_cache_bytes``. Writes
``benchmarks/results/composer/decode.json``.

    python benchmarks/composer/decode.py [--width 64] [--prompt 128] [--new 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.common.parsing import comma_list
from frugalml.common.report import print_table, write_json
from frugalml.composer.bench.decode import ARCHS, DecodeSettings, decode_records

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--archs", default=",".join(ARCHS))
    args = parser.parse_args()
    settings = DecodeSettings(width=args.width, prompt=args.prompt, new=args.new, rounds=args.rounds)
    records = decode_records(comma_list(args.archs, name="architecture"), settings)
    print_table(records, "incremental decoding")
    write_json(records, RESULTS / "decode.json")


if __name__ == "__main__":
    main()
