// Dynamically quantized int8 Linear for CPU decoding (see fast_decode.py, NativeInt8Linear).
//
// y (M, N) = x (M, K) fp32 @ W^T with W (N, K) the row-major int8 weight of a per-channel qint8 tensor (its own
// storage, no packing), exactly as torch.ops.quantized.linear_dynamic(x, prepack(W, b), reduce_range=True) on
// the fbgemm engine computes it, bit for bit:
//   1. x is quantized per tensor to uint8 with ATen's ChooseQuantizationParams over [min(x), max(x)] with the
//      reduced range [0, 127]: q = clamp(nearbyint(fma(x, 1 / scale, zero_point)), 0, 255);
//   2. acc[m, n] = sum_k q[m, k] * W[n, k] in int32 (exact: 7-bit activations never saturate);
//   3. y = fma(float(acc - zero_point * rowsum[n]), scale * w_scale[n], bias[n]).
// int8_linear: steps 1-3 with this file's int32 kernel, for a few rows (a decoding step: a matrix-vector product
// bound by reading W once; each thread streams a contiguous range of output rows and prefetches the next block).
// Paths: AVX-512 VNNI (vpdpbusd), AVX2 (vpmaddubsw + vpmaddwd), scalar. int8_quantize / int8_epilogue: steps 1
// and 3 alone, around an int32 GEMM done elsewhere (torch._int_mm for many rows).
#include <cstdint>
#include <cmath>
#include <vector>
#include <algorithm>
#include <limits>
#include <omp.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr float SMALL_SCALE_THRESHOLD = 6.1e-5f;  // ATen / fbgemm quant_utils

// ATen's quant_utils::ChooseQuantizationParams(min, max, 0, 255, preserve_sparsity=false,
// force_scale_power_of_two=false, reduce_range=true).
void choose_params(float min, float max, float* scale_out, int32_t* zp_out) {
    const int32_t qmin = 0, qmax = 127;
    min = std::min(min, 0.f);
    max = std::max(max, 0.f);
    double scale = (static_cast<double>(max) - min) / (qmax - qmin);
    if (static_cast<float>(scale) == 0.0f || std::isinf(1.0f / static_cast<float>(scale))) scale = 0.1;
    if (scale < SMALL_SCALE_THRESHOLD) {
        float org_scale = static_cast<float>(scale);
        scale = SMALL_SCALE_THRESHOLD;
        if (min == 0.0f) {
            max = SMALL_SCALE_THRESHOLD * (qmax - qmin);
        } else if (max == 0.0f) {
            min = -SMALL_SCALE_THRESHOLD * (qmax - qmin);
        } else {
            float amplifier = SMALL_SCALE_THRESHOLD / org_scale;
            min *= amplifier;
            max *= amplifier;
        }
    }
    double zp_from_min = qmin - min / scale;
    double zp_from_max = qmax - max / scale;
    double err_min = std::abs(static_cast<double>(qmin)) - std::abs(min / scale);
    double err_max = std::abs(static_cast<double>(qmax)) - std::abs(max / scale);
    double zp = err_min < err_max ? zp_from_min : zp_from_max;
    int32_t nudged = zp < qmin ? qmin : zp > qmax ? qmax : static_cast<int32_t>(std::nearbyint(zp));
    *scale_out = static_cast<float>(scale);
    *zp_out = nudged;
}

// int32 dot products of activation rows a[0..RM) (stride K) with weight rows w[0..RN) (stride K):
// out[i][j] = <a_i, w_j>. A block of RM x RN accumulators: each loaded vector serves several products.
template <int RM, int RN>
inline void dot_block(const uint8_t* a, const int8_t* w, int64_t K, int32_t out[4][4], const int8_t* pf) {
    int64_t k = 0;
    int32_t acc_s[RM][RN] = {};
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    __m512i acc[RM][RN];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_setzero_si512();
    for (; k < K; k += 64) {
        const __mmask64 mask = K - k >= 64 ? ~0ULL : (~0ULL) >> (64 - (K - k));
        __m512i wv[RN];
        for (int j = 0; j < RN; ++j) wv[j] = _mm512_maskz_loadu_epi8(mask, w + j * K + k);
        if (pf)  // the next block's weight rows, fetched while this block computes
            for (int j = 0; j < 4; ++j) _mm_prefetch(reinterpret_cast<const char*>(pf + j * K + k), _MM_HINT_T0);
        for (int i = 0; i < RM; ++i) {
            const __m512i av = _mm512_maskz_loadu_epi8(mask, a + i * K + k);
            for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, wv[j]);
        }
    }
    for (int i = 0; i < RM; ++i) {  // the four row sums of acc[i][0..3] at once (zeros past RN)
        const __m512i z = _mm512_setzero_si512();
        const __m512i a0 = acc[i][0], a1 = RN > 1 ? acc[i][RN > 1 ? 1 : 0] : z;
        const __m512i a2 = RN > 2 ? acc[i][RN > 2 ? 2 : 0] : z, a3 = RN > 3 ? acc[i][RN > 3 ? 3 : 0] : z;
        const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
        const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
        const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
        const __m256i v = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
        alignas(16) int32_t sums[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(sums),
                        _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
        for (int j = 0; j < RN; ++j) acc_s[i][j] = sums[j];
    }
#elif defined(__AVX2__)
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[RM][RN];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) acc[i][j] = _mm256_setzero_si256();
    for (; k + 32 <= K; k += 32) {
        __m256i wv[RN];
        for (int j = 0; j < RN; ++j) wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * K + k));
        if (pf && (k & 63) == 0)
            for (int j = 0; j < 4; ++j) _mm_prefetch(reinterpret_cast<const char*>(pf + j * K + k), _MM_HINT_T0);
        for (int i = 0; i < RM; ++i) {
            const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i * K + k));
            for (int j = 0; j < RN; ++j)  // u8 x s8 pairs -> int16 (no saturation: activations are 7-bit)
                acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(av, wv[j]), ones));
        }
    }
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) {
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[i][j]), _mm256_extracti128_si256(acc[i][j], 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
            acc_s[i][j] = _mm_cvtsi128_si32(s);
        }
