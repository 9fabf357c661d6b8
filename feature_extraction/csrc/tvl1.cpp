// TV-L1 optical flow (Zach, Pock and Bischof's duality-based TV-L1 as in OpenCV's DualTVL1OpticalFlow,
// opencv_contrib optflow/src/tvl1flow.cpp): the native kernel of feature_extraction.flow's "tvl1".
// Built by specvqgan.native (feature_extraction/flow_native.py). Every float operation is OpenCV's, in
// OpenCV's order, so that the flows are bit-identical (tests/unit/feature_extraction/test_flow_native.py):
// * the element-wise steps in tvl1flow.cpp's order, no FMA contraction (the pragma below), hypot in double;
// * resize INTER_LINEAR as OpenCV's generic code or its IPP build computes it (ipp_resize), remap
//   INTER_CUBIC as OpenCV's AVX2 code (1/32-pixel grid, float tables, FMA row lanes, zero border),
//   medianBlur 5 (an exact median: a pruned sorting network);
// * the stopping test on OpenCV's sequential float sum of the squared updates: decided from a double sum,
//   and re-summed sequentially in float only when the double sum is too close to the threshold.
// Speed: one inner iteration is one fused pass (thresholding, divergence, u update, error terms, forward
// gradient, dual update, row by row), AVX-512 where the compiler targets it, scalar code otherwise.
#pragma GCC optimize("fp-contract=off")
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>
#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

