"""Fuzzing saved forests (``.urerf``): mutated copies of valid files (random bytes, one array
element, slice, dtype or length, another forest's array, metadata fields; most with valid
checksums) loaded and queried in a sandbox child.

Each case must end in a one-line error or in neighbours (for new points and for the training
points) equal to the pure-Python reference walker's on the same loaded arrays: never a crash, a
hang or a differing answer. The default run takes a seeded subset; ``-m slow`` runs more than
2,000 cases.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from frugalml.common.arrays import load_arrays
from frugalml.urerf import UnsupervisedRandomerForest
from frugalml.urerf.fileformat import FORMAT_VERSION, MAGIC
from tests.fuzz import Outcome, Sandbox, mutations, reseal_container
from tests.urerf.fuzz_cases import K, array_mutation, judge, meta_mutation, neighbours_case
from tests.urerf.reference import reference_kneighbors

SETTINGS = {
    "sparse-all": {"projection": "sparse", "density": 0.3},
    "axis-inbag-normalized": {"projection": "axis", "route": "inbag", "normalize": True},
}


@pytest.fixture(scope="module")
def fuzz_forests(tmp_path_factory):
    """Two small valid forests of different kinds on the same data, their files and query points."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5)) * [1.0, 2.0, 0.5, 3.0, 1.0]
    folder = tmp_path_factory.mktemp("urerf-fuzz")
    files = {}
    for name, options in SETTINGS.items():
        forest = UnsupervisedRandomerForest(6, min_parent=4, random_state=1, **options).fit(X)
        forest.save(folder / f"{name}.urerf")
        data = (folder / f"{name}.urerf").read_bytes()
        meta, arrays = load_arrays(folder / f"{name}.urerf", MAGIC, FORMAT_VERSION)
        files[name] = (data, meta, arrays)
    queries = np.vstack([X[:4] + rng.normal(scale=0.3, size=(4, 5)), np.full((1, 5), 1e6), -X[5:6]])
    return files, queries


def cases(files: dict, per_model: int, seed: int):
    """(model, what was done, bytes): half byte-level mutations, half array and metadata edits."""
    rng = np.random.default_rng(seed)
    names = list(files)
    for i, name in enumerate(names):
        data, meta, arrays = files[name]
        other = files[names[(i + 1) % len(names)]][2]
        generic = mutations(data, per_model // 2, seed + i, reseal=reseal_container, resealed_share=0.6)
        yield from ((name, kind, mutated) for kind, mutated in generic)
        for _ in range(per_model - per_model // 2):
            if rng.random() < 0.7:
                kind, mutated = array_mutation(meta, arrays, other, rng)
            else:
                kind, mutated = meta_mutation(meta, arrays, rng)
            yield name, kind, mutated


def run_fuzz(files: dict, queries: np.ndarray, per_model: int, seed: int) -> Counter:
    problems, ends = [], Counter()
    with Sandbox(timeout=120) as box:
        box.run(neighbours_case, files[next(iter(files))][0], queries)  # load the numba kernels once
        box.timeout = 10.0
        for name, kind, data in cases(files, per_model, seed):
            outcome = box.run(neighbours_case, data, queries)
            ends[outcome.kind] += 1
            problem = judge(f"{name}: {kind}", outcome, queries)
            if problem:
                problems.append(problem)
    assert not problems, f"{len(problems)} bad cases of {sum(ends.values())}:\n" + "\n".join(problems[:20])
    return ends


def test_reference_walker_agrees_on_the_valid_forests(fuzz_forests):
    files, queries = fuzz_forests
    for data, _, _ in files.values():
        answer = neighbours_case(data, queries)
        assert judge("valid", Outcome("answer", answer), queries) is None
        dist, ind = reference_kneighbors(answer["arrays"], answer["params"], queries, K)
        assert ind.shape == (len(queries), K) and (dist < 1).any()  # the queries do share leaves


def test_fuzz_judge_flags_a_differing_answer_and_a_crash(fuzz_forests):
    files, queries = fuzz_forests
    answer = neighbours_case(files["sparse-all"][0], queries)
    dist, ind = answer["queries"]
    answer["queries"] = (dist, ind[:, ::-1].copy())
    assert "differ" in judge("planted", Outcome("answer", answer), queries)
    assert "crash" in judge("planted", Outcome("crash", -11), queries)
    assert "hang" in judge("planted", Outcome("hang", 10), queries)


def test_fuzz_urerf_seeded_subset(fuzz_forests):
    files, queries = fuzz_forests
    ends = run_fuzz(files, queries, per_model=150, seed=24)
    assert ends["error"] > 0 and ends["answer"] > 0, ends  # both endings are exercised


@pytest.mark.slow
def test_fuzz_urerf_full(fuzz_forests):
    files, queries = fuzz_forests
    ends = run_fuzz(files, queries, per_model=1100, seed=2024)
    assert sum(ends.values()) >= 2000 and ends["error"] > 0 and ends["answer"] > 0, ends
