"""MAD task generators: shapes, seeding, and that every scored target is determined by the input."""

import numpy as np
import pytest

from frugalml.common.errors import InvalidInputError
from frugalml.composer.mad import CPU, IGNORE, PUBLISHED, TASKS, MADTask, preset


@pytest.mark.parametrize("name", TASKS)
def test_generators_are_seeded_and_in_vocab(name):
    task = CPU[name]
    (x, y), (xt, yt) = task.generate(3)
    (x2, y2), _ = task.generate(3)
    (x3, _), _ = task.generate(4)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and not np.array_equal(x, x3)
    assert x.shape[0] == task.num_train and xt.shape[0] == task.num_test
    assert 0 <= x.min() and x.max() < task.model_vocab
    scored = y[y != IGNORE]
    assert scored.size > 0 and 0 <= scored.min() and scored.max() < task.model_vocab


def test_recall_targets_are_values_of_keys_seen_before():
    (x, y), _ = MADTask("recall", vocab_size=16, seq_len=32, num_train=50, num_test=5).generate(0)
    for row_x, row_y in zip(x, y, strict=True):
        table = {}
        for t in range(len(row_x)):
            if row_x[t] < 8 and t + 1 < len(row_x):
                key, value = row_x[t], row_x[t + 1]
                if row_y[t] != IGNORE:
                    assert table[key] == row_y[t] == value
                elif t % 2 == 0:
                    assert key not in table
                table.setdefault(key, value)


def test_selective_copy_targets_are_the_content_in_order():
    task = MADTask("selective_copy", vocab_size=16, seq_len=32, copy=4, num_train=20, num_test=2)
    (x, y), _ = task.generate(0)
    for row_x, row_y in zip(x, y, strict=True):
        content = row_x[:28][row_x[:28] < 16]
        assert list(row_y[row_y != IGNORE]) == list(content)


def test_memorization_map_is_shared_by_train_and_test():
    (x, y), (xt, yt) = CPU["memorization"].generate(1)
    pairs = {}
    for xs, ys in ((x, y), (xt, yt)):
        keys, values = xs[:, 0::2].ravel(), ys[:, 1::2].ravel()
        for k, v in zip(keys, values, strict=True):
            assert pairs.setdefault(k, v) == v


def test_noisy_recall_has_noise_tokens_and_clean_targets():
    (x, y), _ = CPU["noisy_recall"].generate(0)
    assert (x >= 16).mean() == pytest.approx(0.2, abs=0.03)
    assert y[y != IGNORE].max() < 16


def test_compression_targets_are_the_sequence():
    (x, y), _ = CPU["compression"].generate(0)
    assert np.array_equal(x[:, :-1], y) and (x[:, -1] == 16).all()


def test_published_settings():
    assert PUBLISHED["recall"].num_train == 12_800 and PUBLISHED["memorization"].vocab_size == 256
    assert PUBLISHED["selective_copy"].seq_len == 256


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(name="nope"),
        dict(name="recall", vocab_size=7),
        dict(name="recall", seq_len=2),
        dict(name="recall", noise=1.5),
        dict(name="selective_copy", seq_len=16, copy=10),
    ],
)
def test_bad_settings(kwargs):
    with pytest.raises(InvalidInputError):
        MADTask(**kwargs)


def test_bad_preset():
    with pytest.raises(InvalidInputError):
        preset("gpu")
    with pytest.raises(InvalidInputError):
        preset("cpu", ["recall", "sorting"])
