// AdamW over every parameter in one call (PyTorch torch.optim.AdamW semantics, float32 math).
#include <algorithm>
#include <cmath>

#include "common.h"
#include "kernels.h"

namespace tk {

// params[i], grads[i], m[i], v[i] (len[i]) updated in place with lr[i], wd[i]
void adamw_step(long count, float* const* p, const float* const* g, float* const* m, float* const* v, const long* len,
                const double* lr, const double* wd, double beta1, double beta2, double eps, long step) {
  double bc1 = 1.0 - std::pow(beta1, (double)step), bc2 = 1.0 - std::pow(beta2, (double)step);
  float b1 = (float)beta1, b2 = (float)beta2, fe = (float)eps, bc2s = (float)std::sqrt(bc2);
  constexpr long CHUNK = 65536;
  // tasks: (param, chunk) pairs
  long total = 0;
  for (long i = 0; i < count; i++) total += (len[i] + CHUNK - 1) / CHUNK;
  long* idx = (long*)workspace(3, (size_t)(2 * total + 2) * 2);
  long t = 0;
  for (long i = 0; i < count; i++)
    for (long s = 0; s < len[i]; s += CHUNK) idx[2 * t] = i, idx[2 * t + 1] = s, t++;
  parallel_for(total, [&](long task, int) {
    long i = idx[2 * task], s = idx[2 * task + 1], e = std::min(len[i], s + CHUNK);
    float decay = (float)(1.0 - lr[i] * wd[i]), step_size = (float)(lr[i] / bc1);
    float *pp = p[i], *mm = m[i], *vv = v[i];
    const float* gg = g[i];
    for (long j = s; j < e; j++) {
      float gj = gg[j];
      float pj = pp[j] * decay;
      float mj = mm[j] + (gj - mm[j]) * (1.f - b1);
      float vj = vv[j] * b2 + (1.f - b2) * gj * gj;
      mm[j] = mj;
      vv[j] = vj;
      pp[j] = pj - step_size * mj / (std::sqrt(vj) / bc2s + fe);
    }
  });
}

}  // namespace tk
