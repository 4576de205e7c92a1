// Registration only: each feature file exports its own functions.
#include "common.h"

#if defined(__linux__)
#include <malloc.h>
#endif

namespace extrema {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__GLIBC__)
  // glibc serves blocks above its mmap threshold with mmap and unmaps them on
  // free, so every such allocation page-faults anew. Its dynamic threshold
  // stops growing at 32 MiB, and training activations are often larger;
  // pinning the threshold at 256 MiB keeps them in the reusable heap.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
#endif
  RegisterTensorTable(env, exports);
  RegisterDispatch(env, exports);
  RegisterTensorData(env, exports);
  RegisterAutograd(env, exports);
  RegisterRuntime(env, exports);
  RegisterGraphs(env, exports);
  RegisterDistributed(env, exports);
  RegisterTrace(env, exports);
  RegisterOperators(env, exports);
  return exports;
}

}  // namespace extrema

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return extrema::Init(env, exports); }

NODE_API_MODULE(extrema, InitAddon)
