// conv2d forward / backward-input / backward-weight, NCHW, stride, padding, dilation, groups.
// Three paths: depthwise (one input channel per group) direct loops; 1x1 stride-1 unpadded
// convolutions as GEMMs straight over the input planes; everything else im2col/col2im + SGEMM,
// with several images side by side in the column matrix so that small late-layer planes (7x7)
// still give the micro-kernel full tiles.
#include <algorithm>
#include <cstring>

#include "common.h"
#include "kernels.h"
#include "vecmath.h"

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

// Images per im2col chunk: enough columns for full micro-tiles, at most ~32 MB of columns.
long chunk_images(const Geo& g) {
  long P = g.P();
  long nb = std::max(1L, std::min(g.N, (1024 + P - 1) / P));
  long per = g.C * g.KH * g.KW * P;
  long cap = std::max(1L, (8L << 20) / std::max(1L, per));
  return std::min(nb, cap);
}

// x plane (H, W) of channel c -> rows c*KH*KW.. of col (ldcol columns), at column offset j0.
void im2col_channel(const Geo& g, const float* x, float* col, long ldcol) {
  for (long kh = 0; kh < g.KH; kh++)
    for (long kw = 0; kw < g.KW; kw++) {
      float* dst = col + (kh * g.KW + kw) * ldcol;
      long woff = kw * g.dw - g.pw;
      // valid ow range: 0 <= ow*sw + woff < W
      long lo = woff >= 0 ? 0 : (-woff + g.sw - 1) / g.sw;
      long hi = g.W - woff <= 0 ? 0 : (g.W - woff + g.sw - 1) / g.sw;
      lo = std::min(lo, g.OW), hi = std::min(std::max(hi, lo), g.OW);
      for (long oh = 0; oh < g.OH; oh++, dst += g.OW) {
        long ih = oh * g.sh - g.ph + kh * g.dh;
        if (ih < 0 || ih >= g.H) {
          std::memset(dst, 0, sizeof(float) * g.OW);
          continue;
        }
        const float* src = x + ih * g.W + woff;
        for (long ow = 0; ow < lo; ow++) dst[ow] = 0.f;
        if (g.sw == 1)
          std::memcpy(dst + lo, src + lo, sizeof(float) * (hi - lo));
        else
          for (long ow = lo; ow < hi; ow++) dst[ow] = src[ow * g.sw];
        for (long ow = hi; ow < g.OW; ow++) dst[ow] = 0.f;
      }
    }
}

// rows c*KH*KW.. of col -> dx plane (H, W) of channel c, overwriting it.
void col2im_channel(const Geo& g, const float* col, long ldcol, float* dx) {
  std::memset(dx, 0, sizeof(float) * g.H * g.W);
  for (long kh = 0; kh < g.KH; kh++)
    for (long kw = 0; kw < g.KW; kw++) {
      const float* src = col + (kh * g.KW + kw) * ldcol;
      long woff = kw * g.dw - g.pw;
      long lo = woff >= 0 ? 0 : (-woff + g.sw - 1) / g.sw;
      long hi = g.W - woff <= 0 ? 0 : (g.W - woff + g.sw - 1) / g.sw;
      lo = std::min(lo, g.OW), hi = std::min(std::max(hi, lo), g.OW);
      for (long oh = 0; oh < g.OH; oh++, src += g.OW) {
        long ih = oh * g.sh - g.ph + kh * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        float* d = dx + ih * g.W + woff;
        if (g.sw == 1)
          for (long ow = lo; ow < hi; ow++) d[ow] += src[ow];
        else
          for (long ow = lo; ow < hi; ow++) d[ow * g.sw] += src[ow];
      }
    }
}

// im2col of images [n0, n0+nb) into col (C*KH*KW, nb*P).
void im2col_chunk(const Geo& g, const float* x, long n0, long nb, float* col) {
  long P = g.P(), ld = nb * P, CHW = g.C * g.H * g.W, HW = g.H * g.W;
  parallel_for(nb * g.C, [&](long t, int) {
    long i = t / g.C, c = t % g.C;
    im2col_channel(g, x + (n0 + i) * CHW + c * HW, col + c * g.KH * g.KW * ld + i * P, ld);
  });
}

// ---- depthwise ------------------------------------------------------------------------------

