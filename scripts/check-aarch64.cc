// Standalone driver for the native kernels without N-API: each kernel against a naive
// double-precision scalar reference written here. scripts/check-aarch64.sh cross-compiles it with
// every native source but addon.cc and runs it under qemu-aarch64 (the portable path); it also
// builds for the host (then TUNEKIT_ISA picks the path, as in the addon).
// Usage: check-aarch64 [threads]  (default 3: the pool is exercised too). Exit 1 on any mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace {

int failures = 0;

struct Rng {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  float next() {  // uniform in [-1, 1)
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return (float)((s >> 40) * (1.0 / (1ull << 23)) - 1.0);
  }
  std::vector<float> vec(size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = next();
    return v;
  }
} rng;

// max |got - want| / max |want| must stay under tol (float32 against double sums).
void check(const char* name, const float* got, const std::vector<double>& want, double tol = 2e-5) {
  double scale = 0, err = 0;
  for (double w : want) scale = std::fmax(scale, std::fabs(w));
  if (scale == 0) scale = 1;
  bool finite = true;
  for (size_t i = 0; i < want.size(); i++) {
    if (!std::isfinite(got[i])) finite = false;
    err = std::fmax(err, std::fabs((double)got[i] - want[i]));
  }
  bool ok = finite && err / scale <= tol;
  std::printf("%s %-44s rel err %.2e (n=%zu)\n", ok ? "ok  " : "FAIL", name, err / scale, want.size());
  if (!ok) failures++;
}

void expect(bool cond, const char* what) {
  std::printf("%s %s\n", cond ? "ok  " : "FAIL", what);
  if (!cond) failures++;
}

// ---- GEMM ---------------------------------------------------------------------------------

void gemm_case(long M, long N, long K, bool ta, bool tb, bool acc) {
  auto A = rng.vec(M * K), B = rng.vec(K * N), C = rng.vec(M * N);
  long rsa = ta ? 1 : K, csa = ta ? M : 1, rsb = tb ? 1 : N, csb = tb ? K : 1;
  std::vector<double> want(M * N);
  for (long i = 0; i < M; i++)
    for (long j = 0; j < N; j++) {
      double s = acc ? C[i * N + j] : 0;
      for (long k = 0; k < K; k++) s += (double)A[i * rsa + k * csa] * B[k * rsb + j * csb];
      want[i * N + j] = s;
    }
  tk::sgemm(M, N, K, A.data(), rsa, csa, B.data(), rsb, csb, C.data(), N, acc);
  char name[96];
  std::snprintf(name, sizeof name, "sgemm %ldx%ldx%ld%s%s%s", M, N, K, ta ? " A^T" : "", tb ? " B^T" : "",
                acc ? " +=" : "");
  check(name, C.data(), want);
}

void gemm_batched_case() {
  long nb = 5, M = 9, N = 11, K = 13;
  auto A = rng.vec(nb * M * K), B = rng.vec(nb * K * N);
  std::vector<float> C(nb * M * N, NAN);
  std::vector<long> ao(nb), bo(nb), co(nb);
  std::vector<double> want(nb * M * N);
  for (long b = 0; b < nb; b++) {
    ao[b] = b * M * K, bo[b] = b * K * N, co[b] = b * M * N;
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) {
        double s = 0;
        for (long k = 0; k < K; k++) s += (double)A[ao[b] + i * K + k] * B[bo[b] + k * N + j];
        want[co[b] + i * N + j] = s;
      }
  }
  tk::sgemm_batched(nb, ao.data(), bo.data(), co.data(), M, N, K, A.data(), K, 1, B.data(), N, 1, C.data(), N, false);
  check("sgemm_batched 5 x 9x11x13", C.data(), want);
}

// ---- conv2d (NCHW, weight (O, C/G, KH, KW)) ---------------------------------------------------

