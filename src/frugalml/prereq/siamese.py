"""The PREREQ siamese network: a shared branch over two concept vectors and a pair head (torch).

Branch ``G(x) = l2norm(W2 Dropout(ReLU(BN(W1 x))))``. Heads: ``abs`` (the original,
``|G(a) - G(b)|``: symmetric, so (A, B) and (B, A) always get the same score), ``diff``
(``G(a) - G(b)``), ``concat`` (``[G(a), G(b)]``), ``rich`` (``[G(a), G(b), G(a) - G(b), G(a) * G(b)]``)
and ``bilinear`` (``G(a)^T W G(b)``); all but ``abs`` see the direction of the pair. Inputs are
rescaled by their largest value (``inputs="scale"``, the paper's raw vectors) or log-transformed and
standardised on the training vectors (``"log"``). ``members > 1`` trains an ensemble of networks
(seeds ``seed, seed + 1, ...``, each holding out its own share of the pairs) and averages their
probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from frugalml.common import validate
from frugalml.common.errors import InvalidInputError
from frugalml.common.threads import torch_threads

HEADS = ("abs", "diff", "concat", "rich", "bilinear")
_HEAD_WIDTH = {"abs": 1, "diff": 1, "concat": 2, "rich": 4}
INPUTS = ("scale", "log")
_LOG_FLOOR = 1e-12

# PREREQ's siamese settings, chosen by inner validation (AUC on a held-out 20% of each of the
# authors' first 3 University training folds; the test folds are never used;
# benchmarks/prereq/select_siamese.py, benchmarks/results/prereq/siamese-selection-university.json): the
# paper's symmetric head scored 0.658, signed difference 0.747, concatenation 0.807, the rich head
# 0.810; dropout 0.7 instead of 0.1 lifted it to about 0.82 and an ensemble of 3 seeds to 0.830.
# Each member holds out its own 20% of the training pairs; the threshold is chosen on the
# held-out pairs' out-of-member probabilities.
PREREQ_SIAMESE: dict[str, Any] = {
    "head": "rich",
    "lr": 1e-3,
    "steps": 1000,
    "dropout": 0.7,
    "members": 3,
    "val_fraction": 0.2,
    "threads": 1,
}
PAPER_SIAMESE: dict[str, Any] = {"head": "abs", "lr": 1e-4, "steps": 3500, "val_fraction": 0.0, "threads": 1}


@dataclass
class SiameseConfig:
    """Settings of :class:`SiameseClassifier` (defaults: the PREREQ paper's)."""

    head: str = "abs"
    hidden: int = 512
    dropout: float = 0.1
    lr: float = 1e-4
    steps: int = 3500
    batch_size: int = 128
    inputs: str = "scale"
    val_fraction: float = 0.0
    members: int = 1
    seed: int = 0
    threads: int | None = None

    def check(self) -> None:
        validate.one_of(self.head, HEADS, "head")
        validate.one_of(self.inputs, INPUTS, "inputs")
        if not 0 <= self.val_fraction < 1:
            raise InvalidInputError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if min(self.hidden, self.steps, self.batch_size, self.members) < 1:
            raise InvalidInputError("hidden, steps, batch_size and members must be at least 1")
        if not 0 <= self.dropout < 1:
            raise InvalidInputError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise InvalidInputError(f"lr must be positive, got {self.lr}")


def _build_network(n_features: int, cfg: SiameseConfig):
    import torch
    from torch import nn

    class SiameseNet(nn.Module):
        """Shared branch and a pair head; ``forward(a, b)`` returns logits of (no, yes)."""

        def __init__(self) -> None:
            super().__init__()
            self.branch = nn.Sequential(
                nn.Linear(n_features, n_features),
                nn.BatchNorm1d(n_features),
                nn.ReLU(),
                nn.Dropout(cfg.dropout),
                nn.Linear(n_features, cfg.hidden),
            )
            self.head: nn.Module
            if cfg.head == "bilinear":
                self.head = nn.Bilinear(cfg.hidden, cfg.hidden, 2)
            else:
                self.head = nn.Linear(_HEAD_WIDTH[cfg.head] * cfg.hidden, 2)

        def embed(self, x):
            return nn.functional.normalize(self.branch(x), dim=1)

        def forward(self, a, b):
            ga, gb = self.embed(a), self.embed(b)
            if cfg.head == "abs":
                return self.head(torch.abs(ga - gb))
            if cfg.head == "diff":
                return self.head(ga - gb)
            if cfg.head == "concat":
                return self.head(torch.cat([ga, gb], dim=1))
            if cfg.head == "rich":
                return self.head(torch.cat([ga, gb, ga - gb, ga * gb], dim=1))
            return self.head(ga, gb)

    return SiameseNet()


class SiameseClassifier:
    """Classify concept pairs (A, B) as "B is a prerequisite of A" from their concept vectors.

    sklearn-style: ``fit(XA, XB, y)``, ``predict_proba(XA, XB)``, ``predict(XA, XB)``; the
    decision threshold (``threshold_``) is the one that maximises F1 on a held-out, stratified
    ``val_fraction`` of the training pairs (on the training pairs themselves when it is 0). With
    several ``members`` each network holds out its own share, and the threshold is chosen on
    every held-out pair's mean probability over the members that did not train on it.

    Parameters
    ----------
    head : {"abs", "diff", "concat", "rich", "bilinear"}
        ``abs`` is the original, symmetric head; the others are direction-aware. ``rich`` is a
        linear layer over ``[G(a), G(b), G(a) - G(b), G(a) * G(b)]``: the concatenation plus the
        signed difference (direction-aware) and the element-wise product (symmetric similarity).
    hidden, dropout, lr, steps, batch_size : the paper's architecture and training settings
    inputs : {"scale", "log"}
        ``scale`` divides the vectors by their largest training value (the paper feeds the raw
        p(concept | topic)); ``log`` standardises their logarithms on the training vectors.
    val_fraction : float
        Share of the training pairs held out (not trained on) to choose the threshold.
    members : int
        Networks in the ensemble (seeds ``seed .. seed + members - 1``); probabilities are averaged.
    seed : int
    threads : int, optional
        torch intra-op threads while fitting and predicting (None leaves torch's setting).
    """

    def __init__(
        self,
        head: str = "abs",
        *,
        hidden: int = 512,
        dropout: float = 0.1,
        lr: float = 1e-4,
        steps: int = 3500,
        batch_size: int = 128,
        inputs: str = "scale",
        val_fraction: float = 0.0,
        members: int = 1,
        seed: int = 0,
        threads: int | None = None,
    ):
        self.head = head
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.steps = steps
        self.batch_size = batch_size
        self.inputs = inputs
        self.val_fraction = val_fraction
        self.members = members
        self.seed = seed
        self.threads = threads

    def config(self) -> SiameseConfig:
        cfg = SiameseConfig(**{k: getattr(self, k) for k in SiameseConfig.__dataclass_fields__})
        cfg.check()
        return cfg

    def get_params(self, deep: bool = True) -> dict:
        return asdict(self.config())

    def fit(self, xa, xb, y) -> SiameseClassifier:
        """Train on pairs of concept vectors ``xa[i]``, ``xb[i]`` with labels ``y[i]`` in {0, 1}."""
        import torch

        cfg = self.config()
        xa, xb, y = _check_pairs(xa, xb, y)
        if len(np.unique(y)) < 2:
            raise InvalidInputError("training pairs need both labels 0 and 1")
        holdouts = [_stratified_holdout(y, cfg.val_fraction, cfg.seed + m) for m in range(cfg.members)]
        with torch_threads(cfg.threads):
            self._fit_inputs(np.concatenate([xa, xb]), cfg.inputs)  # unsupervised: all pairs' vectors
            ta, tb = (torch.as_tensor(self._transform(x), dtype=torch.float32) for x in (xa, xb))
            ty = torch.as_tensor(y, dtype=torch.long)
            self.networks_ = [
                _train_network(ta, tb, ty, fit_idx, cfg, cfg.seed + m)
                for m, (fit_idx, _) in enumerate(holdouts)
            ]
            self.n_features_ = xa.shape[1]
            self.threshold_ = self._held_out_threshold(ta, tb, y, holdouts)
        return self

    def _held_out_threshold(self, ta, tb, y: np.ndarray, holdouts) -> float:
        """Best-F1 threshold on the held-out pairs' mean probability over the members that held
        them out (every pair and every member when nothing is held out)."""
        import torch

        total, count = np.zeros(len(y)), np.zeros(len(y))
        with torch.no_grad():
            for net, (_, val_idx) in zip(self.networks_, holdouts, strict=True):
                logits = net(ta[val_idx], tb[val_idx])
                total[val_idx] += torch.softmax(logits, dim=1)[:, 1].double().numpy()
                count[val_idx] += 1
        seen = count > 0
        return best_f1_threshold(y[seen], total[seen] / count[seen])

    def _fit_inputs(self, x: np.ndarray, inputs: str) -> None:
        if inputs == "log":
            logs = np.log(x + _LOG_FLOOR)
            self.shift_, self.scale_ = logs.mean(0), np.maximum(logs.std(0), 1e-6)
        else:
            self.shift_ = np.zeros(x.shape[1])
            self.scale_ = np.maximum(np.abs(x).max(0), 1e-12)

    def _transform(self, x: np.ndarray) -> np.ndarray:
        if self.inputs == "log":
            x = np.log(np.maximum(x, 0) + _LOG_FLOOR)
        return (x - self.shift_) / self.scale_

    def predict_proba(self, xa, xb) -> np.ndarray:
        """Probability that B is a prerequisite of A, one per pair."""
        import torch

        if not hasattr(self, "networks_"):
            raise InvalidInputError("this SiameseClassifier is not fitted yet; call fit() first")
        xa, xb, _ = _check_pairs(xa, xb, None, self.n_features_)
        with torch_threads(self.threads), torch.no_grad():
            ta = torch.as_tensor(self._transform(xa), dtype=torch.float32)
            tb = torch.as_tensor(self._transform(xb), dtype=torch.float32)
            probs = [torch.softmax(net(ta, tb), dim=1)[:, 1] for net in self.networks_]
            return torch.stack(probs).mean(0).double().numpy()

    def predict(self, xa, xb) -> np.ndarray:
        return (self.predict_proba(xa, xb) >= self.threshold_).astype(np.int64)

    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays for saving (weights of every member, input shift and scale, threshold)."""
        arrays = {
            f"net{m}.{k}": v.detach().cpu().numpy()
            for m, net in enumerate(self.networks_)
            for k, v in net.state_dict().items()
        }
        arrays["shift"] = self.shift_
        arrays["scale"] = self.scale_
        arrays["threshold"] = np.asarray([self.threshold_])
        return arrays

    @classmethod
    def from_state(cls, params: dict, arrays: dict[str, np.ndarray]) -> SiameseClassifier:
        import torch

        model = cls(**params)
        model.shift_ = arrays["shift"]
        model.scale_ = arrays["scale"]
        model.threshold_ = float(arrays["threshold"][0])
        model.n_features_ = len(model.scale_)
        # files written before ensembles (one network under "net.") load as a single member
        prefixes = (
            [f"net{m}." for m in range(model.members)]
            if model.members > 1 or any(k.startswith("net0.") for k in arrays)
            else ["net."]
        )
        model.networks_ = []
        for prefix in prefixes:
            net = _build_network(model.n_features_, model.config())
            net.load_state_dict(
                {k[len(prefix) :]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith(prefix)}
            )
            net.eval()
            model.networks_.append(net)
        return model


def _train_network(ta, tb, ty, fit_idx: np.ndarray, cfg: SiameseConfig, seed: int):
    """One member: Adam on mini-batches drawn with replacement from the pairs ``fit_idx``."""
    import torch

    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    net = _build_network(ta.shape[1], cfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    rows = torch.as_tensor(fit_idx)
    net.train()
    for _ in range(cfg.steps):
        idx = rows[torch.as_tensor(gen.integers(0, len(rows), size=cfg.batch_size))]
        loss = torch.nn.functional.cross_entropy(net(ta[idx], tb[idx]), ty[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return net


def _stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, validation): ``fraction`` of each class held out; (all, all) when 0."""
    everything = np.arange(len(y))
    if fraction == 0:
        return everything, everything
    gen = np.random.default_rng(seed)
    held = [
        gen.permutation(np.flatnonzero(y == label))[: int(round(fraction * (y == label).sum()))]
        for label in (0, 1)
    ]
    val = np.sort(np.concatenate(held))
    if min(len(h) for h in held) == 0 or len(val) == len(y):
        raise InvalidInputError(
            f"val_fraction {fraction} leaves no validation or no training "
            f"pairs of one label among {len(y)} pairs"
        )
    return np.setdiff1d(everything, val), val


def best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximises F1 on (y, scores); predict positive at >= threshold."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def _check_pairs(xa, xb, y, n_features: int | None = None):
    xa = validate.as_array(xa, "xa", ndim=2, dtype=np.float64)
    xb = validate.as_array(xb, "xb", ndim=2, dtype=np.float64)
    if xa.shape != xb.shape:
        raise InvalidInputError(f"xa and xb must have the same shape, got {xa.shape} and {xb.shape}")
    if n_features is not None and xa.shape[1] != n_features:
        raise InvalidInputError(
            f"concept vectors have {xa.shape[1]} features, the model expects {n_features}"
        )
    if y is not None:
        y = validate.as_array(y, "y", ndim=1).astype(np.int64)
        if len(y) != len(xa) or not np.isin(y, (0, 1)).all():
            raise InvalidInputError("y must hold one 0/1 label per pair")
    return xa, xb, y
