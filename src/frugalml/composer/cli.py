"""``frugal composer``: search, aggregate, pareto, extrapolate, train, compare engines, reproduce, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from frugalml.common.errors import InvalidInputError

app = typer.Typer(
    help="Search hybrid architectures on cheap proxies and extrapolate the winners.", no_args_is_help=True
)

QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")


def _primitives(text: str) -> str:
    from frugalml.common.parsing import comma_list

    symbols = "".join(comma_list(text, name="primitive"))
    if not symbols:
        raise InvalidInputError("give primitives like A,M")
    return symbols


def _check_run(layers: int, seed: int, threads: int, workers: int, executor: str) -> None:
    """Bounds of the sizes a search asks for, before any model, pool or data is made."""
    import os

    from frugalml.common.validate import bounded
    from frugalml.composer.limits import MAX_SEARCH_LAYERS, MAX_SEED, MAX_WORKERS

    bounded(layers, "layers", 1, MAX_SEARCH_LAYERS)
    bounded(seed, "seed", 0, MAX_SEED)
    bounded(threads, "threads", 1, 4 * (os.cpu_count() or 1), " (4 per core of this machine at most)")
    cores = os.cpu_count() or 1
    if executor == "ray":
        bounded(workers, "workers", 1, MAX_WORKERS)
    else:
        bounded(workers, "workers", 1, cores, f" (local processes: this machine has {cores} cores; use Ray)")


def _check_proxy_memory(proxy, symbols: str, layers: int) -> None:
    """Refuse a proxy whose heaviest candidate would not fit in the memory available now."""
    from frugalml.common.validate import check_memory
    from frugalml.composer.limits import training_bytes
    from frugalml.composer.model import non_embedding_params

    layer = proxy.shape.layer()
    seq = max((t.seq_len for t in proxy.tasks), default=1) if hasattr(proxy, "tasks") else proxy.seq_len
    check_memory(
        training_bytes(
            params=max(non_embedding_params(c * layers, layer) for c in symbols) + 256 * layer.width,
            width=layer.width,
            layers=layers,
            attention_layers=layers,
            heads=layer.heads,
            batch=proxy.train.batch_size,
            seq_len=seq,
        ),
        f"training a {layers}-layer candidate at width {layer.width}",
        "lower --width or --layers",
    )


def _proxy(proxy: str, preset: str, tasks: str, steps: int, width: int, corpus: str, threads: int):
    from frugalml.common.parsing import comma_list
    from frugalml.common.validate import bounded, one_of
    from frugalml.composer.limits import MAX_WIDTH
    from frugalml.composer.mad import preset as mad_preset
    from frugalml.composer.proxies import LMProxy, MADProxy, ModelShape, TrainConfig

    one_of(proxy, ("mad", "lm"), "proxy")
    bounded(width, "width", 1, MAX_WIDTH)
    heads = 2 if width % 4 else 4
    shape = ModelShape(width=width, heads=heads, kv_heads=max(1, heads // 2))
    if proxy == "lm":
        return LMProxy(corpus=corpus, shape=shape, train=TrainConfig(steps=steps, threads=threads))
    return MADProxy(
        tasks=tuple(mad_preset(preset, comma_list(tasks, name="task") or None)),
        shape=shape,
        train=TrainConfig(steps=steps, threads=threads),
    )


@app.command()
def search(
    primitives: str = typer.Option("A,M", help="Primitives to search over, comma-separated."),
    layers: int = typer.Option(6, help="Layers of the searched architectures."),
    proxy: str = typer.Option("mad", help="Proxy: mad (synthetic tasks) or lm (byte-level LM)."),
    engine: str = typer.Option(
        "bo", help="bo, bo-hamming, bo-mixed, botorch, random, evolution, tpe, exhaustive."
    ),
    budget: int = typer.Option(40, help="Distinct evaluations."),
    acquisition: str = typer.Option("log-ei", help="BO acquisition: log-ei, ucb or thompson."),
    strategy: str = typer.Option("one-shot", help="one-shot, end-incremental or middle-incremental."),
    step: int = typer.Option(2, help="Layers searched per round of the incremental strategies."),
    preset: str = typer.Option("cpu", help="MAD settings: cpu (small) or published."),
    tasks: str = typer.Option("recall,memorization", help="MAD tasks, comma-separated."),
    steps: int = typer.Option(300, help="Training steps per candidate."),
    width: int = typer.Option(32, help="Search-scale width of the primitives."),
    corpus: str = typer.Option("stdlib", help="LM proxy corpus: stdlib or a text file path."),
    seed: int = typer.Option(0, help="Seed of the engine and the training."),
    executor: str = typer.Option("local", help="local (process pool), inline or ray."),
    workers: int = typer.Option(1, help="Parallel evaluations (local processes or Ray CPUs)."),
    address: str = typer.Option(None, help="Ray cluster address (e.g. auto); default a local Ray."),
    cache: Path = typer.Option(Path("composer-cache.sqlite"), help="Result cache; rerun to resume."),
    threads: int = typer.Option(1, help="torch threads per evaluation."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the search history as JSON here."),
    plot: Path = typer.Option(None, help="Write a PNG of best score against evaluations."),
    quiet: bool = QUIET,
):
    """Search architectures, e.g. ``frugal composer search --primitives A,M --layers 6 --engine bo``."""
    from rich.console import Console
    from tqdm.auto import tqdm

    from frugalml.common.files import atomic_write
    from frugalml.common.validate import one_of
    from frugalml.composer.cache import ResultCache
    from frugalml.composer.engines import ACQUISITIONS, BO_KERNELS, ENGINES, Space
    from frugalml.composer.evaluator import Evaluator, make_executor
    from frugalml.composer.strategies import STRATEGIES
    from frugalml.composer.strategies import search as run_search

    symbols = _primitives(primitives)
    _check_run(layers, seed, threads, workers, executor)
    Space(symbols, layers)
    one_of(engine, ENGINES, "engine")
    one_of(strategy, STRATEGIES, "strategy")
    one_of(acquisition, ACQUISITIONS, "acquisition")
    options = {"acquisition": acquisition} if engine in BO_KERNELS else {}
    if budget < 1:
        raise InvalidInputError(f"budget must be at least 1 evaluation, got {budget}")
    chosen_proxy = _proxy(proxy, preset, tasks, steps, width, corpus, threads)
    _check_proxy_memory(chosen_proxy, symbols, layers)
    results = ResultCache(cache)
    ex = make_executor(executor, workers=workers, address=address)
    evaluator = Evaluator(chosen_proxy, results, ex, seeds=(seed,))
    bar = tqdm(total=budget, desc=f"{engine} search", disable=quiet or not sys.stderr.isatty(), leave=False)

    def shown(arch: str, score: float) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{arch} {score:.4f}")

    try:
        result = run_search(
            evaluator.scores,
            symbols,
            layers,
            engine=engine,
            budget=budget,
            strategy=strategy,
            step=step,
            seed=seed,
            batch=workers,
            on_result=shown,
            **options,
        )
    finally:
        bar.close()
        ex.close()
    best, score = result.best
    doc = {
        "primitives": symbols,
        "layers": layers,
        "proxy": chosen_proxy.name,
        "config": chosen_proxy.config(),
        "engine": engine,
        "strategy": strategy,
        "seed": seed,
        "history": [{"arch": a, "score": s} for a, s in result.history],
        "best": {"arch": best, "score": score},
        "fresh_evaluations": evaluator.fresh,
        "cached_evaluations": evaluator.cached,
    }
    if out:
        with atomic_write(out, "w") as f:
            json.dump(doc, f, indent=1)
    if plot:
        from frugalml.common.report import new_figure, save_plot

        fig, ax = new_figure(figsize=(5, 3.5))
        ax.plot(range(1, len(result.history) + 1), result.best_so_far(), marker=".")
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"best {chosen_proxy.name} score")
        ax.set_title(f"{engine} {strategy} search")
        save_plot(fig, plot)
    Console().print(
        f"best {best} score {score:.4f} after {len(result.history)} evaluations "
        f"({evaluator.fresh} run, {evaluator.cached} from the cache {cache})"
    )


def _scored(path: Path) -> tuple[list[str], list[float]]:
    """Architectures and scores of a search history ('search --out') or a tabular benchmark."""
    from frugalml.common.errors import CorruptFileError, DataNotFoundError

    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; write one with 'frugal composer search --out'")
    try:
        doc = json.loads(path.read_text())
        if "history" in doc:
            pairs = [(h["arch"], float(h["score"])) for h in doc["history"]]
        else:
            pairs = [(str(a), float(s)) for a, s in doc["scores"].items()]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptFileError(f"{path} is not a search history or tabular benchmark ({exc})") from None
    if not pairs:
        raise CorruptFileError(f"{path} holds no scored architectures")
    return [a for a, _ in pairs], [s for _, s in pairs]


@app.command()
def aggregate(
    results: Path = typer.Argument(..., help="A search history ('search --out') or a tabular benchmark."),
    method: str = typer.Option("N0", help="N0, N1, Nall, best-single, or all (prints each)."),
    k: int = typer.Option(5, help="k-means clusters on the scores."),
):
    """Aggregate scored architectures into one (k-means top cluster + per-layer voting)."""
    from frugalml.common.validate import one_of
    from frugalml.composer.aggregation import METHODS
    from frugalml.composer.aggregation import aggregate as run_aggregate

    one_of(method, (*METHODS, "all"), "method")
    archs, scores = _scored(results)
    full = max(len(a) for a in archs)
    keep = [i for i, a in enumerate(archs) if len(a) == full]
    for m in METHODS if method == "all" else [method]:
        print(f"{m}: {run_aggregate([archs[i] for i in keep], [scores[i] for i in keep], m, k)}")


@app.command()
def pareto(
    results: Path = typer.Argument(..., help="A search history ('search --out') or a tabular benchmark."),
    cost: str = typer.Option("kv", help="kv (KV-cache bytes), flops (per token) or params."),
    seq_len: int = typer.Option(2048, help="Context length the KV cache and FLOPs are counted at."),
    width: int = typer.Option(2048, help="Model width the costs are counted at (default: Llama-3.2-1B)."),
    heads: int = typer.Option(32, help="Attention heads."),
    kv_heads: int = typer.Option(8, help="Key/value heads."),
    png: Path = typer.Option(None, "--png", help="Write a PNG of score against cost with the front."),
):
    """Architectures no other beats on both score and cost, e.g. ``pareto h.json --cost kv --png f.png``."""
    from frugalml.common.validate import bounded, one_of
    from frugalml.composer.aggregation import pareto_front
    from frugalml.composer.limits import MAX_WIDTH
    from frugalml.composer.model import HybridConfig, flops_per_token, kv_cache_bytes, param_count

    one_of(cost, ("kv", "flops", "params"), "cost")
    bounded(seq_len, "seq_len", 1, 2**40)
    bounded(width, "width", 1, MAX_WIDTH)
    archs, scores = _scored(results)
    measure = {
        "kv": lambda c: kv_cache_bytes(c, seq_len),
        "flops": lambda c: flops_per_token(c, seq_len),
        "params": param_count,
    }[cost]
    costs = [float(measure(HybridConfig.make(a, width=width, heads=heads, kv_heads=kv_heads))) for a in archs]
    front = pareto_front(scores, costs)
    unit = {
        "kv": f"KV-cache bytes at {seq_len} tokens",
        "flops": f"FLOPs/token at {seq_len} tokens",
        "params": "parameters",
    }[cost]
    print(f"{len(front)} of {len(archs)} architectures on the front (score vs {unit}, width {width})")
    for i in front:
        print(f"{archs[i]}  score {scores[i]:.4f}  cost {costs[i]:.4g}")
    if png:
        from frugalml.common.report import new_figure, save_plot

        fig, ax = new_figure(figsize=(5.5, 4))
        ax.scatter(costs, scores, s=12, alpha=0.5, label="evaluated")
        ax.plot([costs[i] for i in front], [scores[i] for i in front], "o-", color="C3", label="Pareto front")
        for i in front:
            ax.annotate(archs[i], (costs[i], scores[i]), fontsize=6)
        ax.set_xlabel(unit)
        ax.set_ylabel("score")
        ax.legend(fontsize=7)
        save_plot(fig, png)


@app.command()
def extrapolate(
    arch: str = typer.Option(..., help="The searched architecture, e.g. AAMMMM."),
    target: str = typer.Option("llama3.2-1b", help="llama3.2-1b or llama3.2-3b."),
    mode: str = typer.Option("stack", help="stack or stretch."),
    layers: int = typer.Option(None, help="Grow to this many layers instead of a parameter target."),
    params: int = typer.Option(None, help="Grow to this many non-embedding parameters."),
):
    """Grow an architecture to a target size (stack or stretch), e.g. AAMMMM -> 27 layers at 1B."""
    from frugalml.composer.extrapolation import extrapolate as run

    e = run(arch, mode=mode, target=target, layers=layers, params=params)
    print(
        f"{e.arch}  ({e.layers} layers, {e.attention_layers} attention, scale {e.scale:.3f}, "
        f"{e.non_embedding_params / 1e6:.1f}M non-embedding parameters)"
    )


@app.command()
def train(
    arch: str = typer.Argument(..., help="Architecture string, e.g. AAMMMM."),
    corpus: str = typer.Option("stdlib", help="stdlib (embedded) or a text file / data-root path."),
    steps: int = typer.Option(200, help="Optimizer steps."),
    width: int = typer.Option(64, help="Model width."),
    heads: int = typer.Option(4, help="Query heads."),
    seq_len: int = typer.Option(128, help="Bytes per training window."),
    batch_size: int = typer.Option(16, help="Windows per step."),
    lr: float = typer.Option(3e-3, help="Peak learning rate."),
    against: str = typer.Option(
        None, help="Also train a parameter-matched baseline: llama, striped-1:2 or sandwich."
    ),
    seed: int = typer.Option(0, help="Seed."),
    threads: int = typer.Option(2, help="torch threads."),
    generate: int = typer.Option(0, help="Then sample this many bytes with the incremental decoder."),
    prompt: str = typer.Option("def ", help="Prompt of --generate."),
    quiet: bool = QUIET,
):
    """Train a byte-level LM of an architecture; report validation loss, tokens/s and KV cache."""
    import torch
    from tqdm.auto import tqdm

    from frugalml.composer.corpus import load_corpus
    from frugalml.composer.extrapolation import matched_baselines
    from frugalml.composer.model import check_arch, non_embedding_params
    from frugalml.composer.primitives import LayerConfig
    from frugalml.composer.proxies import TrainConfig, train_lm

    check_arch(arch)
    _check_train(arch, steps, width, heads, seq_len, batch_size, lr, seed, threads, generate)
    if generate and not prompt:
        raise InvalidInputError("--generate needs a non-empty --prompt")
    torch.set_num_threads(threads)
    layer = LayerConfig(
        width=width,
        heads=heads,
        kv_heads=max(1, heads // 2),
        mlp_hidden=4 * width,
        window=max(2, seq_len // 4),
    )
    data = load_corpus(corpus)
    todo = [arch]
    if against:
        baselines = matched_baselines(non_embedding_params(arch, layer), layer)
        if against not in baselines:
            raise InvalidInputError(f"unknown baseline {against!r}; choose one of: {', '.join(baselines)}")
        todo.append(baselines[against])
    cfg = TrainConfig(steps=steps, batch_size=batch_size, learning_rates=(lr,))
    rows = []
    for a in todo:
        with tqdm(
            total=steps, desc=f"train {a}", disable=quiet or not sys.stderr.isatty(), leave=False
        ) as bar:

            def tick(step: int, loss: float, bar=bar) -> None:
                bar.update(1)
                bar.set_postfix_str(f"{loss:.3f}")

            r = train_lm(a, data, layer, seq_len=seq_len, train=cfg, seed=seed, progress=tick)
        rows.append((a, r))
        print(
            f"{a}: val loss {r['val_loss']:.4f} nats/byte, {r['tokens_per_s']:.0f} tokens/s, "
            f"{r['non_embedding_params'] / 1e6:.2f}M non-embedding params, KV cache "
            f"{r['kv_cache_bytes'] / 1024:.1f} KiB at {seq_len} tokens (bf16)"
        )
        if generate:
            _sample(r["model"], prompt, generate, seed)
    if against:
        (_, ours), (_, base) = rows
        print(
            f"vs {against}: validation loss {ours['val_loss'] - base['val_loss']:+.4f} nats/byte "
            f"(negative: ours is better), tokens/s x{ours['tokens_per_s'] / base['tokens_per_s']:.2f}, "
            f"KV cache x{ours['kv_cache_bytes'] / max(base['kv_cache_bytes'], 1):.2f} of the baseline's"
        )


def _check_train(
    arch: str,
    steps: int,
    width: int,
    heads: int,
    seq_len: int,
    batch: int,
    lr: float,
    seed: int,
    threads: int,
    generate: int,
) -> None:
    """Bounds of ``train``'s sizes and its memory estimate (with a 4x-larger baseline's margin)."""
    import os

    from frugalml.common.validate import bounded, check_memory, positive_finite
    from frugalml.composer import limits as lim
    from frugalml.composer.model import non_embedding_params
    from frugalml.composer.primitives import LayerConfig

    bounded(steps, "steps", 1, lim.MAX_STEPS)
    bounded(width, "width", 1, lim.MAX_WIDTH)
    bounded(heads, "heads", 1, width, " (at most the width)")
    bounded(seq_len, "seq_len", 2, lim.MAX_SEQ_LEN)
    bounded(batch, "batch_size", 1, lim.MAX_BATCH)
    positive_finite(lr, "lr")
    bounded(seed, "seed", 0, lim.MAX_SEED)
    bounded(threads, "threads", 1, 4 * (os.cpu_count() or 1), " (4 per core of this machine at most)")
    bounded(generate, "generate", 0, lim.MAX_GENERATE)
    if width % heads:
        raise InvalidInputError(f"width {width} is not divisible by heads {heads}")
    layer = LayerConfig(width=width, heads=heads, kv_heads=max(1, heads // 2), mlp_hidden=4 * width)
    check_memory(
        lim.training_bytes(
            params=non_embedding_params(arch, layer) + 256 * width,
            width=width,
            layers=len(arch),
            attention_layers=sum(arch.count(c) for c in "ASL"),
            heads=heads,
            batch=batch,
            seq_len=seq_len,
        ),
        f"training {arch} at width {width} on {batch} x {seq_len} bytes",
        "lower --batch-size, --seq-len or --width",
    )


def _sample(model, prompt: str, new: int, seed: int) -> None:
    """Print ``new`` sampled bytes after ``prompt``, the decoder's ms/token and its real state bytes."""
    import time

    import torch

    from frugalml.composer.model import kv_cache_bytes, state_bytes

    tokens = torch.tensor([list(prompt.encode())], dtype=torch.long)
    start = time.perf_counter()
    out = model.generate(tokens, new, temperature=0.8, seed=seed)
    ms = 1e3 * (time.perf_counter() - start) / new
    with torch.no_grad():
        _, states = model.prefill(out[:, :-1])
    length = out.shape[1] - 1
    print(f"  sample: {bytes(out[0].tolist()).decode('utf-8', 'replace')!r}")
    print(
        f"  decoding {ms:.2f} ms/token; decoder state {state_bytes(states)} bytes at {length} tokens "
        f"(analytic fp32: {kv_cache_bytes(model.cfg, length, bytes_per_element=4)})"
    )


