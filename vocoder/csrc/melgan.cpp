// C kernels of vocoder/fast.py (built by specvqgan.native; every caller has a pure-torch fallback).
// Row-major time-major (rows, C) tensors; AVX-512 where the compiler targets it, scalar otherwise.
// * int8 path: uint8 activation quantization: one pass for the range, one pass that writes every uint8
//   GEMM input of a residual block (LeakyReLU, reflection / zero padding, the dilated conv's three taps
//   side by side, the shortcut's input) (quant_block_input), the k3 output's (quant_rows[_bf16]);
// * all paths: the last conv (post_conv);
// * fp32 / bf16 paths: LeakyReLU windows (lrelu_window), Winograd F(2,3) transforms (wino_in / wino_out).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace {

inline float lrelu(float v, float slope) { return v >= 0.f ? v : v * slope; }

// asymmetric uint8 parameters for values in [lo, hi] (0 always representable): scale, zero point
inline void qparams(float lo, float hi, float* scale, float* zp) {
    lo = std::min(lo, 0.f);
    hi = std::max(hi, 0.f);
    float s = hi > lo ? (hi - lo) / 255.f : 1.f;
    float z = std::nearbyint(-lo / s);
    *scale = s;
    *zp = std::min(255.f, std::max(0.f, z));
}

inline void minmax(const float* x, int64_t n, float* lo, float* hi) {
    float a = x[0], b = x[0];
    int64_t i = 0;
#ifdef __AVX512F__
    __m512 va = _mm512_set1_ps(a), vb = va;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        va = _mm512_min_ps(va, v);
        vb = _mm512_max_ps(vb, v);
    }
    a = _mm512_reduce_min_ps(va);
    b = _mm512_reduce_max_ps(vb);
#endif
    for (; i < n; ++i) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a;
    *hi = b;
}

// minmax over blocks of 16 K values in parallel (torch's OpenMP threads)
inline void minmax_par(const float* x, int64_t n, float* lo, float* hi) {
    const int64_t block = 16384;
    float a = x[0], b = x[0];
#pragma omp parallel for schedule(static) reduction(min : a) reduction(max : b)
    for (int64_t s = 0; s < n; s += block) {
        float l, h;
        minmax(x + s, std::min(block, n - s), &l, &h);
        a = std::min(a, l);
        b = std::max(b, h);
    }
    *lo = a;
    *hi = b;
}

// out[c] = clamp(round(f(x[c]) / scale) + zp) with f = LeakyReLU(slope) (slope 1: identity)
inline void quant_row(const float* x, uint8_t* out, int64_t c, float inv, float zp, float slope) {
    int64_t i = 0;
#ifdef __AVX512F__
    const __m512 vinv = _mm512_set1_ps(inv), vzp = _mm512_set1_ps(zp), vs = _mm512_set1_ps(slope);
    const __m512 v0 = _mm512_setzero_ps(), v255 = _mm512_set1_ps(255.f);
    for (; i + 16 <= c; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __mmask16 neg = _mm512_cmp_ps_mask(v, v0, _CMP_LT_OQ);
        v = _mm512_mask_mul_ps(v, neg, v, vs);
        v = _mm512_fmadd_ps(v, vinv, vzp);
        v = _mm512_min_ps(_mm512_max_ps(v, v0), v255);
        __m512i q = _mm512_cvtps_epi32(v);  // round to nearest even
        _mm_storeu_si128((__m128i*)(out + i), _mm512_cvtusepi32_epi8(q));
    }
#endif
    for (; i < c; ++i) {
        float v = x[i];
        v = v >= 0.f ? v : v * slope;
        float t = std::min(255.f, std::max(0.f, v * inv + zp));
        out[i] = (uint8_t)std::nearbyint(t);
    }
}

inline void copy_bytes(uint8_t* dst, const uint8_t* src, int64_t n) {
    int64_t i = 0;
#ifdef __AVX512F__
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, _mm512_loadu_si512(src + i));
    for (; i + 32 <= n; i += 32)
        _mm256_storeu_si256((__m256i*)(dst + i), _mm256_loadu_si256((const __m256i*)(src + i)));
#endif
    for (; i < n; ++i) dst[i] = src[i];
}

}  // namespace

