// conv2d forward / backward-input / backward-weight, NCHW, stride, padding, dilation, groups.
// Three paths: depthwise (one input channel per group) direct loops; 1x1 stride-1 unpadded
// convolutions as GEMMs straight over the input planes; everything else implicit GEMM (the
// im2col matrix is packed panel by panel from x, never stored), with the columns of several
// images side by side so that small late-layer planes (7x7) still give the micro-kernel full tiles.
// Within the implicit GEMM: stride-1 convolutions on wide planes run a direct kernel over
// zero-padded copies of x (AVX-512: forward, and backward-weight; backward-input as the forward
// with the kernel flipped), and narrow ones (few columns, big weights: layer4) pack the im2col
// matrix once and split the output channels among the threads.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tk {

namespace {

struct Geo {
  long N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, G;
  long Cg() const { return C / G; }
  long Og() const { return O / G; }
  long Kc() const { return Cg() * KH * KW; }
  long P() const { return OH * OW; }
  bool depthwise() const { return Cg() == 1 && G > 1; }
  bool pointwise() const { return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && OH == H && OW == W; }
};

Geo geo(const int32_t* m) {
  return {m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], m[12], m[13], m[14], m[15]};
}

// ---- implicit GEMM ---------------------------------------------------------------------------
// The im2col matrix (Cg*KH*KW rows, one column per output position of every image: column j is
// image j / P, position j % P) is never materialised: the GEMM packs its B panels straight from
// x (forward, backward-weight), and backward-input scatters each finished panel of columns back
// into dx (col2im per panel), so the only big arrays touched are x, dy, dx and the output.

// A run: consecutive columns [dst, dst+len) of one output row (image img, row starting at
// position p, input origin (ih0, iw0) before the kernel offset).
struct Run {
  long img, p, ih0, iw0, dst, len;
};
constexpr long kMaxRuns = 1100;  // >= KC + NR + 1 on every ISA

long make_runs(const Geo& g, long j0, long n, Run* runs) {
  long P = g.P(), cnt = 0;
  for (long j = j0, e = j0 + n; j < e;) {
    long i = j / P, p = j % P, oh = p / g.OW, ow = p % g.OW;
    long len = std::min(g.OW - ow, e - j);
    runs[cnt++] = {i, p, oh * g.sh - g.ph, ow * g.sw - g.pw, j - j0, len};
    j += len;
  }
  return cnt;
}

// t range [lo, hi) of t in [0, len) with 0 <= iw0 + t*sw < W.
inline void valid_range(long iw0, long sw, long W, long len, long& lo, long& hi) {
  if (sw == 1) {  // no divisions on the common path
    lo = iw0 >= 0 ? 0 : -iw0;
    hi = W - iw0;
  } else {
    lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
    hi = W - iw0 <= 0 ? 0 : (W - iw0 + sw - 1) / sw;
  }
  lo = std::min(lo, len);
  hi = std::min(std::max(hi, lo), len);
}

struct ConvCtx {
  const Geo* g;
  const float* src;  // x (forward, backward-weight) or dy (backward-input), image 0
  float* dst;        // out (forward emitter) or dx (backward-input emitter), image 0
  long gi;           // group
  long jbase;        // first column of this GEMM
  long nbase;        // first im2col row of this GEMM's columns (backward-weight)
};

inline void kidx_split(const Geo& g, long k, long& ci, long& kh, long& kw) {
  long KK = g.KH * g.KW, r = k % KK;
  ci = k / KK, kh = r / g.KW, kw = r % g.KW;
}
// the next im2col row after (ci, kh, kw), without divisions
inline void kidx_next(const Geo& g, long& ci, long& kh, long& kw) {
  if (++kw == g.KW) {
    kw = 0;
    if (++kh == g.KH) kh = 0, ci++;
  }
}

// B = dy of group gi as (Og, columns): rows [k0, k0+kc), columns [j0, j0+nr).
void pack_dy(const void* vctx, long k0, long kc, long j0, long nr, long NR, float* dst) {
  const ConvCtx& c = *(const ConvCtx*)vctx;
  const Geo& g = *c.g;
  long P = g.P();
  for (long j = c.jbase + j0, e = j + nr, off = 0; j < e;) {
    long i = j / P, p = j % P, len = std::min(P - p, e - j);
    const float* s = c.src + (i * g.O + c.gi * g.Og() + k0) * P + p;
    for (long k = 0; k < kc; k++) std::memcpy(dst + k * NR + off, s + k * P, sizeof(float) * len);
    j += len, off += len;
  }
  if (nr < NR)
    for (long k = 0; k < kc; k++)
      for (long j = nr; j < NR; j++) dst[k * NR + j] = 0.f;
}

// Forward output panel (Og, nr) -> out planes of group gi.
void emit_out(const void* vctx, long j0, long nr, const float* cb, long ldc) {
  const ConvCtx& c = *(const ConvCtx*)vctx;
  const Geo& g = *c.g;
  long P = g.P(), Og = g.Og();
  for (long j = c.jbase + j0, e = j + nr, off = 0; j < e;) {
    long i = j / P, p = j % P, len = std::min(P - p, e - j);
    float* d = c.dst + (i * g.O + c.gi * Og) * P + p;
    for (long o = 0; o < Og; o++) std::memcpy(d + o * P, cb + o * ldc + off, sizeof(float) * len);
    j += len, off += len;
  }
}

