"""Search engines over architecture strings, all behind one ask/tell interface.

``bo`` (ours: GP with an n-gram string kernel + log EI; ``bo-hamming`` and ``bo-mixed`` use the
per-position Hamming kernel or the mixed kernel of :mod:`frugalml.composer.gp`), ``botorch`` (the
same loop on BoTorch's SingleTaskGP with a categorical kernel and LogExpectedImprovement),
``random``, ``evolution`` (regularised evolution, Real et al. 2019), ``tpe`` (Optuna's TPE
sampler, a peer) and ``exhaustive``. ``ask`` proposes one architecture, ``tell`` reports its score
(higher is better).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.common.seeding import rng
from frugalml.common.validate import one_of
from frugalml.composer.gp import StringGP, log_ei
from frugalml.composer.primitives import PRIMITIVES


@dataclass(frozen=True)
class Space:
    """All strings of ``layers`` symbols over ``primitives`` (Z^N candidates)."""

    primitives: str
    layers: int

    def __post_init__(self) -> None:
        if not self.primitives or len(set(self.primitives)) != len(self.primitives):
            raise InvalidInputError(f"primitives must be distinct symbols, got {self.primitives!r}")
        unknown = [p for p in self.primitives if p not in PRIMITIVES]
        if unknown:
            raise InvalidInputError(f"unknown primitive(s) {unknown}; registered: {''.join(PRIMITIVES)}")
        if self.layers < 1:
            raise InvalidInputError(f"layers must be at least 1, got {self.layers}")

    @property
    def size(self) -> int:
        return len(self.primitives) ** self.layers

    def encode(self, archs: list[str]) -> np.ndarray:
        index = {p: i for i, p in enumerate(self.primitives)}
        try:
            return np.array([[index[c] for c in a] for a in archs], dtype=np.int64).reshape(
                len(archs), self.layers
            )
        except (KeyError, ValueError):
            raise InvalidInputError(f"some of {archs[:3]} are not in the space {self}") from None

    def decode(self, codes: np.ndarray) -> list[str]:
        return ["".join(self.primitives[i] for i in row) for row in np.asarray(codes)]

    def sample(self, gen: np.random.Generator, n: int) -> np.ndarray:
        return gen.integers(0, len(self.primitives), (n, self.layers))

    def enumerate(self) -> list[str]:
        return ["".join(p) for p in itertools.product(self.primitives, repeat=self.layers)]


class Engine:
    """Base class: remembers what was told; subclasses choose what to ask."""

    def __init__(self, space: Space, seed: int = 0):
        self.space = space
        self.seed = seed
        self.gen = rng(seed)
        self.history: dict[str, float] = {}
        self.pending: set[str] = set()

    def ask(self) -> str:
        """Propose an architecture (one not evaluated and not pending, for all but ``tpe``)."""
        raise NotImplementedError

    def propose(self) -> str:
        """``ask`` and mark the answer pending, so a batch of asks gives distinct candidates."""
        arch = self.ask()
        self.pending.add(arch)
        return arch

    def tell(self, arch: str, score: float) -> None:
        if not np.isfinite(score):
            raise InvalidInputError(f"score of {arch!r} is {score}; engines need finite scores")
        self.history[arch] = float(score)
        self.pending.discard(arch)

    def _seen(self, arch: str) -> bool:
        return arch in self.history or arch in self.pending

    @property
    def exhausted(self) -> bool:
        return len(self.history) + len(self.pending) >= self.space.size

    def _random_unseen(self, tries: int = 1000) -> str:
        for _ in range(tries):
            arch = self.space.decode(self.space.sample(self.gen, 1))[0]
            if not self._seen(arch):
                return arch
        unseen = [a for a in self.space.enumerate() if not self._seen(a)]
        if not unseen:
            raise InvalidInputError("every architecture of the space has been evaluated")
        return unseen[self.gen.integers(len(unseen))]


class RandomSearch(Engine):
    """Uniform sampling without replacement."""

    def ask(self) -> str:
        return self._random_unseen()


class Exhaustive(Engine):
    """Every architecture, in lexicographic order of the primitives given."""

    def __init__(self, space: Space, seed: int = 0):
        super().__init__(space, seed)
        self._order = itertools.product(space.primitives, repeat=space.layers)

    def ask(self) -> str:
        for combo in self._order:
            arch = "".join(combo)
            if not self._seen(arch):
                return arch
        raise InvalidInputError("every architecture of the space has been evaluated")


class RegularizedEvolution(Engine):
    """Aging evolution: mutate the best of a random sample of the population; the oldest dies."""

    def __init__(self, space: Space, seed: int = 0, population: int = 10, sample: int = 3):
        super().__init__(space, seed)
        if population < 2 or not 1 <= sample <= population:
            raise InvalidInputError("evolution needs population >= 2 and 1 <= sample <= population")
        self.population_size, self.sample_size = population, sample
        self.population: deque[tuple[str, float]] = deque()

    def tell(self, arch: str, score: float) -> None:
        super().tell(arch, score)
        self.population.append((arch, float(score)))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def ask(self) -> str:
        if len(self.population) < self.population_size:
            return self._random_unseen()
        picks = self.gen.choice(len(self.population), self.sample_size, replace=False)
        parent = max((self.population[i] for i in picks), key=lambda p: p[1])[0]
        for _ in range(50):
            symbols = list(parent)
            pos = self.gen.integers(self.space.layers)
            symbols[pos] = self.gen.choice(
                [p for p in self.space.primitives if p != symbols[pos]] or list(self.space.primitives)
            )
            child = "".join(symbols)
            if not self._seen(child):
                return child
            parent = child
        return self._random_unseen()


class _BayesOpt(Engine):
    """Shared loop: random initial design, then the unseen candidate of highest log EI."""

    def __init__(self, space: Space, seed: int = 0, initial: int = 4, pool: int = 4096):
        super().__init__(space, seed)
        if not 1 <= initial <= space.size:
            raise InvalidInputError(
                f"initial must be between 1 and the {space.size:,} architectures of the space, got {initial}"
            )
        self.initial, self.pool = initial, pool

    def _candidates(self) -> np.ndarray:
        if self.space.size <= 65536:
            archs = [a for a in self.space.enumerate() if not self._seen(a)]
            return self.space.encode(archs)
        codes = self.space.sample(self.gen, self.pool)
        best = sorted(self.history, key=self.history.__getitem__, reverse=True)[:8]
        neighbours: list[np.ndarray] = []
        for row in self.space.encode(best):  # every single mutation of the top 8
            for pos in range(self.space.layers):
                for sym in range(len(self.space.primitives)):
                    if sym != row[pos]:
                        nb = row.copy()
                        nb[pos] = sym
                        neighbours.append(nb)
        mutants = np.array(neighbours, dtype=np.int64).reshape(-1, self.space.layers)
        codes = np.unique(np.concatenate([codes, mutants]), axis=0)
        keep = [not self._seen(a) for a in self.space.decode(codes)]
        return codes[np.array(keep, dtype=bool)]

    def _scores(self, observed: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def ask(self) -> str:
        if len(self.history) < self.initial:
            return self._random_unseen()
        candidates = self._candidates()
        if len(candidates) == 0:
            return self._random_unseen()
        archs = list(self.history)
        acq = self._scores(self.space.encode(archs), np.array([self.history[a] for a in archs]), candidates)
        return self.space.decode(candidates[[int(np.argmax(acq))]])[0]


ACQUISITIONS = ("log-ei", "ucb", "thompson")


class GPBayesOpt(_BayesOpt):
    """Our GP Bayesian optimisation: a :class:`StringGP` and an acquisition over unseen candidates.

    ``acquisition``: ``log-ei`` (log expected improvement), ``ucb`` (mean + ``beta`` std) or
    ``thompson`` (the argmax of one joint posterior draw). The defaults (n-gram string kernel,
    log EI, 2 random initial points) had the lowest mean evaluations-to-top-1 of the 27 variants of
    ``benchmarks/composer/bo_ablation.py`` on the tabular benchmark ``AM_6`` over seeds 0-39; they
    were then frozen and evaluated on fresh seeds 1000-1099
    (``benchmarks/results/composer/fresh-am-6.json``).
    """

    def __init__(
        self,
        space: Space,
        seed: int = 0,
        kernel: str = "string",
        initial: int = 2,
        pool: int = 4096,
        copula: bool = True,
        acquisition: str = "log-ei",
        beta: float = 2.0,
    ):
        super().__init__(space, seed, initial, pool)
        self.kernel, self.copula = kernel, copula
        self.acquisition = one_of(acquisition, ACQUISITIONS, "acquisition")
        self.beta = beta
        StringGP(kernel)  # validate the kernel name now

    def _scores(self, observed: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if self.copula:  # Gaussian copula of the ranks: one outlier no longer flattens the rest
            y = norm.ppf((rankdata(y) - 0.5) / len(y))
        gp = StringGP(self.kernel, len(self.space.primitives), seed=self.seed).fit(observed, y)
        if self.acquisition == "thompson":
            return gp.sample(candidates, self.gen)
        mean, std = gp.predict(candidates)
        if self.acquisition == "ucb":
            return mean + self.beta * std
        return log_ei(mean, std, float(y.max()))


class BoTorchBayesOpt(_BayesOpt):
    """The same loop on BoTorch: SingleTaskGP with a CategoricalKernel and LogExpectedImprovement.

    ``threads``: torch intra-op threads during each fit and acquisition (restored afterwards). The
    GP holds at most a few hundred points, so one thread gives the same proposals at a fraction of
    the CPU time (one search of ``ALCSM_3`` on a busy 2-core machine: 5.2 CPU-s with one thread,
    52 CPU-s with torch's default two).
    """

    def __init__(self, space: Space, seed: int = 0, initial: int = 4, pool: int = 4096, threads: int = 1):
        try:
            import botorch  # noqa: F401
        except ImportError:
            raise PeerUnavailableError("the botorch engine needs botorch; pip install botorch") from None
        super().__init__(space, seed, initial, pool)
        if not 1 <= threads <= 1024:
            raise InvalidInputError(f"threads must be between 1 and 1024, got {threads}")
        self.threads = threads

    def _scores(self, observed: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._fit_and_score(observed, y, candidates)
        finally:
            torch.set_num_threads(before)

    def _fit_and_score(self, observed: np.ndarray, y: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        import torch
        from botorch.acquisition import LogExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.kernels.categorical import CategoricalKernel
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.kernels import ScaleKernel
        from gpytorch.mlls import ExactMarginalLogLikelihood

        torch.manual_seed(self.seed + len(y))
        x = torch.tensor(observed, dtype=torch.float64)
        t = torch.tensor(y, dtype=torch.float64)[:, None]
        model = SingleTaskGP(
            x,
            t,
            covar_module=ScaleKernel(CategoricalKernel(ard_num_dims=x.shape[1])),
            outcome_transform=Standardize(m=1),
        )
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acq = LogExpectedImprovement(model, best_f=t.max())
        with torch.no_grad():
            cand = torch.tensor(candidates, dtype=torch.float64)[:, None, :]
            return torch.cat([acq(chunk) for chunk in cand.split(2048)]).numpy()


class OptunaTPE(Engine):
    """Optuna's TPE sampler with its defaults (the peer); one categorical parameter per layer."""

    def __init__(self, space: Space, seed: int = 0):
        try:
            import optuna
        except ImportError:
            raise PeerUnavailableError("the tpe engine needs optuna; pip install optuna") from None
        super().__init__(space, seed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._pending: dict[str, list] = {}

    def ask(self) -> str:
        trial = self.study.ask()
        arch = "".join(
            trial.suggest_categorical(f"layer{i}", list(self.space.primitives))
            for i in range(self.space.layers)
        )
        self._pending.setdefault(arch, []).append(trial)
        return arch

    def tell(self, arch: str, score: float) -> None:
        super().tell(arch, score)
        trials = self._pending.pop(arch, [])
        if not trials:  # an architecture the sampler did not propose: add it as a finished trial
            dist = self._optuna.distributions.CategoricalDistribution(list(self.space.primitives))
            self.study.add_trial(
                self._optuna.trial.create_trial(
                    params={f"layer{i}": c for i, c in enumerate(arch)},
                    distributions={f"layer{i}": dist for i in range(self.space.layers)},
                    value=score,
                )
            )
        for trial in trials:
            self.study.tell(trial, score)


ENGINES = ("bo", "bo-hamming", "bo-mixed", "botorch", "random", "evolution", "tpe", "exhaustive")
BO_KERNELS = {"bo": "string", "bo-hamming": "hamming", "bo-mixed": "mixed"}


def make_engine(name: str, space: Space, seed: int = 0, **options) -> Engine:
    """Build an engine by name (see :data:`ENGINES`)."""
    one_of(name, ENGINES, "engine")
    if name in BO_KERNELS:
        options.setdefault("kernel", BO_KERNELS[name])
        return GPBayesOpt(space, seed, **options)
    if name == "botorch":
        return BoTorchBayesOpt(space, seed, **options)
    if name == "evolution":
        return RegularizedEvolution(space, seed, **options)
    if name == "tpe":
        return OptunaTPE(space, seed)
    if name == "exhaustive":
        return Exhaustive(space, seed)
    return RandomSearch(space, seed)
