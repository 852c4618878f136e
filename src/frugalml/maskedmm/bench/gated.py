"""A gated FFN block with a ReLU gate (``down(relu(gate(x)) * up(x))``, as in ReLU-fied Llama
models): ``sparsify_`` (the up projection computes only the outputs the gate keeps, the down
projection skips the zeros) against the same block in plain torch, on the same threads.

The weights are random and the gate's bias is set so that a chosen share of its outputs is
positive: the sparsity is synthetic (every record says so), not a trained model's.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from frugalml.common import env
from frugalml.common.report import Record
from frugalml.common.threads import torch_threads
from frugalml.common.timing import compare
from frugalml.maskedmm import torch as mt

SYSTEM = "maskedmm"
PEER = "torch dense (same block, same threads)"


class GatedFFN(nn.Module):
    """Llama's MLP with ReLU as the gate's activation."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d, hidden)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)
        self.act_fn = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def block(d: int, hidden: int, live: float, seed: int = 0) -> GatedFFN:
    """A random block whose gate is positive on about ``live`` of its outputs for N(0, 1) inputs."""
    torch.manual_seed(seed)
    model = GatedFFN(d, hidden).eval()
    with torch.no_grad():
        probe = model.gate_proj(torch.randn(256, d)) - model.gate_proj.bias
        model.gate_proj.bias.copy_(-torch.quantile(probe, 1.0 - live, dim=0))
    return model


def measure(
    d: int = 2048, hidden: int = 8192, live: float = 0.1, rows=(1, 4), threads=(1,), rounds: int = 21
) -> list[Record]:
    """Ours vs plain torch for each row count and thread count (1 thread: this thread's CPU time)."""
    dense = block(d, hidden, live)
    ours = copy.deepcopy(dense)
    mt.sparsify_(ours)
    records = []
    for t in threads:
        tick = time.thread_time if t == 1 else time.perf_counter
        with torch_threads(t):
            for r in rows:
                x = torch.randn(r, d)
                with torch.inference_mode():
                    err = float((ours(x) - dense(x)).abs().max()) / float(dense(x).abs().max())

                    def run(model=ours, x=x):
                        with torch.inference_mode():
                            model(x)

                    def peer(x=x):
                        with torch.inference_mode():
                            dense(x)

                    for _ in range(mt.TRIAL_CALLS):
                        run()
                mt.reset_layer_report(ours)
                c = compare(run, peer, rounds=rounds, warmup=1, clock=tick)
                methods = "; ".join(str(rep) for rep in mt.layer_report(ours))
                records.append(
                    Record(
                        SYSTEM,
                        f"gated FFN block d={d}, hidden {hidden}, ReLU gate ~{live:.0%} live (synthetic: "
                        f"random weights, gate bias set), {r} row(s), {t} thread(s)",
                        "seconds per block call",
                        "s",
                        c.ours.median,
                        PEER,
                        c.peer.median,
                        spread={
                            "ours_s": [c.ours.min, c.ours.median, c.ours.max],
                            "peer_s": [c.peer.min, c.peer.median, c.peer.max],
                            "rounds": c.rounds,
                        },
                        notes=(
                            f"max |ours - dense| / max |dense| = {err:.1e}; {methods}; "
                            f"{'clock=thread_time' if t == 1 else 'clock=wall'}; {env.machine(load=True)}; "
                            "other work may share this machine: see the load average"
                        ),
                    )
                )
    return records
