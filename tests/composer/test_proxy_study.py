"""The proxy study and the tabular-benchmark builder: reliability records, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.composer.bench.build_table import TableSettings, agreement, build_table, top1_stability
from frugalml.composer.bench.proxy_study import (
    StudyBase,
    StudyRun,
    choose,
    plot_study,
    run_study,
    sample_archs,
    study_points,
)
from frugalml.composer.cache import ResultCache

ROOT = Path(__file__).resolve().parents[2]
TINY = {"primitives": "AM", "layers": 2, "tasks": "recall", "steps": 30, "width": 8, "seeds": "0,1,2"}


def test_agreement_reports_the_top_half_and_top1_stability():
    gen = np.random.default_rng(0)
    archs = [f"a{i}" for i in range(8)]
    truth = np.arange(8.0)
    by_seed = {s: dict(zip(archs, truth + gen.normal(0, 0.1, 8), strict=True)) for s in range(3)}
    a = agreement(by_seed, archs)
    assert a["pairwise_rho"] > 0.9 and a["top_half_pairwise_rho"] > 0.5
    assert a["top1_stability"] == 1.0 and set(a["top1_by_seed"].values()) == {"a7"}
    # a space where half the architectures fail: high overall rho, chance among the better half
    noise = {s: dict(zip(archs, np.r_[np.zeros(4), 1 + gen.random(4)], strict=True)) for s in range(3)}
    b = agreement(noise, archs)
    assert b["pairwise_rho"] > b["top_half_pairwise_rho"] + 0.3


def test_top1_stability_of_a_tie_between_seeds_is_partial():
    table = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert 0.4 < top1_stability(table, resamples=4000) < 0.95


def _table_command(cache: Path, out: Path) -> list[str]:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    return [sys.executable, str(ROOT / "benchmarks/composer/make_tabular.py"), *args, "--name", "tiny",
            "--cache", str(cache), "--out", str(out)]  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_table_build_resumes_after_sigkill_and_equals_an_uninterrupted_build(tmp_path, capsys):
    cache = tmp_path / "cache.sqlite"
    child = subprocess.Popen(_table_command(cache, tmp_path), stdout=subprocess.PIPE, text=True)
    printed = []
    try:
        while len(printed) < 5:
            line = child.stdout.readline()
            assert line, f"the build ended before it was killed (rc {child.poll()})"
            printed.append(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL and not (tmp_path / "tabular_tiny.json").exists()
    stored = ResultCache(cache)
    done_before = {(r.arch, r.seed): r.score for r in stored.all()}
    stored.close()
    assert 5 <= len(done_before) < 12

    build_table(TableSettings(**TINY, name="tiny", cache=str(cache)), tmp_path)
    fresh_lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("seed ")]
    assert len(fresh_lines) == 12 - len(done_before)  # only the missing evaluations ran
    resumed = json.loads((tmp_path / "tabular_tiny.json").read_text())
    assert all(resumed["scores_by_seed"][str(s)][a] == v for (a, s), v in done_before.items())

    again = tmp_path / "again"
    build_table(TableSettings(**TINY, name="tiny", cache=str(again / "c.sqlite")), again)
    scratch = json.loads((again / "tabular_tiny.json").read_text())
    assert scratch["scores_by_seed"] == resumed["scores_by_seed"]
    assert resumed["seeds"] == [0, 1, 2] and resumed["stopped"] == "complete"
    for key in ("pairwise_rho", "top_half_pairwise_rho", "top1_stability", "spearman_brown"):
        assert key in resumed["agreement"]
    assert 0 < resumed["cpu_seconds_per_evaluation"] and resumed["evaluation_cpu_seconds_total"] > 0


def test_study_points_vary_one_factor_at_a_time():
    points = study_points(StudyBase(), {"steps": (100, 300), "tasks": ("recall",), "lm_steps": (50,)})
    assert [p.label for p in points] == ["base=100 steps", "steps=300", "tasks=recall", "lm_steps=50"]
    assert points[1].proxy.train.steps == 300 and points[0].proxy.train.steps == 100
    assert [t.name for t in points[2].proxy.tasks] == ["recall"] and points[3].proxy.name == "lm"
    with pytest.raises(InvalidInputError, match="unknown study factor"):
        study_points(StudyBase(), {"depth": (3,)})
    with pytest.raises(InvalidInputError, match="sample needs"):
        sample_archs("AM", 2, 5)


def test_a_small_study_records_reliability_and_cost_and_resumes_from_its_cache(tmp_path):
    base = StudyBase(tasks="recall", steps=10, width=8)
    points = study_points(base, {"steps": (20,)})
    run = StudyRun("AM", 2, 4, "0,1", cache=str(tmp_path / "s.sqlite"), log=lambda _: None)
    records, stopped = run_study(run, points)
    assert stopped == "complete" and len(records) == 2
    for r in records:
        assert -1 <= r.ours <= 1 and r.spread["cpu_seconds_per_arch"] > 0
        assert set(r.spread["scores_by_seed"]) == {"0", "1"} and len(r.spread["archs"]) == 4
    again = StudyRun("AM", 2, 4, "0,1", cache=str(tmp_path / "s.sqlite"), log=lambda _: None)
    records2, _ = run_study(again, points)
    assert again.spent == 0 and [r.ours for r in records2] == [r.ours for r in records]
    choice = choose(records, target=-1.0)
    assert choice["chosen"] is not None and choice["chosen_cpu_seconds_per_arch"] > 0
    assert choose(records, target=2.0)["chosen"] is None
    assert plot_study(records, tmp_path / "study.png").stat().st_size > 1000
    with pytest.raises(InvalidInputError, match="at least two"):
        run_study(StudyRun("AM", 2, 4, "0", log=lambda _: None), points)


def test_a_study_stops_at_its_cpu_budget(tmp_path):
    points = study_points(StudyBase(tasks="recall", steps=5, width=8), {"steps": (6,)})
    run = StudyRun("AM", 2, 3, "0,1", cpu_minutes=0.0, cache=str(tmp_path / "s.sqlite"), log=lambda _: None)
    records, stopped = run_study(run, points)
    assert records == [] and "CPU budget" in stopped


def test_a_table_on_the_byte_lm_proxy_is_the_study_setting_and_stores_its_agreement(tmp_path):
    from frugalml.composer.bench.proxy_study import make_proxy
    from frugalml.composer.cache import config_key

    study = make_proxy(StudyBase(), "lm_steps", 100)
    lm = TableSettings(proxy_kind="lm", steps=100, width=32, seq_len=64, lr=3e-3).proxy()
    assert config_key(lm.name, lm.config()) == config_key(study.name, study.config())
    with pytest.raises(InvalidInputError, match="'mad' or 'lm'"):
        TableSettings(proxy_kind="other").proxy()
    tiny = TableSettings(
        primitives="AM", layers=1, steps=3, width=8, seq_len=16, lr=3e-3, seeds="0,1", proxy_kind="lm",
        name="lm", cache=str(tmp_path / "c.sqlite"),
    )  # fmt: skip
    doc = json.loads(build_table(tiny, tmp_path).read_text())
    assert doc["proxy"] == "lm" and doc["seeds"] == [0, 1] and "validation loss" in doc["score"]
    assert set(doc["per_task"]["A"]) == {"val_loss"} and doc["scores"]["A"] == pytest.approx(
        -doc["per_task"]["A"]["val_loss"]
    )
    assert "pairwise_rho" in doc["agreement"] and doc["cpu_seconds_per_evaluation"] > 0
