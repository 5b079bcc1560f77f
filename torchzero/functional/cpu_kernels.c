/* torchzero's CPU kernels: multi-tensor loops that torch has no single op for.
 *
 * Built at first use by cpu_kernels.py (cc -O3 -march=native -fopenmp) and called through
 * ctypes with raw data pointers of contiguous tensors. Every function takes n tensors as arrays
 * of pointers and element counts and splits the concatenated elements evenly over nthreads
 * OpenMP threads (torch's own OpenMP runtime: it is already loaded under the same soname).
 *
 *   tz_sumsq_{f32,f64}  per-tensor sums of squares (blocks of 2048 in the tensor's dtype, then double,
 *                       in a fixed order: the result doesn't depend on the number of threads)
 *   tz_sum_{f32,f64}    per-tensor sums, the same way (the non-finite probe: NaN and inf propagate)
 *   tz_adam_{f32,f64}   the chain  [g * gmul] -> Adam -> [+ wd * p] -> p -= lr * u  in one pass:
 *                       reads p, g, m, v (and v_max), writes p, m, v (and v_max); the gradient is
 *                       only read, so a clip factor folded into gmul never touches p.grad.
 *
 * The scalars of tz_adam come as rows of ADAM_NS doubles (see the enum below) and one row index
 * per tensor, so param groups with different settings, and parameters at different step counts,
 * share one call.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* [*lo, *hi): thread tid's share of total elements, split evenly over nth threads. */
static void share(int64_t total, int tid, int nth, int64_t *lo, int64_t *hi) {
    int64_t q = total / nth, r = total % nth;
    *lo = q * tid + (tid < r ? tid : r);
    *hi = *lo + q + (tid < r ? 1 : 0);
}

static int threads_for(int64_t total, int nthreads) {
    int64_t most = total / 32768 + 1; /* below ~32K elements per thread, a thread costs more than it gives */
    if (nthreads < 1) nthreads = 1;
    return (int)(most < nthreads ? most : nthreads);
}

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The first tensor overlapping element lo of the concatenation, and its offset there. */
static int64_t first_tensor(const int64_t *numel, int64_t n, int64_t lo, int64_t *off) {
    int64_t t = 0;
    *off = 0;
    while (t < n && *off + numel[t] <= lo) *off += numel[t++];
    return t;
}

/* ---------------------------------------------------------------- sums and sums of squares */

#define BLOCK 2048

/* Each tensor is cut into blocks of BLOCK elements (the last one shorter); a block is summed in
 * T (vectorised), and a tensor's block sums are added in double, in block order, after the
 * parallel part. Threads share out whole blocks, so the result does not depend on how many
 * threads there are. */
#define DEFINE_SUMSQ(NAME, T, TERM)                                                       \
    static double NAME##_block(const T *x, int64_t i0, int64_t i1) {                      \
        T blk = 0;                                                                        \
        _Pragma("omp simd reduction(+:blk)")                                              \
        for (int64_t i = i0; i < i1; i++) blk += TERM;                                    \
        return (double)blk;                                                               \
    }                                                                                     \
    int NAME(int64_t n, void *const *ptrs, const int64_t *numel, double *out, int nthreads) { \
        int64_t *start = (int64_t *)malloc((size_t)(n + 1) * sizeof(int64_t));            \
        if (!start) return 1;                                                             \
        int64_t total = 0;                                                                \
        start[0] = 0;                                                                     \
        for (int64_t t = 0; t < n; t++) {                                                 \
            total += numel[t];                                                            \
            start[t + 1] = start[t] + (numel[t] + BLOCK - 1) / BLOCK;                     \
        }                                                                                 \
        int64_t nb = start[n];                                                            \
        double *bs = (double *)malloc((size_t)(nb > 0 ? nb : 1) * sizeof(double));       \
        if (!bs) { free(start); return 1; }                                               \
        int nth = threads_for(total, nthreads);                                           \
        _Pragma("omp parallel num_threads(nth)")                                          \
        {                                                                                 \
            int64_t lo, hi;                                                               \
            share(nb, thread_id(), nth, &lo, &hi);                                        \
            int64_t t = 0;                                                                \
            for (int64_t k = lo; k < hi; k++) {                                           \
                while (start[t + 1] <= k) t++;                                            \
                int64_t i0 = (k - start[t]) * BLOCK;                                      \
                int64_t i1 = i0 + BLOCK < numel[t] ? i0 + BLOCK : numel[t];               \
                bs[k] = NAME##_block((const T *)ptrs[t], i0, i1);                         \
            }                                                                             \
        }                                                                                 \
        for (int64_t t = 0; t < n; t++) {                                                 \
            double acc = 0.0;                                                             \
            for (int64_t k = start[t]; k < start[t + 1]; k++) acc += bs[k];               \
            out[t] = acc;                                                                 \
        }                                                                                 \
        free(bs);                                                                         \
        free(start);                                                                      \
        return 0;                                                                         \
    }

