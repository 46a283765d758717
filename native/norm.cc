// Layer norm / RMS norm (+ backward) and the gelu / gelu_tanh / silu activations (+ backward).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"
#include "kernels.h"
#include "vecmath.h"

namespace tk {

// x (R, C), weight (C) | null, bias (C) | null -> out (R, C), mean (R), rstd (R)
void norm_forward(long R, long C, const float* x, const float* w, const float* b, float eps, bool rms, float* out,
                  float* mean, float* rstd) {
  long rpt = std::max(1L, 8192 / std::max(1L, C)), nt = (R + rpt - 1) / rpt;
  parallel_for(nt, [&](long t, int) {
    for (long r = t * rpt; r < std::min(R, (t + 1) * rpt); r++) {
      const float* xr = x + r * C;
      float* o = out + r * C;
      double s = 0, ss = 0;
      for (long j = 0; j < C; j++) s += xr[j];
      float mu = rms ? 0.f : (float)(s / C);
      for (long j = 0; j < C; j++) {
        double d = xr[j] - mu;
        ss += d * d;
      }
      float rs = (float)(1.0 / std::sqrt(ss / C + eps));
      mean[r] = mu;
      rstd[r] = rs;
      for (long j = 0; j < C; j++) {
        float v = (xr[j] - mu) * rs;
        if (w) v *= w[j];
        if (b) v += b[j];
        o[j] = v;
      }
    }
  });
}

// dy (R, C) -> dx (R, C), dweight (C), dbias (C) (either may be null)
void norm_backward(long R, long C, const float* x, const float* w, const float* mean, const float* rstd,
                   const float* dy, bool rms, float* dx, float* dw, float* db) {
  int T = num_threads();
  long rpt = std::max(1L, (R + 4L * T - 1) / (4L * T)), nt = (R + rpt - 1) / rpt;
  // per-task partial sums for dweight/dbias, in double
  double* part = (double*)workspace(2, (size_t)nt * 2 * C * 2);
  parallel_for(nt, [&](long t, int) {
    double* pw = part + t * 2 * C;
    double* pb = pw + C;
    std::memset(pw, 0, sizeof(double) * 2 * C);
    for (long r = t * rpt; r < std::min(R, (t + 1) * rpt); r++) {
      const float* xr = x + r * C;
      const float* g = dy + r * C;
      float* d = dx + r * C;
      float mu = rms ? 0.f : mean[r], rs = rstd[r];
      double sg = 0, sgx = 0;
      for (long j = 0; j < C; j++) {
        float gw = w ? g[j] * w[j] : g[j];
        float xh = (xr[j] - mu) * rs;
        sg += gw;
        sgx += (double)gw * xh;
        pw[j] += (double)g[j] * xh;
        pb[j] += g[j];
      }
      float mg = rms ? 0.f : (float)(sg / C), mgx = (float)(sgx / C);
      for (long j = 0; j < C; j++) {
        float gw = w ? g[j] * w[j] : g[j];
        float xh = (xr[j] - mu) * rs;
        d[j] = rs * (gw - mg - xh * mgx);
      }
    }
  });
  if (dw || db) {
    for (long j = 0; j < C; j++) {
      double a = 0, c = 0;
      for (long t = 0; t < nt; t++) a += part[t * 2 * C + j], c += part[t * 2 * C + C + j];
      if (dw) dw[j] = (float)a;
      if (db) db[j] = (float)c;
    }
  }
}

namespace act_generic {
#include "act_kernels.inc"
}  // namespace act_generic
#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace act_avx2 {
#include "act_kernels.inc"
}  // namespace act_avx2
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")
namespace act_avx512 {
#include "act_kernels.inc"
}  // namespace act_avx512
#pragma GCC pop_options
#endif

namespace {
template <class F>
void for_chunks(long n, F&& f) {
  long chunk = 32768, nt = (n + chunk - 1) / chunk;
  parallel_for(nt, [&](long t, int) { f(t * chunk, std::min(n, (t + 1) * chunk)); });
}
}  // namespace

// kind 0 gelu (erf), 1 gelu_tanh, 2 silu: out = f(x)
void activation_forward(int kind, long n, const float* x, float* out) {
  for_chunks(n, [&](long s, long e) {
#if defined(__x86_64__)
    if (isa() == Isa::avx512) return act_avx512::act_forward(kind, s, e, x, out);
    if (isa() == Isa::avx2) return act_avx2::act_forward(kind, s, e, x, out);
#endif
    act_generic::act_forward(kind, s, e, x, out);
  });
}

// dx = dy * f'(x)
void activation_backward(int kind, long n, const float* x, const float* dy, float* dx) {
  for_chunks(n, [&](long s, long e) {
#if defined(__x86_64__)
    if (isa() == Isa::avx512) return act_avx512::act_backward(kind, s, e, x, dy, dx);
    if (isa() == Isa::avx2) return act_avx2::act_backward(kind, s, e, x, dy, dx);
#endif
    act_generic::act_backward(kind, s, e, x, dy, dx);
  });
}

}  // namespace tk
