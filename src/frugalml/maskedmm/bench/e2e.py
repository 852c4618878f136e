"""End to end: a ReLU^2 decoder's prefill and decode tokens/s with maskedmm vs the same model in
plain torch, on the same threads.

A small decoder is trained on a text corpus until its FFN activations show their natural sparsity
(the density per layer is recorded), then measured (a) as it is and (b) at realistic width
(``d_model`` 2048, FFN 4x, random weights) with the trained model's activation patterns replayed
(sampled per layer and position; every such record says "replayed"). For each batch size and
thread count: decode and prefill tokens/s, ours (``sparsify_``, the planner deciding per call) vs
plain torch and, where it compiles, ``torch.compile``; a per-layer breakdown of decode time (FFN
down, FFN up, attention, rest); the activation density seen at that batch size; at batch 1 the
ideal bound of a decode step that reads only the weight rows the activations need.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from frugalml.common import env
from frugalml.common.report import Record, new_figure, save_plot
from frugalml.common.threads import torch_threads
from frugalml.common.timing import compare
from frugalml.maskedmm import torch as mt
from frugalml.maskedmm.bench import tinylm

SYSTEM = "maskedmm"
TORCH = "torch dense (same model, same threads)"
COMPILED = "torch.compile dense (same model, same threads)"
CORPUS = "corpora/tinyshakespeare.txt"
PARTS = ("FFN down", "FFN up", "attention", "rest")
BOUND = "ideal bound (weight bytes read at this density)"
SHARED_NOTE = "other work may share this machine: see the load average"
ACTIVATION_L1 = 0.15  # the sparsity-friendly recipe's L1 weight on the FFN activations (see tinylm.train)


@dataclass(frozen=True)
class E2EConfig:
    """What to train and measure; :func:`quick` is a few minutes, the default far longer."""

    trained: tinylm.LMConfig = field(default_factory=lambda: tinylm.LMConfig(d_model=128, n_layer=4))
    wide: tinylm.LMConfig = field(
        default_factory=lambda: tinylm.LMConfig(d_model=2048, n_layer=4, n_head=16, block_size=512)
    )
    train_steps: int = 3000
    train_batch: int = 32
    train_seq: int = 128
    batches: tuple[int, ...] = (1, 4, 16, 64)
    threads: tuple[int, ...] = (1, 2)
    prompt: int = 64
    decode_tokens: int = 16
    rounds: int = 7
    compiled: bool = True
    seed: int = 0
    activation_l1: float = ACTIVATION_L1  # 0: plain cross-entropy (the activations' natural sparsity)
    train_threads: int = 1  # training's threads (a shared machine trains faster on one)

    @classmethod
    def quick(cls) -> E2EConfig:
        return cls(
            wide=tinylm.LMConfig(d_model=2048, n_layer=2, n_head=16, block_size=512),
            train_steps=600,
            train_batch=16,
            batches=(1, 4),
            threads=(1,),
            prompt=32,
            decode_tokens=8,
            rounds=3,
            compiled=False,
        )


@dataclass
class Subject:
    """A model measured end to end: the dense original and its sparsified copy, and its label."""

    label: str
    dense: tinylm.TinyLM
    ours: tinylm.TinyLM
    replayed: bool
    text: torch.Tensor  # held-out text the measured prompts and decoded tokens come from
    compiled: dict[int, Callable] = field(default_factory=dict)  # threads -> torch.compile'd dense copy
    compile_error: str = ""  # why torch.compile failed here, once it has


def subject(label: str, model: tinylm.TinyLM, replayed: bool, text: torch.Tensor) -> Subject:
    ours = copy.deepcopy(model)
    mt.sparsify_(ours)
    return Subject(label, model.eval(), ours.eval(), replayed, text)


def windows(text: torch.Tensor, batch: int, length: int, seed: int) -> torch.Tensor:
    """``batch`` windows of ``length`` tokens from random places in ``text``."""
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(text) - length, (batch,), generator=gen).tolist()
    return torch.stack([text[s : s + length] for s in starts])


def train_model(
    config: E2EConfig, data: torch.Tensor, *, quiet: bool = False
) -> tuple[tinylm.TinyLM, list[float]]:
    """The trained decoder (90% of the corpus) and its loss curve."""
    torch.manual_seed(config.seed)
    model = tinylm.TinyLM(config.trained)
    split = int(0.9 * len(data))
    losses = tinylm.train(
        model,
        data[:split],
        steps=config.train_steps,
        batch=config.train_batch,
        seq=config.train_seq,
        seed=config.seed,
        quiet=quiet,
        activation_l1=config.activation_l1,
    )
    return model.eval(), losses


def training_records(config: E2EConfig, losses: list[float], patterns: list, notes: str) -> list[Record]:
    """The loss reached and each layer's FFN activation density on held-out text."""
    c = config.trained
    name = (
        f"trained ReLU^2 decoder d_model={c.d_model}, {c.n_layer} layers, FFN {c.hidden}, "
        f"{config.train_steps} steps"
        + (f", activation L1 {config.activation_l1:g}" if config.activation_l1 else "")
    )
    tail = losses[-max(1, len(losses) // 20) :]
    records = [
        Record(
            SYSTEM,
            name,
            "training loss (nats/byte, last 5% of steps)",
            "nats",
            statistics.mean(tail),
            notes=notes,
        )
    ]
    for i, p in enumerate(patterns):
        records.append(
            Record(
                SYSTEM,
                name,
                f"FFN activation density, layer {i}",
                "fraction",
                float(p.mean()),
                notes=notes + "; held-out 10% of the corpus",
            )
        )
    return records


def decode_fn(
    model: tinylm.TinyLM, corpus: torch.Tensor, batch: int, prompt: int, tokens: int, seed: int
) -> Callable[[], None]:
    """``tokens`` decode steps after a prefilled ``prompt`` (teacher-forced with held-out text, so
    every contender does the same work); the cache is rewound on each call."""
    text = windows(corpus, batch, prompt + tokens, seed)
    cache = tinylm.KVCache(model.config, batch, prompt + tokens, model.wte.weight.dtype)
    with torch.inference_mode():
        model(text[:, :prompt], cache)

    def run() -> None:
        cache.length = prompt
        with torch.inference_mode():
            for t in range(prompt, prompt + tokens):
                model(text[:, t : t + 1], cache)

    return run


def prefill_fn(
    model: tinylm.TinyLM, corpus: torch.Tensor, batch: int, prompt: int, seed: int
) -> Callable[[], None]:
    """One forward pass over ``prompt`` tokens of held-out text per sequence, filling a fresh KV
    cache."""
    text = windows(corpus, batch, prompt, seed)

    def run() -> None:
        with torch.inference_mode():
            model(text, tinylm.KVCache(model.config, batch, prompt, model.wte.weight.dtype))

    return run


def clock(threads: int) -> tuple[Callable[[], float], str]:
    """This thread's CPU time on 1 thread (robust to other load), wall clock with more."""
    if threads == 1:
        return time.thread_time, "clock=thread_time"
    return time.perf_counter, "clock=wall"


def _part(name: str) -> str | None:
    if name.endswith("mlp.c_proj"):
        return "FFN down"
    if name.endswith("mlp.c_fc") or name.endswith("mlp.act"):
        return "FFN up"
    if name.endswith(".attn"):
        return "attention"
    return None


def breakdown(
    model: nn.Module, fn: Callable[[], None], tick: Callable[[], float], calls: int
) -> dict[str, float]:
    """Seconds per call of ``fn`` spent in each of :data:`PARTS` (medians over ``calls`` calls),
    timed by hooks around the modules (``rest``: embeddings, norms, the head, Python)."""
    spent: dict[str, float] = {}
    started: dict[str, float] = {}
    hooks = []
    for name, module in model.named_modules():
        part = _part(name)
        if part is None:
            continue

        def pre(m, args, name=name):
            started[name] = tick()

        def post(m, args, out, name=name, part=part):
            spent[part] = spent.get(part, 0.0) + tick() - started[name]

        hooks += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    samples: dict[str, list[float]] = {p: [] for p in PARTS}
    try:
        for _ in range(calls):
            spent.clear()
            start = tick()
            fn()
            total = tick() - start
            for p in PARTS[:-1]:
                samples[p].append(spent.get(p, 0.0))
            samples["rest"].append(total - sum(spent.values()))
    finally:
        for h in hooks:
            h.remove()
    return {p: statistics.median(v) for p, v in samples.items()}


def weight_bytes(model: tinylm.TinyLM) -> tuple[int, int]:
    """Bytes of weights a decode step reads (every linear layer and the tied head) and, of those,
    the FFN down projections'."""
    total = model.wte.weight.numel() * model.wte.weight.element_size()
    down = 0
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, mt.MaskedLinear)):
            size = module.weight.numel() * module.weight.element_size()
            total += size
            down += size if name.endswith("mlp.c_proj") else 0
    return total, down


