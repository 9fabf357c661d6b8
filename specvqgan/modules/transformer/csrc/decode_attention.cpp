// One-query attention for incremental GPT decoding on CPU (see fast_decode.py, native_decode_attention).
//
// For every row b and head h (OpenMP over condition x head; the g rows that share a condition prefix run
// on one thread, so the prefix is read from memory once and then from cache):
//   1. the new key/value (fp32, from the fused qkv output) are written into the cache at position `pos`
//      (rounded to bf16 for a bf16 cache, round-to-nearest-even);
//   2. scores s_j = scale * <q, k_j> over [shared prefix of the condition ; own positions own_start..pos];
//   3. y = softmax(s) @ V, accumulated in fp32.
// The cache is never copied or converted as a whole: each byte of K and V is read once per step.
#include <cstdint>
#include <cstring>
#include <cmath>
#include <vector>
#include <algorithm>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace {

struct BF16 { uint16_t bits; };

inline float to_f32(float x) { return x; }
inline float to_f32(BF16 x) {
    uint32_t u = static_cast<uint32_t>(x.bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline void from_f32(float x, float* dst) { *dst = x; }
inline void from_f32(float x, BF16* dst) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays NaN
        dst->bits = static_cast<uint16_t>((u >> 16) | 0x40);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    dst->bits = static_cast<uint16_t>(u >> 16);
}

#ifdef __AVX512F__
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const BF16* p) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}
// exp(x) for x <= 0 (softmax after subtracting the max): 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2],
// degree-6 Taylor polynomial (relative error < 2e-7); large negative x flushes to 0.
inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(p, n);
}
#endif

// s[j] <- exp(s[j] - m) for j < n; returns the sum.
inline float exp_shift_sum(float* s, int64_t n, float m) {
    int64_t j = 0;
    float sum = 0.f;
#ifdef __AVX512F__
    __m512 mv = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
    for (; j + 16 <= n; j += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), mv));
        _mm512_storeu_ps(s + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    sum = _mm512_reduce_add_ps(acc);
#endif
    for (; j < n; ++j) {
        s[j] = std::exp(s[j] - m);
        sum += s[j];
    }
    return sum;
}

template <typename T>
inline float dot(const float* q, const T* k, int64_t n) {
#ifdef __AVX512F__
    if (n % 16 == 0) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t d = 0; d < n; d += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), load16(k + d), acc);
        return _mm512_reduce_add_ps(acc);
    }
#endif
    float acc = 0.f;
    for (int64_t d = 0; d < n; ++d) acc += q[d] * to_f32(k[d]);
    return acc;
}

template <typename T>
inline void axpy(float a, const T* v, float* y, int64_t n) {
#ifdef __AVX512F__
    if (n % 16 == 0) {
        __m512 av = _mm512_set1_ps(a);
        for (int64_t d = 0; d < n; d += 16)
            _mm512_storeu_ps(y + d, _mm512_fmadd_ps(av, load16(v + d), _mm512_loadu_ps(y + d)));
        return;
    }
#endif
    for (int64_t d = 0; d < n; ++d) y[d] += a * to_f32(v[d]);
}

// scores s[j] = scale * <q, k_j> for n rows k_j = k + j * hs
template <typename T>
inline void scores(const float* q, const T* k, int64_t n, int64_t hs, float scale, float* s) {
#ifdef __AVX512F__
    if (hs == 64) {  // the paper's head size: q in 4 registers, 4 rows at a time (independent chains)
        const __m512 q0 = _mm512_loadu_ps(q), q1 = _mm512_loadu_ps(q + 16), q2 = _mm512_loadu_ps(q + 32),
                     q3 = _mm512_loadu_ps(q + 48);
        auto row = [&](const T* r) {
            __m512 a = _mm512_mul_ps(q0, load16(r));
            __m512 b = _mm512_mul_ps(q1, load16(r + 16));
            a = _mm512_fmadd_ps(q2, load16(r + 32), a);
            b = _mm512_fmadd_ps(q3, load16(r + 48), b);
            return _mm512_add_ps(a, b);
        };
        int64_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const T* r = k + j * 64;
            __m512 a0 = row(r), a1 = row(r + 64), a2 = row(r + 128), a3 = row(r + 192);
            s[j] = scale * _mm512_reduce_add_ps(a0);
            s[j + 1] = scale * _mm512_reduce_add_ps(a1);
            s[j + 2] = scale * _mm512_reduce_add_ps(a2);
            s[j + 3] = scale * _mm512_reduce_add_ps(a3);
        }
        for (; j < n; ++j) s[j] = scale * _mm512_reduce_add_ps(row(k + j * 64));
        return;
    }
#endif
    for (int64_t j = 0; j < n; ++j) s[j] = scale * dot(q, k + j * hs, hs);
}

