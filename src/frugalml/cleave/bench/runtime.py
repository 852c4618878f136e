"""The gRPC runtime with real local processes: recovery against restart-from-checkpoint, bytes per worker."""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalml.cleave.bench.relay import CountingRelay
from frugalml.cleave.bench.workload import SYSTEM
from frugalml.cleave.runtime.local import LocalCluster
from frugalml.cleave.runtime.model import TrainConfig, gemm_shapes
from frugalml.cleave.tiling import choose_grid, split_gemm
from frugalml.common import env, report

EDGE_LINKS: dict[str, Any] = {"down": "100mbit", "up": "20mbit", "flops": 2e11}
WORKERS = ("phone-1", "phone-2", "phone-3")
RECOVERY_TARGET = 2.0  # recovery time at most this many normal steps
TRAFFIC_TOLERANCE = 1.1  # wire bytes at most this much above the worker's tiles


def _start(cluster: LocalCluster, steps: int, checkpoint: Path, every: int) -> None:
    cluster.start_server(steps=steps, min_workers=len(WORKERS), checkpoint=checkpoint, checkpoint_every=every)
    for name in WORKERS:
        cluster.start_worker(name, **EDGE_LINKS)


def recovery_round(steps: int, kill_after: int, every: int) -> dict[str, Any]:
    """One worker SIGKILLed mid-step, recovered twice: by re-queueing (ours) and by a job restart."""
    with tempfile.TemporaryDirectory() as tmp, LocalCluster() as ours:
        _start(ours, steps, Path(tmp) / "ours.ckpt", every)
        killed_at, before = ours.kill_while_holding_a_tile("phone-3", after_step=kill_after, timeout=120)
        metrics = ours.wait_server(timeout=300)
        ends = metrics["step_end_times"]
        interrupted = before["step"]
        ours_recovery = ends[interrupted] - killed_at
        before_kill = ends[:interrupted]  # end times of the steps finished before the kill
        normal = statistics.median(b - a for a, b in zip(before_kill, before_kill[1:], strict=False))
        internal = metrics["recovery_seconds"]

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "classic.ckpt"
        with LocalCluster() as first:
            _start(first, steps, checkpoint, every)
            killed_at, before = first.kill_while_holding_a_tile("phone-3", after_step=kill_after, timeout=120)
            first.kill_server()  # the classic reaction: abort the job ...
        with LocalCluster() as second:  # ... and restart it from the last checkpoint with a replacement
            _start(second, steps, checkpoint, every)
            restarted = second.wait_server(timeout=300)
        classic_recovery = restarted["step_end_times"][before["step"]] - killed_at
    return {
        "ours": ours_recovery,
        "normal_step": normal,
        "classic": classic_recovery,
        "ps_measured": internal,
        "interrupted_step": interrupted,
        "classic_replayed_steps": before["step"] % every,
    }


def predicted_bytes(cfg: TrainConfig, workers: int) -> tuple[float, float]:
    """Bytes down / up per worker per step that the tiling model predicts for ``workers`` workers."""
    down = up = 0
    for m, n, k in gemm_shapes(cfg):
        grid = choose_grid(m, n, k, tiles=workers)
        rows, cols = grid.grid_rows, grid.grid_cols
        tiles = split_gemm(m, n, k, grid_rows=rows, grid_cols=cols)
        down += sum(t.bytes_down() for t in tiles)
        up += sum(t.bytes_up() for t in tiles)
    return down / workers, up / workers


def _mean_per_step(per_worker: list[dict[str, Any]], key: str, steps: int) -> float:
    return statistics.mean(w[key] for w in per_worker) / steps


def traffic_run(workers: int, steps: int) -> dict[str, Any]:
    """Per-worker bytes measured on the wire (a counting TCP relay per worker) and by the PS (protobuf
    messages), against the Tile sums of what each worker did and the a-priori tiling prediction."""
    relays = {}
    with LocalCluster() as cluster:
        cluster.start_server(steps=steps, min_workers=workers, backups=False)
        for i in range(workers):
            name = f"device-{i + 1}"
            relays[name] = CountingRelay(cluster.address)
            cluster.start_worker(name, server=relays[name].address)
        metrics = cluster.wait_server(timeout=300)
        cluster.wait_workers(timeout=30)
    for relay in relays.values():
        relay.close()
    per_worker = metrics["workers"]
    predicted_down, predicted_up = predicted_bytes(TrainConfig(), workers)
    return {
        "workers": workers,
        "down_per_step": _mean_per_step(per_worker, "bytes_down", steps),
        "up_per_step": _mean_per_step(per_worker, "bytes_up", steps),
        "tiles_model_down_per_step": _mean_per_step(per_worker, "model_bytes_down", steps),
        "tiles_model_up_per_step": _mean_per_step(per_worker, "model_bytes_up", steps),
        "worst_worker_vs_its_tiles": max(
            max(w["bytes_down"] / w["model_bytes_down"], w["bytes_up"] / w["model_bytes_up"])
            for w in per_worker
        ),
        "predicted_down_per_step": predicted_down,
        "predicted_up_per_step": predicted_up,
        "control_bytes_per_step": _mean_per_step(per_worker, "control_bytes", steps),
        "requeued_tiles": metrics["requeued_tiles"],
        "worker_states": [w["state"] for w in per_worker],
        "tiles_per_step": sum(w["tiles_done"] for w in per_worker) / steps,
        "wire_down_per_step": statistics.mean(relays[w["name"]].down for w in per_worker) / steps,
        "wire_up_per_step": statistics.mean(relays[w["name"]].up for w in per_worker) / steps,
        "worst_worker_wire_vs_its_tiles": max(
            max(relays[w["name"]].down / w["model_bytes_down"], relays[w["name"]].up / w["model_bytes_up"])
            for w in per_worker
        ),
    }


