// Elementwise kernels over strided float32 views (stride 0 = broadcast): unary, binary, where,
// copy. Dims are coalesced first; rows of the innermost dim are split among the threads, with a
// straight loop when every operand is contiguous along it.
#include <algorithm>
#include <cmath>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common.h"
#include "kernels.h"

namespace tk {

// Coalesces dims of an nd view with `nop` operands (strides[op][d]); returns the new nd.
int coalesce(int nd, long* shape, long (*strides)[kMaxDims], int nop) {
  int k = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;
    if (k > 0) {
      bool ok = true;
      for (int o = 0; o < nop; o++)
        if (strides[o][k - 1] != strides[o][d] * shape[d]) ok = false;
      if (ok) {
        shape[k - 1] *= shape[d];
        for (int o = 0; o < nop; o++) strides[o][k - 1] = strides[o][d];
        continue;
      }
    }
    shape[k] = shape[d];
    for (int o = 0; o < nop; o++) strides[o][k] = strides[o][d];
    k++;
  }
  if (k == 0) {
    shape[0] = 1;
    for (int o = 0; o < nop; o++) strides[o][0] = 0;
    k = 1;
  }
  return k;
}

namespace {
// Runs f(offsets[nop], n, inner strides[nop]) over every row of the coalesced iteration space.
template <int NOP, class F>
void for_rows(int nd, const long* shape, long (*st)[kMaxDims], F&& f) {
  long L = shape[nd - 1], rows = 1;
  for (int d = 0; d < nd - 1; d++) rows *= shape[d];
  long inner[NOP];
  for (int o = 0; o < NOP; o++) inner[o] = st[o][nd - 1];
  long per = std::max(1L, 32768 / std::max(1L, L));
  long nt = (rows + per - 1) / per;
  auto body = [&](long t, int) {
    long r0 = t * per, r1 = std::min(rows, r0 + per);
    for (long r = r0; r < r1; r++) {
      long off[NOP] = {};
      long rem = r;
      for (int d = nd - 2; d >= 0; d--) {
        long i = rem % shape[d];
        rem /= shape[d];
        for (int o = 0; o < NOP; o++) off[o] += i * st[o][d];
      }
      f(off, L, inner);
    }
  };
  if (rows * L < 65536)
    for (long t = 0; t < nt; t++) body(t, 0);
  else
    parallel_for(nt, body);
}

inline float unary1(int op, float x) {
  switch (op) {
    case 0: return -x;
    case 1: return std::fabs(x);
    case 2: return std::exp(x);
    case 3: return std::log(x);
    case 4: return std::sqrt(x);
    case 5: return 1.f / std::sqrt(x);
    case 6: return 1.f / x;
    case 7: return std::sin(x);
    case 8: return std::cos(x);
    case 9: return std::tanh(x);
    case 10: return 1.f / (1.f + std::exp(-x));
    case 11: return x > 0.f ? x : 0.f;
    case 12: return x > 0.f ? 1.f : x < 0.f ? -1.f : x;
    case 13: return std::erf(x);
    case 14: return std::floor(x);
    case 15: return x == 0.f ? 1.f : 0.f;
  }
  return x;
}

template <int OP>
inline float binary1(float a, float b) {
  if constexpr (OP == 0) return a + b;
  if constexpr (OP == 1) return a - b;
  if constexpr (OP == 2) return a * b;
  if constexpr (OP == 3) return a / b;
  if constexpr (OP == 4) return std::pow(a, b);
  if constexpr (OP == 5) return (a != a || b != b) ? a + b : std::max(a, b);
  if constexpr (OP == 6) return (a != a || b != b) ? a + b : std::min(a, b);
  return 0.f;
}
template <int OP>
inline uint8_t compare1(float a, float b) {
  if constexpr (OP == 7) return a == b;
  if constexpr (OP == 8) return a != b;
  if constexpr (OP == 9) return a < b;
  if constexpr (OP == 10) return a <= b;
  if constexpr (OP == 11) return a > b;
  return a >= b;
}

template <int OP>
void binary_op(int nd, long* shape, long (*st)[kMaxDims], const float* a, const float* b, void* outp) {
  for_rows<3>(nd, shape, st, [&](const long* off, long n, const long* s) {
    const float* pa = a + off[0];
    const float* pb = b + off[1];
    if constexpr (OP <= 6) {
      float* po = (float*)outp + off[2];
      if (s[0] == 1 && s[1] == 1 && s[2] == 1)
        for (long i = 0; i < n; i++) po[i] = binary1<OP>(pa[i], pb[i]);
      else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {
        float bv = pb[0];
        for (long i = 0; i < n; i++) po[i] = binary1<OP>(pa[i], bv);
      } else if (s[0] == 0 && s[1] == 1 && s[2] == 1) {
        float av = pa[0];
        for (long i = 0; i < n; i++) po[i] = binary1<OP>(av, pb[i]);
      } else
        for (long i = 0; i < n; i++) po[i * s[2]] = binary1<OP>(pa[i * s[0]], pb[i * s[1]]);
    } else {
      uint8_t* po = (uint8_t*)outp + off[2];
      for (long i = 0; i < n; i++) po[i * s[2]] = compare1<OP>(pa[i * s[0]], pb[i * s[1]]);
    }
  });
}
}  // namespace

