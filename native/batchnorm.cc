// Batch norm over x (N, C, S) (NCHW with S = H*W; (N, C) is S = 1), forward and backward, threaded
// over channels. Per channel: one statistics pass (shifted sums in double lanes), one normalise
// pass; backward: one pass for sum(dy), sum(dy * xhat), one pass for dx.
#include <cmath>

#include "common.h"
#include "kernels.h"

namespace tk {

namespace {

// sum(x - k) and sum((x - k)^2) over n floats, in 8 double lanes (vectorisable without -ffast-math)
inline void shifted_sums(const float* x, long n, double k, double& s1, double& s2) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      double d = (double)x[i + l] - k;
      a[l] += d;
      q[l] += d * d;
    }
  double sa = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
  double sq = ((q[0] + q[4]) + (q[1] + q[5])) + ((q[2] + q[6]) + (q[3] + q[7]));
  for (; i < n; i++) {
    double d = (double)x[i] - k;
    sa += d;
    sq += d * d;
  }
  s1 += sa;
  s2 += sq;
}

// sum(g) and sum(g * (x - mu)) over n floats, in 8 double lanes
inline void grad_sums(const float* g, const float* x, long n, float mu, double& sg, double& sgx) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, q[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      double gv = g[i + l];
      a[l] += gv;
      q[l] += gv * (double)(x[i + l] - mu);
    }
  double sa = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
  double sq = ((q[0] + q[4]) + (q[1] + q[5])) + ((q[2] + q[6]) + (q[3] + q[7]));
  for (; i < n; i++) {
    sa += g[i];
    sq += (double)g[i] * (double)(x[i] - mu);
  }
  sg += sa;
  sgx += sq;
}

}  // namespace

void batchnorm_forward(long N, long C, long S, const float* x, const float* w, const float* b, float eps,
                       bool training, float* out, float* mean, float* var, float* rstd) {
  const long n = N * S;
  parallel_for(C, [&](long c, int) {
    if (training) {
      double k = n > 0 ? (double)x[c * S] : 0.0, s1 = 0, s2 = 0;
      for (long i = 0; i < N; i++) shifted_sums(x + (i * C + c) * S, S, k, s1, s2);
      double m = n > 0 ? s1 / n : 0.0;
      double v = n > 0 ? s2 / n - m * m : 0.0;
      if (v < 0) v = 0;
      mean[c] = (float)(k + m);
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