extern "C" {

// Residual block inputs. x: the sample rows [start, start + len) of a signal of n samples, C channels
// (every sample of [lo - pad, hi + pad) clipped to [0, n) must be there). Writes, for the m = hi - lo
// output rows:
//   win (m + 2 pad, C) (if not null): q_p(lrelu(x)) of samples [lo - pad, hi + pad); outside [0, n):
//       reflected (zero_pad: zeros);
//   cols (m, 3 C) (if not null): row i = win rows i, i + pad, i + 2 pad side by side (dilated k3 taps);
//   xq (m, C) (if not null): q_x(x) of samples [lo, hi) (the shortcut's input).
// params: scale_p, zp_p, scale_x, zp_x; the ranges are those of the samples read.
// Returns 0, or 1 if the signal is too short for reflection.
int quant_block_input(const float* x, int64_t C, int64_t start, int64_t n, int64_t lo, int64_t hi,
                      int64_t pad, int zero_pad, float slope, uint8_t* win, uint8_t* cols, uint8_t* xq,
                      float* params) {
    const int64_t m = hi - lo, w_lo = lo - pad, w_hi = hi + pad;
    const int64_t c_lo = std::max<int64_t>(w_lo, 0), c_hi = std::min<int64_t>(w_hi, n);
    if (!zero_pad && (c_lo - w_lo >= c_hi - c_lo || w_hi - c_hi >= c_hi - c_lo)) return 1;
    float lo_v, hi_v;
    minmax_par(x + (c_lo - start) * C, (c_hi - c_lo) * C, &lo_v, &hi_v);
    float sp, zpp, sx, zpx;
    qparams(lrelu(lo_v, slope), lrelu(hi_v, slope), &sp, &zpp);
    qparams(lo_v, hi_v, &sx, &zpx);
    params[0] = sp; params[1] = zpp; params[2] = sx; params[3] = zpx;
    const float ip = 1.f / sp, ix = 1.f / sx;
    const uint8_t zero = (uint8_t)zpp;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < w_hi - w_lo; ++r) {
        int64_t s = w_lo + r;
        const bool outside = s < 0 || s >= n;
        if (outside && !zero_pad) s = s < 0 ? -s : 2 * (n - 1) - s;
        const float* src = x + (s - start) * C;
        // the quantized row goes to win row r and / or to its (up to) three places in cols: quantized once
        // into the first, copied to the others
        uint8_t* dsts[4];
        int nd = 0;
        if (win) dsts[nd++] = win + r * C;
        if (cols)
            for (int64_t t = 0; t < 3; ++t) {  // window row r is tap t of output row r - t pad
                const int64_t i = r - t * pad;
                if (i >= 0 && i < m) dsts[nd++] = cols + i * 3 * C + t * C;
            }
        if (nd > 0) {
            if (outside && zero_pad)
                std::memset(dsts[0], zero, C);
            else
                quant_row(src, dsts[0], C, ip, zpp, slope);
            for (int k = 1; k < nd; ++k) copy_bytes(dsts[k], dsts[0], C);
        }
        if (xq && !outside && s >= lo && s < hi) quant_row(src, xq + (s - lo) * C, C, ix, zpx, 1.f);
    }
    return 0;
}

// out (rows, C) = q(x) with the range of x; params: scale, zp.
void quant_rows(const float* x, int64_t numel, uint8_t* out, float* params) {
    float lo_v, hi_v, s, zp;
    minmax_par(x, numel, &lo_v, &hi_v);
    qparams(lo_v, hi_v, &s, &zp);
    params[0] = s; params[1] = zp;
    const float inv = 1.f / s;
    const int64_t block = 4096;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < numel; b += block)
        quant_row(x + b, out + b, std::min(block, numel - b), inv, zp, 1.f);
}

}  // extern "C"

