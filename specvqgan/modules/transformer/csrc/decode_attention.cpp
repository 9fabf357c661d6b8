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
#include <type_traits>
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

#ifdef __AVX512F__
// the four horizontal sums (a, b, c, d) in one 128-bit vector (13 ops instead of 4 full reductions)
inline __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    const __m512 abcd = _mm512_add_ps(
        _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))),
        _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))));
    const __m512 x = _mm512_add_ps(abcd, _mm512_shuffle_f32x4(abcd, abcd, 0x4E));
    const __m512 y = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0xB1));
    return _mm512_castps512_ps128(y);
}

// bf16 rows of 64 as 2 x 32: one 512-bit load holds 16 (even, odd) pairs; the even elements are the
// low halves shifted up, the odd ones the high halves masked: 3 ops per 32 values instead of 4 for 16.
// The query / the accumulators use the same (even ; odd) order within each 32-chunk.
inline void split32(const BF16* p, __m512& even, __m512& odd) {
    const __m512i x = _mm512_loadu_si512(reinterpret_cast<const void*>(p));
    even = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
    odd = _mm512_castsi512_ps(_mm512_and_si512(x, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

// an fp32 vector of 64 (a query) in the (even ; odd) order of split32: e0, o0 for [0, 32), e1, o1 for [32, 64)
inline void split_query(const float* q, __m512& e0, __m512& o0, __m512& e1, __m512& o1) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 q0 = _mm512_loadu_ps(q), q1 = _mm512_loadu_ps(q + 16), q2 = _mm512_loadu_ps(q + 32),
                 q3 = _mm512_loadu_ps(q + 48);
    e0 = _mm512_permutex2var_ps(q0, ie, q1);
    o0 = _mm512_permutex2var_ps(q0, io, q1);
    e1 = _mm512_permutex2var_ps(q2, ie, q3);
    o1 = _mm512_permutex2var_ps(q2, io, q3);
}

// out (64, natural order) += accumulators in the (even ; odd) order of split32
inline void add_unsplit(float* out, __m512 e0, __m512 o0, __m512 e1, __m512 o1) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), _mm512_permutex2var_ps(e0, lo, o0)));
    _mm512_storeu_ps(out + 16, _mm512_add_ps(_mm512_loadu_ps(out + 16), _mm512_permutex2var_ps(e0, hi, o0)));
    _mm512_storeu_ps(out + 32, _mm512_add_ps(_mm512_loadu_ps(out + 32), _mm512_permutex2var_ps(e1, lo, o1)));
    _mm512_storeu_ps(out + 48, _mm512_add_ps(_mm512_loadu_ps(out + 48), _mm512_permutex2var_ps(e1, hi, o1)));
}

// s[j] = scale * <q, k_j> for n bf16 rows of 64
inline void scores64_bf16(const float* q, const BF16* k, int64_t n, float scale, float* s) {
    __m512 qe0, qo0, qe1, qo1;
    split_query(q, qe0, qo0, qe1, qo1);
    auto row = [&](const BF16* r) {
        __m512 e0, o0, e1, o1;
        split32(r, e0, o0);
        split32(r + 32, e1, o1);
        const __m512 a = _mm512_fmadd_ps(qe1, e1, _mm512_mul_ps(qe0, e0));
        const __m512 b = _mm512_fmadd_ps(qo1, o1, _mm512_mul_ps(qo0, o0));
        return _mm512_add_ps(a, b);
    };
    const __m128 sc = _mm_set1_ps(scale);
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const BF16* r = k + j * 64;
        _mm_prefetch(reinterpret_cast<const char*>(r + 48 * 64), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(r + 50 * 64), _MM_HINT_T0);
        _mm_storeu_ps(s + j, _mm_mul_ps(sc, hsum4(row(r), row(r + 64), row(r + 128), row(r + 192))));
    }
    for (; j < n; ++j) s[j] = scale * _mm512_reduce_add_ps(row(k + j * 64));
}

