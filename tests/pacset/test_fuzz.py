"""Fuzzing ``.pacset`` files: mutated copies of valid files (random bytes, node fields, header
fields, blocks of another model, most re-sealed with valid checksums) read in a sandbox child.

Each case must end in a one-line error or in raw scores equal to the pure-Python reference
reader's on the same bytes: never a crash, a hang or a differing answer. The default run takes a
seeded subset; ``-m slow`` runs more than 2,000 cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier

from frugalml.pacset import pack
from tests.fuzz import Sandbox, mutations
from tests.pacset.fuzz_cases import (
    judge,
    meta_mutation,
    node_mutation,
    predict_bytes,
    reseal_pacset,
    swap_blocks,
)
from tests.pacset.reference import reference_raw


@pytest.fixture(scope="module")
def fuzz_models(tmp_path_factory, cls_data, reg_data):
    """Small valid files of the three leaf kinds (soft-vote vectors, hard votes, boosting sums) and rows."""
    X, y = cls_data
    rf = RandomForestClassifier(4, max_depth=6, random_state=0).fit(X, y)
    gb = GradientBoostingRegressor(n_estimators=6, max_depth=3, random_state=0).fit(*reg_data)
    d = tmp_path_factory.mktemp("fuzz")
    files = {}
    for name, model, opts in (
        ("rf-soft", rf, {"bins": 2, "interleave": 1}),
        ("rf-hard", rf, {"bins": 1, "interleave": 2, "vote": "hard"}),
        ("gb-sum", gb, {"bins": 2, "interleave": 0, "layout": "dfs"}),
    ):
        pack(model, d / f"{name}.pacset", **opts)
        files[name] = (d / f"{name}.pacset").read_bytes()
    rows = X[:3].copy()
    rows[1, 2] = np.nan
    return files, {"rf-soft": rows, "rf-hard": rows, "gb-sum": reg_data[0][:3]}


def cases(files: dict, per_model: int, seed: int):
    """(model, what was done, bytes) for ``per_model`` mutations of each file."""
    rng = np.random.default_rng(seed)
    names = list(files)
    for i, name in enumerate(names):
        data = files[name]
        other = files[names[(i + 1) % len(names)]]
        generic = mutations(data, per_model // 2, seed + i, reseal=reseal_pacset, resealed_share=0.6)
        yield from ((name, kind, mutated) for kind, mutated in generic)
        for _ in range(per_model - per_model // 2):
            pick = rng.random()
            if pick < 0.6:
                kind, mutated = node_mutation(data, rng)
                kind, mutated = f"{kind}, resealed", reseal_pacset(mutated)
            elif pick < 0.9:
                kind, mutated = meta_mutation(data, rng)
            else:
                kind, mutated = swap_blocks(data, other, rng)
            yield name, kind, mutated


def run_fuzz(fuzz_models, per_model: int, seed: int) -> dict[str, int]:
    files, rows = fuzz_models
    counts = {"error": 0, "answer": 0}
    failures = []
    with Sandbox(timeout=20) as box:
        for n, (name, kind, data) in enumerate(cases(files, per_model, seed)):
            engine, backend = ("numba", "mmap") if n % 2 else ("numpy", "pread")
            outcome = box.run(predict_bytes, data, rows[name], engine, backend)
            why = judge(outcome, data, rows[name])
            if why is not None:
                failures.append(f"{name} [{kind}] {engine}/{backend}: {why}")
            counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
    assert not failures, f"{len(failures)} failing cases:\n" + "\n".join(failures[:20])
    return counts


def test_reference_reads_the_valid_files(fuzz_models):
    """The reference and the reader agree on the unmutated files (so answers are compared, not refused)."""
    files, rows = fuzz_models
    for name, data in files.items():
        raw, _ = predict_bytes(data, rows[name], "numpy", "mmap")
        np.testing.assert_allclose(reference_raw(data, rows[name]), raw, rtol=1e-12)
        resealed = reseal_pacset(data)
        assert resealed == data, "re-sealing a valid file changes nothing"


def test_fuzz_pacset_seeded_subset(fuzz_models):
    counts = run_fuzz(fuzz_models, per_model=80, seed=1)
    assert counts["error"] > 0 and counts["answer"] > 0


@pytest.mark.slow
def test_fuzz_pacset_full(fuzz_models):
    counts = run_fuzz(fuzz_models, per_model=700, seed=2)
    assert sum(counts.values()) >= 2000
