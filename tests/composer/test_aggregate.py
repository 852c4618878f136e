"""The aggregator: k-means top cluster, N_c voting and best-single."""

import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.composer import aggregate
from frugalml.composer.aggregation import top_cluster, vote


def test_top_cluster_holds_the_high_scores():
    scores = [0.9, 0.91, 0.5, 0.52, 0.1, 0.12, 0.3, 0.7, 0.71, 0.2]
    members = top_cluster([f"{i}" for i in range(10)], scores, k=5)
    assert sorted(members) == [0, 1]


def test_n0_is_a_per_layer_majority():
    assert vote(["AAM", "AMM", "MAM"], [1, 1, 1], context=0) == "AAM"


def test_n1_follows_the_chosen_prefix():
    members = ["AMM", "AMM", "MAA", "MAA", "MAA", "AAA", "AAA"]
    scores = [1.0, 1.0, 0.5, 0.5, 0.5, 0.9, 0.9]
    assert vote(members, scores, context=0) == "AAA"
    assert vote(members, scores, context=1) == "AMM"  # tie at layer 1 goes to the better voters
    assert vote(members, scores, context=None) == "AMM"


def test_aggregate_methods():
    archs = ["AAMM", "AMMM", "AAMA", "MMMM", "MMMA"]
    scores = [0.9, 0.85, 0.88, 0.1, 0.12]
    assert aggregate(archs, scores, "best-single") == "AAMM"
    assert aggregate(archs, scores, "N0", k=2) == "AAMM"


@pytest.mark.parametrize(
    "archs,scores,method",
    [
        ([], [], "N0"),
        (["AM"], [1, 2], "N0"),
        (["AM", "AMM"], [1, 2], "N0"),
        (["AM"], [1], "N9"),
        (["AM", "MA"], [1, float("nan")], "N0"),
        (["AX"], [1], "N0"),
    ],
)
def test_bad_inputs(archs, scores, method):
    with pytest.raises(InvalidInputError):
        aggregate(archs, scores, method)


def test_pareto_front_of_score_and_cost():
    from frugalml.composer.aggregation import pareto_front

    scores = [0.9, 0.8, 0.95, 0.5, 0.8]
    costs = [10, 5, 20, 1, 6]
    assert pareto_front(scores, costs) == [3, 1, 0, 2]
    with pytest.raises(InvalidInputError):
        pareto_front([1.0], [1.0, 2.0])
