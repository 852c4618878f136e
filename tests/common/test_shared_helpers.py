"""Shared helpers: thread limits, the array store, comma lists, lazy exports, the redis launcher."""

import json
import sys
import types

import numpy as np
import pytest

from frugalml.common import files
from frugalml.common.arrays import load_arrays, save_arrays
from frugalml.common.errors import CorruptFileError, InvalidInputError, ServiceUnavailableError
from frugalml.common.exports import lazy_exports
from frugalml.common.parsing import comma_list
from frugalml.common.redis_server import redis_server
from frugalml.common.threads import blas_threads, check_threads, numba_threads, torch_threads, usable_cores


def test_array_store_round_trip(tmp_path):
    arrays = {
        "a": np.arange(6, dtype=np.int32).reshape(2, 3),
        "b": np.linspace(0, 1, 5),
        "e": np.zeros((0, 4)),
    }
    save_arrays(tmp_path / "x.bin", b"TESTARR", 2, {"note": "hi"}, arrays)
    meta, back = load_arrays(tmp_path / "x.bin", b"TESTARR", 2)
    assert meta == {"note": "hi"}
    for name, value in arrays.items():
        np.testing.assert_array_equal(back[name], value)
        assert back[name].dtype == value.dtype and back[name].flags.writeable


def test_array_store_reads_sequential_index_without_offsets(tmp_path):
    a, b = np.arange(3.0), np.arange(4, dtype=np.int64)
    index = [{"name": n, "dtype": x.dtype.str, "shape": list(x.shape)} for n, x in (("a", a), ("b", b))]
    files.write_container(tmp_path / "old.bin", b"TESTARR", 1, {"arrays": index}, [a.tobytes(), b.tobytes()])
    _, back = load_arrays(tmp_path / "old.bin", b"TESTARR", 1)
    np.testing.assert_array_equal(back["b"], b)


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "a", "dtype": "<f8", "shape": [10**12], "offset": 0},  # claims far more than the payload
        {"name": "a", "dtype": "|O", "shape": [1], "offset": 0},  # object arrays would unpickle
        {"name": "a", "dtype": "<f8", "shape": [-1], "offset": 0},
        {"name": "a", "dtype": "<f8", "shape": [1], "offset": 0, "nbytes": 999},
        {"name": "a", "dtype": "nonsense", "shape": [1]},
        {"dtype": "<f8", "shape": [1]},
    ],
)
def test_array_store_rejects_crafted_index(tmp_path, entry):
    files.write_container(tmp_path / "bad.bin", b"TESTARR", 1, {"arrays": [entry]}, [np.zeros(1).tobytes()])
    with pytest.raises(CorruptFileError, match="damaged array index"):
        load_arrays(tmp_path / "bad.bin", b"TESTARR", 1)


def test_array_store_rejects_truncated_file_and_missing_index(tmp_path):
    path = tmp_path / "x.bin"
    save_arrays(path, b"TESTARR", 1, {}, {"a": np.arange(100.0)})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorruptFileError):
        load_arrays(path, b"TESTARR", 1)
    files.write_container(tmp_path / "noindex.bin", b"TESTARR", 1, {"x": 1}, [b""])
    with pytest.raises(CorruptFileError, match="no array index"):
        load_arrays(tmp_path / "noindex.bin", b"TESTARR", 1)


def test_comma_list_rules():
    assert comma_list(" 1, 2 ,,3 ", int) == [1, 2, 3]
    assert comma_list(None) == [] and comma_list("") == []
    assert comma_list("0.5,0.75", float) == [0.5, 0.75]
    with pytest.raises(InvalidInputError, match="'x'"):
        comma_list("1,x", int, name="count")
    with pytest.raises(InvalidInputError, match="unknown peer 'foo'"):
        comma_list("rf,foo", allowed=["rf", "knn"], name="peer")
    with pytest.raises(InvalidInputError, match="at least one"):
        comma_list(" , ", non_empty=True)


def test_thread_limits_restore():
    assert usable_cores() >= 1
    assert check_threads(None) is None and check_threads(np.int64(3)) == 3
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(InvalidInputError):
            check_threads(bad)
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    with numba_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    from threadpoolctl import threadpool_info

    with blas_threads(1):
        assert all(lib["num_threads"] == 1 for lib in threadpool_info() if lib["user_api"] == "blas")


def test_lazy_exports(monkeypatch):
    package = types.ModuleType("fake_wing")
    monkeypatch.setitem(sys.modules, "fake_wing", package)
    monkeypatch.setitem(sys.modules, "fake_wing.core", types.SimpleNamespace(thing=42))
    public, getattr_, dir_ = lazy_exports("fake_wing", {"core": ("thing",)})
    assert public == ["thing"] and dir_() == ["thing"]
    assert getattr_("thing") == 42 and package.thing == 42
    with pytest.raises(AttributeError, match="nothing"):
        getattr_("nothing")
    with pytest.raises(ValueError, match="two modules"):
        lazy_exports("fake_wing", {"a": ("x",), "b": ("x",)})


@pytest.mark.net
def test_redis_server_starts_and_stops():
    pytest.importorskip("redis")
    import redis

    try:
        with redis_server() as url:
            client = redis.Redis.from_url(url)
            assert client.ping()
            client.set("k", json.dumps([1]))
    except ServiceUnavailableError as exc:
        pytest.skip(str(exc))
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()


def test_result_notes_name_this_machine_not_a_fixed_one():
    from frugalml.common import env

    cpu = env.cpu()
    assert (
        env.machine()
        == f"{cpu['usable_cores'] or cpu['cores']} usable of {cpu['cores']} cores ({cpu['model']})"
    )
    assert "load average" in env.machine(load=True)


def test_array_store_keeps_zero_dimensional_arrays(tmp_path):
    save_arrays(tmp_path / "s.bin", b"TESTARR", 1, {}, {"step": np.array(3.0, dtype=np.float32)})
    _, back = load_arrays(tmp_path / "s.bin", b"TESTARR", 1)
    assert back["step"].shape == () and back["step"] == 3.0
