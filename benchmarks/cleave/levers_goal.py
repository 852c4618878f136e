"""Cleave's design levers on two OPT-13B targets: 1024 mixed devices, batch 16 and 512 (levers-goal.json).

Writes benchmarks/results/cleave/levers-goal.json.
Run: .venv/bin/python benchmarks/cleave/levers_goal.py  (about 3 minutes)
OPT-13B, 1024 devices of the default mixed pool (seed 0), batch 16 and 512 of 1024 tokens, as
`frugal cleave plan --model opt-13b --batch B --seq 1024 --devices 1024 -q` plans it (churn on):
for each lever setting (today's plan, the column-then-row FFN split, GEMMs overlapped across layers
and micro-batches, both), the per-batch time, the lockstep analytic model, Cleave's floors, and the
discrete-event simulator in lockstep (a barrier after every GEMM) and in the dataflow schedule (a
micro-batch's next GEMM starts once its own inputs are done: the overlap), no churn, stragglers or
backups. With overlap the micro-batch size is the one the overlapped step prefers
(`plan --overlap --micro-batch 0`). The FFN split and the overlap are simulator options (the
networked runtime executes neither).
"""

import time
from pathlib import Path

from frugalml.cleave.analytic import analytic_step, overlap_step
from frugalml.cleave.des import SimConfig, simulate_step
from frugalml.cleave.devices import make_pool
from frugalml.cleave.models import load_model
from frugalml.cleave.opgraph import build_graph
from frugalml.cleave.planner import OVERLAP_TOKENS, micro_batch_candidates, plan
from frugalml.cleave.regimes import cleave_floors, lever_label
from frugalml.common.report import Record, print_table, write_json

OUT = Path(__file__).resolve().parents[1] / "results" / "cleave" / "levers-goal.json"
COMMAND = ".venv/bin/python benchmarks/cleave/levers_goal.py"


def _plan(batch: int, split: bool, micro_batch: int | None):
    graph = build_graph(load_model("opt-13b"), batch, 1024, ffn_split=split, micro_batch=micro_batch)
    return plan(graph, make_pool(1024, seed=0), churn=True)


def measure(batch: int, split: bool, overlap: bool, today: float) -> Record:
    if overlap:  # the micro-batch size the overlapped step prefers
        plans = [_plan(batch, split, mb) for mb in micro_batch_candidates(batch, 1024, OVERLAP_TOKENS)]
        p = min(plans, key=overlap_step)
    else:
        p = _plan(batch, split, None)
    quiet = {"churn": False, "traces": False, "backups": False, "straggler_prob": 0.0}
    start = time.perf_counter()
    lockstep = simulate_step(p, SimConfig(lockstep=True, **quiet)).seconds
    dataflow = simulate_step(p, SimConfig(**quiet)).seconds
    floors = cleave_floors(p)
    analytic = analytic_step(p).seconds
    ours = overlap_step(p) if overlap else p.batch_seconds
    des = dataflow if overlap else lockstep
    lever = lever_label(True, ffn_split=split, overlap=overlap)
    binding = max(floors, key=lambda k: floors[k])
    return Record(
        system="cleave",
        workload=f"opt-13b batch {batch}x1024, 1024 mixed devices, levers: {lever}",
        metric="batch_seconds",
        unit="s",
        ours=ours,
        spread={
            "micro_batches": p.graph.micro_batches,
            "planned_lockstep_s": p.batch_seconds,
            "analytic_lockstep_s": analytic,
            "analytic_overlap_s": overlap_step(p),
            "des_lockstep_s": lockstep,
            "des_dataflow_s": dataflow,
            "des_schedule_compared": "dataflow" if overlap else "lockstep",
            "des_relative_difference": abs(des - ours) / des,
            "speedup_over_today": today / ours,
            "floors_s": floors,
            "binding_floor": binding,
            "over_binding_floor": ours / floors[binding],
            "des_over_binding_floor": des / floors[binding],
            "des_wall_s": time.perf_counter() - start,
        },
        notes=f"levers: {lever}; today's plan {today:.1f} s; the FFN split and the overlap are simulator "
        f"options (the runtime runs lockstep, FFN as separate GEMMs); devices used "
        f"{int(p.used_devices().sum())}/1024",
        command=COMMAND,
    )


if __name__ == "__main__":
    records = []
    for b in (16, 512):
        today = _plan(b, False, None).batch_seconds
        for split, overlap in ((False, False), (True, False), (False, True), (True, True)):
            records.append(measure(b, split, overlap, today))
            print(records[-1].workload, f"{records[-1].ours:.1f} s", flush=True)
    write_json(records, OUT)
    print_table(records, title="cleave levers on OPT-13B, 1024 mixed devices")