def ideal_bound(model: tinylm.TinyLM, density: float) -> float:
    """Speed-up of a batch-1 decode step bound by weight bytes read, when the FFN down projections
    read only the rows of their non-zero inputs: total bytes / bytes left."""
    total, down = weight_bytes(model)
    return total / (total - down * (1.0 - density))


def density_note(model: nn.Module) -> tuple[float, str]:
    """The mean activation density the swapped layers saw, and a note with each layer's and the
    planner's choices."""
    report = mt.layer_report(model)
    rows = sum(r.rows for r in report)
    mean = sum(r.density * r.rows for r in report) / rows if rows else float("nan")
    methods: dict[str, int] = {}
    for r in report:
        for k, v in r.methods.items():
            methods[k] = methods.get(k, 0) + v
    per_layer = ", ".join("kept dense" if r.kept_dense else f"{r.density:.3f}" for r in report)
    chosen = ", ".join(f"{k} {v}" for k, v in sorted(methods.items()))
    return mean, f"activation density {mean:.3f} (per layer {per_layer}); planner chose: {chosen}"


@dataclass(frozen=True)
class Case:
    """One measured point: a model, a phase, a batch size and a thread count."""

    subject: Subject
    phase: str
    batch: int
    threads: int


def steady(model: nn.Module) -> bool:
    """Whether every swapped layer of ``model`` has settled: retired, or every case's trial over
    and its last call not dense (a dense streak may still end in retiring)."""
    for m in model.modules():
        if isinstance(m, mt.MaskedLinear) and not m.report.retired:
            if m._streak.dense or any(c.settled is None for c in m._choices.values()):
                return False
    return True


