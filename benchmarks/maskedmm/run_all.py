"""Record maskedmm's benchmarks into benchmarks/results/maskedmm/: the sweep on uniform zeros
(1 thread, every peer, in one process) and on structured patterns (sweep.json + sweep.png), auto
vs numpy with more rounds (auto-sweep.json), each masked kernel (kernels.json), 2 threads with one
child process per method so OpenBLAS's and OpenMP's spinning pools never share the cores
(threads.json), and numpy under the other OPENBLAS_CORETYPE setting (coretype.json).
One-thread comparisons use thread CPU time, two-thread ones wall clock (each record's notes say
which, and the machine's load average when measured).

Run: ``.venv/bin/python benchmarks/maskedmm/run_all.py`` (several minutes; the same as
``frugal maskedmm bench`` with these settings).
"""

from pathlib import Path

from frugalml.maskedmm.bench.reproduce import run_all

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm"

if __name__ == "__main__":
    run_all(RESULTS)
