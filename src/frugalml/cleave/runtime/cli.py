"""``frugal cleave serve | worker | status``: the networked runtime's commands (mounted by cleave's CLI)."""

from __future__ import annotations

import json
import logging

import typer


def _logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        force=True,
    )


def add_runtime_commands(app: typer.Typer) -> None:
    """Add ``serve``, ``worker`` and ``status`` to ``app`` (cleave's typer app)."""

    @app.command()
    def serve(
        model: str = typer.Option("tiny-gpt", help="Model to train (tiny-gpt)."),
        data: str | None = typer.Option(
            None, help="Text corpus (e.g. tinyshakespeare.txt); default: a generated corpus."
        ),
        host: str = typer.Option("0.0.0.0", help="Address to listen on."),
        port: int = typer.Option(50051, help="Port to listen on (0: any free port)."),
        steps: int = typer.Option(20, min=1, help="Training steps."),
        batch_size: int = typer.Option(8, min=1, help="Sequences per step."),
        lr: float = typer.Option(3e-3, help="AdamW learning rate."),
        seed: int = typer.Option(0, help="Seed of the model's initialisation and the batches."),
        dtype: str = typer.Option("float32", help="float32 or float64 (model and tiles)."),
        min_workers: int = typer.Option(1, min=1, help="Workers to wait for before the first step."),
        tiles_per_worker: int = typer.Option(1, min=1, help="Tiles per live worker in each GEMM."),
        verify_rate: float = typer.Option(
            1.0, min=0.0, max=1.0, help="Share of tiles checked with Freivalds."
        ),
        heartbeat_timeout: float = typer.Option(3.0, help="Seconds of silence before a worker is lost."),
        backups: bool = typer.Option(True, help="Speculative backup copies of straggling tiles."),
        min_gemm_flops: float = typer.Option(0.0, help="GEMMs below this many FLOPs stay on the PS."),
        checkpoint: str | None = typer.Option(None, help="Checkpoint file; resumed from when it exists."),
        checkpoint_every: int = typer.Option(10, min=1, help="Checkpoint every N steps."),
        metrics: str | None = typer.Option(None, help="Write the final metrics as JSON here."),
        address_file: str | None = typer.Option(None, help="Write HOST:PORT here once listening."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    ):
        """Run a parameter server: train the model with every large GEMM done by workers."""
        from frugalml.cleave.runtime.model import MODELS, TrainConfig
        from frugalml.cleave.runtime.scheduler import SchedulerConfig
        from frugalml.cleave.runtime.server import ServerConfig, serve
        from frugalml.common.validate import one_of

        _logging(quiet)
        train = TrainConfig(
            model=one_of(model, MODELS, "model"),
            batch_size=batch_size,
            lr=lr,
            steps=steps,
            seed=seed,
            dtype=one_of(dtype, ("float32", "float64"), "dtype"),
        )
        config = ServerConfig(
            train=train,
            data=data,
            host=host,
            port=port,
            min_workers=min_workers,
            scheduler=SchedulerConfig(
                tiles_per_worker=tiles_per_worker,
                verify_rate=verify_rate,
                heartbeat_timeout_s=heartbeat_timeout,
                speculative=backups,
                min_gemm_flops=min_gemm_flops,
                seed=seed,
            ),
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            metrics=metrics,
            address_file=address_file,
        )
        result = serve(config)
        losses = result["losses"]
        typer.echo(
            f"trained {model} for {len(losses)} steps: loss {losses[0]:.4f} -> {losses[-1]:.4f}; "
            f"{len(result['workers'])} workers, {result['requeued_tiles']} tiles re-queued"
        )

    @app.command()
    def worker(
        server: str = typer.Option(..., help="Parameter server address HOST:PORT."),
        name: str = typer.Option(..., help="This device's name, e.g. phone-1."),
        down: str | None = typer.Option(None, help="Downlink to emulate, e.g. 100mbit (default: unshaped)."),
        up: str | None = typer.Option(None, help="Uplink to emulate, e.g. 20mbit (default: unshaped)."),
        flops: float = typer.Option(0.0, help="Advertised FLOP/s (sets task deadlines), e.g. 2e11."),
        memory: str = typer.Option("1GB", help="Memory the device offers for tiles, e.g. 512MB."),
        connect_timeout: float = typer.Option(10.0, help="Seconds to wait for the server."),
        reconnect_timeout: float = typer.Option(
            30.0,
            help="Seconds to wait for a lost server to come back "
            "(a restarted PS resumes from its checkpoint).",
        ),
        corrupt_every: int = typer.Option(0, hidden=True, help="Fault injection: corrupt every N-th result."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    ):
        """Run a device worker: pull GEMM tiles from a parameter server and compute them."""
        from frugalml.cleave.runtime.shaping import parse_rate, parse_size
        from frugalml.cleave.runtime.worker import WorkerConfig, run_worker

        _logging(quiet)
        config = WorkerConfig(
            server=server,
            name=name,
            down_bytes_per_s=parse_rate(down),
            up_bytes_per_s=parse_rate(up),
            flops=flops,
            memory_bytes=parse_size(memory),
            connect_timeout_s=connect_timeout,
            reconnect_timeout_s=reconnect_timeout,
            corrupt_every=corrupt_every,
        )
        typer.echo(run_worker(config).line())

    @app.command()
    def status(
        server: str = typer.Option(..., help="Parameter server address HOST:PORT."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
        timeout: float = typer.Option(5.0, help="Seconds to wait for the server."),
    ):
        """Show a parameter server's progress and what each worker has done."""
        from frugalml.cleave.runtime.client import fetch_status

        snap = fetch_status(server, timeout=timeout)
        if as_json:
            typer.echo(json.dumps(snap, indent=2))
            return
        _print_status(snap)


def _print_status(snap: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    losses = snap["losses"]
    loss = f", loss {losses[-1]:.4f}" if losses else ""
    recoveries = ", ".join(f"{s:.2f}" for s in snap["recovery_seconds"]) or "none"
    table = Table(
        title=f"{snap['model']}: {snap['state']}, step {snap['step']}/{snap['total_steps']}{loss}; "
        f"{snap['requeued_tiles']} re-queued, {snap['backup_tiles']} backups, "
        f"recoveries (s): {recoveries}"
    )
    for col in ("worker", "state", "tiles", "rejected", "in flight", "MB down", "MB up"):
        table.add_column(col, justify="left" if col in ("worker", "state") else "right")
    for w in snap["workers"]:
        table.add_row(
            w["name"],
            w["state"],
            str(w["tiles_done"]),
            str(w["tiles_rejected"]),
            str(w["in_flight"]),
            f"{w['bytes_down'] / 1e6:.2f}",
            f"{w['bytes_up'] / 1e6:.2f}",
        )
    Console().print(table)
