/* maskedmm C kernels: sparsity maps, B packing and the masked multiply with runtime ISA dispatch.
 *
 * Python owns all memory (numpy arrays passed through the buffer protocol); these functions fill
 * it with the GIL released and OpenMP threads. The micro-kernel table comes from
 * codegen_kernels.py (see _microkernels.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_microkernels.h"

#define AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,popcnt,bmi,bmi2")))
#ifndef CHUNK_WORDS
#define CHUNK_WORDS 2 /* 64-k words per call: 128 rows of a panel (32 KiB of fp32) stay in L1 */
#endif
#define GROUP_ROWS 64 /* rows of A whose output tiles stay in L1/L2 while B streams by */

enum { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

static int parse_isa(const char *name)
{
    if (strcmp(name, "avx512") == 0) return ISA_AVX512;
    if (strcmp(name, "avx2") == 0) return ISA_AVX2;
    if (strcmp(name, "scalar") == 0) return ISA_SCALAR;
    PyErr_Format(PyExc_ValueError, "unknown ISA %s (avx512, avx2, scalar)", name);
    return -1;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- sparsity maps of A: one bit per entry, 64 per word, rows padded to whole words ---- */

#define DEFINE_A_MAPS_SCALAR(SUF, T, ABS)                                                      \
    static void a_maps_scalar_##SUF(const T *A, ptrdiff_t sr, ptrdiff_t sc, int64_t M,         \
                                    int64_t K, T thr, const uint8_t *mask, ptrdiff_t mr,       \
                                    ptrdiff_t mc, uint64_t *bits, T *filtered, int threads,    \
                                    int64_t *nnz, int64_t *bad)                                \
    {                                                                                          \
        const int64_t nw = ceil_div(K, 64);                                                    \
        int64_t tn = 0, tb = 0;                                                                \
        _Pragma("omp parallel for num_threads(threads) reduction(+ : tn, tb) schedule(static)") \
        for (int64_t i = 0; i < M; i++) {                                                      \
            for (int64_t w = 0; w < nw; w++) {                                                 \
                const int64_t k0 = w * 64, k1 = k0 + 64 < K ? k0 + 64 : K;                      \
                uint64_t word = 0;                                                             \
                for (int64_t k = k0; k < k1; k++) {                                            \
                    const T v = A[i * sr + k * sc];                                            \
                    const int keep = ABS(v) > thr && (!mask || mask[i * mr + k * mc]);         \
                    tb += !isfinite(v);                                                        \
                    word |= (uint64_t)keep << (k - k0);                                        \
                    if (filtered) filtered[i * K + k] = keep ? v : (T)0;                       \
                }                                                                              \
                bits[i * nw + w] = word;                                                       \
                tn += __builtin_popcountll(word);                                              \
            }                                                                                  \
        }                                                                                      \
        *nnz = tn;                                                                             \
        *bad = tb;                                                                             \
    }

DEFINE_A_MAPS_SCALAR(f32, float, fabsf)
DEFINE_A_MAPS_SCALAR(f64, double, fabs)

/* AVX-512 maps for rows with unit column stride: one compare yields 16 (or 8) bits at once. */
#define DEFINE_A_MAPS_AVX512(SUF, T, VEC, LANES, MASK, SFX, ABSBITS, EPI)                     \
    AVX512_TARGET static void a_maps_avx512_##SUF(const T *A, ptrdiff_t sr, int64_t M,          \
                                                  int64_t K, T thr, uint64_t *bits,            \
                                                  T *filtered, int threads, int64_t *nnz,      \
                                                  int64_t *bad)                                \
    {                                                                                          \
        const int64_t nw = ceil_div(K, 64);                                                    \
        int64_t tn = 0, tb = 0;                                                                \
        _Pragma("omp parallel for num_threads(threads) reduction(+ : tn, tb) schedule(static)") \
        for (int64_t i = 0; i < M; i++) {                                                      \
            const VEC vthr = _mm512_set1_##SFX(thr), vinf = _mm512_set1_##SFX(INFINITY);       \
            const VEC absmask = _mm512_castsi512_##SFX(_mm512_set1_##EPI(ABSBITS));            \
            const T *row = A + i * sr;                                                         \
            T *frow = filtered ? filtered + i * K : NULL;                                      \
            for (int64_t w = 0; w < nw; w++) {                                                 \
                uint64_t word = 0;                                                             \
                for (int c = 0; c < 64 / LANES; c++) {                                         \
                    const int64_t k = w * 64 + c * LANES;                                      \
                    if (k >= K) break;                                                         \
                    const int64_t rem = K - k;                                                 \
                    const MASK lm = rem >= LANES ? (MASK)~0u : (MASK)((1u << rem) - 1);        \
                    const VEC v = _mm512_maskz_loadu_##SFX(lm, row + k);                       \
                    const VEC a = _mm512_and_##SFX(v, absmask);                                \
                    const MASK keep = _mm512_mask_cmp_##SFX##_mask(lm, a, vthr, _CMP_GT_OQ);   \
                    const MASK nonfinite = _mm512_mask_cmp_##SFX##_mask(lm, a, vinf, _CMP_NLT_UQ); \
                    tb += __builtin_popcount(nonfinite);                                       \
                    word |= (uint64_t)keep << (c * LANES);                                     \
                    if (frow) _mm512_mask_storeu_##SFX(frow + k, lm, _mm512_maskz_mov_##SFX(keep, v)); \
                }                                                                              \
                bits[i * nw + w] = word;                                                       \
                tn += __builtin_popcountll(word);                                              \
            }                                                                                  \
        }                                                                                      \
        *nnz = tn;                                                                             \
        *bad = tb;                                                                             \
    }

DEFINE_A_MAPS_AVX512(f32, float, __m512, 16, __mmask16, ps, 0x7fffffff, epi32)
DEFINE_A_MAPS_AVX512(f64, double, __m512d, 8, __mmask8, pd, 0x7fffffffffffffffLL, epi64)

/* ---- B packed into panels of MK_SEGMENTS segments, with one row bitmap per segment ----
 * sbits[p][s][w] has bit k%64 of word k/64 set when segment s of row k of panel p holds a
 * non-zero; sbits[p][MK_SEGMENTS] is their OR (rows with any non-zero in the panel). */

/* AVX-512 packing of one full panel row (unit column stride, no mask): one vector per segment. */
#define DEFINE_PACK_ROW_AVX512(SUF, T, VEC, MASK, SFX, ABSBITS, EPI, MAXV)                     \
    AVX512_TARGET static unsigned pack_row_avx512_##SUF(const T *src, T *dst, T thr,           \
                                                        int64_t *nnz, int64_t *bad)            \
    {                                                                                          \
        const VEC vthr = _mm512_set1_##SFX(thr), vmax = _mm512_set1_##SFX(MAXV);               \
        const VEC absmask = _mm512_castsi512_##SFX(_mm512_set1_##EPI(ABSBITS));                \
        unsigned pattern = 0;                                                                  \
        for (int s = 0; s < MK_SEGMENTS; s++) {                                                \
            const int lanes = (int)(sizeof(VEC) / sizeof(T));                                  \
            const VEC v = _mm512_loadu_##SFX(src + s * lanes);                                 \
            const VEC a = _mm512_and_##SFX(v, absmask);                                        \
            const MASK keep = _mm512_cmp_##SFX##_mask(a, vthr, _CMP_GT_OQ);                    \
            *bad += __builtin_popcount(_mm512_cmp_##SFX##_mask(a, vmax, _CMP_NLE_UQ));         \
            *nnz += __builtin_popcount(keep);                                                  \
            _mm512_storeu_##SFX(dst + s * lanes, _mm512_maskz_mov_##SFX(keep, v));             \
            pattern |= (unsigned)(keep != 0) << s;                                             \
        }                                                                                      \
        return pattern;                                                                        \
    }

DEFINE_PACK_ROW_AVX512(f32, float, __m512, __mmask16, ps, 0x7fffffff, epi32, FLT_MAX)
DEFINE_PACK_ROW_AVX512(f64, double, __m512d, __mmask8, pd, 0x7fffffffffffffffLL, epi64, DBL_MAX)

#define DEFINE_PACK_B(SUF, T, ABS, MAXV)                                                       \
    static void pack_b_##SUF(const T *B, ptrdiff_t sr, ptrdiff_t sc, int64_t K, int64_t N,     \
                             T thr, const uint8_t *mask, ptrdiff_t mr, ptrdiff_t mc, int W,    \
                             T *panels, uint64_t *sbits, int avx512, int threads,              \
                             int64_t *nnz, int64_t *bad, int64_t *segs)                        \
    {                                                                                          \
        const int64_t NR = (int64_t)W * MK_SEGMENTS, np = ceil_div(N, NR), nw = ceil_div(K, 64); \
        int64_t tn = 0, tb = 0, ts = 0;                                                        \
        const int vector_rows = avx512 && W * (int)sizeof(T) == 64 && sc == 1 && !mask;        \
        _Pragma("omp parallel for num_threads(threads) reduction(+ : tn, tb, ts) schedule(static)") \
        for (int64_t p = 0; p < np; p++) {                                                     \
            const int64_t j0 = p * NR, cols = N - j0 < NR ? N - j0 : NR;                        \
            uint64_t *pb = sbits + p * (MK_SEGMENTS + 1) * nw;                                 \
            for (int64_t k = 0; k < K; k++) {                                                  \
                T *dst = panels + (p * K + k) * NR;                                            \
                const T *src = B + k * sr + j0 * sc;                                           \
                unsigned pattern = 0;                                                          \
                if (vector_rows && cols == NR) {                                               \
                    pattern = pack_row_avx512_##SUF(src, dst, thr, &tn, &tb);                  \
                    goto record;                                                               \
                }                                                                              \
                for (int s = 0; s < MK_SEGMENTS; s++) {                                        \
                    int64_t kept = 0;                                                          \
                    if (sc == 1 && !mask && cols == NR) {                                      \
                        for (int l = 0; l < W; l++) {                                          \
                            const T v = src[s * W + l];                                        \
                            const int keep = ABS(v) > thr;                                     \
                            tb += !(ABS(v) <= MAXV);                                           \
                            kept += keep;                                                      \
                            dst[s * W + l] = keep ? v : (T)0;                                  \
                        }                                                                      \
                    } else {                                                                   \
                        for (int l = 0; l < W; l++) {                                          \
                            const int64_t j = s * W + l;                                       \
                            T v = 0;                                                           \
                            if (j < cols) {                                                    \
                                v = src[j * sc];                                               \
                                const int keep = ABS(v) > thr &&                               \
                                                 (!mask || mask[k * mr + (j0 + j) * mc]);      \
                                tb += !(ABS(v) <= MAXV);                                       \
                                kept += keep;                                                  \
                                if (!keep) v = 0;                                              \
                            }                                                                  \
                            dst[j] = v;                                                        \
                        }                                                                      \
                    }                                                                          \
                    tn += kept;                                                                \
                    pattern |= (unsigned)(kept > 0) << s;                                      \
                }                                                                              \
            record:;                                                                           \
                const uint64_t bit = 1ull << (k % 64);                                         \
                for (int s = 0; s < MK_SEGMENTS; s++)                                          \
                    if (pattern >> s & 1) pb[s * nw + k / 64] |= bit;                          \
                if (pattern) pb[MK_SEGMENTS * nw + k / 64] |= bit;                             \
                ts += __builtin_popcount(pattern);                                             \
            }                                                                                  \
        }                                                                                      \
        *nnz = tn;                                                                             \
        *bad = tb;                                                                             \
        *segs = ts;                                                                            \
    }