def recovery_records(rounds: list[dict[str, Any]]) -> list[report.Record]:
    """Kill-to-next-step time against a checkpoint restart, and as a multiple of a normal step."""
    ours = [r["ours"] for r in rounds]
    classic = [r["classic"] for r in rounds]
    per_step = [r["ours"] / r["normal_step"] for r in rounds]
    workload = "tiny-gpt, 3 workers at 100mbit down / 20mbit up, one SIGKILLed mid-step"
    return [
        report.Record(
            SYSTEM,
            workload,
            "time from kill to next finished step",
            "s",
            statistics.median(ours),
            "restart from last checkpoint (every 5 steps)",
            statistics.median(classic),
            spread={"ours": [min(ours), max(ours)], "peer": [min(classic), max(classic)], "rounds": rounds},
            notes="ours: in-flight tiles re-queued; peer: PS and workers restarted, "
            f"checkpoint loaded, lost steps replayed. Median over rounds; measured on {env.machine()}, "
            "noisy.",
        ),
        report.Record(
            SYSTEM,
            workload,
            f"recovery time / normal step time (target <= {RECOVERY_TARGET:g})",
            "x",
            statistics.median(per_step),
            spread={"ours": [min(per_step), max(per_step)]},
            notes="normal step: median wall-clock step time before the kill in the same run",
        ),
    ]


def traffic_records(traffic: list[dict[str, Any]]) -> list[report.Record]:
    """Wire bytes per worker per step (down and up) against the tiling model's sum of its tiles."""
    return [
        report.Record(
            SYSTEM,
            f"tiny-gpt, {t['workers']} local workers, per worker per training step",
            f"wire bytes {direction}",
            "B",
            t[f"wire_{direction}_per_step"],
            "tiling model (sum of Tile.bytes_" + direction + " over the worker's tiles)",
            t[f"tiles_model_{direction}_per_step"],
            spread={"run": t},
            notes="measured on the wire by a counting TCP relay per worker (gRPC, HTTP/2, heartbeats, "
            f"idle pulls included); PS-counted protobuf bytes {t[f'{direction}_per_step']:.0f} B; "
            f"a-priori prediction from the op list {t[f'predicted_{direction}_per_step']:.0f} B",
        )
        for t in traffic
        for direction in ("down", "up")
    ]


def plot_traffic(traffic: list[dict[str, Any]], path: Path) -> None:
    """MB per worker per step against workers: measured on the wire and predicted, down and up."""
    fig, ax = report.new_figure(figsize=(5, 3.5))
    counts = [t["workers"] for t in traffic]
    ax.plot(counts, [t["wire_down_per_step"] / 1e6 for t in traffic], "o-", label="measured down (wire)")
    ax.plot(counts, [t["predicted_down_per_step"] / 1e6 for t in traffic], "k--", label="tiling model down")
    ax.plot(counts, [t["wire_up_per_step"] / 1e6 for t in traffic], "s-", label="measured up (wire)")
    ax.plot(counts, [t["predicted_up_per_step"] / 1e6 for t in traffic], "k:", label="tiling model up")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("workers")
    ax.set_ylabel("MB per worker per step")
    ax.set_title("cleave runtime: traffic per worker")
    ax.legend()
    report.save_plot(fig, path)


@dataclass
class RuntimeRun:
    """What :func:`run` measured: recovery rounds, traffic runs and their records."""

    rounds: list[dict[str, Any]]
    traffic: list[dict[str, Any]]
    records: list[report.Record]

    def summary(self) -> str:
        """One line: whether recovery and per-worker traffic meet their targets."""
        per_step = statistics.median(r["ours"] / r["normal_step"] for r in self.rounds)
        falls = all(
            a["wire_down_per_step"] > b["wire_down_per_step"]
            for a, b in zip(self.traffic, self.traffic[1:], strict=False)
        )
        worst = max(t["worst_worker_wire_vs_its_tiles"] for t in self.traffic)
        met = per_step <= RECOVERY_TARGET and falls and worst <= TRAFFIC_TOLERANCE
        head = self.records[0]
        return (
            f"targets {'met' if met else 'NOT met'}: recovery / normal step {per_step:.2f} "
            f"(<= {RECOVERY_TARGET:g}); ours {head.ours:.2f} s vs restart {head.peer_value:.2f} s; "
            f"per-worker traffic {[round(t['wire_down_per_step'] / 1e6, 2) for t in self.traffic]} MB "
            f"down at {'/'.join(str(t['workers']) for t in self.traffic)} workers, "
            f"worst worker wire / its tiles {worst:.3f} (<= {TRAFFIC_TOLERANCE:g})"
        )


def run(rounds: int = 3, steps: int = 12, workers: tuple[int, ...] = (2, 4, 8)) -> RuntimeRun:
    """``rounds`` recovery rounds (ours and classic each, a kill after step 7, checkpoints every 5)
    and one 3-step traffic run per worker count."""
    recovered = [recovery_round(steps, kill_after=7, every=5) for _ in range(rounds)]
    traffic = [traffic_run(w, steps=3) for w in workers]
    return RuntimeRun(recovered, traffic, recovery_records(recovered) + traffic_records(traffic))