// out (64) += sum_j p[j] * v_j for n bf16 rows of 64
inline void weighted_sum64_bf16(const float* p, const BF16* v, int64_t n, float* out) {
    __m512 ae0 = _mm512_setzero_ps(), ao0 = ae0, ae1 = ae0, ao1 = ae0;
    __m512 be0 = ae0, bo0 = ae0, be1 = ae0, bo1 = ae0;
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
        const BF16* r = v + j * 64;
        _mm_prefetch(reinterpret_cast<const char*>(r + 32 * 64), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(r + 33 * 64), _MM_HINT_T0);
        const __m512 pa = _mm512_set1_ps(p[j]), pb = _mm512_set1_ps(p[j + 1]);
        __m512 e0, o0, e1, o1;
        split32(r, e0, o0);
        split32(r + 32, e1, o1);
        ae0 = _mm512_fmadd_ps(pa, e0, ae0);
        ao0 = _mm512_fmadd_ps(pa, o0, ao0);
        ae1 = _mm512_fmadd_ps(pa, e1, ae1);
        ao1 = _mm512_fmadd_ps(pa, o1, ao1);
        split32(r + 64, e0, o0);
        split32(r + 96, e1, o1);
        be0 = _mm512_fmadd_ps(pb, e0, be0);
        bo0 = _mm512_fmadd_ps(pb, o0, bo0);
        be1 = _mm512_fmadd_ps(pb, e1, be1);
        bo1 = _mm512_fmadd_ps(pb, o1, bo1);
    }
    if (j < n) {
        const __m512 pa = _mm512_set1_ps(p[j]);
        __m512 e0, o0, e1, o1;
        split32(v + j * 64, e0, o0);
        split32(v + j * 64 + 32, e1, o1);
        ae0 = _mm512_fmadd_ps(pa, e0, ae0);
        ao0 = _mm512_fmadd_ps(pa, o0, ao0);
        ae1 = _mm512_fmadd_ps(pa, e1, ae1);
        ao1 = _mm512_fmadd_ps(pa, o1, ao1);
    }
    add_unsplit(out, _mm512_add_ps(ae0, be0), _mm512_add_ps(ao0, bo0), _mm512_add_ps(ae1, be1),
                _mm512_add_ps(ao1, bo1));
}
#endif

// scores s[j] = scale * <q, k_j> for n rows k_j = k + j * hs
template <typename T>
inline void scores(const float* q, const T* k, int64_t n, int64_t hs, float scale, float* s) {
#ifdef __AVX512F__
    if constexpr (std::is_same<T, BF16>::value) {
        if (hs == 64) return scores64_bf16(q, k, n, scale, s);
    }
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
            _mm_storeu_ps(s + j, _mm_mul_ps(_mm_set1_ps(scale), hsum4(a0, a1, a2, a3)));
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
    if constexpr (std::is_same<T, BF16>::value) {
        if (hs == 64) return weighted_sum64_bf16(p, v, n, out);
    }
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

#ifdef __AVX512F__
// The shared prefix for 4 queries at once (bf16, head size 64): each prefix row is loaded and converted
// once for the 4. Scores: s[r * ld + j] = scale * <q_r, k_j>.
inline void prefix4_scores_bf16(const float* const q[4], const BF16* k, int64_t n, float scale, float* s,
                                int64_t ld) {
    __m512 qe0[4], qo0[4], qe1[4], qo1[4];
    for (int r = 0; r < 4; ++r) split_query(q[r], qe0[r], qo0[r], qe1[r], qo1[r]);
    alignas(16) float t[4];
    for (int64_t j = 0; j < n; ++j) {
        __m512 e0, o0, e1, o1;
        split32(k + j * 64, e0, o0);
        split32(k + j * 64 + 32, e1, o1);
        __m512 acc[4];
        for (int r = 0; r < 4; ++r)
            acc[r] = _mm512_add_ps(_mm512_fmadd_ps(qe1[r], e1, _mm512_mul_ps(qe0[r], e0)),
                                   _mm512_fmadd_ps(qo1[r], o1, _mm512_mul_ps(qo0[r], o0)));
        _mm_store_ps(t, _mm_mul_ps(_mm_set1_ps(scale), hsum4(acc[0], acc[1], acc[2], acc[3])));
        for (int r = 0; r < 4; ++r) s[r * ld + j] = t[r];
    }
}

// Values of the shared prefix for 4 queries: out_r += sum_j p[r * ld + j] v_j.
inline void prefix4_values_bf16(const float* p, int64_t ld, const BF16* v, int64_t n, float* const out[4]) {
    __m512 ae0[4], ao0[4], ae1[4], ao1[4];
    for (int r = 0; r < 4; ++r) ae0[r] = ao0[r] = ae1[r] = ao1[r] = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
        __m512 e0, o0, e1, o1;
        split32(v + j * 64, e0, o0);
        split32(v + j * 64 + 32, e1, o1);
        for (int r = 0; r < 4; ++r) {
            const __m512 pr = _mm512_set1_ps(p[r * ld + j]);
            ae0[r] = _mm512_fmadd_ps(pr, e0, ae0[r]);
            ao0[r] = _mm512_fmadd_ps(pr, o0, ao0[r]);
            ae1[r] = _mm512_fmadd_ps(pr, e1, ae1[r]);
            ao1[r] = _mm512_fmadd_ps(pr, o1, ao1[r]);
        }
    }
    for (int r = 0; r < 4; ++r) add_unsplit(out[r], ae0[r], ao0[r], ae1[r], ao1[r]);
}
#endif