// Direct stride-1 convolution over zero-padded planes (conv_kernels.inc, AVX-512 only).
struct DirectArgs {
  long K, M, OH, OW, Wp;  // K = Cg*KH*KW taps, M output channels (rows of the packed weights)
  const float* a;         // weights: panels of 6 rows, a[(m/6)*K*6 + k*6 + m%6], zero rows past M
  const int32_t* off;     // K tap offsets into the padded planes
};

}  // namespace

namespace conv_generic {
#define TK_LEVEL 0
#include "conv_kernels.inc"
#undef TK_LEVEL
}  // namespace conv_generic

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace conv_avx2 {
#define TK_LEVEL 1
#include "conv_kernels.inc"
#undef TK_LEVEL
}  // namespace conv_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")
namespace conv_avx512 {
#define TK_LEVEL 2
#include "conv_kernels.inc"
#undef TK_LEVEL
}  // namespace conv_avx512
#pragma GCC pop_options
#endif

namespace {

struct Packers {
  void (*im2col)(const void*, long, long, long, long, long, float*);
  void (*im2col_t)(const void*, long, long, long, long, long, float*);
  void (*col2im)(const void*, long, long, const float*, long);
  void (*dw_plane)(const float*, long, const float*, long, long, long, long, long, long, long, long, float*, long, bool);
  void (*dw_grad)(const float*, long, const float*, long, long, long, long, long, long, long, long, long, double*);
  void (*direct)(const DirectArgs&, const float*, long, long, float*);  // null: no direct path
  void (*direct_wgrad)(long, const int32_t*, long, long, const float*, const float*, long, long, float*);
  void (*direct_dyT)(const float*, long, long, long, long, long, long, float*);
};
Packers packers() {
#if defined(__x86_64__)
  if (isa() == Isa::avx512) return {conv_avx512::pack_im2col, conv_avx512::pack_im2col_t, conv_avx512::emit_col2im, conv_avx512::dw_plane,
          conv_avx512::dw_plane_grad, conv_avx512::direct_rows,
          conv_avx512::direct_wgrad_rows, conv_avx512::direct_dyT};
  if (isa() == Isa::avx2) return {conv_avx2::pack_im2col, conv_avx2::pack_im2col_t, conv_avx2::emit_col2im, conv_avx2::dw_plane,
          conv_avx2::dw_plane_grad, nullptr, nullptr, nullptr};
#endif
  return {conv_generic::pack_im2col, conv_generic::pack_im2col_t, conv_generic::emit_col2im, conv_generic::dw_plane,
          conv_generic::dw_plane_grad, nullptr, nullptr, nullptr};
}

// ---- depthwise (vector path) ------------------------------------------------------------
// Each plane is copied zero-padded (and with slack columns) into thread scratch, so the per-ISA
// dw_plane / dw_plane_grad run every tap as unconditional 16-wide multiply-adds.

void dw_backward_input_scalar(const Geo& g, const float* dy, const float* w, float* dx);

inline long round16(long v) { return (v + 15) / 16 * 16; }

// src (H, W) -> rows [top, top+H) x columns [left, left+W) of dst (row stride ldp); the rest of
// dst is left alone (zeroed once per task: every plane of a task fills the same region).
inline void fill_plane(const float* __restrict src, long H, long W, long top, long left, long ldp, float* __restrict dst) {
  for (long r = 0; r < H; r++) {
    float* d = dst + (top + r) * ldp + left;
    const float* q = src + r * W;
    for (long c = 0; c < W; c++) d[c] = q[c];
  }
}

// padded-x geometry shared by forward and backward-weight
struct DwPad {
  long Hp, ldp;
};
DwPad dw_xpad(const Geo& g) {
  return {std::max(g.H + 2 * g.ph, (g.OH - 1) * g.sh + (g.KH - 1) * g.dh + 1),
          std::max(g.W + 2 * g.pw, round16(g.OW) * g.sw + (g.KW - 1) * g.dw + 32)};
}

// Runs f(first, end) over [0, total) in about 8 chunks per thread (small planes: per-task setup
// such as zeroing the padded buffers is paid once per chunk).
template <class F>
void plane_chunks(long total, F&& f) {
  long nt = std::min(total, 8L * num_threads());
  parallel_for(nt, [&](long t, int) { f(total * t / nt, total * (t + 1) / nt); });
}

void dw_forward(const Geo& g, const float* x, const float* w, float* out) {
  Packers pk = packers();
  long Og = g.Og(), P = g.P(), HW = g.H * g.W, KK = g.KH * g.KW;
  DwPad pd = dw_xpad(g);
  plane_chunks(g.N * g.O, [&](long t0, long t1) {
    float* xp = scratch(0, (size_t)(pd.Hp * pd.ldp));
    std::memset(xp, 0, sizeof(float) * pd.Hp * pd.ldp);
    for (long t = t0; t < t1; t++) {
      long n = t / g.O, o = t % g.O, c = o / Og;
      fill_plane(x + (n * g.C + c) * HW, g.H, g.W, g.ph, g.pw, pd.ldp, xp);
      pk.dw_plane(xp, pd.ldp, w + o * KK, g.KH, g.KW, g.sh, g.sw, g.dh, g.dw, g.OH, g.OW, out + t * P, g.OW, false);
    }
  });
}

// dx is the stride-1 correlation of dy with the flipped kernel, dy spread out by the stride
// (zeros between, as a transposed convolution) and padded by (K-1)*d - p: 1/(sh*sw) of the taps
// multiply zeros, but every tap is a plain vector FMA.
void dw_backward_input(const Geo& g, const float* dy, const float* w, float* dx) {
  long top = (g.KH - 1) * g.dh - g.ph, left = (g.KW - 1) * g.dw - g.pw, KK = g.KH * g.KW;
  if (top < 0 || left < 0 || KK > 64 || g.sh > 4 || g.sw > 4) return dw_backward_input_scalar(g, dy, w, dx);
  Packers pk = packers();
  long Og = g.Og(), P = g.P(), HW = g.H * g.W;
  long Hp = std::max(top + (g.OH - 1) * g.sh + 1, g.H + (g.KH - 1) * g.dh);
  long ldp = std::max(left + (g.OW - 1) * g.sw + 1, round16(g.W) + (g.KW - 1) * g.dw + 32);
  plane_chunks(g.N * g.C, [&](long t0, long t1) {
    float* dyp = scratch(0, (size_t)(Hp * ldp));
    std::memset(dyp, 0, sizeof(float) * Hp * ldp);
    float wf[64];
    for (long t = t0; t < t1; t++) {
      long n = t / g.C, c = t % g.C;
      for (long o = c * Og; o < (c + 1) * Og; o++) {
        for (long k = 0; k < KK; k++) wf[k] = w[o * KK + KK - 1 - k];
        const float* src = dy + (n * g.O + o) * P;
        if (g.sh == 1 && g.sw == 1) {
          fill_plane(src, g.OH, g.OW, top, left, ldp, dyp);
        } else {
          for (long oh = 0; oh < g.OH; oh++) {
            float* d = dyp + (top + oh * g.sh) * ldp + left;
            const float* q = src + oh * g.OW;
            for (long ow = 0; ow < g.OW; ow++) d[ow * g.sw] = q[ow];
          }
        }
        pk.dw_plane(dyp, ldp, wf, g.KH, g.KW, 1, 1, g.dh, g.dw, g.H, g.W, dx + t * HW, g.W, o > c * Og);
      }
    }
  });
}

void dw_backward_weight(const Geo& g, const float* x, const float* dy, float* dw) {
  Packers pk = packers();
  long Og = g.Og(), P = g.P(), HW = g.H * g.W, KK = g.KH * g.KW, ldy = round16(g.OW);
  DwPad pd = dw_xpad(g);
  plane_chunks(g.O, [&](long o0, long o1) {
    float* xp = scratch(0, (size_t)(pd.Hp * pd.ldp));
    float* dyp = scratch(1, (size_t)(g.OH * ldy));
    std::memset(xp, 0, sizeof(float) * pd.Hp * pd.ldp);
    std::memset(dyp, 0, sizeof(float) * g.OH * ldy);
    std::vector<double> acc(KK);
    for (long o = o0; o < o1; o++) {
      long c = o / Og;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (long n = 0; n < g.N; n++) {
        fill_plane(x + (n * g.C + c) * HW, g.H, g.W, g.ph, g.pw, pd.ldp, xp);
        fill_plane(dy + (n * g.O + o) * P, g.OH, g.OW, 0, 0, ldy, dyp);
        pk.dw_grad(xp, pd.ldp, dyp, ldy, g.KH, g.KW, g.sh, g.sw, g.dh, g.dw, g.OH, g.OW, acc.data());
      }
      for (long k = 0; k < KK; k++) dw[o * KK + k] = (float)acc[k];
    }
  });
}

// Column ranges [start, start+len) of the N*P im2col columns, one per task: whole images (or
// pieces of them) when planes are big, otherwise equal runs of NR-aligned panels across images.
struct Span {
  long start, len;
};
std::vector<Span> column_spans(const Geo& g) {
  long P = g.P(), NP = g.N * P, T = num_threads(), NR = sgemm_nr();
  std::vector<Span> spans;
  if (P >= 512) {
    long split = std::max(1L, std::min((2 * T + g.N - 1) / g.N, (P + NR - 1) / NR));
    long chunk = ((P + split - 1) / split + NR - 1) / NR * NR;
    for (long n = 0; n < g.N; n++)
      for (long s = 0; s < P; s += chunk) spans.push_back({n * P + s, std::min(chunk, P - s)});
    return spans;
  }
  long panels = (NP + NR - 1) / NR;
  long ntasks = std::min(panels, T * std::max(1L, NP / (T * 1024)));
  for (long t = 0; t < ntasks; t++) {
    long a = panels * t / ntasks * NR, b = std::min(NP, panels * (t + 1) / ntasks * NR);
    if (b > a) spans.push_back({a, b - a});
  }
  return spans;
}

// Stride-1 convolutions on wide planes (few dropped columns, see conv_kernels.inc): direct over
// zero-padded copies of x, one task per image (or per part of one when images are few).
struct DirectGeo {
  long Wp, Q, tiles, PS;  // padded row stride, q-space columns, 64-wide tiles, padded plane size
};
// false where the direct path does not apply (stride, narrow rows) or has no kernel on this ISA.
bool direct_geo(const Geo& g, DirectGeo& d) {
  d.Wp = g.W + 2 * g.pw;
  if (!packers().direct || g.sh != 1 || g.sw != 1 || g.OW < 24 || (d.Wp - g.OW) * 8 > d.Wp) return false;
  d.Q = g.OH * d.Wp, d.tiles = (d.Q + 63) / 64;
  long rows = (d.tiles * 64 + (g.KH - 1) * g.dh * d.Wp + (g.KW - 1) * g.dw + d.Wp - 1) / d.Wp;
  d.PS = rows * d.Wp;
  return g.Cg() * d.PS < (1L << 31);
}

// tap offsets into the padded planes, in im2col row order (c, kh, kw)
int32_t* direct_offsets(const Geo& g, const DirectGeo& d) {
  int32_t* off = (int32_t*)workspace(3, (size_t)g.Kc());
  for (long c = 0, k = 0; c < g.Cg(); c++)
    for (long kh = 0; kh < g.KH; kh++)
      for (long kw = 0; kw < g.KW; kw++) off[k++] = (int32_t)(c * d.PS + kh * g.dh * d.Wp + kw * g.dw);
  return off;
}

// planes [c0, c0+Cg) of image n -> rows [ph, ph+H), columns [pw, pw+W) of the padded planes (the
// rest of xp zero from the caller)
void direct_fill(const Geo& g, const DirectGeo& d, const float* x, long n, long c0, float* xp) {
  long HW = g.H * g.W;
  for (long c = 0; c < g.Cg(); c++)
    for (long r = 0; r < g.H; r++)
      std::memcpy(xp + c * d.PS + (g.ph + r) * d.Wp + g.pw, x + (n * g.C + c0 + c) * HW + r * g.W, sizeof(float) * g.W);
}

bool direct_forward(const Geo& g, const float* x, const float* w, float* out) {
  Packers pk = packers();
  DirectGeo dg;
  long Og = g.Og(), Cg = g.Cg(), Kc = g.Kc(), P = g.P(), T = num_threads();
  if (Og < 6 || !direct_geo(g, dg)) return false;
  long Wp = dg.Wp, tiles = dg.tiles, PS = dg.PS;
  long mpad = (Og + 5) / 6 * 6, asize = mpad * Kc;
  float* apack = workspace(0, (size_t)(asize * g.G));
  parallel_for(g.G * (mpad / 6), [&](long t, int) {
    long gi = t / (mpad / 6), m0 = t % (mpad / 6) * 6;
    float* d = apack + gi * asize + m0 * Kc;
    for (long k = 0; k < Kc; k++)
      for (long i = 0; i < 6; i++) d[k * 6 + i] = m0 + i < Og ? w[(gi * Og + m0 + i) * Kc + k] : 0.f;
  });
  int32_t* off = direct_offsets(g, dg);
  long split = std::min(tiles, (2 * T + g.N - 1) / g.N);
  parallel_for(g.N * split, [&](long t, int) {
    long n = t / split, s = t % split;
    long q0 = tiles * s / split * 64, q1 = tiles * (s + 1) / split * 64;
    float* xp = scratch(0, (size_t)(Cg * PS));
    std::memset(xp, 0, sizeof(float) * Cg * PS);
    for (long gi = 0; gi < g.G; gi++) {
      direct_fill(g, dg, x, n, gi * Cg, xp);
      DirectArgs d{Kc, Og, g.OH, g.OW, Wp, apack + gi * asize, off};
      pk.direct(d, xp, q0, q1, out + (n * g.O + gi * Og) * P);
    }
  });
  return true;
}

// Few columns (late layers: 7x7 planes, N*P = 392 for N=8) and big weights: the im2col matrix is
// packed once, shared, and the threads split the output channels. Split by columns, each thread
// got 3-4 panels of 64 (one ragged) and streamed all of the weights (9.4 MB at 512x512x3x3).
bool narrow_ok(const Geo& g) {
  long NP = g.N * g.P(), T = num_threads(), NR = sgemm_nr();
  long psize = sgemm_packed_a_size(g.Og(), g.Kc());
  // not 1x1 (320->1280 @7 measured no better either way: its K is a single slice)
  return T >= 2 && g.KH * g.KW > 1 && (NP + NR - 1) / NR <= 4 * T && g.Og() >= 12 * T &&
         psize * (long)sizeof(float) > (384L << 10);
}

bool narrow_forward(const Geo& g, const float* x, const float* w, float* out) {
  if (!narrow_ok(g)) return false;
  long Og = g.Og(), Kc = g.Kc(), P = g.P(), NP = g.N * P, NR = sgemm_nr();
  long npad = (NP + NR - 1) / NR * NR;
  float* bpack = workspace(1, (size_t)sgemm_packed_b_size(NP, Kc));
  float* c = workspace(3, (size_t)(Og * npad));
  for (long gi = 0; gi < g.G; gi++) {
    ConvCtx ctx{&g, x, nullptr, gi, 0, 0};
    sgemm_pack_b_with(NP, Kc, BPacker{packers().im2col, &ctx}, bpack);
    sgemm_prepacked(Og, NP, Kc, w + gi * Og * Kc, Kc, bpack, c, npad, false);  // weights read in place
    parallel_for(Og, [&](long o, int) {
      for (long n = 0; n < g.N; n++) std::memcpy(out + (n * g.O + gi * Og + o) * P, c + o * npad + n * P, sizeof(float) * P);
    });
  }
  return true;
}

void implicit_forward(const Geo& g, const float* x, const float* w, float* out) {
  if (direct_forward(g, x, w, out) || narrow_forward(g, x, w, out)) return;
  long Og = g.Og(), Kc = g.Kc(), P = g.P();
  long psize = sgemm_packed_a_size(Og, Kc);
  float* apack = workspace(0, (size_t)(psize * g.G));
  for (long gi = 0; gi < g.G; gi++) sgemm_pack_a(Og, Kc, w + gi * Og * Kc, Kc, 1, apack + gi * psize);
  std::vector<Span> spans = column_spans(g);
  const Span* sp = spans.data();
  long ns = (long)spans.size();
  parallel_for(ns, [&](long t, int) {
    long s = sp[t].start, len = sp[t].len, img = s / P;
    bool direct = (s + len - 1) / P == img;
    for (long gi = 0; gi < g.G; gi++) {
      ConvCtx ctx{&g, x, out, gi, s, 0};
      BPacker pb{packers().im2col, &ctx};
      if (direct)
        sgemm_panels_serial(Og, len, Kc, apack + gi * psize, 0, 0, true, nullptr, 0, 0, pb,
                            out + (img * g.O + gi * Og) * P + (s - img * P), P, false, CEmitter{nullptr, nullptr});
      else
        sgemm_panels_serial(Og, len, Kc, apack + gi * psize, 0, 0, true, nullptr, 0, 0, pb, nullptr, 0, false,
                            CEmitter{emit_out, &ctx});
    }
  });
}

// Stride 1: dx is the forward convolution of dy (padding (K-1)*d - p) with the kernel flipped and
// its in/out channels swapped, so it runs on the forward's im2col packer and writes dx in place,
// instead of the col2im read-modify-writes into overlapping rows of dx.
bool backward_input_as_forward(const Geo& g, const float* dy, const float* w, float* dx) {
  long th = (g.KH - 1) * g.dh - g.ph, tw = (g.KW - 1) * g.dw - g.pw;
  if (g.sh != 1 || g.sw != 1 || th < 0 || tw < 0 || g.KH * g.KW == 1) return false;
  Geo f{g.N, g.O, g.OH, g.OW, g.C, g.KH, g.KW, g.H, g.W, 1, 1, th, tw, g.dh, g.dw, g.G};
  // only where the forward takes one of the faster paths: through the plain implicit forward it
  // measured no better than col2im (layer3), and the flipped copy of the weights is extra work
  DirectGeo dg;
  if (!(f.Og() >= 6 && direct_geo(f, dg)) && !narrow_ok(f)) return false;
  long Og = g.Og(), Cg = g.Cg(), KK = g.KH * g.KW;
  // wf (C, Og, KH, KW): wf[gi*Cg + c, o, kk] = w[gi*Og + o, c, KK-1-kk]
  float* wf = workspace(2, (size_t)(g.C * Og * KK));
  // a transpose of (Og, Cg) blocks of KK floats, in 16x16 tiles (both sides stay in L1)
  long cb = (Cg + 15) / 16;
  parallel_for(g.G * cb, [&](long t, int) {
    long gi = t / cb, c0 = t % cb * 16, c1 = std::min(Cg, c0 + 16);
    for (long o0 = 0; o0 < Og; o0 += 16)
      for (long c = c0; c < c1; c++)
        for (long o = o0; o < std::min(Og, o0 + 16); o++) {
          const float* s = w + ((gi * Og + o) * Cg + c) * KK;
          float* d = wf + ((gi * Cg + c) * Og + o) * KK;
          if (KK == 9) {  // 3x3: unrolled (the loop is memory-bound only when it is not scalar-bound)
            float t[9];
            for (int k = 0; k < 9; k++) t[k] = s[8 - k];
            std::memcpy(d, t, sizeof t);
          } else {
            for (long k = 0; k < KK; k++) d[k] = s[KK - 1 - k];
          }
        }
  });
  implicit_forward(f, dy, wf, dx);
  return true;
}

void implicit_backward_input(const Geo& g, const float* dy, const float* w, float* dx) {
  if (backward_input_as_forward(g, dy, w, dx)) return;
  long Og = g.Og(), Kc = g.Kc(), P = g.P(), CHW = g.C * g.H * g.W;
  long psize = sgemm_packed_a_size(Kc, Og);
  float* apack = workspace(0, (size_t)(psize * g.G));
  // A = w_g^T (Kc, Og)
  for (long gi = 0; gi < g.G; gi++) sgemm_pack_a(Kc, Og, w + gi * Og * Kc, 1, Kc, apack + gi * psize);
  // tasks own whole images: neighbouring columns overlap in dx
  long T = num_threads();
  long ntasks = std::min(g.N, std::max(T, (g.N * P + 2047) / 2048));
  parallel_for(ntasks, [&](long t, int) {
    long n0 = g.N * t / ntasks, n1 = g.N * (t + 1) / ntasks;
    if (n1 <= n0) return;
    std::memset(dx + n0 * CHW, 0, sizeof(float) * (n1 - n0) * CHW);
    for (long gi = 0; gi < g.G; gi++) {
      ConvCtx ctx{&g, dy, dx, gi, n0 * P, 0};
      sgemm_panels_serial(Kc, (n1 - n0) * P, Og, apack + gi * psize, 0, 0, true, nullptr, 0, 0,
                          BPacker{pack_dy, &ctx}, nullptr, 0, false, CEmitter{packers().col2im, &ctx});
    }
  });
}

// dy columns [s, s+len) of group gi as an (Og, len) matrix: straight from dy within one image,
// else gathered into buf.
const float* dy_block(const Geo& g, const float* dy, long gi, long s, long len, float* buf, long& rs) {
  long P = g.P(), Og = g.Og(), img = s / P;
  if ((s + len - 1) / P == img) {
    rs = P;
    return dy + (img * g.O + gi * Og) * P + (s - img * P);
  }
  rs = len;
  for (long j = s, e = s + len; j < e;) {
    long i = j / P, p = j % P, l = std::min(P - p, e - j);
    for (long o = 0; o < Og; o++) std::memcpy(buf + o * len + (j - s), dy + (i * g.O + gi * Og + o) * P + p, sizeof(float) * l);
    j += l;
  }
  return buf;
}

// Images go in chunks: the threads first pad x and transpose dy for every (image, group) of the
// chunk into shared buffers, then split the taps (rows of dw^T, panels of 6) and run over the
// whole chunk, so each dw element is summed in one fixed order (no private copies to add up) and
// no thread repeats another's padding.
bool direct_backward_weight(const Geo& g, const float* x, const float* dy, float* dw) {
  Packers pk = packers();
  DirectGeo dg;
  long Og = g.Og(), Cg = g.Cg(), Kc = g.Kc(), P = g.P(), T = num_threads();
  if (!pk.direct_wgrad || Og < 32 || !direct_geo(g, dg)) return false;
  long kpanels = (Kc + 5) / 6, kpad = kpanels * 6, opad = (Og + 63) / 64 * 64, Q = dg.Q;
  long xsz = Cg * dg.PS, ysz = opad * Q;
  long nb = std::max(1L, std::min(g.N, (2L << 20) / (g.G * (xsz + ysz))));  // images per chunk: ~8 MB
  int32_t* off = direct_offsets(g, dg);
  long WS = g.G * kpad * opad;
  if (g.N >= T) {
    // enough images: T fixed groups of images, each padded and consumed by the thread that
    // fills it (no shared buffers crossing cores, no barrier between fill and multiply), summed
    // into a private dw^T; the copies are added in group order, so the bits depend on T only
    float* acc = workspace(1, (size_t)(WS * T));
    parallel_for(T, [&](long k, int) {
      float* mine = acc + k * WS;
      float* xp = scratch(0, (size_t)xsz);
      float* dyT = scratch(1, (size_t)ysz);
      std::memset(mine, 0, sizeof(float) * WS);
      std::memset(xp, 0, sizeof(float) * xsz);
      std::memset(dyT, 0, sizeof(float) * ysz);
      for (long n = g.N * k / T; n < g.N * (k + 1) / T; n++)
        for (long gi = 0; gi < g.G; gi++) {
          direct_fill(g, dg, x, n, gi * Cg, xp);
          pk.direct_dyT(dy + (n * g.O + gi * Og) * P, P, Og, g.OH, g.OW, dg.Wp, Q, dyT);
          pk.direct_wgrad(Kc, off, Q, opad, xp, dyT, 0, kpad, mine + gi * kpad * opad);
        }
    });
    parallel_for(g.G * Og, [&](long t, int) {
      long gi = t / Og, o = t % Og;
      for (long k = 0; k < Kc; k++) {
        float v = 0.f;
        for (long th = 0; th < T; th++) v += acc[th * WS + (gi * kpad + k) * opad + o];
        dw[(gi * Og + o) * Kc + k] = v;
      }
    });
    return true;
  }
  float* cT = workspace(1, (size_t)WS);
  float* xall = workspace(0, (size_t)(nb * g.G * xsz));
  float* yall = workspace(2, (size_t)(nb * g.G * ysz));
  std::memset(cT, 0, sizeof(float) * g.G * kpad * opad);
  long ntasks = std::min(kpanels, T);
  for (long n0 = 0; n0 < g.N; n0 += nb) {
    long n1 = std::min(g.N, n0 + nb);
    parallel_for((n1 - n0) * g.G, [&](long t, int) {
      long n = n0 + t / g.G, gi = t % g.G;
      float* xp = xall + t * xsz;
      float* dyT = yall + t * ysz;
      std::memset(xp, 0, sizeof(float) * xsz);
      std::memset(dyT, 0, sizeof(float) * ysz);
      direct_fill(g, dg, x, n, gi * Cg, xp);
      pk.direct_dyT(dy + (n * g.O + gi * Og) * P, P, Og, g.OH, g.OW, dg.Wp, Q, dyT);
    });
    parallel_for(ntasks, [&](long t, int) {
      long k0 = kpanels * t / ntasks * 6, k1 = kpanels * (t + 1) / ntasks * 6;
      for (long i = 0; i < (n1 - n0) * g.G; i++)
        pk.direct_wgrad(Kc, off, Q, opad, xall + i * xsz, yall + i * ysz, k0, k1, cT + (i % g.G) * kpad * opad);
    });
  }
  parallel_for(g.G * Og, [&](long t, int) {
    long gi = t / Og, o = t % Og;
    for (long k = 0; k < Kc; k++) dw[(gi * Og + o) * Kc + k] = cT[(gi * kpad + k) * opad + o];
  });
  return true;
}

void implicit_backward_weight(const Geo& g, const float* x, const float* dy, float* dw) {
  if (direct_backward_weight(g, x, dy, dw)) return;
  long Og = g.Og(), Kc = g.Kc(), T = num_threads(), NR = sgemm_nr();
  std::vector<Span> spans = column_spans(g);
  const Span* sp = spans.data();
  long ns = (long)spans.size();
  long panels = (Kc + NR - 1) / NR;
  if (Og * Kc >= (1L << 18) && panels >= 8 * T) {
    // big weights: threads split the weight's columns, every task runs over all of the columns
    // of x in big blocks (dy gathered once per block)
    long NP = g.N * g.P();
    long blk = std::min(NP, std::max(g.P(), 4096L));
    float* buf = workspace(1, (size_t)(Og * blk));
    for (long gi = 0; gi < g.G; gi++)
      for (long s = 0; s < NP; s += blk) {
        long len = std::min(blk, NP - s), P = g.P(), rs = len;
        const float* a = buf;
        if ((s + len - 1) / P == s / P)
          a = dy_block(g, dy, gi, s, len, buf, rs);
        else
          parallel_for(Og, [&](long o, int) {
            for (long j = s, e = s + len; j < e;) {
              long i = j / P, p = j % P, l = std::min(P - p, e - j);
              std::memcpy(buf + o * len + (j - s), dy + (i * g.O + gi * Og + o) * P + p, sizeof(float) * l);
              j += l;
            }
          });
        parallel_for(T, [&](long t, int) {
          long p0 = panels * t / T * NR, p1 = std::min(Kc, panels * (t + 1) / T * NR);
          if (p1 <= p0) return;
          ConvCtx ctx{&g, x, nullptr, gi, s, p0};
          sgemm_panels_serial(Og, p1 - p0, len, a, rs, 1, false, nullptr, 0, 0, BPacker{packers().im2col_t, &ctx},
                              dw + gi * Og * Kc + p0, Kc, s > 0, CEmitter{nullptr, nullptr});
        });
      }
    return;
  }
  // small weights: the column spans are cut into T fixed, contiguous groups, each summed into a
  // private copy of dw; the copies are added in group order. The grouping, not which thread ran
  // which span, decides the summation order, so the result is the same bits on every run (exact
  // resume needs that).
  long WS = g.O * Kc;
  float* acc = workspace(1, (size_t)(WS * T));
  std::vector<char> used(T, 0);
  parallel_for(T, [&](long k, int) {
    float* mine = acc + k * WS;
    static thread_local std::vector<float> gathered;  // scratch slot 3 belongs to the packer
    for (long t = ns * k / T; t < ns * (k + 1) / T; t++) {
      long s = sp[t].start, len = sp[t].len;
      if (gathered.size() < (size_t)(Og * len)) gathered.resize((size_t)(Og * len));
      float* buf = gathered.data();
      for (long gi = 0; gi < g.G; gi++) {
        long rs;
        const float* a = dy_block(g, dy, gi, s, len, buf, rs);
        ConvCtx ctx{&g, x, nullptr, gi, s, 0};
        sgemm_panels_serial(Og, Kc, len, a, rs, 1, false, nullptr, 0, 0, BPacker{packers().im2col_t, &ctx},
                            mine + gi * Og * Kc, Kc, used[k], CEmitter{nullptr, nullptr});
      }
      used[k] = true;
    }
  });
  std::memset(dw, 0, sizeof(float) * WS);
  for (long th = 0; th < T; th++)
    if (used[th])
      for (long i = 0; i < WS; i++) dw[i] += acc[th * WS + i];
}

// ---- depthwise, scalar fallback (strided backward-input) -------------------------------------

void dw_backward_input_scalar(const Geo& g, const float* dy, const float* w, float* dx) {
  long Og = g.Og(), P = g.P(), HW = g.H * g.W;
  parallel_for(g.N * g.C, [&](long t, int) {
    long n = t / g.C, c = t % g.C;
    float* dp = dx + t * HW;
    std::memset(dp, 0, sizeof(float) * HW);
    for (long o = c * Og; o < (c + 1) * Og; o++) {
      const float* gp = dy + (n * g.O + o) * P;
      for (long kh = 0; kh < g.KH; kh++)
        for (long kw = 0; kw < g.KW; kw++) {
          float wv = w[(o * g.KH + kh) * g.KW + kw];
          long woff = kw * g.dw - g.pw;
          long lo = woff >= 0 ? 0 : (-woff + g.sw - 1) / g.sw;
          long hi = g.W - woff <= 0 ? 0 : (g.W - woff + g.sw - 1) / g.sw;
          lo = std::min(lo, g.OW), hi = std::min(std::max(hi, lo), g.OW);
          for (long oh = 0; oh < g.OH; oh++) {
            long ih = oh * g.sh - g.ph + kh * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            float* d = dp + ih * g.W + woff;
            const float* s = gp + oh * g.OW;
            if (g.sw == 1)
              for (long ow = lo; ow < hi; ow++) d[ow] += wv * s[ow];
            else
              for (long ow = lo; ow < hi; ow++) d[ow * g.sw] += wv * s[ow];
          }
        }
    }
  });
}

}  // namespace

