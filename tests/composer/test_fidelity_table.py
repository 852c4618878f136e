"""Fidelity of tables against the finished LM runs of a fidelity run's runs file."""

import json

import pytest

from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError
from frugalml.composer.bench.fidelity_table import read_runs, table_fidelity

ARCHS = ["AAA", "AAM", "AMA", "AMM", "MAA", "MAM", "MMA", "MMM"]


def _table(tmp_path, name, scores):
    path = tmp_path / f"{name}.json"
    path.write_text(
        json.dumps({"space": {"primitives": "AM", "layers": 3}, "scores": scores, "seeds": [0, 1]})
    )
    return str(path)


def _runs(tmp_path, losses, planned=ARCHS, stack=2):
    runs = {
        f"{a * stack}@64": {
            "non_embedding_params": 1000 * (i + 1),
            "runs": [
                {"seed": s, "val_loss": v, "seconds": 10.0, "cpu_seconds": 5.0}
                for s, v in zip((0, 1), lv, strict=True)
            ],
        }
        for i, (a, lv) in enumerate(losses.items())
    }
    doc = {
        "settings": {"width": 64, "steps": 50, "seeds": [0, 1]},
        "runs": runs,
        "picks": planned,
        "stack": stack,
    }
    path = tmp_path / "x-runs.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_table_that_orders_the_lm_losses_has_rho_one_and_the_ceiling_is_reported(tmp_path):
    done = ARCHS[:5]
    losses = {a: [2.0 - 0.1 * i, 2.0 - 0.1 * i + (0.01 if i % 2 else -0.01)] for i, a in enumerate(done)}
    good = _table(tmp_path, "good", {a: float(i) for i, a in enumerate(ARCHS)})
    bad = _table(tmp_path, "bad", {a: float(-i) for i, a in enumerate(ARCHS)})
    runs = _runs(tmp_path, losses)
    assert read_runs(runs).done == done
    recs = table_fidelity(runs, [good, bad])
    assert [round(r.ours, 6) for r in recs] == [1.0, -1.0, 1.0]
    assert "5 of 8 archs, stacked x2" in recs[0].workload and recs[0].spread["archs"] == done
    assert recs[-1].workload.startswith("noise ceiling: LM seed 0 vs seed 1")
    assert "0.01 CPU-h" in recs[0].notes  # 10 runs x 5 CPU-s


def test_too_few_finished_runs_missing_and_damaged_files_are_one_line_errors(tmp_path):
    table = _table(tmp_path, "t", {a: 0.0 for a in ARCHS})
    runs = _runs(tmp_path, {a: [1.0, 1.0] for a in ARCHS[:3]})
    with pytest.raises(InvalidInputError, match="3 finished"):
        table_fidelity(runs, [table])
    with pytest.raises(DataNotFoundError):
        read_runs(tmp_path / "nothing.json")
    for text in [
        "{",
        "[]",
        '{"settings": {}}',
        json.dumps({"settings": {"width": 1, "steps": 1, "seeds": []}}),
    ]:
        (tmp_path / "bad-runs.json").write_text(text)
        with pytest.raises(CorruptFileError):
            read_runs(tmp_path / "bad-runs.json")
    nan = _runs(tmp_path, {a: [float("nan"), 1.0] for a in ARCHS[:4]})
    with pytest.raises(CorruptFileError, match="finite"):
        read_runs(nan)


def test_a_rank_mean_of_tables_and_a_caveat_in_every_record(tmp_path):
    done = ARCHS[:6]
    losses = {a: [2.0 - 0.1 * i, 2.0 - 0.1 * i] for i, a in enumerate(done)}
    runs = _runs(tmp_path, losses)
    good = _table(tmp_path, "good", {a: float(i) for i, a in enumerate(ARCHS)})
    flat = _table(tmp_path, "flat", {a: float(i % 2) for i, a in enumerate(ARCHS)})
    recs = table_fidelity(runs, [f"{good}+{flat}", good], caveat="built after the others were seen")
    assert recs[0].workload.startswith("proxy fidelity: rank mean of good + flat vs LM loss")
    assert recs[0].spread["table"] == "good + flat"
    assert 0.7 < recs[0].ours < 1.0 and round(recs[1].ours, 6) == 1.0  # the flat table blurs the ranks
    assert all(r.notes.startswith("built after the others were seen. ") for r in recs)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"space": {"primitives": "AL", "layers": 1}, "scores": {"A": 0, "L": 1}}))
    with pytest.raises(InvalidInputError, match="same space"):
        table_fidelity(runs, [f"{good}+{other}"])
