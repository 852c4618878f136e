"""CPU training throughput and decoding latency of the searched architecture vs the AM x k baseline.

The pair comes from ``benchmarks/results/composer/fidelity-gpu-runs.json`` (the quality comparison:
the N0-aggregated, stacked architecture and its parameter-matched Llama-style baseline) unless
given. Timed with ABBA rounds, 1 torch thread and the thread-CPU clock, so other processes on the
machine do not count. Writes ``benchmarks/results/composer/throughput.json``.

    python benchmarks/composer/throughput.py [--ours MAAAAMMAAAAM --peer AMAMAMAMAM] [--width 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalml.common.report import print_table, write_json
from frugalml.composer.bench.throughput import ThroughputSettings, throughput_records

RESULTS = Path(__file__).resolve().parents[1] / "results" / "composer"


def main() -> None:
    pair = ThroughputSettings.from_runs(RESULTS / "fidelity-gpu-runs.json")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", default=pair.ours)
    parser.add_argument("--peer", default=pair.peer)
    parser.add_argument("--width", type=int, default=pair.width)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--new", type=int, default=32, help="Tokens generated after a seq-len prompt.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    records = throughput_records(ThroughputSettings(**vars(args)))
    print_table(records, "composer: searched architecture vs AM x k on CPU")
    write_json(records, RESULTS / "throughput.json")


if __name__ == "__main__":
    main()
