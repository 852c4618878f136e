"""Seconds per simulated step of the DES kernel against earlier versions of it, interleaved.

Each revision's ``src/frugalml/cleave/des.py`` (``git show REV:...``) is loaded beside the working
tree's and every version simulates the same step (OPT-13B, batch 512 x 1024, the mixed pool,
churn, contention and stragglers on, no traces) in alternating order; the first call of each
(compilation) is not timed. Every version must produce the same result.

    python benchmarks/cleave/des_speed.py --devices 10000 --rounds 3 --rev 9233810^ --rev 35c3990
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rev", action="append", default=[], help="git revision of a kernel to compare")
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks/results/cleave/des-speed.json")
    args = parser.parse_args()

    from frugalml.cleave import des
    from frugalml.cleave.devices import make_pool
    from frugalml.cleave.models import BUILTIN
    from frugalml.cleave.opgraph import build_graph
    from frugalml.cleave.planner import plan

    folder = Path(tempfile.mkdtemp(prefix="des-speed-"))
    kernels: dict[str, ModuleType] = {"working tree": des}
    for i, rev in enumerate(args.rev):
        source = subprocess.run(
            ["git", "show", f"{rev}:src/frugalml/cleave/des.py"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        (folder / f"des_rev{i}.py").write_bytes(source)
        kernels[rev] = _load(f"des_rev{i}", folder / f"des_rev{i}.py")
    graph = build_graph(BUILTIN["opt-13b"], batch=512, seq=1024)
    p = plan(graph, make_pool(args.devices, seed=0), churn=True)
    for module in kernels.values():  # compile
        module.simulate_step(p, module.SimConfig(traces=False, churn=False), seed=1)
    seconds: dict[str, list[float]] = {name: [] for name in kernels}
    loads: list[float] = []
    results = set()
    for r in range(args.rounds):
        order = list(kernels.items())
        for name, module in order if r % 2 == 0 else order[::-1]:
            loads.append(os.getloadavg()[0])
            start = time.perf_counter()
            res = module.simulate_step(p, module.SimConfig(traces=False), seed=0)
            seconds[name].append(time.perf_counter() - start)
            results.add((res.seconds, res.events, res.tasks, res.backups))
            print(name, round(seconds[name][-1], 2), "s, load", loads[-1], flush=True)
    if len(results) != 1:
        sys.exit(f"the kernels disagree: {sorted(results)}")
    medians = {name: float(np.median(v)) for name, v in seconds.items()}
    record = {
        "workload": f"one step, opt-13b, batch 512 x 1024, {args.devices} devices of the mixed pool, "
        "churn, contention, stragglers and backups on, no traces",
        "events": next(iter(results))[1],
        "median_seconds": medians,
        "seconds": seconds,
        "ratio_to_working_tree": {name: m / medians["working tree"] for name, m in medians.items()},
        "load_average_1min": {"min": min(loads), "max": max(loads)},
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "working_tree": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "command": "python benchmarks/cleave/des_speed.py " + " ".join(sys.argv[1:]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(args.out)
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