DEFINE_PACK_B(f32, float, fabsf, FLT_MAX)
DEFINE_PACK_B(f64, double, fabs, DBL_MAX)

/* ---- the masked multiply ----
 * 1. Row blocks of A (mr rows; a ragged last block splits into the table's smaller heights) get
 *    their bitmap (OR of their rows) and a packed copy of A's values at their active k only.
 * 2. Work items (group of GROUP_ROWS rows, panel of B), panel-major so a panel stays in L2. For
 *    each chunk of CHUNK_WORDS 64-k words (rows of the panel that stay in L1 while the group
 *    uses them), the segments the group needs give the pattern: one call of that pattern's
 *    table entry per (group, panel, chunk) tile, never one per element. Inside, each row block
 *    visits the k of its bitmap AND the panel's row bitmap, accumulating in registers. */

typedef struct {
    int64_t row;     /* first row of A */
    int m;           /* rows */
    int ri;          /* index of m in mk_row_blocks */
    int64_t start;   /* offset of its packed values */
} piece_t;

static int64_t split_blocks(int64_t M, int mr, piece_t *pieces, int64_t *first)
{
    int64_t count = 0, nb = ceil_div(M, mr);
    for (int64_t b = 0; b < nb; b++) {
        first[b] = count;
        for (int64_t row = b * mr; row < (b + 1) * mr && row < M;) {
            int ri = MK_ROW_BLOCKS - 1;
            while (mk_row_blocks[ri] > mr || mk_row_blocks[ri] > M - row) ri--;
            pieces[count].row = row;
            pieces[count].m = mk_row_blocks[ri];
            pieces[count].ri = ri;
            row += mk_row_blocks[ri];
            count++;
        }
    }
    first[nb] = count;
    return count;
}