namespace {

// fp32 value i of row-major (fp32 or bf16) data
inline float load1(const void* x, int64_t i, int bf16) {
    if (!bf16) return ((const float*)x)[i];
    uint32_t u = (uint32_t)((const uint16_t*)x)[i] << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

#ifdef __AVX512F__
inline __m512 load16(const void* x, int64_t i, int bf16) {
    if (!bf16) return _mm512_loadu_ps((const float*)x + i);
    __m256i h = _mm256_loadu_si256((const __m256i*)((const uint16_t*)x + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#endif

}  // namespace

extern "C" {

// The generator's last conv before tanh: out[t] = bias + sum_{j, c} w[c, j] lrelu(x[refl(t + j - k / 2), c])
// for x (n, C) fp32 (bf16 if ``bf16``), w (C, k) fp32, reflection padding k / 2 at both ends.
// Returns 1 if the signal is too short for the reflection.
int post_conv(const void* x, int bf16, int64_t n, int64_t C, const float* w, int64_t k, float bias, float slope,
              float* out) {
    const int64_t pad = k / 2;
    if (pad >= n) return 1;
    float* wt = new float[k * C];  // (k, C): tap j's weights contiguous
    for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < k; ++j) wt[j * C + c] = w[c * k + j];
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
        float acc = bias;
        int64_t c0 = 0;
#ifdef __AVX512F__
        const __m512 vs = _mm512_set1_ps(slope), v0 = _mm512_setzero_ps();
        __m512 va = v0;
        for (; c0 + 16 <= C; c0 += 16) {
            for (int64_t j = 0; j < k; ++j) {
                int64_t s = t + j - pad;
                s = s < 0 ? -s : (s >= n ? 2 * (n - 1) - s : s);
                __m512 v = load16(x, s * C + c0, bf16);
                v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, v0, _CMP_LT_OQ), v, vs);
                va = _mm512_fmadd_ps(v, _mm512_loadu_ps(wt + j * C + c0), va);
            }
        }
        acc += _mm512_reduce_add_ps(va);
#endif
        for (int64_t c = c0; c < C; ++c)
            for (int64_t j = 0; j < k; ++j) {
                int64_t s = t + j - pad;
                s = s < 0 ? -s : (s >= n ? 2 * (n - 1) - s : s);
                acc += wt[j * C + c] * lrelu(load1(x, s * C + c, bf16), slope);
            }
        out[t] = acc;
    }
    delete[] wt;
    return 0;
}

}  // extern "C"

// ------------------------------------------------------------------ fp32 / bf16 elementwise passes
namespace {

inline float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t f2bf(float f) {  // round to nearest even (as c10::BFloat16), NaN aside
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

template <typename T> struct Vec;

template <> struct Vec<float> {
    static float get(const float* p) { return *p; }
    static void put(float* p, float v) { *p = v; }
#ifdef __AVX512F__
    static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
#endif
};

template <> struct Vec<uint16_t> {  // bf16 storage
    static float get(const uint16_t* p) { return bf2f(*p); }
    static void put(uint16_t* p, float v) { *p = f2bf(v); }
#ifdef __AVX512F__
    static __m512 load(const uint16_t* p) {
        __m256i h = _mm256_loadu_si256((const __m256i*)p);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    static void store(uint16_t* p, __m512 v) {
#ifdef __AVX512BF16__
        _mm256_storeu_si256((__m256i*)p, (__m256i)_mm512_cvtneps_pbh(v));
#else
        alignas(64) float tmp[16];
        _mm512_store_ps(tmp, v);
        for (int i = 0; i < 16; ++i) p[i] = f2bf(tmp[i]);
#endif
    }
#endif
};

// dst[i] = lrelu(src[i]) for i < c
template <typename T> inline void lrelu_row(const T* src, T* dst, int64_t c, float slope) {
    int64_t i = 0;
#ifdef __AVX512F__
    const __m512 vs = _mm512_set1_ps(slope), v0 = _mm512_setzero_ps();
    for (; i + 16 <= c; i += 16) {
        __m512 v = Vec<T>::load(src + i);
        Vec<T>::store(dst + i, _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, v0, _CMP_LT_OQ), v, vs));
    }
#endif
    for (; i < c; ++i) {
        float v = Vec<T>::get(src + i);
        Vec<T>::put(dst + i, v >= 0.f ? v : v * slope);
    }
}

template <typename T>
int lrelu_window_t(const T* x, int64_t C, int64_t start, int64_t n, int64_t lo, int64_t hi, int64_t pad,
                   int zero_pad, int64_t extra, float slope, T* out) {
    const int64_t w_lo = lo - pad, w_hi = hi + pad;
    const int64_t c_lo = std::max<int64_t>(w_lo, 0), c_hi = std::min<int64_t>(w_hi, n);
    if (!zero_pad && (c_lo - w_lo >= c_hi - c_lo || w_hi - c_hi >= c_hi - c_lo)) return 1;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < w_hi - w_lo + extra; ++r) {
        int64_t s = w_lo + r;
        T* dst = out + r * C;
        if (r >= w_hi - w_lo || ((s < 0 || s >= n) && zero_pad)) {
            std::memset((void*)dst, 0, C * sizeof(T));
            continue;
        }
        if (s < 0 || s >= n) s = s < 0 ? -s : 2 * (n - 1) - s;
        lrelu_row(x + (s - start) * C, dst, C, slope);
    }
    return 0;
}

