"""The cleave demo: OPT-13B, which no edge device can hold, on 256 mixed edge devices against the
best edge baseline, the regime map's verdict for that regime, then a tiny GPT trained over gRPC."""

from __future__ import annotations

import math

MODEL, BATCH, DEVICES, POOL = "opt-13b", 32, 256, "mixed"


def run(quiet: bool = False) -> str:
    """Plan, simulate (with churn and stragglers), compare, map the regime, then run a PS and 2 workers."""
    from frugalml.cleave.analytic import analytic_step
    from frugalml.cleave.baselines import run_baselines
    from frugalml.cleave.des import SimConfig, simulate_step
    from frugalml.cleave.devices import make_pool
    from frugalml.cleave.models import load_model
    from frugalml.cleave.opgraph import build_graph
    from frugalml.cleave.planner import plan
    from frugalml.cleave.regimes import Grid, regime_map
    from frugalml.cleave.runtime.demo import run_local

    graph = build_graph(load_model(MODEL), batch=BATCH, seq=1024)
    pool = make_pool(DEVICES, seed=0)
    p = plan(graph, pool)
    est = analytic_step(p)
    sim = simulate_step(p, SimConfig(traces=False), seed=0)
    base = run_baselines(graph, pool)
    name = min(base, key=lambda k: base[k].seconds)
    if not quiet:
        print(p.explain())
    if math.isfinite(base[name].seconds):
        setup = ", ".join(f"{key} {value}" for key, value in base[name].config.items())
        ratio = base[name].seconds / est.seconds
        versus = f"best edge baseline {name} ({setup}) {base[name].seconds:.0f} s ({ratio:.2f}x)"
    else:
        versus = "no edge baseline runs (no device holds a pipeline stage or a replica)"
    cells = regime_map(Grid((MODEL,), (BATCH,), (64, 256, 1024, 4096), (POOL,), (2.0, 10.0)))
    alone = sum(not math.isfinite(c.baseline_s) for c in cells)
    wins = sum(c.cleave_wins and math.isfinite(c.baseline_s) for c in cells)
    verdict = (
        f"map of this regime ({MODEL}, B{BATCH}, {POOL} pool, 64..4096 devices, downlink/uplink 2 and 10): "
        f"only Cleave runs in {alone} of {len(cells)} cells, Cleave faster in {wins} of the "
        f"{len(cells) - alone} where a baseline runs"
    )
    return (
        f"{MODEL.upper()} ({graph.model.params / 1e9:.0f}B parameters, 16 B each to train: no edge device "
        f"holds it), {BATCH}x1024 tokens, {len(pool)} mixed devices: Cleave {est.seconds:.0f} s/batch "
        f"(DES with churn: {sim.seconds:.0f} s, {sim.failures} failures, {sim.requeued} tiles re-queued) "
        f"vs {versus}; {verdict}; " + run_local(steps=3, workers=2, quiet=quiet)
    )