void conv_case(const char* what, long N, long C, long H, long W, long O, long KH, long KW, long sh, long sw, long ph,
               long pw, long dh, long dw, long G) {
  long OH = (H + 2 * ph - dh * (KH - 1) - 1) / sh + 1, OW = (W + 2 * pw - dw * (KW - 1) - 1) / sw + 1;
  long Cg = C / G, Og = O / G;
  int32_t meta[16] = {(int32_t)N, (int32_t)C, (int32_t)H, (int32_t)W, (int32_t)O, (int32_t)KH, (int32_t)KW,
                      (int32_t)OH, (int32_t)OW, (int32_t)sh, (int32_t)sw, (int32_t)ph, (int32_t)pw, (int32_t)dh,
                      (int32_t)dw, (int32_t)G};
  auto x = rng.vec(N * C * H * W), w = rng.vec(O * Cg * KH * KW), dy = rng.vec(N * O * OH * OW);
  std::vector<double> out(N * O * OH * OW, 0), dx(N * C * H * W, 0), dwt(O * Cg * KH * KW, 0);
  for (long n = 0; n < N; n++)
    for (long o = 0; o < O; o++)
      for (long oh = 0; oh < OH; oh++)
        for (long ow = 0; ow < OW; ow++)
          for (long c = 0; c < Cg; c++)
            for (long kh = 0; kh < KH; kh++)
              for (long kw = 0; kw < KW; kw++) {
                long ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw, ci = (o / Og) * Cg + c;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                long xi = ((n * C + ci) * H + ih) * W + iw, wi = ((o * Cg + c) * KH + kh) * KW + kw;
                long yi = ((n * O + o) * OH + oh) * OW + ow;
                out[yi] += (double)x[xi] * w[wi];
                dx[xi] += (double)dy[yi] * w[wi];
                dwt[wi] += (double)dy[yi] * x[xi];
              }
  std::vector<float> got_out(out.size(), NAN), got_dx(dx.size(), NAN), got_dw(dwt.size(), NAN);
  tk::conv2d_forward(meta, x.data(), w.data(), got_out.data());
  tk::conv2d_backward_input(meta, dy.data(), w.data(), got_dx.data());
  tk::conv2d_backward_weight(meta, x.data(), dy.data(), got_dw.data());
  char name[96];
  std::snprintf(name, sizeof name, "conv2d %s forward", what);
  check(name, got_out.data(), out);
  std::snprintf(name, sizeof name, "conv2d %s backward input", what);
  check(name, got_dx.data(), dx);
  std::snprintf(name, sizeof name, "conv2d %s backward weight", what);
  check(name, got_dw.data(), dwt);
}

// ---- softmax, cross-entropy ---------------------------------------------------------------

void softmax_case(long R, long Ccols) {
  auto x = rng.vec(R * Ccols), dy = rng.vec(R * Ccols);
  for (auto& v : x) v *= 8;
  std::vector<double> sm(R * Ccols), lsm(R * Ccols), dsm(R * Ccols), dlsm(R * Ccols);
  for (long r = 0; r < R; r++) {
    const float* xr = &x[r * Ccols];
    double m = -INFINITY, s = 0, sdy = 0, sdyy = 0;
    for (long j = 0; j < Ccols; j++) m = std::fmax(m, xr[j]);
    for (long j = 0; j < Ccols; j++) s += std::exp(xr[j] - m);
    for (long j = 0; j < Ccols; j++) {
      sm[r * Ccols + j] = std::exp(xr[j] - m) / s;
      lsm[r * Ccols + j] = xr[j] - m - std::log(s);
      sdy += dy[r * Ccols + j];
      sdyy += dy[r * Ccols + j] * sm[r * Ccols + j];
    }
    for (long j = 0; j < Ccols; j++) {
      double y = sm[r * Ccols + j], g = dy[r * Ccols + j];
      dsm[r * Ccols + j] = y * (g - sdyy);
      dlsm[r * Ccols + j] = g - y * sdy;
    }
  }
  std::vector<float> y(R * Ccols), ly(R * Ccols), dx(R * Ccols), ldx(R * Ccols);
  tk::softmax_forward(R, Ccols, x.data(), y.data(), false);
  tk::softmax_forward(R, Ccols, x.data(), ly.data(), true);
  tk::softmax_backward(R, Ccols, y.data(), dy.data(), dx.data(), false);
  tk::softmax_backward(R, Ccols, ly.data(), dy.data(), ldx.data(), true);
  check("softmax forward", y.data(), sm);
  check("log_softmax forward", ly.data(), lsm);
  check("softmax backward", dx.data(), dsm);
  check("log_softmax backward", ldx.data(), dlsm);
}