// Winograd F(2,3) input transform of p (2 d (n_tiles + 1), C): for tile k, j < d with
// d0..d3 = p rows 2dk + j + {0, d, 2d, 3d}: a0 = d0 - d2, a1 = d1 + d2, a2 = d2 - d1, a3 = d1 - d3
// (rows k d + j of the (n_tiles d, C) outputs).
template <typename T>
void wino_in_t(const T* p, int64_t n_tiles, int64_t d, int64_t C, T* a0, T* a1, T* a2, T* a3) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n_tiles * d; ++r) {
        const int64_t k = r / d, j = r % d;
        const T* d0 = p + (2 * k * d + j) * C;
        const T *d1 = d0 + d * C, *d2 = d0 + 2 * d * C, *d3 = d0 + 3 * d * C;
        T *o0 = a0 + r * C, *o1 = a1 + r * C, *o2 = a2 + r * C, *o3 = a3 + r * C;
        int64_t i = 0;
#ifdef __AVX512F__
        for (; i + 16 <= C; i += 16) {
            __m512 v0 = Vec<T>::load(d0 + i), v1 = Vec<T>::load(d1 + i);
            __m512 v2 = Vec<T>::load(d2 + i), v3 = Vec<T>::load(d3 + i);
            Vec<T>::store(o0 + i, _mm512_sub_ps(v0, v2));
            Vec<T>::store(o1 + i, _mm512_add_ps(v1, v2));
            Vec<T>::store(o2 + i, _mm512_sub_ps(v2, v1));
            Vec<T>::store(o3 + i, _mm512_sub_ps(v1, v3));
        }
#endif
        for (; i < C; ++i) {
            float v0 = Vec<T>::get(d0 + i), v1 = Vec<T>::get(d1 + i);
            float v2 = Vec<T>::get(d2 + i), v3 = Vec<T>::get(d3 + i);
            Vec<T>::put(o0 + i, v0 - v2);
            Vec<T>::put(o1 + i, v1 + v2);
            Vec<T>::put(o2 + i, v2 - v1);
            Vec<T>::put(o3 + i, v1 - v3);
        }
    }
}

// Winograd F(2,3) output transform + LeakyReLU: from the (n_tiles d, C) GEMM outputs m0 = a0 g0,
// m1 = a1 g1 + b, m2 = a2 g2, m3 = a3 g3: h (2 n_tiles d, C) rows 2dk + j = lrelu(m1 + m2 + m0),
// 2dk + d + j = lrelu(m1 - m2 + m3).
template <typename T>
void wino_out_t(const T* m0, const T* m1, const T* m2, const T* m3, int64_t n_tiles, int64_t d, int64_t C,
                float slope, T* h) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n_tiles * d; ++r) {
        const int64_t k = r / d, j = r % d;
        T* y0 = h + (2 * k * d + j) * C;
        T* y1 = y0 + d * C;
        const T *p0 = m0 + r * C, *p1 = m1 + r * C, *p2 = m2 + r * C, *p3 = m3 + r * C;
        int64_t i = 0;
#ifdef __AVX512F__
        const __m512 vs = _mm512_set1_ps(slope), vz = _mm512_setzero_ps();
        for (; i + 16 <= C; i += 16) {
            __m512 b = Vec<T>::load(p1 + i), c = Vec<T>::load(p2 + i);
            __m512 u = _mm512_add_ps(_mm512_add_ps(b, c), Vec<T>::load(p0 + i));
            __m512 v = _mm512_add_ps(_mm512_sub_ps(b, c), Vec<T>::load(p3 + i));
            Vec<T>::store(y0 + i, _mm512_mask_mul_ps(u, _mm512_cmp_ps_mask(u, vz, _CMP_LT_OQ), u, vs));
            Vec<T>::store(y1 + i, _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, vz, _CMP_LT_OQ), v, vs));
        }
