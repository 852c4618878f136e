"""Mask-independent cuSPARSELt packing: a shape-only rule, learned once per (shape, dtype, device), that
turns any 2:4 mask into the gather :class:`PackedLayout` uses, with no ``_cslt_compress`` call per mask.

Why it exists: cuSPARSELt documents its compressed layout as opaque, but torch's fused tile kernel
(``MetadataCuSparseLt`` in ``aten/src/ATen/native/sparse/cuda/SparseSemiStructuredTile.cu``) and
torchao's sm90 sparsifier (``MetadataCusparseLt16bits``) write it directly: the kept values as a
(rows, cols / 2) matrix, each group of 4 giving 2 slots, then 4 metadata bits per group at an offset
that depends only on the group's row and column (reverse-engineered and GPU-generation specific:
torch's sm8x offsets are wrong on sm90). So each value slot and each metadata bit belongs to one fixed
group, and only the group's kept pattern (one of 11: at most 2 of 4) decides what goes there. The rule
learns those positions from the real ``compress`` by probing it (no layout is hard-coded), and checks
itself on a random mask; a layout that breaks the assumption raises instead of packing wrong values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from frugalml.common.errors import InvalidInputError
from frugalml.sparse24.backends import CUSPARSELT, PackedLayout, SparseKernels, _learn_slots

# every pattern a group of 4 can hold under 2:4: two kept (the usual), one or none (greedy masks, zeros)
PATTERNS = tuple(c for size in (2, 1, 0) for c in itertools.combinations(range(4), size))


def _pattern_table(device: torch.device) -> torch.Tensor:
    """Pattern id of each 4-bit group code (bit i = entry i kept); -1 for more than 2 kept."""
    table = torch.full((16,), -1, dtype=torch.long)
    for pid, kept in enumerate(PATTERNS):
        table[sum(1 << i for i in kept)] = pid
    return table.to(device)


def pattern_ids(mask: torch.Tensor) -> torch.Tensor:
    """Pattern id (index into :data:`PATTERNS`) of every group of 4 of a 2:4 ``mask``, row-major."""
    groups = mask.reshape(-1, 4).long()
    code = groups[:, 0] | groups[:, 1] << 1 | groups[:, 2] << 2 | groups[:, 3] << 3
    ids = _pattern_table(mask.device)[code]
    if bool((ids < 0).any()):
        raise InvalidInputError("the mask keeps more than 2 of 4 in some group; it is not 2:4")
    return ids


def _probe(rows: int, cols: int, ids: torch.Tensor, dtype: torch.dtype, device, values: str = "ones"):
    """A (rows, cols) matrix whose group g holds pattern ``ids[g]``: kept entries 1, or their index + 1."""
    kept = torch.tensor([[i in p for i in range(4)] for p in PATTERNS], device=device)[ids]
    fill = (
        torch.arange(1, 5, device=device, dtype=dtype)
        if values == "index"
        else torch.ones(4, dtype=dtype, device=device)
    )
    return (kept * fill).to(dtype).reshape(rows, cols)


def _bits(words: torch.Tensor) -> torch.Tensor:
    """(..., 16) bits of int16 words, bit j = (word >> j) & 1."""
    shifts = torch.arange(16, device=words.device, dtype=torch.int32)
    return (words.to(torch.int32).unsqueeze(-1) >> shifts) & 1 == 1


def _words(bits: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_bits`: int16 words from (..., 16) bits."""
    weights = 1 << torch.arange(16, device=bits.device, dtype=torch.int32)
    value = (bits.to(torch.int32) * weights).sum(-1)
    return torch.where(value >= 1 << 15, value - (1 << 16), value).to(torch.int16)


