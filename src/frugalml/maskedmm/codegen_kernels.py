"""Generate the table of pattern-specialised micro-kernels (the paper's "dynamic code lookup").

B is cut into panels of ``SEGMENTS`` vector-width segments; preparing B records, per panel and
segment, a bitmap of the rows k where that segment holds a non-zero. The driver in ``_kernels.c``
packs each row block of A as the values of its active k only (k where any of its rows is
non-zero). For a tile (row block, panel of B) it ANDs the block's bitmap with the panel's, word
by word (64 k at a time), derives the pattern of segments those k need, and calls the table entry for
that pattern once per run of words sharing it, never per element. Each entry, written here for
every ISA, dtype, row-block height and pattern, keeps its accumulators in registers and loads and
multiplies only its pattern's segments. Run by setup.py before compiling; the output
``_microkernels.h`` is committed and a test checks that regenerating it changes nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

SEGMENTS = 4
ROW_BLOCKS = (1, 2, 4)
OUTPUT = Path(__file__).with_name("_microkernels.h")


@dataclass(frozen=True)
class Isa:
    """How one instruction set spells vector loads, broadcasts, FMAs and stores."""

    name: str
    target: str
    width: dict[str, int]
    vector: dict[str, str]
    prefix: dict[str, str]


ISAS = (
    Isa(
        "avx512",
        "avx512f,avx512dq,avx512bw,avx512vl,fma,bmi,bmi2,popcnt",
        {"f32": 16, "f64": 8},
        {"f32": "__m512", "f64": "__m512d"},
        {"f32": "_mm512_{}_ps", "f64": "_mm512_{}_pd"},
    ),
    Isa(
        "avx2",
        "avx2,fma,bmi,bmi2,popcnt",
        {"f32": 8, "f64": 4},
        {"f32": "__m256", "f64": "__m256d"},
        {"f32": "_mm256_{}_ps", "f64": "_mm256_{}_pd"},
    ),
    Isa("scalar", "", {"f32": 8, "f64": 4}, {}, {}),
)
DTYPES = ("f32", "f64")


def ctype(dtype: str) -> str:
    return "float" if dtype == "f32" else "double"


def kernel_name(isa: Isa, dtype: str, rows: int, pattern: int) -> str:
    return f"mk_{isa.name}_{dtype}_r{rows}_p{pattern}"


def segments_of(pattern: int) -> list[int]:
    return [s for s in range(SEGMENTS) if pattern >> s & 1]


MAX_SPLIT_ACCUMULATORS = {"avx512": 8, "avx2": 4}  # accumulators a second set fits beside (32 / 16 registers)


def vector_kernel_body(isa: Isa, dtype: str, rows: int, pattern: int) -> list[str]:
    """Accumulators live in registers; only the pattern's segments are loaded and multiplied.

    An FMA waits for the previous one into the same accumulator (4 cycles), so with few
    accumulators (one or two rows, few segments) successive k alternate between two sets,
    summed at the end: twice the FMAs in flight.
    """
    width, panel = isa.width[dtype], isa.width[dtype] * SEGMENTS
    op = isa.prefix[dtype].format
    vec, segs = isa.vector[dtype], segments_of(pattern)
    sets = ("c", "d") if rows * len(segs) <= MAX_SPLIT_ACCUMULATORS.get(isa.name, 0) else ("c",)
    lines = _piece_head(rows, panel)
    lines += [
        f"        {vec} c{r}_{s} = {op('loadu')}(ct + {r * panel + s * width});"
        for r in range(rows)
        for s in segs
    ]
    if len(sets) == 2:
        lines += [f"        {vec} d{r}_{s} = {op('setzero')}();" for r in range(rows) for s in segs]
    lines += [
        "        for (int w = w0; w < w1; w++) {",
        "            const uint64_t active = abits[w];",
        "            uint64_t bits = active & bbits[w];",
        "            ptrdiff_t next = offsets[w];",
        "            if (bits == active) {  /* B's panel has every k A needs: A's values in order */",
    ]
    for dense in (True, False):
        if not dense:
            lines.append("            } else {")
        lines.append("            while (bits) {")
        for i, acc in enumerate(sets):
            if i:
                lines.append("                if (!bits) break;")
            lines += ["                {"] + [f"    {line}" for line in _next_k(dtype, panel, rows, dense)]
            lines += [
                f"                    const {vec} b{s} = {op('loadu')}(bp + {s * width});" for s in segs
            ]
            lines += [f"                    const {vec} a{r} = {op('set1')}(av[{r}]);" for r in range(rows)]
            lines += [
                f"                    {acc}{r}_{s} = {op('fmadd')}(a{r}, b{s}, {acc}{r}_{s});"
                for r in range(rows)
                for s in segs
            ]
            lines += ["                    n++;", "                }"]
        lines.append("            }")
    lines += ["            }", "        }"]
    if len(sets) == 2:
        lines += [f"        c{r}_{s} = {op('add')}(c{r}_{s}, d{r}_{s});" for r in range(rows) for s in segs]
    lines += [
        f"        {op('storeu')}(ct + {r * panel + s * width}, c{r}_{s});" for r in range(rows) for s in segs
    ]
    return lines + ["    }"]


def scalar_kernel_body(dtype: str, rows: int, pattern: int, width: int) -> list[str]:
    """Portable C: fixed-length loops per segment that any compiler can unroll."""
    panel, t, segs = width * SEGMENTS, ctype(dtype), segments_of(pattern)
    lines = _piece_head(rows, panel) + _loop_head(dtype, panel, rows)
    lines += [f"                const {t} a{r} = av[{r}];" for r in range(rows)]
    for r in range(rows):
        for s in segs:
            base = r * panel + s * width
            lines.append(
                f"                for (int l = 0; l < {width}; l++) "
                f"ct[{base} + l] += a{r} * bp[{s * width} + l];"
            )
    return lines + _loop_tail() + ["    }"]


def _piece_head(rows: int, panel: int) -> list[str]:
    """Row blocks ("pieces") of one group, one after another; skip those with nothing to do."""
    return [
        "    int64_t n = 0;",
        "    for (int64_t pc = 0; pc < npieces; pc++) {",
        "        const uint64_t *restrict abits = abits_all + pc * nw;",
        "        uint64_t any = 0;",
        "        for (int w = w0; w < w1; w++) any |= abits[w] & bbits[w];",
        "        if (!any) continue;",
        "        const int32_t *restrict offsets = offsets_all + pc * nw;",
        "        const {0} *restrict vals = vals_all + starts[pc];".replace("{0}", "T_"),
        f"        T_ *restrict ct = ctile + pc * {rows * panel};",
    ]


def _loop_head(dtype: str, panel: int, rows: int) -> list[str]:
    """Scan the set bits of (A block AND B panel); A's values sit packed, one group per active k."""
    return [
        "        for (int w = w0; w < w1; w++) {",
        "            const uint64_t active = abits[w];",
        "            uint64_t bits = active & bbits[w];",
        "            while (bits) {",
        *_next_k(dtype, panel, rows),
    ]


