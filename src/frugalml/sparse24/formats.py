"""Compressed storage: 2:4 (values + 2-bit indices) and V:N:M (values, column indices, positions).

Also byte accounting and a compressed checkpoint file (versioned, checksummed, written atomically
through :mod:`frugalml.common.files`) whose 2:4 tensors are stored packed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugalml.common.errors import CorruptFileError, InvalidInputError
from frugalml.common.files import read_container, write_container
from frugalml.sparse24.masks import VNM, check_float_tensor, group_ranks, is_24, is_vnm

CHECKPOINT_MAGIC = b"SP24CKPT"
CHECKPOINT_VERSION = 1
_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float32,
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.uint8,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.bool,
    )
}


@dataclass
class Packed:
    """A compressed tensor: ``kind`` ("2:4" or a V:N:M spec), its dense ``shape`` and parts."""

    kind: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    parts: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the compressed parts (values + metadata)."""
        return sum(p.numel() * p.element_size() for p in self.parts.values())

    @property
    def dense_nbytes(self) -> int:
        """Bytes of the same tensor stored dense."""
        return int(np.prod(self.shape)) * torch.empty((), dtype=self.dtype).element_size()

    @property
    def compression(self) -> float:
        """Dense bytes / compressed bytes."""
        return self.dense_nbytes / self.nbytes


