"""Tensors on the wire: raw little-endian bytes with dtype and shape, cut into streamed chunks."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from frugalml.cleave.runtime import cleave_runtime_pb2 as pb
from frugalml.common.errors import InvalidInputError

PROTOCOL_VERSION = 1
CHUNK_BYTES = 1 << 20
TASKS_IN_FLIGHT = 1  # a worker pulls, computes and pushes one tile at a time; plans must assume the same
MAX_MESSAGE_BYTES = 8 << 20
WIRE_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}


def meta_of(array: np.ndarray) -> pb.TensorMeta:
    """The dtype and shape message describing ``array``."""
    name = array.dtype.name
    if name not in WIRE_DTYPES:
        raise InvalidInputError(f"dtype {name} cannot travel; use one of {', '.join(WIRE_DTYPES)}")
    return pb.TensorMeta(dtype=name, shape=list(array.shape))


def to_bytes(array: np.ndarray) -> bytes:
    """``array`` as C-ordered little-endian bytes."""
    return np.ascontiguousarray(array, dtype=WIRE_DTYPES[array.dtype.name]).tobytes()


def nbytes_of(meta: pb.TensorMeta) -> int:
    """How many data bytes a tensor described by ``meta`` occupies (checks the description)."""
    if meta.dtype not in WIRE_DTYPES:
        raise InvalidInputError(f"unknown tensor dtype {meta.dtype!r}; expected one of {list(WIRE_DTYPES)}")
    if len(meta.shape) != 2 or min(meta.shape) < 1:
        raise InvalidInputError(f"tensor shape {list(meta.shape)} is not a non-empty matrix")
    return int(np.prod(meta.shape)) * WIRE_DTYPES[meta.dtype].itemsize


def from_bytes(meta: pb.TensorMeta, data: bytes | memoryview) -> np.ndarray:
    """Rebuild a (read-only) array from its description and bytes, refusing any length mismatch."""
    expected = nbytes_of(meta)
    if len(data) != expected:
        raise InvalidInputError(
            f"tensor {meta.dtype}{list(meta.shape)} needs {expected} bytes, got {len(data)}: "
            "the message was truncated or malformed"
        )
    dtype = WIRE_DTYPES[meta.dtype]
    return (
        np.frombuffer(data, dtype=dtype)
        .reshape(tuple(meta.shape))
        .astype(dtype.newbyteorder("="), copy=False)
    )


def split_chunks(payload: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterable[memoryview]:
    """``payload`` as consecutive views of at most ``chunk_bytes`` (at least one, maybe empty)."""
    view = memoryview(payload)
    yield view[:chunk_bytes]
    for start in range(chunk_bytes, len(view), chunk_bytes):
        yield view[start : start + chunk_bytes]


def grpc_options() -> list[tuple[str, int]]:
    """Channel and server options: message limits and keepalive pings that expose dead peers fast."""
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 2000),
        ("grpc.keepalive_timeout_ms", 2000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ("grpc.http2.min_time_between_pings_ms", 1000),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]