/* ---------------------------------------------------------------- Adam */

enum { GMUL, LERP_W, BETA2, ONE_M_BETA2, BC2, EPS, SCALE, WD, LR, ADAM_NS };

/* The loop, with the options as compile-time constants once inlined: a test inside the loop
 * would keep the compiler from vectorising it well. */
#define DEFINE_ADAM(NAME, T, SQRT)                                                        \
    static inline __attribute__((always_inline)) void NAME##_loop(                        \
        T *restrict p, const T *restrict g, T *restrict m, T *restrict v, T *restrict vmax, \
        const double *s, int64_t a, int64_t b, const int far, const int ams, const int dec) { \
        const T gmul = (T)s[GMUL], w = (T)s[LERP_W], b2 = (T)s[BETA2];                    \
        const T w2 = (T)s[ONE_M_BETA2], bc2 = (T)s[BC2], eps = (T)s[EPS];                 \
        const T scale = (T)s[SCALE], wd = (T)s[WD], lr = (T)s[LR], wc = (T)1 - w;         \
        _Pragma("omp simd")                                                               \
        for (int64_t i = a; i < b; i++) {                                                 \
            T gi = g[i] * gmul;                                                           \
            T mi = far ? gi - (gi - m[i]) * wc : m[i] + w * (gi - m[i]);                  \
            T vi = v[i] * b2 + w2 * gi * gi;                                              \
            m[i] = mi;                                                                    \
            v[i] = vi;                                                                    \
            if (ams) {                                                                    \
                vi = vmax[i] > vi ? vmax[i] : vi;                                         \
                vmax[i] = vi;                                                             \
            }                                                                             \
            T u = mi / (SQRT(vi) / bc2 + eps) * scale;                                    \
            if (dec) u += wd * p[i];                                                      \
            p[i] -= lr * u;                                                               \
        }                                                                                 \
    }                                                                                     \
    static void NAME##_range(T *p, const T *g, T *m, T *v, T *vmax, const double *s,      \
                             int64_t a, int64_t b) {                                      \
        const int far = s[LERP_W] >= 0.5; /* lerp's two forms, picked as torch picks them */ \
        const int ams = vmax != NULL, dec = s[WD] != 0.0;                                 \
        /* one specialised loop per combination of the three options */                   \
        if (far) {                                                                        \
            if (ams) { if (dec) NAME##_loop(p, g, m, v, vmax, s, a, b, 1, 1, 1);          \
                       else NAME##_loop(p, g, m, v, vmax, s, a, b, 1, 1, 0); }            \
            else { if (dec) NAME##_loop(p, g, m, v, vmax, s, a, b, 1, 0, 1);              \
                   else NAME##_loop(p, g, m, v, vmax, s, a, b, 1, 0, 0); }                \
        } else {                                                                          \
            if (ams) { if (dec) NAME##_loop(p, g, m, v, vmax, s, a, b, 0, 1, 1);          \
                       else NAME##_loop(p, g, m, v, vmax, s, a, b, 0, 1, 0); }            \
            else { if (dec) NAME##_loop(p, g, m, v, vmax, s, a, b, 0, 0, 1);              \
                   else NAME##_loop(p, g, m, v, vmax, s, a, b, 0, 0, 0); }                \
        }                                                                                 \
    }                                                                                     \
    void NAME(int64_t n, void *const *p, void *const *g, void *const *m, void *const *v,  \
              void *const *vmax, const int64_t *numel, const double *sc, const int32_t *row,  \
              int nthreads) {                                                             \
        int64_t total = 0;                                                                \
        for (int64_t t = 0; t < n; t++) total += numel[t];                                \
        int nth = threads_for(total, nthreads);                                           \
        _Pragma("omp parallel num_threads(nth)")                                          \
        {                                                                                 \
            int64_t lo, hi, off;                                                          \
            share(total, thread_id(), nth, &lo, &hi);                                     \
            for (int64_t t = first_tensor(numel, n, lo, &off); t < n && off < hi; off += numel[t++]) { \
                int64_t a = lo > off ? lo - off : 0, b = hi - off < numel[t] ? hi - off : numel[t]; \
                NAME##_range((T *)p[t], (const T *)g[t], (T *)m[t], (T *)v[t],            \
                             vmax ? (T *)vmax[t] : NULL, sc + row[t] * ADAM_NS, a, b);     \
            }                                                                             \
        }                                                                                 \
    }

DEFINE_SUMSQ(tz_sumsq_f32, float, x[i] * x[i])
DEFINE_SUMSQ(tz_sumsq_f64, double, x[i] * x[i])
DEFINE_SUMSQ(tz_sum_f32, float, x[i])
DEFINE_SUMSQ(tz_sum_f64, double, x[i])
DEFINE_ADAM(tz_adam_f32, float, sqrtf)
DEFINE_ADAM(tz_adam_f64, double, sqrt)

int tz_abi_version(void) { return 3; }
