#include "tensor_table.h"

#include "common.h"

#include <cmath>
#include <unordered_set>

namespace extrema {

static thread_local TensorTable* tls_table EXTREMA_FAST_TLS = nullptr;

TensorTable& TensorTable::Current() {
  if (tls_table == nullptr) tls_table = new TensorTable();  // lives as long as its thread
  return *tls_table;
}

double TensorTable::Insert(at::Tensor tensor) {
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    TORCH_CHECK(slots_.size() < kSlotMask, "too many live tensors (", slots_.size(), ")");
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[index];
  slot.used = true;
  slot.reported_bytes = 0;
  // A storage nobody else holds is memory this handle brought into being;
  // views of existing storages add nothing. V8 only uses this as a GC hint,
  // and only host memory is V8's business: reporting device bytes made V8 run
  // a full collection about 14 times per CUDA training step (issue 10), while
  // the caching allocator, not the JS heap, bounds device memory. Pinned host
  // memory lives on the CPU device and stays reported.
  if (tensor.defined() && tensor.has_storage() && tensor.storage().use_count() == 1 &&
      tensor.storage().device().is_cpu()) {
    slot.reported_bytes = static_cast<int64_t>(tensor.storage().nbytes());
    pending_delta_ += slot.reported_bytes;
  }
  slot.tensor = std::move(tensor);
  ++live_;
  return static_cast<double>((static_cast<uint64_t>(slot.generation) << kSlotBits) | index);
}

const TensorTable::Slot* TensorTable::Find(double id) const {
  if (!(id >= 0) || std::trunc(id) != id || id > 9007199254740991.0) return nullptr;
  uint64_t raw = static_cast<uint64_t>(id);
  uint64_t index = raw & kSlotMask;
  uint64_t generation = raw >> kSlotBits;
  if (index >= slots_.size()) return nullptr;
  const Slot& slot = slots_[index];
  if (!slot.used || slot.generation != generation) return nullptr;
  return &slot;
}

int64_t TensorTable::LiveBytes() const {
  std::unordered_set<const c10::StorageImpl*> seen;
  int64_t total = 0;
  for (const Slot& slot : slots_) {
    if (!slot.used || !slot.tensor.defined() || !slot.tensor.has_storage()) continue;
    const c10::StorageImpl* impl = slot.tensor.storage().unsafeGetStorageImpl();
    if (seen.insert(impl).second) total += static_cast<int64_t>(impl->nbytes());
  }
  return total;
}

bool TensorTable::Contains(double id) const { return Find(id) != nullptr; }

const at::Tensor* TensorTable::Lookup(double id) const {
  const Slot* slot = Find(id);
  return slot == nullptr ? nullptr : &slot->tensor;
}

void TensorTable::Release(double id) {
  const Slot* found = Find(id);
  TORCH_CHECK(found != nullptr, "tensor handle ", id, " is not live (already disposed)");
  Slot& slot = slots_[static_cast<uint64_t>(id) & kSlotMask];
  pending_delta_ -= slot.reported_bytes;
  slot.reported_bytes = 0;
  slot.tensor.reset();
  slot.used = false;
  // Generations wrap after 2^29 reuses of one slot; ids stay below 2^53.
  slot.generation = (slot.generation + 1) & ((1u << 29) - 1);
  free_.push_back(static_cast<uint32_t>(&slot - slots_.data()));
  --live_;
}

void FlushExternalMemory(Napi::Env env) {
  TensorTable& table = TensorTable::Current();
  int64_t pending = table.PendingDelta();
  if (pending > (int64_t{1} << 20) || pending < -(int64_t{1} << 20)) {
    Napi::MemoryManagement::AdjustExternalMemory(env, table.TakeExternalDelta());
  }
}

// v8ExternalMemory() -> V8's external byte count after flushing what is pending.
static Napi::Value V8ExternalMemory(const Napi::CallbackInfo& info) {
  int64_t total = Napi::MemoryManagement::AdjustExternalMemory(info.Env(), TensorTable::Current().TakeExternalDelta());
  return Napi::Number::New(info.Env(), static_cast<double>(total));
}

Napi::Value WrapTensor(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  double id = TensorTable::Current().Insert(std::move(tensor));
  FlushExternalMemory(env);
  return Napi::Number::New(env, id);
}

const at::Tensor& UnwrapTensor(const Napi::Value& v, const char* what) {
  double id = 0;
  // One N-API call: reading the double fails for anything but a number.
  if (napi_get_value_double(v.Env(), v, &id) != napi_ok) {
    ThrowType(v.Env(), std::string("Expected a tensor for ") + what + " but received " + DescribeJs(v));
  }
  const at::Tensor* t = TensorTable::Current().Lookup(id);
  if (t == nullptr) {
    throw Napi::Error::New(v.Env(), std::string("Tensor passed as ") + what + " has been disposed");
  }
  return *t;
}

static Napi::Value Release(const Napi::CallbackInfo& info) {
  TensorTable& table = TensorTable::Current();
  double id = ToDouble(info[0], "tensor id");
  if (!table.Contains(id)) {
    throw Napi::Error::New(info.Env(), "Tensor has already been disposed");
  }
  table.Release(id);
  FlushExternalMemory(info.Env());
  return info.Env().Undefined();
}

// Frees many tensors in one crossing; ids that are no longer live are skipped
// so a scope can release whatever it tracked without checking each first.
static Napi::Value ReleaseMany(const Napi::CallbackInfo& info) {
  TensorTable& table = TensorTable::Current();
  if (info[0].IsTypedArray()) {
    auto ids = info[0].As<Napi::Float64Array>();
    for (size_t i = 0; i < ids.ElementLength(); ++i) {
      if (table.Contains(ids[i])) table.Release(ids[i]);
    }
  } else {
    for (const Napi::Value& e : ArrayItems(info[0], "an array of tensor ids", "releaseMany")) {
      double id = ToDouble(e, "tensor id");
      if (table.Contains(id)) table.Release(id);
    }
  }
  FlushExternalMemory(info.Env());
  return info.Env().Undefined();
}

static Napi::Value IsLive(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), TensorTable::Current().Contains(ToDouble(info[0], "tensor id")));
}

static Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(TensorTable::Current().Live()));
}

static Napi::Value LiveBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(TensorTable::Current().LiveBytes()));
}

void RegisterTensorTable(Napi::Env env, Napi::Object exports) {
  Export<Release>(env, exports, "release");
  Export<ReleaseMany>(env, exports, "releaseMany");
  Export<IsLive>(env, exports, "isLive");
  Export<LiveTensors>(env, exports, "liveTensors");
  Export<LiveBytes>(env, exports, "liveBytes");
  Export<V8ExternalMemory>(env, exports, "v8ExternalMemory");
}

}  // namespace extrema
