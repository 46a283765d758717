// GEMM with bf16/f16 operands (frozen LoRA bases kept in half precision): the half operand is
// widened to float32 inside the packing routines (gemm_half_kernels.inc), block by block, and
// the product runs on the f32 micro-kernels of gemm_kernels.inc with a float32 accumulate, so the
// result is the float32 GEMM of the widened operands. Same blocking and threading as gemm.cc.
#include <algorithm>
#include <cstring>

#include "common.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace tk {

namespace {
inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }
// Exact IEEE half -> float: subnormals normalised, inf and NaN (payload kept) carried over.
inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, m = h & 0x3ff;
  int e = (h >> 10) & 0x1f;
  if (e == 0x1f) return bits_to_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return bits_to_f32(sign);
    int sh = __builtin_clz(m) - 21;  // brings the leading 1 to bit 10
    m = (m << sh) & 0x3ff;
    e = 1 - sh;
  }
  return bits_to_f32(sign | ((uint32_t)(e + 112) << 23) | (m << 13));
}
// F16C (vcvtph2ps on ymm) for the AVX2 path; AVX-512F has its own zmm form.
bool has_f16c() {
#if defined(__x86_64__)
  static const bool yes = [] {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
  }();
  return yes;
#else
  return false;
#endif
}
}  // namespace

namespace hgemm_generic {
#define TK_LEVEL 0
#include "gemm_kernels.inc"
#include "gemm_half_kernels.inc"
#undef TK_LEVEL
}  // namespace hgemm_generic

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace hgemm_avx2 {
#define TK_LEVEL 1
#include "gemm_kernels.inc"
#include "gemm_half_kernels.inc"
#undef TK_LEVEL
}  // namespace hgemm_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")
namespace hgemm_avx512 {
#define TK_LEVEL 2
#include "gemm_kernels.inc"
#include "gemm_half_kernels.inc"
#undef TK_LEVEL
}  // namespace hgemm_avx512
#pragma GCC pop_options
#endif

namespace {
using SerialFn = void (*)(long, long, long, const void*, int, long, long, const void*, int, long, long, float*, long,
                          bool);
using GemvFn = void (*)(long, int, bool, long, const float*, long, long, const uint16_t*, long, long, float*, long,
                       bool, long, long);
struct HImpl {
  int mr, nr;
  long nc;
  SerialFn serial;
  GemvFn gemv;
};
HImpl himpl() {
#if defined(__x86_64__)
  if (isa() == Isa::avx512)
    return {hgemm_avx512::MR, hgemm_avx512::NR, hgemm_avx512::NC, hgemm_avx512::gemm_mixed_serial,
            hgemm_avx512::half_gemv_range};
  if (isa() == Isa::avx2)
    return {hgemm_avx2::MR, hgemm_avx2::NR, hgemm_avx2::NC, hgemm_avx2::gemm_mixed_serial,
            hgemm_avx2::half_gemv_range};
#endif
  return {hgemm_generic::MR, hgemm_generic::NR, hgemm_generic::NC, hgemm_generic::gemm_mixed_serial,
          hgemm_generic::half_gemv_range};
}

const void* at(const void* p, int dt, long off) {
  return dt == 0 ? (const void*)((const float*)p + off) : (const void*)((const uint16_t*)p + off);
}

// M <= 4, float32 A, half B with its rows (csb == 1) or its columns (rsb == 1, A rows contiguous)
// contiguous: B streamed once (see gemm_half_kernels.inc), threaded over column ranges of C as
// sgemv_small; false (nothing done) for any other layout.
bool gemv_mixed(const HImpl& im, long M, long N, long K, const float* A, long rsa, long csa, const uint16_t* B,
                int bdt, long rsb, long csb, float* C, long ldc, bool accumulate) {
  bool rows = csb == 1;
  if (!rows && !(rsb == 1 && csa == 1)) return false;
  int T = num_threads();
  long ntasks = T == 1 || 2.0 * M * N * K < 65536.0 ? 1 : std::min<long>(4L * T, (N + 63) / 64);
  if (ntasks <= 1) {
    im.gemv(M, bdt, rows, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, 0, N);
    return true;
  }
  long chunk = ((N + ntasks - 1) / ntasks + 15) / 16 * 16;
  ntasks = (N + chunk - 1) / chunk;
  parallel_for(ntasks, [&](long t, int) {
    long s = t * chunk, e = std::min(N, s + chunk);
    im.gemv(M, bdt, rows, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, s, e);
  });
  return true;
}
}  // namespace