void cross_entropy_case() {
  long N = 37, Ccols = 300, ignore = -100;
  float eps = 0.1f;
  auto x = rng.vec(N * Ccols);
  for (auto& v : x) v *= 5;
  std::vector<int32_t> t(N);
  for (long r = 0; r < N; r++) t[r] = r == 4 ? (int32_t)ignore : (int32_t)((r * 37 + 11) % Ccols);
  std::vector<double> loss(N), lse(N);
  for (long r = 0; r < N; r++) {
    const float* xr = &x[r * Ccols];
    double m = -INFINITY, s = 0, sx = 0;
    for (long j = 0; j < Ccols; j++) m = std::fmax(m, xr[j]), sx += xr[j];
    for (long j = 0; j < Ccols; j++) s += std::exp(xr[j] - m);
    lse[r] = m + std::log(s);
    loss[r] = t[r] == ignore ? 0 : (1 - eps) * (lse[r] - xr[t[r]]) + eps * (lse[r] - sx / Ccols);
  }
  std::vector<float> got_loss(N, NAN), got_lse(N, NAN);
  long bad = tk::cross_entropy_forward(N, Ccols, x.data(), t.data(), ignore, eps, got_loss.data(), got_lse.data());
  expect(bad == -1, "cross_entropy_forward reports no bad target");
  check("cross_entropy forward loss (smoothing 0.1)", got_loss.data(), loss);
  check("cross_entropy forward lse", got_lse.data(), lse);
  t[7] = (int32_t)Ccols;
  bad = tk::cross_entropy_forward(N, Ccols, x.data(), t.data(), ignore, eps, got_loss.data(), got_lse.data());
  expect(bad == 7, "cross_entropy_forward reports the out-of-range target's row");
}

// ---- layer norm / RMS norm ----------------------------------------------------------------

void norm_case(bool rms) {
  long R = 23, Ccols = 257;
  float eps = 1e-5f;
  auto x = rng.vec(R * Ccols), w = rng.vec(Ccols), b = rng.vec(Ccols), dy = rng.vec(R * Ccols);
  for (auto& v : x) v = v * 3 + 0.5f;
  std::vector<double> out(R * Ccols), dx(R * Ccols), dw(Ccols, 0), db(Ccols, 0);
  for (long r = 0; r < R; r++) {
    const float* xr = &x[r * Ccols];
    double mu = 0, var = 0;
    if (!rms)
      for (long j = 0; j < Ccols; j++) mu += xr[j] / (double)Ccols;
    for (long j = 0; j < Ccols; j++) var += (xr[j] - mu) * (xr[j] - mu) / Ccols;
    double rs = 1 / std::sqrt(var + eps), mg = 0, mgx = 0;
    for (long j = 0; j < Ccols; j++) {
      double xh = (xr[j] - mu) * rs, g = (double)dy[r * Ccols + j] * w[j];
      out[r * Ccols + j] = xh * w[j] + (rms ? 0 : b[j]);
      mg += g / Ccols, mgx += g * xh / Ccols;
      dw[j] += dy[r * Ccols + j] * xh, db[j] += dy[r * Ccols + j];
    }
    for (long j = 0; j < Ccols; j++) {
      double xh = (xr[j] - mu) * rs, g = (double)dy[r * Ccols + j] * w[j];
      dx[r * Ccols + j] = rs * (g - (rms ? 0 : mg) - xh * mgx);
    }
  }
  std::vector<float> got(R * Ccols), mean(R), rstd(R), gdx(R * Ccols), gdw(Ccols), gdb(Ccols);
  tk::norm_forward(R, Ccols, x.data(), w.data(), rms ? nullptr : b.data(), eps, rms, got.data(), mean.data(),
                   rstd.data());
  tk::norm_backward(R, Ccols, x.data(), w.data(), mean.data(), rstd.data(), dy.data(), rms, gdx.data(), gdw.data(),
                    rms ? nullptr : gdb.data());
  check(rms ? "rms_norm forward" : "layer_norm forward", got.data(), out);
  check(rms ? "rms_norm backward dx" : "layer_norm backward dx", gdx.data(), dx);
  check(rms ? "rms_norm backward dweight" : "layer_norm backward dweight", gdw.data(), dw);
  if (!rms) check("layer_norm backward dbias", gdb.data(), db);
}

