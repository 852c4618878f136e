"""maskedmm inside torch models: ``torch.ops.frugalml.maskedmm`` and a module swap for ReLU FFNs.

``sparsify_(model)`` replaces the down projection of every ReLU / ReLU^2 feed-forward block (an
``nn.Linear`` fed by such an activation, found in nanoGPT- and Hugging Face-style blocks) by a
:class:`MaskedLinear`: its weight is prepared once (:func:`frugalml.maskedmm.prepare_b`) and each
call asks the planner whether skipping the activation's zeros beats dense; when it does not, the
layer runs torch's own ``F.linear`` on torch's threads. :func:`layer_report` shows, per swapped
layer, the density seen, the method chosen and the time spent; :func:`unsparsify_` puts the
original layers back. Float32 and float64 on CPU; gradients are exact (dense backward).

Activations holding NaN or infinity cannot be skipped safely (0 x inf is NaN), so such a call runs
``F.linear`` instead (the output is what the dense model gives) and the layer report counts it.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalml.common.errors import FrugalError, InvalidInputError
from frugalml.common.validate import one_of
from frugalml.maskedmm import backend, core, planner

DTYPES = (torch.float32, torch.float64)
ACTIVATIONS = (nn.ReLU, nn.ReLU6)  # and any module whose class name says ReLU (not leaky): ReLU^2


@dataclass
class LayerReport:
    """What one swapped layer saw and did since it was swapped (or :func:`reset_layer_report`)."""

    name: str
    in_features: int
    out_features: int
    calls: int = 0
    rows: int = 0
    nonzeros: float = 0.0
    methods: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    nonfinite_calls: int = 0
    counted_rows: int = 0  # rows whose non-zeros were counted (dense calls: one call in SAMPLE_EVERY)
    retired: bool = False  # dense on every recent call: hands calls to nn.Linear's forward, uncounted
    kept_dense: str = ""  # why sparsify_ left this layer a plain nn.Linear (it cannot win)

    @property
    def density(self) -> float:
        """Mean fraction of non-zero activations seen (weighted by the rows counted)."""
        return self.nonzeros / (self.counted_rows * self.in_features) if self.counted_rows else float("nan")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "in_features": self.in_features,
            "out_features": self.out_features,
            "calls": self.calls,
            "rows": self.rows,
            "density": self.density,
            "methods": dict(self.methods),
            "seconds": self.seconds,
            "nonfinite_calls": self.nonfinite_calls,
            "retired": self.retired,
            "kept_dense": self.kept_dense,
        }

    def __str__(self) -> str:
        if self.kept_dense:
            return f"{self.name}: {self.in_features}->{self.out_features}, kept dense: {self.kept_dense}"
        methods = ", ".join(f"{k} {v}" for k, v in sorted(self.methods.items())) or "-"
        extra = f", {self.nonfinite_calls} dense for NaN/inf" if self.nonfinite_calls else ""
        extra += ", retired to torch's linear (dense on every recent call)" if self.retired else ""
        return (
            f"{self.name}: {self.in_features}->{self.out_features}, {self.calls} calls, "
            f"density {self.density:.3f}, methods: {methods}, {self.seconds * 1e3:.2f} ms{extra}"
        )


@dataclass
class _Layer:
    """A swapped layer's prepared weight and its report (looked up by the op through a key)."""

    prepared: core.PreparedB
    weight_ptr: int
    weight_version: int
    report: LayerReport
    method: str = "auto"
    lock: threading.Lock = field(default_factory=threading.Lock)


_layers: dict[int, _Layer] = {}
_keys = itertools.count(1)


def _check_tensor(x: torch.Tensor, name: str) -> None:
    if x.device.type != "cpu":
        raise InvalidInputError(
            f"{name} is on {x.device}; maskedmm runs on the CPU, move it with .cpu() "
            "(or leave this model dense on the GPU)"
        )
    if x.dtype not in DTYPES:
        raise InvalidInputError(
            f"{name} has dtype {x.dtype}; maskedmm multiplies float32 or float64, "
            f"convert with .float() (float16 and bfloat16 are not supported)"
        )
    if not x.is_contiguous():
        raise InvalidInputError(f"{name} is not contiguous (strides {x.stride()}); pass {name}.contiguous()")


def _maskedmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    _check_tensor(a, "a")
    _check_tensor(b, "b")
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise InvalidInputError(
            f"maskedmm needs a (M, K) and b (K, N), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.dtype != b.dtype:
        raise InvalidInputError(f"a is {a.dtype} and b is {b.dtype}; cast both to one dtype")
    threads = torch.get_num_threads()
    return torch.from_numpy(core.matmul(a.numpy(), b.numpy(), threads=threads))


def _maskedmm_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, key: int
) -> torch.Tensor:
    layer = _layers.get(key)
    if layer is None:
        raise InvalidInputError(
            f"no prepared maskedmm layer has key {key}; call sparsify_ on the model again"
        )
    _check_tensor(x, "the layer's input")
    if x.dtype != weight.dtype:
        raise InvalidInputError(f"the layer's input is {x.dtype} but its weight is {weight.dtype}; cast one")
    k, n = layer.prepared.shape
    if x.dim() < 1 or x.shape[-1] != k:
        raise InvalidInputError(f"the layer takes inputs of shape (..., {k}), got {tuple(x.shape)}")
    if weight.data_ptr() != layer.weight_ptr or weight._version != layer.weight_version:
        raise InvalidInputError("the layer's weight changed after it was prepared; call sparsify_ again")
    start = time.perf_counter()
    a = x.reshape(-1, k).numpy()
    threads = torch.get_num_threads()
    nonfinite = False
    try:
        ops = core.check_operands(a, layer.prepared, threads=threads)
        chosen = core.plan_operands(ops)
        method = chosen.method if layer.method == "auto" else layer.method
        if method == "dense":
            out = F.linear(x, weight, bias)
        else:
            out = torch.from_numpy(_skipping(ops, method, chosen)).reshape(*x.shape[:-1], n)
            if bias is not None:
                out += bias
        density = chosen.a_density
    except FrugalError:
        if bool(torch.isfinite(x).all()):
            raise
        out, method, nonfinite = F.linear(x, weight, bias), "dense", True
        density = float(np.count_nonzero(a)) / max(a.size, 1)
    _count(layer, method, a.shape[0], density * a.size, time.perf_counter() - start, nonfinite)
    return out


