// Reductions (sum/max/min over any set of dims, double accumulation for sums), argmax, cumsum.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common.h"
#include "kernels.h"

namespace tk {

namespace {
struct Dim {
  long n, xs, os;
};

// Enumerates the offsets of a (dims, strides) space by calling f(xoff) with an odometer.
template <class F>
void odometer(const Dim* d, int nd, long base, F&& f) {
  long idx[kMaxDims] = {};
  long total = 1;
  for (int i = 0; i < nd; i++) total *= d[i].n;
  long off = base;
  for (long t = 0; t < total; t++) {
    f(off);
    for (int i = nd - 1; i >= 0; i--) {
      off += d[i].xs;
      if (++idx[i] < d[i].n) break;
      off -= idx[i] * d[i].xs;
      idx[i] = 0;
    }
  }
}

inline void acc_op(int op, double& a, float v) {
  if (op == 0)
    a += v;
  else if (v != v || a != a)
    a = (a != a) ? a : (double)v;
  else if (op == 1)
    a = v > a ? v : a;
  else
    a = v < a ? v : a;
}
}  // namespace

void reduce_strided(int op, int nd, const long* shape, const long* xs, const long* os, const bool* red,
                    const float* x, float* out) {
  Dim kept[kMaxDims], rd[kMaxDims];
  int nk = 0, nr = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 0) return;  // nothing to reduce over or into (out shaped by the caller)
    if (shape[d] == 1) continue;
    if (red[d])
      rd[nr++] = {shape[d], xs[d], 0};
    else
      kept[nk++] = {shape[d], xs[d], os[d]};
  }
  // merge adjacent reduced dims that are contiguous with each other
  int m = 0;
  for (int i = 0; i < nr; i++) {
    if (m > 0 && rd[m - 1].xs == rd[i].xs * rd[i].n) {
      rd[m - 1].n *= rd[i].n;
      rd[m - 1].xs = rd[i].xs;
    } else
      rd[m++] = rd[i];
  }
  nr = m;
  double init = op == 0 ? 0.0 : op == 1 ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  long nout = 1;
  for (int i = 0; i < nk; i++) nout *= kept[i].n;
  bool innerKept = nk > 0 && (nr == 0 || std::abs(kept[nk - 1].xs) < std::abs(rd[nr - 1].xs)) && kept[nk - 1].xs == 1;
  if (innerKept) {
    // vector mode: for each outer kept index, accumulate rows of the inner kept dim
    Dim in = kept[nk - 1];
    long nouter = nout / in.n;
    parallel_for(nouter, [&](long t, int) {
      long xo = 0, oo = 0, rem = t;
      for (int i = nk - 2; i >= 0; i--) {
        long k = rem % kept[i].n;
        rem /= kept[i].n;
        xo += k * kept[i].xs, oo += k * kept[i].os;
      }
      double* acc = (double*)scratch(3, (size_t)in.n * 2);
      for (long j = 0; j < in.n; j++) acc[j] = init;
      odometer(rd, nr, xo, [&](long off) {
        const float* p = x + off;
        if (op == 0)
          for (long j = 0; j < in.n; j++) acc[j] += p[j];
        else
          for (long j = 0; j < in.n; j++) acc_op(op, acc[j], p[j]);
      });
      for (long j = 0; j < in.n; j++) out[oo + j * in.os] = (float)acc[j];
    });
    return;
  }
  parallel_for(nout, [&](long t, int) {
    long xo = 0, oo = 0, rem = t;
    for (int i = nk - 1; i >= 0; i--) {
      long k = rem % kept[i].n;
      rem /= kept[i].n;
      xo += k * kept[i].xs, oo += k * kept[i].os;
    }
    double acc = init;
    if (nr > 0) {
      Dim last = rd[nr - 1];
      odometer(rd, nr - 1, xo, [&](long off) {
        const float* p = x + off;
        if (op == 0) {
          double s = 0;
          if (last.xs == 1)
            for (long j = 0; j < last.n; j++) s += p[j];
          else
            for (long j = 0; j < last.n; j++) s += p[j * last.xs];
          acc += s;
        } else
          for (long j = 0; j < last.n; j++) acc_op(op, acc, p[j * last.xs]);
      });
    } else {
      acc_op(op, acc, x[xo]);
    }
    out[oo] = (float)acc;
  });
}

namespace {
// Lines along `dim`: calls f(xoff, ooff) for each line, out contiguous in x's shape with
// out's dim length `odim`.
template <class F>
void for_lines(int nd, const long* shape, const long* xs, int dim, long odim, F&& f) {
  long os[kMaxDims], s = 1;
  for (int d = nd - 1; d >= 0; d--) {
    os[d] = s;
    s *= d == dim ? odim : shape[d];
  }
  long lines = 1;
  for (int d = 0; d < nd; d++)
    if (d != dim) lines *= shape[d];
  parallel_for(lines, [&](long t, int) {
    long xo = 0, oo = 0, rem = t;
    for (int d = nd - 1; d >= 0; d--) {
      if (d == dim) continue;
      long k = rem % shape[d];
      rem /= shape[d];
      xo += k * xs[d], oo += k * os[d];
    }
    f(xo, oo, os[dim]);
  });
}
}  // namespace

void argmax_strided(int nd, const long* shape, const long* xs, int dim, const float* x, int32_t* out) {
  long n = shape[dim], s = xs[dim];
  for_lines(nd, shape, xs, dim, 1, [&](long xo, long oo, long) {
    const float* p = x + xo;
    float best = p[0];
    long bi = 0;
    for (long i = 1; i < n && best == best; i++) {
      float v = p[i * s];
      if (v > best || v != v) best = v, bi = i;
    }
    out[oo] = (int32_t)bi;
  });
}

void cumsum_strided(int nd, const long* shape, const long* xs, int dim, const float* x, float* out) {
  long n = shape[dim], s = xs[dim];
  for_lines(nd, shape, xs, dim, n, [&](long xo, long oo, long ostride) {
    double acc = 0;
    for (long i = 0; i < n; i++) {
      acc += x[xo + i * s];
      out[oo + i * ostride] = (float)acc;
    }
  });
}

}  // namespace tk