def warm_up(model: nn.Module, fn: Callable[[], None], least: int, most: int) -> int:
    """Call ``fn`` at least ``least`` and at most ``most`` times, until ``model`` is steady;
    returns the calls made."""
    for calls in range(1, most + 1):
        fn()
        if calls >= least and steady(model):
            return calls
    return most


def _workload(case: Case) -> str:
    return f"{case.phase}, batch {case.batch}, {case.threads} thread(s), {case.subject.label}"


def case_records(case: Case, config: E2EConfig, base_notes: str) -> list[Record]:
    """Tokens/s ours vs plain torch (and torch.compile when configured) for one case, plus the
    per-layer breakdown and the ideal bound for decode."""
    s, seed = case.subject, config.seed + case.batch
    if case.phase == "decode":
        make = lambda m: decode_fn(m, s.text, case.batch, config.prompt, config.decode_tokens, seed)  # noqa: E731
        tokens = case.batch * config.decode_tokens
    else:
        make = lambda m: prefill_fn(m, s.text, case.batch, config.prompt, seed)  # noqa: E731
        tokens = case.batch * config.prompt
    tick, clock_note = clock(case.threads)
    records = []
    with torch_threads(case.threads):
        ours, peer = make(s.ours), make(s.dense)
        mt.reset_layer_report(s.ours)
        # steady state: the layers' trials settle and layers dense on every call retire (a decode
        # step calls each layer once per token; a prefill once)
        per_call = config.decode_tokens if case.phase == "decode" else 1
        cap = max(mt.TRIAL_CALLS, -(-(mt.RETIRE_AFTER + 1) // per_call) if case.phase == "decode" else 0)
        warmup = warm_up(s.ours, ours, mt.TRIAL_CALLS, cap)
        comparison = compare(ours, peer, rounds=config.rounds, warmup=1, clock=tick)
        density, dnote = density_note(s.ours)
        notes = (
            f"{'replayed activation patterns; ' if s.replayed else ''}{dnote}; ours warmed up with "
            f"{warmup} calls (until trials settle and layers dense on every call retire; steady: "
            f"{steady(s.ours)}); {clock_note}; {base_notes}"
        )
        if case.phase == "decode" and case.batch == 1:
            bound = ideal_bound(s.dense, density)
            notes += f"; {BOUND} {bound:.2f}x, ours reaches {comparison.ratio / bound:.0%} of it"
        records.append(_tokens_record(comparison, _workload(case), TORCH, tokens, notes))
        if case.phase == "decode" and case.batch == 1:
            records.append(_control_record(case, make, peer, tokens, tick, config, clock_note))
        if config.compiled:
            records += _compiled_records(case, make, ours, tokens, tick, config, notes)
        if case.phase == "decode":
            records += _breakdown_records(case, ours, peer, tick, config, notes)
    return records


def _tokens_record(comparison, workload: str, peer: str, tokens: int, notes: str) -> Record:
    return Record(
        SYSTEM,
        workload,
        "tokens/s",
        "tokens/s",
        tokens / comparison.ours.median,
        peer,
        tokens / comparison.peer.median,
        higher_is_better=True,
        spread={
            "ours_s": [comparison.ours.min, comparison.ours.median, comparison.ours.max],
            "peer_s": [comparison.peer.min, comparison.peer.median, comparison.peer.max],
            "rounds": comparison.rounds,
        },
        notes=notes,
    )


CONTROL = "tokens/s, control: a copy of the dense model in ours' place"


def _control_record(case: Case, make, peer, tokens: int, tick, config: E2EConfig, clock_note: str) -> Record:
    """Plain torch against a copy of itself, timed like ours: how far from 1.0x noise and
    placement alone move a ratio in this run (the floor of 0.95x is judged against it)."""
    copy_of_dense = make(copy.deepcopy(case.subject.dense))
    comparison = compare(copy_of_dense, peer, rounds=config.rounds, warmup=1, clock=tick)
    record = _tokens_record(
        comparison,
        _workload(case),
        TORCH,
        tokens,
        f"the same dense model twice: ratios away from 1.0x are noise of this run; {clock_note}",
    )
    record.metric = CONTROL
    return record


def _compiled_records(
    case: Case, make, ours, tokens: int, tick, config: E2EConfig, notes: str
) -> list[Record]:
    """Ours vs ``torch.compile`` of the dense model, or a record saying why it could not run.

    One compiled copy per model and thread count (inductor's CPU kernels fix their threads when
    they are built) serves every batch size and phase, as a served model would."""
    s = case.subject
    import torch._dynamo.config as dynamo_config

    # every TinyLM copy shares one forward code object, and each batch, phase, cache length and
    # thread count adds a guard: past dynamo's default of 8 recompiles it silently runs eager
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 128)
    dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 1024)
    try:
        if s.compile_error:
            raise RuntimeError(s.compile_error)
        if case.threads not in s.compiled:
            s.compiled[case.threads] = torch.compile(copy.deepcopy(s.dense))
        compiled = s.compiled[case.threads]
        peer = make(compiled)
        peer()
    except Exception as exc:  # noqa: BLE001  torch.compile fails in many ways on CPU (no compiler...)
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        s.compile_error = reason
        return [
            Record(
                SYSTEM,
                _workload(case),
                "tokens/s",
                "tokens/s",
                float("nan"),
                COMPILED,
                None,
                notes=f"torch.compile unavailable here ({reason}); {notes}",
            )
        ]
    comparison = compare(ours, peer, rounds=config.rounds, warmup=1, clock=tick)
    return [_tokens_record(comparison, _workload(case), COMPILED, tokens, notes)]


