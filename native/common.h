// Shared plumbing for the tunekit kernels: ISA selection, the persistent thread pool, per-thread
// scratch buffers and the SGEMM entry points every other kernel family builds on.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace tk {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

// ---- runtime.cc ----------------------------------------------------------------------------
Isa isa();
const char* isa_name(Isa i);
bool cpu_has(Isa i);
// Sets the ISA path and thread count; returns an error message or nullptr.
const char* configure(const char* isa_name, int threads);
int num_threads();

// A non-owning callable reference: parallel_for takes any lambda without allocating.
struct TaskRef {
  void* obj;
  void (*call)(void*, long task, int thread);
};
void parallel_for_ref(long ntasks, const TaskRef& f);
// Runs f(task, thread) for task in [0, ntasks) on the pool (thread in [0, num_threads())).
// Nested calls and calls while another JS thread holds the pool run inline.
template <class F>
inline void parallel_for(long ntasks, F&& f) {
  TaskRef r{(void*)&f, [](void* o, long t, int th) { (*(typename std::remove_reference<F>::type*)o)(t, th); }};
  parallel_for_ref(ntasks, r);
}
// Index of the calling pool thread (0 outside the pool).
int thread_index();

// Per-thread scratch: slot `slot` of the calling thread, grown (never shrunk) to n floats,
// 64-byte aligned. Contents are undefined.
float* scratch(int slot, size_t n);
// Workspace of the calling thread for one kernel call, shared with the pool threads it starts
// (e.g. im2col columns); same growth rule.
float* workspace(int slot, size_t n);

// ---- gemm.cc --------------------------------------------------------------------------------
// C (M,N) [+]= A (M,K) @ B (K,N). A and B have arbitrary element strides (rs = row, cs = column),
// C is row-major with row stride ldc. accumulate: add into C instead of overwriting.
// Threads over tiles of C.
void sgemm(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb,
           float* C, long ldc, bool accumulate);
// C (M,N) = A (M,K) @ B (K,N) + bias (N) broadcast over rows, overwriting C; threaded like sgemm.
// The bias is added to each tile of C as its last K slice is stored (while it is in L1).
void sgemm_bias(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb, long csb,
                float* C, long ldc, const float* bias);
// C (M,N) += bias (N) over rows, as a separate pass (threaded over rows).
void gemm_bias_pass(long M, long N, float* C, long ldc, const float* bias);
// Same, on the calling thread only (for callers that already parallelise).
void sgemm_serial(long M, long N, long K, const float* A, long rsa, long csa, const float* B, long rsb,
                  long csb, float* C, long ldc, bool accumulate);
// Batched: nb problems, batch b at A + aoff[b], B + boff[b], C + coff[b].
void sgemm_batched(long nb, const long* aoff, const long* boff, const long* coff, long M, long N, long K,
                   const float* A, long rsa, long csa, const float* B, long rsb, long csb, float* C, long ldc,
                   bool accumulate);
// Implicit-operand GEMM for callers that build B on the fly (convolution without im2col).
// BPacker::fn(ctx, k0, kc, j0, nr, NR, dst) writes B[k0:k0+kc, j0:j0+nr] as kc rows of NR floats
// (dst[k * NR + j]), columns nr..NR-1 zero. CEmitter::fn(ctx, j0, nr, c, ldc) receives the
// finished columns C[:, j0:j0+nr] (row i at c + i * ldc) instead of C being written.
struct BPacker {
  void (*fn)(const void* ctx, long k0, long kc, long j0, long nr, long NR, float* dst);
  const void* ctx;
};
struct CEmitter {
  void (*fn)(const void* ctx, long j0, long nr, const float* c, long ldc);
  const void* ctx;
};
// C (M,N) [+]= A (M,K) @ B (K,N) on the calling thread, B from pb (or strided B when pb.fn is
// null), C to emit when emit.fn is set (then C/ldc/accumulate are unused). a_packed: A is the
// output of sgemm_pack_a (shared by several calls), rsa/csa unused. Scratch slots 0-2.
void sgemm_panels_serial(long M, long N, long K, const float* A, long rsa, long csa, bool a_packed, const float* B,
                         long rsb, long csb, BPacker pb, float* C, long ldc, bool accumulate, CEmitter emit);
// Floats needed by sgemm_pack_a, and the packing itself (threaded).
long sgemm_packed_a_size(long M, long K);
void sgemm_pack_a(long M, long K, const float* A, long rsa, long csa, float* dst);
// Column width of the packed B panels (the micro-kernel's NR) on the active ISA.
int sgemm_nr();
// B (K, N) packed whole from pb (threaded; the layout sgemm_prepacked reads), its size in floats,
// and C (M, N) [+]= A @ B with this B, threads over rows of C: for narrow C (few panels of
// columns), where splitting N would leave each thread a ragged handful. A is row-major with row
// stride lda (read in place, not packed), or with lda = 0 the output of sgemm_pack_a.
long sgemm_packed_b_size(long N, long K);
void sgemm_pack_b_with(long N, long K, BPacker pb, float* dst);
void sgemm_prepacked(long M, long N, long K, const float* pa, long lda, const float* pb, float* C, long ldc,
                     bool accumulate);
// Register-only FMA throughput loop (GFLOP/s measurement); returns flops done.
double fma_peak_loop(long iters);

// ---- gemm_half.cc ---------------------------------------------------------------------------
// sgemm/sgemm_batched with per-operand storage types (dt 0 float32, 1 bfloat16, 2 float16; a
// half operand points at uint16_t): widened to float32 while packing, float32 accumulate.
void gemm_mixed(long M, long N, long K, const void* A, int adt, long rsa, long csa, const void* B, int bdt, long rsb,
                long csb, float* C, long ldc, bool accumulate);
void gemm_mixed_batched(long nb, const long* aoff, const long* boff, const long* coff, long M, long N, long K,
                        const void* A, int adt, long rsa, long csa, const void* B, int bdt, long rsb, long csb,
                        float* C, long ldc, bool accumulate);
// The opt-in AVX512-BF16 path (TUNEKIT_BF16_DOT=1): whether this CPU has it, and whether
// gemm_mixed uses it now (asked for, avx512 path active, supported). It rounds a float32 A to bf16.
bool bf16_dot_supported();
bool bf16_dot_active();

}  // namespace tk

// How a threaded GEMM shares C among T threads: along M or along N, whichever repacks less (each
// thread packs the operand it shares with the others), in chunks of whole micro-tiles; serial when
// one thread, too little work, or too few columns to share.
struct GemmSplit {
  bool serial, splitM;
  long len, chunk, ntasks;
};
inline GemmSplit gemm_split(long M, long N, long K, int T, long mr, long nr, long nc) {
  auto ceil_div = [](long a, long b) { return (a + b - 1) / b; };
  GemmSplit sp{true, false, 0, 0, 0};
  if (T == 1 || 2.0 * M * N * K < 2.0 * 96 * 96 * 96) return sp;
  double costM = (double)T * K * N + (double)M * K * ceil_div(N, nc);
  double costN = (double)K * N + (double)T * M * K * ceil_div(ceil_div(N, T), nc);
  sp.splitM = M >= (long)T * mr && (costM <= costN || N < (long)T * nr);
  if (!sp.splitM && N < (long)T * nr) return sp;
  long unit = sp.splitM ? mr : nr;
  sp.len = sp.splitM ? M : N;
  sp.chunk = ceil_div(ceil_div(sp.len, unit), T) * unit;
  sp.ntasks = ceil_div(sp.len, sp.chunk);
  sp.serial = false;
  return sp;
}
