from frugalml.common.report import Record, merge_json, read_json


def _record(workload: str, ours: float) -> Record:
    return Record("demo", workload, "time", "s", ours, "peer", 2.0)


def test_merge_replaces_same_key_and_keeps_the_rest(tmp_path):
    path = tmp_path / "results.json"
    assert merge_json([_record("a", 1.0), _record("b", 1.0)], path) == 0  # file created
    assert merge_json([_record("b", 0.5)], path) == 1
    records = {r["workload"]: r for r in read_json(path)}
    assert set(records) == {"a", "b"}
    assert records["b"]["ours"] == 0.5 and records["b"]["ratio"] == 4.0
    assert records["a"]["ours"] == 1.0