#define DEFINE_MULTIPLY(SUF, T)                                                                \
    static int multiply_##SUF(const T *A, ptrdiff_t sar, ptrdiff_t sac, int64_t M, int64_t K,  \
                              const uint64_t *rowbits, const T *panels, const uint64_t *sbits, \
                              int W, int64_t N, T *C, ptrdiff_t scr, ptrdiff_t scc,            \
                              const mk_##SUF##_fn (*table)[MK_PATTERNS], int mr, int threads,  \
                              int64_t out[3])                                                  \
    {                                                                                          \
        const int64_t NR = (int64_t)W * MK_SEGMENTS, np = ceil_div(N, NR), nw = ceil_div(K, 64); \
        const int64_t nb = ceil_div(M, mr);                                                    \
        piece_t *pieces = malloc(sizeof(piece_t) * (size_t)(M + 1));                          \
        int64_t *first = malloc(sizeof(int64_t) * (size_t)(nb + 1));                           \
        if (!pieces || !first) {                                                               \
            free(pieces);                                                                      \
            free(first);                                                                       \
            return 0;                                                                          \
        }                                                                                      \
        const int64_t npieces = split_blocks(M, mr, pieces, first);                            \
        uint64_t *ab = malloc(sizeof(uint64_t) * (size_t)(npieces * nw));                      \
        int32_t *offsets = malloc(sizeof(int32_t) * (size_t)(npieces * nw));                   \
        int64_t *starts = malloc(sizeof(int64_t) * (size_t)(npieces + 1));                     \
        T *vals = NULL;                                                                        \
        int64_t iters = 0, fmas = 0, calls = 0;                                                \
        int ok = ab && offsets && starts;                                                      \
        if (ok) {                                                                              \
            int64_t total = 0;                                                                 \
            _Pragma("omp parallel for num_threads(threads) schedule(static)")                  \
            for (int64_t s = 0; s < npieces; s++) {                                            \
                int32_t count = 0;                                                             \
                for (int64_t w = 0; w < nw; w++) {                                             \
                    uint64_t v = 0;                                                            \
                    for (int r = 0; r < pieces[s].m; r++) v |= rowbits[(pieces[s].row + r) * nw + w]; \
                    ab[s * nw + w] = v;                                                        \
                    offsets[s * nw + w] = count;                                               \
                    count += __builtin_popcountll(v);                                          \
                }                                                                              \
                pieces[s].start = count;                                                       \
            }                                                                                  \
            for (int64_t s = 0; s < npieces; s++) {                                            \
                const int64_t size = pieces[s].start * pieces[s].m;                            \
                pieces[s].start = total;                                                       \
                total += size;                                                                 \
            }                                                                                  \
            vals = malloc(sizeof(T) * (size_t)(total > 0 ? total : 1));                        \
            ok = vals != NULL;                                                                 \
        }                                                                                      \
        if (ok) {                                                                              \
            _Pragma("omp parallel for num_threads(threads) schedule(static)")                  \
            for (int64_t s = 0; s < npieces; s++) {                                            \
                const int m = pieces[s].m;                                                     \
                const T *a = A + pieces[s].row * sar;                                          \
                T *dst = vals + pieces[s].start;                                               \
                for (int64_t w = 0; w < nw; w++) {                                             \
                    uint64_t bits = ab[s * nw + w];                                            \
                    while (bits) {                                                             \
                        const ptrdiff_t k = w * 64 + __builtin_ctzll(bits);                    \
                        bits &= bits - 1;                                                      \
                        for (int r = 0; r < m; r++) dst[r] = a[r * sar + k * sac];             \
                        dst += m;                                                              \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        if (ok) {                                                                              \
            for (int64_t s = 0; s < npieces; s++) starts[s] = pieces[s].start;                 \
            const int64_t gb = GROUP_ROWS / mr, ng = ceil_div(nb, gb);                         \
            _Pragma("omp parallel for num_threads(threads) schedule(dynamic, 1) reduction(+ : iters, fmas, calls)") \
            for (int64_t t = 0; t < np * ng; t++) {                                            \
                const int64_t p = t / ng, g = t % ng, b0 = g * gb;                             \
                const int64_t b1 = b0 + gb < nb ? b0 + gb : nb;                                \
                const int64_t i0 = b0 * mr, rows = (b1 * mr < M ? b1 * mr : M) - i0;           \
                const int64_t cols = N - p * NR < NR ? N - p * NR : NR;                        \
                const uint64_t *pb = sbits + p * (MK_SEGMENTS + 1) * nw;                       \
                const uint64_t *rowany = pb + MK_SEGMENTS * nw;                                \
                const T *panel = panels + p * K * NR;                                          \
                T gbuf[GROUP_ROWS * 64] __attribute__((aligned(64)));                          \
                memset(gbuf, 0, sizeof(T) * rows * NR);                                        \
                for (int64_t w0 = 0; w0 < nw; w0 += CHUNK_WORDS) {                             \
                    const int64_t w1 = w0 + CHUNK_WORDS < nw ? w0 + CHUNK_WORDS : nw;          \
                    unsigned q = 0;                                                            \
                    for (int64_t w = w0; w < w1; w++) {                                        \
                        uint64_t v = 0;                                                        \
                        for (int64_t s = first[b0]; s < first[b1]; s++) v |= ab[s * nw + w];   \
                        for (int seg = 0; seg < MK_SEGMENTS; seg++)                            \
                            q |= (unsigned)((v & pb[seg * nw + w]) != 0) << seg;               \
                    }                                                                          \
                    if (!q) continue;                                                          \
                    for (int64_t s0 = first[b0]; s0 < first[b1];) {                            \
                        int64_t s1 = s0 + 1;                                                   \
                        while (s1 < first[b1] && pieces[s1].m == pieces[s0].m) s1++;           \
                        const int64_t n = table[pieces[s0].ri][q](                             \
                            vals, starts + s0, offsets + s0 * nw, ab + s0 * nw, nw, s1 - s0,   \
                            rowany, (int)w0, (int)w1, panel, gbuf + (pieces[s0].row - i0) * NR); \
                        iters += n;                                                            \
                        fmas += n * pieces[s0].m * __builtin_popcount(q);                      \
                        calls++;                                                               \
                        s0 = s1;                                                               \
                    }                                                                          \
                }                                                                              \
                T *c = C + i0 * scr + p * NR * scc;                                            \
                for (int64_t r = 0; r < rows; r++) {                                           \
                    if (scc == 1) {                                                            \
                        memcpy(c + r * scr, gbuf + r * NR, sizeof(T) * cols);                  \
                    } else {                                                                   \
                        for (int64_t j = 0; j < cols; j++) c[r * scr + j * scc] = gbuf[r * NR + j]; \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        free(pieces);                                                                          \
        free(first);                                                                           \
        free(ab);                                                                              \
        free(offsets);                                                                         \
        free(starts);                                                                          \
        free(vals);                                                                            \
        out[0] = iters;                                                                        \
        out[1] = fmas;                                                                         \
        out[2] = calls;                                                                        \
        return ok;                                                                             \
    }

DEFINE_MULTIPLY(f32, float)
DEFINE_MULTIPLY(f64, double)

/* ---- the row-skip multiply, for high sparsity ----
 * Each row of A visits only its non-zero k (tzcnt over its bitmap words) and adds a * B[k, tile]
 * for a wide tile of TP panels (TP * MK_SEGMENTS vector accumulators in registers), so the
 * per-k overhead (bit scan, broadcast) is shared by 8 (AVX-512, TP = 2) or 12 (AVX2, TP = 3)
 * independent vector FMAs. B's zero segments are not skipped: on scattered zeros they rarely
 * line up, and testing them would cost a branch per segment (the tile kernel above does that,
 * for structured zeros). Tiles are the outer loop, so one tile of B stays in L2 while every row
 * streams past it. Full tiles of a C with contiguous rows go in chunks of ROWS_CHUNK k: each
 * group of ROWS_GROUP rows (of the thread's own) passes over a chunk of B's tile (32 KiB
 * with AVX-512, in L1) before the next, accumulating in a private contiguous buffer copied to
 * C after the group's last chunk: measured 10-25% faster at 75-95% zeros than streaming all of
 * B's tile past every row (B read from L2 for every non-zero of A), and the buffer ~10% faster
 * at 75% than accumulating in C's tile in place (C's rows lie a power of two apart, in the same
 * L1 sets, and evicted each other and B's chunk). That path reads A's non-zeros packed in bit
 * order (each thread packs its rows once; A read in place puts a group's rows in the same few
 * sets too): another ~7% at 75%, packing included. Groups of 256 rows were 4-9% faster than
 * 64 at 75-90% (B's chunk is fetched into L1 once per group). 128-column tiles (TP = 2) were
 * faster than 256 (TP = 4) in 7 of 8 interleaved comparisons at 75-95% zeros. B is read from its packed
 * panels (pstride = K * NR between panels, rstride = NR between rows): B read in place would put
 * its rows a power of two apart, where they share cache sets. */

#ifndef ROWS_CHUNK
#define ROWS_CHUNK 64 /* k per pass (one bitmap word): a tile's 64 rows of B (32 KiB) stay in L1 */
#endif
#ifndef ROWS_GROUP
#define ROWS_GROUP 256 /* rows sharing one pass of B's chunk (C tiles: a 128 KiB buffer, in L2) */
#endif
#if ROWS_CHUNK != 0 && ROWS_CHUNK != 64
#error "ROWS_CHUNK must be 0 (off) or 64: a chunk is one bitmap word"
#endif

#define DEFINE_ROWS(NAME, ATTR, T, W, TP)                                                      \
    typedef T NAME##_vec __attribute__((vector_size((W) * sizeof(T)), aligned(sizeof(T)),      \
                                        may_alias));                                           \
    ATTR static int64_t NAME##_tile(const T *arow, ptrdiff_t sac, const uint64_t *bits,        \
                                    int64_t nw, const T *tile, int64_t pstride,                \
                                    int64_t rstride, T *out)                                   \
    {                                                                                          \
        enum { NV = (TP) * MK_SEGMENTS };                                                      \
        NAME##_vec acc[NV];                                                                    \
        _Pragma("GCC unroll 64") for (int v = 0; v < NV; v++) acc[v] = (NAME##_vec){0};        \
        int64_t n = 0;                                                                         \
        for (int64_t w = 0; w < nw; w++) {                                                     \
            uint64_t word = bits[w];                                                           \
            while (word) {                                                                     \
                const ptrdiff_t k = w * 64 + __builtin_ctzll(word);                            \
                word &= word - 1;                                                              \
                const NAME##_vec a = (NAME##_vec){0} + arow[k * sac];                          \
                const T *b = tile + k * rstride;                                               \
                _Pragma("GCC unroll 64") for (int v = 0; v < NV; v++)                          \
                    acc[v] += a * *(const NAME##_vec *)(b + (v / MK_SEGMENTS) * pstride +      \
                                                        (v % MK_SEGMENTS) * (W));              \
                n++;                                                                           \
            }                                                                                  \
        }                                                                                      \
        _Pragma("GCC unroll 64") for (int v = 0; v < NV; v++)                                  \
            *(NAME##_vec *)(out + v * (W)) = acc[v];                                           \
        return n;                                                                              \
    }                                                                                          \
    /* out[tile] += A's packed non-zeros at one bitmap word's k (in bit order) times B's rows. */ \
    ATTR static void NAME##_chunk(const T *av, uint64_t word, int64_t w, const T *tile,        \
                                  int64_t pstride, int64_t rstride, T *out)                    \
    {                                                                                          \
        enum { NV = (TP) * MK_SEGMENTS };                                                      \
        NAME##_vec acc[NV];                                                                    \
        _Pragma("GCC unroll 64") for (int v = 0; v < NV; v++)                                  \
            acc[v] = *(const NAME##_vec *)(out + v * (W));                                     \
        const T *b0 = tile + w * 64 * rstride;                                                 \
        while (word) {                                                                         \
            const T *b = b0 + __builtin_ctzll(word) * rstride;                                 \
            word &= word - 1;                                                                  \
            const NAME##_vec a = (NAME##_vec){0} + *av++;                                      \
            _Pragma("GCC unroll 64") for (int v = 0; v < NV; v++)                              \
                acc[v] += a * *(const NAME##_vec *)(b + (v / MK_SEGMENTS) * pstride +          \
                                                    (v % MK_SEGMENTS) * (W));                  \
        }                                                                                      \
        _Pragma("GCC unroll 64") for (int v = 0; v < NV; v++)                                  \
            *(NAME##_vec *)(out + v * (W)) = acc[v];                                           \
    }                                                                                          \
    /* A's non-zeros of rows [i0, i1) packed in bit order (*offsets: where each word's start),  \
       or NULL when memory is short (the caller then reads A in place). */                     \
    ATTR static T *NAME##_pack_a(const T *A, ptrdiff_t sar, ptrdiff_t sac,                    \
                                 const uint64_t *rowbits, int64_t nw, int64_t i0, int64_t i1,  \
                                 int64_t **offsets)                                            \
    {                                                                                          \
        int64_t *off = malloc(sizeof(int64_t) * (size_t)((i1 - i0) * nw + 1)), total = 0;      \
        if (!off) return NULL;                                                                 \
        for (int64_t i = i0; i < i1; i++)                                                      \
            for (int64_t w = 0; w < nw; w++) {                                                 \
                off[(i - i0) * nw + w] = total;                                                \
                total += __builtin_popcountll(rowbits[i * nw + w]);                            \
            }                                                                                  \
        T *vals = malloc(sizeof(T) * (size_t)(total + 1));                                     \
        if (!vals) {                                                                           \
            free(off);                                                                         \
            return NULL;                                                                       \
        }                                                                                      \
        T *dst = vals;                                                                         \
        for (int64_t i = i0; i < i1; i++)                                                      \
            for (int64_t w = 0; w < nw; w++)                                                   \
                for (uint64_t word = rowbits[i * nw + w]; word; word &= word - 1)              \
                    *dst++ = A[i * sar + (w * 64 + __builtin_ctzll(word)) * sac];              \
        *offsets = off;                                                                        \
        return vals;                                                                           \
    }                                                                                          \
    ATTR static void NAME(const T *A, ptrdiff_t sar, ptrdiff_t sac, int64_t M, int64_t K,      \
                          const uint64_t *rowbits, const T *B, int64_t pstride,                \
                          int64_t rstride, int64_t N, T *C, ptrdiff_t scr, ptrdiff_t scc,      \
                          int threads, int64_t out[3])                                         \
    {                                                                                          \
        const int64_t NR = (int64_t)(W) * MK_SEGMENTS, np = ceil_div(N, NR);                   \
        const int64_t nw = ceil_div(K, 64), nt = ceil_div(np, TP);                             \
        int64_t iters = 0, fmas = 0;                                                           \
        _Pragma("omp parallel num_threads(threads) reduction(+ : iters, fmas)")                \
        {                                                                                      \
            T buf[(TP) * (W) * MK_SEGMENTS] __attribute__((aligned(64)));                      \
            const int part = omp_get_thread_num(), parts = omp_get_num_threads();              \
            const int64_t i0 = M * part / parts, i1 = M * (part + 1) / parts;                  \
            int64_t *poff = NULL;                                                              \
            T *pvals = ROWS_CHUNK && scc == 1 && N >= (TP) * NR                                \
                ? NAME##_pack_a(A, sar, sac, rowbits, nw, i0, i1, &poff) : NULL;               \
            T *gacc = pvals ? aligned_alloc(64, sizeof(T) * ROWS_GROUP * (TP) * NR) : NULL;     \
            if (!gacc) { /* no memory for the chunk path: every row reads A in place */        \
                free(pvals);                                                                   \
                pvals = NULL;                                                                  \
            }                                                                                  \
            for (int64_t t = 0; t < nt; t++) {                                                 \
                const int64_t p0 = t * (TP), j0 = p0 * NR;                                     \
                const int64_t tp = np - p0 < (TP) ? np - p0 : (TP);                            \
                const int64_t cols = N - j0 < tp * NR ? N - j0 : tp * NR;                      \
                const T *tile = B + p0 * pstride;                                              \
                if (pvals && cols == (TP) * NR) {                                              \
                    for (int64_t g0 = i0; g0 < i1; g0 += ROWS_GROUP) {                         \
                        const int64_t g1 = g0 + ROWS_GROUP < i1 ? g0 + ROWS_GROUP : i1;         \
                        memset(gacc, 0, sizeof(T) * (g1 - g0) * cols);                           \
                        for (int64_t w = 0; w < nw; w++) {                                     \
                            for (int64_t i = g0; i < g1; i++) {                                \
                                const uint64_t word = rowbits[i * nw + w];                     \
                                if (!word) continue;                                           \
                                const int64_t n = __builtin_popcountll(word);                  \
                                NAME##_chunk(pvals + poff[(i - i0) * nw + w], word, w, tile,    \
                                             pstride, rstride, gacc + (i - g0) * cols);         \
                                iters += n;                                                    \
                                fmas += n * tp * MK_SEGMENTS;                                  \
                            }                                                                  \
                        }                                                                      \
                        for (int64_t i = g0; i < g1; i++)                                      \
                            memcpy(C + i * scr + j0, gacc + (i - g0) * cols, sizeof(T) * cols); \
                    }                                                                          \
                    continue;                                                                  \
                }                                                                              \
                for (int64_t i = i0; i < i1; i++) {                                            \
                    const T *arow = A + i * sar;                                               \
                    const uint64_t *bits = rowbits + i * nw;                                   \
                    int64_t n = 0;                                                             \
                    if (cols == (TP) * NR) {                                                   \
                        n = NAME##_tile(arow, sac, bits, nw, tile, pstride, rstride, buf);     \
                    } else { /* ragged last tile: only the columns that exist */               \
                        memset(buf, 0, sizeof(buf));                                           \
                        for (int64_t w = 0; w < nw; w++) {                                     \
                            for (uint64_t word = bits[w]; word; word &= word - 1) {            \
                                const ptrdiff_t k = w * 64 + __builtin_ctzll(word);            \
                                const T a = arow[k * sac];                                     \
                                for (int64_t j = 0; j < cols; j++)                             \
                                    buf[j] += a * tile[j / NR * pstride + k * rstride + j % NR]; \
                                n++;                                                           \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    iters += n;                                                                \
                    fmas += n * tp * MK_SEGMENTS;                                              \
                    T *dst = C + i * scr + j0 * scc;                                           \
                    if (scc == 1) {                                                            \
                        memcpy(dst, buf, sizeof(T) * cols);                                    \
                    } else {                                                                   \
                        for (int64_t j = 0; j < cols; j++) dst[j * scc] = buf[j];              \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            free(poff);                                                                        \
            free(pvals);                                                                       \
            free(gacc);                                                                        \
        }                                                                                      \
        out[0] = iters;                                                                        \
        out[1] = fmas;                                                                         \
        out[2] = M * nt;                                                                       \
    }

#define AVX2_TARGET __attribute__((target("avx2,fma,bmi,popcnt")))
DEFINE_ROWS(rows_avx512_f32, AVX512_TARGET, float, MK_WIDTH_AVX512_F32, 2)
DEFINE_ROWS(rows_avx512_f64, AVX512_TARGET, double, MK_WIDTH_AVX512_F64, 2)
DEFINE_ROWS(rows_avx2_f32, AVX2_TARGET, float, MK_WIDTH_AVX2_F32, 3)
DEFINE_ROWS(rows_avx2_f64, AVX2_TARGET, double, MK_WIDTH_AVX2_F64, 3)
DEFINE_ROWS(rows_scalar_f32, , float, MK_WIDTH_SCALAR_F32, 2)
DEFINE_ROWS(rows_scalar_f64, , double, MK_WIDTH_SCALAR_F64, 2)

/* ---- the element-level sparse product (Gustavson), for very high two-sided sparsity ----
 * B as CSR rows (built in C: csr_count then csr_fill). Each row i of A walks its bitmap
 * (tzcnt) to its non-zero k and adds a * B[k, :]'s non-zeros into a dense accumulator: row i
 * of C itself when C's rows are contiguous (it stays in L1 while the row is built), else a
 * per-thread buffer copied out. The AVX-512 variant gathers, multiplies and scatters 16 (8)
 * columns at a time; a CSR row holds each column once, so a scatter never collides. */

#define DEFINE_CSR(SUF, T, ABS, MAXV)                                                          \
    /* indptr[k + 1] = non-zeros (after threshold and mask) of row k; returns non-finite count */ \
    static int64_t csr_count_##SUF(const T *B, ptrdiff_t sr, ptrdiff_t sc, int64_t K,          \
                                   int64_t N, T thr, const uint8_t *mask, ptrdiff_t mr,        \
                                   ptrdiff_t mc, int64_t *indptr, int threads)                 \
    {                                                                                          \
        int64_t tb = 0;                                                                        \
        _Pragma("omp parallel for num_threads(threads) reduction(+ : tb) schedule(static)")     \
        for (int64_t k = 0; k < K; k++) {                                                      \
            int64_t count = 0;                                                                 \
            for (int64_t j = 0; j < N; j++) {                                                  \
                const T v = B[k * sr + j * sc];                                                \
                tb += !(ABS(v) <= MAXV);                                                       \
                count += ABS(v) > thr && (!mask || mask[k * mr + j * mc]);                     \
            }                                                                                  \
            indptr[k + 1] = count;                                                             \
        }                                                                                      \
        indptr[0] = 0;                                                                         \
        for (int64_t k = 0; k < K; k++) indptr[k + 1] += indptr[k];                            \
        return tb;                                                                             \
    }                                                                                          \
    static void csr_fill_##SUF(const T *B, ptrdiff_t sr, ptrdiff_t sc, int64_t K, int64_t N,   \
                               T thr, const uint8_t *mask, ptrdiff_t mr, ptrdiff_t mc,         \
                               const int64_t *indptr, int32_t *indices, T *values, int threads) \
    {                                                                                          \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                      \
        for (int64_t k = 0; k < K; k++) {                                                      \
            int64_t p = indptr[k];                                                             \
            for (int64_t j = 0; j < N; j++) {                                                  \
                const T v = B[k * sr + j * sc];                                                \
                if (ABS(v) > thr && (!mask || mask[k * mr + j * mc])) {                        \
                    indices[p] = (int32_t)j;                                                   \
                    values[p++] = v;                                                           \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_CSR(f32, float, fabsf, FLT_MAX)
DEFINE_CSR(f64, double, fabs, DBL_MAX)

/* AVX-512 CSR rows for unit column stride without a mask: a compare per vector, then a
 * compress-store of the kept values and of their column numbers. */
#define DEFINE_CSR_AVX512(SUF, T, VEC, LANES, MASK, SFX, ABSBITS, EPI, MAXV)                   \
    AVX512_TARGET static int64_t csr_count_avx512_##SUF(const T *B, ptrdiff_t sr, int64_t K,   \
                                                        int64_t N, T thr, int64_t *indptr,     \
                                                        int threads)                           \
    {                                                                                          \
        int64_t tb = 0;                                                                        \
        _Pragma("omp parallel for num_threads(threads) reduction(+ : tb) schedule(static)")     \
        for (int64_t k = 0; k < K; k++) {                                                      \
            const VEC vthr = _mm512_set1_##SFX(thr), vmax = _mm512_set1_##SFX(MAXV);           \
            const VEC absmask = _mm512_castsi512_##SFX(_mm512_set1_##EPI(ABSBITS));            \
            int64_t count = 0;                                                                 \
            for (int64_t j = 0; j < N; j += LANES) {                                           \
                const int64_t rem = N - j;                                                     \
                const MASK lm = rem >= LANES ? (MASK)~0u : (MASK)((1u << rem) - 1);            \
                const VEC a = _mm512_and_##SFX(_mm512_maskz_loadu_##SFX(lm, B + k * sr + j), absmask); \
                count += __builtin_popcount(_mm512_mask_cmp_##SFX##_mask(lm, a, vthr, _CMP_GT_OQ)); \
                tb += __builtin_popcount(_mm512_mask_cmp_##SFX##_mask(lm, a, vmax, _CMP_NLE_UQ)); \
            }                                                                                  \
            indptr[k + 1] = count;                                                             \
        }                                                                                      \
        indptr[0] = 0;                                                                         \
        for (int64_t k = 0; k < K; k++) indptr[k + 1] += indptr[k];                            \
        return tb;                                                                             \
    }                                                                                          \
    AVX512_TARGET static void csr_fill_avx512_##SUF(const T *B, ptrdiff_t sr, int64_t K,       \
                                                    int64_t N, T thr, const int64_t *indptr,   \
                                                    int32_t *indices, T *values, int threads)  \
    {                                                                                          \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                      \
        for (int64_t k = 0; k < K; k++) {                                                      \
            const VEC vthr = _mm512_set1_##SFX(thr);                                           \
            const VEC absmask = _mm512_castsi512_##SFX(_mm512_set1_##EPI(ABSBITS));            \
            const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); \
            int64_t p = indptr[k];                                                             \
            for (int64_t j = 0; j < N; j += LANES) {                                           \
                const int64_t rem = N - j;                                                     \
                const MASK lm = rem >= LANES ? (MASK)~0u : (MASK)((1u << rem) - 1);            \
                const VEC v = _mm512_maskz_loadu_##SFX(lm, B + k * sr + j);                    \
                const MASK keep = _mm512_mask_cmp_##SFX##_mask(lm, _mm512_and_##SFX(v, absmask), vthr, _CMP_GT_OQ); \
                if (!keep) continue;                                                           \
                const __m512i cols = _mm512_add_epi32(lanes, _mm512_set1_epi32((int)j));       \
                _mm512_mask_compressstoreu_##SFX(values + p, keep, v);                         \
                _mm512_mask_compressstoreu_epi32(indices + p, (__mmask16)keep, cols);          \
                p += __builtin_popcount(keep);                                                 \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_CSR_AVX512(f32, float, __m512, 16, __mmask16, ps, 0x7fffffff, epi32, FLT_MAX)
DEFINE_CSR_AVX512(f64, double, __m512d, 8, __mmask8, pd, 0x7fffffffffffffffLL, epi64, DBL_MAX)

/* The inner loops: acc[indices[p]] += a * values[p] for p in [p0, p1). */
#define SPGEMM_SCALAR_ROW(T)                                                                   \
    for (int64_t p = p0; p < p1; p++) acc[idx[p]] += a * val[p];

#define SPGEMM_AVX512_ROW_f32                                                                  \
    {                                                                                          \
        const __m512 va = _mm512_set1_ps(a);                                                   \
        int64_t p = p0;                                                                        \
        for (; p + 16 <= p1; p += 16) {                                                        \
            const __m512i cols = _mm512_loadu_si512(idx + p);                                  \
            const __m512 sum = _mm512_fmadd_ps(va, _mm512_loadu_ps(val + p),                   \
                                               _mm512_i32gather_ps(cols, acc, 4));             \
            _mm512_i32scatter_ps(acc, cols, sum, 4);                                           \
        }                                                                                      \
        if (p < p1) {                                                                          \
            const __mmask16 m = (__mmask16)((1u << (p1 - p)) - 1);                             \
            const __m512i cols = _mm512_maskz_loadu_epi32(m, idx + p);                         \
            const __m512 old = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, cols, acc, 4); \
            _mm512_mask_i32scatter_ps(acc, m, cols,                                            \
                                      _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, val + p), old), 4); \
        }                                                                                      \
    }

#define SPGEMM_AVX512_ROW_f64                                                                  \
    {                                                                                          \
        const __m512d va = _mm512_set1_pd(a);                                                  \
        int64_t p = p0;                                                                        \
        for (; p + 8 <= p1; p += 8) {                                                          \
            const __m256i cols = _mm256_loadu_si256((const __m256i *)(idx + p));               \
            const __m512d sum = _mm512_fmadd_pd(va, _mm512_loadu_pd(val + p),                  \
                                                _mm512_i32gather_pd(cols, acc, 8));            \
            _mm512_i32scatter_pd(acc, cols, sum, 8);                                           \
        }                                                                                      \
        if (p < p1) {                                                                          \
            const __mmask8 m = (__mmask8)((1u << (p1 - p)) - 1);                               \
            const __m256i cols = _mm256_maskz_loadu_epi32(m, idx + p);                         \
            const __m512d old = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, cols, acc, 8); \
            _mm512_mask_i32scatter_pd(acc, m, cols,                                            \
                                      _mm512_fmadd_pd(va, _mm512_maskz_loadu_pd(m, val + p), old), 8); \
        }                                                                                      \
    }

#ifndef SPGEMM_PREFETCH
#define SPGEMM_PREFETCH 4 /* B rows fetched this many non-zeros of A ahead */
#endif

/* A's row i listed straight from its values, when no bitmap is given (AVX-512, unit column
 * stride, no mask): a compare per vector against the threshold, then a compress-store of the
 * kept columns, counting NaN/inf (one pass over A instead of a map pass and a bitmap scan). */
#define SPGEMM_SCAN_f32                                                                        \
    {                                                                                          \
        const __m512 vthr = _mm512_set1_ps(thr), vinf = _mm512_set1_ps(INFINITY);              \
        const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));             \
        const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); \
        for (int64_t j = 0; j < K; j += 16) {                                                  \
            const int64_t rem = K - j;                                                         \
            const __mmask16 lm = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1); \
            const __m512 v = _mm512_and_ps(_mm512_maskz_loadu_ps(lm, arow + j), absmask);      \
            const __mmask16 keep = _mm512_mask_cmp_ps_mask(lm, v, vthr, _CMP_GT_OQ);           \
            bad += __builtin_popcount(_mm512_mask_cmp_ps_mask(lm, v, vinf, _CMP_NLT_UQ));      \
            _mm512_mask_compressstoreu_epi32(ks + nk, keep,                                    \
                                             _mm512_add_epi32(lanes, _mm512_set1_epi32((int)j))); \
            nk += __builtin_popcount(keep);                                                    \
        }                                                                                      \
    }

#define SPGEMM_SCAN_f64                                                                        \
    {                                                                                          \
        const __m512d vthr = _mm512_set1_pd(thr), vinf = _mm512_set1_pd(INFINITY);             \
        const __m512d absmask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));  \
        const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                       \
        for (int64_t j = 0; j < K; j += 8) {                                                   \
            const int64_t rem = K - j;                                                         \
            const __mmask8 lm = rem >= 8 ? (__mmask8)0xff : (__mmask8)((1u << rem) - 1);       \
            const __m512d v = _mm512_and_pd(_mm512_maskz_loadu_pd(lm, arow + j), absmask);     \
            const __mmask8 keep = _mm512_mask_cmp_pd_mask(lm, v, vthr, _CMP_GT_OQ);            \
            bad += __builtin_popcount(_mm512_mask_cmp_pd_mask(lm, v, vinf, _CMP_NLT_UQ));      \
            _mm256_mask_compressstoreu_epi32(ks + nk, keep,                                    \
                                             _mm256_add_epi32(lanes, _mm256_set1_epi32((int)j))); \
            nk += __builtin_popcount(keep);                                                    \
        }                                                                                      \
    }

#define SPGEMM_NO_SCAN {} /* callers always pass a bitmap to these variants */

#define DEFINE_SPGEMM(NAME, ATTR, T, ROW, SCAN)                                                \
    ATTR static int NAME(const T *A, ptrdiff_t sar, ptrdiff_t sac, int64_t M, int64_t K,       \
                         const uint64_t *rowbits, T thr, const int64_t *indptr,                \
                         const int32_t *idx, const T *val, int64_t N, T *C, ptrdiff_t scr,     \
                         ptrdiff_t scc, int threads, int64_t out[3])                           \
    {                                                                                          \
        const int64_t nw = ceil_div(K, 64);                                                    \
        const int64_t ks_bytes = ((K + 16) * 4 + 63) / 64 * 64; /* compress-stores need 16 spare */ \
        const int64_t per_thread = ks_bytes + (scc != 1 ? (N * (int64_t)sizeof(T) + 63) / 64 * 64 : 0); \
        char *scratch = malloc((size_t)(per_thread * threads));                                \
        if (!scratch) return 0;                                                                \
        int64_t flops = 0, visited = 0, bad = 0;                                               \
        (void)thr;                                                                             \
        _Pragma("omp parallel num_threads(threads) reduction(+ : flops, visited, bad)")        \
        {                                                                                      \
            int32_t *ks = (int32_t *)(scratch + per_thread * omp_get_thread_num());            \
            T *buf = scc != 1 ? (T *)((char *)ks + ks_bytes) : NULL;                           \
            _Pragma("omp for schedule(dynamic, 16)")                                           \
            for (int64_t i = 0; i < M; i++) {                                                  \
                T *acc = buf ? buf : C + i * scr;                                              \
                memset(acc, 0, sizeof(T) * (size_t)N);                                         \
                const T *arow = A + i * sar;                                                   \
                int64_t nk = 0;                                                                \
                if (rowbits) {                                                                 \
                    for (int64_t w = 0; w < nw; w++)                                           \
                        for (uint64_t word = rowbits[i * nw + w]; word; word &= word - 1)      \
                            ks[nk++] = (int32_t)(w * 64 + __builtin_ctzll(word));              \
                } else SCAN                                                                    \
                for (int64_t t = 0; t < nk; t++) {                                             \
                    if (SPGEMM_PREFETCH && t + SPGEMM_PREFETCH < nk) {                         \
                        const int64_t ahead = indptr[ks[t + SPGEMM_PREFETCH]];                 \
                        __builtin_prefetch(idx + ahead);                                       \
                        __builtin_prefetch(val + ahead);                                       \
                    }                                                                          \
                    const int64_t k = ks[t];                                                   \
                    const T a = arow[k * sac];                                                 \
                    const int64_t p0 = indptr[k], p1 = indptr[k + 1];                          \
                    ROW                                                                        \
                    flops += p1 - p0;                                                          \
                }                                                                              \
                visited += nk;                                                                 \
                if (buf)                                                                       \
                    for (int64_t j = 0; j < N; j++) C[i * scr + j * scc] = buf[j];             \
            }                                                                                  \
        }                                                                                      \
        free(scratch);                                                                         \
        out[0] = flops;                                                                        \
        out[1] = visited;                                                                      \
        out[2] = bad;                                                                          \
        return 1;                                                                              \
    }

DEFINE_SPGEMM(spgemm_avx512_f32, AVX512_TARGET, float, SPGEMM_AVX512_ROW_f32, SPGEMM_SCAN_f32)
DEFINE_SPGEMM(spgemm_avx512_f64, AVX512_TARGET, double, SPGEMM_AVX512_ROW_f64, SPGEMM_SCAN_f64)
DEFINE_SPGEMM(spgemm_avx2_f32, AVX2_TARGET, float, SPGEMM_SCALAR_ROW(float), SPGEMM_NO_SCAN)
DEFINE_SPGEMM(spgemm_avx2_f64, AVX2_TARGET, double, SPGEMM_SCALAR_ROW(double), SPGEMM_NO_SCAN)
DEFINE_SPGEMM(spgemm_scalar_f32, , float, SPGEMM_SCALAR_ROW(float), SPGEMM_NO_SCAN)
DEFINE_SPGEMM(spgemm_scalar_f64, , double, SPGEMM_SCALAR_ROW(double), SPGEMM_NO_SCAN)

/* ---- Python glue: buffers, argument checks, GIL release ---- */

static int get_2d(PyObject *obj, Py_buffer *v, int writable, const char *name)
{
    if (PyObject_GetBuffer(obj, v, PyBUF_STRIDES | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    if (v->ndim != 2 || (v->itemsize != 4 && v->itemsize != 8 && v->itemsize != 1) ||
        v->strides[0] % v->itemsize || v->strides[1] % v->itemsize) {
        PyErr_Format(PyExc_ValueError, "%s must be a 2-D array with aligned strides", name);
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}

static int get_flat(PyObject *obj, Py_buffer *v, int writable, Py_ssize_t need, const char *name)
{
    if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (v->len < need) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, needs %zd", name, v->len, need);
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}

#define STRIDE(v, d) ((v).strides[d] / (v).itemsize)

static int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_num_procs(); }

static PyObject *py_a_maps(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *mask_obj, *bits_obj, *filt_obj;
    double thr;
    const char *isa_name;
    int threads;
    if (!PyArg_ParseTuple(args, "OdOOOsi", &a_obj, &thr, &mask_obj, &bits_obj, &filt_obj,
                          &isa_name, &threads))
        return NULL;
    const int isa = parse_isa(isa_name);
    if (isa < 0) return NULL;
    Py_buffer a, mask = {0}, bits = {0}, filt = {0};
    if (get_2d(a_obj, &a, 0, "A") < 0) return NULL;
    const int64_t M = a.shape[0], K = a.shape[1], nw = ceil_div(K, 64);
    int ok = get_flat(bits_obj, &bits, 1, M * nw * 8, "bits") == 0;
    const int has_mask = mask_obj != Py_None, has_filt = filt_obj != Py_None;
    if (ok && has_mask) ok = get_2d(mask_obj, &mask, 0, "mask") == 0;
    if (ok && has_mask && (mask.shape[0] != M || mask.shape[1] != K || mask.itemsize != 1)) {
        PyErr_SetString(PyExc_ValueError, "mask must be a uint8 array shaped like A");
        ok = 0;
    }
    if (ok && has_filt) ok = get_flat(filt_obj, &filt, 1, M * K * a.itemsize, "filtered") == 0;
    int64_t nnz = 0, bad = 0;
    if (ok) {
        threads = resolve_threads(threads);
        const int fast = isa == ISA_AVX512 && !has_mask && STRIDE(a, 1) == 1;
        Py_BEGIN_ALLOW_THREADS
        if (a.itemsize == 4 && fast)
            a_maps_avx512_f32(a.buf, STRIDE(a, 0), M, K, (float)thr, bits.buf,
                              has_filt ? filt.buf : NULL, threads, &nnz, &bad);
        else if (a.itemsize == 4)
            a_maps_scalar_f32(a.buf, STRIDE(a, 0), STRIDE(a, 1), M, K, (float)thr,
                              has_mask ? mask.buf : NULL, has_mask ? mask.strides[0] : 0,
                              has_mask ? mask.strides[1] : 0, bits.buf, has_filt ? filt.buf : NULL,
                              threads, &nnz, &bad);
        else if (fast)
            a_maps_avx512_f64(a.buf, STRIDE(a, 0), M, K, thr, bits.buf,
                              has_filt ? filt.buf : NULL, threads, &nnz, &bad);
        else
            a_maps_scalar_f64(a.buf, STRIDE(a, 0), STRIDE(a, 1), M, K, thr,
                              has_mask ? mask.buf : NULL, has_mask ? mask.strides[0] : 0,
                              has_mask ? mask.strides[1] : 0, bits.buf, has_filt ? filt.buf : NULL,
                              threads, &nnz, &bad);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&a);
    if (bits.obj) PyBuffer_Release(&bits);
    if (mask.obj) PyBuffer_Release(&mask);
    if (filt.obj) PyBuffer_Release(&filt);
    return ok ? Py_BuildValue("LL", (long long)nnz, (long long)bad) : NULL;
}

static PyObject *py_pack_b(PyObject *self, PyObject *args)
{
    PyObject *b_obj, *mask_obj, *panels_obj, *sbits_obj;
    double thr;
    int width, threads;
    if (!PyArg_ParseTuple(args, "OdOiOOi", &b_obj, &thr, &mask_obj, &width, &panels_obj,
                          &sbits_obj, &threads))
        return NULL;
    if (width < 1 || width * MK_SEGMENTS > 64) {
        PyErr_SetString(PyExc_ValueError, "segment width must be between 1 and 16");
        return NULL;
    }
    Py_buffer b, mask = {0}, panels = {0}, sbits = {0};
    if (get_2d(b_obj, &b, 0, "B") < 0) return NULL;
    const int64_t K = b.shape[0], N = b.shape[1], NR = (int64_t)width * MK_SEGMENTS;
    const int64_t np = ceil_div(N, NR), nw = ceil_div(K, 64);
    const int has_mask = mask_obj != Py_None;
    int ok = 1;
    if (has_mask) ok = get_2d(mask_obj, &mask, 0, "mask") == 0;
    if (ok && has_mask && (mask.shape[0] != K || mask.shape[1] != N || mask.itemsize != 1)) {
        PyErr_SetString(PyExc_ValueError, "mask must be a uint8 array shaped like B");
        ok = 0;
    }
    if (ok) ok = get_flat(panels_obj, &panels, 1, np * K * NR * b.itemsize, "panels") == 0;
    if (ok) ok = get_flat(sbits_obj, &sbits, 1, np * (MK_SEGMENTS + 1) * nw * 8, "sbits") == 0;
    int64_t nnz = 0, bad = 0, segs = 0;
    if (ok) {
        threads = resolve_threads(threads);
        const uint8_t *mbuf = has_mask ? mask.buf : NULL;
        __builtin_cpu_init();
        const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
        const ptrdiff_t msr = has_mask ? mask.strides[0] : 0, msc = has_mask ? mask.strides[1] : 0;
        Py_BEGIN_ALLOW_THREADS
        if (b.itemsize == 4)
            pack_b_f32(b.buf, STRIDE(b, 0), STRIDE(b, 1), K, N, (float)thr, mbuf, msr, msc, width,
                       panels.buf, sbits.buf, avx512, threads, &nnz, &bad, &segs);
        else
            pack_b_f64(b.buf, STRIDE(b, 0), STRIDE(b, 1), K, N, thr, mbuf, msr, msc, width,
                       panels.buf, sbits.buf, avx512, threads, &nnz, &bad, &segs);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&b);
    if (mask.obj) PyBuffer_Release(&mask);
    if (panels.obj) PyBuffer_Release(&panels);
    if (sbits.obj) PyBuffer_Release(&sbits);
    return ok ? Py_BuildValue("LLL", (long long)nnz, (long long)bad, (long long)segs) : NULL;
}

static int table_index(int isa) { return isa == ISA_AVX512 ? 0 : isa == ISA_AVX2 ? 1 : 2; }

static const mk_f32_fn (*const tables_f32[3])[MK_PATTERNS] = {
    table_avx512_f32, table_avx2_f32, table_scalar_f32};
static const mk_f64_fn (*const tables_f64[3])[MK_PATTERNS] = {
    table_avx512_f64, table_avx2_f64, table_scalar_f64};

static PyObject *py_multiply(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *bits_obj, *panels_obj, *sbits_obj, *c_obj;
    int width, mr, threads;
    long long n_cols;
    const char *isa_name;
    if (!PyArg_ParseTuple(args, "OOOOiLOsii", &a_obj, &bits_obj, &panels_obj, &sbits_obj,
                          &width, &n_cols, &c_obj, &isa_name, &mr, &threads))
        return NULL;
    const int isa = parse_isa(isa_name);
    if (isa < 0) return NULL;
    if (mr != 1 && mr != 2 && mr != 4) {
        PyErr_SetString(PyExc_ValueError, "row block must be 1, 2 or 4");
        return NULL;
    }
    if (width < 1 || width * MK_SEGMENTS > 64) {
        PyErr_SetString(PyExc_ValueError, "segment width must be between 1 and 16");
        return NULL;
    }
    Py_buffer a, c = {0}, bits = {0}, panels = {0}, sbits = {0};
    if (get_2d(a_obj, &a, 0, "A") < 0) return NULL;
    const int64_t M = a.shape[0], K = a.shape[1], N = n_cols, NR = (int64_t)width * MK_SEGMENTS;
    const int64_t np = ceil_div(N, NR), nw = ceil_div(K, 64);
    int ok = get_2d(c_obj, &c, 1, "C") == 0;
    if (ok && (c.shape[0] != M || c.shape[1] != N || c.itemsize != a.itemsize)) {
        PyErr_SetString(PyExc_ValueError, "C must have A's dtype and shape (rows of A, columns of B)");
        ok = 0;
    }
    if (ok) ok = get_flat(bits_obj, &bits, 0, M * nw * 8, "bits") == 0;
    if (ok) ok = get_flat(panels_obj, &panels, 0, np * K * NR * a.itemsize, "panels") == 0;
    if (ok) ok = get_flat(sbits_obj, &sbits, 0, np * (MK_SEGMENTS + 1) * nw * 8, "sbits") == 0;
    int64_t out[3] = {0, 0, 0};
    int done = 1;
    if (ok) {
        threads = resolve_threads(threads);
        const int ti = table_index(isa);
        Py_BEGIN_ALLOW_THREADS
        if (a.itemsize == 4)
            done = multiply_f32(a.buf, STRIDE(a, 0), STRIDE(a, 1), M, K, bits.buf, panels.buf,
                                sbits.buf, width, N, c.buf, STRIDE(c, 0), STRIDE(c, 1),
                                tables_f32[ti], mr, threads, out);
        else
            done = multiply_f64(a.buf, STRIDE(a, 0), STRIDE(a, 1), M, K, bits.buf, panels.buf,
                                sbits.buf, width, N, c.buf, STRIDE(c, 0), STRIDE(c, 1),
                                tables_f64[ti], mr, threads, out);
        Py_END_ALLOW_THREADS
        if (!done) PyErr_NoMemory();
    }
    PyBuffer_Release(&a);
    if (c.obj) PyBuffer_Release(&c);
    if (bits.obj) PyBuffer_Release(&bits);
    if (panels.obj) PyBuffer_Release(&panels);
    if (sbits.obj) PyBuffer_Release(&sbits);
    if (!ok || !done) return NULL;
    return Py_BuildValue("LLL", (long long)out[0], (long long)out[1], (long long)out[2]);
}

static PyObject *py_multiply_rows(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *bits_obj, *panels_obj, *c_obj;
    int width, threads;
    const char *isa_name;
    if (!PyArg_ParseTuple(args, "OOOiOsi", &a_obj, &bits_obj, &panels_obj, &width, &c_obj,
                          &isa_name, &threads))
        return NULL;
    const int isa = parse_isa(isa_name);
    if (isa < 0) return NULL;
    Py_buffer a, c = {0}, bits = {0}, panels = {0};
    if (get_2d(a_obj, &a, 0, "A") < 0) return NULL;
    const int is32 = a.itemsize == 4;
    const int expected = isa == ISA_AVX512 ? (is32 ? MK_WIDTH_AVX512_F32 : MK_WIDTH_AVX512_F64)
                         : isa == ISA_AVX2 ? (is32 ? MK_WIDTH_AVX2_F32 : MK_WIDTH_AVX2_F64)
                                           : (is32 ? MK_WIDTH_SCALAR_F32 : MK_WIDTH_SCALAR_F64);
    const int64_t M = a.shape[0], K = a.shape[1], NR = (int64_t)width * MK_SEGMENTS;
    const int64_t nw = ceil_div(K, 64);
    int ok = 1;
    if (width != expected) {
        PyErr_Format(PyExc_ValueError, "segment width %d given, the %s kernel needs %d", width,
                     isa_name, expected);
        ok = 0;
    }
    if (ok) ok = get_2d(c_obj, &c, 1, "C") == 0;
    const int64_t N = ok ? c.shape[1] : 0, np = ceil_div(N, NR);
    if (ok && (c.shape[0] != M || c.itemsize != a.itemsize)) {
        PyErr_SetString(PyExc_ValueError, "C must have A's dtype and as many rows as A");
        ok = 0;
    }
    if (ok) ok = get_flat(bits_obj, &bits, 0, M * nw * 8, "bits") == 0;
    if (ok) ok = get_flat(panels_obj, &panels, 0, np * K * NR * a.itemsize, "panels") == 0;
    const int64_t pstride = K * NR, rstride = NR;
    int64_t out[3] = {0, 0, 0};
    if (ok) {
        threads = resolve_threads(threads);
        const ptrdiff_t sar = STRIDE(a, 0), sac = STRIDE(a, 1), scr = STRIDE(c, 0), scc = STRIDE(c, 1);
#define ROWS_ARGS a.buf, sar, sac, M, K, bits.buf, panels.buf, pstride, rstride, N, c.buf, scr, scc, threads, out
        Py_BEGIN_ALLOW_THREADS
        if (isa == ISA_AVX512 && is32) rows_avx512_f32(ROWS_ARGS);
        else if (isa == ISA_AVX512) rows_avx512_f64(ROWS_ARGS);
        else if (isa == ISA_AVX2 && is32) rows_avx2_f32(ROWS_ARGS);
        else if (isa == ISA_AVX2) rows_avx2_f64(ROWS_ARGS);
        else if (is32) rows_scalar_f32(ROWS_ARGS);
        else rows_scalar_f64(ROWS_ARGS);
        Py_END_ALLOW_THREADS
#undef ROWS_ARGS
    }
    PyBuffer_Release(&a);
    if (c.obj) PyBuffer_Release(&c);
    if (bits.obj) PyBuffer_Release(&bits);
    if (panels.obj) PyBuffer_Release(&panels);
    if (!ok) return NULL;
    return Py_BuildValue("LLL", (long long)out[0], (long long)out[1], (long long)out[2]);
}

/* CSR rows of B (threshold and mask applied) in two calls, so Python allocates between them:
 * csr_count fills indptr (K + 1) and returns (non-zeros, non-finite entries); csr_fill then
 * writes indices (int32) and values. The AVX-512 path needs unit column stride and no mask. */
/* Whether indptr (K + 1 entries) starts at 0 and never decreases: row k's entries then lie in
 * [indptr[k], indptr[k + 1]) inside buffers of indptr[K] entries. */
static int indptr_ok(const int64_t *indptr, int64_t K)
{
    int ok = indptr[0] == 0;
    for (int64_t k = 0; ok && k < K; k++) ok = indptr[k] <= indptr[k + 1];
    if (!ok) PyErr_SetString(PyExc_ValueError, "indptr must start at 0 and never decrease");
    return ok;
}

static int csr_args(PyObject *args, int fill, Py_buffer *b, double *thr, Py_buffer *mask,
                    Py_buffer *indptr, Py_buffer *indices, Py_buffer *values, int *isa, int *threads)
{
    PyObject *b_obj, *mask_obj, *indptr_obj, *indices_obj = NULL, *values_obj = NULL;
    const char *isa_name;
    const int parsed = fill ? PyArg_ParseTuple(args, "OdOOOOsi", &b_obj, thr, &mask_obj, &indptr_obj,
                                               &indices_obj, &values_obj, &isa_name, threads)
                            : PyArg_ParseTuple(args, "OdOOsi", &b_obj, thr, &mask_obj, &indptr_obj,
                                               &isa_name, threads);
    if (!parsed || (*isa = parse_isa(isa_name)) < 0) return -1;
    if (get_2d(b_obj, b, 0, "B") < 0) return -1;
    const int64_t K = b->shape[0], N = b->shape[1];
    int ok = b->itemsize != 1 && N < INT32_MAX;
    if (!ok) PyErr_SetString(PyExc_ValueError, "B must be float32 or float64 with < 2**31 columns");
    if (ok && mask_obj != Py_None) {
        ok = get_2d(mask_obj, mask, 0, "mask") == 0;
        if (ok && (mask->shape[0] != K || mask->shape[1] != N || mask->itemsize != 1)) {
            PyErr_SetString(PyExc_ValueError, "mask must be a uint8 array shaped like B");
            ok = 0;
        }
    }
    if (ok) ok = get_flat(indptr_obj, indptr, fill == 0, (K + 1) * 8, "indptr") == 0;
    if (ok && fill) ok = indptr_ok(indptr->buf, K);
    const int64_t nnz = ok && fill ? ((const int64_t *)indptr->buf)[K] : 0;
    if (ok && fill) ok = get_flat(indices_obj, indices, 1, nnz * 4, "indices") == 0;
    if (ok && fill) ok = get_flat(values_obj, values, 1, nnz * b->itemsize, "values") == 0;
    if (ok) {
        *threads = resolve_threads(*threads);
        return 0;
    }
    PyBuffer_Release(b);
    if (mask->obj) PyBuffer_Release(mask);
    if (indptr->obj) PyBuffer_Release(indptr);
    if (indices->obj) PyBuffer_Release(indices);
    return -1;
}

static PyObject *py_csr_count(PyObject *self, PyObject *args)
{
    Py_buffer b, mask = {0}, indptr = {0}, unused1 = {0}, unused2 = {0};
    double thr;
    int isa, threads;
    if (csr_args(args, 0, &b, &thr, &mask, &indptr, &unused1, &unused2, &isa, &threads) < 0) return NULL;
    const int64_t K = b.shape[0], N = b.shape[1];
    const uint8_t *m = mask.obj ? mask.buf : NULL;
    const ptrdiff_t mr = m ? mask.strides[0] : 0, mc = m ? mask.strides[1] : 0;
    const int fast = isa == ISA_AVX512 && !m && STRIDE(b, 1) == 1;
    int64_t bad;
    Py_BEGIN_ALLOW_THREADS
    if (b.itemsize == 4 && fast)
        bad = csr_count_avx512_f32(b.buf, STRIDE(b, 0), K, N, (float)thr, indptr.buf, threads);
    else if (b.itemsize == 4)
        bad = csr_count_f32(b.buf, STRIDE(b, 0), STRIDE(b, 1), K, N, (float)thr, m, mr, mc,
                            indptr.buf, threads);
    else if (fast)
        bad = csr_count_avx512_f64(b.buf, STRIDE(b, 0), K, N, thr, indptr.buf, threads);
    else
        bad = csr_count_f64(b.buf, STRIDE(b, 0), STRIDE(b, 1), K, N, thr, m, mr, mc, indptr.buf,
                            threads);
    Py_END_ALLOW_THREADS
    const long long nnz = ((const int64_t *)indptr.buf)[K];
    PyBuffer_Release(&b);
    if (mask.obj) PyBuffer_Release(&mask);
    PyBuffer_Release(&indptr);
    return Py_BuildValue("LL", nnz, (long long)bad);
}

static PyObject *py_csr_fill(PyObject *self, PyObject *args)
{
    Py_buffer b, mask = {0}, indptr = {0}, indices = {0}, values = {0};
    double thr;
    int isa, threads;
    if (csr_args(args, 1, &b, &thr, &mask, &indptr, &indices, &values, &isa, &threads) < 0) return NULL;
    const int64_t K = b.shape[0], N = b.shape[1];
    const uint8_t *m = mask.obj ? mask.buf : NULL;
    const ptrdiff_t mr = m ? mask.strides[0] : 0, mc = m ? mask.strides[1] : 0;
    const int fast = isa == ISA_AVX512 && !m && STRIDE(b, 1) == 1;
    Py_BEGIN_ALLOW_THREADS
    if (b.itemsize == 4 && fast)
        csr_fill_avx512_f32(b.buf, STRIDE(b, 0), K, N, (float)thr, indptr.buf, indices.buf,
                            values.buf, threads);
    else if (b.itemsize == 4)
        csr_fill_f32(b.buf, STRIDE(b, 0), STRIDE(b, 1), K, N, (float)thr, m, mr, mc, indptr.buf,
                     indices.buf, values.buf, threads);
    else if (fast)
        csr_fill_avx512_f64(b.buf, STRIDE(b, 0), K, N, thr, indptr.buf, indices.buf, values.buf,
                            threads);
    else
        csr_fill_f64(b.buf, STRIDE(b, 0), STRIDE(b, 1), K, N, thr, m, mr, mc, indptr.buf,
                     indices.buf, values.buf, threads);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b);
    if (mask.obj) PyBuffer_Release(&mask);
    PyBuffer_Release(&indptr);
    PyBuffer_Release(&indices);
    PyBuffer_Release(&values);
    Py_RETURN_NONE;
}

static PyObject *py_spgemm(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *bits_obj, *indptr_obj, *indices_obj, *values_obj, *c_obj;
    double thr;
    const char *isa_name;
    int threads;
    if (!PyArg_ParseTuple(args, "OOdOOOOsi", &a_obj, &bits_obj, &thr, &indptr_obj, &indices_obj,
                          &values_obj, &c_obj, &isa_name, &threads))
        return NULL;
    const int isa = parse_isa(isa_name);
    if (isa < 0) return NULL;
    Py_buffer a, c = {0}, bits = {0}, indptr = {0}, indices = {0}, values = {0};
    if (get_2d(a_obj, &a, 0, "A") < 0) return NULL;
    const int64_t M = a.shape[0], K = a.shape[1], nw = ceil_div(K, 64);
    int ok = a.itemsize != 1 && K < INT32_MAX && get_2d(c_obj, &c, 1, "C") == 0;
    if (ok && (c.shape[0] != M || c.itemsize != a.itemsize || c.shape[1] >= INT32_MAX)) {
        PyErr_SetString(PyExc_ValueError, "C must have A's dtype, A's rows and < 2**31 columns");
        ok = 0;
    }
    if (ok && bits_obj == Py_None && (isa != ISA_AVX512 || STRIDE(a, 1) != 1)) {
        PyErr_SetString(PyExc_ValueError, "without a bitmap, A's rows are scanned with AVX-512: "
                                          "unit column stride and isa='avx512' needed");
        ok = 0;
    }
    if (ok && bits_obj != Py_None) ok = get_flat(bits_obj, &bits, 0, M * nw * 8, "bits") == 0;
    if (ok) ok = get_flat(indptr_obj, &indptr, 0, (K + 1) * 8, "indptr") == 0;
    if (ok) ok = indptr_ok(indptr.buf, K);
    const int64_t nnz = ok ? ((const int64_t *)indptr.buf)[K] : 0;
    if (ok) ok = get_flat(indices_obj, &indices, 0, nnz * 4, "indices") == 0;
    if (ok) ok = get_flat(values_obj, &values, 0, nnz * a.itemsize, "values") == 0;
    int64_t out[3] = {0, 0, 0};
    int done = 1;
    if (ok) {
        const int64_t N = c.shape[1];
        const int32_t *ix = indices.buf;
        for (int64_t p = 0; ok && p < nnz; p++) ok = ix[p] >= 0 && ix[p] < N; /* scatters stay in C */
        if (!ok) PyErr_SetString(PyExc_ValueError, "indices must lie in [0, columns of C)");
    }
    if (ok) {
        threads = resolve_threads(threads);
        const int64_t N = c.shape[1];
        const uint64_t *rb = bits.obj ? bits.buf : NULL;
#define SPGEMM_ARGS(T) a.buf, STRIDE(a, 0), STRIDE(a, 1), M, K, rb, (T)thr, indptr.buf, indices.buf, \
                       values.buf, N, c.buf, STRIDE(c, 0), STRIDE(c, 1), threads, out
        const int is32 = a.itemsize == 4;
        Py_BEGIN_ALLOW_THREADS
        if (isa == ISA_AVX512 && is32) done = spgemm_avx512_f32(SPGEMM_ARGS(float));
        else if (isa == ISA_AVX512) done = spgemm_avx512_f64(SPGEMM_ARGS(double));
        else if (isa == ISA_AVX2 && is32) done = spgemm_avx2_f32(SPGEMM_ARGS(float));
        else if (isa == ISA_AVX2) done = spgemm_avx2_f64(SPGEMM_ARGS(double));
        else if (is32) done = spgemm_scalar_f32(SPGEMM_ARGS(float));
        else done = spgemm_scalar_f64(SPGEMM_ARGS(double));
        Py_END_ALLOW_THREADS
#undef SPGEMM_ARGS
        if (!done) PyErr_NoMemory();
    } else if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "A must be float32 or float64 with < 2**31 columns");
    }
    PyBuffer_Release(&a);
    if (c.obj) PyBuffer_Release(&c);
    if (bits.obj) PyBuffer_Release(&bits);
    if (indptr.obj) PyBuffer_Release(&indptr);
    if (indices.obj) PyBuffer_Release(&indices);
    if (values.obj) PyBuffer_Release(&values);
    if (!ok || !done) return NULL;
    return Py_BuildValue("LLL", (long long)out[0], (long long)out[1], (long long)out[2]);
}

/* Density sample for the planner: `runs` runs of `run` neighbouring entries of random rows
 * (splitmix64 from `seed`); returns (sum of per-run counts above the threshold, sum of their
 * squares). A few hundred cache lines and no Python objects, so it stays cheap after a multiply
 * has flushed the caches. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static PyObject *py_density_runs(PyObject *self, PyObject *args)
{
    PyObject *x_obj;
    double thr;
    int runs, run;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OdiiK", &x_obj, &thr, &runs, &run, &seed)) return NULL;
    Py_buffer x;
    if (get_2d(x_obj, &x, 0, "x") < 0) return NULL;
    const int64_t M = x.shape[0], K = x.shape[1];
    const ptrdiff_t sr = STRIDE(x, 0), sc = STRIDE(x, 1);
    if (x.itemsize == 1 || M < 1 || K < 1 || runs < 1 || run < 1) {
        PyBuffer_Release(&x);
        PyErr_SetString(PyExc_ValueError, "x must be a non-empty float32 or float64 matrix; runs, run >= 1");
        return NULL;
    }
    if (run > K) run = (int)K;
    uint64_t state = seed;
    long long total = 0, squares = 0;
    for (int r = 0; r < runs; r++) {
        const int64_t i = (int64_t)(splitmix64(&state) % (uint64_t)M);
        const int64_t j0 = (int64_t)(splitmix64(&state) % (uint64_t)(K - run + 1));
        long long count = 0;
        for (int64_t j = j0; j < j0 + run; j++) {
            const double v = x.itemsize == 4 ? (double)((const float *)x.buf)[i * sr + j * sc]
                                             : ((const double *)x.buf)[i * sr + j * sc];
            count += !(fabs(v) <= thr); /* NaN counts as non-zero, as in the maps */
        }
        total += count;
        squares += count * count;
    }
    PyBuffer_Release(&x);
    return Py_BuildValue("LL", total, squares);
}

/* ---- method="auto" in one call: density samples and the planner's dense-or-not decision ---- */

/* Layout of the parameter vector planner.auto_params builds once per shape (planner.choose's
 * terms that do not depend on the densities). */
enum {
    P_RUNS, P_RUN, P_SEED, P_EXACT_BELOW, P_Z, P_MARGIN, P_DENSE, P_OVERHEAD, P_SPEEDUP, P_WIDTH,
    P_SEGMENTS, P_KK, P_TILES, P_PER_CALL = P_TILES + 3, P_PER_ITER = P_PER_CALL + 3,
    P_BLOCKS = P_PER_ITER + 3,
    P_HAS_ROWS = P_BLOCKS + 3, P_MK, P_ROWS_TILES, P_SCALE, P_ROWS_PER_ITER, P_ROWS_PER_WORD,
    P_ROWS_WORDS, P_SPARSE_FIXED, P_SPARSE_PRODUCT, P_SPARSE_OUTPUT, P_SPARSE_NONZERO,
    P_CALL_OVERHEAD, P_COUNT
};

static double entry(const Py_buffer *x, int64_t i, int64_t j)
{
    const ptrdiff_t at = i * STRIDE(*x, 0) + j * STRIDE(*x, 1);
    return x->itemsize == 4 ? (double)((const float *)x->buf)[at] : ((const double *)x->buf)[at];
}

#define MAX_RUNS 1024

/* A density sample in progress: runs of neighbouring entries of random rows, as
 * planner.density_estimate draws them (splitmix64 from the seed), taken in stages. */
typedef struct {
    uint64_t state;
    int runs, run;
    long long total, squares;
    double exact; /* >= 0: the exact density (small arrays are counted, not sampled) */
} sample_t;

static void sample_start(const Py_buffer *x, double thr, const double *p, sample_t *s)
{
    const int64_t M = x->shape[0], K = x->shape[1];
    s->state = (uint64_t)p[P_SEED];
    s->runs = 0;
    s->run = (int)(p[P_RUN] < (double)K ? p[P_RUN] : (double)K);
    s->total = s->squares = 0;
    s->exact = -1.0;
    if ((double)(M * K) <= p[P_EXACT_BELOW]) {
        long long count = 0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < K; j++) count += fabs(entry(x, i, j)) > thr;
        s->exact = (double)count / (double)(M * K);
    }
}

/* Take runs up to `upto` (at most MAX_RUNS), prefetching them all first so their misses overlap. */
static void sample_more(const Py_buffer *x, double thr, int upto, sample_t *s)
{
    if (s->exact >= 0.0 || upto <= s->runs) return;
    const int64_t M = x->shape[0], K = x->shape[1];
    int64_t rows[MAX_RUNS], starts[MAX_RUNS];
    for (int r = s->runs; r < upto; r++) {
        rows[r] = (int64_t)(splitmix64(&s->state) % (uint64_t)M);
        starts[r] = (int64_t)(splitmix64(&s->state) % (uint64_t)(K - s->run + 1));
        const char *at = (const char *)x->buf + rows[r] * x->strides[0] + starts[r] * x->strides[1];
        __builtin_prefetch(at);
        __builtin_prefetch(at + (s->run - 1) * x->strides[1]);
    }
    for (int r = s->runs; r < upto; r++) {
        long long count = 0;
        for (int64_t j = starts[r]; j < starts[r] + s->run; j++)
            count += !(fabs(entry(x, rows[r], j)) <= thr); /* NaN counts as non-zero */
        s->total += count;
        s->squares += count * count;
    }
    s->runs = upto;
}

/* planner.upper_density(*planner.density_estimate(x, thr)) of the runs so far, with the same
 * arithmetic (z = p[P_Z]); with z negated, the matching lower bound. */
static double density_bound(const sample_t *s, double z)
{
    if (s->exact >= 0.0) return s->exact;
    const int runs = s->runs, run = s->run;
    const double density = (double)s->total / (double)(runs * run);
    double spread = (double)s->squares / (double)(run * run) - runs * pow(density, 2.0);
    spread = (spread > 0.0 ? spread : 0.0) / (runs - 1);
    double binomial = density * (1.0 - density);
    binomial = (binomial > 1.0 / runs ? binomial : 1.0 / runs) / (runs * run);
    const double variance = spread / runs > binomial ? spread / runs : binomial;
    const double bound = density + z * sqrt(variance);
    return bound < 0.0 ? 0.0 : bound < 1.0 ? bound : 1.0;
}

/* 1 when planner.choose would pick dense BLAS for these (upper) densities, else 0. */
static int choose_dense(double a, double b, const double *p)
{
    double best = INFINITY;
    for (int r = 0; r < 3; r++) {
        const double a_active = 1.0 - pow(1.0 - a, p[P_BLOCKS + r]);
        const double segment = 1.0 - pow(1.0 - b, p[P_WIDTH]);
        const double row = 1.0 - pow(1.0 - segment, p[P_SEGMENTS]);
        const double per_tile = p[P_KK] * a_active * row;
        const double calls = p[P_TILES + r] * (1.0 - pow(1.0 - a_active * row, p[P_KK]));
        const double iters = p[P_TILES + r] * per_tile;
        const double cost = p[P_OVERHEAD] + (p[P_PER_CALL + r] * calls + p[P_PER_ITER + r] * iters) /
                                                p[P_SPEEDUP];
        if (cost < best) best = cost;
    }
    double masked = best;
    if (p[P_HAS_ROWS] != 0.0) {
        const double iters = p[P_MK] * a * p[P_ROWS_TILES];
        const double rows = p[P_OVERHEAD] + p[P_SCALE] * (p[P_ROWS_PER_ITER] * iters +
                                                          p[P_ROWS_PER_WORD] * p[P_ROWS_WORDS]) /
                                                p[P_SPEEDUP];
        if (rows < best) masked = rows;
    }
    const double sparse = p[P_SPARSE_FIXED] + p[P_SPARSE_PRODUCT] * a * b + p[P_SPARSE_OUTPUT] +
                          p[P_SPARSE_NONZERO] * a;
    const double other = masked <= sparse ? masked : sparse;
    return !(other < p[P_MARGIN] * p[P_DENSE]);
}

static PyObject *py_auto_dense(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *b_obj, *p_obj;
    double thr, b_density;
    if (!PyArg_ParseTuple(args, "OOddO", &a_obj, &b_obj, &thr, &b_density, &p_obj)) return NULL;
    Py_buffer a, b = {0}, params;
    if (get_2d(a_obj, &a, 0, "A") < 0) return NULL;
    if (b_obj != Py_None && get_2d(b_obj, &b, 0, "B") < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    if (get_flat(p_obj, &params, 0, P_COUNT * sizeof(double), "params") < 0) {
        PyBuffer_Release(&a);
        if (b.obj) PyBuffer_Release(&b);
        return NULL;
    }
    int dense = -1;
    const double runs = ((const double *)params.buf)[P_RUNS];
    if (runs < 2 || runs > MAX_RUNS || ((const double *)params.buf)[P_RUN] < 1)
        PyErr_SetString(PyExc_ValueError, "params: runs must be in 2..1024 and run >= 1");
    else if (a.itemsize == 1 || a.shape[0] < 1 || a.shape[1] < 1 ||
        (b.obj && (b.itemsize == 1 || b.shape[0] < 1 || b.shape[1] < 1)))
        PyErr_SetString(PyExc_ValueError, "A and B must be non-empty float32 or float64 matrices");
    else {
        /* Dense outright when it costs less than a skipping method's call overhead. Else a
         * first quarter of the sample decides when even its lower bounds pick dense, or when
         * even its upper bounds do not (the planner's choice only moves towards dense as
         * densities rise, and the full sample's upper bounds lie between those bounds);
         * otherwise the full sample decides, as the planner does. */
        const double *p = (const double *)params.buf;
        const int all = (int)p[P_RUNS], early = all / 4 >= 2 ? all / 4 : 2;
        dense = p[P_DENSE] <= p[P_CALL_OVERHEAD];
        if (!dense) {
            sample_t sa, sb;
            sample_start(&a, thr, p, &sa);
            if (b.obj) sample_start(&b, thr, p, &sb);
            sample_more(&a, thr, early, &sa);
            if (b.obj) sample_more(&b, thr, early, &sb);
            dense = choose_dense(density_bound(&sa, -p[P_Z]),
                                 b.obj ? density_bound(&sb, -p[P_Z]) : b_density, p);
            const int undecided = !dense && choose_dense(density_bound(&sa, 2.0 * p[P_Z]),
                                                         b.obj ? density_bound(&sb, 2.0 * p[P_Z]) : b_density, p);
            if (undecided) {
                sample_more(&a, thr, all, &sa);
                if (b.obj) sample_more(&b, thr, all, &sb);
                dense = choose_dense(density_bound(&sa, p[P_Z]),
                                     b.obj ? density_bound(&sb, p[P_Z]) : b_density, p);
            }
        }
    }
    PyBuffer_Release(&a);
    if (b.obj) PyBuffer_Release(&b);
    PyBuffer_Release(&params);
    if (dense < 0) return NULL;
    return PyBool_FromLong(dense);
}

/* Whether row 0 and column 0 of C are finite (auto's dense path: a NaN or inf in A or B spreads
 * over a whole row or column of C). */
static PyObject *py_edges_finite(PyObject *self, PyObject *c_obj)
{
    Py_buffer c;
    if (get_2d(c_obj, &c, 0, "C") < 0) return NULL;
    int finite = c.itemsize != 1;
    for (int64_t i = 0; i < c.shape[0]; i++) /* one line (often one page) per row: overlap them */
        __builtin_prefetch((const char *)c.buf + i * c.strides[0]);
    for (int64_t j = 0; finite && j < c.shape[1]; j++) finite = isfinite(entry(&c, 0, j));
    for (int64_t i = 0; finite && i < c.shape[0]; i++) finite = isfinite(entry(&c, i, 0));
    PyBuffer_Release(&c);
    return PyBool_FromLong(finite);
}

static PyObject *py_supported_isas(PyObject *self, PyObject *noargs)
{
    __builtin_cpu_init();
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    const char *names[3] = {"scalar", NULL, NULL};
    /* the kernels' targets also use tzcnt/blsr and popcnt (every AVX2 CPU has them; checked anyway) */
    const int bits = __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                     __builtin_cpu_supports("popcnt");
    if (bits && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) names[1] = "avx2";
    if (names[1] && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        names[2] = "avx512";
    for (int i = 0; i < 3; i++) {
        if (names[i] == NULL) continue;
        PyObject *s = PyUnicode_FromString(names[i]);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    return list;
}

static PyObject *py_num_procs(PyObject *self, PyObject *noargs)
{
    return PyLong_FromLong(omp_get_num_procs());
}

static PyMethodDef methods[] = {
    {"a_maps", py_a_maps, METH_VARARGS,
     "a_maps(A, threshold, mask, bits, filtered, isa, threads) -> (nnz, nonfinite)"},
    {"pack_b", py_pack_b, METH_VARARGS,
     "pack_b(B, threshold, mask, width, panels, sbits, threads) -> (nnz, nonfinite, segments)"},
    {"multiply", py_multiply, METH_VARARGS,
     "multiply(A, bits, panels, sbits, width, n, C, isa, mr, threads) -> "
     "(iterations, vector_fmas, dispatches)"},
    {"multiply_rows", py_multiply_rows, METH_VARARGS,
     "multiply_rows(A, bits, panels, width, C, isa, threads) -> (iterations, vector_fmas, tiles)"},
    {"csr_count", py_csr_count, METH_VARARGS,
     "csr_count(B, threshold, mask, indptr, isa, threads) -> (nnz, nonfinite); fills indptr"},
    {"csr_fill", py_csr_fill, METH_VARARGS,
     "csr_fill(B, threshold, mask, indptr, indices, values, isa, threads): B's CSR rows"},
    {"spgemm", py_spgemm, METH_VARARGS,
     "spgemm(A, bits or None, threshold, indptr, indices, values, C, isa, threads) -> "
     "(element FMAs, A's non-zeros, NaN/inf in A when scanned without bits)"},
    {"density_runs", py_density_runs, METH_VARARGS,
     "density_runs(x, threshold, runs, run, seed) -> (sum of counts, sum of squared counts)"},
    {"auto_dense", py_auto_dense, METH_VARARGS,
     "auto_dense(A, B or None, threshold, b_density, params) -> whether auto picks dense BLAS"},
    {"edges_finite", py_edges_finite, METH_O,
     "edges_finite(C) -> whether C's row 0 and column 0 are finite"},
    {"supported_isas", py_supported_isas, METH_NOARGS, "ISAs this CPU runs: scalar, avx2, avx512"},
    {"num_procs", py_num_procs, METH_NOARGS, "processors OpenMP may use"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "maskedmm C kernels (see _kernels.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
