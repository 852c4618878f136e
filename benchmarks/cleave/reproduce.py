"""Measure cleave's claims and write benchmarks/results/cleave/claims.json, device-sweep.csv/png.

Run: .venv/bin/python benchmarks/cleave/reproduce.py  (same as `frugal cleave reproduce --json ...`).
Every number is simulated (planner, analytic model, discrete-event simulator, baselines) on the
same pools and links; wall times are measured on this machine (recorded in the JSON's environment).
"""

from pathlib import Path

from frugalml.cleave.bench.reproduce import reproduce
from frugalml.cleave.traces import load_traces
from frugalml.common.report import print_table, write_json

OUT = Path(__file__).resolve().parents[1] / "results" / "cleave"

if __name__ == "__main__":
    records = reproduce(traces=load_traces(), out_dir=OUT, quiet=False)
    write_json(records, OUT / "claims.json")
    print_table(records, title="cleave: the claims, measured (ratio > 1: Cleave better)")
