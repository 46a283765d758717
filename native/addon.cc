// The N-API surface: one exported function per kernel, C-shaped arguments only (typed arrays,
// element offsets, small Int32Array shape/stride blocks, numbers). Every pointer range a kernel
// will touch is checked against its typed array before the kernel runs.
#include <napi.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "common.h"
#include "kernels.h"

namespace {

using namespace tk;

[[noreturn]] void fail(const Napi::Env& env, const std::string& msg) { throw Napi::Error::New(env, "tunekit_native: " + msg); }

template <class T, class A>
T* ptr(const Napi::CallbackInfo& info, int i, size_t* len = nullptr) {
  if (!info[i].IsTypedArray()) fail(info.Env(), "argument " + std::to_string(i) + " must be a typed array");
  auto ta = info[i].As<A>();
  if (len) *len = ta.ElementLength();
  return (T*)ta.Data();
}
float* f32(const Napi::CallbackInfo& info, int i, size_t* len = nullptr) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    fail(info.Env(), "argument " + std::to_string(i) + " must be a Float32Array");
  return ptr<float, Napi::Float32Array>(info, i, len);
}
int32_t* i32(const Napi::CallbackInfo& info, int i, size_t* len = nullptr) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    fail(info.Env(), "argument " + std::to_string(i) + " must be an Int32Array");
  return ptr<int32_t, Napi::Int32Array>(info, i, len);
}
uint8_t* u8(const Napi::CallbackInfo& info, int i, size_t* len = nullptr) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    fail(info.Env(), "argument " + std::to_string(i) + " must be a Uint8Array");
  return ptr<uint8_t, Napi::Uint8Array>(info, i, len);
}
long num(const Napi::CallbackInfo& info, int i) { return (long)info[i].As<Napi::Number>().Int64Value(); }
double dbl(const Napi::CallbackInfo& info, int i) { return info[i].As<Napi::Number>().DoubleValue(); }
bool flag(const Napi::CallbackInfo& info, int i) { return info[i].ToBoolean().Value(); }

// Checks that every element of a (shape, strides) view at `off` lies inside [0, len).
void check_span(const Napi::Env& env, const char* what, size_t len, long off, int nd, const long* shape,
                const long* strides) {
  long lo = off, hi = off;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 0) return;
    if (shape[d] < 0 || strides[d] < 0) fail(env, std::string(what) + ": negative shape or stride");
    hi += (shape[d] - 1) * strides[d];
  }
  if (lo < 0 || hi >= (long)len) fail(env, std::string(what) + ": view out of bounds of its storage");
}
void check_contig(const Napi::Env& env, const char* what, size_t len, long off, long n) {
  if (n == 0) return;
  if (off < 0 || n < 0 || off + n > (long)len) fail(env, std::string(what) + ": range out of bounds of its storage");
}

// ---------------------------------------------------------------------------------------------

Napi::Value Configure(const Napi::CallbackInfo& info) {
  std::string isa = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  int threads = info[1].IsNumber() ? (int)num(info, 1) : 0;
  if (const char* err = configure(isa.c_str(), threads)) fail(info.Env(), err);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("isa", isa_name(tk::isa()));
  o.Set("threads", num_threads());
  Napi::Array avail = Napi::Array::New(info.Env());
  int k = 0;
  for (Isa i : {Isa::avx512, Isa::avx2, Isa::generic})
    if (cpu_has(i)) avail.Set(k++, isa_name(i));
  o.Set("available", avail);
  o.Set("bf16Dot", bf16_dot_active());
  return o;
}

Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  long iters = num(info, 0);
  int T = num_threads();
  std::vector<double> flops(T, 0.0);
  std::atomic<int> started{0};
  // one task per thread, all spinning until every thread has one, so they run concurrently
  parallel_for(T, [&](long t, int) {
    started.fetch_add(1);
    while (started.load() < T) {
    }
    flops[t] = fma_peak_loop(iters);
  });
  double total = 0;
  for (double f : flops) total += f;
  return Napi::Number::New(info.Env(), total);
}

// The meta both matmul entry points share: [nbd, M, N, K, rsa, csa, rsb, csb, ldc, then size and
// a/b/c strides per batch dim]. Checks every operand's span and lists each batch's element offsets.
struct MatmulBatches {
  long M, N, K, nb;
  const long *ao, *bo, *co;
};
MatmulBatches matmul_batches(const Napi::Env& env, const char* name, const int32_t* m, size_t lm, size_t la, long aoff,
                             size_t lb, long boff, size_t lc, long coff) {
  if (lm < 9) fail(env, std::string(name) + ": bad meta");
  int nbd = m[0];
  if (nbd < 0 || nbd > 12 || lm < (size_t)(9 + 4 * nbd)) fail(env, std::string(name) + ": bad meta");
  long M = m[1], N = m[2], K = m[3];
  long sz[16], as[16], bs[16], cs[16];
  long nb = 1;
  for (int d = 0; d < nbd; d++) {
    sz[d] = m[9 + 4 * d], as[d] = m[10 + 4 * d], bs[d] = m[11 + 4 * d], cs[d] = m[12 + 4 * d];
    nb *= sz[d];
  }
  sz[nbd] = M, sz[nbd + 1] = K, as[nbd] = m[4], as[nbd + 1] = m[5];
  check_span(env, "matmul a", la, aoff, nbd + 2, sz, as);
  sz[nbd] = K, sz[nbd + 1] = N, bs[nbd] = m[6], bs[nbd + 1] = m[7];
  check_span(env, "matmul b", lb, boff, nbd + 2, sz, bs);
  sz[nbd] = M, sz[nbd + 1] = N, cs[nbd] = m[8], cs[nbd + 1] = 1;
  check_span(env, "matmul out", lc, coff, nbd + 2, sz, cs);
  static thread_local std::vector<long> offs;
  offs.resize(3 * nb);
  long idx[16] = {0};
  long ao = aoff, bo = boff, co = coff;
  for (long i = 0; i < nb; i++) {
    offs[i] = ao, offs[nb + i] = bo, offs[2 * nb + i] = co;
    for (int d = nbd - 1; d >= 0; d--) {
      ao += as[d], bo += bs[d], co += cs[d];
      if (++idx[d] < sz[d]) break;
      ao -= idx[d] * as[d], bo -= idx[d] * bs[d], co -= idx[d] * cs[d];
      idx[d] = 0;
    }
  }
  return {M, N, K, nb, offs.data(), offs.data() + nb, offs.data() + 2 * nb};
}