namespace {

constexpr int TAB = 32;   // OpenCV INTER_TAB_SIZE

#ifdef __AVX512F__
inline __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
#endif

struct Plane {
    int h = 0, w = 0;
    std::vector<float> d;
    void create(int hh, int ww) { h = hh; w = ww; d.assign(size_t(hh) * ww, 0.f); }
    float* row(int y) { return d.data() + size_t(y) * w; }
    const float* row(int y) const { return d.data() + size_t(y) * w; }
};

inline int floor_int(float v) { int i = int(v); return i - (i > v); }   // cvFloor

// cv::resize(src, dst, dsize, ..., INTER_LINEAR) of a float plane, OpenCV's generic path
// (inv_sx, inv_sy: destination pixels per source pixel, as cv::resize derives them).
void resize_linear(const float* src, int sh, int sw, float* dst, int dh, int dw, double inv_sx, double inv_sy) {
    const double scale_x = 1.0 / inv_sx, scale_y = 1.0 / inv_sy;
    std::vector<int> xofs(dw);
    std::vector<float> a0(dw), a1(dw), h0(dw), h1(dw);
    int xmax = dw;
    for (int dx = 0; dx < dw; ++dx) {
        float fx = float((dx + 0.5) * scale_x - 0.5);
        int sx = floor_int(fx);
        fx -= sx;
        if (sx < 0) { fx = 0.f; sx = 0; }
        if (sx + 1 >= sw) {
            xmax = std::min(xmax, dx);
            if (sx >= sw - 1) { fx = 0.f; sx = sw - 1; }
        }
        xofs[dx] = sx; a0[dx] = 1.f - fx; a1[dx] = fx;
    }
    auto hresize = [&](const float* s, float* out) {
        for (int dx = 0; dx < xmax; ++dx) out[dx] = s[xofs[dx]] * a0[dx] + s[xofs[dx] + 1] * a1[dx];
        for (int dx = xmax; dx < dw; ++dx) out[dx] = s[xofs[dx]];
    };
    for (int dy = 0; dy < dh; ++dy) {
        float fy = float((dy + 0.5) * scale_y - 0.5);
        int sy = floor_int(fy);
        fy -= sy;
        const float b0 = 1.f - fy, b1 = fy;
        const int r0 = std::min(std::max(sy, 0), sh - 1), r1 = std::min(std::max(sy + 1, 0), sh - 1);
        hresize(src + size_t(r0) * sw, h0.data());
        hresize(src + size_t(r1) * sw, h1.data());
        float* d = dst + size_t(dy) * dw;
        for (int x = 0; x < dw; ++x) d[x] = h0[x] * b0 + h1[x] * b1;
    }
}

// The same resize as the Intel IPP build of OpenCV computes it (opencv-python wheels call IPP for float
// INTER_LINEAR): coordinates in double, linear interpolation a + f * (b - a) with FMA, horizontal pass
// first; past the last pixel a downscale takes (s - 2, s - 1) with weight 1, an upscale the last pixel.
// Source pixels per destination pixel: 1 / inv_s for a downscale by factor inv_s (cv::resize(..., Size(), fx,
// fy)), source / destination size for an upscale to a given size. (Found by matching cv2.resize bit for bit.)
void resize_linear_ipp(const float* src, int sh, int sw, float* dst, int dh, int dw, double inv_sx, double inv_sy) {
    auto taps = [](int d, int s, double scale, bool down, std::vector<int>& i0, std::vector<float>& f) {
        i0.resize(d); f.resize(d);
        for (int k = 0; k < d; ++k) {
            const double c = (k + 0.5) * scale - 0.5;
            int i = int(std::floor(c));
            float fr = float(c - i);
            if (i < 0) { i = 0; fr = 0.f; }
            if (i >= s - 1) {
                if (down && s > 1) { i = s - 2; fr = 1.f; } else { i = s - 1; fr = 0.f; }
            }
            i0[k] = i; f[k] = fr;
        }
    };
    std::vector<int> xi, yi;
    std::vector<float> fx, fy;
    taps(dw, sw, inv_sx < 1 ? 1.0 / inv_sx : double(sw) / dw, inv_sx < 1, xi, fx);
    taps(dh, sh, inv_sy < 1 ? 1.0 / inv_sy : double(sh) / dh, inv_sy < 1, yi, fy);
    std::vector<float> h0(dw), h1(dw);
    auto hresize = [&](const float* s, float* out) {
        for (int x = 0; x < dw; ++x) {
            const float a = s[xi[x]], b = s[std::min(xi[x] + 1, sw - 1)];
            out[x] = std::fma(fx[x], b - a, a);
        }
    };
    for (int y = 0; y < dh; ++y) {
        hresize(src + size_t(yi[y]) * sw, h0.data());
        hresize(src + size_t(std::min(yi[y] + 1, sh - 1)) * sw, h1.data());
        float* d = dst + size_t(y) * dw;
        for (int x = 0; x < dw; ++x) d[x] = std::fma(fy[y], h1[x] - h0[x], h0[x]);
    }
}

// OpenCV's float bicubic table: 32 x 32 fractional positions x 16 weights (A = -0.75).
struct CubicTable {
    float w[TAB * TAB][16];
    CubicTable() {
        float t[TAB][4];
        const float A = -0.75f;
        for (int i = 0; i < TAB; ++i) {
            const float x = i * (1.f / TAB);
            float* c = t[i];
            c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
            c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
            c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
            c[3] = 1.f - c[0] - c[1] - c[2];
        }
        for (int i = 0; i < TAB; ++i)
            for (int j = 0; j < TAB; ++j)
                for (int k1 = 0; k1 < 4; ++k1)
                    for (int k2 = 0; k2 < 4; ++k2) w[i * TAB + j][k1 * 4 + k2] = t[i][k1] * t[j][k2];
    }
};
const CubicTable& cubic_table() { static const CubicTable t; return t; }

inline int to_tab(float v) {   // saturate_cast<int>(v * 32): round half to even
    const float s = v * float(TAB);
    if (!(s > -2147483520.f)) return std::numeric_limits<int>::min();
    if (!(s < 2147483520.f)) return std::numeric_limits<int>::max();
    return int(std::nearbyint(s));
}
inline int sat_short(int v) { return std::min(32767, std::max(-32768, v)); }

// cv::remap(src_k, dst_k, x + u1, y + u2, INTER_CUBIC) (BORDER_CONSTANT 0) of n planes sharing the maps.
void remap_cubic(const float* const* src, float* const* dst, int n, int h, int w, const float* u1,
                 const float* u2) {
    const CubicTable& tab = cubic_table();
    const unsigned width1 = unsigned(std::max(w - 3, 0)), height1 = unsigned(std::max(h - 3, 0));
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            const size_t o = size_t(y) * w + x;
            const int X = to_tab(float(x) + u1[o]), Y = to_tab(float(y) + u2[o]);
            const int sx = sat_short(X >> 5) - 1, sy = sat_short(Y >> 5) - 1;
            const float* wt = tab.w[(Y & (TAB - 1)) * TAB + (X & (TAB - 1))];
            if (unsigned(sx) < width1 && unsigned(sy) < height1) {
                for (int k = 0; k < n; ++k) {   // OpenCV's SIMD order: 4 column lanes, rows by FMA
                    const float* S = src[k] + size_t(sy) * w + sx;
#ifdef __FMA__
                    __m128 acc = _mm_mul_ps(_mm_loadu_ps(S), _mm_loadu_ps(wt));
                    for (int i = 1; i < 4; ++i)
                        acc = _mm_fmadd_ps(_mm_loadu_ps(S + size_t(i) * w), _mm_loadu_ps(wt + 4 * i), acc);
                    const __m128 t = _mm_add_ps(acc, _mm_movehl_ps(acc, acc));      // (0 + 2), (1 + 3)
                    dst[k][o] = _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
#else
                    float acc[4];
                    for (int j = 0; j < 4; ++j) acc[j] = S[j] * wt[j];
                    for (int i = 1; i < 4; ++i)
                        for (int j = 0; j < 4; ++j) acc[j] = std::fma(S[i * w + j], wt[i * 4 + j], acc[j]);
                    dst[k][o] = (acc[0] + acc[2]) + (acc[1] + acc[3]);
#endif
                }
                continue;
            }
            if (sx >= w || sx + 4 <= 0 || sy >= h || sy + 4 <= 0) {
                for (int k = 0; k < n; ++k) dst[k][o] = 0.f;
                continue;
            }
            int xs[4], ys[4];
            for (int i = 0; i < 4; ++i) {
                xs[i] = (sx + i >= 0 && sx + i < w) ? sx + i : -1;
                ys[i] = (sy + i >= 0 && sy + i < h) ? sy + i : -1;
            }
            for (int k = 0; k < n; ++k) {
                float sum = 0.f;
                for (int i = 0; i < 4; ++i) {
                    if (ys[i] < 0) continue;
                    const float* S = src[k] + size_t(ys[i]) * w;
                    for (int j = 0; j < 4; ++j)
                        if (xs[j] >= 0) sum += (S[xs[j]] - 0.f) * wt[i * 4 + j];
                }
                dst[k][o] = sum;
            }
        }
    }
}

