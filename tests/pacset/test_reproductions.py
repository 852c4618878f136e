"""pacset's checks for ``frugal reproduce``: one quick run's claim fields."""

from pathlib import Path

from frugalml.pacset.bench.reproduce import reproductions

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def test_quick_checks_cost_carries_claim_fields(tmp_path):
    check = {r.name: r for r in reproductions()}["validation-cost"]
    (record,) = check.run("quick", tmp_path)
    assert record.claim == "pacset/checks-at-open-cost"
    assert record.verdict in ("reproduced", "not reproduced")
    assert record.paper_statement and record.reason and record.command
    assert record.peer and record.peer_value and record.peer_value > 0
    assert (tmp_path / "validation-cost.json").is_file()


def test_fresh_process_rows_never_replace_in_process_rows(tmp_path):
    from frugalml.common.report import merge_json, read_records
    from frugalml.pacset.bench.fresh import FRESH_METRIC, fresh_record
    from frugalml.pacset.bench.protocol import Contender, latency_record

    def contender(name):
        return Contender(name, tmp_path / "f", lambda x: x, [0.1, 0.2], [3, 4], [0, 0], [True, True])

    ours, peer = contender("pacset bin+blockwise"), contender("sklearn joblib.load+predict")
    path = tmp_path / "cold.json"
    merge_json([latency_record("RF", ours, peer)], path)
    merge_json([fresh_record("RF", ours, peer)], path)
    metrics = sorted(r.metric for r in read_records(path))
    assert metrics == ["cold query latency (pacset bin+blockwise)", f"{FRESH_METRIC} (pacset bin+blockwise)"]


def test_stored_cold_queries_keep_both_kinds_of_row():
    from frugalml.common.report import read_records

    records = read_records(RESULTS / "pacset" / "cold-queries.json")
    keys = [(r.workload, r.metric, r.peer) for r in records]
    assert len(keys) == len(set(keys))
    for r in records:
        assert r.metric.startswith("fresh-process") == ("fresh process: each trial" in r.notes), r.metric
    rf = [
        r.metric
        for r in records
        if r.workload == "synthetic RF 150k rows" and r.peer == "sklearn joblib.load+predict"
    ]
    assert any(m.startswith("cold query latency") for m in rf) and any(
        m.startswith("fresh-process") for m in rf
    )
