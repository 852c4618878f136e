"""The proxy validation on the fidelity picks: scoring from the cache, errors, the plot."""

from __future__ import annotations

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.composer.bench.fidelity_table import FinishedRuns, ceiling_record
from frugalml.composer.bench.proxy_validation import plot_validation, score_setting, setting
from frugalml.composer.cache import ResultCache

PICKS = ["AAA", "MMM", "CCC", "SSS", "LLL"]


def _runs() -> FinishedRuns:
    losses = np.array([[1.0, 1.1], [2.0, 2.1], [1.5, 1.4], [1.2, 1.3], [3.0, 2.9]])
    return FinishedRuns(PICKS, PICKS, losses, [1] * 5, [0, 1], 192, 2, 500, 10.0, 9.0)


def _fill(path: str, name: str, scores: dict[str, float]) -> None:
    proxy = setting(name, path).proxy()
    cache = ResultCache(path)
    for seed in (0, 1):
        for arch, score in scores.items():
            noisy = score + 0.01 * seed
            cache.put(arch, proxy.name, proxy.config(), seed, noisy, {"cpu_seconds": 2.0}, 2.5)


def test_score_setting_reads_the_cache(tmp_path):
    path = str(tmp_path / "c.sqlite")
    _fill(path, "lm-300", {"AAA": -1.0, "MMM": -2.0, "CCC": -1.5, "SSS": -1.2, "LLL": -3.0})
    rec = score_setting("lm-300", _runs(), [0, 1], path)
    assert rec.ours == pytest.approx(1.0)
    assert rec.spread["seed_to_seed_rho"] == pytest.approx(1.0)
    assert rec.spread["cpu_seconds_per_evaluation"] == 2.0
    assert rec.spread["evaluations_done"] == 10
    assert "not a held-out test" in rec.notes
    assert rec.spread["proxy_order_with_lm_rank"][0] == ["AAA", 1]
    plot_validation([rec], tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_too_few_strings_and_unknown_setting(tmp_path):
    path = str(tmp_path / "c.sqlite")
    _fill(path, "mad4-300", {"AAA": 0.5, "MMM": 0.4})
    with pytest.raises(InvalidInputError, match="need 4"):
        score_setting("mad4-300", _runs(), [0, 1], path)
    with pytest.raises(InvalidInputError, match="unknown proxy setting"):
        setting("lm-9000")


def test_heldout_records_say_so_and_carry_the_ceiling(tmp_path):
    path = str(tmp_path / "c.sqlite")
    _fill(path, "lm-300", {"AAA": -1.0, "MMM": -2.0, "CCC": -1.5, "SSS": -1.2, "LLL": -3.0})
    rec = score_setting("lm-300", _runs(), [0, 1], path, heldout=True)
    assert rec.workload.startswith("held-out test: lm-300") and "held-out picks" in rec.workload
    assert rec.notes.startswith("held-out test") and "not a held-out test" not in rec.notes
    ceiling = ceiling_record(_runs(), "held-out test. ")
    assert ceiling.workload.startswith("noise ceiling") and ceiling.notes.startswith("held-out test")
    assert ceiling.ours == pytest.approx(1.0) and ceiling.spread["archs"] == PICKS
    plot_validation([rec, ceiling], tmp_path / "h.png", title="held-out test")
    assert (tmp_path / "h.png").stat().st_size > 0
    one_seed = FinishedRuns(PICKS, PICKS, _runs().losses[:, :1], [1] * 5, [0], 192, 2, 500, 1.0, 1.0)
    with pytest.raises(InvalidInputError, match="two seeds"):
        ceiling_record(one_seed)
