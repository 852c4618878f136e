"""Fuzzing for the test suite: structure-aware mutations of a valid file, and a sandbox that runs
each case in a child process with a time limit and says how it ended.

A fuzz test takes the bytes of a valid file, makes mutated copies with :func:`mutations` (bit
flips, interesting integers written over header-like fields, truncation, extension, splices,
zeroed ranges; each optionally re-sealed with valid checksums by a format-specific ``reseal``,
since checksum formulas are public and an attacker recomputes them), runs the reader on each copy
in a :class:`Sandbox` and checks the :class:`Outcome`: a clean ``FrugalError`` or an answer equal
to a slow reference, never a crash, a hang or an unexpected exception.

The sandbox child is *spawned*, not forked, so it inherits no OpenMP, numba or torch threads (a
forked child of a threaded parent can deadlock); it runs cases one after another and is replaced
only after a crash or a hang, so thousands of cases cost one interpreter start.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import struct
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

INTERESTING = (0, 1, 2, 7, 8, 255, 256, 4095, 4096, 65535, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, -1, -2)


@dataclass(frozen=True)
class Outcome:
    """How one case ended: ``answer`` (``value`` is what the function returned), ``error`` (a
    FrugalError; ``value`` is its message), ``unexpected`` (another exception; ``value`` is the
    traceback), ``crash`` (the child died; ``value`` is its exit code, negative for a signal) or
    ``hang`` (no answer within the time limit)."""

    kind: str
    value: Any = None

    @property
    def clean(self) -> bool:
        """An answer or a one-line FrugalError: what every fuzz case must end in."""
        return self.kind == "answer" or (self.kind == "error" and "\n" not in str(self.value).strip())


def _serve(conn, warm_up: Callable[[], Any] | None) -> None:
    """The child's loop: import, warm up, say ready, then run each (function, args) received and
    send back (kind, value)."""
    from frugalml.common.errors import FrugalError

    if warm_up is not None:
        warm_up()
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        fn, args = job
        try:
            reply = ("answer", fn(*args))
        except FrugalError as exc:
            reply = ("error", str(exc))
        except BaseException:  # the point is to see it, not to let it through
            reply = ("unexpected", traceback.format_exc())
        conn.send(reply)


class Sandbox:
    """A spawned child process that runs cases one at a time with a time limit each.

    Use as a context manager; ``run(fn, *args)`` returns an :class:`Outcome`. ``fn`` must be
    importable by name (a module-level function), and its arguments and result picklable.
    ``warm_up`` (also importable by name) runs in every new child before its first case, e.g. to
    import torch or compile numba kernels; interpreter start and warm-up get ``start_timeout``
    seconds and are never counted against a case.
    """

    def __init__(
        self, timeout: float = 10.0, *, warm_up: Callable[[], Any] | None = None, start_timeout: float = 300.0
    ):
        self.timeout = timeout
        self.warm_up = warm_up
        self.start_timeout = start_timeout
        self._ctx = mp.get_context("spawn")
        self._proc = None
        self._conn = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child, self.warm_up), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        ready = parent.poll(self.start_timeout)
        if not ready or parent.recv() != ("ready", None):
            code = self._kill()
            raise RuntimeError(f"the sandbox child did not start within {self.start_timeout} s (exit {code})")

    def _kill(self) -> int | None:
        assert self._proc is not None
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(timeout=10)
        code = self._proc.exitcode
        self._conn.close()
        self._proc = self._conn = None
        return code

    def run(self, fn: Callable[..., Any], *args: Any) -> Outcome:
        """Run ``fn(*args)`` in the child and say how it ended."""
        if self._proc is None:
            self._start()
        try:
            self._conn.send((fn, args))
            if self._conn.poll(self.timeout):
                kind, value = self._conn.recv()
                return Outcome(kind, value)
        except (EOFError, BrokenPipeError, ConnectionResetError):
            return Outcome("crash", self._kill())
        self._kill()
        return Outcome("hang", self.timeout)

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=5)
            self._kill()


def check_cases(
    cases: Iterator[tuple[str, bytes]] | list[tuple[str, bytes]],
    run: Callable[[bytes], Any],
    reference: Callable[[bytes], Any],
    *,
    timeout: float,
    warm_up: Callable[[], Any] | None = None,
    same: Callable[[Any, Any], bool] = lambda ours, expected: ours == expected,
) -> dict[str, int]:
    """Run ``run`` on every ``(kind, bytes)`` case in a :class:`Sandbox` and hold it to the slow
    ``reference`` (None where it refuses the bytes): a case passes when both refuse (ours with a
    clean error) or both answer the ``same``; never a crash, hang or other exception. Fails listing
    the first 20 bad cases; returns how many ended in an error and in an answer."""
    problems, counts = [], {"error": 0, "answer": 0}
    with Sandbox(timeout=timeout, warm_up=warm_up) as box:
        for kind, data in cases:
            outcome = box.run(run, data)
            expected = reference(data)
            if not outcome.clean:
                problems.append(f"{kind}: {outcome.kind} {str(outcome.value)[-400:]}")
                continue
            counts[outcome.kind] += 1
            if outcome.kind == "error" and expected is not None:
                problems.append(f"{kind}: refused bytes the reference reads ({outcome.value})")
            elif outcome.kind == "answer" and (expected is None or not same(outcome.value, expected)):
                what = "them invalid" if expected is None else "another answer"
                problems.append(f"{kind}: answered, but the reference finds {what}")
    assert not problems, f"{len(problems)} bad cases:\n" + "\n".join(problems[:20])
    return counts


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random structure-aware mutation of ``data``; returns (what was done, the new bytes)."""
    buf = bytearray(data)
    n = len(buf)
    kind = str(rng.choice(["flip", "byte", "int", "int", "truncate", "extend", "splice", "zero"]))
    if n == 0 or kind == "extend":
        extra = rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        return "extend", bytes(buf) + extra
    if kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(n))
            buf[i] ^= 1 << int(rng.integers(8))
    elif kind == "byte":
        for _ in range(int(rng.integers(1, 5))):
            buf[int(rng.integers(n))] = int(rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF]))
    elif kind == "int":  # an aligned little-endian word set to a value that breaks sizes and indices
        width = int(rng.choice([2, 4, 8]))
        if n >= width:
            at = int(rng.integers(0, n - width + 1)) // width * width
            value = int(rng.choice([*INTERESTING, n, n + 1, int(rng.integers(0, 2**31))]))
            buf[at : at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    elif kind == "truncate":
        return "truncate", bytes(buf[: int(rng.integers(0, n))])
    elif kind == "splice":  # a chunk copied over another place: a block of one part inside another
        size = int(rng.integers(1, max(2, n // 4)))
        src, dst = int(rng.integers(0, n)), int(rng.integers(0, n))
        chunk = buf[src : src + size]
        buf[dst : dst + len(chunk)] = chunk
    else:
        start = int(rng.integers(0, n))
        stop = min(n, start + int(rng.integers(1, 256)))
        buf[start:stop] = bytes(stop - start)
    return kind, bytes(buf)


def mutations(
    data: bytes,
    count: int,
    seed: int = 0,
    *,
    reseal: Callable[[bytes], bytes] | None = None,
    resealed_share: float = 0.5,
) -> Iterator[tuple[str, bytes]]:
    """``count`` mutated copies of ``data`` (seeded); ``resealed_share`` of them passed through
    ``reseal`` so that checksums are valid again and the reader's structural checks are tested."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        kind, mutated = mutate(data, rng)
        if rng.random() < 0.3:  # sometimes two mutations at once
            second, mutated = mutate(mutated, rng)
            kind = f"{kind}+{second}"
        if reseal is not None and rng.random() < resealed_share:
            kind, mutated = f"{kind}, resealed", reseal(mutated)
        yield kind, mutated


_FIXED = struct.Struct("<8sIIQQ32s")  # frugalml.common.files' container header


def reseal_container(data: bytes) -> bytes:
    """Recompute the checksums of a :mod:`frugalml.common.files` container (header CRC-32 and
    payload SHA-256) as an attacker would; bytes too damaged to parse are returned unchanged."""
    if len(data) < _FIXED.size:
        return data
    magic, version, meta_len, offset, length, _ = _FIXED.unpack_from(data)
    end = _FIXED.size + meta_len
    if end + 4 > len(data) or offset > len(data):
        return data
    payload = data[offset : offset + length]
    fixed = _FIXED.pack(magic, version, meta_len, offset, length, hashlib.sha256(payload).digest())
    head = fixed + data[_FIXED.size : end]
    return head + struct.pack("<I", zlib.crc32(head)) + data[end + 4 :]


def container_metadata(data: bytes) -> dict[str, Any]:
    """The JSON metadata of a valid container (to build mutations that edit it)."""
    _, _, meta_len, *_ = _FIXED.unpack_from(data)
    return json.loads(data[_FIXED.size : _FIXED.size + meta_len])


def with_metadata(data: bytes, metadata: dict[str, Any]) -> bytes:
    """A container whose metadata is replaced (checksums recomputed, payload kept at its offset)."""
    magic, version, meta_len, offset, length, sha = _FIXED.unpack_from(data)
    meta = json.dumps(metadata, sort_keys=True).encode()
    head_end = _FIXED.size + len(meta) + 4
    new_offset = max(offset, head_end)
    fixed = _FIXED.pack(magic, version, len(meta), new_offset, length, sha)
    head = fixed + meta
    head += struct.pack("<I", zlib.crc32(head))
    return head + bytes(new_offset - len(head)) + data[offset : offset + length]


def read_container_reference(
    data: bytes, magic: bytes, max_version: int
) -> tuple[dict[str, Any], bytes] | None:
    """A slow, independent reading of a :mod:`frugalml.common.files` container: (metadata,
    payload), or None when the bytes are not a valid container of ``magic``."""
    try:
        file_magic, version, meta_len, offset, length, sha = _FIXED.unpack_from(data)
        head = data[: _FIXED.size + meta_len]
        (crc,) = struct.unpack_from("<I", data, _FIXED.size + meta_len)
        payload = data[offset : offset + length]
        valid = (
            file_magic == magic.ljust(8, b"\0")
            and version <= max_version
            and zlib.crc32(head) == crc
            and len(payload) == length
            and hashlib.sha256(payload).digest() == sha
            and offset >= _FIXED.size + meta_len + 4
        )
        meta = json.loads(head[_FIXED.size :])
        return (meta, payload) if valid and isinstance(meta, dict) else None
    except Exception:
        return None


def read_arrays_reference(meta: dict[str, Any], payload: bytes) -> dict[str, np.ndarray] | None:
    """The arrays a :mod:`frugalml.common.arrays` index describes, read independently; None when
    the index does not fit the payload."""
    import math

    try:
        arrays, at = {}, 0
        for item in meta["arrays"]:
            dtype = np.dtype(item["dtype"])
            shape = tuple(int(d) for d in item["shape"])
            nbytes = dtype.itemsize * math.prod(shape)
            start = int(item.get("offset", at))
            if dtype.hasobject or min(shape, default=0) < 0 or start < 0 or start + nbytes > len(payload):
                return None
            if "nbytes" in item and int(item["nbytes"]) != nbytes:
                return None
            arrays[str(item["name"])] = np.frombuffer(payload[start : start + nbytes], dtype).reshape(shape)
            at = start + nbytes
        return arrays
    except Exception:
        return None
