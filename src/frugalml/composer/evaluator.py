"""Score candidate architectures on a proxy: cached results first, the rest through an executor.

Executors run independent evaluations: :class:`InlineExecutor` (this process),
:class:`LocalExecutor` (a process pool, the default) and :class:`RayExecutor` (a Ray cluster,
one machine or many). Each result is stored in the :class:`ResultCache` as soon as it arrives.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

import numpy as np

from frugalml.common.errors import InvalidInputError, PeerUnavailableError, ServiceUnavailableError
from frugalml.common.validate import one_of
from frugalml.composer.cache import ResultCache, config_key
from frugalml.composer.lifeline import die_with_parent
from frugalml.composer.model import check_arch


def run_job(job: tuple[Any, str, int]) -> dict:
    """Evaluate ``(proxy, arch, seed)``; a module-level function so every executor can ship it.

    The metrics gain ``cpu_seconds``: the CPU time of the process that ran the evaluation.
    """
    proxy, arch, seed = job
    start, cpu_start = time.perf_counter(), time.process_time()
    metrics = proxy.evaluate(arch, seed)
    metrics["cpu_seconds"] = time.process_time() - cpu_start
    return {
        "arch": arch,
        "seed": seed,
        "score": float(metrics.pop("score")),
        "metrics": metrics,
        "seconds": time.perf_counter() - start,
    }


class Executor(Protocol):
    """Runs ``fn`` over ``jobs`` and yields results as they complete (in any order)."""

    def map(self, fn: Callable[[Any], dict], jobs: list) -> Iterator[dict]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Runs jobs one after another in this process (tests, debugging, the demo)."""

    def map(self, fn: Callable[[Any], dict], jobs: list) -> Iterator[dict]:
        for job in jobs:
            yield fn(job)

    def close(self) -> None:
        pass


class LocalExecutor:
    """A pool of ``workers`` local processes (spawned, so torch state is never forked).

    The workers die with the process that started them, even when it is killed with SIGKILL
    (see :func:`die_with_parent`), so a killed search leaves no training process behind.
    """

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise InvalidInputError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[Any], dict], jobs: list) -> Iterator[dict]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=die_with_parent,
                initargs=(os.getpid(), threading.current_thread() is threading.main_thread()),
            )
        futures = [self._pool.submit(fn, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool as exc:
            self._pool = None
            raise ServiceUnavailableError(
                f"a worker process died ({exc}); results finished so far are cached, run the same "
                "command again to resume"
            ) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Runs jobs as Ray tasks, on a local Ray instance or a cluster (``address="auto"``).

    Parameters
    ----------
    address : str, optional
        A running cluster's address; None starts a local Ray instance.
    num_cpus : int, optional
        CPUs of the local instance (ignored when joining a cluster).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise PeerUnavailableError(
                "the Ray executor needs ray; pip install 'frugalml[composer]'"
            ) from None
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    num_cpus=None if address else num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    ignore_reinit_error=True,
                )
            except (ConnectionError, RuntimeError) as exc:
                raise ServiceUnavailableError(
                    f"cannot start or reach Ray at {address or 'local'}: {exc}"
                ) from None
        self._started_here = True

    def map(self, fn: Callable[[Any], dict], jobs: list) -> Iterator[dict]:
        ray = self._ray
        remote = ray.remote(num_cpus=1)(fn)
        pending = [remote.remote(job) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(done[0])
            except ray.exceptions.RayError as exc:
                raise ServiceUnavailableError(
                    f"a Ray task failed ({type(exc).__name__}: {exc}); finished results are cached, "
                    "run again to resume"
                ) from None

    def close(self) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


EXECUTORS = ("local", "inline", "ray")


def make_executor(name: str = "local", *, workers: int = 1, address: str | None = None) -> Executor:
    """Build an executor by name: ``local`` (process pool), ``inline`` or ``ray``."""
    one_of(name, EXECUTORS, "executor")
    if name == "inline":
        return InlineExecutor()
    if name == "ray":
        return RayExecutor(address=address, num_cpus=workers)
    return LocalExecutor(workers)


class Evaluator:
    """Scores architectures on a proxy, averaging over ``seeds``, through a cache and an executor.

    Attributes
    ----------
    fresh : int
        Evaluations actually run (not answered by the cache).
    cached : int
        (architecture, seed) pairs answered by the cache.
    """

    def __init__(
        self,
        proxy,
        cache: ResultCache | None = None,
        executor: Executor | None = None,
        seeds: Iterable[int] = (0,),
    ):
        self.proxy = proxy
        self.cache = cache if cache is not None else ResultCache()
        self.executor = executor if executor is not None else InlineExecutor()
        self.seeds = tuple(int(s) for s in seeds)
        if not self.seeds:
            raise InvalidInputError("give at least one seed")
        self.config = proxy.config()
        self.key = config_key(proxy.name, self.config)
        self.fresh = 0
        self.cached = 0

    def scores(
        self, archs: Iterable[str], on_result: Callable[[dict], None] | None = None
    ) -> dict[str, float]:
        """Mean score over seeds of each architecture (evaluating only what is not cached)."""
        archs = [check_arch(a) for a in dict.fromkeys(archs)]
        found: dict[tuple[str, int], float] = {}
        todo = []
        for arch in archs:
            for seed in self.seeds:
                hit = self.cache.get(arch, self.proxy.name, self.key, seed)
                if hit is None:
                    todo.append((self.proxy, arch, seed))
                else:
                    found[arch, seed] = hit.score
                    self.cached += 1
        for result in self.executor.map(run_job, todo) if todo else ():
            self.cache.put(
                result["arch"],
                self.proxy.name,
                self.config,
                result["seed"],
                result["score"],
                result["metrics"],
                result["seconds"],
            )
            found[result["arch"], result["seed"]] = result["score"]
            self.fresh += 1
            if on_result is not None:
                on_result(result)
        return {a: float(np.mean([found[a, s] for s in self.seeds])) for a in archs}