TABLE = typer.Option(
    "AM_6",
    help="Tabular benchmark: a built-in name (AM_6: one training seed per score; "
    "AM_6_5seeds: the same proxy averaged over 5 seeds; ALCSM_3: the 125 three-layer strings over "
    "attention, linear attention, short conv, sliding window and MLP; ALCSM_3_4tasks: the same space "
    "on the 4-task proxy; ALCSM_3_lm: the same space on the byte-level LM proxy, 100 steps; "
    "ALCSM_3_lm300: the byte-level LM proxy at 300 steps, the recommended table) or a JSON path.",
)


@app.command()
def compare(
    engines: str = typer.Option("bo,tpe,random,evolution", help="Engines, comma-separated."),
    seeds: int = typer.Option(20, help="Seeds per engine."),
    first_seed: int = typer.Option(0, help="Engine seeds are first-seed .. first-seed + seeds - 1."),
    table: str = TABLE,
    bo_kernel: str = typer.Option(None, help="Our BO's kernel (string, hamming, mixed)."),
    acquisition: str = typer.Option(None, help="Our BO's acquisition (log-ei, ucb, thompson)."),
    initial: int = typer.Option(None, help="Our BO's random initial points (default: BO's defaults)."),
    json_out: Path = typer.Option(None, "--json", help="Write report records here."),
    plot: Path = typer.Option(None, help="Write the regret curves as PNG here."),
    quiet: bool = QUIET,
):
    """Compare search engines on a tabular benchmark (evaluations to the top-1, regret curves)."""
    from frugalml.composer.bench.engines import compare_report

    bo = {
        k: v
        for k, v in (("kernel", bo_kernel), ("acquisition", acquisition), ("initial", initial))
        if v is not None
    }
    compare_report(engines, seeds, table, json_out, plot, quiet, first_seed=first_seed, bo_options=bo)


