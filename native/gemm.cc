// SGEMM: BLIS/GotoBLAS-style packed, cache-blocked GEMM with an ISA-specific register-blocked
// micro-kernel (AVX-512 6x64, AVX2 6x16, portable 4x8), threaded over tiles of C or over batches.
#include <algorithm>
#include <cstring>

#include "common.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tk {

namespace gemm_generic {
#define TK_LEVEL 0
#include "gemm_kernels.inc"
#undef TK_LEVEL
}  // namespace gemm_generic

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace gemm_avx2 {
#define TK_LEVEL 1
#include "gemm_kernels.inc"
#undef TK_LEVEL
}  // namespace gemm_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")
namespace gemm_avx512 {
#define TK_LEVEL 2
#include "gemm_kernels.inc"
#undef TK_LEVEL
}  // namespace gemm_avx512
#pragma GCC pop_options
#endif

namespace {
struct Impl {
  int mr, nr;
  long nc;
  void (*serial)(long, long, long, const float*, long, long, const float*, long, long, float*, long, bool,
                 const float*);
  double (*peak)(long);
  void (*panels)(long, long, long, const float*, long, long, bool, const float*, long, long, BPacker, float*, long,
                 bool, CEmitter);
  long (*packed_size)(long, long);
  void (*pack_part)(long, long, long, long, long, const float*, long, long, float*);
  long kc;
  void (*prepacked_rows)(long, long, long, long, long, const float*, long, const float*, float*, long, bool);
};
Impl impl() {
#if defined(__x86_64__)
  if (isa() == Isa::avx512) return {gemm_avx512::MR, gemm_avx512::NR, gemm_avx512::NC, gemm_avx512::gemm_serial, gemm_avx512::fma_peak, gemm_avx512::gemm_panels_serial,
          gemm_avx512::packed_a_size, gemm_avx512::pack_a_part, gemm_avx512::KC, gemm_avx512::gemm_prepacked_rows};
  if (isa() == Isa::avx2) return {gemm_avx2::MR, gemm_avx2::NR, gemm_avx2::NC, gemm_avx2::gemm_serial, gemm_avx2::fma_peak, gemm_avx2::gemm_panels_serial,
          gemm_avx2::packed_a_size, gemm_avx2::pack_a_part, gemm_avx2::KC, gemm_avx2::gemm_prepacked_rows};
#endif
  return {gemm_generic::MR, gemm_generic::NR, gemm_generic::NC, gemm_generic::gemm_serial, gemm_generic::fma_peak, gemm_generic::gemm_panels_serial,
          gemm_generic::packed_a_size, gemm_generic::pack_a_part, gemm_generic::KC, gemm_generic::gemm_prepacked_rows};
}

void zero_or_keep(long M, long N, float* C, long ldc, bool accumulate) {
  if (accumulate) return;
  for (long i = 0; i < M; i++) std::memset(C + i * ldc, 0, sizeof(float) * N);
}
}  // namespace

void sgemm_serial(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb,
                  float* C, long ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return zero_or_keep(M, N, C, ldc, accumulate);
  impl().serial(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, nullptr);
}

// gemv.cc: the M <= 4 path (B streamed in place, not packed); false when B's layout does not suit it.
bool sgemv_small(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb,
                 float* C, long ldc, bool accumulate);

// A (M,K) @ B (K,N): split C among the threads along M or along N, whichever repacks less
// (each thread packs the operand it shares with the others).
void sgemm(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C,
           long ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return zero_or_keep(M, N, C, ldc, accumulate);
  if (M <= 4 && sgemv_small(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate)) return;
  Impl im = impl();
  GemmSplit sp = gemm_split(M, N, K, num_threads(), im.mr, im.nr, im.nc);
  if (sp.serial) return im.serial(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, nullptr);
  const bool splitM = sp.splitM;
  parallel_for(sp.ntasks, [&](long t, int) {
    long s = t * sp.chunk, e = std::min(sp.len, s + sp.chunk);
    if (splitM)
      im.serial(e - s, N, K, A + s * rsa, rsa, csa, B, rsb, csb, C + s * ldc, ldc, accumulate, nullptr);
    else
      im.serial(M, e - s, K, A, rsa, csa, B + s * csb, rsb, csb, C + s, ldc, accumulate, nullptr);
  });
}

namespace {
// Per-ISA bias pass for the paths that do not add it per tile (M <= 4, K == 0, half weights).
void bias_rows(long M, long N, float* C, long ldc, const float* bias) {
#if defined(__x86_64__)
  if (isa() == Isa::avx512) return gemm_avx512::add_bias(M, N, C, ldc, bias);
  if (isa() == Isa::avx2) return gemm_avx2::add_bias(M, N, C, ldc, bias);
#endif
  gemm_generic::add_bias(M, N, C, ldc, bias);
}
}  // namespace

