"""Device catalogue, pools, traces and churn inputs: values, sources and clear errors."""

import numpy as np
import pytest
import yaml

from frugalml.cleave.devices import DEFAULT_MIX, ParameterServer, load_catalogue, load_pool, make_pool
from frugalml.cleave.traces import load_traces
from frugalml.common.errors import CorruptFileError, DataNotFoundError, InvalidInputError


def test_builtin_catalogue_has_every_kind_with_a_source():
    cat = load_catalogue()
    assert {c.kind for c in cat.values()} == {"phone", "laptop", "edge", "desktop", "cloud"}
    for c in cat.values():
        assert len(c.source) > 20
        assert c.flops == pytest.approx(c.tflops * 1e12 * c.efficiency)
        assert c.mean_session_s > 0


def _write_catalogue(tmp_path, drop=None, **change):
    doc = {"classes": {"phone": {**load_catalogue()["phone-flagship"].__dict__}}}
    del doc["classes"]["phone"]["name"]
    doc["classes"]["phone"].update(change)
    if drop:
        del doc["classes"]["phone"][drop]
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_catalogue_errors_name_class_and_field(tmp_path):
    with pytest.raises(InvalidInputError, match="'phone' lacks field.*memory_gb"):
        load_catalogue(_write_catalogue(tmp_path, drop="memory_gb"))
    with pytest.raises(InvalidInputError, match="'phone' field 'tflops' must be positive"):
        load_catalogue(_write_catalogue(tmp_path, tflops=-1))
    with pytest.raises(InvalidInputError, match="field 'kind'"):
        load_catalogue(_write_catalogue(tmp_path, kind="toaster"))
    with pytest.raises(InvalidInputError, match="must be a number"):
        load_catalogue(_write_catalogue(tmp_path, up_mbps="fast"))
    with pytest.raises(DataNotFoundError):
        load_catalogue(tmp_path / "missing.yaml")
    assert "phone" in load_catalogue(_write_catalogue(tmp_path))


def test_pool_keeps_the_mix_and_is_reproducible():
    a, b = make_pool(100, seed=3), make_pool(100, seed=3)
    np.testing.assert_array_equal(a.flops, b.flops)
    counts = dict(zip(a.class_names, np.bincount(a.class_index), strict=True))
    assert counts == {k: round(100 * v) for k, v in DEFAULT_MIX.items()}
    same = make_pool(10, {"laptop": 1.0}, jitter=0.0, uplink_ratio=5)
    assert np.all(same.flops == same.flops[0]) and np.allclose(same.up, same.down / 5)
    assert "10 laptop" in same.summary()


def test_pool_errors():
    with pytest.raises(InvalidInputError, match="unknown device class"):
        make_pool(10, {"fridge": 1.0})
    with pytest.raises(InvalidInputError, match="devices must be"):
        make_pool(0)
    with pytest.raises(InvalidInputError, match="mix"):
        make_pool(5, {"laptop": -1})
    with pytest.raises(InvalidInputError, match="nic_gbps"):
        ParameterServer(nic_gbps=0)


def test_pool_yaml(tmp_path):
    path = tmp_path / "pool.yaml"
    path.write_text("devices: 40\nmix: {laptop: 1, phone-flagship: 3}\nseed: 2\nps: {shards: 2}\n")
    pool = load_pool(path)
    assert len(pool) == 40 and pool.ps.shards == 2
    assert len(load_pool(path, devices=8)) == 8
    path.write_text("devices: 4\ncounts: {laptop: 4}\ncolour: blue\n")
    with pytest.raises(InvalidInputError, match="colour"):
        load_pool(path)
    path.write_text("devices: 4\nps: {gpus: 3}\n")
    with pytest.raises(InvalidInputError, match="'ps'"):
        load_pool(path)
    path.write_text("devices: [\n")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        load_pool(path)


def test_real_traces_load_normalised_and_assign_by_family(shared_data):
    traces = load_traces(shared_data / "bandwidth-traces")
    assert len(traces.names) > 100 and set(traces.family) == {0, 1}
    for s, n in zip(traces.start[:5], traces.length[:5], strict=True):
        assert traces.data[s : s + n].mean() == pytest.approx(1.0)
    pool = make_pool(50, seed=1, traces=traces)
    phones = np.array([pool.classes[i].kind == "phone" for i in pool.class_index])
    assert np.all(traces.family[pool.trace_index[phones]] == 0)
    assert np.all(traces.family[pool.trace_index[~phones]] == 1)
    assert np.all((pool.link_factor > 0) & (pool.link_factor <= 1.0 + 1e-9))  # harmonic <= arithmetic mean


def test_corrupt_trace_is_reported(tmp_path):
    (tmp_path / "bus.bad").write_text("0.0\tabc\n1.0\t2.0\n")
    with pytest.raises(CorruptFileError, match="bus.bad"):
        load_traces(tmp_path)
    with pytest.raises(DataNotFoundError):
        load_traces(tmp_path / "nowhere")


def test_the_shipped_mixed_pool_file_loads(shared_data, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("FRUGAL_DATA", str(shared_data))
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "cleave" / "mixed-pool.yaml"
    pool = load_pool(path, devices=64)
    assert len(pool) == 64 and pool.traces is not None and pool.ps.shards == 4