#endif
    for (; k < K; ++k)
        for (int i = 0; i < RM; ++i)
            for (int j = 0; j < RN; ++j) acc_s[i][j] += static_cast<int32_t>(a[i * K + k]) * w[j * K + k];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) out[i][j] = acc_s[i][j];
}

using DotFn = void (*)(const uint8_t*, const int8_t*, int64_t, int32_t[4][4], const int8_t*);
template <int RM>
constexpr DotFn dot_fns[4] = {dot_block<RM, 1>, dot_block<RM, 2>, dot_block<RM, 3>, dot_block<RM, 4>};
const DotFn* const DOT[4] = {dot_fns<1>, dot_fns<2>, dot_fns<3>, dot_fns<4>};

// Quantize x (M, K) (rows of stride x_stride) into q (M, K) uint8 with the per-tensor parameters (step 1);
// returns the largest code (<= 127 but for a rounding tie at the top of the range, then 128).
int32_t quantize(int64_t M, int64_t K, const float* x, int64_t x_stride, uint8_t* q, float* scale_out,
                 int32_t* zp_out) {
    float mn = std::numeric_limits<float>::infinity(), mx = -mn;
#pragma omp parallel for schedule(static) reduction(min : mn) reduction(max : mx) if (M * K > 65536)
    for (int64_t m = 0; m < M; ++m) {
        float lo = mn, hi = mx;
        const float* xr = x + m * x_stride;
        int64_t k = 0;
#if defined(__AVX512F__)
        __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
        for (; k + 16 <= K; k += 16) {
            const __m512 v = _mm512_loadu_ps(xr + k);
            vlo = _mm512_min_ps(vlo, v);
            vhi = _mm512_max_ps(vhi, v);
        }
        lo = _mm512_reduce_min_ps(vlo);
        hi = _mm512_reduce_max_ps(vhi);
#endif
        for (; k < K; ++k) {
            lo = xr[k] < lo ? xr[k] : lo;
            hi = xr[k] > hi ? xr[k] : hi;
        }
        mn = std::min(mn, lo);
        mx = std::max(mx, hi);
    }
    if (M * K == 0) mn = mx = 0.f;
    float scale;
    int32_t zp, top = 0;
    choose_params(mn, mx, &scale, &zp);
    const float inv = 1.0f / scale, fzp = static_cast<float>(zp);
#pragma omp parallel for schedule(static) reduction(max : top) if (M * K > 65536)
    for (int64_t m = 0; m < M; ++m) {
        const float* xr = x + m * x_stride;
        uint8_t* qr = q + m * K;
        int64_t k = 0;
#if defined(__AVX512F__)
        const __m512 vinv = _mm512_set1_ps(inv), vzp = _mm512_set1_ps(fzp);
        const __m512 v0 = _mm512_setzero_ps(), v255 = _mm512_set1_ps(255.f);
        __m512 vtop = v0;
        for (; k + 16 <= K; k += 16) {   // the scalar loop's operations, 16 at a time (same bits)
            __m512 t = _mm512_roundscale_ps(_mm512_fmadd_ps(_mm512_loadu_ps(xr + k), vinv, vzp),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            t = _mm512_min_ps(v255, _mm512_max_ps(v0, t));
            vtop = _mm512_max_ps(vtop, t);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + k), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t)));
        }
        top = std::max(top, static_cast<int32_t>(_mm512_reduce_max_ps(vtop)));