@app.command()
def bench(
    seeds: int = typer.Option(20, help="Seeds per engine."),
    first_seed: int = typer.Option(0, help="Engine seeds are first-seed .. first-seed + seeds - 1."),
    table: str = TABLE,
    json_out: Path = typer.Option(
        Path("benchmarks/results/composer/search-efficiency.json"), "--json", help="Records."
    ),
    plot: Path = typer.Option(
        Path("benchmarks/results/composer/search-efficiency.png"), help="Regret curves."
    ),
    quiet: bool = QUIET,
):
    """Search efficiency of our GP-BO vs Optuna TPE, random and evolution on the tabular benchmark."""
    from frugalml.composer.bench.engines import PEERS, compare_report

    compare_report(PEERS, seeds, table, json_out, plot, quiet, first_seed=first_seed)


@app.command()
def reproduce(
    json_out: Path = typer.Option(None, "--json", help="Write report records here."),
    plot: Path = typer.Option(None, help="Regret curves PNG."),
    quiet: bool = QUIET,
):
    """The paper's extrapolation checks (27 and 29 layers at 1B) and the engine comparison."""
    from frugalml.composer.bench.reproduce import reproduce as run

    run(json_out, plot, quiet)


@app.command()
def demo(quiet: bool = QUIET):
    """A tiny search on a tiny proxy, then the extrapolation of its winner (under a minute)."""
    from frugalml.composer.demo import run

    print(run(quiet=quiet))
