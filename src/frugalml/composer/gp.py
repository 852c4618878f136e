"""Gaussian-process regression over architecture strings and the log expected improvement.

Kernels: ``hamming`` (exponentiated Hamming distance with one relevance per layer position, as in
COMBO / CoCaBO) and ``string`` (an RBF over normalised n-gram counts, i.e. a spectrum kernel that
sees composition and local order regardless of position). Hyperparameters maximise the log
marginal likelihood (L-BFGS with analytic gradients, a few restarts). ``log_ei`` follows
Ament et al. 2023 ("Unexpected improvements to expected improvement"), stable far in the tail.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from scipy.special import erfcx, log_ndtr

from frugalml.common.seeding import rng
from frugalml.common.threads import blas_threads
from frugalml.common.validate import one_of

KERNELS = ("hamming", "string", "mixed")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_h(z: np.ndarray) -> np.ndarray:
    """``log(phi(z) + z * Phi(z))``, accurate for every z (the log of EI at unit scale)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    mid = z > -1
    zm = z[mid]
    out[mid] = np.log(np.exp(-0.5 * zm**2 - _LOG_SQRT_2PI) + zm * np.exp(log_ndtr(zm)))
    zt = z[~mid]
    tail = -0.5 * zt**2 - _LOG_SQRT_2PI
    far = zt < -1e6
    near = ~far
    out_t = np.empty_like(zt)
    out_t[near] = tail[near] + np.log1p(
        -np.abs(zt[near]) * erfcx(-zt[near] / math.sqrt(2)) * math.sqrt(math.pi / 2)
    )
    out_t[far] = tail[far] - 2 * np.log(np.abs(zt[far]))
    out[~mid] = out_t
    return out


