"""Measure cleave's claims (issue 8) and write benchmarks/results/cleave.json, cleave_sweep.csv/png.

Run: .venv/bin/python benchmarks/cleave/reproduce.py  (same as `frugal cleave reproduce --json ...`).
Every number is simulated (planner, analytic model, discrete-event simulator, baselines) on the
same pools and links; wall times are measured on this shared 2-core machine (noisy).
"""

from pathlib import Path

from frugalml.cleave.experiments import reproduce
from frugalml.cleave.traces import load_traces
from frugalml.common.report import print_table, write_json

OUT = Path(__file__).resolve().parents[1] / "results"

if __name__ == "__main__":
    records = reproduce(traces=load_traces(), out_dir=OUT, quiet=False)
    write_json(records, OUT / "cleave.json")
    print_table(records, title="cleave: the claims, measured (ratio > 1: Cleave better)")
