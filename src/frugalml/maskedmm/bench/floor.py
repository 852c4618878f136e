"""The floor: where skipping cannot pay, a sparsified model must run as fast as plain torch.

The trained small decoder (``d_model`` 128, FFN 512) decodes one sequence at a time, where its
down projections (512 -> 128, one row) are dense on every call: torch's own linear takes about
11 us there, less than any skipping call costs. This measures its decode tokens/s with
``sparsify_`` against the same model in plain torch, interleaved, on 1 and 2 threads:

* ``retired``: in steady state (every down projection has retired to ``nn.Linear``'s own
  forward after :data:`~frugalml.maskedmm.torch.RETIRE_AFTER` dense calls in a row);
* ``before retiring``: each timed call right after :func:`~frugalml.maskedmm.torch.reset_layer_report`,
  so every layer goes through the planner's checks (the first tokens a fresh model decodes);
* ``control``: a copy of the dense model in ours' place, the noise of the run;
* prefill of 32 tokens at batch 1 and 4, where the planner may offer the masked kernel and each
  layer settles by its trials (ours after they settle, and a control).

One thread is timed by the calling thread's CPU time, two threads by the wall clock and, in a
second record, by the process's CPU time (robust to other work on a shared machine, but it adds
the threads' work up instead of measuring the wait).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch

from frugalml.common import env
from frugalml.common.report import Record
from frugalml.common.threads import torch_threads
from frugalml.common.timing import compare
from frugalml.maskedmm import torch as mt
from frugalml.maskedmm.bench import e2e, tinylm

GOAL = 0.95  # ours / torch decode tokens/s at batch 1 where the planner picks dense


def _clocks(threads: int) -> list[tuple[Callable[[], float], str]]:
    if threads == 1:
        return [(time.thread_time, "clock=thread_time")]
    return [(time.perf_counter, "clock=wall"), (time.process_time, "clock=process CPU time")]


def measure(
    model: tinylm.TinyLM,
    text: torch.Tensor,
    *,
    threads: tuple[int, ...] = (1, 2),
    rounds: int = 31,
    tokens: int = 16,
    prompt: int = 64,
    label: str = "",
) -> list[Record]:
    """Records of ours (retired, before retiring) and a dense copy against plain torch."""
    subject = e2e.subject(label, model, False, text)
    records = []
    for t in threads:
        with torch_threads(t):
            make = lambda m: e2e.decode_fn(m, text, 1, prompt, tokens, seed=1)  # noqa: E731
            ours, peer, control = make(subject.ours), make(subject.dense), make(copy.deepcopy(subject.dense))

            def fresh(ours=ours) -> None:
                mt.reset_layer_report(subject.ours)
                ours()

            for tick, clock_note in _clocks(t):
                base = f"{clock_note}; {rounds} strictly alternating rounds; {env.machine(load=True)}"
                mt.reset_layer_report(subject.ours)
                for _ in range(-(-(mt.RETIRE_AFTER + 1) // tokens)):
                    ours()  # until every layer dense on every call retires
                retired = all(r.retired or r.kept_dense for r in mt.layer_report(subject.ours))
                report = "; ".join(str(r) for r in mt.layer_report(subject.ours))
                for what, fn, note in (
                    ("retired", ours, f"every down projection retired: {retired}; {report}"),
                    ("before retiring", fresh, "layer reports reset before each timed call"),
                    ("control: a copy of the dense model in ours' place", control, "noise of the run"),
                ):
                    c = compare(fn, peer, rounds=rounds, clock=tick, order="alternate")
                    workload = f"decode, batch 1, {t} thread(s), {label}"
                    records.append(_record(workload, what, c, tokens, f"{note}; {base}"))
            mt.reset_layer_report(subject.ours)
            records += _prefill_records(subject, text, t, rounds, label)
    return records


def _record(workload: str, what: str, c, tokens: int, notes: str) -> Record:
    return Record(
        e2e.SYSTEM,
        workload,
        f"tokens/s, {what}",
        "tokens/s",
        tokens / c.ours.median,
        e2e.TORCH,
        tokens / c.peer.median,
        higher_is_better=True,
        spread={
            "ours_s": [c.ours.min, c.ours.median, c.ours.max],
            "peer_s": [c.peer.min, c.peer.median, c.peer.max],
            "rounds": c.rounds,
        },
        notes=f"{notes}; goal >= {GOAL}x; {e2e.SHARED_NOTE}",
    )


def _prefill_records(
    subject: e2e.Subject, text: torch.Tensor, threads: int, rounds: int, label: str, prompt: int = 32
) -> list[Record]:
    """Prefill of ``prompt`` tokens at batch 1 and 4 (the layers plan and, where the planner
    offers a skipping method, settle by their trials): ours after the trials vs plain torch, and a
    dense copy vs plain torch. One thread: thread CPU time; more: wall clock."""
    records = []
    for batch in (1, 4):
        make = lambda m, b=batch: e2e.prefill_fn(m, text, b, prompt, seed=b)  # noqa: E731
        workload = f"prefill {prompt} tokens, batch {batch}, {threads} thread(s), {label}"
        records += _settled_records(
            subject, make, workload, _clocks(threads)[:1], rounds, batch * prompt, rows=batch * prompt
        )
    mt.reset_layer_report(subject.ours)
    return records


def _settled_records(
    subject, make, workload: str, clocks, rounds: int, tokens: int, rows: int
) -> list[Record]:
    """Ours after its layers' trials settle, and a copy of the dense model in ours' place (the run's
    noise), against plain torch on each of ``clocks``; ``make(model)`` gives the timed call, whose
    down projections take ``rows`` rows."""
    ours, peer, control = make(subject.ours), make(subject.dense), make(copy.deepcopy(subject.dense))
    mt.reset_layer_report(subject.ours)
    for _ in range(mt.TRIAL_CALLS):
        ours()
    _, chosen = e2e.density_note(subject.ours)
    chosen += f"; {trial_note(subject.ours, rows, torch.get_num_threads())}"
    records = []
    for tick, clock_note in clocks:
        base = f"{clock_note}; {rounds} strictly alternating rounds; {env.machine(load=True)}"
        for what, fn, note in (
            ("after the trials settle", ours, chosen),
            ("control: a copy of the dense model in ours' place", control, "noise of the run"),
        ):
            c = compare(fn, peer, rounds=rounds, clock=tick, order="alternate")
            records.append(_record(workload, what, c, tokens, f"{note}; {base}"))
    return records


def trial_note(model: torch.nn.Module, rows: int, threads: int) -> str:
    """How the swapped layers' trials at ``rows`` rows on ``threads`` threads settled: per case
    judged, the candidate kept and what judged it (own times; periods where they overruled own
    times; both where both said skipping wins)."""
    settled: dict[str, int] = {}
    for m in model.modules():
        if isinstance(m, mt.MaskedLinear):
            for case, choice in m._choices.items():
                if choice.judged_by and case[:2] == (rows, threads):
                    key = f"{choice.settled} by {choice.judged_by}"
                    settled[key] = settled.get(key, 0) + 1
    shown = ", ".join(f"{k} {v}" for k, v in sorted(settled.items())) or "none"
    return f"trials settled (cases): {shown}"


def decode_batch_records(
    model: tinylm.TinyLM,
    text: torch.Tensor,
    batches: tuple[int, ...],
    *,
    threads: tuple[int, ...] = (1, 2),
    rounds: int = 31,
    tokens: int = 16,
    prompt: int = 64,
    label: str = "",
) -> list[Record]:
    """Decode at each of ``batches`` (rows per down projection call = batch): ours after the
    layers' trials settle, and a dense copy, against plain torch (clocks as :func:`measure`)."""
    subject = e2e.subject(label, model, False, text)
    records = []
    for t in threads:
        with torch_threads(t):
            for batch in batches:
                make = lambda m, b=batch: e2e.decode_fn(m, text, b, prompt, tokens, seed=b)  # noqa: E731
                workload = f"decode, batch {batch}, {t} thread(s), {label}"
                records += _settled_records(
                    subject, make, workload, _clocks(t), rounds, batch * tokens, rows=batch
                )
            mt.reset_layer_report(subject.ours)
    return records


