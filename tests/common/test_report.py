from frugalml.common.report import Record, merge_json, read_json, read_records


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


def test_merge_with_a_custom_rule_and_read_records(tmp_path):
    path = tmp_path / "results.json"
    merge_json([_record("fidelity a", 1.0), _record("fidelity b", 1.0), _record("speed", 1.0)], path)
    kept = merge_json(
        [_record("fidelity c", 3.0)], path, replaces=lambda r: r.workload.startswith("fidelity")
    )
    assert kept == 1
    records = read_records(path)
    assert [r.workload for r in records] == ["speed", "fidelity c"]
    assert isinstance(records[1], Record) and records[1].ours == 3.0 and records[1].ratio == 2.0 / 3.0
