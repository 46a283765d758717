// Batch norm over x (N, C, S) (NCHW with S = H*W; (N, C) is S = 1), forward and backward, threaded
// over channels. Per channel: one statistics pass (shifted sums in double lanes), one normalise
// pass; backward: one pass for sum(dy), sum(dy * xhat), one pass for dx.
#include <algorithm>
#include <cmath>

#if defined(__SSE2__)
#include <emmintrin.h>
#else
// 4-float stand-ins for the few SSE intrinsics used here (non-x86 builds)
struct __m128 {
  float v[4];
};
#define TK_M128_OP(name, expr)                           \
  inline __m128 name(__m128 a, __m128 b) {               \
    __m128 r;                                            \
    for (int l = 0; l < 4; l++) r.v[l] = a.v[l] expr b.v[l]; \
    return r;                                            \
  }
TK_M128_OP(_mm_add_ps, +)
TK_M128_OP(_mm_sub_ps, -)
TK_M128_OP(_mm_mul_ps, *)
inline __m128 _mm_set1_ps(float f) { return {{f, f, f, f}}; }
inline __m128 _mm_setzero_ps() { return _mm_set1_ps(0.f); }
inline __m128 _mm_loadu_ps(const float* p) { return {{p[0], p[1], p[2], p[3]}}; }
inline void _mm_storeu_ps(float* p, __m128 a) {
  for (int l = 0; l < 4; l++) p[l] = a.v[l];
}
#endif

#include "common.h"
#include "kernels.h"

namespace tk {

namespace {

// Sums of n floats, accumulated in float SIMD lanes over blocks of kBlock elements (64 terms per
// lane: relative error below 64 ulp even when every term has one sign) and in double across blocks.
constexpr long kBlock = 512;

inline double hsum(__m128 v) {
  float f[4];
  _mm_storeu_ps(f, v);
  return ((double)f[0] + f[1]) + ((double)f[2] + f[3]);
}

// s1 += sum(x - k), s2 += sum((x - k)^2)
inline void shifted_sums(const float* x, long n, float k, double& s1, double& s2) {
  long i = 0;
  const __m128 vk = _mm_set1_ps(k), z = _mm_setzero_ps();
  while (i + 8 <= n) {
    const long e = std::min(n, i + kBlock);
    __m128 a0 = z, a1 = z, q0 = z, q1 = z;
    for (; i + 8 <= e; i += 8) {
      __m128 d0 = _mm_sub_ps(_mm_loadu_ps(x + i), vk), d1 = _mm_sub_ps(_mm_loadu_ps(x + i + 4), vk);
      a0 = _mm_add_ps(a0, d0), a1 = _mm_add_ps(a1, d1);
      q0 = _mm_add_ps(q0, _mm_mul_ps(d0, d0)), q1 = _mm_add_ps(q1, _mm_mul_ps(d1, d1));
    }
    s1 += hsum(_mm_add_ps(a0, a1));
    s2 += hsum(_mm_add_ps(q0, q1));
  }
  for (; i < n; i++) {
    double d = (double)(x[i] - k);
    s1 += d;
    s2 += d * d;
  }
}

// sg += sum(g), sgx += sum(g * (x - mu))
inline void grad_sums(const float* g, const float* x, long n, float mu, double& sg, double& sgx) {
  long i = 0;
  const __m128 vm = _mm_set1_ps(mu), z = _mm_setzero_ps();
  while (i + 8 <= n) {
    const long e = std::min(n, i + kBlock);
    __m128 a0 = z, a1 = z, q0 = z, q1 = z;
    for (; i + 8 <= e; i += 8) {
      __m128 g0 = _mm_loadu_ps(g + i), g1 = _mm_loadu_ps(g + i + 4);
      a0 = _mm_add_ps(a0, g0), a1 = _mm_add_ps(a1, g1);
      q0 = _mm_add_ps(q0, _mm_mul_ps(g0, _mm_sub_ps(_mm_loadu_ps(x + i), vm)));
      q1 = _mm_add_ps(q1, _mm_mul_ps(g1, _mm_sub_ps(_mm_loadu_ps(x + i + 4), vm)));
    }
    sg += hsum(_mm_add_ps(a0, a1));
    sgx += hsum(_mm_add_ps(q0, q1));
  }
  for (; i < n; i++) {
    sg += g[i];
    sgx += (double)g[i] * (double)(x[i] - mu);
  }
}

}  // namespace

void batchnorm_forward(long N, long C, long S, const float* x, const float* w, const float* b, float eps,
                       bool training, float* out, float* mean, float* var, float* rstd) {
  const long n = N * S;
  parallel_for(C, [&](long c, int) {
    if (training) {
      const float k = n > 0 ? x[c * S] : 0.f;
      double s1 = 0, s2 = 0;
      for (long i = 0; i < N; i++) shifted_sums(x + (i * C + c) * S, S, k, s1, s2);
      double m = n > 0 ? s1 / n : 0.0;
      double v = n > 0 ? s2 / n - m * m : 0.0;
      if (v < 0) v = 0;
      mean[c] = (float)((double)k + m);
      if (var) var[c] = (float)v;
      rstd[c] = (float)(1.0 / std::sqrt(v + (double)eps));
    }
    const float mu = mean[c], rs = rstd[c];
    const float a = w ? rs * w[c] : rs, bb = b ? b[c] : 0.f;
    for (long i = 0; i < N; i++) {
      const float* xp = x + (i * C + c) * S;
      float* op = out + (i * C + c) * S;
      for (long j = 0; j < S; j++) op[j] = (xp[j] - mu) * a + bb;
    }
  });
}

void batchnorm_backward(long N, long C, long S, const float* x, const float* w, const float* mean, const float* rstd,
                        const float* dy, bool training, float* dx, float* dw, float* db) {
  const long n = N * S;
  parallel_for(C, [&](long c, int) {
    const float mu = mean[c], rs = rstd[c];
    double sg = 0, sgx = 0;
    if (training || dw || db)
      for (long i = 0; i < N; i++) grad_sums(dy + (i * C + c) * S, x + (i * C + c) * S, S, mu, sg, sgx);
    sgx *= rs;  // sum(dy * xhat)
    if (dw) dw[c] = (float)sgx;
    if (db) db[c] = (float)sg;
    if (!dx) return;
    const float k = w ? rs * w[c] : rs;
    if (!training || n == 0) {
      for (long i = 0; i < N; i++) {
        const float* g = dy + (i * C + c) * S;
        float* d = dx + (i * C + c) * S;
        for (long j = 0; j < S; j++) d[j] = k * g[j];
      }
      return;
    }
    // dx = k * (dy - mean(dy) - xhat * mean(dy * xhat)) = k*dy + bx*(x - mu) + c0
    const float bx = (float)(-(double)k * rs * (sgx / n)), c0 = (float)(-(double)k * (sg / n));
    for (long i = 0; i < N; i++) {
      const float* g = dy + (i * C + c) * S;
      const float* xp = x + (i * C + c) * S;
      float* d = dx + (i * C + c) * S;
      for (long j = 0; j < S; j++) d[j] = k * g[j] + bx * (xp[j] - mu) + c0;
    }
  });
}

}  // namespace tk