// x (N,C,H,W), w (O,C/G,KH,KW) -> out (N,O,OH,OW)
void conv2d_forward(const int32_t* meta, const float* x, const float* w, float* out) {
  Geo g = geo(meta);
  if (g.depthwise()) return dw_forward(g, x, w, out);
  long Cg = g.Cg(), Og = g.Og(), P = g.P(), HW = g.H * g.W;
  if (g.pointwise() && P >= 256) {
    // out[n, g] (Og, P) = w_g (Og, Cg) @ x[n, g] (Cg, P)
    for (long n = 0; n < g.N; n++)
      for (long gi = 0; gi < g.G; gi++)
        sgemm(Og, P, Cg, w + gi * Og * Cg, Cg, 1, x + (n * g.C + gi * Cg) * HW, HW, 1, out + (n * g.O + gi * Og) * P, P, false);
    return;
  }
  implicit_forward(g, x, w, out);
}

// dy (N,O,OH,OW), w (O,C/G,KH,KW) -> dx (N,C,H,W)
void conv2d_backward_input(const int32_t* meta, const float* dy, const float* w, float* dx) {
  Geo g = geo(meta);
  if (g.depthwise()) return dw_backward_input(g, dy, w, dx);
  long Cg = g.Cg(), Og = g.Og(), P = g.P(), HW = g.H * g.W;
  if (g.pointwise() && P >= 256) {
    // dx[n, g] (Cg, P) = w_g^T (Cg, Og) @ dy[n, g] (Og, P)
    for (long n = 0; n < g.N; n++)
      for (long gi = 0; gi < g.G; gi++)
        sgemm(Cg, P, Og, w + gi * Og * Cg, 1, Cg, dy + (n * g.O + gi * Og) * P, P, 1, dx + (n * g.C + gi * Cg) * HW, HW, false);
    return;
  }
  implicit_backward_input(g, dy, w, dx);
}

