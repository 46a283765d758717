// Row gather / scatter-add along one dim: index_select (embedding lookup) and index_add (its
// gradient). The indexed tensor is viewed as (outer, S, inner) with one stride per part, so every
// selected "row" is an inner block: a memcpy when its stride is 1. Indices are checked before
// anything is written; the caller turns a bad position into the reference's IndexError.
#include <algorithm>
#include <cstring>

#include "common.h"
#include "kernels.h"

namespace tk {

namespace {
// Below this many floats moved, one thread: a row copy runs at memory speed on one core, and
// waking the pool costs a scheduler slice on a loaded machine (20 ms per embedding lookup seen).
constexpr long kSerialWork = 1L << 21;

long first_bad(long n, const int32_t* idx, long is, long S) {
  for (long j = 0; j < n; j++)
    if (idx[j * is] < 0 || idx[j * is] >= S) return j;
  return -1;
}

inline void copy_row(long inner, const float* src, long ss, float* dst) {
  if (ss == 1) std::memcpy(dst, src, sizeof(float) * inner);
  else
    for (long i = 0; i < inner; i++) dst[i] = src[i * ss];
}

inline void add_row(long inner, const float* src, long ss, float* dst) {
  if (ss == 1)
    for (long i = 0; i < inner; i++) dst[i] += src[i];
  else
    for (long i = 0; i < inner; i++) dst[i] += src[i * ss];
}
}  // namespace

// x (outer, S, inner) strided (xso, xss, xsi), idx (n) stride is -> out (outer, n, inner) contiguous.
long index_select(long outer, long S, long inner, const float* x, long xso, long xss, long xsi, long n,
                  const int32_t* idx, long is, float* out) {
  long bad = first_bad(n, idx, is, S);
  if (bad >= 0 || outer * n * inner == 0) return bad;
  long rows = outer * n;
  auto run = [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      long o = r / n, j = r % n;
      copy_row(inner, x + o * xso + (long)idx[j * is] * xss, xsi, out + r * inner);
    }
  };
  int T = num_threads();
  if (T == 1 || rows * inner < kSerialWork) {
    run(0, rows);
    return -1;
  }
  long ntasks = std::min(rows, 4L * T), chunk = (rows + ntasks - 1) / ntasks;
  parallel_for((rows + chunk - 1) / chunk, [&](long t, int) { run(t * chunk, std::min(rows, (t + 1) * chunk)); });
  return -1;
}

// dst (outer, S, inner) contiguous += src (outer, n, inner) strided (sso, sss, ssi) at rows idx.
// Each task owns a disjoint set of destination rows (whole outer slices, or a range of S within
// one slice) and adds its rows' contributions in index order, so repeated indices accumulate
// exactly as the reference's sequential loop does.
long index_add(long outer, long S, long inner, float* dst, long n, const int32_t* idx, long is, const float* src,
               long sso, long sss, long ssi) {
  long bad = first_bad(n, idx, is, S);
  if (bad >= 0 || outer * n * inner == 0) return bad;
  auto run = [&](long o, long lo, long hi) {
    for (long j = 0; j < n; j++) {
      long r = idx[j * is];
      if (r >= lo && r < hi) add_row(inner, src + o * sso + j * sss, ssi, dst + (o * S + r) * inner);
    }
  };
  int T = num_threads();
  if (T == 1 || outer * n * inner < kSerialWork) {
    for (long o = 0; o < outer; o++) run(o, 0, S);
    return -1;
  }
  if (outer >= 2L * T) {
    parallel_for(outer, [&](long o, int) { run(o, 0, S); });
    return -1;
  }
  long parts = std::min(S, 4L * T), chunk = (S + parts - 1) / parts;
  parts = (S + chunk - 1) / chunk;
  parallel_for(outer * parts, [&](long t, int) {
    long o = t / parts, lo = (t % parts) * chunk;
    run(o, lo, std::min(S, lo + chunk));
  });
  return -1;
}

}  // namespace tk