// out += sum_j p[j] * v_j for n rows v_j = v + j * hs
template <typename T>
inline void weighted_sum(const float* p, const T* v, int64_t n, int64_t hs, float* out) {
#ifdef __AVX512F__
    if (hs == 64) {  // 2 rows at a time into two register accumulators
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int64_t j = 0;
        for (; j + 2 <= n; j += 2) {
            const T* r = v + j * 64;
            const __m512 pa = _mm512_set1_ps(p[j]), pb = _mm512_set1_ps(p[j + 1]);
            a0 = _mm512_fmadd_ps(pa, load16(r), a0);
            a1 = _mm512_fmadd_ps(pa, load16(r + 16), a1);
            a2 = _mm512_fmadd_ps(pa, load16(r + 32), a2);
            a3 = _mm512_fmadd_ps(pa, load16(r + 48), a3);
            b0 = _mm512_fmadd_ps(pb, load16(r + 64), b0);
            b1 = _mm512_fmadd_ps(pb, load16(r + 80), b1);
            b2 = _mm512_fmadd_ps(pb, load16(r + 96), b2);
            b3 = _mm512_fmadd_ps(pb, load16(r + 112), b3);
        }
        if (j < n) {
            const T* r = v + j * 64;
            const __m512 pa = _mm512_set1_ps(p[j]);
            a0 = _mm512_fmadd_ps(pa, load16(r), a0);
            a1 = _mm512_fmadd_ps(pa, load16(r + 16), a1);
            a2 = _mm512_fmadd_ps(pa, load16(r + 32), a2);
            a3 = _mm512_fmadd_ps(pa, load16(r + 48), a3);
        }
        _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), _mm512_add_ps(a0, b0)));
        _mm512_storeu_ps(out + 16, _mm512_add_ps(_mm512_loadu_ps(out + 16), _mm512_add_ps(a1, b1)));
        _mm512_storeu_ps(out + 32, _mm512_add_ps(_mm512_loadu_ps(out + 32), _mm512_add_ps(a2, b2)));
        _mm512_storeu_ps(out + 48, _mm512_add_ps(_mm512_loadu_ps(out + 48), _mm512_add_ps(a3, b3)));
        return;
    }
#endif
    for (int64_t j = 0; j < n; ++j) axpy(p[j], v + j * hs, out, hs);
}

template <typename T>
void attend(int64_t B, int64_t nh, int64_t hs, const float* qkv, int64_t qkv_stride,
            T* kc, T* vc, int64_t c_sb, int64_t c_sh, int64_t own_start, int64_t pos,
            const T* pk, const T* pv, int64_t p_sb, int64_t p_sh, int64_t Lp, int64_t group,
            float* y, int64_t y_stride, float scale) {
    const int64_t C = nh * hs;
    const int64_t n_own = pos - own_start + 1;
    const int64_t conds = B / group;
#pragma omp parallel
    {
        std::vector<float> s(static_cast<size_t>(Lp + n_own));
#pragma omp for schedule(static)
        for (int64_t task = 0; task < conds * nh; ++task) {
            const int64_t bc = task / nh, h = task % nh;
            for (int64_t r = 0; r < group; ++r) {
                const int64_t b = bc * group + r;
                const float* q = qkv + b * qkv_stride + h * hs;
                const float* knew = q + C;
                const float* vnew = q + 2 * C;
                T* kb = kc + b * c_sb + h * c_sh;
                T* vb = vc + b * c_sb + h * c_sh;
                for (int64_t d = 0; d < hs; ++d) {
                    from_f32(knew[d], kb + pos * hs + d);
                    from_f32(vnew[d], vb + pos * hs + d);
                }
                const T* pkb = Lp ? pk + bc * p_sb + h * p_sh : nullptr;
                const T* pvb = Lp ? pv + bc * p_sb + h * p_sh : nullptr;
                if (Lp) scores(q, pkb, Lp, hs, scale, s.data());
                scores(q, kb + own_start * hs, n_own, hs, scale, s.data() + Lp);
                const float m = *std::max_element(s.begin(), s.begin() + Lp + n_own);
                const float sum = exp_shift_sum(s.data(), Lp + n_own, m);
                const float inv = 1.f / sum;
                for (int64_t j = 0; j < Lp + n_own; ++j) s[j] *= inv;
                float* out = y + b * y_stride + h * hs;
                std::fill(out, out + hs, 0.f);
                if (Lp) weighted_sum(s.data(), pvb, Lp, hs, out);
                weighted_sum(s.data() + Lp, vb + own_start * hs, n_own, hs, out);
            }
        }
    }
}

}  // namespace

extern "C" {

// Layouts (strides in elements): qkv row b at qkv + b * qkv_stride holds [q ; k ; v], each nh x hs;
// cache kc/vc: (B, nh, max_len, hs) with batch/head strides c_sb/c_sh, positions contiguous rows of hs;
// prefix pk/pv: (B / group, nh, >= Lp, hs) with strides p_sb/p_sh (Lp = 0: no shared prefix, pk/pv unused);
// y row b at y + b * y_stride: nh x hs outputs. Own positions own_start..pos (pos = the new token).
void decode_attention_f32(int64_t B, int64_t nh, int64_t hs, const float* qkv, int64_t qkv_stride,
                          float* kc, float* vc, int64_t c_sb, int64_t c_sh, int64_t own_start, int64_t pos,
                          const float* pk, const float* pv, int64_t p_sb, int64_t p_sh, int64_t Lp,
                          int64_t group, float* y, int64_t y_stride, float scale) {
    attend<float>(B, nh, hs, qkv, qkv_stride, kc, vc, c_sb, c_sh, own_start, pos, pk, pv, p_sb, p_sh, Lp,
                  group, y, y_stride, scale);
}

void decode_attention_bf16(int64_t B, int64_t nh, int64_t hs, const float* qkv, int64_t qkv_stride,
                           void* kc, void* vc, int64_t c_sb, int64_t c_sh, int64_t own_start, int64_t pos,
                           const void* pk, const void* pv, int64_t p_sb, int64_t p_sh, int64_t Lp,
                           int64_t group, float* y, int64_t y_stride, float scale) {
    attend<BF16>(B, nh, hs, qkv, qkv_stride, static_cast<BF16*>(kc), static_cast<BF16*>(vc), c_sb, c_sh,
                 own_start, pos, static_cast<const BF16*>(pk), static_cast<const BF16*>(pv), p_sb, p_sh, Lp,
                 group, y, y_stride, scale);
}

}  // extern "C"
