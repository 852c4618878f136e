"""CPU speed benchmark (mask costs vs torch.topk, emulation overhead vs dense torch, V:N:M gather
matmul vs dense, analytic FLOPs); writes benchmarks/results/sparse24/speed-cpu.json. Same as
``frugal sparse24 speed --no-gpu --threads 1 --json benchmarks/results/sparse24/speed-cpu.json``.
"""

from __future__ import annotations

from pathlib import Path

from frugalml.common.report import print_table, write_json
from frugalml.common.threads import torch_threads
from frugalml.sparse24.bench.cpu_speed import cpu_speed

RESULTS = Path(__file__).resolve().parents[1] / "results" / "sparse24"

if __name__ == "__main__":
    with torch_threads(1):  # one thread: steadier when other work shares the cores; recorded in the JSON
        records = cpu_speed()
    print_table(records, title="sparse24 CPU speed")
    write_json(records, RESULTS / "speed-cpu.json")
