// Small inline math the compiler can vectorise: a Cephes-style expf (about 1 ulp, exact 0 below
// -87.3 so masked -inf scores give 0) and multi-lane dot/sum helpers (independent accumulators,
// since without -ffast-math a single running sum stays scalar).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace tk {

// e^r on |r| <= ln2 / 2 (Cephes expf's polynomial), shared by fast_exp and exp_vec
inline float exp_poly(float r) {
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.f;
}

inline float fast_exp(float x) {
  const bool under = x < -87.33654f;
  float xc = x > 88.37626f ? 88.37626f : (under ? 0.f : x);
  float t = xc * 1.44269504088896341f;
  int n = (int)(t + (t >= 0.f ? 0.5f : -0.5f));
  float fn = (float)n;
  float r = xc - fn * 0.693359375f + fn * 2.12194440e-4f;
  float y = exp_poly(r);
  int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  y *= scale;
  y = under ? 0.f : y;
  return x != x ? x : y;
}

inline float dot_lanes(const float* a, const float* b, long n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

inline double sum_lanes(const float* a, long n) {
  double acc[4] = {0, 0, 0, 0};
  long i = 0;
  for (; i + 4 <= n; i += 4)
    for (int l = 0; l < 4; l++) acc[l] += a[i + l];
  double s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
  for (; i < n; i++) s += a[i];
  return s;
}

// expf for loops the compiler should vectorise (act_kernels.inc): no branches, only selects
// and a magic-number round. x is clamped to [-87.3, 88.3] (so far below, ~1e-38 rather than 0);
// NaN stays NaN. Same polynomial as fast_exp (about 1 ulp).
inline float exp_vec(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  float fn = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
  float y = exp_poly(r);
  int32_t bits = ((int32_t)fn + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

// GELU, tanh form (GPT-2's gelu_new): 0.5 v (1 + tanh(u)) = v / (1 + exp(-2u)),
// u = sqrt(2/pi) (v + 0.044715 v^3).
inline float gelu_tanh_vec(float v) {
  float u = 0.79788456080286536f * (v + 0.044715f * v * v * v);
  return v / (1.f + exp_vec(-2.f * u));
}

// erf by Abramowitz-Stegun 7.1.26 (absolute error <= 1.5e-7 in exact arithmetic, about 5e-7 in
// float32: below float32's resolution of 1 + erf, which is what GELU uses).
inline float erf_vec(float x) {
  float a = std::fabs(x);
  float t = 1.f / (1.f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  return std::copysign(1.f - p * t * exp_vec(-a * a), x);
}

// GELU, erf form: 0.5 v (1 + erf(v / sqrt 2)).
inline float gelu_erf_vec(float v) { return 0.5f * v * (1.f + erf_vec(v * 0.70710678118654752f)); }
}  // namespace tk
