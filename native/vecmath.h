// Small inline math the compiler can vectorise: a Cephes-style expf (about 1 ulp, exact 0 below
// -87.3 so masked -inf scores give 0) and multi-lane dot/sum helpers (independent accumulators,
// since without -ffast-math a single running sum stays scalar).
#pragma once
#include <cstdint>
#include <cstring>

namespace tk {

inline float fast_exp(float x) {
  const bool under = x < -87.33654f;
  float xc = x > 88.37626f ? 88.37626f : (under ? 0.f : x);
  float t = xc * 1.44269504088896341f;
  int n = (int)(t + (t >= 0.f ? 0.5f : -0.5f));
  float fn = (float)n;
  float r = xc - fn * 0.693359375f + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.f;
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

}  // namespace tk