void gemm_bias_pass(long M, long N, float* C, long ldc, const float* bias) {
  if (M <= 0 || N <= 0) return;
  long rpt = std::max(1L, 16384 / N), nt = (M + rpt - 1) / rpt;
  parallel_for(nt, [&](long t, int) {
    long s = t * rpt, e = std::min(M, s + rpt);
    bias_rows(e - s, N, C + s * ldc, ldc, bias);
  });
}

// sgemm with the bias added per finished tile (gemm_serial), so C is written once.
void sgemm_bias(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb,
                float* C, long ldc, const float* bias) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || (M <= 4 && sgemv_small(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, false))) {
    if (K <= 0) zero_or_keep(M, N, C, ldc, false);
    return gemm_bias_pass(M, N, C, ldc, bias);
  }
  Impl im = impl();
  GemmSplit sp = gemm_split(M, N, K, num_threads(), im.mr, im.nr, im.nc);
  if (sp.serial) return im.serial(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, false, bias);
  parallel_for(sp.ntasks, [&](long t, int) {
    long s = t * sp.chunk, e = std::min(sp.len, s + sp.chunk);
    if (sp.splitM)
      im.serial(e - s, N, K, A + s * rsa, rsa, csa, B, rsb, csb, C + s * ldc, ldc, false, bias);
    else
      im.serial(M, e - s, K, A, rsa, csa, B + s * csb, rsb, csb, C + s, ldc, false, bias + s);
  });
}

void sgemm_batched(long nb, const long* aoff, const long* boff, const long* coff, long M, long N, long K,
                   const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C, long ldc,
                   bool accumulate) {
  if (nb <= 0) return;
  double flops = 2.0 * M * N * K;
  int T = num_threads();
  if (nb == 1 || (nb < 4L * T && flops >= 2.0 * 256 * 256 * 256)) {
    for (long b = 0; b < nb; b++)
      sgemm(M, N, K, A + aoff[b], rsa, csa, B + boff[b], rsb, csb, C + coff[b], ldc, accumulate);
    return;
  }
  parallel_for(nb, [&](long b, int) {
    sgemm_serial(M, N, K, A + aoff[b], rsa, csa, B + boff[b], rsb, csb, C + coff[b], ldc, accumulate);
  });
}

double fma_peak_loop(long iters) { return impl().peak(iters); }

void sgemm_panels_serial(long M, long N, long K, const float* A, long rsa, long csa, bool a_packed, const float* B,
                         long rsb, long csb, BPacker pb, float* C, long ldc, bool accumulate, CEmitter emit) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!emit.fn) zero_or_keep(M, N, C, ldc, accumulate);
    return;
  }
  impl().panels(M, N, K, A, rsa, csa, a_packed, B, rsb, csb, pb, C, ldc, accumulate, emit);
}

long sgemm_packed_a_size(long M, long K) { return impl().packed_size(M, K); }

// Threaded over (KC slice, block of 8 MR-row panels).
void sgemm_pack_a(long M, long K, const float* A, long rsa, long csa, float* dst) {
  Impl im = impl();
  long rows = 8L * im.mr, nslices = (K + im.kc - 1) / im.kc, nblocks = (M + rows - 1) / rows;
  parallel_for(nslices * nblocks, [&](long t, int) {
    long pc = (t / nblocks) * im.kc, i0 = (t % nblocks) * rows;
    im.pack_part(M, K, pc, i0, std::min(rows, M - i0), A, rsa, csa, dst);
  });
}

int sgemm_nr() { return impl().nr; }

long sgemm_packed_b_size(long N, long K) {
  long nr = impl().nr;
  return (N + nr - 1) / nr * nr * K;
}

// Threaded over (KC slice, NR panel).
void sgemm_pack_b_with(long N, long K, BPacker pb, float* dst) {
  Impl im = impl();
  long NR = im.nr, npad = (N + NR - 1) / NR * NR, nslices = (K + im.kc - 1) / im.kc, npanels = npad / NR;
  parallel_for(nslices * npanels, [&](long t, int) {
    long pc = (t / npanels) * im.kc, j0 = (t % npanels) * NR, kc = std::min(im.kc, K - pc);
    pb.fn(pb.ctx, pc, kc, j0, std::min(NR, N - j0), NR, dst + npad * pc + j0 * kc);
  });
}

// Threaded over row blocks of C (MR-aligned).
void sgemm_prepacked(long M, long N, long K, const float* pa, long lda, const float* pb, float* C, long ldc,
                     bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return zero_or_keep(M, N, C, ldc, accumulate);
  Impl im = impl();
  long T = num_threads(), panels = (M + im.mr - 1) / im.mr;
  long ntasks = std::min(panels, T);
  parallel_for(ntasks, [&](long t, int) {
    long i0 = panels * t / ntasks * im.mr, i1 = std::min(M, panels * (t + 1) / ntasks * im.mr);
    if (i1 > i0) im.prepacked_rows(i0, i1, M, N, K, pa, lda, pb, C, ldc, accumulate);
  });
}

}  // namespace tk
