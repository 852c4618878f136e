"""CPU training throughput, decoding latency and KV cache of a searched architecture vs the AM x k baseline.

Timed with :func:`frugalml.common.timing.compare` (ABBA rounds, 1 torch thread, thread-CPU clock,
so other processes on the machine do not count).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from frugalml.common.report import Record
from frugalml.common.threads import torch_threads
from frugalml.common.timing import compare
from frugalml.composer.model import HybridConfig, HybridLM, kv_cache_bytes

PEER = "Llama-style AM x k"


@dataclass(frozen=True)
class ThroughputSettings:
    """The pair compared and the shapes they are timed at."""

    ours: str
    peer: str
    width: int = 256
    batch: int = 8
    seq_len: int = 128
    new: int = 32
    rounds: int = 5

    @classmethod
    def from_runs(cls, runs_json: Path) -> ThroughputSettings:
        """The quality comparison's pair and width, from a fidelity ``-runs.json``."""
        runs = json.loads(Path(runs_json).read_text())
        return cls(runs["grown"], runs["baseline"], runs["settings"]["quality_width"])


class _Pair:
    """Both models with their optimizers, one training batch and one prompt."""

    def __init__(self, s: ThroughputSettings):
        self.models, self.optimizers = {}, {}
        for arch in (s.ours, s.peer):
            torch.manual_seed(0)
            self.models[arch] = HybridLM(
                HybridConfig.make(
                    arch, width=s.width, heads=4, kv_heads=2, mlp_ratio=4.0, window=s.seq_len // 4
                )
            )
            self.optimizers[arch] = torch.optim.AdamW(self.models[arch].parameters(), lr=1e-3)
        self.x = torch.randint(0, 256, (s.batch, s.seq_len + 1), generator=torch.Generator().manual_seed(0))
        self.prompt = self.x[:1, : s.seq_len]
        self.new = s.new

    def train_step(self, arch: str) -> None:
        loss = self.models[arch].loss(self.x[:, :-1], self.x[:, 1:])
        self.optimizers[arch].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers[arch].step()

    def generate(self, arch: str) -> None:
        with torch.no_grad():
            self.models[arch].generate(self.prompt, self.new)


def throughput_records(s: ThroughputSettings) -> list[Record]:
    """Training tokens/s, generation time and KV-cache bytes of ``s.ours`` against ``s.peer``."""
    with torch_threads(1):
        pair = _Pair(s)
        train = compare(
            lambda: pair.train_step(s.ours),
            lambda: pair.train_step(s.peer),
            rounds=s.rounds,
            clock=time.thread_time,
        )
        decode = compare(
            lambda: pair.generate(s.ours),
            lambda: pair.generate(s.peer),
            rounds=s.rounds,
            clock=time.thread_time,
        )
    setting = (
        f"width {s.width}, heads 4, kv_heads 2, 1 torch thread, thread-CPU clock, {s.rounds} ABBA rounds"
    )
    tokens = s.batch * s.seq_len
    cfg = {a: m.cfg for a, m in pair.models.items()}
    return [
        Record(
            "composer",
            f"CPU training throughput {s.ours} vs {s.peer} (batch {s.batch} x {s.seq_len}, AdamW step)",
            "tokens/s",
            "tokens/s",
            tokens / train.ours.median,
            PEER,
            tokens / train.peer.median,
            higher_is_better=True,
            spread={"ours_s": [train.ours.min, train.ours.max], "peer_s": [train.peer.min, train.peer.max]},
            notes=setting,
        ),
        Record.from_comparison(
            decode,
            system="composer",
            workload=f"CPU decoding {s.ours} vs {s.peer} ({s.new} tokens after a "
            f"{s.seq_len}-token prompt, KV cache, batch 1)",
            peer=PEER,
            metric="generation time",
            notes=setting,
        ),
        Record(
            "composer",
            f"KV cache at {s.seq_len + s.new} tokens: {s.ours} vs {s.peer}",
            "KV-cache bytes (bf16)",
            "bytes",
            kv_cache_bytes(cfg[s.ours], s.seq_len + s.new),
            PEER,
            kv_cache_bytes(cfg[s.peer], s.seq_len + s.new),
            higher_is_better=False,
        ),
    ]
