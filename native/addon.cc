// Registration only: each feature file exports its own functions.
#include "common.h"

#include <malloc.h>

namespace extrema {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__GLIBC__)
  // glibc serves large blocks with mmap and returns them to the OS on every
  // free, so each fresh 4 MiB matmul output page-faults anew. Keeping them in
  // the heap measured ~40% faster on 1024x1024 matmul loops.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
#endif
  RegisterTensorTable(env, exports);
  RegisterDispatch(env, exports);
  RegisterTensorData(env, exports);
  RegisterAutograd(env, exports);
  RegisterRuntime(env, exports);
  return exports;
}

}  // namespace extrema

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return extrema::Init(env, exports); }

NODE_API_MODULE(extrema, InitAddon)