void dw_forward(const Geo& g, const float* x, const float* w, float* out) {
  long Og = g.Og(), P = g.P(), HW = g.H * g.W;
  parallel_for(g.N * g.O, [&](long t, int) {
    long n = t / g.O, o = t % g.O, c = o / Og;
    const float* xp = x + (n * g.C + c) * HW;
    float* op = out + t * P;
    std::memset(op, 0, sizeof(float) * P);
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
          const float* src = xp + ih * g.W + woff;
          float* dst = op + oh * g.OW;
          if (g.sw == 1)
            for (long ow = lo; ow < hi; ow++) dst[ow] += wv * src[ow];
          else
            for (long ow = lo; ow < hi; ow++) dst[ow] += wv * src[ow * g.sw];
        }
      }
  });
}

void dw_backward_input(const Geo& g, const float* dy, const float* w, float* dx) {
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

void dw_backward_weight(const Geo& g, const float* x, const float* dy, float* dw) {
  long Og = g.Og(), P = g.P(), HW = g.H * g.W;
  parallel_for(g.O, [&](long o, int) {
    long c = o / Og;
    for (long kh = 0; kh < g.KH; kh++)
      for (long kw = 0; kw < g.KW; kw++) {
        long woff = kw * g.dw - g.pw;
        long lo = woff >= 0 ? 0 : (-woff + g.sw - 1) / g.sw;
        long hi = g.W - woff <= 0 ? 0 : (g.W - woff + g.sw - 1) / g.sw;
        lo = std::min(lo, g.OW), hi = std::min(std::max(hi, lo), g.OW);
        double acc = 0;
        for (long n = 0; n < g.N; n++) {
          const float* xp = x + (n * g.C + c) * HW;
          const float* gp = dy + (n * g.O + o) * P;
          for (long oh = 0; oh < g.OH; oh++) {
            long ih = oh * g.sh - g.ph + kh * g.dh;
            if (ih < 0 || ih >= g.H) continue;
            const float* s = xp + ih * g.W + woff;
            const float* d = gp + oh * g.OW;
            if (g.sw == 1) {
              acc += dot_lanes(d + lo, s + lo, hi - lo);
            } else {
              float r = 0.f;
              for (long ow = lo; ow < hi; ow++) r += d[ow] * s[ow * g.sw];
              acc += r;
            }
          }
        }
        dw[(o * g.KH + kh) * g.KW + kw] = (float)acc;
      }
  });
}

// Copies planes (nb images, rows of P) between NCHW-style (n, r, P) and a (r, nb*P) matrix.
void gather_cols(const float* src, long rows, long P, long rowsTotal, long nb, float* dst) {
  parallel_for(nb, [&](long i, int) {
    for (long r = 0; r < rows; r++) std::memcpy(dst + r * nb * P + i * P, src + (i * rowsTotal + r) * P, sizeof(float) * P);
  });
}
void scatter_cols(const float* src, long rows, long P, long rowsTotal, long nb, float* dst) {
  parallel_for(nb, [&](long i, int) {
    for (long r = 0; r < rows; r++) std::memcpy(dst + (i * rowsTotal + r) * P, src + r * nb * P + i * P, sizeof(float) * P);
  });
}

}  // namespace

// x (N,C,H,W), w (O,C/G,KH,KW) -> out (N,O,OH,OW)
void conv2d_forward(const int32_t* meta, const float* x, const float* w, float* out) {
  Geo g = geo(meta);
  if (g.depthwise()) return dw_forward(g, x, w, out);
  long Cg = g.Cg(), Og = g.Og(), Kc = g.Kc(), P = g.P(), HW = g.H * g.W;
  if (g.pointwise() && P >= 256) {
    // out[n, g] (Og, P) = w_g (Og, Cg) @ x[n, g] (Cg, P)
    for (long n = 0; n < g.N; n++)
      for (long gi = 0; gi < g.G; gi++)
        sgemm(Og, P, Cg, w + gi * Og * Cg, Cg, 1, x + (n * g.C + gi * Cg) * HW, HW, 1, out + (n * g.O + gi * Og) * P, P, false);
    return;
  }
  long nbmax = chunk_images(g);
  float* col = workspace(0, (size_t)(g.C * g.KH * g.KW) * nbmax * P);
  float* tmp = nbmax > 1 ? workspace(1, (size_t)g.O * nbmax * P) : nullptr;
  for (long n0 = 0; n0 < g.N; n0 += nbmax) {
    long nb = std::min(nbmax, g.N - n0), ld = nb * P;
    im2col_chunk(g, x, n0, nb, col);
    float* dst = nb > 1 ? tmp : out + n0 * g.O * P;
    for (long gi = 0; gi < g.G; gi++)
      sgemm(Og, ld, Kc, w + gi * Og * Kc, Kc, 1, col + gi * Kc * ld, ld, 1, dst + gi * Og * ld, ld, false);
    if (nb > 1) scatter_cols(tmp, g.O, P, g.O, nb, out + n0 * g.O * P);
  }
}

