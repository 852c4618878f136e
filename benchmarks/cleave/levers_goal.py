"""Cleave's design levers on the issue's goal configurations (results: levers-goal.json).

Writes benchmarks/results/cleave/levers-goal.json.
Run: .venv/bin/python benchmarks/cleave/levers_goal.py  (about 1 minute)
OPT-13B, 1024 devices of the default mixed pool (seed 0), batch 16 and 512 of 1024 tokens, as
`frugal cleave plan --model opt-13b --batch B --seq 1024 --devices 1024 -q` plans it (churn on):
for each lever setting (today's plan, the column-then-row FFN split), the planned per-batch time,
the analytic model, Cleave's floors, and the discrete-event simulator in lockstep (the analytic
model's schedule) and in the dataflow schedule (a micro-batch's next GEMM starts once its own
inputs are done: overlap across micro-batches), no churn, stragglers or backups. The FFN split and
the overlap are simulator options (the networked runtime executes neither).
"""

import time
from pathlib import Path

from frugalml.cleave.analytic import analytic_step
from frugalml.cleave.des import SimConfig, simulate_step
from frugalml.cleave.devices import make_pool
from frugalml.cleave.models import load_model
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.planner import plan
from frugalml.cleave.regimes import cleave_floors
from frugalml.common.report import Record, print_table, write_json

OUT = Path(__file__).resolve().parents[1] / "results" / "cleave" / "levers-goal.json"
COMMAND = ".venv/bin/python benchmarks/cleave/levers_goal.py"


def measure(batch: int, split: bool) -> Record:
    pool = make_pool(1024, seed=0)
    p = plan(build_graph(load_model("opt-13b"), batch, 1024, ffn_split=split), pool, churn=True)
    quiet = {"churn": False, "traces": False, "backups": False, "straggler_prob": 0.0}
    start = time.perf_counter()
    lockstep = simulate_step(p, SimConfig(lockstep=True, **quiet)).seconds
    dataflow = simulate_step(p, SimConfig(**quiet)).seconds
    floors = cleave_floors(p)
    analytic = analytic_step(p).seconds
    lever = "ffn_split (simulator option)" if split else "none (today's plan)"
    return Record(
        system="cleave",
        workload=f"opt-13b batch {batch}x1024, 1024 mixed devices, lever {lever}",
        metric="planned_batch_seconds",
        unit="s",
        ours=p.batch_seconds,
        spread={
            "analytic_s": analytic,
            "des_lockstep_s": lockstep,
            "des_dataflow_s": dataflow,
            "des_lockstep_relative_difference": abs(lockstep - analytic) / lockstep,
            "dataflow_speedup_over_lockstep": lockstep / dataflow,
            "floors_s": floors,
            "binding_floor": max(floors, key=lambda k: floors[k]),
            "dataflow_over_binding_floor": dataflow / max(floors.values()),
            "des_wall_s": time.perf_counter() - start,
        },
        notes=f"levers: {lever}; the dataflow schedule (overlap across micro-batches) is a simulator "
        "option; devices used "
        f"{int(p.used_devices().sum())}/1024",
        command=COMMAND,
    )


if __name__ == "__main__":
    records = [measure(b, s) for b in (16, 512) for s in (False, True)]
    write_json(records, OUT)
    print_table(records, title="cleave levers on OPT-13B, 1024 mixed devices")
