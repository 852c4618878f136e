"""The cleave demo: plan and simulate OPT-1.3B on 256 edge devices, then train a tiny GPT over gRPC."""

from __future__ import annotations


def run(quiet: bool = False) -> str:
    """Plan, simulate (with churn and stragglers), compare, then run a PS and 2 local workers."""
    from frugalml.cleave.analytic import analytic_step
    from frugalml.cleave.baselines import run_baselines
    from frugalml.cleave.des import SimConfig, simulate_step
    from frugalml.cleave.devices import make_pool
    from frugalml.cleave.models import load_model
    from frugalml.cleave.opgraph import build_graph
    from frugalml.cleave.planner import plan
    from frugalml.cleave.runtime.demo import run_local

    graph = build_graph(load_model("opt-1.3b"), batch=32, seq=1024)
    pool = make_pool(256, seed=0)
    p = plan(graph, pool)
    est = analytic_step(p)
    sim = simulate_step(p, SimConfig(traces=False), seed=0)
    base = run_baselines(graph, pool)
    name = min(base, key=lambda k: base[k].seconds)
    if not quiet:
        print(p.explain())
    setup = ", ".join(f"{key} {value}" for key, value in base[name].config.items())
    return (
        f"OPT-1.3B, 32x1024 tokens, {len(pool)} mixed devices: Cleave {est.seconds:.0f} s/batch "
        f"(DES with churn: {sim.seconds:.0f} s, {sim.failures} failures, {sim.requeued} tiles re-queued) "
        f"vs best baseline {name} ({setup}) {base[name].seconds:.0f} s "
        f"({base[name].seconds / est.seconds:.2f}x); " + run_local(steps=3, workers=2, quiet=quiet)
    )