@dataclass
class ShapeRule:
    """Where ``compress`` puts each group's values and metadata bits for one (rows, cols) shape.

    Attributes: ``value_slot`` / ``value_group`` / ``value_rank`` (the packed int16 word of each
    value, its group and whether it is the group's first or second value), ``pick[pattern, rank]``
    (which of the group's 4 entries fills that slot, -1 for a zero filler), ``meta_slot`` (metadata
    words), ``bit_group`` (group of each metadata bit, -1 for a constant bit), ``bit_signature``
    (index into ``signatures``: the bit's value for each of the 11 patterns), ``constant`` (the
    packed words with every pattern-dependent bit cleared).
    """

    rows: int
    cols: int
    dtype: torch.dtype
    words: int
    value_slot: torch.Tensor
    value_group: torch.Tensor
    value_rank: torch.Tensor
    pick: torch.Tensor
    meta_slot: torch.Tensor
    bit_group: torch.Tensor
    bit_signature: torch.Tensor
    signatures: torch.Tensor
    constant: torch.Tensor

    @classmethod
    def learn(
        cls,
        rows: int,
        cols: int,
        dtype: torch.dtype,
        device: torch.device | str = "cuda",
        kernels: SparseKernels = CUSPARSELT,
        check: bool = True,
    ) -> ShapeRule:
        """Probe ``kernels.compress`` (about 2 log2(groups) + 25 calls) and return the rule.

        Raises
        ------
        InvalidInputError
            The shape is not a multiple of 4 columns, the dtype is not 16-bit, or the packed layout
            is not a fixed function of the shape (the self-check on a random mask failed).
        """
        if cols % 4 or dtype not in (torch.float16, torch.bfloat16):
            raise InvalidInputError(
                f"a packing rule needs a 16-bit dtype and columns divisible by 4, got {dtype}, {rows}x{cols}"
            )
        groups = rows * cols // 4
        device = torch.device(device)
        positions = torch.arange(rows * cols, device=device, dtype=torch.long).reshape(rows, cols)
        first_two = torch.zeros(groups, dtype=torch.long, device=device)  # pattern (0, 1) everywhere
        index, is_value, _ = _learn_slots(
            positions, _probe(rows, cols, first_two, dtype, device) != 0, dtype, kernels
        )
        value_slot = is_value.nonzero().squeeze(1)
        value_position = index[value_slot]
        value_group, value_rank = value_position // 4, value_position % 4
        if value_slot.numel() != 2 * groups or bool((value_rank > 1).any()):
            raise InvalidInputError(
                f"compress's value slots for {rows}x{cols} are not 2 per group of 4; "
                "use PackedLayout.learn per mask"
            )
        meta_slot = (~is_value).nonzero().squeeze(1)
        pick = []
        codes = torch.zeros(meta_slot.numel() * 16, dtype=torch.long, device=device)  # bit p: pattern p
        for pid in range(len(PATTERNS)):
            ids = torch.full((groups,), pid, dtype=torch.long, device=device)
            packed = kernels.compress(_probe(rows, cols, ids, dtype, device, "index")).view(torch.int16)
            entry = packed.view(dtype)[value_slot].float().round().long() - 1  # kept index, -1: zero filler
            per_rank = [entry[value_rank == r] for r in (0, 1)]
            if any(bool((e != e[0]).any()) for e in per_rank):
                raise InvalidInputError(
                    f"compress fills {rows}x{cols} value slots differently per group; "
                    "use PackedLayout.learn per mask"
                )
            pick.append([int(e[0]) for e in per_rank])
            codes |= _bits(packed[meta_slot]).reshape(-1).long() << pid
        every = (1 << len(PATTERNS)) - 1
        varies = (codes != 0) & (codes != every)
        signatures, bit_signature = torch.unique(codes[varies], return_inverse=True)
        signatures = (signatures.unsqueeze(1) >> torch.arange(len(PATTERNS), device=device)) & 1 == 1
        # a bit that varies reads pattern q differently from pattern 0 for its first such q: probe the
        # group index one binary digit at a time with groups holding pattern q (digit 1) or 0 (digit 0)
        differs = (codes ^ -(codes & 1)) & every
        first_q = torch.zeros_like(codes)
        for q in range(len(PATTERNS) - 1, 0, -1):
            first_q = torch.where((differs >> q) & 1 == 1, q, first_q)
        bit_group = torch.full_like(codes, -1)
        bit_group[varies] = 0
        group_index = torch.arange(groups, device=device)
        for q in first_q[varies].unique().tolist():
            chosen = varies & (first_q == q)
            expected = (codes[chosen] >> q) & 1 == 1  # the bit's value when its group holds pattern q
            for digit in range(max(1, math.ceil(math.log2(groups)))):
                ids = torch.where((group_index >> digit) & 1 == 1, q, 0)
                packed = kernels.compress(_probe(rows, cols, ids, dtype, device)).view(torch.int16)
                read = _bits(packed[meta_slot]).reshape(-1)
                bit_group[chosen] += (read[chosen] == expected).long() << digit
        if bool((bit_group >= groups).any()):
            raise InvalidInputError(
                f"compress's metadata for {rows}x{cols} is not one group per bit; "
                "use PackedLayout.learn per mask"
            )
        constant = kernels.compress(_probe(rows, cols, first_two, dtype, device)).view(torch.int16).clone()
        constant[value_slot] = 0
        cleared = _bits(constant[meta_slot]).reshape(-1) & ~varies
        constant[meta_slot] = _words(cleared.reshape(-1, 16))
        full_signature = torch.zeros_like(codes)
        full_signature[varies] = bit_signature
        rule = cls(
            rows,
            cols,
            dtype,
            constant.numel(),
            value_slot,
            value_group,
            value_rank.bool(),
            torch.tensor(pick, device=device),
            meta_slot,
            bit_group,
            full_signature,
            signatures,
            constant,
        )
        if check:
            rule.self_check(kernels)
        return rule

    def slots(self, mask: torch.Tensor, positions: torch.Tensor | None = None):
        """The gather of :class:`PackedLayout` for ``mask``: (index into ``positions`` per packed word,
        value-word mask, constant words); ``positions`` maps the mask's entries to the weight's flat
        indices (default: its own row-major order)."""
        if tuple(mask.shape) != (self.rows, self.cols):
            raise InvalidInputError(
                f"the rule was learned for {self.rows}x{self.cols}, got a mask of {tuple(mask.shape)}"
            )
        ids = pattern_ids(mask)
        entry = self.pick[ids[self.value_group], self.value_rank.long()]
        is_value = torch.zeros(self.words, dtype=torch.bool, device=mask.device)
        is_value[self.value_slot] = entry >= 0
        flat = positions.reshape(-1) if positions is not None else None
        where = self.value_group * 4 + entry.clamp_min(0)
        index = torch.zeros(self.words, dtype=torch.long, device=mask.device)
        index[self.value_slot] = flat[where] if flat is not None else where
        patterns = ids[self.bit_group.clamp_min(0)]
        bits = (self.signatures[self.bit_signature, patterns] & (self.bit_group >= 0)).reshape(-1, 16)
        constant = self.constant.clone()
        constant[self.meta_slot] = _words(_bits(self.constant[self.meta_slot]) | bits)
        return index, is_value, constant

    def layout(self, mask: torch.Tensor, transposed: ShapeRule | None = None) -> PackedLayout:
        """The :class:`PackedLayout` of ``mask`` (and of its transpose with ``transposed``, the rule of
        the transposed shape), built by the rule: no compress call."""
        slots_t = None
        if transposed is not None:
            positions = torch.arange(mask.numel(), device=mask.device).reshape(mask.shape).t().contiguous()
            slots_t = transposed.slots(mask.t().contiguous(), positions)
        return PackedLayout(mask, self.slots(mask), slots_t)

    def self_check(self, kernels: SparseKernels = CUSPARSELT, seed: int = 0) -> None:
        """Raise unless the rule packs a random mask (all 11 group patterns) bit-identically to compress."""
        device = self.value_slot.device
        generator = torch.Generator(device=device).manual_seed(seed)
        groups = self.rows * self.cols // 4
        ids = torch.randint(0, len(PATTERNS), (groups,), generator=generator, device=device)
        mask = _probe(self.rows, self.cols, ids, torch.float32, device) != 0
        w = (torch.rand(self.rows, self.cols, generator=generator, device=device) + 0.5).to(self.dtype)
        w = torch.where(torch.rand(w.shape, generator=generator, device=device) < 0.5, w, -w)
        packed = self.layout(mask).pack(w, backward=False)[0]
        reference = kernels.compress(torch.where(mask, w, 0))  # pruned entries +0, as the layers prune
        if not torch.equal(packed.view(torch.int16), reference.view(torch.int16)):
            raise InvalidInputError(
                f"the learned packing rule for {self.rows}x{self.cols} does not reproduce compress on a "
                "random mask (the layout is not a fixed function of the shape); use PackedLayout.learn "
                "per mask"
            )


_RULES: dict[tuple, ShapeRule] = {}


def shape_rule(
    rows: int, cols: int, dtype: torch.dtype, device: torch.device | str, kernels: SparseKernels = CUSPARSELT
) -> ShapeRule:
    """The :class:`ShapeRule` of this shape, learned on first use and cached (per kernels, dtype, device)."""
    key = (rows, cols, dtype, str(torch.device(device)), id(kernels))
    if key not in _RULES:
        _RULES[key] = ShapeRule.learn(rows, cols, dtype, device, kernels)
    return _RULES[key]


def rule_layout(
    mask: torch.Tensor, dtype: torch.dtype, transposable: bool, kernels: SparseKernels = CUSPARSELT
) -> PackedLayout:
    """:class:`PackedLayout` of ``mask`` from the cached shape rules: packs bit-identically to
    ``compress(torch.where(mask, w, 0))``, as ``PackedLayout.learn`` does."""
    rows, cols = mask.shape
    rule = shape_rule(rows, cols, dtype, mask.device, kernels)
    return rule.layout(mask, shape_rule(cols, rows, dtype, mask.device, kernels) if transposable else None)