#endif
        for (; k < K; ++k) {
            const float t = std::nearbyint(std::fma(xr[k], inv, fzp));
            qr[k] = static_cast<uint8_t>(std::min(255.f, std::max(0.f, t)));
            top = std::max(top, static_cast<int32_t>(qr[k]));
        }
    }
    *scale_out = scale;
    *zp_out = zp;
    return top;
}

// Step 3 for rows [0, M) of output columns [n0, n0 + R): acc (row stride acc_stride) -> y (row stride y_stride).
inline void epilogue(int64_t M, int64_t n0, int64_t R, const int32_t* acc, int64_t acc_stride, float scale,
                     int32_t zp, const float* w_scale, const int32_t* rowsum, const float* bias, float* y,
                     int64_t y_stride) {
    for (int64_t i = 0; i < M; ++i) {
        int64_t r = 0;
#if defined(__AVX512F__)
        const __m512 vs = _mm512_set1_ps(scale);
        const __m512i vzp = _mm512_set1_epi32(zp);
        for (; r + 16 <= R; r += 16) {   // the scalar loop's operations, 16 at a time (same bits)
            const int64_t n = n0 + r;
            const __m512i a = _mm512_loadu_si512(acc + i * acc_stride + r);
            const __m512 raw = _mm512_cvtepi32_ps(_mm512_sub_epi32(a, _mm512_mullo_epi32(vzp, _mm512_loadu_si512(rowsum + n))));
            const __m512 mult = _mm512_mul_ps(vs, _mm512_loadu_ps(w_scale + n));
            _mm512_storeu_ps(y + i * y_stride + n, bias ? _mm512_fmadd_ps(raw, mult, _mm512_loadu_ps(bias + n))
                                                        : _mm512_mul_ps(raw, mult));
        }
#endif
        for (; r < R; ++r) {
            const int64_t n = n0 + r;
            const float raw = static_cast<float>(acc[i * acc_stride + r] - zp * rowsum[n]);
            const float mult = scale * w_scale[n];
            y[i * y_stride + n] = bias ? std::fma(raw, mult, bias[n]) : raw * mult;
        }
    }
}

}  // namespace

extern "C" {

// rowsum[n] = sum_k W[n, k] (the zero-point correction; computed once per weight).
void int8_rowsum(int64_t N, int64_t K, const int8_t* w, int32_t* rowsum) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
        int32_t s = 0;
        const int8_t* row = w + n * K;
        for (int64_t k = 0; k < K; ++k) s += row[k];
        rowsum[n] = s;
    }
}

// Step 1 alone (for an int32 GEMM elsewhere, e.g. torch._int_mm): see quantize().
int32_t int8_quantize(int64_t M, int64_t K, const float* x, uint8_t* q, float* scale, int32_t* zp) {
    return quantize(M, K, x, K, q, scale, zp);
}

// Step 3 alone: acc (M, N) int32 -> y (M, N) fp32.
void int8_epilogue(int64_t M, int64_t N, const int32_t* acc, float scale, int32_t zp, const float* w_scale,
                   const int32_t* rowsum, const float* bias, float* y) {
#pragma omp parallel for schedule(static) if (M * N > 65536)
    for (int64_t m = 0; m < M; ++m) epilogue(1, 0, N, acc + m * N, N, scale, zp, w_scale, rowsum, bias, y + m * N, N);
}

// The whole Linear with this file's int32 kernels: x (M, K) fp32 rows of stride x_stride; w (N, K) int8;
// w_scale, rowsum (N); bias (N) or null; y (M, N) rows of stride y_stride.
void int8_linear(int64_t M, int64_t K, int64_t N, const float* x, int64_t x_stride, const int8_t* w,
                 const float* w_scale, const int32_t* rowsum, const float* bias, float* y, int64_t y_stride) {
    std::vector<uint8_t> q(static_cast<size_t>(M * K));
    float scale;
    int32_t zp;
    quantize(M, K, x, x_stride, q.data(), &scale, &zp);
    const int64_t blocks = (N + 3) / 4;
#pragma omp parallel
    {
    // contiguous ranges of blocks per thread (as schedule(static)), so the prefetch of the next block is useful
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t b_begin = blocks * t / nt, b_end = blocks * (t + 1) / nt;
    for (int64_t b = b_begin; b < b_end; ++b) {
        const int64_t n0 = b * 4, R = std::min<int64_t>(4, N - n0);
        const int8_t* wb = w + n0 * K;
        int32_t acc[4][4];
        for (int64_t m0 = 0; m0 < M; m0 += 4) {
            const int64_t RM = std::min<int64_t>(4, M - m0);
            DOT[RM - 1][R - 1](q.data() + m0 * K, wb, K, acc, m0 == 0 && b + 1 < b_end ? wb + 4 * K : nullptr);
            epilogue(RM, n0, R, &acc[0][0], 4, scale, zp, w_scale, rowsum, bias, y + m0 * y_stride, y_stride);
        }
    }
    }
}

}  // extern "C"