// ---- AdamW (PyTorch torch.optim.AdamW) ------------------------------------------------------

void adamw_case() {
  const long count = 2, len[2] = {70000, 5}, step = 3;  // 70000 > one 65536-element task
  const double lr[2] = {1e-2, 3e-3}, wd[2] = {0.01, 0}, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  const double fb1 = (float)b1, fb2 = (float)b2;  // the kernel's moments use float32 betas
  std::vector<float> p[2], g[2], m[2], v[2];
  std::vector<double> wp[2], wm[2], wv[2];
  for (int i = 0; i < count; i++) {
    p[i] = rng.vec(len[i]), g[i] = rng.vec(len[i]), m[i] = rng.vec(len[i]), v[i] = rng.vec(len[i]);
    for (auto& x : m[i]) x *= 0.1f;
    for (auto& x : v[i]) x = x * x * 0.01f;
    wp[i].resize(len[i]), wm[i].resize(len[i]), wv[i].resize(len[i]);
    double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    for (long j = 0; j < len[i]; j++) {
      double gj = g[i][j], pj = p[i][j] * (1 - lr[i] * wd[i]);
      wm[i][j] = fb1 * m[i][j] + (1 - fb1) * gj;
      wv[i][j] = fb2 * v[i][j] + (1 - fb2) * gj * gj;
      wp[i][j] = pj - lr[i] / bc1 * wm[i][j] / (std::sqrt(wv[i][j]) / std::sqrt(bc2) + eps);
    }
  }
  float* pp[2] = {p[0].data(), p[1].data()};
  const float* gp[2] = {g[0].data(), g[1].data()};
  float* mp[2] = {m[0].data(), m[1].data()};
  float* vp[2] = {v[0].data(), v[1].data()};
  tk::adamw_step(count, pp, gp, mp, vp, len, lr, wd, b1, b2, eps, step);
  for (int i = 0; i < count; i++) {
    check(i ? "adamw param (5, no decay)" : "adamw param (70000)", p[i].data(), wp[i], 2e-6);
    check(i ? "adamw exp_avg (5)" : "adamw exp_avg (70000)", m[i].data(), wm[i], 2e-6);
    check(i ? "adamw exp_avg_sq (5)" : "adamw exp_avg_sq (70000)", v[i].data(), wv[i], 2e-6);
  }
}

// ---- attention (q (B,H,T,D), k/v (B,Hkv,S,D), GQA, causal offset S-T, additive mask) --------

