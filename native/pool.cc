// Pooling over NCHW planes (PyTorch window rules), threaded over planes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common.h"
#include "kernels.h"

namespace tk {

namespace {
struct PoolGeo {
  long planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw;
  bool countIncludePad;
};
PoolGeo pgeo(const int32_t* m) { return {m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11] != 0}; }

}  // namespace

namespace pool_generic {
#define TK_LEVEL 0
#include "pool_kernels.inc"
#undef TK_LEVEL
}  // namespace pool_generic

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace pool_avx2 {
#define TK_LEVEL 1
#include "pool_kernels.inc"
#undef TK_LEVEL
}  // namespace pool_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")
namespace pool_avx512 {
#define TK_LEVEL 2
#include "pool_kernels.inc"
#undef TK_LEVEL
}  // namespace pool_avx512
#pragma GCC pop_options
#endif

// x (planes, H, W) -> out (planes, OH, OW), idx (flat h*W+w of the first max in window order;
// the first NaN wins). Threaded over planes; each plane is split into -inf padded column phases
// once, then every output row runs as vector-wide blocks of branch-free max/select.
void maxpool2d(const int32_t* meta, const float* x, float* out, int32_t* idx) {
  PoolGeo g = pgeo(meta);
  auto plane = pool_generic::maxpool_plane;
#if defined(__x86_64__)
  if (isa() == Isa::avx512) plane = pool_avx512::maxpool_plane;
  else if (isa() == Isa::avx2) plane = pool_avx2::maxpool_plane;
#endif
  const long L = (g.OW + 15) / 16 * 16 + (g.kw - 1) / g.sw + 1;  // 16 >= LANES of every ISA
  parallel_for(g.planes, [&](long p, int) {
    float* ph = scratch(0, (size_t)(g.H * g.sw * L));
    plane(g, x + p * g.H * g.W, out + p * g.OH * g.OW, idx + p * g.OH * g.OW, ph, L);
  });
}

// dx (planes, H, W) += dy at idx (dx zero-filled by the caller)
void maxpool2d_backward(const int32_t* meta, const float* dy, const int32_t* idx, float* dx) {
  PoolGeo g = pgeo(meta);
  long HW = g.H * g.W, P = g.OH * g.OW;
  parallel_for(g.planes, [&](long p, int) {
    float* d = dx + p * HW;
    const float* s = dy + p * P;
    const int32_t* ip = idx + p * P;
    for (long i = 0; i < P; i++)
      if (ip[i] >= 0 && ip[i] < HW) d[ip[i]] += s[i];
  });
}

namespace {
// PyTorch avg_pool2d window: the divisor counts padding (up to H+ph) when countIncludePad.
struct Win {
  long s, e, size;
};
Win avg_win(long o, long stride, long pad, long k, long n) {
  long s = o * stride - pad, e = std::min(s + k, n + pad);
  long size = e - s;
  s = std::max(s, 0L), e = std::min(e, n);
  return {s, e, size};
}
}  // namespace

void avgpool2d(const int32_t* meta, const float* x, float* out) {
  PoolGeo g = pgeo(meta);
  parallel_for(g.planes, [&](long p, int) {
    const float* xp = x + p * g.H * g.W;
    float* op = out + p * g.OH * g.OW;
    for (long oh = 0; oh < g.OH; oh++) {
      Win hw = avg_win(oh, g.sh, g.ph, g.kh, g.H);
      for (long ow = 0; ow < g.OW; ow++) {
        Win ww = avg_win(ow, g.sw, g.pw, g.kw, g.W);
        if (hw.s >= hw.e || ww.s >= ww.e) {
          op[oh * g.OW + ow] = 0.f;
          continue;
        }
        double sum = 0;
        for (long h = hw.s; h < hw.e; h++)
          for (long w = ww.s; w < ww.e; w++) sum += xp[h * g.W + w];
        long div = g.countIncludePad ? hw.size * ww.size : (hw.e - hw.s) * (ww.e - ww.s);
        op[oh * g.OW + ow] = (float)(sum / div);
      }
    }
  });
}

void avgpool2d_backward(const int32_t* meta, const float* dy, float* dx) {
  PoolGeo g = pgeo(meta);
  parallel_for(g.planes, [&](long p, int) {
    float* d = dx + p * g.H * g.W;
    const float* s = dy + p * g.OH * g.OW;
    std::memset(d, 0, sizeof(float) * g.H * g.W);
    for (long oh = 0; oh < g.OH; oh++) {
      Win hw = avg_win(oh, g.sh, g.ph, g.kh, g.H);
      for (long ow = 0; ow < g.OW; ow++) {
        Win ww = avg_win(ow, g.sw, g.pw, g.kw, g.W);
        if (hw.s >= hw.e || ww.s >= ww.e) continue;
        long div = g.countIncludePad ? hw.size * ww.size : (hw.e - hw.s) * (ww.e - ww.s);
        float v = s[oh * g.OW + ow] / (float)div;
        for (long h = hw.s; h < hw.e; h++)
          for (long w = ww.s; w < ww.e; w++) d[h * g.W + w] += v;
      }
    }
  });
}

// start = floor(i*H/OH), end = ceil((i+1)*H/OH)
void adaptive_avgpool2d(const int32_t* meta, const float* x, float* out) {
  PoolGeo g = pgeo(meta);
  parallel_for(g.planes, [&](long p, int) {
    const float* xp = x + p * g.H * g.W;
    float* op = out + p * g.OH * g.OW;
    for (long oh = 0; oh < g.OH; oh++) {
      long hs = oh * g.H / g.OH, he = ((oh + 1) * g.H + g.OH - 1) / g.OH;
      for (long ow = 0; ow < g.OW; ow++) {
        long ws = ow * g.W / g.OW, we = ((ow + 1) * g.W + g.OW - 1) / g.OW;
        double sum = 0;
        for (long h = hs; h < he; h++)
          for (long w = ws; w < we; w++) sum += xp[h * g.W + w];
        op[oh * g.OW + ow] = (float)(sum / ((he - hs) * (we - ws)));
      }
    }
  });
}

void adaptive_avgpool2d_backward(const int32_t* meta, const float* dy, float* dx) {
  PoolGeo g = pgeo(meta);
  parallel_for(g.planes, [&](long p, int) {
    float* d = dx + p * g.H * g.W;
    const float* s = dy + p * g.OH * g.OW;
    std::memset(d, 0, sizeof(float) * g.H * g.W);
    for (long oh = 0; oh < g.OH; oh++) {
      long hs = oh * g.H / g.OH, he = ((oh + 1) * g.H + g.OH - 1) / g.OH;
      for (long ow = 0; ow < g.OW; ow++) {
        long ws = ow * g.W / g.OW, we = ((ow + 1) * g.W + g.OW - 1) / g.OW;
        float v = s[oh * g.OW + ow] / (float)((he - hs) * (we - ws));
        for (long h = hs; h < he; h++)
          for (long w = ws; w < we; w++) d[h * g.W + w] += v;
      }
    }
  });
}

}  // namespace tk