// The median of 25 values v[0..24] ends in v[12] after these 113 compare-exchanges (min to the first
// index): Batcher's odd-even merge sort of 32 lines with lines 25..31 held at +inf, pruned of the exchanges
// with an infinite line (moves become relabellings) and of those that cannot reach line 12.
constexpr unsigned char MEDIAN25[113][2] = {
    {0,1}, {2,3}, {4,5}, {6,7}, {8,9}, {10,11}, {12,13}, {14,15}, {16,17}, {18,19}, {20,21}, {22,23}, {0,2},
    {1,3}, {4,6}, {5,7}, {8,10}, {9,11}, {12,14}, {13,15}, {16,18}, {17,19}, {20,22}, {21,23}, {1,2}, {5,6},
    {9,10}, {13,14}, {17,18}, {21,22}, {0,4}, {1,5}, {2,6}, {3,7}, {8,12}, {9,13}, {10,14}, {11,15}, {16,20},
    {17,21}, {18,22}, {19,23}, {2,4}, {3,5}, {10,12}, {11,13}, {18,20}, {19,21}, {1,2}, {3,4}, {5,6}, {9,10},
    {11,12}, {13,14}, {17,18}, {19,20}, {21,22}, {0,8}, {1,9}, {2,10}, {3,11}, {4,12}, {5,13}, {6,14}, {7,15},
    {16,24}, {4,8}, {5,9}, {6,10}, {7,11}, {20,24}, {2,4}, {3,5}, {6,8}, {7,9}, {10,12}, {11,13}, {18,20},
    {19,21}, {22,24}, {1,2}, {3,4}, {5,6}, {7,8}, {9,10}, {11,12}, {13,14}, {17,18}, {19,20}, {21,22}, {23,24},
    {0,16}, {1,17}, {2,18}, {3,19}, {4,20}, {5,21}, {6,22}, {7,23}, {8,24}, {8,16}, {9,17}, {10,18}, {11,19},
    {12,20}, {13,21}, {6,10}, {7,11}, {12,16}, {13,17}, {10,12}, {11,13}, {11,12}
};