void attention_case(bool causal) {  // causal cases also add the mask
  bool masked = causal;
  long B = 2, H = 4, Hkv = 2, T = 70, S = 150, D = 16;  // T > one 64-row block, S > one 128-key tile
  float scale = 1 / std::sqrt((float)D);
  auto q = rng.vec(B * H * T * D), k = rng.vec(B * Hkv * S * D), v = rng.vec(B * Hkv * S * D);
  auto mask = rng.vec(B * T * S);  // (B, 1, T, S): broadcast over heads
  int32_t meta[11] = {(int32_t)B, (int32_t)H, (int32_t)Hkv, (int32_t)T, (int32_t)S, (int32_t)D, causal ? 1 : 0,
                      (int32_t)(T * S), 0, (int32_t)S, 1};
  std::vector<double> out(B * H * T * D), lse(B * H * T);
  std::vector<double> sc(S);
  for (long b = 0; b < B; b++)
    for (long h = 0; h < H; h++) {
      long hk = h / (H / Hkv);
      for (long t = 0; t < T; t++) {
        double m = -INFINITY, s = 0;
        for (long j = 0; j < S; j++) {
          double d = 0;
          for (long e = 0; e < D; e++) d += (double)q[((b * H + h) * T + t) * D + e] * k[((b * Hkv + hk) * S + j) * D + e];
          d *= scale;
          if (masked) d += mask[(b * T + t) * S + j];
          if (causal && j > t + (S - T)) d = -INFINITY;
          sc[j] = d, m = std::fmax(m, d);
        }
        for (long j = 0; j < S; j++) s += std::exp(sc[j] - m);
        lse[(b * H + h) * T + t] = m + std::log(s);
        for (long e = 0; e < D; e++) {
          double o = 0;
          for (long j = 0; j < S; j++) o += std::exp(sc[j] - m) / s * v[((b * Hkv + hk) * S + j) * D + e];
          out[((b * H + h) * T + t) * D + e] = o;
        }
      }
    }
  std::vector<float> got(out.size(), NAN), glse(lse.size(), NAN);
  tk::attention_forward(meta, scale, q.data(), k.data(), v.data(), masked ? mask.data() : nullptr, got.data(),
                        glse.data());
  check(causal ? "attention causal+mask GQA out" : "attention GQA out", got.data(), out, 1e-4);
  check(causal ? "attention causal+mask GQA lse" : "attention GQA lse", glse.data(), lse, 1e-4);
}

// ---- batch norm (training), max pool, strided sum ---------------------------------------------

void batchnorm_case() {
  long N = 3, C = 5, S = 49;
  float eps = 1e-5f;
  auto x = rng.vec(N * C * S), w = rng.vec(C), b = rng.vec(C);
  std::vector<double> out(N * C * S), mean(C), var(C);
  for (long c = 0; c < C; c++) {
    double s = 0, ss = 0;
    for (long n = 0; n < N; n++)
      for (long i = 0; i < S; i++) s += x[(n * C + c) * S + i];
    mean[c] = s / (N * S);
    for (long n = 0; n < N; n++)
      for (long i = 0; i < S; i++) ss += std::pow(x[(n * C + c) * S + i] - mean[c], 2);
    var[c] = ss / (N * S);
    for (long n = 0; n < N; n++)
      for (long i = 0; i < S; i++)
        out[(n * C + c) * S + i] = (x[(n * C + c) * S + i] - mean[c]) / std::sqrt(var[c] + eps) * w[c] + b[c];
  }
  std::vector<float> got(out.size()), gm(C), gv(C), gr(C);
  tk::batchnorm_forward(N, C, S, x.data(), w.data(), b.data(), eps, true, got.data(), gm.data(), gv.data(), gr.data());
  check("batchnorm forward (training)", got.data(), out);
  check("batchnorm batch mean", gm.data(), mean);
  check("batchnorm batch var (biased)", gv.data(), var);
}

