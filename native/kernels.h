// Kernel entry points: raw pointers to contiguous data (unless strides are given) plus a small
// int32 `meta` block of sizes. One block per kernel family / source file.
#pragma once
#include <cstdint>

namespace tk {

constexpr int kMaxDims = 16;

// conv.cc; meta = [N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, groups]
void conv2d_forward(const int32_t* meta, const float* x, const float* w, float* out);
void conv2d_backward_input(const int32_t* meta, const float* dy, const float* w, float* dx);
void conv2d_backward_weight(const int32_t* meta, const float* x, const float* dy, float* dw);

// pool.cc; meta = [planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw, countIncludePad]
void maxpool2d(const int32_t* meta, const float* x, float* out, int32_t* idx);
void maxpool2d_backward(const int32_t* meta, const float* dy, const int32_t* idx, float* dx);
void avgpool2d(const int32_t* meta, const float* x, float* out);
void avgpool2d_backward(const int32_t* meta, const float* dy, float* dx);
void adaptive_avgpool2d(const int32_t* meta, const float* x, float* out);
void adaptive_avgpool2d_backward(const int32_t* meta, const float* dy, float* dx);

}  // namespace tk

namespace tk {
// softmax.cc: rows (R, C)
void softmax_forward(long R, long C, const float* x, float* out, bool log);
void softmax_backward(long R, long C, const float* y, const float* dy, float* dx, bool log);
long cross_entropy_forward(long N, long C, const float* x, const int32_t* target, long ignore, float smoothing,
                           float* loss, float* lse);
void cross_entropy_backward(long N, long C, const float* x, const int32_t* target, const float* lse, const float* dloss,
                            long ignore, float smoothing, float* dx);
// norm.cc
void norm_forward(long R, long C, const float* x, const float* w, const float* b, float eps, bool rms, float* out,
                  float* mean, float* rstd);
void norm_backward(long R, long C, const float* x, const float* w, const float* mean, const float* rstd,
                   const float* dy, bool rms, float* dx, float* dw, float* db);
void activation_forward(int kind, long n, const float* x, float* out);
void activation_backward(int kind, long n, const float* x, const float* dy, float* dx);
// batchnorm.cc: x (N, C, S); training writes mean/var(biased, may be null)/rstd, else reads mean/rstd
void batchnorm_forward(long N, long C, long S, const float* x, const float* w, const float* b, float eps,
                       bool training, float* out, float* mean, float* var, float* rstd);
void batchnorm_backward(long N, long C, long S, const float* x, const float* w, const float* mean, const float* rstd,
                        const float* dy, bool training, float* dx, float* dw, float* db);
// elementwise.cc: contiguous clamp and its mask-free backward
void clamp_forward(long n, const float* x, float lo, float hi, float* out);
void clamp_backward(long n, const float* x, const float* dy, float lo, float hi, bool inclusive, float* dx);
// adamw.cc
void adamw_step(long count, float* const* p, const float* const* g, float* const* m, float* const* v, const long* len,
                const double* lr, const double* wd, double beta1, double beta2, double eps, long step);
// attention.cc; meta = [B, H, Hkv, T, S, D, causal, mask strides over (b, h, t, s) (0 = broadcast)]
void attention_forward(const int32_t* meta, float scale, const float* q, const float* k, const float* v,
                       const float* mask, float* out, float* lse);
void attention_backward(const int32_t* meta, float scale, const float* q, const float* k, const float* v,
                        const float* mask, const float* out, const float* lse, const float* dout, float* dq,
                        float* dk, float* dv);
}  // namespace tk

namespace tk {
// elementwise.cc: strided views, st[operand][dim] in elements (outputs last); shape/st are
// rewritten (coalesced) in place.
int coalesce(int nd, long* shape, long (*strides)[kMaxDims], int nop);
void unary_strided(int op, int nd, long* shape, long (*st)[kMaxDims], const float* x, float* out);
// op 0..6 write float, 7..12 (comparisons) write uint8
void binary_strided(int op, int nd, long* shape, long (*st)[kMaxDims], const float* a, const float* b, void* out);
void where_strided(int nd, long* shape, long (*st)[kMaxDims], const uint8_t* c, const float* a, const float* b,
                   float* out);
void copy_strided(int nd, long* shape, long (*st)[kMaxDims], const float* x, float* out);
// reduce.cc: x strided (st[0]), out strided (st[1], 0 on reduced dims); red[d] marks reduced dims.
// op 0 sum, 1 max, 2 min
void reduce_strided(int op, int nd, const long* shape, const long* xs, const long* os, const bool* red,
                    const float* x, float* out);
// argmax / cumsum along `dim` of a strided x; out contiguous with x's shape (dim set to 1 for argmax)
void argmax_strided(int nd, const long* shape, const long* xs, int dim, const float* x, int32_t* out);
void cumsum_strided(int nd, const long* shape, const long* xs, int dim, const float* x, float* out);
}  // namespace tk

namespace tk {
// index.cc: x / src viewed as (outer, S|n, inner) with one stride per part; idx (n) with stride is.
// Return the position of the first index outside [0, S) (nothing written), else -1.
long index_select(long outer, long S, long inner, const float* x, long xso, long xss, long xsi, long n,
                  const int32_t* idx, long is, float* out);
long index_add(long outer, long S, long inner, float* dst, long n, const int32_t* idx, long is, const float* src,
               long sso, long sss, long ssi);
}  // namespace tk