def _count(
    layer: _Layer, method: str, rows: int, nonzeros: float | None, seconds: float, nonfinite=False
) -> None:
    """Add one call to the layer's report (``nonzeros`` None: the call's zeros were not counted)."""
    with layer.lock:
        _count_report(layer.report, method, rows, nonzeros, seconds)
        layer.report.nonfinite_calls += nonfinite


def _skipping(ops: core.Operands, method: str, chosen) -> np.ndarray:
    """The sparse or masked product of checked operands (the planner's kernel for masked)."""
    if method == "sparse":
        return core._sparse(ops, None)
    return core._masked(ops, None, chosen.row_block, chosen.kernel)


maskedmm = torch.library.custom_op("frugalml::maskedmm", mutates_args=(), device_types="cpu")(_maskedmm)
maskedmm_linear = torch.library.custom_op("frugalml::maskedmm_linear", mutates_args=(), device_types="cpu")(
    _maskedmm_linear
)


@maskedmm.register_fake
def _(a, b):
    return a.new_empty((a.shape[0], b.shape[1]))


@maskedmm_linear.register_fake
def _(x, weight, bias, key):
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _mm_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _mm_backward(ctx, grad):
    a, b = ctx.saved_tensors
    return grad @ b.T if ctx.needs_input_grad[0] else None, a.T @ grad if ctx.needs_input_grad[1] else None


def _linear_setup(ctx, inputs, output):
    x, weight, bias, _ = inputs
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x, weight)


def _linear_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x = grad @ weight if ctx.needs_input_grad[0] else None
    grad_w = (
        grad.reshape(-1, grad.shape[-1]).T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
    )
    grad_b = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return grad_x, grad_w, grad_b, None


maskedmm.register_autograd(_mm_backward, setup_context=_mm_setup)
maskedmm_linear.register_autograd(_linear_backward, setup_context=_linear_setup)


TRIALS = 5  # timed calls of each candidate before a layer settles a case (medians decide)
DENSITY_BUCKETS = 32  # an input's density (its upper estimate) is planned for in steps of 1/32
SAMPLE_EVERY = 16  # dense calls count their input's non-zeros once in this many calls
MAX_CASES = 4096  # remembered cases per layer (rows x threads x dtype x density bucket)
SKIP_MARGIN = 0.97  # a skipping method is kept when its median own time beats dense's by 3%
RETIRE_AFTER = 256  # inference calls in a row run dense: the layer then calls F.linear and nothing else
RETIRE_OUTRIGHT = 16  # calls in a row dense whatever their density (fixed costs alone lose): retire too
RETIRE_MEASURED = 1  # ... where the layer's own timing found dense faster at those rows (at once)
RECHECK_EVERY = 1024  # calls of a case settled on skipping before its trial runs again (load can mislead it)
DENSE_STREAK = 4  # planned calls in a row of one input shape in cases settled dense: then the fast path
DENSE_RECHECK_EVERY = 32  # calls of a shape on the dense fast path (no density estimate) per re-plan
PERIOD_GAP = 3.0  # a trial's call-to-call period this many times the case's median is not comparable
PERIOD_QUORUM = TRIALS // 2 + 1  # turns with both periods comparable, for periods to count
# calls of one input: its trials settle (the last one's period ends at the next call), the fast path begins
TRIAL_CALLS = 3 * TRIALS + 1 + DENSE_STREAK + 1
MEASURE_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # row counts a layer times dense vs skipping at
MEASURE_MACS = 1 << 25  # ... while the product has at most this many multiply-adds (always 1 row)
MEASURE_CALLS = 5  # timed calls of each method per row count (the fastest counts)


def _needs_grad(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)


ONE_THREAD = "@1"  # a trial candidate's suffix: the skipping kernel on one thread, whatever torch's count


@dataclass
class _Choice:
    """A layer's plan for one case and, until settled, the trials of its candidates: dense,
    the planned skipping method on torch's threads and, when those are more than one, the same
    method on one thread (a product of a few tens of microseconds can lose more waiting for a
    second thread, on a busy machine, than it gains from it).

    Each trial keeps the call's own time and its call-to-call period: from the call's start to
    the next call of the same layer, so it includes whatever the model runs in between (a
    skipping call that leaves torch's threads asleep or its caches cold makes the ops after it
    slower, which its own time misses). Skipping is kept where both say it wins (``_settle``).
    """

    plan: planner.Plan
    calibration: planner.Calibration
    settled: str | None = None
    times: dict[str, list[float]] = field(default_factory=dict)  # own times of each candidate's calls
    periods: dict[str, list[float | None]] = field(default_factory=dict)  # None: not comparable
    uses: int = 0  # calls since the case settled on a skipping method
    threads: int = 1  # torch's threads in this case
    judged_by: str = ""  # what settled it: "own times", "periods" (overruling them) or both

    def candidates(self) -> tuple[str, ...]:
        """What the trials time: ``dense``, the skipping method, and ``<method>@1`` on more threads."""
        if self.plan.method == "dense":
            return ("dense",)
        one = (self.plan.method + ONE_THREAD,) if self.threads > 1 else ()
        return ("dense", self.plan.method, *one)

    def use(self) -> None:
        """Count a call; a case settled on skipping is tried again every ``RECHECK_EVERY`` calls
        (its trials may have settled while the machine was loaded)."""
        if self.settled is None or self.plan.method == "dense" or self.settled == "dense":
            return
        self.uses += 1
        if self.uses >= RECHECK_EVERY:
            self.settled, self.times, self.periods, self.uses = None, {}, {}, 0

    def method(self) -> str:
        """The settled candidate, else the candidate with fewest timed calls (dense first): the
        candidates take turns, call by call."""
        if self.settled is not None:
            return self.settled
        done = {m: len(self.times.get(m, ())) for m in self.candidates()}
        return min(done, key=done.__getitem__)

    def record(self, method: str, seconds: float, period: float | None = None) -> None:
        """Add one trial: the call's own time and its period (None: not comparable, e.g. the
        next call had another input shape). Once every candidate has ``TRIALS``, settle."""
        if self.settled is not None:
            return
        self.times.setdefault(method, []).append(seconds)
        self.periods.setdefault(method, []).append(period)
        if all(len(self.times.get(m, ())) >= TRIALS for m in self.candidates()):
            self._settle()

    def _settle(self) -> None:
        """Keep a skipping candidate only where both measures say it wins: the medians of the
        calls' own times (it must beat dense's by ``SKIP_MARGIN``) and, where comparable, its
        periods against dense's (the median of the differences between their turns' periods must
        be below zero). Of the skipping candidates that win on own times, the fastest whose
        periods do not say it loses; else dense. Periods are comparable where at least
        :data:`PERIOD_QUORUM` turns have both periods within :data:`PERIOD_GAP` times the case's
        median. Own times alone are precise but miss what the model pays after a call; a period
        holds that, but also the whole model's noise, which can be larger than one layer's gain."""
        candidates = self.candidates()
        own = {m: statistics.median(self.times[m]) for m in candidates}
        seen = [p for m in candidates for p in self.periods[m] if p is not None]
        cap = PERIOD_GAP * statistics.median(seen) if seen else 0.0
        margin = (1.0 - SKIP_MARGIN) * own["dense"]  # what skipping must save, in dense's own time
        winners = sorted(
            (m for m in candidates if m != "dense" and own[m] + margin < own["dense"]), key=own.__getitem__
        )
        self.settled, self.judged_by = "dense", "own times"
        for skip in winners:
            pairs = [
                p - q
                for p, q in zip(self.periods[skip], self.periods["dense"], strict=False)
                if p is not None and q is not None and p <= cap and q <= cap
            ]
            if len(pairs) < PERIOD_QUORUM:
                self.settled = skip  # periods not comparable: own times decide
                return
            if statistics.median(pairs) < 0:
                self.settled, self.judged_by = skip, "own times and periods"
                return
            self.judged_by = "periods"  # own times said skip; periods said the model pays for it