// matmul(a, aOff, b, bOff, c, cOff, meta, accumulate)
// meta = [nbd, M, N, K, ars, acs, brs, bcs, crs, (size, as, bs, cs) x nbd]
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t la, lb, lc, lm;
  const float* a = f32(info, 0, &la);
  long aoff = num(info, 1);
  const float* b = f32(info, 2, &lb);
  long boff = num(info, 3);
  float* c = f32(info, 4, &lc);
  long coff = num(info, 5);
  const int32_t* m = i32(info, 6, &lm);
  bool acc = flag(info, 7);
  MatmulBatches mb = matmul_batches(env, "matmul", m, lm, la, aoff, lb, boff, lc, coff);
  if (mb.nb == 1)
    sgemm(mb.M, mb.N, mb.K, a + aoff, m[4], m[5], b + boff, m[6], m[7], c + coff, m[8], acc);
  else
    sgemm_batched(mb.nb, mb.ao, mb.bo, mb.co, mb.M, mb.N, mb.K, a, m[4], m[5], b, m[6], m[7], c, m[8], acc);
  return env.Undefined();
}

// matmulMixed(a, adt, aOff, b, bdt, bOff, c, cOff, meta, accumulate): matmul with bf16/f16
// operands (dt 0 float32 in a Float32Array, 1 bfloat16 / 2 float16 in a Uint16Array); same meta.
const void* typed_operand(const Napi::CallbackInfo& info, int i, int dt, size_t* len) {
  if (dt == 0) return f32(info, i, len);
  if (dt != 1 && dt != 2) fail(info.Env(), "matmulMixed: dtype code must be 0, 1 or 2");
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array)
    fail(info.Env(), "argument " + std::to_string(i) + " must be a Uint16Array (bf16/f16 storage)");
  return ptr<uint16_t, Napi::Uint16Array>(info, i, len);
}

Napi::Value MatmulMixed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t la, lb, lc, lm;
  int adt = (int)num(info, 1), bdt = (int)num(info, 4);
  const void* a = typed_operand(info, 0, adt, &la);
  long aoff = num(info, 2);
  const void* b = typed_operand(info, 3, bdt, &lb);
  long boff = num(info, 5);
  float* c = f32(info, 6, &lc);
  long coff = num(info, 7);
  const int32_t* m = i32(info, 8, &lm);
  bool acc = flag(info, 9);
  MatmulBatches mb = matmul_batches(env, "matmulMixed", m, lm, la, aoff, lb, boff, lc, coff);
  gemm_mixed_batched(mb.nb, mb.ao, mb.bo, mb.co, mb.M, mb.N, mb.K, a, adt, m[4], m[5], b, bdt, m[6], m[7], c, m[8],
                     acc);
  return env.Undefined();
}

// linear(x, xOff, w, wdt, wOff, bias, biasOff, out, outOff, meta): out (M,N) = x (M,K) @ w^T + bias (N);
// w (N,K) of storage dt 0/1/2 seen as B (K,N) through meta's strides, meta as matmul's with nbd 0.
// A float32 w gets the bias per tile of the GEMM (sgemm_bias); a half w in a pass after it.
Napi::Value Linear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t la, lb, lc, lm, lbias;
  const float* x = f32(info, 0, &la);
  long xoff = num(info, 1);
  int wdt = (int)num(info, 3);
  const void* w = typed_operand(info, 2, wdt, &lb);
  long woff = num(info, 4);
  const float* bias = f32(info, 5, &lbias);
  long boff = num(info, 6);
  float* c = f32(info, 7, &lc);
  long coff = num(info, 8);
  const int32_t* m = i32(info, 9, &lm);
  if (lm < 9 || m[0] != 0) fail(env, "linear: bad meta");
  MatmulBatches mb = matmul_batches(env, "linear", m, lm, la, xoff, lb, woff, lc, coff);
  check_contig(env, "linear bias", lbias, boff, mb.N);
  if (wdt == 0) {
    sgemm_bias(mb.M, mb.N, mb.K, x + xoff, m[4], m[5], (const float*)w + woff, m[6], m[7], c + coff, m[8], bias + boff);
  } else {
    const void* wb = (const uint16_t*)w + woff;
    gemm_mixed(mb.M, mb.N, mb.K, x + xoff, 0, m[4], m[5], wb, wdt, m[6], m[7], c + coff, m[8], false);
    gemm_bias_pass(mb.M, mb.N, c + coff, m[8], bias + boff);
  }
  return env.Undefined();
}

#include "addon_kernels.inc"

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const char* isa = std::getenv("TUNEKIT_ISA");
  const char* th = std::getenv("TUNEKIT_THREADS");
  // Configure with defaults at load; JS calls configure() again with the validated env values.
  (void)isa;
  (void)th;
  configure("", 0);
  exports.Set("configure", Napi::Function::New(env, Configure));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak));
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("matmulMixed", Napi::Function::New(env, MatmulMixed));
  exports.Set("linear", Napi::Function::New(env, Linear));
  register_kernels(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tunekit_native, Init)