template <typename V, typename Lo, typename Hi>
inline void median25(V* v, Lo lo, Hi hi) {
#pragma GCC unroll 128
    for (int k = 0; k < 113; ++k) {
        const V a = v[MEDIAN25[k][0]], b = v[MEDIAN25[k][1]];
        v[MEDIAN25[k][0]] = lo(a, b);
        v[MEDIAN25[k][1]] = hi(a, b);
    }
}

// cv::medianBlur(u, u, 5) of a float plane (BORDER_REPLICATE): the exact median of each 5 x 5 window.
void median5(Plane& u, std::vector<float>& work) {
    const int h = u.h, w = u.w, wp = w + 4;
    work.resize(size_t(h + 4) * wp);
    for (int y = 0; y < h + 4; ++y) {
        const float* s = u.row(std::min(std::max(y - 2, 0), h - 1));
        float* p = work.data() + size_t(y) * wp;
        p[0] = p[1] = s[0];
        std::memcpy(p + 2, s, sizeof(float) * w);
        p[w + 2] = p[w + 3] = s[w - 1];
    }
    for (int y = 0; y < h; ++y) {
        const float* rows = work.data() + size_t(y) * wp;   // window rows y .. y + 4 of the padded plane
        float* out = u.row(y);
        int x = 0;
#ifdef __AVX512F__
        for (; x < w; x += 16) {
            const __mmask16 m = tail_mask(w - x);
            __m512 v[25];
            for (int r = 0; r < 5; ++r)
                for (int c = 0; c < 5; ++c) v[r * 5 + c] = _mm512_maskz_loadu_ps(m, rows + size_t(r) * wp + x + c);
            median25(v, [](__m512 a, __m512 b) { return _mm512_min_ps(a, b); },
                     [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
            _mm512_mask_storeu_ps(out + x, m, v[12]);
        }
#endif
        for (; x < w; ++x) {
            float v[25];
            for (int r = 0; r < 5; ++r)
                for (int c = 0; c < 5; ++c) v[r * 5 + c] = rows[size_t(r) * wp + x + c];
            median25(v, [](float a, float b) { return b < a ? b : a; }, [](float a, float b) { return b < a ? a : b; });
            out[x] = v[12];
        }
    }
}

// OpenCV's centred gradient (one-sided, halved, at the borders).
void centred_gradient(const Plane& s, Plane& dx, Plane& dy) {
    const int h = s.h, w = s.w;
    for (int y = 0; y < h; ++y) {
        const float* c = s.row(y);
        const float* up = s.row(std::max(y - 1, 0));
        const float* dn = s.row(std::min(y + 1, h - 1));
        float* gx = dx.row(y);
        float* gy = dy.row(y);
        for (int x = 1; x < w - 1; ++x) gx[x] = 0.5f * (c[x + 1] - c[x - 1]);
        gx[0] = 0.5f * (c[1] - c[0]);
        gx[w - 1] = 0.5f * (c[w - 1] - c[w - 2]);
        for (int x = 0; x < w; ++x) gy[x] = 0.5f * (dn[x] - up[x]);
    }
}

// Decide (sequential float sum of terms) > eps, as OpenCV's estimateU accumulates it, from the double sum
// sd of the same terms: float summation of n >= 0 terms is within gamma_{n-1} * sum of the exact sum.
bool error_above(const float* terms, size_t n, double sd, float eps) {
    const double u = std::ldexp(1.0, -24), g = (n - 1) * u / (1 - (n - 1) * u) + 1e-9;
    if (sd * (1 - g) > double(eps)) return true;
    if (sd * (1 + g) < double(eps)) return false;
    float e = 0.f;
    for (size_t i = 0; i < n; ++i) e += terms[i];
    return e > eps;
}

struct Params {
    float l_t, taut, theta, eps_scaled;
    int warps, inner, outer, median;
};

struct Scratch {
    Plane i1x, i1y, i1w, i1wx, i1wy, grad, rho, p11, p12, p21, p22, err;
    std::vector<float> zero, work;
    long iterations = 0;
};

// Dual update of row y from the forward gradient of the new u (rows y, y + 1; b == a on the last row).
inline void dual_one(float u1x, float u1y, float u2x, float u2y, float* q11, float* q12, float* q21,
                     float* q22, float taut) {
    const float g1 = float(std::sqrt(double(u1x) * u1x + double(u1y) * u1y));   // (float) hypot(double)
    const float g2 = float(std::sqrt(double(u2x) * u2x + double(u2y) * u2y));
    const float ng1 = 1.0f + taut * g1, ng2 = 1.0f + taut * g2;
    *q11 = (*q11 + taut * u1x) / ng1;
    *q12 = (*q12 + taut * u1y) / ng1;
    *q21 = (*q21 + taut * u2x) / ng2;
    *q22 = (*q22 + taut * u2y) / ng2;
}

#ifdef __AVX512F__
inline __m512 hypot16(__m512 a, __m512 b) {   // (float) sqrt((double) a^2 + (double) b^2), lane-wise
    const __m512d a0 = _mm512_cvtps_pd(_mm512_castps512_ps256(a));
    const __m512d a1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    const __m512d b0 = _mm512_cvtps_pd(_mm512_castps512_ps256(b));
    const __m512d b1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1)));
    const __m256 r0 = _mm512_cvtpd_ps(_mm512_sqrt_pd(_mm512_add_pd(_mm512_mul_pd(a0, a0), _mm512_mul_pd(b0, b0))));
    const __m256 r1 = _mm512_cvtpd_ps(_mm512_sqrt_pd(_mm512_add_pd(_mm512_mul_pd(a1, a1), _mm512_mul_pd(b1, b1))));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(r0)), _mm256_castps_pd(r1), 1));
}
#endif

