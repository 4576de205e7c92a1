// Tensors cross into JS as numbers: an index into this table plus a
// generation tag, so a stale id can never reach a tensor that reused its slot.
// A number is far cheaper to hand to JS than an ObjectWrap per result.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace extrema {

class TensorTable {
 public:
  // One table per JS thread: worker_threads that load the addon stay isolated.
  static TensorTable& Current();

  double Insert(at::Tensor tensor);
  bool Contains(double id) const;
  const at::Tensor* Lookup(double id) const;  // nullptr when not live
  void Release(double id);

  size_t Live() const { return live_; }
  // Bytes of the distinct storages held; walks the table (diagnostics only).
  int64_t LiveBytes() const;
  // Bytes created or freed since the last call, for V8's external memory.
  int64_t TakeExternalDelta() {
    int64_t d = pending_delta_;
    pending_delta_ = 0;
    return d;
  }
  int64_t PendingDelta() const { return pending_delta_; }

 private:
  struct Slot {
    at::Tensor tensor;
    int64_t reported_bytes = 0;  // what this slot told V8 it holds
    uint32_t generation = 0;
    bool used = false;
  };
  static constexpr uint64_t kSlotBits = 24;
  static constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;

  const Slot* Find(double id) const;

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  size_t live_ = 0;
  int64_t pending_delta_ = 0;
};

// Inserts a result and returns it as a JS number (null for an undefined tensor).
Napi::Value WrapTensor(Napi::Env env, at::Tensor tensor);
// Reads a tensor id argument; `what` names it in the error.
const at::Tensor& UnwrapTensor(const Napi::Value& v, const char* what);
// Reports accumulated native allocations to V8 once they exceed a threshold.
void FlushExternalMemory(Napi::Env env);

}  // namespace extrema
