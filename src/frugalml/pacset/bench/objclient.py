"""Which object-store client opens a model in S3 fastest from a cold process: obstore or s3fs (fsspec).

Each trial is a fresh Python process that imports the client, reads the first 64 KiB of the
object (header and index) and then 16 ranges of 4 KiB in parallel (one walk round), as a cold
query does. The endpoint is moto's S3 server on loopback behind the delaying proxy (the S3
protocol path, not a real region). Usage: ``python -m frugalml.pacset.bench.objclient [json]``;
s3fs is not among the package's dependencies (its botocore pins fight boto3's): ``pip install s3fs``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from frugalml.common.env import machine
from frugalml.common.redis_server import free_port
from frugalml.common.report import Record, merge_json
from frugalml.pacset.bench.protocol import SYSTEM, log

CHILD = {
    "obstore": (
        "import sys, obstore; from obstore.store import from_url\n"
        "s = from_url('s3://models', client_options={'allow_http': True})\n"
        "h = obstore.get_range(s, 'm.bin', start=0, end=65536)\n"
        "starts = [65536 + i * 65536 for i in range(16)]\n"
        "r = obstore.get_ranges(s, 'm.bin', starts=starts, lengths=[4096] * 16)\n"
        "assert len(h) == 65536 and all(len(x) == 4096 for x in r)\n"
    ),
    "s3fs": (
        "import sys, os, s3fs\n"
        "fs = s3fs.S3FileSystem(endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n"
        "h = fs.cat_file('models/m.bin', start=0, end=65536)\n"
        "starts = [65536 + i * 65536 for i in range(16)]\n"
        "r = fs.cat_ranges(['models/m.bin'] * 16, starts, [s + 4096 for s in starts])\n"
        "assert len(h) == 65536 and all(len(x) == 4096 for x in r)\n"
    ),
}


def run_objclient(json_path=None, rtt: float = 0.02, trials: int = 7, quiet: bool = False) -> list[Record]:
    """Fresh-process open-and-first-round time of each client, interleaved; obstore vs s3fs."""
    import boto3
    from moto.server import ThreadedMotoServer

    from frugalml.pacset.bench.httpserve import DelayProxy

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    times: dict[str, list[float]] = {k: [] for k in CHILD}
    try:
        with DelayProxy(port, rtt / 2) as proxy, tempfile.TemporaryDirectory() as d:
            env = {
                **os.environ,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
                "AWS_ALLOW_HTTP": "true",
            }
            client = boto3.client(
                "s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="testing",
                aws_secret_access_key="testing", region_name="us-east-1",
            )  # fmt: skip
            client.create_bucket(Bucket="models")
            blob = Path(d) / "m.bin"
            blob.write_bytes(os.urandom(2 << 20))
            client.upload_file(str(blob), "models", "m.bin")
            for t in range(trials):
                order = list(CHILD) if t % 2 == 0 else list(CHILD)[::-1]
                for name in order:
                    start = time.perf_counter()
                    subprocess.run(
                        [sys.executable, "-c", CHILD[name]], env=env, check=True, capture_output=True
                    )
                    times[name].append(time.perf_counter() - start)
                log(quiet, f"  trial {t + 1}/{trials}")
    finally:
        server.stop()
    ours, peer = np.array(times["obstore"]), np.array(times["s3fs"])
    record = Record(
        SYSTEM,
        f"S3 client: open a model (64 KiB header + 16 parallel 4 KiB ranges), {rtt * 1e3:.0f} ms RTT",
        "fresh-process import + open + first walk round",
        "s",
        float(np.median(ours)),
        "s3fs (fsspec)",
        float(np.median(peer)),
        spread={
            "ours": [float(ours.min()), float(ours.max())],
            "peer": [float(peer.min()), float(peer.max())],
        },
        notes=(
            f"ours = obstore {_version('obstore')}, peer = s3fs {_version('s3fs')}; moto {_version('moto')} "
            "S3 server on loopback behind the delaying TCP proxy (this kernel has no tc netem); "
            f"{trials} interleaved fresh processes each; {machine(load=True)}"
        ),
        command="python -m frugalml.pacset.bench.objclient benchmarks/results/pacset/s3-client.json",
    )
    log(quiet, f"obstore {record.ours:.3f} s vs s3fs {record.peer_value:.3f} s ({record.ratio:.2f}x)")
    if json_path is not None:
        merge_json([record], json_path)
    return [record]


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    run_objclient(sys.argv[1] if len(sys.argv) > 1 else None)