def _breakdown_records(case: Case, ours, peer, tick, config: E2EConfig, notes: str) -> list[Record]:
    """Decode milliseconds per token in each part of the model, ours vs plain torch."""
    per_token = case.batch * config.decode_tokens
    mine = breakdown(case.subject.ours, ours, tick, config.rounds)
    theirs = breakdown(case.subject.dense, peer, tick, config.rounds)
    return [
        Record(
            SYSTEM,
            _workload(case),
            f"decode ms per token: {part}",
            "ms",
            1e3 * mine[part] / per_token,
            TORCH,
            1e3 * theirs[part] / per_token,
            notes=f"timed by hooks around the modules (medians of {config.rounds} calls); {notes}",
        )
        for part in PARTS
    ]


def subjects(
    config: E2EConfig, *, quiet: bool = False, corpus_path=None
) -> tuple[list[Subject], list[Record]]:
    """Train the small decoder, then build both measured models; returns them and the training
    records."""
    from frugalml.common.data import resolve

    path = resolve(CORPUS, path=corpus_path, hint="the tiny Shakespeare corpus (karpathy/char-rnn)")
    data = tinylm.corpus_bytes(path)
    with torch_threads(config.train_threads):
        trained, losses = train_model(config, data, quiet=quiet)
    held_out = data[int(0.9 * len(data)) :]
    patterns = tinylm.ffn_patterns(trained, held_out, seq=config.train_seq)
    note = f"corpus {CORPUS} (byte level); {env.machine(load=True)}; {SHARED_NOTE}"
    records = training_records(config, losses, patterns, note)
    w = config.wide
    wide = tinylm.replayed(w, patterns, seed=config.seed)
    c = config.trained
    return [
        subject(
            f"trained d_model={c.d_model} ({c.n_layer} layers, FFN {c.hidden})", trained, False, held_out
        ),
        subject(
            f"replayed d_model={w.d_model} ({w.n_layer} layers, FFN {w.hidden}), trained patterns",
            wide,
            True,
            held_out,
        ),
    ], records


