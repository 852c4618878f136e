"""The six MAD synthetic tasks (Poli et al. 2024) as seeded numpy generators, published and CPU presets.

Every task returns ``inputs`` and ``targets`` (N, T) int64 arrays; ``targets`` holds the token to
predict at each position, or ``IGNORE`` (-100) where nothing is scored. Compression instead scores
the decoding of the whole sequence from the last position's state (see :class:`MADTask`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from frugalml.common.errors import InvalidInputError
from frugalml.common.seeding import rng

IGNORE = -100
TASKS = ("recall", "fuzzy_recall", "noisy_recall", "selective_copy", "compression", "memorization")


@dataclass(frozen=True)
class MADTask:
    """One MAD task setting.

    Parameters
    ----------
    name : str
        One of :data:`TASKS`.
    vocab_size : int
        Content vocabulary (keys take the first half, values the second, for the recall tasks).
    seq_len : int
        Length of each training sequence.
    num_train, num_test : int
        Sequences in the training and test sets.
    noise : float
        Fraction of noise tokens (``noisy_recall``).
    motif : int
        Longest key/value motif (``fuzzy_recall``).
    copy : int
        Tokens to copy (``selective_copy``).
    """

    name: str
    vocab_size: int = 16
    seq_len: int = 128
    num_train: int = 12_800
    num_test: int = 1_280
    noise: float = 0.2
    motif: int = 3
    copy: int = 16

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise InvalidInputError(f"unknown MAD task {self.name!r}; choose one of: {', '.join(TASKS)}")
        if self.vocab_size < 4 or self.vocab_size % 2:
            raise InvalidInputError(f"vocab_size must be even and >= 4, got {self.vocab_size}")
        if self.seq_len < 8:
            raise InvalidInputError(f"seq_len must be at least 8, got {self.seq_len}")
        if self.num_train < 1 or self.num_test < 1:
            raise InvalidInputError("num_train and num_test must be positive")
        if not 0.0 <= self.noise < 1.0:
            raise InvalidInputError(f"noise must be in [0, 1), got {self.noise}")
        if self.name == "selective_copy" and not 0 < self.copy < self.seq_len // 2:
            raise InvalidInputError(f"copy must be in (0, seq_len/2), got {self.copy}")
        if self.motif < 1:
            raise InvalidInputError(f"motif must be at least 1, got {self.motif}")

    @property
    def model_vocab(self) -> int:
        """Vocabulary the model needs: content tokens plus the task's special tokens."""
        extra = {"noisy_recall": self.vocab_size, "selective_copy": 2, "compression": 1, "memorization": 1}
        return self.vocab_size + extra.get(self.name, 0)

    def to_dict(self) -> dict:
        return asdict(self)

    def generate(self, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """``((train_inputs, train_targets), (test_inputs, test_targets))`` for this seed."""
        gen = rng(seed)
        make = _GENERATORS[self.name]
        if self.name == "memorization":  # one fixed key -> value map shared by train and test
            table = gen.integers(self.vocab_size // 2, self.vocab_size, self.vocab_size // 2)
            return (make(self, self.num_train, gen, table), make(self, self.num_test, gen, table))
        return make(self, self.num_train, gen), make(self, self.num_test, gen)


def _first_seen(ids: np.ndarray) -> np.ndarray:
    """Per row, True where the id occurs for the first time in that row."""
    order = np.argsort(ids, axis=1, kind="stable")
    ordered = np.take_along_axis(ids, order, axis=1)
    first_sorted = np.ones_like(ids, dtype=bool)
    first_sorted[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


def _shift(tokens: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Next-token pairs: inputs ``tokens[:, :-1]``, targets ``tokens[:, 1:]`` where scored."""
    targets = np.where(scored[:, 1:], tokens[:, 1:], IGNORE)
    return tokens[:, :-1].copy(), targets


def _recall_tokens(task: MADTask, n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of key-value pairs (a fresh map per row) and where a value follows an already-seen key."""
    half = task.vocab_size // 2
    pairs = (task.seq_len + 1) // 2 + 1
    keys = gen.integers(0, half, (n, pairs))
    table = gen.integers(half, task.vocab_size, (n, half))
    values = np.take_along_axis(table, keys, axis=1)
    tokens = np.stack([keys, values], axis=2).reshape(n, -1)
    scored = np.stack([np.zeros_like(keys, dtype=bool), ~_first_seen(keys)], axis=2).reshape(n, -1)
    return tokens[:, : task.seq_len + 1], scored[:, : task.seq_len + 1]


def _recall(task: MADTask, n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _shift(*_recall_tokens(task, n, gen))


def _noisy_recall(task: MADTask, n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    clean, clean_scored = _recall_tokens(task, n, gen)
    noise = gen.random(clean.shape) < task.noise
    noise[:, 0] = False
    source = np.cumsum(~noise, axis=1) - 1  # clean token shown at each position
    rows = np.arange(n)[:, None]
    noise_tokens = gen.integers(task.vocab_size, 2 * task.vocab_size, clean.shape)
    tokens = np.where(noise, noise_tokens, clean[rows, source])
    scored = ~noise & clean_scored[rows, source]
    return _shift(tokens, scored)


def _fuzzy_recall(task: MADTask, n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    half, length = task.vocab_size // 2, task.seq_len + 1
    motifs = max(2, half)
    pairs = length // 2 + 1
    key_len = gen.integers(1, task.motif + 1, (n, motifs))
    val_len = gen.integers(1, task.motif + 1, (n, motifs))
    key_tok = gen.integers(0, half, (n, motifs, task.motif))
    val_tok = gen.integers(half, task.vocab_size, (n, motifs, task.motif))
    pick = gen.integers(0, motifs, (n, pairs))
    seen = ~_first_seen(pick)
    slot = np.arange(task.motif)
    rows = np.arange(n)[:, None]
    k_tokens, v_tokens = key_tok[rows, pick], val_tok[rows, pick]  # (n, pairs, motif)
    k_valid = slot < key_len[rows, pick][..., None]
    v_valid = slot < val_len[rows, pick][..., None]
    tokens = np.concatenate([k_tokens, v_tokens], axis=2).reshape(n, -1)
    valid = np.concatenate([k_valid, v_valid], axis=2).reshape(n, -1)
    scored = np.concatenate([np.zeros_like(k_valid), v_valid & seen[..., None]], axis=2).reshape(n, -1)
    keep = np.argsort(~valid, axis=1, kind="stable")[:, :length]  # drop padding, keep order
    return _shift(np.take_along_axis(tokens, keep, 1), np.take_along_axis(scored, keep, 1))


def _selective_copy(task: MADTask, n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    blank, start = task.vocab_size, task.vocab_size + 1
    body = task.seq_len - task.copy
    content = gen.integers(0, task.vocab_size, (n, task.copy))
    where = np.sort(np.argsort(gen.random((n, body)), axis=1)[:, : task.copy], axis=1)
    tokens = np.full((n, task.seq_len + 1), blank, dtype=np.int64)
    np.put_along_axis(tokens, where, content, axis=1)
    tokens[:, body] = start
    tokens[:, body + 1 :] = content
    scored = np.zeros_like(tokens, dtype=bool)
    scored[:, body + 1 :] = True
    return _shift(tokens, scored)


def _compression(task: MADTask, n: int, gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    tokens = gen.integers(0, task.vocab_size, (n, task.seq_len))
    tokens[:, -1] = task.vocab_size  # the compression token; its state must encode the sequence
    return tokens, tokens[:, :-1].copy()


def _memorization(
    task: MADTask, n: int, gen: np.random.Generator, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    keys = gen.integers(0, task.vocab_size // 2, (n, task.seq_len // 2))
    inputs = np.stack([keys, np.full_like(keys, task.vocab_size)], axis=2).reshape(n, -1)
    targets = np.stack([np.full_like(keys, IGNORE), table[keys]], axis=2).reshape(n, -1)
    return inputs, targets


_GENERATORS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "recall": _recall,
    "fuzzy_recall": _fuzzy_recall,
    "noisy_recall": _noisy_recall,
    "selective_copy": _selective_copy,
    "compression": _compression,
    "memorization": _memorization,
}

PUBLISHED: dict[str, MADTask] = {
    "recall": MADTask("recall", vocab_size=16, seq_len=128),
    "fuzzy_recall": MADTask("fuzzy_recall", vocab_size=16, seq_len=128, motif=3),
    "noisy_recall": MADTask("noisy_recall", vocab_size=32, seq_len=128, noise=0.2),
    "selective_copy": MADTask("selective_copy", vocab_size=16, seq_len=256, copy=16),
    "compression": MADTask("compression", vocab_size=16, seq_len=32),
    "memorization": MADTask("memorization", vocab_size=256, seq_len=32),
}
"""The MAD baseline settings (12,800 training sequences each)."""

CPU: dict[str, MADTask] = {
    "recall": MADTask("recall", vocab_size=16, seq_len=32, num_train=2048, num_test=256),
    "fuzzy_recall": MADTask("fuzzy_recall", vocab_size=16, seq_len=32, motif=2, num_train=2048, num_test=256),
    "noisy_recall": MADTask(
        "noisy_recall", vocab_size=16, seq_len=32, noise=0.2, num_train=2048, num_test=256
    ),
    "selective_copy": MADTask(
        "selective_copy", vocab_size=16, seq_len=32, copy=4, num_train=2048, num_test=256
    ),
    "compression": MADTask("compression", vocab_size=16, seq_len=12, num_train=2048, num_test=256),
    "memorization": MADTask("memorization", vocab_size=64, seq_len=16, num_train=2048, num_test=256),
}
"""A small preset that trains in seconds per task on one CPU core."""

PRESETS = {"published": PUBLISHED, "cpu": CPU}


def preset(name: str, tasks: tuple[str, ...] | list[str] | None = None) -> list[MADTask]:
    """The tasks of a preset (``"published"`` or ``"cpu"``), optionally only some of them."""
    if name not in PRESETS:
        raise InvalidInputError(f"unknown MAD preset {name!r}; choose one of: {', '.join(PRESETS)}")
    chosen = list(tasks) if tasks else list(TASKS)
    for t in chosen:
        if t not in TASKS:
            raise InvalidInputError(f"unknown MAD task {t!r}; choose from: {', '.join(TASKS)}")
    return [PRESETS[name][t] for t in chosen]
