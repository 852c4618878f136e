"""Stretch / stack extrapolation reproduces the paper's 27- and 29-layer models; baselines match size."""

import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.composer import extrapolate, matched_baselines, non_embedding_params, stack, stretch
from frugalml.composer.extrapolation import TARGETS
from frugalml.composer.model import runs


def test_paper_composite_stacked():
    e = extrapolate("AAMMMM", mode="stack", target="llama3.2-1b")
    assert e.arch == "AAMMMM" * 4 + "AMM"
    assert (e.layers, e.attention_layers) == (27, 9)


def test_paper_composite_stretched():
    e = extrapolate("AAMMMMMAAMMMAMMM", mode="stretch", target="llama3.2-1b")
    assert runs(e.arch) == [("A", 4), ("M", 9), ("A", 4), ("M", 5), ("A", 2), ("M", 5)]
    assert (e.layers, e.attention_layers) == (29, 10)


def test_llama_reference_is_about_one_billion_parameters():
    assert 0.95e9 < TARGETS["llama3.2-1b"].non_embedding_params < 1.0e9


def test_stretch_and_stack_by_layers():
    assert stretch("AMM", 2) == "AAMMMM"
    assert stack("AMM", 2) == "AMMAMM"
    assert stack("AAMM", 1.5) == "AAMMAM"
    assert extrapolate("AM", layers=6, mode="stack").arch == "AMAMAM"


def test_extrapolate_by_parameters_lands_near_target():
    layer = TARGETS["llama3.2-1b"].layer
    e = extrapolate("AMM", params=500_000_000, mode="stack", layer=layer)
    assert 0.9 < non_embedding_params(e.arch, layer) / 500e6 < 1.2


def test_matched_baselines_have_matching_sizes():
    layer = TARGETS["llama3.2-1b"].layer
    target = non_embedding_params("AAMMMM" * 4 + "AMM", layer)
    found = matched_baselines(target, layer)
    assert found["llama"] == "AM" * 16
    for arch in found.values():
        assert abs(non_embedding_params(arch, layer) / target - 1) < 0.1


@pytest.mark.parametrize(
    "kwargs",
    [dict(mode="grow"), dict(target="gpt5"), dict(layers=0), dict(layers=4, params=10), dict(target=None)],
)
def test_bad_requests(kwargs):
    with pytest.raises(InvalidInputError):
        extrapolate("AM", **kwargs)
    with pytest.raises(InvalidInputError):
        stretch("AM", 0)
