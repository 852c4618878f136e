"""Resource bounds of the prereq commands: refuse, before any work, sizes that cannot run.

Counts that set how long work runs (EM iterations, training steps, timing rounds) have a ceiling
far above any useful value, and the topic model's least memory (topics x vocabulary, topics x
document pairs) is checked against the memory available now, so a mistyped size is a one-line
:class:`~frugalml.common.errors.InvalidInputError` instead of a process that runs for days or grows
until the kernel kills it.
"""

from __future__ import annotations

from frugalml.common import env
from frugalml.common.errors import InvalidInputError
from frugalml.common.validate import bounded

MAX_EM_ITER = 10_000  # the paper runs <= 100; EM stops earlier when the ELBO settles
MAX_STEPS = 1_000_000  # siamese training steps; PREREQ's default is 1000, the paper's 3500
MAX_ROUNDS = 1_000  # timing rounds and timed iterations of `bench`
MAX_SEED = 2**32 - 1


def check_counts(
    *,
    topics: int | None = None,
    em_iter: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    iters: int | None = None,
    rounds: int | None = None,
) -> None:
    """Refuse counts out of their range, naming the option.

    Examples
    --------
    >>> check_counts(topics=100, em_iter=100, steps=1000, seed=0)
    >>> check_counts(steps=10**9)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.InvalidInputError: --steps must be between 1 and 1,000,000, got 1000000000
    """
    bounds = {
        "topics": (topics, 1, None),  # bounded by memory: check_plda_fits
        "em-iter": (em_iter, 1, MAX_EM_ITER),
        "steps": (steps, 1, MAX_STEPS),
        "seed": (seed, 0, MAX_SEED),
        "iters": (iters, 1, MAX_ROUNDS),
        "rounds": (rounds, 0, MAX_ROUNDS),
    }
    for name, (value, low, high) in bounds.items():
        if value is not None:
            bounded(value, f"--{name}", low, high)


def plda_bytes(n_docs: int, n_words: int, n_pairs: int, topics: int) -> int:
    """The least memory a Pairwise-Link-LDA fit holds: topic-word logs and statistics (float64),
    the two ends' topic responsibilities of every document pair (float32) and the documents'
    topic weights (float64)."""
    return topics * (2 * 8 * n_words + 2 * 4 * n_pairs + 8 * n_docs)


def check_plda_fits(
    n_docs: int, n_words: int, n_pairs: int, topics: int, available: int | None = None
) -> None:
    """Refuse a topic model too large for this machine, naming the most topics that could fit.

    Examples
    --------
    >>> check_plda_fits(654, 47853, 7401, 100, available=2**30)
    >>> check_plda_fits(654, 47853, 7401, 10**8, available=2**34)
    Traceback (most recent call last):
    ...
    frugalml.common.errors.InvalidInputError: a topic model of 100000000 topics needs at least \
77308.0 GiB of memory (654 documents, 47853 words, 7401 document pairs), more than the 16.0 GiB \
available here; use fewer topics (at most about 20,696 here)
    """
    available = env.available_memory() if available is None else available
    need = plda_bytes(n_docs, n_words, n_pairs, topics)
    if need > available:
        most = available // max(plda_bytes(n_docs, n_words, n_pairs, 1), 1)
        raise InvalidInputError(
            f"a topic model of {topics} topics needs at least {need / 2**30:.1f} GiB of memory "
            f"({n_docs} documents, {n_words} words, {n_pairs} document pairs), more than the "
            f"{available / 2**30:.1f} GiB available here; use fewer topics (at most about {most:,} here)"
        )
