"""FastBIC and TwoMeans against brute-force references and a fitted Gaussian mixture."""

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.urerf.splits import LOG_2PI, bic_reference, fastbic_split, gmm_split, twomeans_split


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("min_cluster_size", [1, 4])
def test_fastbic_equals_bruteforce(seed, min_cluster_size):
    g = np.random.default_rng(seed)
    z = np.concatenate([g.normal(0, 1, 40), g.normal(g.uniform(0, 4), g.uniform(0.2, 2), 25)])
    z[:3] = z[3]  # ties must not be cut between
    unequal, pooled = bic_reference(z, min_cluster_size)
    best = np.minimum(unequal, pooled)
    split = fastbic_split(z, min_cluster_size)
    assert split is not None
    assert split.score == pytest.approx(best.min(), rel=1e-9)
    assert split.n_left == int(np.argmin(best)) + 1
    assert min(split.n_left, z.size - split.n_left) >= min_cluster_size
    zs = np.sort(z)
    assert zs[split.n_left - 1] < split.threshold < zs[split.n_left]


def test_twomeans_equals_bruteforce():
    g = np.random.default_rng(3)
    z = np.sort(g.normal(0, 1, 50))
    sse = [((z[:s] - z[:s].mean()) ** 2).sum() + ((z[s:] - z[s:].mean()) ** 2).sum() for s in range(1, 50)]
    split = twomeans_split(z)
    assert split.n_left == int(np.argmin(sse)) + 1
    assert split.score == pytest.approx(min(sse), rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_fastbic_matches_gmm_on_separable_mixture(seed):
    g = np.random.default_rng(seed)
    z = np.concatenate([g.normal(0, 1, 60), g.normal(12, 2, 40)])
    fast, gmm = fastbic_split(z), gmm_split(z, seed=seed)
    assert fast.n_left == gmm.n_left == 60


def test_constant_values_have_no_split():
    assert fastbic_split(np.ones(10)) is None
    assert twomeans_split(np.ones(10)) is None


def test_zero_variance_sides_are_skipped():
    # every cut leaves one side constant except ones that split inside the spread side
    z = np.array([0.0, 0.0, 0.0, 5.0, 6.0, 7.0])
    split = fastbic_split(z)
    assert split is None or split.n_left > 3


@pytest.mark.parametrize("bad", [[1.0], [np.nan, 1.0, 2.0], [[1.0, 2.0]]])
def test_bad_values_raise(bad):
    with pytest.raises(InvalidInputError):
        fastbic_split(bad)


@pytest.mark.parametrize("m", [5, 300, 1023, 1024, 3000])
def test_node_sort_equals_numpy_sort(m):
    from frugalml.urerf._trees import sort_values

    rng = np.random.default_rng(m)
    for z in (
        rng.normal(size=m),
        rng.integers(-3, 4, size=m).astype(np.float64),
        np.concatenate([[-0.0, 0.0, -1e-300, 1e300], rng.normal(size=m)])[:m],
    ):
        out = np.empty(m)
        sort_values(z, m, out, np.empty(m, np.uint64), np.empty(m, np.uint64), np.empty(256, np.int64))
        np.testing.assert_array_equal(out, np.sort(z))


def test_shared_workspace_gives_the_same_cut():
    from frugalml.urerf._trees import FASTBIC, best_cut, best_cut_with, xlogx_table

    zs = np.sort(np.random.default_rng(1).normal(size=400))
    table, work = xlogx_table(1000), np.empty((4, 1000))  # a tree's buffers, larger than the node
    for lo in (1, 7):
        assert best_cut_with(zs, zs.size, FASTBIC, lo, table, work) == best_cut(zs, zs.size, FASTBIC, lo)


def _full_scan(zs, lo):
    """Every FastBIC cut scored with the kernel's arithmetic, no pruning: (best score, s)."""
    m = zs.size
    d = zs - zs[(m - 1) // 2]
    total, total_sq = d.sum(), (d * d).sum()
    tiny = 1e-12 * max(total_sq / m - (total / m) ** 2, 0.0)
    left, left_sq, best, best_s = 0.0, 0.0, np.inf, -1
    for s in range(1, m):
        left, left_sq = left + d[s - 1], left_sq + d[s - 1] * d[s - 1]
        n1, n2 = s, m - s
        if n1 < lo or n2 < lo or zs[s] <= zs[s - 1]:
            continue
        ss1 = max(left_sq - left * left / n1, 0.0)
        right = total - left
        ss2 = max((total_sq - left_sq) - right * right / n2, 0.0)
        v1, v2 = ss1 / n1, ss2 / n2
        if v1 <= tiny or v2 <= tiny:
            continue
        mix = -2.0 * (n1 * np.log(n1 / m) + n2 * np.log(n2 / m))
        unequal = mix + n1 * (LOG_2PI + np.log(v1)) + n2 * (LOG_2PI + np.log(v2)) + m + 5 * np.log(m)
        pooled = mix + m * (LOG_2PI + np.log((ss1 + ss2) / m)) + m + 4 * np.log(m)
        if min(unequal, pooled) < best:
            best, best_s = min(unequal, pooled), s
    return best, best_s


@pytest.mark.parametrize("seed", range(6))
def test_pruned_scan_picks_the_same_cut_as_a_full_scan(seed):
    from frugalml.urerf._trees import FASTBIC, best_cut

    g = np.random.default_rng(seed)
    scale = 10.0 ** g.uniform(-6, 6)
    parts = [g.normal(0, 1, 300), g.standard_cauchy(50), g.normal(3, 1e-4, 5), np.full(4, -2.0)]
    zs = np.sort(np.concatenate(parts) * scale)
    for lo in (1, 3):
        score, s = best_cut(zs, zs.size, FASTBIC, lo)
        ref_score, ref_s = _full_scan(zs, lo)
        assert s == ref_s and score == pytest.approx(ref_score, rel=1e-12)


@pytest.mark.parametrize("weight", [1.0, -1.0, 0.37, -2.5])
def test_rank_sort_equals_sorting_the_projection(weight):
    from frugalml.urerf._trees import feature_ranks, rank_sort

    g = np.random.default_rng(7)
    n = 300
    Xt = g.normal(size=(3, n)).astype(np.float32)
    Xt[1] = np.round(Xt[1])  # ties
    ranks, sorted_values = feature_ranks(Xt)
    idx = g.integers(0, n, size=500)  # a bootstrap sample: repeated points
    counts, bits = np.zeros(n, np.int32), np.zeros((n + 63) // 64, np.uint64)
    for f in range(3):
        for start, end in ((0, 500), (100, 117), (40, 41)):
            zs = np.empty(end - start)
            rank_sort(ranks, sorted_values, f, weight, idx, start, end, counts, bits, zs)
            np.testing.assert_array_equal(zs, np.sort(weight * Xt[f, idx[start:end]].astype(np.float64)))
            assert not counts.any() and not bits.any()


def test_log_lower_bounds_log_tightly():
    from frugalml.urerf._trees import _log_lower

    v = np.concatenate([10.0 ** np.random.default_rng(0).uniform(-300, 300, 5000), [1.0, 2.0, 0.5, 1e-310]])
    lower = np.array([_log_lower(b) for b in v.view(np.uint64)])
    assert np.all(lower <= np.log(v))
    normal = v > 1e-300
    assert np.all(np.log(v[normal]) - lower[normal] < 2e-6)