// Dual update of row y from the forward gradient of the new u (rows y, y + 1; b == a on the last row,
// so that dy = 0 there; dx = 0 on the last column).
inline void dual_row(const float* __restrict a1, const float* __restrict b1, const float* __restrict a2,
                     const float* __restrict b2, float* __restrict q11, float* __restrict q12,
                     float* __restrict q21, float* __restrict q22, int w, float taut) {
    int x = 0;
#ifdef __AVX512F__
    const __m512 vt = _mm512_set1_ps(taut), one = _mm512_set1_ps(1.f);
    for (; x < w - 1; x += 16) {
        const __mmask16 m = tail_mask(w - 1 - x);
        const __m512 c1 = _mm512_maskz_loadu_ps(m, a1 + x), c2 = _mm512_maskz_loadu_ps(m, a2 + x);
        const __m512 u1x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a1 + x + 1), c1);
        const __m512 u2x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a2 + x + 1), c2);
        const __m512 u1y = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, b1 + x), c1);
        const __m512 u2y = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, b2 + x), c2);
        const __m512 ng1 = _mm512_add_ps(one, _mm512_mul_ps(vt, hypot16(u1x, u1y)));
        const __m512 ng2 = _mm512_add_ps(one, _mm512_mul_ps(vt, hypot16(u2x, u2y)));
        auto upd = [&](float* q, __m512 d, __m512 ng) {
            _mm512_mask_storeu_ps(q + x, m, _mm512_div_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, q + x), _mm512_mul_ps(vt, d)), ng));
        };
        upd(q11, u1x, ng1); upd(q12, u1y, ng1); upd(q21, u2x, ng2); upd(q22, u2y, ng2);
    }
    x = w - 1;
#endif
    for (; x < w - 1; ++x)
        dual_one(a1[x + 1] - a1[x], b1[x] - a1[x], a2[x + 1] - a2[x], b2[x] - a2[x], q11 + x, q12 + x, q21 + x, q22 + x, taut);
    dual_one(0.f, b1[x] - a1[x], 0.f, b2[x] - a2[x], q11 + x, q12 + x, q21 + x, q22 + x, taut);
}

