// ISA detection (cpuid), the persistent thread pool and per-thread scratch buffers.
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "common.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace tk {

// ---------------------------------------------------------------------------------------------
// ISA

static bool detect(Isa want) {
  if (want == Isa::generic) return true;
#if defined(__x86_64__)
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (want == Isa::avx2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

static Isa g_isa = Isa::generic;
static int g_threads = 1;

Isa isa() { return g_isa; }
bool cpu_has(Isa i) { return detect(i); }
const char* isa_name(Isa i) { return i == Isa::avx512 ? "avx512" : i == Isa::avx2 ? "avx2" : "generic"; }
int num_threads() { return g_threads; }

// ---------------------------------------------------------------------------------------------
// Thread pool: workers sleep on a condition variable, spin briefly after each job so that
// back-to-back kernel calls do not pay a wake-up, and pull task indices from an atomic counter.

namespace {
struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable wake;
  std::mutex call_mu;  // one job at a time (several JS threads may share the addon)
  std::atomic<uint64_t> generation{0};
  std::atomic<long> next{0};
  std::atomic<int> running{0};
  const TaskRef* job = nullptr;
  long ntasks = 0;
};
Pool* g_pool = nullptr;  // leaked on purpose: no join at process exit
thread_local int t_index = 0;
thread_local bool t_in_pool = false;

void run_tasks(Pool* p, int th) {
  const TaskRef* job = p->job;
  long n = p->ntasks;
  for (;;) {
    long t = p->next.fetch_add(1, std::memory_order_relaxed);
    if (t >= n) break;
    job->call(job->obj, t, th);
  }
}

void worker_main(Pool* p, int th) {
  t_index = th;
  t_in_pool = true;
  uint64_t seen = 0;
  for (;;) {
    // spin a little before sleeping
    uint64_t g = p->generation.load(std::memory_order_acquire);
    for (int i = 0; i < 4000 && g == seen; i++) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
      g = p->generation.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lk(p->mu);
      p->wake.wait(lk, [&] { return p->generation.load(std::memory_order_acquire) != seen; });
      g = p->generation.load(std::memory_order_acquire);
    }
    seen = g;
    if (th < g_threads) run_tasks(p, th);
    p->running.fetch_sub(1, std::memory_order_acq_rel);
  }
}
}  // namespace

const char* configure(const char* name, int threads) {
  static char msg[256];
  Isa want;
  if (name == nullptr || !*name) {
    want = detect(Isa::avx512) ? Isa::avx512 : detect(Isa::avx2) ? Isa::avx2 : Isa::generic;
  } else if (!strcmp(name, "avx512")) {
    want = Isa::avx512;
  } else if (!strcmp(name, "avx2")) {
    want = Isa::avx2;
  } else if (!strcmp(name, "generic")) {
    want = Isa::generic;
  } else {
    snprintf(msg, sizeof msg, "TUNEKIT_ISA=%s is not one of avx512, avx2, generic", name);
    return msg;
  }
  if (!detect(want)) {
    snprintf(msg, sizeof msg, "TUNEKIT_ISA=%s requested but this CPU lacks it (%s)", name,
             want == Isa::avx512 ? "needs avx512f, avx512bw, avx512vl, avx512dq, fma" : "needs avx2, fma");
    return msg;
  }
  g_isa = want;
  if (threads <= 0) threads = (int)std::thread::hardware_concurrency();
  if (threads <= 0) threads = 1;
  if (threads > 256) threads = 256;
  if (g_pool == nullptr || threads != g_threads) {
    if (g_pool != nullptr && threads < g_threads) {
      // Shrinking: keep the existing workers idle; only the first `threads` take part.
      g_threads = threads;
      return nullptr;
    }
    if (g_pool == nullptr) g_pool = new Pool();
    for (int th = (int)g_pool->workers.size() + 1; th < threads; th++) {
      g_pool->workers.emplace_back(worker_main, g_pool, th);
      g_pool->workers.back().detach();
    }
    g_threads = threads;
  }
  return nullptr;
}

int thread_index() { return t_index; }

void parallel_for_ref(long ntasks, const TaskRef& f) {
  if (ntasks <= 0) return;
  Pool* p = g_pool;
  int nw = g_threads - 1;
  if (p == nullptr || nw == 0 || ntasks == 1 || t_in_pool || !p->call_mu.try_lock()) {
    for (long t = 0; t < ntasks; t++) f.call(f.obj, t, t_index);
    return;
  }
  // Only wake workers the job can use; extra workers (after shrinking) stay parked by the
  // running count check below because they still see the generation change: they just find no
  // tasks left.
  p->job = &f;
  p->ntasks = ntasks;
  p->next.store(0, std::memory_order_relaxed);
  int nworkers = (int)p->workers.size();
  p->running.store(nworkers, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lk(p->mu);
    p->generation.fetch_add(1, std::memory_order_acq_rel);
  }
  p->wake.notify_all();
  t_in_pool = true;
  run_tasks(p, 0);
  t_in_pool = false;
  while (p->running.load(std::memory_order_acquire) != 0) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }
  p->call_mu.unlock();
}

// ---------------------------------------------------------------------------------------------
// Scratch buffers

namespace {
struct Buf {
  float* p = nullptr;
  size_t n = 0;
  ~Buf() { std::free(p); }
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      size_t bytes = ((want * sizeof(float) + 63) / 64) * 64 + 64;
      p = (float*)std::aligned_alloc(64, bytes);
      if (!p) throw std::bad_alloc();
      n = want;
    }
    return p;
  }
};
thread_local Buf t_scratch[4];
thread_local Buf t_work[4];  // per calling (JS) thread: concurrent JS threads never share one
}  // namespace

float* scratch(int slot, size_t n) { return t_scratch[slot].get(n); }
float* workspace(int slot, size_t n) { return t_work[slot].get(n); }

}  // namespace tk
