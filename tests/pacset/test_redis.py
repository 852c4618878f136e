"""The Redis block store against a real redis-server: equal predictions, key reads, clear errors."""

import numpy as np
import pytest

from frugalml.common.errors import CorruptFileError, ServiceUnavailableError
from frugalml.pacset import LAYOUTS, PackedForest, open_packed, pack, upload_to_redis
from tests.pacset.conftest import IMPORTERS, with_nan
from tests.pacset.test_runtime import assert_same_outputs

pytestmark = pytest.mark.net


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_predict_from_redis(rf, cls_data, tmp_path, redis_url, engine):
    path = tmp_path / "rf.pacset"
    pack(rf, path, bins=2)
    n = upload_to_redis(open_packed(path), redis_url, f"rf-{engine}")
    assert n == open_packed(path).meta["n_blocks"]
    X = cls_data[0][:50]
    with PackedForest.from_redis(redis_url, f"rf-{engine}", engine=engine, cache_blocks=2) as model:
        np.testing.assert_allclose(model.predict_proba(X), rf.predict_proba(X), rtol=1e-6)
        stats = model.store.stats
        assert stats.blocks_fetched >= model.blocks_touched > 0
        assert stats.round_trips >= 1


@pytest.mark.parametrize("kind", IMPORTERS)
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_every_importer_from_redis(packed_models, redis_url, kind, engine):
    model, X, path = packed_models(kind, LAYOUTS[-1])
    prefix = f"{kind}-{engine}"
    upload_to_redis(open_packed(path), redis_url, prefix)
    rows = [X[:60]] if "GradientBoosting" in kind and "Hist" not in kind else [X[:60], with_nan(X[:60])]
    with PackedForest.from_redis(redis_url, prefix, engine=engine, cache_blocks=2) as packed:
        for XX in rows:
            assert_same_outputs(packed, model, XX)


def test_missing_and_corrupt_keys(rf, cls_data, tmp_path, redis_url):
    import redis

    path = tmp_path / "rf.pacset"
    pack(rf, path, bins=1, interleave=0)
    upload_to_redis(open_packed(path), redis_url, "bad")
    client = redis.Redis.from_url(redis_url)
    block = bytearray(client.get("bad:block:0"))
    block[5] ^= 0xFF
    client.set("bad:block:0", bytes(block))
    with PackedForest.from_redis(redis_url, "bad") as model:
        with pytest.raises(CorruptFileError, match="checksum"):
            model.predict(cls_data[0][:2])
    client.delete("bad:block:0")
    with PackedForest.from_redis(redis_url, "bad") as model:
        with pytest.raises(CorruptFileError, match="missing"):
            model.predict(cls_data[0][:2])
    with pytest.raises(CorruptFileError, match="no packed model"):
        PackedForest.from_redis(redis_url, "never-uploaded")


def test_dead_redis_is_service_unavailable(rf, tmp_path):
    from frugalml.common.redis_server import free_port as _free_port

    path = tmp_path / "rf.pacset"
    pack(rf, path)
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    with pytest.raises(ServiceUnavailableError, match="unreachable"):
        upload_to_redis(open_packed(path), dead, "x")
    with pytest.raises(ServiceUnavailableError):
        PackedForest.from_redis(dead, "x")