// Thresholding (OpenCV's estimateV), u update (estimateU) and error term of one pixel.
inline void u_one(float ix, float iy, float g, float rc, float div1, float div2, float* a1, float* a2, float* er,
                  float l_t, float theta) {
    const float feps = std::numeric_limits<float>::epsilon();
    const float uk1 = *a1, uk2 = *a2;
    const float rho = rc + (ix * uk1 + iy * uk2);
    float d1 = 0.f, d2 = 0.f;
    if (rho < -l_t * g) { d1 = l_t * ix; d2 = l_t * iy; }
    else if (rho > l_t * g) { d1 = -l_t * ix; d2 = -l_t * iy; }
    else if (g > feps) { const float fi = -rho / g; d1 = fi * ix; d2 = fi * iy; }
    const float n1 = (uk1 + d1) + theta * div1, n2 = (uk2 + d2) + theta * div2;
    *a1 = n1; *a2 = n2;
    *er = (n1 - uk1) * (n1 - uk1) + (n2 - uk2) * (n2 - uk2);
}

// Row y of one inner iteration: column 0 takes OpenCV's first-column divergence v1 + v2 - v2_up, the other
// columns (v1 - v1_left) + (v2 - v2_up) (q12u, q22u: the row above, zeros on row 0).
inline void u_row(const float* __restrict ix, const float* __restrict iy, const float* __restrict gr,
                  const float* __restrict rc, const float* __restrict q11, const float* __restrict q12,
                  const float* __restrict q21, const float* __restrict q22, const float* __restrict q12u,
                  const float* __restrict q22u, float* __restrict a1, float* __restrict a2,
                  float* __restrict er, int w, float l_t, float theta) {
    u_one(ix[0], iy[0], gr[0], rc[0], (q11[0] + q12[0]) - q12u[0], (q21[0] + q22[0]) - q22u[0], a1, a2, er, l_t, theta);
    int x = 1;
#ifdef __AVX512F__
    const __m512 vlt = _mm512_set1_ps(l_t), vnlt = _mm512_set1_ps(-l_t), vth = _mm512_set1_ps(theta);
    const __m512 veps = _mm512_set1_ps(std::numeric_limits<float>::epsilon()), one = _mm512_set1_ps(1.f);
    const __m512 sign = _mm512_set1_ps(-0.f);
    for (; x < w; x += 16) {
        const __mmask16 m = tail_mask(w - x);
        auto L = [&](const float* p) { return _mm512_maskz_loadu_ps(m, p + x); };
        const __m512 div1 = _mm512_add_ps(_mm512_sub_ps(L(q11), L(q11 - 1)), _mm512_sub_ps(L(q12), L(q12u)));
        const __m512 div2 = _mm512_add_ps(_mm512_sub_ps(L(q21), L(q21 - 1)), _mm512_sub_ps(L(q22), L(q22u)));
        const __m512 uk1 = L(a1), uk2 = L(a2), vx = L(ix), vy = L(iy), g = L(gr);
        const __m512 rho = _mm512_add_ps(L(rc), _mm512_add_ps(_mm512_mul_ps(vx, uk1), _mm512_mul_ps(vy, uk2)));
        const __m512 lg = _mm512_mul_ps(vlt, g), nlg = _mm512_mul_ps(vnlt, g);
        const __mmask16 gpos = _mm512_cmp_ps_mask(g, veps, _CMP_GT_OQ);
        const __mmask16 below = _mm512_cmp_ps_mask(rho, nlg, _CMP_LT_OQ);
        const __mmask16 above = _mm512_cmp_ps_mask(rho, lg, _CMP_GT_OQ);
        const __m512 fi = _mm512_div_ps(_mm512_xor_ps(rho, sign), _mm512_mask_blend_ps(gpos, one, g));
        __m512 d1 = _mm512_maskz_mul_ps(gpos, fi, vx), d2 = _mm512_maskz_mul_ps(gpos, fi, vy);
        d1 = _mm512_mask_mul_ps(d1, above, vnlt, vx); d2 = _mm512_mask_mul_ps(d2, above, vnlt, vy);
        d1 = _mm512_mask_mul_ps(d1, below, vlt, vx); d2 = _mm512_mask_mul_ps(d2, below, vlt, vy);
        const __m512 n1 = _mm512_add_ps(_mm512_add_ps(uk1, d1), _mm512_mul_ps(vth, div1));
        const __m512 n2 = _mm512_add_ps(_mm512_add_ps(uk2, d2), _mm512_mul_ps(vth, div2));
        const __m512 e1 = _mm512_sub_ps(n1, uk1), e2 = _mm512_sub_ps(n2, uk2);
        _mm512_mask_storeu_ps(a1 + x, m, n1);
        _mm512_mask_storeu_ps(a2 + x, m, n2);
        _mm512_mask_storeu_ps(er + x, m, _mm512_add_ps(_mm512_mul_ps(e1, e1), _mm512_mul_ps(e2, e2)));
    }
#endif
    for (; x < w; ++x)
        u_one(ix[x], iy[x], gr[x], rc[x], (q11[x] - q11[x - 1]) + (q12[x] - q12u[x]),
              (q21[x] - q21[x - 1]) + (q22[x] - q22u[x]), a1 + x, a2 + x, er + x, l_t, theta);
}