// One (condition, head) task: the `group` rows that share the condition prefix.
template <typename T>
void attend_group(int64_t group, int64_t hs, const float* const* q, const float* const* knew,
                  const float* const* vnew, T* const* kb, T* const* vb, int64_t own_start, int64_t pos,
                  const T* pkb, const T* pvb, int64_t Lp, float scale, float* s, float* const* out) {
    const int64_t n_own = pos - own_start + 1, L = Lp + n_own;
    for (int64_t r = 0; r < group; ++r) {
        for (int64_t d = 0; d < hs; ++d) {
            from_f32(knew[r][d], kb[r] + pos * hs + d);
            from_f32(vnew[r][d], vb[r] + pos * hs + d);
        }
        std::fill(out[r], out[r] + hs, 0.f);
    }
    // scores: prefix (4 rows at a time where vectorised), own positions
    int64_t r0 = 0;
#ifdef __AVX512F__
    if constexpr (std::is_same<T, BF16>::value) {
        if (hs == 64 && Lp)
            for (; r0 + 4 <= group; r0 += 4) prefix4_scores_bf16(q + r0, pkb, Lp, scale, s + r0 * L, L);
    }
#endif
    for (int64_t r = r0; r < group; ++r)
        if (Lp) scores(q[r], pkb, Lp, hs, scale, s + r * L);
    for (int64_t r = 0; r < group; ++r) {
        float* sr = s + r * L;
        scores(q[r], kb[r] + own_start * hs, n_own, hs, scale, sr + Lp);
        const float m = *std::max_element(sr, sr + L);
        const float inv = 1.f / exp_shift_sum(sr, L, m);
        for (int64_t j = 0; j < L; ++j) sr[j] *= inv;
    }
    // values: prefix, own positions
    r0 = 0;
#ifdef __AVX512F__
    if constexpr (std::is_same<T, BF16>::value) {
        if (hs == 64 && Lp)
            for (; r0 + 4 <= group; r0 += 4) prefix4_values_bf16(s + r0 * L, L, pvb, Lp, out + r0);
    }
#endif
    for (int64_t r = r0; r < group; ++r)
        if (Lp) weighted_sum(s + r * L, pvb, Lp, hs, out[r]);
    for (int64_t r = 0; r < group; ++r) weighted_sum(s + r * L + Lp, vb[r] + own_start * hs, n_own, hs, out[r]);
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
        std::vector<float> s(static_cast<size_t>(group * (Lp + n_own)));
        std::vector<const float*> q(group), kn(group), vn(group);
        std::vector<T*> kb(group), vb(group);
        std::vector<float*> out(group);
#pragma omp for schedule(static)
        for (int64_t task = 0; task < conds * nh; ++task) {
            const int64_t bc = task / nh, h = task % nh;
            for (int64_t r = 0; r < group; ++r) {
                const int64_t b = bc * group + r;
                q[r] = qkv + b * qkv_stride + h * hs;
                kn[r] = q[r] + C;
                vn[r] = q[r] + 2 * C;
                kb[r] = kc + b * c_sb + h * c_sh;
                vb[r] = vc + b * c_sb + h * c_sh;
                out[r] = y + b * y_stride + h * hs;
            }
            const T* pkb = Lp ? pk + bc * p_sb + h * p_sh : nullptr;
            const T* pvb = Lp ? pv + bc * p_sb + h * p_sh : nullptr;
            attend_group<T>(group, hs, q.data(), kn.data(), vn.data(), kb.data(), vb.data(), own_start, pos,
                            pkb, pvb, Lp, scale, s.data(), out.data());
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