// dy (N,O,OH,OW), w (O,C/G,KH,KW) -> dx (N,C,H,W)
void conv2d_backward_input(const int32_t* meta, const float* dy, const float* w, float* dx) {
  Geo g = geo(meta);
  if (g.depthwise()) return dw_backward_input(g, dy, w, dx);
  long Cg = g.Cg(), Og = g.Og(), Kc = g.Kc(), P = g.P(), HW = g.H * g.W;
  if (g.pointwise() && P >= 256) {
    // dx[n, g] (Cg, P) = w_g^T (Cg, Og) @ dy[n, g] (Og, P)
    for (long n = 0; n < g.N; n++)
      for (long gi = 0; gi < g.G; gi++)
        sgemm(Cg, P, Og, w + gi * Og * Cg, 1, Cg, dy + (n * g.O + gi * Og) * P, P, 1, dx + (n * g.C + gi * Cg) * HW, HW, false);
    return;
  }
  long nbmax = chunk_images(g);
  float* col = workspace(0, (size_t)(g.C * g.KH * g.KW) * nbmax * P);
  float* tmp = nbmax > 1 ? workspace(1, (size_t)g.O * nbmax * P) : nullptr;
  for (long n0 = 0; n0 < g.N; n0 += nbmax) {
    long nb = std::min(nbmax, g.N - n0), ld = nb * P;
    const float* src = dy + n0 * g.O * P;
    if (nb > 1) {
      gather_cols(src, g.O, P, g.O, nb, tmp);
      src = tmp;
    }
    for (long gi = 0; gi < g.G; gi++)
      sgemm(Kc, ld, Og, w + gi * Og * Kc, 1, Kc, src + gi * Og * ld, ld, 1, col + gi * Kc * ld, ld, false);
    parallel_for(nb * g.C, [&](long t, int) {
      long i = t / g.C, c = t % g.C;
      col2im_channel(g, col + c * g.KH * g.KW * ld + i * P, ld, dx + (n0 + i) * g.C * HW + c * HW);
    });
  }
}

// x (N,C,H,W), dy (N,O,OH,OW) -> dw (O,C/G,KH,KW)
void conv2d_backward_weight(const int32_t* meta, const float* x, const float* dy, float* dw) {
  Geo g = geo(meta);
  if (g.depthwise()) return dw_backward_weight(g, x, dy, dw);
  long Cg = g.Cg(), Og = g.Og(), Kc = g.Kc(), P = g.P(), HW = g.H * g.W;
  if (g.pointwise() && P >= 256) {
    // dw_g (Og, Cg) += dy[n, g] (Og, P) @ x[n, g]^T (P, Cg)
    for (long n = 0; n < g.N; n++)
      for (long gi = 0; gi < g.G; gi++)
        sgemm(Og, Cg, P, dy + (n * g.O + gi * Og) * P, P, 1, x + (n * g.C + gi * Cg) * HW, 1, HW, dw + gi * Og * Cg, Cg, n > 0);
    return;
  }
  long nbmax = chunk_images(g);
  float* col = workspace(0, (size_t)(g.C * g.KH * g.KW) * nbmax * P);
  float* tmp = nbmax > 1 ? workspace(1, (size_t)g.O * nbmax * P) : nullptr;
  for (long n0 = 0; n0 < g.N; n0 += nbmax) {
    long nb = std::min(nbmax, g.N - n0), ld = nb * P;
    im2col_chunk(g, x, n0, nb, col);
    const float* src = dy + n0 * g.O * P;
    if (nb > 1) {
      gather_cols(src, g.O, P, g.O, nb, tmp);
      src = tmp;
    }
    for (long gi = 0; gi < g.G; gi++)
      sgemm(Og, Kc, ld, src + gi * Og * ld, ld, 1, col + gi * Kc * ld, 1, ld, dw + gi * Og * Kc, Kc, n0 > 0);
  }
}

}  // namespace tk
