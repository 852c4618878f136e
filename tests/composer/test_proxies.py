"""The MAD and LM proxies train real models: scores are in range, seeded, and learning happens."""

import numpy as np
import pytest

from frugalml.common.corpus import stdlib_bytes
from frugalml.common.errors import DataNotFoundError, InvalidInputError
from frugalml.composer import LMProxy, MADProxy, MADTask, ModelShape, TrainConfig
from frugalml.composer.corpus import load_corpus

TINY = ModelShape(width=16, heads=2, kv_heads=1)


def _mad(name: str, steps: int = 30, **kw) -> MADProxy:
    task = MADTask(name, num_train=256, num_test=64, **kw)
    return MADProxy(
        tasks=(task,),
        shape=TINY,
        train=TrainConfig(steps=steps, batch_size=32, learning_rates=(1e-2,), evals=1),
    )


def test_mad_proxy_is_seeded_and_in_range():
    proxy = _mad("recall", vocab_size=8, seq_len=16)
    a, b = proxy.evaluate("AM", 0), proxy.evaluate("AM", 0)
    assert a == b and 0 <= a["score"] <= 1 and set(a["per_task"]) == {"recall"}


def test_attention_learns_memorization_beyond_chance():
    proxy = _mad("memorization", steps=150, vocab_size=16, seq_len=8)
    assert proxy.evaluate("AM", 0)["score"] > 3 / 8  # chance is 1/8


def test_compression_head_runs():
    assert 0 <= _mad("compression", vocab_size=8, seq_len=8).evaluate("MA", 1)["score"] <= 1


def test_lm_proxy_on_the_stdlib_corpus():
    proxy = LMProxy(
        max_bytes=50_000,
        seq_len=32,
        shape=TINY,
        train=TrainConfig(steps=30, batch_size=16, learning_rates=(1e-2,)),
    )
    result = proxy.evaluate("AM", 0)
    assert -np.log(256) < result["score"] < -1.0  # learnt something, not better than 1 nat
    assert result["kv_cache_bytes"] > 0 and result["tokens_per_s"] > 0


def test_corpora(shared_data, tmp_path):
    assert len(stdlib_bytes(10_000)) == 10_000
    shakespeare = load_corpus(str(shared_data / "corpora" / "tinyshakespeare.txt"), max_bytes=5000)
    assert shakespeare.dtype == np.uint8 and len(shakespeare) == 5000
    with pytest.raises(DataNotFoundError):
        load_corpus(str(tmp_path / "missing.txt"))
    (tmp_path / "short.txt").write_text("too short")
    with pytest.raises(InvalidInputError, match="at least 1024"):
        load_corpus(str(tmp_path / "short.txt"))


def test_bad_training_settings():
    with pytest.raises(InvalidInputError):
        TrainConfig(steps=0)
    with pytest.raises(InvalidInputError):
        TrainConfig(learning_rates=())
    with pytest.raises(InvalidInputError):
        MADProxy(tasks=())


def test_lm_proxy_device_is_part_of_the_cache_key_only_off_cpu():
    assert "device" not in LMProxy().config()
    assert LMProxy(device="cuda").config()["device"] == "cuda"


@pytest.mark.gpu
def test_lm_proxy_on_a_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    proxy = LMProxy(
        max_bytes=50_000,
        seq_len=32,
        shape=TINY,
        device="cuda",
        train=TrainConfig(steps=30, batch_size=16, learning_rates=(1e-2,)),
    )
    assert -np.log(256) < proxy.evaluate("AM", 0)["score"] < -1.0