@dataclass(slots=True)
class _Trial:
    """A layer's trial call whose period is still open: it ends when the layer is next called.

    The period is the call's own time (as its candidate runs once settled: a dense trial counts
    torch's linear alone, a skipping one the whole call, from ``forward``'s entry to its return)
    and the model's work after it until the layer's next call, less the time spent meanwhile
    inside other planned calls of swapped layers (:data:`_PLANNED`): those
    are on trials of their own, often in step with this one (every layer of a model tries dense
    in the same forward pass), and would otherwise count their candidates' costs in this one's.
    """

    choice: _Choice | None = None
    candidate: str = ""
    shape: tuple = ()
    seconds: float = 0.0  # the call's own time, as its candidate runs once settled (-1: the whole call)
    end: float = 0.0  # when the call returned
    inside: float = 0.0  # _PLANNED.seconds then
    opening: bool = False  # opened by the call now running: its return completes it

    def close(self, shape: tuple | None, lock: threading.Lock) -> None:
        """Record the trial, its period ending now when the next call is of the same ``shape``
        (None: not an inference call, so not comparable)."""
        choice, self.choice = self.choice, None
        if choice is None or self.opening:  # a call that never returned (it raised) is no trial
            self.opening = False
            return
        period = None
        if shape == self.shape:
            period = self.seconds + time.perf_counter() - self.end - (_PLANNED.seconds - self.inside)
        with lock:
            choice.record(self.candidate, self.seconds, period)


@dataclass(slots=True)
class _Planned:
    """Seconds spent inside planned inference calls of swapped layers (the trials' periods leave
    them out), in this process (unlocked: calls from several threads at once blur periods anyway)."""

    seconds: float = 0.0

    def add(self, entry: float, trial: _Trial) -> None:
        """Count a planned call that entered ``forward`` at ``entry`` and returns now; complete
        the trial it opened, if any."""
        end = time.perf_counter()
        self.seconds += end - entry
        if trial.opening:
            trial.opening = False
            if trial.seconds < 0:
                trial.seconds = end - entry
            trial.end, trial.inside = end, self.seconds


_PLANNED = _Planned()


def _skip_or_dense(x, a, weight, bias, layer: _Layer, plan: planner.Plan, threads: int):
    """(output, method run, whether A held NaN/inf) of the planned skipping method, or of
    ``F.linear`` when the activations hold NaN or infinity (the kernels refuse them)."""
    try:
        ops = core.check_operands(a, layer.prepared, threads=threads)
        out = torch.from_numpy(_skipping(ops, plan.method, plan)).reshape(
            *x.shape[:-1], layer.prepared.shape[1]
        )
    except FrugalError:
        if bool(torch.isfinite(x).all()):
            raise
        return F.linear(x, weight, bias), "dense", True
    if bias is not None:
        out += bias
    return out, plan.method, False


@dataclass(slots=True)
class _DenseWatch:
    """An input shape whose case settled on dense: its calls run torch's linear with no density
    estimate, and one in :data:`DENSE_RECHECK_EVERY` is planned again (the density may have
    fallen to where skipping can win)."""

    rows: int
    calls: int = 0


@dataclass(slots=True)
class _Streak:
    """Inference calls in a row that ran dense, and that were dense whatever their density (the
    last of them found so by the layer's own timing at its row count: it retires at once)."""

    dense: int = 0
    outright: int = 0
    measured: bool = False

    def due(self) -> bool:
        """Whether the layer should retire: :data:`RETIRE_AFTER` dense calls in a row, or
        :data:`RETIRE_OUTRIGHT` dense whatever their density (:data:`RETIRE_MEASURED` where the
        layer's own timing found dense faster at their row count)."""
        outright = RETIRE_MEASURED if self.measured else RETIRE_OUTRIGHT
        return self.outright >= outright or self.dense >= RETIRE_AFTER


