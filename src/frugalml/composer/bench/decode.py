"""Generation latency per token of the incremental decoder vs recomputing the prefix, and real cache bytes.

For each architecture: greedy generation of ``new`` tokens after a ``prompt``-token prompt, ours =
:meth:`HybridLM.generate` (KV cache / recurrent / conv state), baseline = the same model re-running
the whole prefix for every token (no cache); both must emit the same tokens. The decoder's real
state bytes are recorded against the analytic ``kv_cache_bytes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from frugalml.common.report import Record
from frugalml.common.threads import torch_threads
from frugalml.common.timing import compare
from frugalml.composer.model import HybridConfig, HybridLM, kv_cache_bytes, state_bytes

ARCHS = ("AMAMAM", "AAMMMM", "SMSMSM", "LMLMLM", "CMCMCM", "AEAEAE")


@dataclass(frozen=True)
class DecodeSettings:
    """Model width, prompt length, tokens generated and ABBA timing rounds."""

    width: int = 64
    prompt: int = 128
    new: int = 64
    rounds: int = 5

    def describe(self) -> str:
        return (
            f"width {self.width}, heads 4, kv_heads 2, window 32, vocab 256, batch 1, "
            f"prompt {self.prompt}, {self.new} new tokens, greedy, 1 torch thread, thread-CPU clock, "
            f"{self.rounds} ABBA rounds"
        )


def recompute(model: HybridLM, prompt: torch.Tensor, new: int) -> torch.Tensor:
    """Greedy generation that re-runs the whole prefix for every token (no cache)."""
    out = prompt
    for _ in range(new):
        out = torch.cat((out, model(out)[:, -1].argmax(-1, keepdim=True)), dim=1)
    return out


def _per_token(record: Record, new: int) -> Record:
    """``record``'s times divided by the ``new`` generated tokens."""
    record.ours /= new
    assert record.peer_value is not None
    record.peer_value /= new
    record.spread["ours"] = [v / new for v in record.spread["ours"]]
    record.spread["peer"] = [v / new for v in record.spread["peer"]]
    return record


def _arch_records(arch: str, s: DecodeSettings) -> list[Record]:
    """The time-per-token record of ``arch`` and its state bytes after the prompt and after decoding."""
    torch.manual_seed(0)
    model = HybridLM(HybridConfig.make(arch, width=s.width, heads=4, kv_heads=2, window=32)).eval()
    prompt = torch.randint(0, 256, (1, s.prompt), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = torch.equal(model.generate(prompt, s.new), recompute(model, prompt, s.new))
        comparison = compare(
            lambda: model.generate(prompt, s.new),
            lambda: recompute(model, prompt, s.new),
            rounds=s.rounds,
            clock=time.thread_time,
        )
        _, states = model.prefill(prompt)
    records = [
        _per_token(
            Record.from_comparison(
                comparison,
                system="composer",
                workload=f"decode {arch}",
                peer="recompute prefix (no cache)",
                metric="time per token",
                notes=f"{s.describe()}; ours includes the prompt prefill, "
                f"amortised over the new tokens; same tokens: {same}",
            ),
            s.new,
        )
    ]
    for length in (s.prompt, s.prompt + s.new):
        if length != s.prompt:
            with torch.no_grad():
                _, states = model.prefill(torch.cat((prompt, prompt[:, : s.new]), dim=1))
        records.append(
            Record(
                "composer",
                f"decode state {arch} at {length} tokens",
                "cache bytes (fp32)",
                "bytes",
                state_bytes(states),
                "analytic kv_cache_bytes",
                kv_cache_bytes(model.cfg, length, bytes_per_element=4),
                notes="measured bytes of the decoder's tensors vs the analytic count",
            )
        )
    return records


def decode_records(archs: list[str], settings: DecodeSettings) -> list[Record]:
    """Time per token (ours vs recompute) and state bytes (measured vs analytic) of each architecture."""
    with torch_threads(1):
        return [r for arch in archs for r in _arch_records(arch, settings)]