void maxpool_case() {
  long P = 6, H = 11, W = 10, kh = 3, kw = 3, sh = 2, sw = 2, ph = 1, pw = 1;
  long OH = (H + 2 * ph - kh) / sh + 1, OW = (W + 2 * pw - kw) / sw + 1;
  int32_t meta[12] = {(int32_t)P, (int32_t)H, (int32_t)W, (int32_t)OH, (int32_t)OW, (int32_t)kh, (int32_t)kw,
                      (int32_t)sh, (int32_t)sw, (int32_t)ph, (int32_t)pw, 0};
  auto x = rng.vec(P * H * W);
  std::vector<double> out(P * OH * OW);
  for (long p = 0; p < P; p++)
    for (long oh = 0; oh < OH; oh++)
      for (long ow = 0; ow < OW; ow++) {
        double m = -INFINITY;
        for (long i = oh * sh - ph; i < oh * sh - ph + kh; i++)
          for (long j = ow * sw - pw; j < ow * sw - pw + kw; j++)
            if (i >= 0 && i < H && j >= 0 && j < W) m = std::fmax(m, x[(p * H + i) * W + j]);
        out[(p * OH + oh) * OW + ow] = m;
      }
  std::vector<float> got(out.size());
  std::vector<int32_t> idx(out.size());
  tk::maxpool2d(meta, x.data(), got.data(), idx.data());
  check("maxpool2d 3x3 stride 2 pad 1", got.data(), out, 0);
  bool idx_ok = true;
  for (long t = 0; t < (long)out.size(); t++) idx_ok = idx_ok && x[(t / (OH * OW)) * H * W + idx[t]] == got[t];
  expect(idx_ok, "maxpool2d indices point at the maxima");
}

void reduce_case() {
  // sum over dim 1 of a (4, 5, 6) view read transposed (x stored as (6, 5, 4))
  long shape[3] = {4, 5, 6}, xs[3] = {1, 4, 20}, os[3] = {6, 0, 1};
  bool red[3] = {false, true, false};
  auto x = rng.vec(120);
  std::vector<double> want(24, 0);
  for (long i = 0; i < 4; i++)
    for (long j = 0; j < 5; j++)
      for (long l = 0; l < 6; l++) want[i * 6 + l] += x[i * xs[0] + j * xs[1] + l * xs[2]];
  std::vector<float> got(24, NAN);
  tk::reduce_strided(0, 3, shape, xs, os, red, x.data(), got.data());
  check("reduce_strided sum over a strided dim", got.data(), want);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 3;
  const char* want_isa = std::getenv("TUNEKIT_ISA");
  if (const char* err = tk::configure(want_isa, threads)) {
    std::printf("FAIL configure: %s\n", err);
    return 1;
  }
  std::printf("isa %s, %d threads\n", tk::isa_name(tk::isa()), tk::num_threads());
#if !(defined(__x86_64__) || defined(_M_X64))
  expect(tk::isa() == tk::Isa::generic && !std::strcmp(tk::isa_name(tk::isa()), "generic"),
         "ISA dispatch reports generic off x86-64");
  expect(!tk::cpu_has(tk::Isa::avx2) && !tk::cpu_has(tk::Isa::avx512), "no x86 ISA claimed off x86-64");
  expect(tk::configure("avx2", threads) != nullptr, "TUNEKIT_ISA=avx2 is refused off x86-64");
  tk::configure(want_isa, threads);
#endif

  gemm_case(1, 37, 53, false, false, false);   // M <= 4: the gemv path
  gemm_case(3, 70, 41, false, true, true);
  gemm_case(67, 45, 129, true, false, true);   // edge tiles in M, N and K
  gemm_case(130, 140, 150, false, false, false);  // big enough to thread
  gemm_case(150, 9, 200, true, true, false);
  gemm_batched_case();

  conv_case("3x3 s2 p1", 2, 3, 9, 8, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1);
  conv_case("1x1 pointwise", 3, 8, 5, 6, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1);
  conv_case("3x3 depthwise", 2, 6, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6);
  conv_case("3x2 dilated grouped", 1, 4, 10, 9, 6, 3, 2, 1, 2, 2, 1, 2, 1, 2);
  conv_case("7x7 s2 p3 (stem)", 2, 3, 20, 18, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1);

  softmax_case(33, 1000);
  cross_entropy_case();
  norm_case(false);
  norm_case(true);
  adamw_case();
  attention_case(false);
  attention_case(true);
  batchnorm_case();
  maxpool_case();
  reduce_case();

  if (failures) {
    std::printf("%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("all kernel checks passed\n");
  return 0;
}
