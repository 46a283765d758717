// GEMV-shaped SGEMM (M <= 4: one decode step of generation, small-batch heads). The packed GEMM
// copies all of B into panels on every call, ~3x the bytes of B for a product that is bound by
// reading B once; here B is streamed in place: axpys over its rows when they are contiguous
// (row-major (K,N)), dot products over its columns when those are (the transposed view of an
// (out,in) weight). Threaded over column ranges of C; per-ISA bodies as in gemm.cc.
#include <algorithm>
#include <cstring>

#include "common.h"

namespace tk {

namespace {
// columns of C per rows_axpy pass: M x 1024 floats (<= 16 KB) stay in L1 while B streams by
constexpr long kRowsChunk = 1024;
}  // namespace

namespace gemv_generic {
#define TK_VW 4
#include "gemv_kernels.inc"
#undef TK_VW
}  // namespace gemv_generic

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace gemv_avx2 {
#define TK_VW 8
#include "gemv_kernels.inc"
#undef TK_VW
}  // namespace gemv_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")
namespace gemv_avx512 {
#define TK_VW 16
#include "gemv_kernels.inc"
#undef TK_VW
}  // namespace gemv_avx512
#pragma GCC pop_options
#endif

namespace {
using RangeFn = void (*)(long, long, const float*, long, long, const float*, long, long, float*, long, bool, bool,
                         long, long);
RangeFn range_fn() {
#if defined(__x86_64__)
  if (isa() == Isa::avx512) return gemv_avx512::gemv_range;
  if (isa() == Isa::avx2) return gemv_avx2::gemv_range;
#endif
  return gemv_generic::gemv_range;
}
}  // namespace

// A (M,K) @ B (K,N) -> C (M,N) for M in 1..4 when B's rows (csb == 1) or its columns (rsb == 1,
// with csa == 1) are contiguous; returns false (nothing done) for any other shape or layout.
bool sgemv_small(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb,
                 float* C, long ldc, bool accumulate) {
  if (M < 1 || M > 4 || N <= 0 || K <= 0) return false;
  bool rows = csb == 1;
  if (!rows && !(rsb == 1 && csa == 1)) return false;
  RangeFn fn = range_fn();
  int T = num_threads();
  // below ~64 KFLOP the pool hand-off costs more than it saves
  long ntasks = T == 1 || 2.0 * M * N * K < 65536.0 ? 1 : std::min<long>(4L * T, (N + 63) / 64);
  if (ntasks <= 1) {
    fn(M, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, rows, 0, N);
    return true;
  }
  long chunk = ((N + ntasks - 1) / ntasks + 15) / 16 * 16;  // whole 64-byte lines of C per task
  ntasks = (N + chunk - 1) / chunk;
  parallel_for(ntasks, [&](long t, int) {
    long s = t * chunk, e = std::min(N, s + chunk);
    fn(M, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, rows, s, e);
  });
  return true;
}

}  // namespace tk