def run(
    *,
    steps: int = 600,
    rounds: int = 31,
    threads: tuple[int, ...] = (1, 2),
    corpus_path=None,
    quiet=False,
    decode_batches: tuple[int, ...] = (),
) -> list[Record]:
    """Train the small decoder (the e2e quick recipe with ``steps``), then :func:`measure` it, or,
    given ``decode_batches``, measure decode at those batch sizes instead."""
    from dataclasses import replace

    from frugalml.common.data import resolve

    config = replace(e2e.E2EConfig.quick(), train_steps=steps)
    path = resolve(e2e.CORPUS, path=corpus_path, hint="the tiny Shakespeare corpus (karpathy/char-rnn)")
    data = tinylm.corpus_bytes(path)
    with torch_threads(1):
        model, losses = e2e.train_model(config, data, quiet=quiet)
    held_out = data[int(0.9 * len(data)) :]
    patterns = tinylm.ffn_patterns(model, held_out, seq=config.train_seq)
    records = e2e.training_records(config, losses, patterns, f"{env.machine(load=True)}; {e2e.SHARED_NOTE}")
    c = config.trained
    label = f"trained d_model={c.d_model} ({c.n_layer} layers, FFN {c.hidden})"
    if decode_batches:
        return records + decode_batch_records(
            model, held_out, decode_batches, threads=threads, rounds=rounds, label=label
        )
    return records + measure(model, held_out, threads=threads, rounds=rounds, label=label)
