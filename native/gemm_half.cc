// GEMM with bf16/f16 operands (frozen LoRA bases kept in half precision): the half operand is
// widened to float32 inside the packing routines (gemm_half_kernels.inc), block by block, and
// the product runs on the f32 micro-kernels of gemm_kernels.inc with a float32 accumulate, so the
// result is the float32 GEMM of the widened operands. Same blocking and threading as gemm.cc.
#include <algorithm>
#include <cstdlib>
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

// ---- Opt-in AVX512-BF16 path (TUNEKIT_BF16_DOT=1, CPUs with avx512_bf16 only) ----------------
// vdpbf16ps: two bf16 products per float32 lane and instruction, float32 accumulate, twice the
// arithmetic of the f32 FMA kernel. It needs A in bf16 too: float32 activations are rounded to
// bf16 (nearest even) while packing, which changes results by up to 2^-9 relative per element of
// A, so it is off unless asked for; the instruction also flushes bf16 denormals to zero.
// Panels hold k-pairs: A as uint32 (a[i][2p] | a[i][2p+1] << 16) per row, B likewise per column.
#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2")
namespace hgemm_bf16dot {
static constexpr int MR = 6, NR = 64;
static constexpr long MC = 144, KC = 512, NC = 3072;
#define TK_LEVEL 2
#include "transpose16.inc"
#undef TK_LEVEL

static inline uint32_t f32_to_bf16_bits(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return ((x >> 16) | 0x40u) & 0xffffu;
  return ((x + 0x7fffu + ((x >> 16) & 1u)) >> 16) & 0xffffu;
}
template <int ADT>
static inline uint32_t a_bits(const void* a, long i) {
  return ADT == 0 ? f32_to_bf16_bits(((const float*)a)[i]) : ((const uint16_t*)a)[i];
}

// (mc, kc) block of A (float32 rounded to bf16, or bf16) -> MR-row panels of kc/2 pairs
template <int ADT>
static void pack_a2(long mc, long kc, const void* a, long rs, long cs, uint32_t* dst) {
  long kp = (kc + 1) / 2;
  for (long i0 = 0; i0 < mc; i0 += MR) {
    int mr = (int)(mc - i0 < MR ? mc - i0 : MR);
    for (long p = 0; p < kp; p++) {
      long k = 2 * p;
      for (int i = 0; i < MR; i++) {
        uint32_t v = 0;
        if (i < mr) {
          long r = (i0 + i) * rs;
          v = a_bits<ADT>(a, r + k * cs);
          if (k + 1 < kc) v |= a_bits<ADT>(a, r + (k + 1) * cs) << 16;
        }
        dst[p * MR + i] = v;
      }
    }
    dst += kp * MR;
  }
}

// (kc, nc) block of bf16 B -> NR-column panels of kc/2 pairs
static void pack_b2(long kc, long nc, const uint16_t* b, long rs, long cs, uint32_t* dst) {
  long kp = (kc + 1) / 2;
  for (long j0 = 0; j0 < nc; j0 += NR) {
    int nr = (int)(nc - j0 < NR ? nc - j0 : NR);
    const uint16_t* src = b + j0 * cs;
    if (rs == 1 && cs % 2 == 0 && ((uintptr_t)src & 3) == 0) {
      // transposed B (x @ W^T): a k-pair is one 32-bit word of a weight row; 16x16 word transposes
      long kfull = kc / 32 * 16;  // whole groups of 16 pairs
      int jfull = nr / 16 * 16;
      for (long p0 = 0; p0 < kfull; p0 += 16)
        for (int jj = 0; jj < jfull; jj += 16)
          tr16((const float*)(src + jj * cs + 2 * p0), cs / 2, (float*)(dst + p0 * NR + jj), NR, 16);
      for (long p = 0; p < kp; p++)
        for (int j = p < kfull ? jfull : 0; j < NR; j++) {
          uint32_t v = 0;
          if (j < nr) {
            v = src[j * cs + 2 * p];
            if (2 * p + 1 < kc) v |= (uint32_t)src[j * cs + 2 * p + 1] << 16;
          }
          dst[p * NR + j] = v;
        }
    } else if (cs == 1 && nr == NR) {
      for (long p = 0; p < kp; p++) {
        const uint16_t* r0 = src + 2 * p * rs;
        bool two = 2 * p + 1 < kc;
        for (int j = 0; j < NR; j += 16) {
          __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(r0 + j)));
          __m512i hi = two ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(r0 + rs + j)))
                           : _mm512_setzero_si512();
          _mm512_storeu_si512(dst + p * NR + j, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
      }
    } else {
      for (long p = 0; p < kp; p++)
        for (int j = 0; j < NR; j++) {
          uint32_t v = 0;
          if (j < nr) {
            v = src[2 * p * rs + j * cs];
            if (2 * p + 1 < kc) v |= (uint32_t)src[(2 * p + 1) * rs + j * cs] << 16;
          }
          dst[p * NR + j] = v;
        }
    }
    dst += kp * NR;
  }
}