def run(
    config: E2EConfig,
    *,
    quiet: bool = False,
    corpus_path=None,
    checkpoint: Callable[[list[Record]], None] | None = None,
) -> list[Record]:
    """Train, then measure every subject x phase x batch x thread count, smaller batches first;
    ``checkpoint`` receives the records so far after each case (a long run keeps what it measured)."""
    from frugalml.common.progress import progress

    models, records = subjects(config, quiet=quiet, corpus_path=corpus_path)
    base = f"{env.machine(load=True)}; {SHARED_NOTE}; torch {torch.__version__}"
    cases = [
        Case(s, phase, b, t)
        for b in sorted(config.batches)
        for s in models
        for t in config.threads
        for phase in ("decode", "prefill")
    ]
    for case in progress(cases, desc="e2e", quiet=quiet):
        records += case_records(case, config, base)
        if checkpoint is not None:
            checkpoint(records)
    return records


def plot(records: list[Record], path) -> None:
    """Decode and prefill speed-up over plain torch against batch size, per model and threads."""
    fig, axes = new_figure(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, phase in zip(axes, ("decode", "prefill"), strict=True):
        curves: dict[str, list[tuple[int, float]]] = {}
        for r in records:
            if r.metric != "tokens/s" or r.peer != TORCH or not r.workload.startswith(phase):
                continue
            _, batch, threads, label = r.workload.split(", ", 3)
            key = f"{label.split(' (')[0]}, {threads}"
            curves.setdefault(key, []).append((int(batch.split()[1]), r.ratio or float("nan")))
        for key, points in sorted(curves.items()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=key)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_title(f"{phase}: ours vs plain torch (tokens/s ratio)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("speed-up (ours / torch tokens/s)")
    save_plot(fig, path)


def goal_lines(records: list[Record]) -> list[str]:
    """How the measured figures stand against the targets (batch-1 decode on 1 thread)."""
    lines = []
    for r in records:
        if (
            r.peer == TORCH
            and r.metric == "decode ms per token: FFN down"
            and ", batch 1, 1 thread" in r.workload
        ):
            lines.append(
                f"FFN down, decode batch 1, 1 thread, {r.workload.split(', ', 3)[3]}: "
                f"{r.ratio:.2f}x (target >= 2x at >= 90% zeros)"
            )
        if r.peer == TORCH and r.metric == "tokens/s" and r.workload.startswith("decode, batch 1, 1 thread"):
            bound = r.notes.split(f"{BOUND} ")[-1].split(";")[0]
            lines.append(
                f"whole-model decode, batch 1, 1 thread, {r.workload.split(', ', 3)[3]}: "
                f"{r.ratio:.2f}x (target >= 1.2x; bound {bound})"
            )
    for r in records:
        if r.metric == CONTROL and ", 1 thread" in r.workload:
            lines.append(f"control, {r.workload}: dense copy vs dense {r.ratio:.2f}x (the run's noise)")
    worst = [r for r in records if r.peer == TORCH and r.metric == "tokens/s" and (r.ratio or 0) < 0.95]
    for r in worst:
        lines.append(f"below 0.95x of torch: {r.workload}: {r.ratio:.2f}x")
    return lines


def configure(
    *,
    quick: bool = False,
    steps: int | None = None,
    rounds: int | None = None,
    activation_l1: float | None = None,
    threads: tuple[int, ...] | None = None,
    batches: tuple[int, ...] | None = None,
    prompt: int | None = None,
) -> E2EConfig:
    """The full or quick configuration, with the given settings overridden."""
    from dataclasses import replace

    from frugalml.common.errors import InvalidInputError

    config = E2EConfig.quick() if quick else E2EConfig()
    changes: dict = {}
    for name, value in (("steps", steps), ("rounds", rounds), ("prompt", prompt)):
        if value is not None and not 1 <= value <= 1_000_000:
            raise InvalidInputError(f"--{name} must lie between 1 and 1000000, got {value}")
    if prompt is not None:
        if prompt + config.decode_tokens > min(config.trained.block_size, config.wide.block_size):
            raise InvalidInputError(
                f"--prompt {prompt} and {config.decode_tokens} decoded tokens exceed the models' "
                f"{min(config.trained.block_size, config.wide.block_size)} positions"
            )
        changes["prompt"] = prompt
    if steps is not None:
        changes["train_steps"] = steps
    if rounds is not None:
        changes["rounds"] = rounds
    if activation_l1 is not None:
        if not 0 <= activation_l1 <= 100:
            raise InvalidInputError(f"--activation-l1 must lie between 0 and 100, got {activation_l1}")
        changes["activation_l1"] = activation_l1
    for name, values in (("threads", threads), ("batches", batches)):
        if values is not None:
            if not values or min(values) < 1 or max(values) > 4096:
                raise InvalidInputError(f"--{name} needs positive integers up to 4096, got {values}")
            changes[name] = tuple(values)
    return replace(config, **changes)


def publish(records: list[Record], path) -> None:
    """Print the records and how they stand against the targets; write JSON and a PNG beside."""
    from pathlib import Path

    from frugalml.common.report import print_table, write_json

    print_table(records, title=f"maskedmm end to end ({env.machine(load=True)})")
    for line in goal_lines(records):
        print(line)
    write_json(records, path)
    plot(records, Path(path).with_suffix(".png"))
    print(f"wrote {path} and {Path(path).with_suffix('.png')}")