// x (N,C,H,W), dy (N,O,OH,OW) -> dw (O,C/G,KH,KW)
void conv2d_backward_weight(const int32_t* meta, const float* x, const float* dy, float* dw) {
  Geo g = geo(meta);
  if (g.depthwise()) return dw_backward_weight(g, x, dy, dw);
  long Cg = g.Cg(), Og = g.Og(), P = g.P(), HW = g.H * g.W;
  if (g.pointwise() && P >= 256 && g.N >= num_threads()) {
    // dw_g (Og, Cg) = sum_n dy[n, g] (Og, P) @ x[n, g]^T (P, Cg): threads over images, each with a
    // private sum; computed transposed (x @ dy^T) when Cg < Og so the narrow side is M, not NR.
    // T fixed groups of images, summed in group order: the same bits whichever thread ran which.
    long T = num_threads(), WS = g.O * Cg;
    bool tr = Cg < Og;
    float* acc = workspace(1, (size_t)(WS * T));
    std::vector<char> used(T, 0);
    parallel_for(T, [&](long k, int) {
      long n0 = g.N * k / T, n1 = g.N * (k + 1) / T, th = k;
      float* mine = acc + th * WS;
      for (long n = n0; n < n1; n++) {
        for (long gi = 0; gi < g.G; gi++) {
          const float* dyg = dy + (n * g.O + gi * Og) * P;
          const float* xg = x + (n * g.C + gi * Cg) * HW;
          if (tr)
            sgemm_serial(Cg, Og, P, xg, HW, 1, dyg, 1, P, mine + gi * Og * Cg, Og, used[th]);
          else
            sgemm_serial(Og, Cg, P, dyg, P, 1, xg, 1, HW, mine + gi * Og * Cg, Cg, used[th]);
        }
        used[th] = 1;
      }
    });
    std::memset(dw, 0, sizeof(float) * WS);
    for (long th = 0; th < T; th++) {
      if (!used[th]) continue;
      const float* a = acc + th * WS;
      for (long gi = 0; gi < g.G; gi++) {
        float* d = dw + gi * Og * Cg;
        const float* s = a + gi * Og * Cg;
        if (tr) {
          for (long c = 0; c < Cg; c++)
            for (long o = 0; o < Og; o++) d[o * Cg + c] += s[c * Og + o];
        } else {
          for (long i = 0; i < Og * Cg; i++) d[i] += s[i];
        }
      }
    }
    return;
  }
  if (g.pointwise() && P >= 256) {
    // dw_g (Og, Cg) += dy[n, g] (Og, P) @ x[n, g]^T (P, Cg)
    for (long n = 0; n < g.N; n++)
      for (long gi = 0; gi < g.G; gi++)
        sgemm(Og, Cg, P, dy + (n * g.O + gi * Og) * P, P, 1, x + (n * g.C + gi * Cg) * HW, 1, HW, dw + gi * Og * Cg, Cg, n > 0);
    return;
  }
  implicit_backward_weight(g, x, dy, dw);
}

}  // namespace tk
