"""What TLS with client certificates costs a training step (results: tls-overhead.json).

Writes benchmarks/results/cleave/tls-overhead.json.
Run: .venv/bin/python benchmarks/cleave/tls_overhead.py [--rounds 3] [--steps 10] [--workers 2]
A parameter server and workers in this process's children on localhost (tiny-gpt, unshaped links),
plain text and TLS interleaved round by round; the median step (the first, warm-up step left out)
of each run, then the median over rounds.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from frugalml.cleave.runtime.tls import make_credentials
from frugalml.common.report import Record, print_table, write_json

OUT = Path(__file__).resolve().parents[1] / "results" / "cleave" / "tls-overhead.json"
FRUGAL = [sys.executable, "-m", "frugalml.cleave.runtime"]


def run(folder: Path, steps: int, workers: int, tls: bool, port: int) -> float:
    metrics = folder / f"m{port}.json"
    server = [*FRUGAL, "serve", "--port", str(port), "--steps", str(steps), "--min-workers", str(workers)]
    server += ["--metrics", str(metrics)]
    client: list[str] = []
    if tls:
        server += ["--tls-cert", str(folder / "server.pem"), "--tls-key", str(folder / "server.key")]
        server += ["--ca", str(folder / "ca.pem")]
    ps = subprocess.Popen(server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = []
    for i in range(workers):
        if tls:
            client = ["--ca", str(folder / "ca.pem"), "--cert", str(folder / f"w{i}.pem")]
            client += ["--key", str(folder / f"w{i}.key")]
        procs.append(
            subprocess.Popen(
                [*FRUGAL, "worker", "--server", f"127.0.0.1:{port}", "--name", f"w{i}", "-q", *client],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    if ps.wait(timeout=600) != 0:
        raise SystemExit(f"the server failed ({'TLS' if tls else 'plain text'})")
    for p in procs:
        p.wait(timeout=60)
    import json

    seconds = json.loads(metrics.read_text())["step_seconds"][1:]
    return statistics.median(seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_credentials(folder, [f"w{i}" for i in range(args.workers)], ["127.0.0.1"], days=1)
        plain, tls, loads = [], [], []
        port = 50900
        for i in range(args.rounds):  # which one goes first alternates (no order bias)
            pair = ((False, plain), (True, tls))
            for use_tls, into in pair if i % 2 == 0 else pair[::-1]:
                loads.append(os.getloadavg()[0])
                port += 1
                into.append(run(folder, args.steps, args.workers, use_tls, port))
                time.sleep(0.5)
    ratio = statistics.median(tls) / statistics.median(plain)
    record = Record(
        system="cleave",
        workload=f"tiny-gpt on localhost, {args.workers} workers, {args.steps} steps x {args.rounds} rounds",
        metric="step_seconds_tls",
        unit="s",
        ours=statistics.median(tls),
        peer="plain text",
        peer_value=statistics.median(plain),
        spread={
            "tls": tls,
            "plain": plain,
            "tls_over_plain": ratio,
            # each round's TLS run over its plain-text run (next to each other: the pair shares the load)
            "paired_ratios": [t / p for t, p in zip(tls, plain, strict=True)],
            "median_paired_ratio": statistics.median(t / p for t, p in zip(tls, plain, strict=True)),
            "load_average": loads,
        },
        notes="TLS with client certificates (ECDSA P-256) vs plain text, interleaved (order alternating); "
        "target: at most 1.10x; the machine is shared, so the load average before each run is recorded",
        command="python benchmarks/cleave/tls_overhead.py",
    )
    write_json([record], OUT)
    print_table([record], title=f"cleave: TLS step / plain-text step = {ratio:.3f}")