def _next_k(dtype: str, panel: int, rows: int, in_order: bool = False) -> list[str]:
    """Take the lowest set bit: its k, B's row in the panel (bp) and the block's packed A values
    (av; ``in_order``: every active k is taken, so they are simply the next ones)."""
    t = ctype(dtype)
    index = (
        "                const ptrdiff_t idx = next++;"
        if in_order
        else "                const ptrdiff_t idx = offsets[w]"
        " + __builtin_popcountll(active & ((1ull << bit) - 1));"
    )
    return [
        "                const int bit = __builtin_ctzll(bits);",
        "                const ptrdiff_t k = (ptrdiff_t)w * 64 + bit;",
        index,
        "                bits &= bits - 1;",
        f"                const {t} *bp = panel + k * {panel};",
        f"                const {t} *av = vals + idx * {rows};",
    ]


def _loop_tail() -> list[str]:
    return ["                n++;", "            }", "        }"]


def kernel(isa: Isa, dtype: str, rows: int, pattern: int) -> str:
    t = ctype(dtype)
    attr = f'__attribute__((target("{isa.target}"))) ' if isa.target else ""
    head = (
        f"static {attr}int64_t {kernel_name(isa, dtype, rows, pattern)}(\n"
        f"    const {t} *restrict vals_all, const int64_t *restrict starts,\n"
        f"    const int32_t *restrict offsets_all, const uint64_t *restrict abits_all, int64_t nw,\n"
        f"    int64_t npieces, const uint64_t *restrict bbits, int w0, int w1,\n"
        f"    const {t} *restrict panel, {t} *restrict ctile)\n{{"
    )
    body = (
        vector_kernel_body(isa, dtype, rows, pattern)
        if isa.vector
        else scalar_kernel_body(dtype, rows, pattern, isa.width[dtype])
    )
    body = [line.replace("T_", t) for line in body]
    return "\n".join([head, *body, "    return n;", "}"])


def table(isa: Isa, dtype: str) -> str:
    rows_entries = []
    for rows in ROW_BLOCKS:
        names = ["NULL"] + [kernel_name(isa, dtype, rows, p) for p in range(1, 1 << SEGMENTS)]
        rows_entries.append("    {" + ", ".join(names) + "},")
    return "\n".join(
        [
            f"static const mk_{dtype}_fn table_{isa.name}_{dtype}[{len(ROW_BLOCKS)}][{1 << SEGMENTS}] = {{",
            *rows_entries,
            "};",
        ]
    )


def generate() -> str:
    """The whole header as a string (deterministic, so regeneration can be checked)."""
    parts = [
        "/* Generated by codegen_kernels.py; do not edit. Pattern-specialised micro-kernels. */",
        "#pragma once",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#include <immintrin.h>",
        "",
        f"#define MK_SEGMENTS {SEGMENTS}",
        f"#define MK_PATTERNS {1 << SEGMENTS}",
        f"#define MK_ROW_BLOCKS {len(ROW_BLOCKS)}",
        "static const int mk_row_blocks[MK_ROW_BLOCKS] = {" + ", ".join(map(str, ROW_BLOCKS)) + "};",
    ]
    for isa in ISAS:
        for dtype in DTYPES:
            parts.append(f"#define MK_WIDTH_{isa.name.upper()}_{dtype.upper()} {isa.width[dtype]}")
    for dtype in DTYPES:
        t = ctype(dtype)
        parts.append(
            f"typedef int64_t (*mk_{dtype}_fn)(const {t} *restrict, const int64_t *restrict, "
            f"const int32_t *restrict, const uint64_t *restrict, int64_t, int64_t, "
            f"const uint64_t *restrict, int, int, const {t} *restrict, {t} *restrict);"
        )
    for isa in ISAS:
        for dtype in DTYPES:
            parts.append("")
            for rows in ROW_BLOCKS:
                for pattern in range(1, 1 << SEGMENTS):
                    parts.append(kernel(isa, dtype, rows, pattern))
            parts.append(table(isa, dtype))
    return "\n".join(parts) + "\n"


def write(path: Path = OUTPUT) -> bool:
    """Write the header if its content changed; return whether it was written."""
    text = generate()
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


if __name__ == "__main__":
    print(f"{OUTPUT}: {'written' if write() else 'unchanged'}", file=sys.stderr)