class _SwappedLinear(nn.Module):
    """What every layer ``sparsify_`` swaps in keeps of the ``nn.Linear`` it replaces: its weight
    and bias (shared), the original (for :func:`unsparsify_`) and a per-layer report."""

    def __init__(self, linear: nn.Linear, name: str) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.original = [linear]  # a list: kept for unsparsify_, not registered as a child
        self._report = LayerReport(name, self.in_features, self.out_features)

    @property
    def report(self) -> LayerReport:
        """Calls, the density seen, the methods run and their time."""
        return self._report

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class MaskedLinear(_SwappedLinear):
    """An ``nn.Linear`` whose input is mostly zeros (a ReLU's output), multiplied by maskedmm.

    It shares the original layer's weight and bias; the weight is prepared once, and again
    whenever torch's version counter says it changed (an optimizer step, any in-place update),
    so outputs follow the current weight. Writes through ``weight.data`` bypass that counter:
    call :func:`unsparsify_` and :func:`sparsify_` again after them.
    """

    def __init__(self, linear: nn.Linear, name: str = "", method: str = "auto") -> None:
        super().__init__(linear, name)
        self.key = next(_keys)
        self.method = one_of(method, core.METHODS, "method")
        self._outright: dict[tuple, str] = {}  # (rows, dtype, threads): "", "costs" or "measured"
        self._fast: dict[tuple, tuple[int, bool]] = {}  # (shape, dtype, threads) outright: rows, measured
        self._settled_dense: dict[tuple, _DenseWatch] = {}  # (shape, dtype, threads) on the dense fast path
        self._dense_streak: dict[tuple, int] = {}  # the same: planned calls in a row settled dense
        self._choices: dict[tuple, _Choice] = {}
        self._streak = _Streak()  # a plain object: nn.Module.__setattr__ costs microseconds a call
        self._trial = _Trial()  # the last trial call, until the next call ends its period
        self._prepare()
        # per thread count: (dense up to these rows, dense from these rows, largest row count timed)
        self.dense_rows: dict[int, tuple[int, float, int]] = {}
        if self.method == "auto":
            threads = torch.get_num_threads()
            self.dense_rows[threads] = _measure_dense_rows(_layers[self.key], self.weight, self.bias, threads)
        weakref.finalize(self, _layers.pop, self.key, None)

    def _prepare(self) -> None:
        with torch.no_grad():
            w = self.weight.detach()
            prepared = core.prepare_b(w.T.contiguous().numpy(), threads=torch.get_num_threads())
        _layers[self.key] = _Layer(prepared, w.data_ptr(), self.weight._version, self._report, self.method)
        self._choices = {}
        self._settled_dense, self._dense_streak = {}, {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        entry = time.perf_counter()
        if torch.compiler.is_compiling():  # torch.compile sees the op alone; the checks run inside it
            return maskedmm_linear(x.contiguous(), self.weight, self.bias, self.key)
        trial = self._trial
        if not torch.is_grad_enabled() and x.is_cpu:
            shape = (x.shape, x.dtype, torch.get_num_threads())
            if trial.choice is not None:  # this call ends the last trial's period
                trial.close(shape, _layers[self.key].lock)
            fast = self._fast.get(shape)
            if fast is not None:  # dense whatever the density: torch's linear, counted, nothing else
                return self._fast_linear(x, fast[0], measured=fast[1])
            watch = self._settled_dense.get(shape)
            if watch is not None:  # settled on dense: no density estimate, but planned now and then
                watch.calls += 1
                if watch.calls < DENSE_RECHECK_EVERY:
                    return self._fast_linear(x, watch.rows, outright=False)
                del self._settled_dense[shape]  # this call is planned again (and re-enters if dense)
        elif trial.choice is not None:
            trial.close(None, _layers[self.key].lock)
        layer = _layers[self.key]
        weight, bias = self.weight, self.bias
        if weight.data_ptr() != layer.weight_ptr or weight._version != layer.weight_version:
            self._prepare()
            layer = _layers[self.key]
        if (
            x.device.type == "cpu"
            and x.dtype in DTYPES
            and x.dtype == weight.dtype
            and x.dim()
            and x.shape[-1] == self.in_features
        ):
            x = x.contiguous()
            if not _needs_grad(x, weight, bias):  # inference: no autograd, so no op dispatch either
                out = self._infer(x, weight, bias, layer)
                if self._streak.due():
                    self._retire()
                _PLANNED.add(entry, trial)
                return out
            rows = x.numel() // self.in_features
            if self.method == "auto" and self._dense_outright(rows, x.dtype, torch.get_num_threads()):
                return self._linear(x, weight, bias, layer)
        return maskedmm_linear(x, weight, bias, self.key)

    def _retire(self) -> None:
        """Hand every later call to the original ``nn.Linear``'s own forward, until
        :func:`reset_layer_report`, once ``RETIRE_AFTER`` inference calls in a row ran dense or
        ``RETIRE_OUTRIGHT`` in a row were dense whatever their density (a skipping call's fixed
        costs alone exceed dense: their zeros cannot change that; ``RETIRE_MEASURED`` where the
        layer's own timing found dense faster at their row count). An instance attribute
        ``forward`` is what ``nn.Module.__call__`` runs, so a retired layer runs exactly the frames
        ``nn.Linear`` runs (no check of ours)."""
        original = self.original[0]
        if original.weight is self.weight and original.bias is self.bias:  # else: keeps checking
            self._report.retired = True
            self._trial.choice, self._trial.opening = None, False  # no later call of ours ends it
            self.forward = original.forward  # type: ignore[method-assign,assignment]

    def _unretire(self) -> None:
        self._report.retired = False
        self.__dict__.pop("forward", None)
        self._streak.dense = self._streak.outright = 0
        self._trial.choice, self._trial.opening = None, False

    def _infer(self, x: torch.Tensor, weight, bias, layer: _Layer) -> torch.Tensor:
        """The forward pass without autograd, planned once per case and checked by measurement.

        A case is (rows, threads, dtype, density bucket of the input). Dense BLAS wins outright
        where a skipping call's fixed costs alone exceed it; otherwise the planner's choice for
        the bucket is remembered, and where it is a skipping method its candidates take turns for
        ``TRIALS`` calls each: the layer keeps skipping only where it is measured faster by the
        calls' own times and, where comparable, by their periods (to the layer's next call: what
        the whole model pays; :meth:`_Choice._settle`), so it never runs much slower than torch's
        own linear. The trial's period is recorded by the next call (``forward``). Once
        ``DENSE_STREAK`` planned calls in a row of one input shape fell in cases settled on dense,
        later calls of that shape run torch's linear with no density estimate (``forward``'s fast
        path), and one in ``DENSE_RECHECK_EVERY`` comes back here to be planned again: where the
        density has fallen to another bucket, that bucket's plan and trials decide.
        """
        k = self.in_features
        rows, threads = x.numel() // k, torch.get_num_threads()
        if self.method == "auto" and self._dense_outright(rows, x.dtype, threads):
            if len(self._fast) > MAX_CASES:
                self._fast.clear()
            measured = self._outright[(rows, x.dtype, threads)] == "measured"
            self._fast[(x.shape, x.dtype, threads)] = rows, measured  # later calls skip the checks
            self._streak.measured = measured
            return self._linear(x, weight, bias, layer)
        if self.method != "auto":
            return _maskedmm_linear(x, weight, bias, self.key)
        start = time.perf_counter()
        a = x.reshape(-1, k).numpy()
        density, error = planner.density_estimate(a)
        bucket = min(int(planner.upper_density(density, error) * DENSITY_BUCKETS), DENSITY_BUCKETS - 1)
        choice = self._choice((rows, threads, x.dtype, bucket), layer, a.dtype)
        choice.use()
        candidate, trial, kernel_threads = choice.method(), None, threads
        if candidate == "dense":  # its trial times torch's linear alone: what a retired layer runs
            bare = time.perf_counter()
            out, method, nonfinite = F.linear(x, weight, bias), "dense", False
            trial = time.perf_counter() - bare
        else:
            kernel_threads = 1 if candidate.endswith(ONE_THREAD) else threads
            out, method, nonfinite = _skip_or_dense(x, a, weight, bias, layer, choice.plan, kernel_threads)
        seconds = time.perf_counter() - start
        pending = choice.settled is None
        self._watch((x.shape, x.dtype, threads), rows, choice.settled == "dense" and not nonfinite)
        shown = f"{method} (1 thread)" if method != "dense" and kernel_threads < threads else method
        _count(layer, shown, rows, density * a.size, seconds, nonfinite)
        streak = self._streak
        streak.dense = streak.dense + 1 if method == "dense" else 0
        streak.outright = 0
        if pending:  # completed as ``forward`` returns, recorded when the layer's next call comes
            opened = self._trial
            opened.choice, opened.candidate = choice, "dense" if nonfinite else candidate
            opened.shape, opened.seconds = (x.shape, x.dtype, threads), -1.0 if trial is None else trial
            opened.opening = True
        return out

    def _watch(self, shape: tuple, rows: int, dense: bool) -> None:
        """Count a planned call of ``shape``: after ``DENSE_STREAK`` in a row whose case settled on
        dense (whatever density bucket each fell in), later calls of the shape take the dense
        fast path; a call that did not settle dense ends the streak. (A shape whose density
        wanders between a dense bucket and a skipping one must not be sent dense by one call.)"""
        if not dense:
            self._dense_streak.pop(shape, None)
            return
        streak = self._dense_streak[shape] = self._dense_streak.get(shape, 0) + 1
        if streak >= DENSE_STREAK:  # a re-check that stays dense re-enters at once
            for cache in (self._settled_dense, self._dense_streak):
                if len(cache) > MAX_CASES:
                    cache.clear()
            self._settled_dense[shape] = _DenseWatch(rows)

    def _choice(self, case: tuple, layer: _Layer, dtype: np.dtype) -> _Choice:
        """The remembered plan of a case (rows, threads, dtype, density bucket), made on first use."""
        cal = planner.calibration()
        choice = self._choices.get(case)
        if choice is not None and choice.calibration is cal:
            return choice
        rows, threads, _, bucket = case
        plan = planner.choose(
            shape=(rows, self.in_features, self.out_features),
            dtype_code=core.DTYPE_CODES[np.dtype(dtype)],
            isa=backend.choose_isa(),
            a_density=(bucket + 1) / DENSITY_BUCKETS,
            b_density=layer.prepared.density,
            b_prepared=True,
            threads=threads,
            filters=False,
        )
        choice = _Choice(plan, cal, settled="dense" if plan.method == "dense" else None, threads=threads)
        if len(self._choices) > MAX_CASES:
            self._choices.clear()
        self._choices[case] = choice
        return choice

    def _fast_linear(
        self, x: torch.Tensor, rows: int, outright: bool = True, measured: bool = False
    ) -> torch.Tensor:
        """An inference call of a shape already found dense (whatever its density if
        ``outright``, ``measured`` so by the layer's own timing, else settled dense by its case):
        torch's linear, counted in the report (not timed), and retiring when due."""
        out = F.linear(x, self.weight, self.bias)
        report = self._report
        if report.calls % SAMPLE_EVERY == 0:  # as _linear: one call in SAMPLE_EVERY counts zeros
            report.nonzeros += int(torch.count_nonzero(x))
            report.counted_rows += rows
        report.calls += 1
        report.rows += rows
        report.methods["dense"] = report.methods.get("dense", 0) + 1
        streak = self._streak
        streak.dense += 1
        streak.outright = streak.outright + 1 if outright else 0
        streak.measured = measured
        if streak.due():
            self._retire()
        return out

    def _dense_outright(self, rows: int, dtype: torch.dtype, threads: int) -> bool:
        """Whether dense wins whatever the density: the layer measured dense faster even at 97%
        zeros at this row count (:func:`_measure_dense_rows`, once per thread count: the verdict
        ``measured``), or the planner says a skipping call's fixed overhead alone exceeds what
        dense costs (small layers, few rows: ``costs``). Remembered per case in ``_outright``."""
        case = (rows, dtype, threads)
        known = self._outright.get(case)
        if known is None:
            cal = planner.calibration()
            scale = 2.0 if dtype == torch.float64 else 1.0
            shape = (rows, self.in_features, self.out_features)
            dense, overhead, _ = planner.fixed_costs(cal, shape, scale, True, threads, False)
            if len(self._outright) > MAX_CASES:
                self._outright.clear()
            measured = self.dense_rows.get(threads)
            if measured is None:
                layer = _layers[self.key]
                measured = self.dense_rows[threads] = _measure_dense_rows(
                    layer, self.weight, self.bias, threads
                )
            upto, start, top = measured
            if rows <= upto or start <= rows <= top:
                known = "measured"
            else:
                known = "costs" if overhead >= cal.margin * dense else ""
            self._outright[case] = known
        return bool(known)

    def _linear(self, x: torch.Tensor, weight, bias, layer: _Layer) -> torch.Tensor:
        """torch's own linear, counted in the report (the planner's choice for such a call); the
        input's non-zeros are counted on one call in ``SAMPLE_EVERY`` (counting costs as much as
        a small layer's product)."""
        start = time.perf_counter()
        out = F.linear(x, weight, bias)
        rows = x.numel() // self.in_features
        nonzeros = int(torch.count_nonzero(x)) if layer.report.calls % SAMPLE_EVERY == 0 else None
        _count(layer, "dense", rows, nonzeros, time.perf_counter() - start)
        self._streak.dense += 1
        self._streak.outright += 1
        return out


def _dense_row_ranges(won: dict[int, bool]) -> tuple[int, float, int]:
    """From whether dense won at each timed row count: (every count up to this one won: 0 if
    the smallest lost, the smallest count from which every timed count won: inf if the largest
    lost, the largest count timed). Nothing is assumed past the largest count timed."""
    rows = sorted(won)
    upto, start = 0, float("inf")
    for r in rows:
        if not won[r]:
            break
        upto = r
    for r in reversed(rows):
        if not won[r]:
            break
        start = r
    return upto, start, rows[-1] if rows else 0


def _measure_dense_rows(layer: _Layer, weight: torch.Tensor, bias, threads: int) -> tuple[int, float, int]:
    """Time torch's linear against the skipping method the planner ranks first at each of
    :data:`MEASURE_ROWS` (up to :data:`MEASURE_MACS`), on inputs with 97% zeros (the best case for
    skipping), interleaved, fastest of :data:`MEASURE_CALLS`: where skipping is not
    ``SKIP_MARGIN`` faster there, it cannot win at any density. Returns :func:`_dense_row_ranges`."""
    k, n = layer.prepared.shape
    gen = torch.Generator().manual_seed(0)
    won: dict[int, bool] = {}
    with torch.inference_mode():
        w = weight.detach()
        b = None if bias is None else bias.detach()
        dtype_code = core.DTYPE_CODES[np.dtype(str(w.dtype).removeprefix("torch."))]
        for rows in MEASURE_ROWS:
            if won and rows * k * n > MEASURE_MACS:
                break
            x = torch.rand(rows, k, generator=gen, dtype=w.dtype)
            x *= torch.rand(rows, k, generator=gen) < PROBE_DENSITY
            a = x.numpy()
            plan = planner.choose(
                shape=(rows, k, n),
                dtype_code=dtype_code,
                isa=backend.choose_isa(),
                a_density=PROBE_DENSITY,
                b_density=layer.prepared.density,
                b_prepared=True,
                threads=threads,
                filters=False,
            )
            method = plan.method
            if method == "dense":
                method = min(("masked", "sparse"), key=plan.estimates.__getitem__)

            def skip(a=a, plan=plan, method=method) -> None:
                planner.density_estimate(a)
                out = torch.from_numpy(
                    _skipping(core.check_operands(a, layer.prepared, threads=threads), method, plan)
                )
                if b is not None:
                    out += b

            def dense(x: torch.Tensor = x) -> None:
                F.linear(x, w, b)

            times: dict[str, list[float]] = {"dense": [], "skip": []}
            for _ in range(MEASURE_CALLS):
                times["dense"].append(_seconds(dense))
                times["skip"].append(_seconds(skip))
            won[rows] = not min(times["skip"]) < SKIP_MARGIN * min(times["dense"])
    return _dense_row_ranges(won)


UP_SKIP_MAX_DENSITY = 0.5  # a gated up projection computes only its live outputs below this share


@dataclass(slots=True)
class _GateSeen:
    """What a gated block's hooks saw in its current call: the gate's input (and its version),
    the gate's output, and the activation of that output (the live outputs)."""

    gate_in: tuple[torch.Tensor, int] | None = None
    gate_out: torch.Tensor | None = None
    live: torch.Tensor | None = None

    def clear(self) -> None:
        self.gate_in = self.gate_out = self.live = None


class GatedUpLinear(_SwappedLinear):
    """The up projection of a gated FFN whose gate goes through a ReLU-like activation
    (``down(act(gate(x)) * up(x))``, as in ReLU-fied Llama models): it computes only the outputs
    whose gate activation is non-zero, since the product zeroes the others anyway.

    Hooks on the block, the gate and the activation see each call; the up projection skips only
    when, in the same call of the block, the gate took the very tensor (same version) it is given
    and the activation took the gate's output, so any other order or structure runs ``F.linear``.
    Without autograd, the rows' live outputs (the union over the rows of the non-zero gate
    activations) are computed from those rows of the weight when they are at most
    :data:`UP_SKIP_MAX_DENSITY` of the outputs; this layer's own outputs are then zero where the
    gate is zero (the block's output is the dense block's). With autograd every call is dense.
    Its report's ``density`` is the share of live outputs.
    """

    def __init__(
        self, linear: nn.Linear, gate: nn.Module, act: nn.Module, block: nn.Module, name: str = ""
    ) -> None:
        super().__init__(linear, name)
        self._seen = _GateSeen()  # a plain object: nn.Module.__setattr__ costs microseconds a call
        self._hooks = [
            block.register_forward_pre_hook(self._on_block),
            gate.register_forward_hook(self._on_gate),
            act.register_forward_hook(self._on_act),
        ]

    def _on_block(self, module: nn.Module, args: tuple) -> None:
        self._seen.clear()  # nothing carries over between calls of the block

    def _on_gate(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen = self._seen
        x = args[0] if args else None
        seen.clear()
        if not torch.is_grad_enabled() and isinstance(x, torch.Tensor):
            seen.gate_in, seen.gate_out = (x, _version(x)), out

    def _on_act(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen = self._seen
        if seen.gate_out is not None and args and args[0] is seen.gate_out:
            seen.live = out
        seen.gate_out = None

    def remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._seen.clear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        seen = self._seen
        gate_in, live = seen.gate_in, seen.live
        seen.clear()  # each gate call serves one up call
        rows = x.numel() // self.in_features if x.dim() else 0
        if (
            live is None
            or gate_in is None
            or x is not gate_in[0]
            or _version(x) != gate_in[1]
            or torch.is_grad_enabled()
            or live.shape[:-1] != x.shape[:-1]
            or live.shape[-1] != self.out_features
        ):
            out = F.linear(x, self.weight, self.bias)
            _count_report(self._report, "dense", rows, None, time.perf_counter() - start)
            return out
        mask = live.reshape(-1, self.out_features) != 0
        index = mask.any(0).nonzero().squeeze(1)
        if index.numel() > UP_SKIP_MAX_DENSITY * self.out_features:
            out = F.linear(x, self.weight, self.bias)
            method = "dense"
        else:
            bias = None if self.bias is None else self.bias.index_select(0, index)
            flat = x.reshape(-1, self.in_features)
            part = F.linear(flat, self.weight.index_select(0, index), bias)
            out = flat.new_zeros(flat.shape[0], self.out_features)
            out.index_copy_(1, index, part)
            out, method = out.reshape(*x.shape[:-1], self.out_features), "gather"
        nonzeros = float(mask.sum()) * self.in_features / self.out_features  # in input units
        _count_report(self._report, method, rows, nonzeros, time.perf_counter() - start)
        return out


def _version(x: torch.Tensor) -> int:
    """``x``'s version counter (-1 for inference tensors, which keep none)."""
    return -1 if x.is_inference() else x._version


def _count_report(report: LayerReport, method: str, rows: int, nonzeros: float | None, seconds: float):
    report.calls += 1
    report.rows += rows
    if nonzeros is not None:
        report.counted_rows += rows
        report.nonzeros += nonzeros
    report.methods[method] = report.methods.get(method, 0) + 1
    report.seconds += seconds


def gated_up_layers(model: nn.Module) -> list[tuple[str, str, str, str]]:
    """(up, gate, activation, block) names of the gated FFNs whose gate goes through a ReLU-like
    activation: a parent holding an ``nn.Linear`` named like ``*gate*`` and one named like
    ``*up*`` of the same shape (to a wider output), a down projection back, and the activation."""
    found = []
    for parent_name, parent in model.named_modules():
        children = dict(parent.named_children())
        acts = [n for n, m in children.items() if is_relu_like(m)]
        linears = {n: m for n, m in children.items() if type(m) is nn.Linear}
        gates = [n for n in linears if "gate" in n.lower()]
        ups = [n for n in linears if "up" in n.lower() and "gate" not in n.lower()]
        if len(acts) != 1 or len(gates) != 1 or len(ups) != 1:
            continue
        gate, up = linears[gates[0]], linears[ups[0]]
        back = (up.out_features, up.in_features)
        downs = [m for m in linears.values() if (m.in_features, m.out_features) == back]
        if (gate.in_features, gate.out_features) != (up.in_features, up.out_features) or not downs:
            continue
        prefix = f"{parent_name}." if parent_name else ""
        found.append((prefix + ups[0], prefix + gates[0], prefix + acts[0], parent_name))
    return found


def is_relu_like(module: nn.Module) -> bool:
    """Whether ``module`` is an activation that outputs exact zeros: ReLU, ReLU6, ReLU^2 modules
    (any class whose name contains "relu", except leaky or parametric ReLUs)."""
    if isinstance(module, ACTIVATIONS):
        return True
    name = type(module).__name__.lower()
    return "relu" in name and "leaky" not in name and "prelu" not in name and "gelu" not in name


def eligible_layers(model: nn.Module) -> list[str]:
    """Names of the FFN down projections :func:`sparsify_` would swap.

    A down projection is an ``nn.Linear`` that shares its parent with a ReLU-like activation and
    with an up projection (an ``nn.Linear`` from its output width to its wider input width), as in
    nanoGPT's ``c_fc -> relu -> c_proj``, Hugging Face's ``fc1 -> act -> fc2`` and gated
    ``gate_proj/up_proj -> act -> down_proj`` blocks.
    """
    names = []
    for parent_name, parent in model.named_modules():
        children = dict(parent.named_children())
        if not any(is_relu_like(m) for m in children.values()):
            continue
        linears = {n: m for n, m in children.items() if type(m) is nn.Linear}
        for name, down in linears.items():
            ups = [
                up
                for other, up in linears.items()
                if other != name
                and up.out_features == down.in_features
                and up.in_features == down.out_features
            ]
            if ups and down.in_features > down.out_features:
                names.append(f"{parent_name}.{name}" if parent_name else name)
    return names


PROBE_ROWS = (1, 4, 16, 64, 256, 1024, 4096)  # row counts sparsify_ asks the planner about
PROBE_DENSITY = 1.0 / DENSITY_BUCKETS  # the sparsest input a layer plans for (97% zeros)
PROBE_CALLS = 5  # timed calls of each method at one row when a layer looks unable to win


def _kept_dense_reason(linear: nn.Linear) -> str:
    """Why ``linear`` should stay a plain ``nn.Linear``, or "" when skipping may pay.

    A layer is kept dense when the planner's calibrated costs favour dense at every row count of
    :data:`PROBE_ROWS` even at :data:`PROBE_DENSITY` (on 1 thread and on torch's threads), and a
    measurement at one row (the decode of one sequence) agrees: dense ``F.linear`` against the
    skipping method the planner ranks next, on an input with that density.
    """
    k, n = linear.in_features, linear.out_features
    dtype = np.dtype(str(linear.weight.dtype).removeprefix("torch."))
    b_density = float(torch.count_nonzero(linear.weight.detach())) / max(linear.weight.numel(), 1)
    isa, threads = backend.choose_isa(), torch.get_num_threads()
    plans = [
        planner.choose(
            shape=(rows, k, n),
            dtype_code=core.DTYPE_CODES[dtype],
            isa=isa,
            a_density=PROBE_DENSITY,
            b_density=b_density,
            b_prepared=True,
            threads=t,
            filters=False,
        )
        for rows in PROBE_ROWS
        for t in sorted({1, threads})
    ]
    if any(plan.method != "dense" for plan in plans):
        return ""
    plan = plans[0]  # one row, one thread
    method = min(("masked", "sparse"), key=plan.estimates.__getitem__)
    with torch.inference_mode():
        w = linear.weight.detach()
        prepared = core.prepare_b(w.T.contiguous().numpy(), threads=threads)
        x = torch.zeros(1, k, dtype=w.dtype)
        picked = torch.randperm(k, generator=torch.Generator().manual_seed(0))[: max(1, k // DENSITY_BUCKETS)]
        x[0, picked] = 1.0
        a = x.numpy()

        def skip() -> None:
            _skipping(core.check_operands(a, prepared, threads=threads), method, plan)

        dense, skipping = (
            min(_seconds(fn) for _ in range(PROBE_CALLS))
            for fn in (lambda: F.linear(x, w, linear.bias), skip)
        )
    if skipping < dense:
        return ""
    return (
        f"skipping cannot beat torch's linear at {PROBE_ROWS[0]}-{PROBE_ROWS[-1]} rows even at "
        f"{1 - PROBE_DENSITY:.0%} zeros ({'calibrated' if plan.calibrated else 'default'} costs); "
        f"measured at 1 row: dense {dense * 1e6:.1f} us, {method} {skipping * 1e6:.1f} us"
    )


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sparsify_(
    model: nn.Module,
    filter_fn: Callable[[str, nn.Linear], bool] | None = None,
    *,
    method: str = "auto",
    gated_up: bool = True,
) -> list[str]:
    """Route ``model``'s ReLU-fed FFN down projections through maskedmm, in place.

    Parameters
    ----------
    model : nn.Module
        On the CPU, float32 or float64.
    filter_fn : callable(name, linear) -> bool, optional
        Which of the eligible layers (:func:`eligible_layers`) to swap (default: all).
    method : {"auto", "masked", "sparse", "dense"}
        ``auto`` asks the planner on every call (dense runs torch's ``F.linear``); the others
        force one method, for measurements.
    gated_up : bool
        Also swap the up projection of every gated FFN whose gate goes through a ReLU-like
        activation for a :class:`GatedUpLinear`, which computes only the outputs the gate keeps
        (``filter_fn`` chooses among these too).

    Returns
    -------
    The names of the swapped layers. With ``auto``, a layer that cannot win (the calibrated costs
    favour dense at every row count even at 97% zeros, and a timed call at one row agrees) stays
    a plain ``nn.Linear``: :func:`layer_report` lists it as "kept dense" with the measured reason.

    Raises
    ------
    InvalidInputError
        No eligible layer, or one on another device or in another dtype; the model is then left
        unchanged.
    """
    one_of(method, core.METHODS, "method")
    eligible = {
        n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and n in eligible_layers(model)
    }
    names = [n for n, m in eligible.items() if filter_fn is None or filter_fn(n, m)]
    if not names and any(isinstance(m, MaskedLinear) for m in model.modules()):
        raise InvalidInputError(
            "the model is already sparsified; call unsparsify_ first to sparsify it again"
        )
    if not names:
        raise InvalidInputError(
            "the model has no FFN down projection fed by a ReLU-like activation (an nn.Linear "
            "beside a ReLU/ReLU^2 module and its up projection); nothing was changed"
            + (" (filter_fn rejected every eligible layer)" if eligible else "")
        )
    for name in names:
        _check_tensor(eligible[name].weight, f"{name}.weight")
    kept = {n: _kept_dense_reason(eligible[n]) if method == "auto" else "" for n in names}
    swapped = [(name, MaskedLinear(eligible[name], name, method)) for name in names if not kept[name]]
    for name, reason in kept.items():
        if reason:
            linear = eligible[name]
            linear.maskedmm_report = LayerReport(  # type: ignore[assignment]
                name, linear.in_features, linear.out_features, kept_dense=reason
            )
    ups: list[tuple[str, nn.Module]] = []
    for up, gate, act, block in gated_up_layers(model) if gated_up else []:
        up_linear = model.get_submodule(up)
        if isinstance(up_linear, nn.Linear) and (filter_fn is None or filter_fn(up, up_linear)):
            gate_m, act_m, block_m = (model.get_submodule(n) for n in (gate, act, block))
            ups.append((up, GatedUpLinear(up_linear, gate_m, act_m, block_m, name=up)))
    swapped_modules: list[tuple[str, nn.Module]] = [*swapped, *ups]
    for name, layer in swapped_modules:
        model.set_submodule(name, layer)
    return [name for name, _ in swapped_modules]


def unsparsify_(model: nn.Module) -> list[str]:
    """Put back the original ``nn.Linear`` of every swapped layer; returns their names."""
    swapped = [(n, m) for n, m in model.named_modules() if isinstance(m, MaskedLinear)]
    for name, layer in swapped:
        model.set_submodule(name, layer.original[0])
        _layers.pop(layer.key, None)
    ups = [(n, m) for n, m in model.named_modules() if isinstance(m, GatedUpLinear)]
    for name, up in ups:
        up.remove_hooks()
        model.set_submodule(name, up.original[0])
    for m in model.modules():
        m.__dict__.pop("maskedmm_report", None)
    return [name for name, _ in swapped + ups]


def layer_report(model: nn.Module) -> list[LayerReport]:
    """Per eligible layer: for a swapped one, calls, the mean density seen, the methods the
    planner chose and the time; for one :func:`sparsify_` kept dense, why (``kept_dense``)."""
    return [
        m.report if isinstance(m, (MaskedLinear, GatedUpLinear)) else m.__dict__["maskedmm_report"]
        for _, m in model.named_modules()
        if isinstance(m, (MaskedLinear, GatedUpLinear)) or "maskedmm_report" in m.__dict__
    ]


def reset_layer_report(model: nn.Module) -> None:
    """Zero every swapped layer's report."""
    for _, m in model.named_modules():
        if isinstance(m, (MaskedLinear, GatedUpLinear)):
            r = m.report
            r.calls, r.rows, r.nonzeros, r.methods, r.seconds, r.nonfinite_calls = 0, 0, 0.0, {}, 0.0, 0
            r.counted_rows = 0
        if isinstance(m, MaskedLinear):
            m._unretire()