def log_ei(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """Log expected improvement over ``best`` (maximisation) of Gaussian predictions."""
    std = np.maximum(std, 1e-12)
    return log_h((mean - best) / std) + np.log(std)


def ngram_counts(codes: np.ndarray, alphabet: int, n: int) -> np.ndarray:
    """(strings, alphabet**n) counts of every n-gram of each integer-coded string."""
    grams = sum(codes[:, i : codes.shape[1] - n + 1 + i] * alphabet ** (n - 1 - i) for i in range(n))
    counts = np.zeros((len(codes), alphabet**n))
    np.add.at(counts, (np.repeat(np.arange(len(codes)), grams.shape[1]), grams.ravel()), 1.0)
    return counts


def ngram_features(codes: np.ndarray, alphabet: int, max_n: int = 3) -> np.ndarray:
    """Unit-normalised counts of every n-gram (n = 1..max_n) of each integer-coded string."""
    cols = [ngram_counts(codes, alphabet, n) / math.sqrt(n) for n in range(1, min(max_n, codes.shape[1]) + 1)]
    feats = np.concatenate(cols, axis=1)
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def prefix_counts(codes: np.ndarray, alphabet: int) -> np.ndarray:
    """(strings, length * alphabet) share of each symbol among the first i + 1 positions, for every i."""
    onehot = np.eye(alphabet)[codes]
    shares = np.cumsum(onehot, axis=1) / np.arange(1, codes.shape[1] + 1)[None, :, None]
    return shares.reshape(len(codes), -1)


def _sq_dist(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    return np.maximum((fa**2).sum(1)[:, None] + (fb**2).sum(1)[None, :] - 2 * fa @ fb.T, 0.0)


class StringGP:
    """A GP over equal-length integer-coded strings with a Hamming or string kernel.

    Parameters
    ----------
    kernel : str
        ``"hamming"`` or ``"string"``.
    alphabet : int
        Number of distinct symbols.
    restarts : int
        Starting points of the marginal-likelihood optimisation.
    seed : int
        For the restarts.
    """

    def __init__(self, kernel: str = "hamming", alphabet: int = 2, restarts: int = 3, seed: int = 0):
        self.kernel = one_of(kernel, KERNELS, "kernel")
        self.alphabet = alphabet
        self.restarts = restarts
        self.seed = seed

    def _distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(groups, Na, Nb) distances, each group with its own relevance in the kernel.

        ``hamming``: one per-position mismatch per layer; ``string``: one squared distance of
        normalised n-gram counts; ``mixed``: the per-position mismatches, then a squared distance per
        n-gram order (composition n = 1, adjacent pairs n = 2, triples n = 3), then one of the
        prefix shares (how many of each primitive sit in the first i layers: early vs late).
        """
        hamming = (a.T[:, :, None] != b.T[:, None, :]).astype(float) / a.shape[1]
        if self.kernel == "hamming":
            return hamming
        if self.kernel == "string":
            fa, fb = ngram_features(a, self.alphabet), ngram_features(b, self.alphabet)
            return np.maximum(2 - 2 * fa @ fb.T, 0.0)[None]
        groups = [hamming]
        for n in range(1, min(3, a.shape[1]) + 1):
            scale = 2.0 * (a.shape[1] - n + 1) ** 2
            groups.append(
                _sq_dist(ngram_counts(a, self.alphabet, n), ngram_counts(b, self.alphabet, n))[None] / scale
            )
        groups.append(
            _sq_dist(prefix_counts(a, self.alphabet), prefix_counts(b, self.alphabet))[None]
            / (2.0 * a.shape[1])
        )
        return np.concatenate(groups)

    def _gram(self, dist: np.ndarray, log_theta: np.ndarray) -> np.ndarray:
        return np.exp(-np.tensordot(np.exp(log_theta), dist, axes=1))

    def _neg_lml(self, params: np.ndarray, dist: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        log_theta, log_sf, log_sn = params[:-2], params[-2], params[-1]
        base = self._gram(dist, log_theta)
        sf, sn = math.exp(2 * log_sf), math.exp(2 * log_sn)
        k = sf * base + (sn + 1e-8) * np.eye(len(y))
        try:
            c = cho_factor(k, lower=True)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(params)
        alpha = cho_solve(c, y)
        nll = 0.5 * y @ alpha + np.log(np.diag(c[0])).sum() + 0.5 * len(y) * math.log(2 * math.pi)
        w = np.outer(alpha, alpha) - cho_solve(c, np.eye(len(y)))  # dNLL/dK = -w / 2
        grad = np.empty_like(params)
        theta = np.exp(log_theta)
        for i in range(len(theta)):
            grad[i] = -0.5 * np.sum(w * (sf * base * (-theta[i] * dist[i])))
        grad[-2] = -0.5 * np.sum(w * (2 * sf * base))
        grad[-1] = -0.5 * np.trace(w) * 2 * sn
        return float(nll), grad

    def fit(self, codes: np.ndarray, y: np.ndarray) -> StringGP:
        """Fit hyperparameters and condition on (codes, y); y is standardised internally."""
        with blas_threads(1):  # tiny matrices: BLAS threads only add contention
            return self._fit(codes, y)

    def _fit(self, codes: np.ndarray, y: np.ndarray) -> StringGP:
        self.x_ = np.asarray(codes)
        y = np.asarray(y, dtype=float)
        self.y_mean_, self.y_std_ = y.mean(), y.std() if y.std() > 0 else 1.0
        ys = (y - self.y_mean_) / self.y_std_
        dist = self._distances(self.x_, self.x_)
        gen = rng(self.seed)
        best = None
        for r in range(self.restarts):
            theta0 = np.full(len(dist), 0.0) if r == 0 else gen.normal(0.0, 1.0, len(dist))
            start = np.concatenate([theta0, [0.0, math.log(0.1) if r == 0 else gen.uniform(-4, 0)]])
            bounds = [(-5.0, 5.0)] * len(dist) + [(-3.0, 3.0), (-6.0, 1.0)]
            res = minimize(self._neg_lml, start, args=(dist, ys), jac=True, method="L-BFGS-B", bounds=bounds)
            if best is None or res.fun < best.fun:
                best = res
        p = best.x
        self.log_theta_, self.signal_, self.noise_ = p[:-2], math.exp(2 * p[-2]), math.exp(2 * p[-1])
        k = self.signal_ * self._gram(dist, self.log_theta_) + (self.noise_ + 1e-8) * np.eye(len(ys))
        self._chol = cho_factor(k, lower=True)
        self._alpha = cho_solve(self._chol, ys)
        return self

    def predict(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function (original units)."""
        with blas_threads(1):
            return self._predict(codes)

    def _predict(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ks = self.signal_ * self._gram(self._distances(np.asarray(codes), self.x_), self.log_theta_)
        mean = ks @ self._alpha
        v = cho_solve(self._chol, ks.T)
        var = np.maximum(self.signal_ - np.sum(ks * v.T, axis=1), 1e-12)
        return mean * self.y_std_ + self.y_mean_, np.sqrt(var) * self.y_std_

    def sample(self, codes: np.ndarray, gen: np.random.Generator) -> np.ndarray:
        """One joint draw of the latent function at ``codes`` from the posterior (original units)."""
        with blas_threads(1):
            codes = np.asarray(codes)
            ks = self.signal_ * self._gram(self._distances(codes, self.x_), self.log_theta_)
            kss = self.signal_ * self._gram(self._distances(codes, codes), self.log_theta_)
            cov = kss - ks @ cho_solve(self._chol, ks.T)
            vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
            draw = ks @ self._alpha + vecs @ (np.sqrt(np.maximum(vals, 0.0)) * gen.standard_normal(len(vals)))
            return draw * self.y_std_ + self.y_mean_


def all_codes(alphabet: int, length: int) -> np.ndarray:
    """Every string of ``length`` over ``alphabet`` symbols, as rows of integer codes."""
    return np.array(list(itertools.product(range(alphabet), repeat=length)), dtype=np.int64)