inline double row_sum(const float* __restrict er, int w) {   // double sum (any order) of a row's terms
    int x = 0;
    double t = 0;
#ifdef __AVX512F__
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    for (; x + 16 <= w; x += 16) {
        acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm256_loadu_ps(er + x)));
        acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm256_loadu_ps(er + x + 8)));
    }
    t = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
#endif
    for (; x < w; ++x) t += er[x];
    return t;
}

// One inner iteration, fused row by row (u of row y, then the dual variables of row y - 1): returns the
// double sum of the error terms (stored in s.err).
double inner_iteration(Plane& u1, Plane& u2, Scratch& s, const Params& P) {
    const int h = u1.h, w = u1.w;
    double total = 0.0;
    for (int y = 0; y <= h; ++y) {
        if (y < h) {
            u_row(s.i1wx.row(y), s.i1wy.row(y), s.grad.row(y), s.rho.row(y), s.p11.row(y), s.p12.row(y),
                  s.p21.row(y), s.p22.row(y), y ? s.p12.row(y - 1) : s.zero.data(),
                  y ? s.p22.row(y - 1) : s.zero.data(), u1.row(y), u2.row(y), s.err.row(y), w, P.l_t, P.theta);
            total += row_sum(s.err.row(y), w);
        }
        if (y) {
            const int r = y - 1, rn = y < h ? y : r;
            dual_row(u1.row(r), u1.row(rn), u2.row(r), u2.row(rn), s.p11.row(r), s.p12.row(r), s.p21.row(r),
                     s.p22.row(r), w, P.taut);
        }
    }
    return total;
}

void one_scale(const Plane& i0, const Plane& i1, Plane& u1, Plane& u2, Scratch& s, const Params& P) {
    const int h = i0.h, w = i0.w;
    for (Plane* p : {&s.i1x, &s.i1y, &s.i1w, &s.i1wx, &s.i1wy, &s.grad, &s.rho, &s.p11, &s.p12, &s.p21, &s.p22, &s.err})
        p->create(h, w);
    s.zero.assign(w, 0.f);
    centred_gradient(i1, s.i1x, s.i1y);
    const size_t n = size_t(h) * w;
    for (int warp = 0; warp < P.warps; ++warp) {
        const float* srcs[3] = {i1.d.data(), s.i1x.d.data(), s.i1y.d.data()};
        float* dsts[3] = {s.i1w.d.data(), s.i1wx.d.data(), s.i1wy.d.data()};
        remap_cubic(srcs, dsts, 3, h, w, u1.d.data(), u2.d.data());
        for (size_t o = 0; o < n; ++o) {
            const float ix = s.i1wx.d[o], iy = s.i1wy.d[o];
            s.grad.d[o] = ix * ix + iy * iy;
            s.rho.d[o] = s.i1w.d[o] - ix * u1.d[o] - iy * u2.d[o] - i0.d[o];
        }
        bool above = true;   // error > scaledEpsilon (error starts at FLT_MAX)
        for (int o = 0; above && o < P.outer; ++o) {
            if (P.median > 1) { median5(u1, s.work); median5(u2, s.work); }
            for (int it = 0; above && it < P.inner; ++it) {
                const double sd = inner_iteration(u1, u2, s, P);
                above = error_above(s.err.d.data(), n, sd, P.eps_scaled);
                ++s.iterations;
            }
        }
    }
}

}  // namespace

