"""Asking a running parameter server for its status (``frugal cleave status``)."""

from __future__ import annotations

import grpc
from google.protobuf.json_format import MessageToDict

from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.cleave.runtime import cleave_runtime_pb2_grpc as pb_grpc
from frugalml.cleave.runtime.protocol import grpc_options
from frugalml.cleave.runtime.tls import ClientFiles, channel
from frugalml.common.errors import InvalidInputError, ServiceUnavailableError

_INTEGERS = (
    "worker_id",
    "tiles_done",
    "tiles_rejected",
    "in_flight",
    "bytes_down",
    "bytes_up",
    "control_bytes",
    "model_bytes_down",
    "model_bytes_up",
    "memory_bytes",
    "requeued_tiles",
    "backup_tiles",
    "step",
    "total_steps",
    "protocol_version",
    "workers_total",
    "workers_offset",
)


def fetch_status(
    server: str, timeout: float = 5.0, tls: ClientFiles | None = None, max_pages: int = 64
) -> dict:
    """The server's progress and per-worker counters as a dict (integers as ints), reading the
    workers page by page (at most ``max_pages`` pages; ``workers_total`` says how many there are).

    Raises
    ------
    ServiceUnavailableError
        Nothing answers at ``server`` within ``timeout`` seconds.
    """
    if ":" not in server:
        raise InvalidInputError(f"--server must be HOST:PORT, got {server!r}")
    workers: list[dict] = []
    with channel(server, tls, grpc_options()) as open_channel:
        stub = pb_grpc.CleaveStub(open_channel)
        for _ in range(max_pages):
            try:
                reply = stub.Status(
                    pb.StatusRequest(offset=len(workers)), timeout=timeout, wait_for_ready=True
                )
            except grpc.RpcError as exc:
                raise ServiceUnavailableError(
                    f"no cleave parameter server answers at {server} ({exc.code().name}); check the address"
                    + ("" if tls else " (a server with TLS needs --ca, --cert and --key)")
                ) from None
            status = _ints(
                MessageToDict(
                    reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
                )
            )
            workers += status.pop("workers")
            status.pop("workers_offset")
            if not reply.workers or len(workers) >= reply.workers_total:
                break
    return {**status, "workers": workers}


def _ints(value):
    if isinstance(value, dict):
        return {k: int(v) if k in _INTEGERS else _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value
