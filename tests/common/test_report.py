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


def test_version_2_claims_and_version_1_files(tmp_path):
    import json

    import pytest

    from frugalml.common.errors import CorruptFileError
    from frugalml.common.report import write_json

    claim = Record(
        "demo", "w", "time", "s", 1.0, "peer", 4.0, claim="demo/speed", paper_value=3.0,
        paper_statement="3x faster", paper_source="Table 2", verdict="better than the paper",
        reason="4x measured", command="frugal demo",
    )  # fmt: skip
    path = write_json([claim, _record("plain", 1.0)], tmp_path / "v2.json")
    doc = json.loads(path.read_text())
    assert doc["version"] == 2 and "claim" not in doc["records"][1]
    back = read_records(path)
    assert back[0] == claim and back[1].claim == "" and back[1].verdict == ""
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({"version": 1, "records": [{**doc["records"][1], "ratio": 2.0}]}))
    assert read_records(v1)[0].workload == "plain"
    for bad in ("{", "[]", '{"records": [1]}', '{"version": 9, "records": []}', '{"records": [{"x": 1}]}'):
        v1.write_text(bad)
        with pytest.raises(CorruptFileError):
            read_records(v1)
