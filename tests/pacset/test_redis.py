"""The Redis block store against a real redis-server: equal predictions, key reads, clear errors."""

import numpy as np
import pytest

from frugalml.common.errors import CorruptFileError, ServiceUnavailableError
from frugalml.pacset import LAYOUTS, PackedForest, open_packed, pack, upload_to_redis
from tests.pacset.conftest import IMPORTERS, with_nan
from tests.pacset.test_runtime import assert_same_outputs

pytestmark = pytest.mark.net


def model_keys(client, prefix: str) -> str:
    """Where the current version of an uploaded model's keys live."""
    return f"{prefix}:v:{client.get(f'{prefix}:current').decode()}"


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
    keys = model_keys(client, "bad")
    block = bytearray(client.get(f"{keys}:block:0"))
    block[5] ^= 0xFF
    client.set(f"{keys}:block:0", bytes(block))
    with PackedForest.from_redis(redis_url, "bad") as model:
        with pytest.raises(CorruptFileError, match="checksum"):
            model.predict(cls_data[0][:2])
    client.delete(f"{keys}:block:0")
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


def test_blocks_of_another_model_are_refused(rf, cls_data, tmp_path, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    for name in ("victim", "other"):
        pack(rf, tmp_path / f"{name}.pacset", bins=2, interleave=1)
        upload_to_redis(open_packed(tmp_path / f"{name}.pacset"), redis_url, name)
    victim, other = model_keys(client, "victim"), model_keys(client, "other")
    n = min(10, open_packed(tmp_path / "victim.pacset").meta["n_blocks"])
    for b in range(n):
        client.set(f"{victim}:block:{b}", client.get(f"{other}:block:{b}"))
    with PackedForest.from_redis(redis_url, "victim") as model:
        with pytest.raises(CorruptFileError, match="another model"):
            model.predict(cls_data[0][:20])


@pytest.mark.parametrize(
    "meta, message",
    [(b"xy", "corrupt"), (b"[1]" + b"\0" * 4, "corrupt"), (None, "no packed model")],
)
def test_damaged_meta_and_foreign_index(rf, tmp_path, redis_url, meta, message):
    import redis

    client = redis.Redis.from_url(redis_url)
    pack(rf, tmp_path / "m.pacset")
    upload_to_redis(open_packed(tmp_path / "m.pacset"), redis_url, "dmg")
    keys = model_keys(client, "dmg")
    if meta is None:
        client.delete(f"{keys}:meta")
    else:
        client.set(f"{keys}:meta", meta)
    with pytest.raises(CorruptFileError, match=message):
        PackedForest.from_redis(redis_url, "dmg")
    upload_to_redis(open_packed(tmp_path / "m.pacset"), redis_url, "dmg")
    client.set(f"{model_keys(client, 'dmg')}:index", b"\1" * 100)
    with pytest.raises(CorruptFileError, match="index"):
        PackedForest.from_redis(redis_url, "dmg")


def test_upload_switches_versions_atomically(rf, cls_data, tmp_path, redis_url):
    import redis
    from sklearn.ensemble import RandomForestClassifier

    client = redis.Redis.from_url(redis_url)
    X, y = cls_data
    second = RandomForestClassifier(5, random_state=1).fit(X, y)
    pack(rf, tmp_path / "a.pacset")
    pack(second, tmp_path / "b.pacset")
    upload_to_redis(open_packed(tmp_path / "a.pacset"), redis_url, "live")
    first_keys = model_keys(client, "live")
    with PackedForest.from_redis(redis_url, "live") as before:
        upload_to_redis(open_packed(tmp_path / "b.pacset"), redis_url, "live")
        assert model_keys(client, "live") != first_keys
        # A reader that opened the old version still reads it (its keys expire after a minute).
        np.testing.assert_array_equal(before.predict_proba(X[:20]), rf.predict_proba(X[:20]))
    assert 0 < client.ttl(f"{first_keys}:meta") <= 60
    with PackedForest.from_redis(redis_url, "live") as after:
        np.testing.assert_array_equal(after.predict_proba(X[:20]), second.predict_proba(X[:20]))


def test_acl_user_and_password_never_echoed(rf, cls_data, tmp_path, redis_url, capsys):
    import redis

    from tests.pacset.test_cli import run

    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", "packer", "on", ">s3cret-pw", "~*", "+@all")
    admin.execute_command("ACL", "SETUSER", "nokeys", "on", ">other-pw", "~nothing:*", "+@all")
    host = redis_url.split("//")[1]
    good = f"redis://packer:s3cret-pw@{host}"
    pack(rf, tmp_path / "m.pacset")
    code, out, err = run(["pacset", "upload", str(tmp_path / "m.pacset"), "--redis", good], capsys)
    assert code == 0 and "s3cret-pw" not in out + err and "packer:***@" in out
    with PackedForest.from_redis(good, "m") as model:
        np.testing.assert_array_equal(model.predict_proba(cls_data[0][:5]), rf.predict_proba(cls_data[0][:5]))
    for url, message in (
        (f"redis://packer:wrong-pw@{host}", "credentials"),
        (f"redis://nokeys:other-pw@{host}", "ACL"),
    ):
        np.save(tmp_path / "x.npy", cls_data[0][:2])
        code, out, err = run(["pacset", "predict", "m", str(tmp_path / "x.npy"), "--redis", url], capsys)
        assert code == 2 and message in err and "pw" not in out + err, err
        assert len(err.strip().splitlines()) == 1


def test_tls_url(rf, cls_data, tmp_path, tls_redis_url):
    pack(rf, tmp_path / "m.pacset")
    upload_to_redis(open_packed(tmp_path / "m.pacset"), tls_redis_url, "tls")
    with PackedForest.from_redis(tls_redis_url, "tls") as model:
        np.testing.assert_array_equal(model.predict_proba(cls_data[0][:5]), rf.predict_proba(cls_data[0][:5]))
    plain = tls_redis_url.replace("rediss://", "redis://").split("?")[0]
    with pytest.raises(ServiceUnavailableError, match="rediss:// for TLS"):
        PackedForest.from_redis(plain, "tls")


def test_models_uploaded_without_versions_still_load(rf, cls_data, tmp_path, redis_url):
    """Uploads from before versioned keys wrote ``{prefix}:meta``, ``:index`` and ``:block:{i}``."""
    import redis

    client = redis.Redis.from_url(redis_url)
    pack(rf, tmp_path / "m.pacset")
    upload_to_redis(open_packed(tmp_path / "m.pacset"), redis_url, "tmp-old")
    keys = model_keys(client, "tmp-old")
    for key in client.scan_iter(match=f"{keys}:*"):
        client.set("legacy" + key.decode()[len(keys) :], client.get(key))
    with PackedForest.from_redis(redis_url, "legacy") as model:
        np.testing.assert_array_equal(model.predict_proba(cls_data[0][:5]), rf.predict_proba(cls_data[0][:5]))


def test_blocks_of_another_upload_of_the_same_model_are_refused(rf, cls_data, tmp_path, redis_url):
    """Each upload mixes its own nonce into every block's seal: blocks of two uploads of one packed
    file cannot be mixed, in either direction, and a copied metadata key is caught too."""
    import redis

    client = redis.Redis.from_url(redis_url)
    path = tmp_path / "same.pacset"
    pack(rf, path, bins=2, interleave=1)
    upload_to_redis(open_packed(path), redis_url, "first")
    upload_to_redis(open_packed(path), redis_url, "second")
    first, second = model_keys(client, "first"), model_keys(client, "second")
    n = open_packed(path).meta["n_blocks"]
    for b in range(n):  # same model, same bytes but for the seal word
        one, two = client.get(f"{first}:block:{b}"), client.get(f"{second}:block:{b}")
        assert one[:-8] == two[:-8] and one[-8:] != two[-8:]
    rng = np.random.default_rng(0)
    X = cls_data[0][:40]
    refused = 0
    for trial in range(8):  # swap every block, or a few random ones, from the other upload
        upload_to_redis(open_packed(path), redis_url, "victim")
        victim = model_keys(client, "victim")
        swapped = list(range(n)) if trial == 0 else rng.choice(n, size=1 + trial % 3, replace=False).tolist()
        for b in swapped:
            client.set(f"{victim}:block:{b}", client.get(f"{first}:block:{b}"))
        with PackedForest.from_redis(redis_url, "victim", cache_blocks=n) as model:
            try:
                model.predict_proba(X)
            except CorruptFileError as exc:
                assert "another" in str(exc)
                refused += 1
            else:  # only a walk that never read a swapped block may answer
                assert all(model.store.block_slot[b] < 0 for b in swapped), swapped
                assert trial > 0
    assert refused >= 4
    client.set(f"{model_keys(client, 'victim')}:meta", client.get(f"{first}:meta"))
    with pytest.raises(CorruptFileError, match="another upload"):
        PackedForest.from_redis(redis_url, "victim")
    with PackedForest.from_redis(redis_url, "second") as model:
        np.testing.assert_array_equal(model.predict_proba(X), rf.predict_proba(X))