def _pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit codes (a flat uint8 tensor) two per byte (odd counts padded with a zero nibble)."""
    flat = codes.reshape(-1).to(torch.uint8)
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return flat[0::2] | (flat[1::2] << 4)


def _unpack_nibbles(packed: torch.Tensor, count: int) -> torch.Tensor:
    both = torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(-1)
    return both[:count]


def _two_of_four(nonzero: torch.Tensor) -> torch.Tensor:
    """Ascending positions (…, 2) of the kept entries per group of 4: non-zeros first, then padding."""
    keep = group_ranks(nonzero.to(torch.float32)) < 2
    return torch.argsort((~keep).to(torch.uint8), dim=-1, stable=True)[..., :2]


def pack_24(x: torch.Tensor) -> Packed:
    """Pack a 2:4-sparse matrix into half its values plus 4 bits of indices per group of 4.

    Raises
    ------
    InvalidInputError
        ``x`` is not 2-D float, its column count is not a multiple of 4, or it is not 2:4 sparse.
    """
    check_float_tensor(x, "tensor to pack")
    if x.shape[1] % 4 or not is_24(x):
        raise InvalidInputError(
            f"tensor of shape {tuple(x.shape)} is not 2:4 sparse along its last dim; apply a 2:4 mask "
            "(frugalml.sparse24.mask_24) before packing"
        )
    groups = x.reshape(x.shape[0], -1, 4)
    positions = _two_of_four(groups != 0)
    values = groups.gather(-1, positions).reshape(x.shape[0], -1).contiguous()
    codes = positions[..., 0] | (positions[..., 1] << 2)
    return Packed("2:4", tuple(x.shape), x.dtype, {"values": values, "indices": _pack_nibbles(codes)})


def unpack_24(packed: Packed) -> torch.Tensor:
    """The dense matrix back from :func:`pack_24` (exact)."""
    rows, cols = packed.shape
    values = packed.parts["values"].reshape(rows, cols // 4, 2)
    codes = _unpack_nibbles(packed.parts["indices"], rows * cols // 4).reshape(rows, cols // 4)
    positions = torch.stack([codes & 3, (codes >> 2) & 3], dim=-1).long()
    dense = torch.zeros(rows, cols // 4, 4, dtype=packed.dtype, device=values.device)
    dense.scatter_(-1, positions, values)
    return dense.reshape(rows, cols)


def pack_vnm(x: torch.Tensor, pattern: VNM | str) -> Packed:
    """Pack a V:N:M-sparse matrix: per row 2 values per M columns, 4 column indices per V x M block,
    and 2-bit positions of each row's values among its block's 4 columns.
    """
    pattern = VNM.parse(pattern)
    check_float_tensor(x, "tensor to pack")
    if not is_vnm(x, pattern):
        raise InvalidInputError(
            f"tensor of shape {tuple(x.shape)} is not {pattern}-sparse; apply frugalml.sparse24.vnm_mask "
            f"first (rows must divide by {pattern.v}, columns by {pattern.m})"
        )
    v, m = pattern.v, pattern.m
    rows, cols = x.shape
    blocks = x.reshape(rows // v, v, cols // m, m)
    used = (blocks != 0).any(dim=1).to(torch.float32)  # (B, G, M)
    keep_col = group_ranks(used) < 4
    columns = torch.argsort((~keep_col).to(torch.uint8), dim=-1, stable=True)[..., :4]  # (B, G, 4)
    index = columns.unsqueeze(1).expand(-1, v, -1, -1)
    candidates = blocks.gather(-1, index)  # (B, V, G, 4)
    positions = _two_of_four(candidates != 0)
    values = candidates.gather(-1, positions).reshape(rows, -1).contiguous()
    codes = positions[..., 0] | (positions[..., 1] << 2)
    column_dtype = torch.uint8 if m <= 256 else torch.int16
    return Packed(
        str(pattern),
        (rows, cols),
        x.dtype,
        {
            "values": values,
            "columns": columns.to(column_dtype).contiguous(),
            "positions": _pack_nibbles(codes),
        },
    )


def unpack_vnm(packed: Packed) -> torch.Tensor:
    """The dense matrix back from :func:`pack_vnm` (exact)."""
    pattern = VNM.parse(packed.kind)
    v, m = pattern.v, pattern.m
    rows, cols = packed.shape
    blocks, groups = rows // v, cols // m
    values = packed.parts["values"].reshape(blocks, v, groups, 2)
    columns = packed.parts["columns"].long()
    codes = _unpack_nibbles(packed.parts["positions"], rows * groups).reshape(blocks, v, groups)
    positions = torch.stack([codes & 3, (codes >> 2) & 3], dim=-1).long()
    column_index = columns.unsqueeze(1).expand(-1, v, -1, -1).gather(-1, positions)
    dense = torch.zeros(blocks, v, groups, m, dtype=packed.dtype, device=values.device)
    dense.scatter_(-1, column_index, values)
    return dense.reshape(rows, cols)


def _to_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def _from_bytes(raw: bytes, dtype_name: str, shape: list[int]) -> torch.Tensor:
    dtype = _DTYPES[dtype_name]
    storage = torch.int16 if dtype == torch.bfloat16 else dtype
    array = np.frombuffer(raw, dtype=torch.empty((), dtype=storage).numpy().dtype).copy()
    return torch.from_numpy(array).reshape(shape).view(dtype)


def save_checkpoint(
    state: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None
) -> dict[str, int]:
    """Write a state dict with every 2:4-sparse 2-D float tensor packed; the rest stored dense.

    Returns byte accounting: ``{"dense_bytes", "file_payload_bytes", "packed_tensors"}``.
    """
    entries, chunks, offset, dense_bytes, packed_count = [], [], 0, 0, 0
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        dense_bytes += tensor.numel() * tensor.element_size()
        packable = (
            tensor.ndim == 2
            and tensor.is_floating_point()
            and tensor.shape[1] % 4 == 0
            and tensor.numel() > 0
            and is_24(tensor)
        )
        parts = pack_24(tensor).parts if packable else {"dense": tensor}
        packed_count += packable
        entry: dict[str, Any] = {
            "name": name,
            "kind": "2:4" if packable else "dense",
            "shape": list(tensor.shape),
            "dtype": str(tensor.dtype).removeprefix("torch."),
            "parts": {},
        }
        for part_name, part in parts.items():
            raw = _to_bytes(part)
            entry["parts"][part_name] = {
                "offset": offset,
                "length": len(raw),
                "shape": list(part.shape),
                "dtype": str(part.dtype).removeprefix("torch."),
            }
            chunks.append(raw)
            offset += len(raw)
        entries.append(entry)
    write_container(
        path, CHECKPOINT_MAGIC, CHECKPOINT_VERSION, {"tensors": entries, "user": metadata or {}}, chunks
    )
    return {"dense_bytes": dense_bytes, "file_payload_bytes": offset, "packed_tensors": packed_count}


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`; return (dense state dict, user metadata).

    Raises
    ------
    DataNotFoundError, CorruptFileError
        Missing file; wrong magic, newer version, truncated or damaged file.
    """
    header, payload = read_container(Path(path), CHECKPOINT_MAGIC, CHECKPOINT_VERSION)
    state = {}
    try:
        for entry in header.metadata["tensors"]:
            parts = {
                name: _from_bytes(payload[p["offset"] : p["offset"] + p["length"]], p["dtype"], p["shape"])
                for name, p in entry["parts"].items()
            }
            if entry["kind"] == "2:4":
                packed = Packed("2:4", tuple(entry["shape"]), _DTYPES[entry["dtype"]], parts)
                state[entry["name"]] = unpack_24(packed)
            else:
                state[entry["name"]] = parts["dense"]
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(f"{path} has an inconsistent tensor table ({exc}); write it again") from None
    return state, header.metadata.get("user", {})
