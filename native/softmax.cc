// Row softmax / log-softmax (+ backward) and fused softmax-cross-entropy (+ backward).
#include <atomic>
#include <cmath>
#include <limits>

#include "common.h"
#include "kernels.h"
#include "vecmath.h"

namespace tk {

namespace {
constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

float row_max(const float* x, long C) {
  float m = NEG_INF;
  for (long j = 0; j < C; j++) m = x[j] > m ? x[j] : m;
  for (long j = 0; j < C; j++)
    if (std::isnan(x[j])) return x[j];
  return m;
}

// Rows per task so that each task has at least ~16K elements.
long rows_per_task(long R, long C) {
  long r = (16384 + C - 1) / (C > 0 ? C : 1);
  return r < 1 ? 1 : r > R ? (R > 0 ? R : 1) : r;
}

template <class F>
void for_rows(long R, long C, F&& f) {
  long rpt = rows_per_task(R, C), nt = (R + rpt - 1) / rpt;
  parallel_for(nt, [&](long t, int) {
    long e = (t + 1) * rpt < R ? (t + 1) * rpt : R;
    for (long r = t * rpt; r < e; r++) f(r);
  });
}
}  // namespace

// x (R, C) -> out (R, C) = softmax or log_softmax over C
void softmax_forward(long R, long C, const float* x, float* out, bool log) {
  for_rows(R, C, [&](long r) {
    const float* xr = x + r * C;
    float* o = out + r * C;
    float m = row_max(xr, C);
    if (m == NEG_INF) m = 0.f;  // all -inf: exp gives zeros, as in the composite
    for (long j = 0; j < C; j++) o[j] = fast_exp(xr[j] - m);
    float s = (float)sum_lanes(o, C);
    if (log) {
      float ls = m + std::log(s);
      for (long j = 0; j < C; j++) o[j] = xr[j] - ls;
    } else {
      float inv = 1.f / s;
      for (long j = 0; j < C; j++) o[j] *= inv;
    }
  });
}

// y (R, C), dy (R, C) -> dx (R, C)
void softmax_backward(long R, long C, const float* y, const float* dy, float* dx, bool log) {
  for_rows(R, C, [&](long r) {
    const float* yr = y + r * C;
    const float* g = dy + r * C;
    float* d = dx + r * C;
    float s = 0.f;
    if (log) {
      for (long j = 0; j < C; j++) s += g[j];
      for (long j = 0; j < C; j++) d[j] = g[j] - std::exp(yr[j]) * s;
    } else {
      for (long j = 0; j < C; j++) s += g[j] * yr[j];
      for (long j = 0; j < C; j++) d[j] = yr[j] * (g[j] - s);
    }
  });
}

// logits (N, C), target (N) -> loss (N), lse (N). Returns the first bad row or -1.
long cross_entropy_forward(long N, long C, const float* x, const int32_t* target, long ignore, float smoothing,
                           float* loss, float* lse) {
  std::atomic_long bad{-1};
  for_rows(N, C, [&](long r) {
    const float* xr = x + r * C;
    float m = row_max(xr, C);
    float mm = m == NEG_INF ? 0.f : m;
    // exp(x - max) summed in double, 256 at a time through a stack buffer
    double s = 0;
    float buf[256];
    for (long j0 = 0; j0 < C; j0 += 256) {
      long n = C - j0 < 256 ? C - j0 : 256;
      for (long j = 0; j < n; j++) buf[j] = fast_exp(xr[j0 + j] - mm);
      s += sum_lanes(buf, n);
    }
    float sx = (float)sum_lanes(xr, C);
    float l = mm + (float)std::log(s);
    lse[r] = l;
    long t = target[r];
    if (t == ignore) {
      loss[r] = 0.f;
      return;
    }
    if (t < 0 || t >= C) {
      long expected = -1;
      bad.compare_exchange_strong(expected, r);
      loss[r] = 0.f;
      return;
    }
    float nll = l - xr[t];
    loss[r] = smoothing > 0.f ? (1.f - smoothing) * nll + smoothing * (l - sx / (float)C) : nll;
  });
  return bad.load();
}

// dlogits (N, C) = dloss * (softmax - (1-eps) onehot - eps/C); zero rows where ignored
void cross_entropy_backward(long N, long C, const float* x, const int32_t* target, const float* lse, const float* dloss,
                            long ignore, float smoothing, float* dx) {
  for_rows(N, C, [&](long r) {
    const float* xr = x + r * C;
    float* d = dx + r * C;
    long t = target[r];
    if (t == ignore || t < 0 || t >= C) {
      for (long j = 0; j < C; j++) d[j] = 0.f;
      return;
    }
    float g = dloss[r], l = lse[r], u = smoothing / (float)C;
    for (long j = 0; j < C; j++) d[j] = g * (fast_exp(xr[j] - l) - u);
    d[t] -= g * (1.f - smoothing);
  });
}

}  // namespace tk
