"""``frugal cleave serve | worker | status``: the networked runtime's commands (mounted by cleave's CLI)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer


def _logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        force=True,
    )


def add_runtime_commands(app: typer.Typer) -> None:
    """Add ``serve``, ``worker``, ``status`` and ``fleet`` to ``app`` (cleave's typer app)."""
    add_fleet_commands(app)
    add_certs_command(app)

    @app.command()
    def serve(
        model: str = typer.Option("tiny-gpt", help="Model to train (tiny-gpt)."),
        data: str | None = typer.Option(
            None, help="Text corpus (e.g. tinyshakespeare.txt); default: a generated corpus."
        ),
        host: str = typer.Option(
            "127.0.0.1",
            help="Address to listen on (0.0.0.0: every interface; needs TLS, or --insecure).",
        ),
        tls_cert: str | None = typer.Option(
            None, help="TLS: the server's certificate (frugal cleave certs)."
        ),
        tls_key: str | None = typer.Option(None, help="TLS: the server's private key."),
        ca: str | None = typer.Option(None, help="TLS: the CA every client's certificate must be signed by."),
        insecure: bool = typer.Option(
            False, "--insecure", help="Serve plain text on a non-loopback address (a trusted network only)."
        ),
        revoked: str | None = typer.Option(
            None,
            help="TLS: a file of revoked certificate names, one a line; re-read while serving, so "
            "adding a name cuts that credential off without a restart.",
        ),
        plan: str | None = typer.Option(
            None,
            help="Plan file from 'frugal cleave plan --json' to execute: its grids, and each device "
            "class's share of tiles while the fleet matches it.",
        ),
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
        trusted_workers: bool = typer.Option(
            False,
            "--trusted-workers",
            help="Allow --verify-rate below 1 (a worker caught late leaves its earlier steps' tiles in).",
        ),
        backups: bool = typer.Option(True, help="Speculative backup copies of straggling tiles."),
        max_in_flight: int = typer.Option(2, help="Tiles one worker may hold at once (1 after a miss)."),
        max_misses: int = typer.Option(
            3,
            help="Deadlines missed in a row before a worker is excluded (a miss halves its tiles' rows).",
        ),
        min_tile_rows: int = typer.Option(8, help="A slow worker's tiles are cut by rows down to this many."),
        registrations_per_name: int = typer.Option(
            10, help="Registrations a minute per worker name (per credential with TLS)."
        ),
        registrations_per_minute: int = typer.Option(600, help="Registrations a minute, all names together."),
        keep_departed: int = typer.Option(256, help="Workers that left or were lost kept in status."),
        rpc_threads: int = typer.Option(
            256, help="Calls served at once (more are refused, not queued): about 2 per worker."
        ),
        heartbeat_streams: int = typer.Option(
            0, help="Open heartbeat streams at most (0: three quarters of --rpc-threads)."
        ),
        min_gemm_flops: float = typer.Option(0.0, help="GEMMs below this many FLOPs stay on the PS."),
        checkpoint: str | None = typer.Option(None, help="Checkpoint file; resumed from when it exists."),
        checkpoint_every: int = typer.Option(10, min=1, help="Checkpoint every N steps."),
        metrics: str | None = typer.Option(None, help="Write the final metrics as JSON here."),
        address_file: str | None = typer.Option(None, help="Write HOST:PORT here once listening."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    ):
        """Run a parameter server: train the model with every large GEMM done by workers."""
        _logging(quiet)
        _serve(dict(locals()))

    _add_worker_commands(app)


def _serve(o: dict) -> None:
    """``serve``'s options (by parameter name) as a server configuration; train, then report."""
    from frugalml.cleave.runtime.model import MODELS, TrainConfig
    from frugalml.cleave.runtime.scheduler import LIMITS, SchedulerConfig
    from frugalml.cleave.runtime.server import ServerConfig, serve
    from frugalml.common.validate import one_of

    train = TrainConfig(
        model=one_of(o["model"], MODELS, "model"),
        batch_size=o["batch_size"],
        lr=o["lr"],
        steps=o["steps"],
        seed=o["seed"],
        dtype=one_of(o["dtype"], ("float32", "float64"), "dtype"),
    )
    scheduler = SchedulerConfig(
        verify_rate=o["verify_rate"],
        trusted_workers=o["trusted_workers"],
        heartbeat_timeout_s=o["heartbeat_timeout"],
        speculative=o["backups"],
        min_gemm_flops=o["min_gemm_flops"],
        seed=o["seed"],
        **{knob: o[knob] for knob, _, _ in LIMITS},
    )
    server = ("data", "host", "plan", "port", "min_workers", "rpc_threads", "heartbeat_streams")
    server += ("checkpoint", "checkpoint_every", "metrics", "address_file", "tls_cert", "tls_key")
    config = ServerConfig(
        train=train,
        scheduler=scheduler,
        tls_ca=o["ca"],
        insecure=o["insecure"],
        revoked=o["revoked"],
        **{key: o[key] for key in server},
    )
    result = serve(config)
    losses = result["losses"]
    typer.echo(
        f"trained {o['model']} for {len(losses)} steps: loss {losses[0]:.4f} -> {losses[-1]:.4f}; "
        f"{len(result['workers'])} workers, {result['requeued_tiles']} tiles re-queued"
    )


def _add_worker_commands(app: typer.Typer) -> None:
    """``worker`` and ``status``."""

    @app.command()
    def worker(
        server: str = typer.Option(..., help="Parameter server address HOST:PORT."),
        name: str = typer.Option(..., help="This device's name, e.g. phone-1."),
        down: str | None = typer.Option(None, help="Downlink to emulate, e.g. 100mbit (default: unshaped)."),
        up: str | None = typer.Option(None, help="Uplink to emulate, e.g. 20mbit (default: unshaped)."),
        device_class: str | None = typer.Option(
            None,
            "--class",
            help="This device's class in the catalogue (e.g. laptop, phone-flagship); its links and "
            "memory become the defaults, and a plan's class shares apply to it.",
        ),
        flops: float = typer.Option(
            0.0, help="FLOP/s to declare (sets task deadlines); 0: measure this machine's float32 GEMM rate."
        ),
        memory: str | None = typer.Option(
            None, help="Memory the device offers for tiles, e.g. 512MB (default: its class's, else 1GB)."
        ),
        link_shaping: str = typer.Option(
            "app",
            help="app: this process paces its own traffic to --down/--up; network: the links are already "
            "shaped (tc, a real network), the rates are only declared.",
        ),
        connect_timeout: float = typer.Option(10.0, help="Seconds to wait for the server."),
        reconnect_timeout: float = typer.Option(
            30.0,
            help="Seconds to wait for a lost server to come back "
            "(a restarted PS resumes from its checkpoint).",
        ),
        corrupt_every: int = typer.Option(0, hidden=True, help="Fault injection: corrupt every N-th result."),
        ca: str | None = typer.Option(None, help="TLS: the CA that signed the server's certificate."),
        cert: str | None = typer.Option(None, help="TLS: this worker's certificate (its name is --name)."),
        key: str | None = typer.Option(None, help="TLS: this worker's private key."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    ):
        """Run a device worker: pull GEMM tiles from a parameter server and compute them."""
        from frugalml.cleave.runtime.shaping import parse_rate, parse_size
        from frugalml.cleave.runtime.tls import client_files
        from frugalml.cleave.runtime.worker import WorkerConfig, class_defaults, measure_flops, run_worker
        from frugalml.common.validate import one_of

        _logging(quiet)
        shaping = one_of(link_shaping, ("app", "network"), "link shaping")
        defaults = class_defaults(device_class)
        config = WorkerConfig(
            server=server,
            name=name,
            down_bytes_per_s=parse_rate(down) if down is not None else defaults.get("down", 0.0),
            up_bytes_per_s=parse_rate(up) if up is not None else defaults.get("up", 0.0),
            flops=flops or measure_flops(),
            memory_bytes=parse_size(memory) if memory is not None else int(defaults.get("memory", 1 << 30)),
            device_class=device_class or "",
            shape_links=shaping == "app",
            connect_timeout_s=connect_timeout,
            reconnect_timeout_s=reconnect_timeout,
            corrupt_every=corrupt_every,
            tls=client_files(ca, cert, key),
        )
        typer.echo(run_worker(config).line())

    @app.command()
    def status(
        server: str = typer.Option(..., help="Parameter server address HOST:PORT."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
        timeout: float = typer.Option(5.0, help="Seconds to wait for the server."),
        ca: str | None = typer.Option(None, help="TLS: the CA that signed the server's certificate."),
        cert: str | None = typer.Option(None, help="TLS: a client certificate (status.pem from certs)."),
        key: str | None = typer.Option(None, help="TLS: its private key."),
    ):
        """Show a parameter server's progress and what each worker has done."""
        from frugalml.cleave.runtime.client import fetch_status
        from frugalml.cleave.runtime.tls import client_files

        snap = fetch_status(server, timeout=timeout, tls=client_files(ca, cert, key))
        if as_json:
            typer.echo(json.dumps(snap, indent=2))
            return
        _print_status(snap)


def add_certs_command(app: typer.Typer) -> None:
    """``certs``: credentials for a trial with TLS."""

    @app.command()
    def certs(
        out: Path = typer.Option(..., "--out", "-o", help="Empty folder to write the files into."),
        workers: str = typer.Option(..., "--workers", help="Worker names, comma-separated (their --name)."),
        host: str = typer.Option(
            "127.0.0.1", "--host", help="The server's addresses or DNS names, comma list."
        ),
        days: int = typer.Option(30, "--days", help="Days the certificates are valid."),
        add: bool = typer.Option(
            False,
            "--add",
            help="Issue new credentials for --workers from the CA already in --out "
            "(rotation: keys are never overwritten; prints each serial and fingerprint).",
        ),
    ):
        """Make a CA, a server certificate and one client certificate per worker (and status.pem).

        Example: frugal cleave certs -o creds --workers phone-1,laptop-1 --host 192.168.1.10; give the
        server ca.pem, server.pem and server.key, each worker ca.pem and its own NAME.pem / NAME.key,
        and keep ca.key offline. Rotate: frugal cleave certs -o creds --add --workers phone-1 writes
        phone-1.2.pem/.key; once the device uses it, put the old one's serial:HEX in --revoked.
        """
        from frugalml.cleave.runtime.tls import issue_credentials, make_credentials
        from frugalml.common.parsing import comma_list

        names = comma_list(workers, str, name="worker", non_empty=True)
        if add:
            for item in issue_credentials(out, names, days):
                typer.echo(
                    f"{item.name}: {item.cert.name} {item.key.name} serial:{item.serial} "
                    f"sha256:{item.fingerprint}"
                )
            return
        files = make_credentials(out, names, comma_list(host, str, name="host", non_empty=True), days)
        typer.echo(
            f"wrote {len(files)} files to {out}; keep ca.key offline, hand each worker only its own key"
        )


def add_fleet_commands(app: typer.Typer) -> None:
    """Add ``fleet up`` and ``fleet down`` (emulated edge hosts) to ``app``."""
    fleet_app = typer.Typer(
        help="Emulated edge hosts: one network namespace per worker, links shaped by tc.",
        no_args_is_help=True,
    )
    app.add_typer(fleet_app, name="fleet")

    @fleet_app.command("up")
    def up(
        workers: int = typer.Option(..., "--workers", "-n", min=1, help="Emulated devices (workers)."),
        pool: str | None = typer.Option(
            None, help="Pool YAML whose mix, classes and links the devices are drawn from (default: mixed)."
        ),
        steps: int = typer.Option(20, min=1, help="Training steps the server runs on the fleet."),
        plan: str | None = typer.Option(None, help="Plan file for the server to execute."),
        cpus: float | None = typer.Option(
            None, help="CPU cores all workers together may use (cgroup caps, split evenly); default: no cap."
        ),
        namespaces: bool = typer.Option(
            True, "--namespaces/--loopback", help="Namespaces and tc (root), or loopback with token buckets."
        ),
        seed: int = typer.Option(0, help="Seed of the default pool."),
        metrics: str | None = typer.Option(None, help="Write the server's metrics and link counters here."),
        prefix: str = typer.Option(
            "clv", help="Names of what the fleet makes (namespaces <prefix>-ps, -w0...)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the result line."),
    ):
        """Start a parameter server and workers on emulated edge hosts, train, then remove everything.

        Ctrl-C (or 'frugal cleave fleet down' from another terminal) stops the run and removes every
        namespace, link, cgroup and process it made.
        """
        import signal

        from frugalml.cleave.runtime.fleet import Fleet, FleetError, hosts_from_pool

        hosts = hosts_from_pool(workers, pool, seed)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            with Fleet(hosts, prefix=prefix, cpus=cpus, namespaces=namespaces) as fleet:
                fleet.up()
                typer.echo(fleet.describe())
                fleet.start_server(
                    steps=steps, min_workers=workers, plan=plan, metrics=fleet.workdir / "m.json"
                )
                fleet.start_workers(connect_timeout=60)
                code = fleet.wait_server(timeout=24 * 3600)
                if code != 0:
                    raise FleetError(f"the server failed (exit {code}): {fleet.log('server')[-600:].strip()}")
                result = json.loads((fleet.workdir / "m.json").read_text())
                if fleet.mode == "namespaces":
                    result["link_bytes"] = fleet.counters()
                fleet.wait_workers(timeout=15)
                if metrics:
                    from frugalml.common.files import atomic_write

                    with atomic_write(metrics, "w") as f:
                        json.dump(result, f, indent=2)
        finally:
            signal.signal(signal.SIGTERM, previous)
        losses = result["losses"]
        if not quiet:
            for name, (rx, tx) in result.get("link_bytes", {}).items():
                typer.echo(f"  {name}: {rx / 1e6:.2f} MB down, {tx / 1e6:.2f} MB up (interface counters)")
        typer.echo(
            f"trained {len(losses)} steps on {workers} emulated devices ({fleet.mode}): loss "
            f"{losses[0]:.4f} -> {losses[-1]:.4f}; plan: {result['plan']}; everything removed"
        )

    @fleet_app.command("down")
    def down(prefix: str = typer.Option("clv", help="The fleet's prefix (as given to 'fleet up').")):
        """Stop a running fleet and remove what it made (also what a killed 'fleet up' left behind)."""
        from frugalml.cleave.runtime.fleet import fleet_down

        state = fleet_down(prefix)
        typer.echo(
            f"fleet '{prefix}' down: {len(state.pids)} processes stopped, {len(state.namespaces)} namespaces "
            f"and {len(state.cgroups)} cgroups removed"
        )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _print_status(snap: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    losses = snap["losses"]
    loss = f", loss {losses[-1]:.4f}" if losses else ""
    recoveries = ", ".join(f"{s:.2f}" for s in snap["recovery_seconds"]) or "none"
    table = Table(
        title=f"{snap['model']}: {snap['state']}, step {snap['step']}/{snap['total_steps']}{loss}; "
        f"{snap['requeued_tiles']} re-queued, {snap['backup_tiles']} backups, "
        f"recoveries (s): {recoveries}; plan: {snap.get('plan') or 'none'}"
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