#endif
        for (; i < C; ++i) {
            float b = Vec<T>::get(p1 + i), c = Vec<T>::get(p2 + i);
            float u = b + c + Vec<T>::get(p0 + i), v = b - c + Vec<T>::get(p3 + i);
            Vec<T>::put(y0 + i, u >= 0.f ? u : u * slope);
            Vec<T>::put(y1 + i, v >= 0.f ? v : v * slope);
        }
    }
}

}  // namespace

extern "C" {

// LeakyReLU of samples [lo - pad, hi + pad) of a signal of n samples into out (hi - lo + 2 pad + extra, C):
// x holds the sample rows [start, ...); samples outside [0, n) are reflected (zero_pad: zeros); the extra
// rows at the end are zeros. fp32, or bf16 if ``bf16`` (x and out alike). Returns 1 if too short to reflect.
int lrelu_window(const void* x, int bf16, int64_t C, int64_t start, int64_t n, int64_t lo, int64_t hi,
                 int64_t pad, int zero_pad, int64_t extra, float slope, void* out) {
    if (bf16)
        return lrelu_window_t((const uint16_t*)x, C, start, n, lo, hi, pad, zero_pad, extra, slope, (uint16_t*)out);
    return lrelu_window_t((const float*)x, C, start, n, lo, hi, pad, zero_pad, extra, slope, (float*)out);
}

void wino_in(const void* p, int bf16, int64_t n_tiles, int64_t d, int64_t C, void* a0, void* a1, void* a2, void* a3) {
    if (bf16)
        wino_in_t((const uint16_t*)p, n_tiles, d, C, (uint16_t*)a0, (uint16_t*)a1, (uint16_t*)a2, (uint16_t*)a3);
    else
        wino_in_t((const float*)p, n_tiles, d, C, (float*)a0, (float*)a1, (float*)a2, (float*)a3);
}

void wino_out(const void* m0, const void* m1, const void* m2, const void* m3, int bf16, int64_t n_tiles, int64_t d,
              int64_t C, float slope, void* h) {
    if (bf16)
        wino_out_t((const uint16_t*)m0, (const uint16_t*)m1, (const uint16_t*)m2, (const uint16_t*)m3, n_tiles, d, C,
                   slope, (uint16_t*)h);
    else
        wino_out_t((const float*)m0, (const float*)m1, (const float*)m2, (const float*)m3, n_tiles, d, C, slope,
                   (float*)h);
}

}  // extern "C"

extern "C" {

// quant_rows for bf16 x: out = q(x) with the range of x; params: scale, zp.
void quant_rows_bf16(const uint16_t* x, int64_t numel, uint8_t* out, float* params) {
    const int64_t block = 4096;
    float lo_v = bf2f(x[0]), hi_v = lo_v;
#pragma omp parallel for schedule(static) reduction(min : lo_v) reduction(max : hi_v)
    for (int64_t b = 0; b < numel; b += block) {
        float tmp[block];
        const int64_t len = std::min(block, numel - b);
        float l, h;
        int64_t i = 0;
#ifdef __AVX512F__
        for (; i + 16 <= len; i += 16) _mm512_storeu_ps(tmp + i, Vec<uint16_t>::load(x + b + i));
#endif
        for (; i < len; ++i) tmp[i] = bf2f(x[b + i]);
        minmax(tmp, len, &l, &h);
        lo_v = std::min(lo_v, l);
        hi_v = std::max(hi_v, h);
    }
    float s, zp;
    qparams(lo_v, hi_v, &s, &zp);
    params[0] = s; params[1] = zp;
    const float inv = 1.f / s;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < numel; b += block) {
        float tmp[block];
        const int64_t len = std::min(block, numel - b);
        int64_t i = 0;
#ifdef __AVX512F__
        for (; i + 16 <= len; i += 16) _mm512_storeu_ps(tmp + i, Vec<uint16_t>::load(x + b + i));
#endif
        for (; i < len; ++i) tmp[i] = bf2f(x[b + i]);
        quant_row(tmp, out + b, len, inv, zp, 1.f);
    }
}

}  // extern "C"