static void ukernel2(long kp, const uint32_t* __restrict a, const uint32_t* __restrict b, float* __restrict c,
                     long ldc, int beta, int mr, int nr) {
  __m512 acc[MR][4];
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
  for (long p = 0; p < kp; p++) {
    __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16),
             b2 = (__m512bh)_mm512_load_si512(b + 32), b3 = (__m512bh)_mm512_load_si512(b + 48);
    _mm_prefetch((const char*)(b + 64 * 8), _MM_HINT_T0);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
      acc[i][2] = _mm512_dpbf16_ps(acc[i][2], ai, b2);
      acc[i][3] = _mm512_dpbf16_ps(acc[i][3], ai, b3);
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < mr; i++) {
    float* ci = c + i * ldc;
    for (int j = 0; j < 4; j++) {
      int cnt = nr - 16 * j;
      if (cnt <= 0) break;
      __mmask16 m = (__mmask16)(cnt >= 16 ? 0xffffu : (1u << cnt) - 1u);
      __m512 v = acc[i][j];
      if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, ci + 16 * j));
      _mm512_mask_storeu_ps(ci + 16 * j, m, v);
    }
  }
}

// gemm_mixed_serial's shape for A float32/bf16 and B bf16 (bdt == 1).
static void serial(long M, long N, long K, const void* A, int adt, long rsa, long csa, const void* B, int, long rsb,
                   long csb, float* C, long ldc, bool accumulate) {
  long ncmax = N < NC ? ((N + NR - 1) / NR) * NR : NC;
  long kpmax = ((K < KC ? K : KC) + 1) / 2;
  long mcmax = M < MC ? ((M + MR - 1) / MR) * MR : MC;
  uint32_t* pb = (uint32_t*)scratch(1, (size_t)(kpmax * ncmax));
  uint32_t* pa = (uint32_t*)scratch(0, (size_t)(mcmax * kpmax));
  for (long jc = 0; jc < N; jc += NC) {
    long nc = N - jc < NC ? N - jc : NC;
    for (long pc = 0; pc < K; pc += KC) {
      long kc = K - pc < KC ? K - pc : KC, kp = (kc + 1) / 2;
      pack_b2(kc, nc, (const uint16_t*)B + pc * rsb + jc * csb, rsb, csb, pb);
      int beta = accumulate || pc > 0;
      for (long ic = 0; ic < M; ic += MC) {
        long mc = M - ic < MC ? M - ic : MC;
        long aoff = ic * rsa + pc * csa;
        if (adt == 0)
          pack_a2<0>(mc, kc, (const float*)A + aoff, rsa, csa, pa);
        else
          pack_a2<1>(mc, kc, (const uint16_t*)A + aoff, rsa, csa, pa);
        for (long jr = 0; jr < nc; jr += NR) {
          int nr = (int)(nc - jr < NR ? nc - jr : NR);
          for (long ir = 0; ir < mc; ir += MR) {
            int mr = (int)(mc - ir < MR ? mc - ir : MR);
            ukernel2(kp, pa + ir * kp, pb + jr * kp, C + (ic + ir) * ldc + jc + jr, ldc, beta, mr, nr);
          }
        }
      }
    }
  }
}
}  // namespace hgemm_bf16dot
#pragma GCC pop_options
#endif

bool bf16_dot_supported() {
#if defined(__x86_64__)
  static const bool yes = [] {
    unsigned a, b, c, d;
    return cpu_has(Isa::avx512) && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
  }();
  return yes;
#else
  return false;
#endif
}

bool bf16_dot_active() {
  static const bool asked = [] {
    const char* e = std::getenv("TUNEKIT_BF16_DOT");
    return e && !std::strcmp(e, "1");
  }();
  return asked && isa() == Isa::avx512 && bf16_dot_supported();
}

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
#if defined(__x86_64__)
  if (bdt == 1 && adt != 2 && bf16_dot_active()) im.serial = hgemm_bf16dot::serial;  // same MR/NR/NC
#endif
  GemmSplit sp = gemm_split(M, N, K, num_threads(), im.mr, im.nr, im.nc);
  if (sp.serial) return im.serial(M, N, K, A, adt, rsa, csa, B, bdt, rsb, csb, C, ldc, accumulate);
  const bool splitM = sp.splitM;
  parallel_for(sp.ntasks, [&](long t, int) {
    long s = t * sp.chunk, e = std::min(sp.len, s + sp.chunk);
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
#if defined(__x86_64__)
  if (bdt == 1 && adt != 2 && bf16_dot_active()) serial = hgemm_bf16dot::serial;
#endif
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