// A (M,K) @ B (K,N), split among the threads as sgemm does (along M or N, whichever repacks less).
void gemm_mixed(long M, long N, long K, const void* A, int adt, long rsa, long csa, const void* B, int bdt, long rsb,
                long csb, float* C, long ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (long i = 0; i < M; i++) std::memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
  HImpl im = himpl();
  if (M <= 4 && adt == 0 && bdt != 0 &&
      gemv_mixed(im, M, N, K, (const float*)A, rsa, csa, (const uint16_t*)B, bdt, rsb, csb, C, ldc, accumulate))
    return;
  int T = num_threads();
  double flops = 2.0 * M * N * K;
  if (T == 1 || flops < 2.0 * 96 * 96 * 96) return im.serial(M, N, K, A, adt, rsa, csa, B, bdt, rsb, csb, C, ldc, accumulate);
  auto ceil_div = [](long a, long b) { return (a + b - 1) / b; };
  double costM = (double)T * K * N + (double)M * K * ceil_div(N, im.nc);
  double costN = (double)K * N + (double)T * M * K * ceil_div(ceil_div(N, T), im.nc);
  bool splitM = M >= (long)T * im.mr && (costM <= costN || N < (long)T * im.nr);
  if (!splitM && N < (long)T * im.nr) return im.serial(M, N, K, A, adt, rsa, csa, B, bdt, rsb, csb, C, ldc, accumulate);
  long unit = splitM ? im.mr : im.nr, len = splitM ? M : N;
  long chunk = ceil_div(ceil_div(len, unit), T) * unit;
  long ntasks = ceil_div(len, chunk);
  parallel_for(ntasks, [&](long t, int) {
    long s = t * chunk, e = std::min(len, s + chunk);
    if (splitM)
      im.serial(e - s, N, K, at(A, adt, s * rsa), adt, rsa, csa, B, bdt, rsb, csb, C + s * ldc, ldc, accumulate);
    else
      im.serial(M, e - s, K, A, adt, rsa, csa, at(B, bdt, s * csb), bdt, rsb, csb, C + s, ldc, accumulate);
  });
}

void gemm_mixed_batched(long nb, const long* aoff, const long* boff, const long* coff, long M, long N, long K,
                        const void* A, int adt, long rsa, long csa, const void* B, int bdt, long rsb, long csb,
                        float* C, long ldc, bool accumulate) {
  if (nb <= 0) return;
  double flops = 2.0 * M * N * K;
  int T = num_threads();
  if (nb == 1 || (nb < 4L * T && flops >= 2.0 * 256 * 256 * 256)) {
    for (long b = 0; b < nb; b++)
      gemm_mixed(M, N, K, at(A, adt, aoff[b]), adt, rsa, csa, at(B, bdt, boff[b]), bdt, rsb, csb, C + coff[b], ldc,
                 accumulate);
    return;
  }
  SerialFn serial = himpl().serial;
  parallel_for(nb, [&](long b, int) {
    if (M <= 0 || N <= 0) return;
    float* c = C + coff[b];
    if (K <= 0) {
      if (!accumulate)
        for (long i = 0; i < M; i++) std::memset(c + i * ldc, 0, sizeof(float) * N);
      return;
    }
    serial(M, N, K, at(A, adt, aoff[b]), adt, rsa, csa, at(B, bdt, boff[b]), bdt, rsb, csb, c, ldc, accumulate);
  });
}

}  // namespace tk