void unary_strided(int op, int nd, long* shape, long (*st)[kMaxDims], const float* x, float* out) {
  nd = coalesce(nd, shape, st, 2);
  for_rows<2>(nd, shape, st, [&](const long* off, long n, const long* s) {
    const float* px = x + off[0];
    float* po = out + off[1];
    if (s[0] == 1 && s[1] == 1) {
      switch (op) {  // the cheap ones as straight loops the compiler vectorises
        case 0: for (long i = 0; i < n; i++) po[i] = -px[i]; return;
        case 1: for (long i = 0; i < n; i++) po[i] = std::fabs(px[i]); return;
        case 4: for (long i = 0; i < n; i++) po[i] = std::sqrt(px[i]); return;
        case 6: for (long i = 0; i < n; i++) po[i] = 1.f / px[i]; return;
        case 11: for (long i = 0; i < n; i++) po[i] = px[i] > 0.f ? px[i] : 0.f; return;
        default: for (long i = 0; i < n; i++) po[i] = unary1(op, px[i]); return;
      }
    }
    for (long i = 0; i < n; i++) po[i * s[1]] = unary1(op, px[i * s[0]]);
  });
}

void binary_strided(int op, int nd, long* shape, long (*st)[kMaxDims], const float* a, const float* b, void* out) {
  nd = coalesce(nd, shape, st, 3);
  switch (op) {
    case 0: return binary_op<0>(nd, shape, st, a, b, out);
    case 1: return binary_op<1>(nd, shape, st, a, b, out);
    case 2: return binary_op<2>(nd, shape, st, a, b, out);
    case 3: return binary_op<3>(nd, shape, st, a, b, out);
    case 4: return binary_op<4>(nd, shape, st, a, b, out);
    case 5: return binary_op<5>(nd, shape, st, a, b, out);
    case 6: return binary_op<6>(nd, shape, st, a, b, out);
    case 7: return binary_op<7>(nd, shape, st, a, b, out);
    case 8: return binary_op<8>(nd, shape, st, a, b, out);
    case 9: return binary_op<9>(nd, shape, st, a, b, out);
    case 10: return binary_op<10>(nd, shape, st, a, b, out);
    case 11: return binary_op<11>(nd, shape, st, a, b, out);
    case 12: return binary_op<12>(nd, shape, st, a, b, out);
  }
}

void where_strided(int nd, long* shape, long (*st)[kMaxDims], const uint8_t* c, const float* a, const float* b,
                   float* out) {
  nd = coalesce(nd, shape, st, 4);
  for_rows<4>(nd, shape, st, [&](const long* off, long n, const long* s) {
    const uint8_t* pc = c + off[0];
    const float* pa = a + off[1];
    const float* pb = b + off[2];
    float* po = out + off[3];
    for (long i = 0; i < n; i++) po[i * s[3]] = pc[i * s[0]] ? pa[i * s[1]] : pb[i * s[2]];
  });
}

void copy_strided(int nd, long* shape, long (*st)[kMaxDims], const float* x, float* out) {
  nd = coalesce(nd, shape, st, 2);
  for_rows<2>(nd, shape, st, [&](const long* off, long n, const long* s) {
    if (s[0] == 1 && s[1] == 1)
      std::memcpy(out + off[1], x + off[0], sizeof(float) * n);
    else
      for (long i = 0; i < n; i++) out[off[1] + i * s[1]] = x[off[0] + i * s[0]];
  });
}

// clamp into [lo, hi] (NaN stays NaN); contiguous, split into chunks among the threads
void clamp_forward(long n, const float* x, float lo, float hi, float* out) {
  const long chunk = 32768, nt = (n + chunk - 1) / chunk;
  parallel_for(nt, [&](long t, int) {
    const long e = std::min(n, (t + 1) * chunk);
    for (long i = t * chunk; i < e; i++) {
      float v = x[i];
      v = v < lo ? lo : v;
      out[i] = v > hi ? hi : v;
    }
  });
}

// dx = dy where x is inside the range: inclusive lo <= x <= hi (clamp), else lo < x < hi
// (hardtanh); NaN x passes dy. Only x is read: no mask is kept between forward and backward.
void clamp_backward(long n, const float* x, const float* dy, float lo, float hi, bool inclusive, float* dx) {
  const long chunk = 32768, nt = (n + chunk - 1) / chunk;
  parallel_for(nt, [&](long t, int) {
    const long s = t * chunk, e = std::min(n, (t + 1) * chunk);
    // branch-free (random signs would mispredict): dy AND an all-ones / all-zeros mask;
    // "not outside" comparisons, so a NaN x passes dy
    long i = s;
#if defined(__SSE2__)
    const __m128 vlo = _mm_set1_ps(lo), vhi = _mm_set1_ps(hi);
    if (inclusive)
      for (; i + 4 <= e; i += 4) {
        __m128 v = _mm_loadu_ps(x + i);
        __m128 m = _mm_and_ps(_mm_cmpnlt_ps(v, vlo), _mm_cmpngt_ps(v, vhi));
        _mm_storeu_ps(dx + i, _mm_and_ps(m, _mm_loadu_ps(dy + i)));
      }
    else
      for (; i + 4 <= e; i += 4) {
        __m128 v = _mm_loadu_ps(x + i);
        __m128 m = _mm_and_ps(_mm_cmpnle_ps(v, vlo), _mm_cmpnge_ps(v, vhi));
        _mm_storeu_ps(dx + i, _mm_and_ps(m, _mm_loadu_ps(dy + i)));
      }
#endif
    for (; i < e; i++) {
      bool pass = inclusive ? !(x[i] < lo) && !(x[i] > hi) : !(x[i] <= lo) && !(x[i] >= hi);
      dx[i] = pass ? dy[i] : 0.f;
    }
  });
}

}  // namespace tk
