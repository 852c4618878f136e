"""The server's peak memory while a client floods it with oversized results (goal: idle + 256 MB)."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.net, pytest.mark.timeout(120)]
SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "cleave" / "push_memory.py"


def test_oversized_pushes_grow_the_server_by_less_than_256_mb():
    spec = importlib.util.spec_from_file_location("cleave_push_memory", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.measure(chunks=60, chunk_mb=7.0)  # 2 x 420 MB; the benchmark pushes 2 x 1.4 GB
    assert "larger than its tile" in result["own_task_reply"]
    assert result["other_task_reply"].startswith("stale")  # read to the end and dropped
    assert result["samples"] >= 2 and result["growth_mb"] <= bench.GOAL_MB, result
