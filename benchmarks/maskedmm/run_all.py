"""Record maskedmm's benchmark into benchmarks/results/maskedmm.json and .png: the issue's sweep on
uniform zeros (1 thread, every peer, in one process), the structured patterns (1 thread), auto and
each masked kernel vs numpy with more rounds, 2 threads with one child process per method (so
OpenBLAS's and OpenMP's spinning pools never share the 2 cores), and numpy under the other
OPENBLAS_CORETYPE setting.
One-thread comparisons use thread CPU time, two-thread ones wall clock (each record's notes say
which, and the machine's load average when measured).

Run: ``.venv/bin/python benchmarks/maskedmm/run_all.py`` (several minutes; the same as
``frugal maskedmm bench`` with these settings, merged into one file).
"""

from pathlib import Path

from frugalml.common.report import print_table, write_json
from frugalml.maskedmm import bench

RESULTS = Path(__file__).resolve().parents[1] / "results" / "maskedmm.json"


def main() -> None:
    uniform = bench.BenchConfig(
        n=1024,
        sparsities=(0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99),
        patterns=("random",),
        threads=(1,),
        rounds=5,
    )
    structured = bench.BenchConfig(
        n=1024,
        sparsities=(0.5, 0.7, 0.8, 0.9, 0.95, 0.99),
        patterns=("block16", "columns", "relu"),
        threads=(1,),
        rounds=5,
        peers=("scipy",),
    )
    records = bench.run(uniform, progress_desc="uniform") + bench.run(structured, progress_desc="structured")
    records += bench.auto_records()
    records += bench.kernel_records()
    records += bench.subprocess_records(threads=2)
    records += bench.coretype_records()
    print_table(records, title=f"maskedmm ({bench.blas_note()})")
    write_json(records, RESULTS)
    bench.plot(records, RESULTS.with_suffix(".png"))
    print(f"wrote {RESULTS} and {RESULTS.with_suffix('.png')}")


if __name__ == "__main__":
    main()
