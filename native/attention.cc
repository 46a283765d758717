// Scaled-dot-product attention, tiled flash-style: scores are produced one (BR x BC) tile at a
// time with the serial SGEMM, softmax is online (running max / sum), so memory beyond inputs and
// outputs is O(BR * BC) per thread. Causal masking with offset S-T, additive mask, GQA.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common.h"
#include "kernels.h"
#include "vecmath.h"

namespace tk {

namespace {
constexpr long BR = 64, BC = 128;
constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

struct Att {
  long B, H, Hkv, T, S, D;
  bool causal;
  float scale;
  long msb, msh, mst, mss;  // mask element strides over (b, h, t, s); 0 = broadcast
};
Att att(const int32_t* m, float scale) {
  return {m[0], m[1], m[2], m[3], m[4], m[5], m[6] != 0, scale, m[7], m[8], m[9], m[10]};
}

// Last key index (exclusive) any row in [i0, i0+rows) may see.
long key_limit(const Att& a, long i0, long rows) {
  if (!a.causal) return a.S;
  long lim = i0 + rows - 1 + (a.S - a.T) + 1;
  return std::max(0L, std::min(a.S, lim));
}

// s (rows, cols) raw scores -> scaled, masked scores in place
void mask_scores(const Att& a, const float* mask, long b, long h, long i0, long rows, long j0, long cols, float* s) {
  const float* mrow = mask ? mask + b * a.msb + h * a.msh + i0 * a.mst + j0 * a.mss : nullptr;
  for (long r = 0; r < rows; r++) {
    float* sr = s + r * BC;
    for (long c = 0; c < cols; c++) sr[c] *= a.scale;
    if (mrow && a.mss == 1)
      for (long c = 0; c < cols; c++) sr[c] += mrow[r * a.mst + c];
    else if (mrow)
      for (long c = 0; c < cols; c++) sr[c] += mrow[r * a.mst + c * a.mss];
    if (a.causal) {
      long lim = i0 + r + (a.S - a.T) - j0 + 1;  // keys c < lim allowed
      for (long c = std::max(0L, lim); c < cols; c++) sr[c] = NEG_INF;
    }
  }
}
}  // namespace

// q (B,H,T,D), k/v (B,Hkv,S,D), mask (B,MH,T,S) | null -> out (B,H,T,D), lse (B,H,T)
void attention_forward(const int32_t* meta, float scale, const float* q, const float* k, const float* v,
                       const float* mask, float* out, float* lse) {
  Att a = att(meta, scale);
  long nqb = (a.T + BR - 1) / BR, rep = a.H / a.Hkv;
  parallel_for(a.B * a.H * nqb, [&](long task, int) {
    long bh = task / nqb, i0 = (task % nqb) * BR, b = bh / a.H, h = bh % a.H;
    long rows = std::min(BR, a.T - i0);
    const float* qb = q + (bh * a.T + i0) * a.D;
    const float* kb = k + (b * a.Hkv + h / rep) * a.S * a.D;
    const float* vb = v + (b * a.Hkv + h / rep) * a.S * a.D;
    float* ob = out + (bh * a.T + i0) * a.D;
    float* s = scratch(2, BR * BC + 2 * BR);
    float* mx = s + BR * BC;
    float* sum = mx + BR;
    for (long r = 0; r < rows; r++) mx[r] = NEG_INF, sum[r] = 0.f;
    std::memset(ob, 0, sizeof(float) * rows * a.D);
    long lim = key_limit(a, i0, rows);
    for (long j0 = 0; j0 < lim; j0 += BC) {
      long cols = std::min(BC, lim - j0);
      sgemm_serial(rows, cols, a.D, qb, a.D, 1, kb + j0 * a.D, 1, a.D, s, BC, false);
      mask_scores(a, mask, b, h, i0, rows, j0, cols, s);
      for (long r = 0; r < rows; r++) {
        float* sr = s + r * BC;
        float m = mx[r];
        for (long c = 0; c < cols; c++) m = std::max(m, sr[c]);
        if (m == NEG_INF) {
          for (long c = 0; c < cols; c++) sr[c] = 0.f;
          continue;
        }
        float corr = std::exp(mx[r] - m), add = 0.f;
        for (long c = 0; c < cols; c++) sr[c] = fast_exp(sr[c] - m);
        for (long c = 0; c < cols; c++) add += sr[c];
        sum[r] = sum[r] * corr + add;
        mx[r] = m;
        if (corr != 1.f) {
          float* orow = ob + r * a.D;
          for (long d = 0; d < a.D; d++) orow[d] *= corr;
        }
      }
      sgemm_serial(rows, a.D, cols, s, BC, 1, vb + j0 * a.D, a.D, 1, ob, a.D, true);
    }
    float* lb = lse + bh * a.T + i0;
    for (long r = 0; r < rows; r++) {
      float inv = 1.f / sum[r];
      float* orow = ob + r * a.D;
      for (long d = 0; d < a.D; d++) orow[d] *= inv;
      lb[r] = mx[r] + std::log(sum[r]);
    }
  });
}

// Gradients; threaded over (batch, kv head) so dk/dv have a single writer.
void attention_backward(const int32_t* meta, float scale, const float* q, const float* k, const float* v,
                        const float* mask, const float* out, const float* lse, const float* dout, float* dq,
                        float* dk, float* dv) {
  Att a = att(meta, scale);
  long rep = a.H / a.Hkv;
  parallel_for(a.B * a.Hkv, [&](long task, int) {
    long b = task / a.Hkv, hk = task % a.Hkv;
    const float* kb = k + task * a.S * a.D;
    const float* vb = v + task * a.S * a.D;
    float* dkb = dk + task * a.S * a.D;
    float* dvb = dv + task * a.S * a.D;
    std::memset(dkb, 0, sizeof(float) * a.S * a.D);
    std::memset(dvb, 0, sizeof(float) * a.S * a.D);
    float* p = scratch(2, 2 * BR * BC + BR);
    float* dp = p + BR * BC;
    float* di = dp + BR * BC;
    for (long h = hk * rep; h < (hk + 1) * rep; h++) {
      long bh = b * a.H + h;
      for (long i0 = 0; i0 < a.T; i0 += BR) {
        long rows = std::min(BR, a.T - i0);
        const float* qb = q + (bh * a.T + i0) * a.D;
        const float* ob = out + (bh * a.T + i0) * a.D;
        const float* gb = dout + (bh * a.T + i0) * a.D;
        const float* lb = lse + bh * a.T + i0;
        float* dqb = dq + (bh * a.T + i0) * a.D;
        std::memset(dqb, 0, sizeof(float) * rows * a.D);
        for (long r = 0; r < rows; r++) {
          di[r] = dot_lanes(gb + r * a.D, ob + r * a.D, a.D);
        }
        long lim = key_limit(a, i0, rows);
        for (long j0 = 0; j0 < lim; j0 += BC) {
          long cols = std::min(BC, lim - j0);
          sgemm_serial(rows, cols, a.D, qb, a.D, 1, kb + j0 * a.D, 1, a.D, p, BC, false);
          mask_scores(a, mask, b, h, i0, rows, j0, cols, p);
          for (long r = 0; r < rows; r++) {
            float* pr = p + r * BC;
            float l = lb[r];
            if (l == NEG_INF || std::isnan(l))
              for (long c = 0; c < cols; c++) pr[c] = 0.f;
            else
              for (long c = 0; c < cols; c++) pr[c] = fast_exp(pr[c] - l);
          }
          // dv_j += p^T dout
          sgemm_serial(cols, a.D, rows, p, 1, BC, gb, a.D, 1, dvb + j0 * a.D, a.D, true);
          // dp = dout v_j^T
          sgemm_serial(rows, cols, a.D, gb, a.D, 1, vb + j0 * a.D, 1, a.D, dp, BC, false);
          for (long r = 0; r < rows; r++) {
            float* pr = p + r * BC;
            const float* dpr = dp + r * BC;
            for (long c = 0; c < cols; c++) pr[c] = pr[c] * (dpr[c] - di[r]) * a.scale;
          }
          // dq += ds k_j ; dk_j += ds^T q
          sgemm_serial(rows, a.D, cols, p, BC, 1, kb + j0 * a.D, a.D, 1, dqb, a.D, true);
          sgemm_serial(cols, a.D, rows, p, 1, BC, qb, a.D, 1, dkb + j0 * a.D, a.D, true);
        }
      }
    }
  });
}

}  // namespace tk