extern "C" {

// Flow from grey frame i0 to i1 (h x w uint8, row-major) -> flow (h, w, 2) float32 (x, y) in pixels.
// Parameters as OpenCV's DualTVL1OpticalFlow (gamma 0, no initial flow; median must be 1 or 5); ipp_resize:
// resize as OpenCV's IPP build does (else as its generic code).
// Returns the number of inner iterations run (all scales and warps), or -1 on bad arguments.
long tvl1_flow(const uint8_t* i0, const uint8_t* i1, int h, int w, float* flow, double tau, double lambda,
               double theta, int nscales, int warps, double epsilon, int inner, int outer, double scale_step,
               int median, int ipp_resize) {
    auto resize = ipp_resize ? resize_linear_ipp : resize_linear;
    if (h < 3 || w < 3 || nscales < 1 || (median != 5 && median > 1)) return -1;
    std::vector<Plane> I0(1), I1(1), U1(1), U2(1);
    I0[0].create(h, w); I1[0].create(h, w);
    for (size_t o = 0; o < size_t(h) * w; ++o) { I0[0].d[o] = i0[o]; I1[0].d[o] = i1[o]; }
    for (int s = 1; s < nscales; ++s) {
        const Plane& a = I0.back();
        const int dw = int(std::nearbyint(a.w * scale_step)), dh = int(std::nearbyint(a.h * scale_step));
        if (dw < 16 || dh < 16) break;   // OpenCV computes the level, then stops before using it
        Plane b0, b1;
        b0.create(dh, dw); b1.create(dh, dw);
        resize(a.d.data(), a.h, a.w, b0.d.data(), dh, dw, scale_step, scale_step);
        resize(I1.back().d.data(), a.h, a.w, b1.d.data(), dh, dw, scale_step, scale_step);
        I0.push_back(std::move(b0)); I1.push_back(std::move(b1));
    }
    const int levels = int(I0.size());
    U1.resize(levels); U2.resize(levels);
    U1[levels - 1].create(I0[levels - 1].h, I0[levels - 1].w);
    U2[levels - 1].create(I0[levels - 1].h, I0[levels - 1].w);
    Params P;
    P.l_t = float(lambda * theta); P.taut = float(tau / theta); P.theta = float(theta);
    P.warps = warps; P.inner = inner; P.outer = outer; P.median = median;
    Scratch sc;
    for (int s = levels - 1; s >= 0; --s) {
        P.eps_scaled = float(epsilon * epsilon * double(I0[s].h) * I0[s].w);
        one_scale(I0[s], I1[s], U1[s], U2[s], sc, P);
        if (s == 0) break;
        const int dh = I0[s - 1].h, dw = I0[s - 1].w;
        const float k = float(1 / scale_step);   // multiply(u, Scalar(1 / scaleStep)) in float
        U1[s - 1].create(dh, dw); U2[s - 1].create(dh, dw);
        const double ix = double(dw) / U1[s].w, iy = double(dh) / U1[s].h;
        resize(U1[s].d.data(), U1[s].h, U1[s].w, U1[s - 1].d.data(), dh, dw, ix, iy);
        resize(U2[s].d.data(), U2[s].h, U2[s].w, U2[s - 1].d.data(), dh, dw, ix, iy);
        for (float& v : U1[s - 1].d) v *= k;
        for (float& v : U2[s - 1].d) v *= k;
    }
    for (size_t o = 0; o < size_t(h) * w; ++o) { flow[2 * o] = U1[0].d[o]; flow[2 * o + 1] = U2[0].d[o]; }
    return sc.iterations;
}

// The building blocks, for the tests against cv2: resize INTER_LINEAR, remap INTER_CUBIC, medianBlur 5.
void tvl1_resize(const float* src, int sh, int sw, float* dst, int dh, int dw, double inv_sx, double inv_sy,
                 int ipp) {
    (ipp ? resize_linear_ipp : resize_linear)(src, sh, sw, dst, dh, dw, inv_sx, inv_sy);
}
void tvl1_remap(const float* src, float* dst, int h, int w, const float* u1, const float* u2) {
    remap_cubic(&src, &dst, 1, h, w, u1, u2);
}
void tvl1_median5(float* u, int h, int w) {
    Plane p;
    p.h = h; p.w = w; p.d.assign(u, u + size_t(h) * w);
    std::vector<float> work;
    median5(p, work);
    std::memcpy(u, p.d.data(), sizeof(float) * size_t(h) * w);
}

}  // extern "C"
