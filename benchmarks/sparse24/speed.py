"""CPU speed benchmark (mask costs vs torch.topk, emulation overhead vs dense torch, V:N:M gather
matmul vs dense, analytic FLOPs); writes benchmarks/results/sparse24.json. Same as
``frugal sparse24 speed --no-gpu --json benchmarks/results/sparse24.json``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from frugalml.common.report import print_table, write_json
from frugalml.sparse24.bench import cpu_speed

RESULTS = Path(__file__).resolve().parents[1] / "results"

if __name__ == "__main__":
    torch.set_num_threads(1)  # 2 threads thrash when the machine is shared; recorded in the JSON
    records = cpu_speed()
    print_table(records, title="sparse24 CPU speed")
    write_json(records, RESULTS / "sparse24-speed-cpu.json")
