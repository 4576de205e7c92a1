// Process-wide settings: seeds and generators, threads, devices and their
// memory statistics, autocast. Everything here is device-generic so the same
// sources build against CPU-only and CUDA libtorch.
#include "common.h"
#include "trace.h"
#include "generators.h"
#include "tensor_table.h"

#include <ATen/autocast_mode.h>
#include <ATen/Parallel.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>
#include <torch/utils.h>
#include <torch/version.h>

namespace extrema {
namespace {

thread_local std::vector<at::Generator> g_generators;

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  torch::manual_seed(static_cast<uint64_t>(ToInt64(info[0], "seed")));
  return info.Env().Undefined();
}

// newGenerator(device, seed) -> id
Napi::Value NewGenerator(const Napi::CallbackInfo& info) {
  c10::Device device = ToDevice(info[0], "device");
  at::Generator gen;
  if (device.is_cpu()) {
    gen = at::make_generator<at::CPUGeneratorImpl>();
  } else {
    // A fresh generator for an accelerator is a clone of its default one,
    // reseeded: only the device's own hooks know how to build one.
    gen = at::globalContext().defaultGenerator(device).clone();
  }
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(static_cast<uint64_t>(ToInt64(info[1], "seed")));
  }
  g_generators.push_back(gen);
  return Napi::Number::New(info.Env(), static_cast<double>(g_generators.size() - 1));
}

// defaultGenerator(device) -> id (registered once per device)
Napi::Value DefaultGenerator(const Napi::CallbackInfo& info) {
  c10::Device device = ToDevice(info[0], "device");
  const at::Generator& gen = at::globalContext().defaultGenerator(device);
  for (size_t i = 0; i < g_generators.size(); ++i) {
    if (g_generators[i] == gen) return Napi::Number::New(info.Env(), static_cast<double>(i));
  }
  g_generators.push_back(gen);
  return Napi::Number::New(info.Env(), static_cast<double>(g_generators.size() - 1));
}

Napi::Value GeneratorSeed(const Napi::CallbackInfo& info) {
  at::Generator& gen = GetGenerator(ToDouble(info[0], "generator"));
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(static_cast<uint64_t>(ToInt64(info[1], "seed")));
  return info.Env().Undefined();
}

Napi::Value GeneratorInitialSeed(const Napi::CallbackInfo& info) {
  at::Generator& gen = GetGenerator(ToDouble(info[0], "generator"));
  return Napi::Number::New(info.Env(), static_cast<double>(gen.current_seed()));
}

Napi::Value GeneratorGetState(const Napi::CallbackInfo& info) {
  at::Generator& gen = GetGenerator(ToDouble(info[0], "generator"));
  std::lock_guard<std::mutex> lock(gen.mutex());
  return WrapTensor(info.Env(), gen.get_state());
}

Napi::Value GeneratorSetState(const Napi::CallbackInfo& info) {
  at::Generator& gen = GetGenerator(ToDouble(info[0], "generator"));
  const at::Tensor& state = UnwrapTensor(info[1], "state");
  TORCH_CHECK(state.scalar_type() == at::kByte && state.device().is_cpu(),
              "a generator state is a CPU uint8 tensor, not ", state.scalar_type(), " on ", state.device());
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
  return info.Env().Undefined();
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = ToInt64(info[0], "threads");
  TORCH_CHECK(n > 0, "the number of threads must be positive, not ", n);
  at::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value SetNumInteropThreads(const Napi::CallbackInfo& info) {
  int64_t n = ToInt64(info[0], "threads");
  TORCH_CHECK(n > 0, "the number of threads must be positive, not ", n);
  at::set_num_interop_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value CudaIsAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), torch::cuda::is_available());
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count()));
}

// synchronize(device): waits for all queued work on that device.
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  c10::Device device = ToDevice(info[0], "device");
  if (!device.is_cpu()) {
    const auto* impl = c10::impl::getDeviceGuardImpl(device.type());
    impl->synchronizeDevice(device.has_index() ? device.index() : impl->getDevice().index());
  }
  return info.Env().Undefined();
}

Napi::Value StatObject(Napi::Env env, const c10::CachingDeviceAllocator::Stat& s) {
  auto o = Napi::Object::New(env);
  o.Set("current", static_cast<double>(s.current));
  o.Set("peak", static_cast<double>(s.peak));
  o.Set("allocated", static_cast<double>(s.allocated));
  o.Set("freed", static_cast<double>(s.freed));
  return o;
}

// memoryStats(device) -> allocator statistics of an accelerator.
Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  c10::Device device = ToDevice(info[0], "device");
  TORCH_CHECK(!device.is_cpu(), "memoryStats needs an accelerator device; for CPU use liveBytes()");
  auto* allocator = c10::getDeviceAllocator(device.type());
  TORCH_CHECK(allocator->initialized(), "the ", device.type(), " allocator is not initialised yet");
  auto index = device.has_index() ? device.index() : c10::impl::getDeviceGuardImpl(device.type())->getDevice().index();
  auto stats = allocator->getDeviceStats(index);
  constexpr size_t kAll = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  auto o = Napi::Object::New(env);
  o.Set("allocatedBytes", StatObject(env, stats.allocated_bytes[kAll]));
  o.Set("reservedBytes", StatObject(env, stats.reserved_bytes[kAll]));
  o.Set("activeBytes", StatObject(env, stats.active_bytes[kAll]));
  o.Set("numAllocRetries", static_cast<double>(stats.num_alloc_retries));
  o.Set("numOoms", static_cast<double>(stats.num_ooms));
  return o;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  c10::Device device = ToDevice(info[0], "device");
  if (!device.is_cpu()) c10::getDeviceAllocator(device.type())->emptyCache();
  return info.Env().Undefined();
}

Napi::Value ResetPeakStats(const Napi::CallbackInfo& info) {
  c10::Device device = ToDevice(info[0], "device");
  TORCH_CHECK(!device.is_cpu(), "resetPeakMemoryStats needs an accelerator device");
  auto index = device.has_index() ? device.index() : c10::impl::getDeviceGuardImpl(device.type())->getDevice().index();
  c10::getDeviceAllocator(device.type())->resetPeakStats(index);
  return info.Env().Undefined();
}

// autocastEnter(deviceType, dtypeCode, enabled) -> [prevEnabled, prevDtypeCode]
Napi::Value AutocastEnter(const Napi::CallbackInfo& info) {
  TraceRefuse("autocast");
  c10::Device device = ToDevice(info[0], "device");
  at::ScalarType dtype = ToScalarType(info[1], "dtype");
  bool enabled = ToBool(info[2], "enabled");
  auto type = device.type();
  bool prev_enabled = at::autocast::is_autocast_enabled(type);
  at::ScalarType prev_dtype = at::autocast::get_autocast_dtype(type);
  at::autocast::set_autocast_enabled(type, enabled);
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::increment_nesting();
  auto out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, prev_enabled);
  out.Set(1u, static_cast<double>(prev_dtype));
  return out;
}

// autocastExit(deviceType, prevEnabled, prevDtypeCode)
Napi::Value AutocastExit(const Napi::CallbackInfo& info) {
  c10::Device device = ToDevice(info[0], "device");
  bool prev_enabled = ToBool(info[1], "enabled");
  at::ScalarType prev_dtype = ToScalarType(info[2], "dtype");
  // The cast cache holds casted weights for the outermost region only.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device.type(), prev_enabled);
  at::autocast::set_autocast_dtype(device.type(), prev_dtype);
  return info.Env().Undefined();
}

Napi::Value AutocastState(const Napi::CallbackInfo& info) {
  c10::Device device = ToDevice(info[0], "device");
  auto out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, at::autocast::is_autocast_enabled(device.type()));
  out.Set(1u, static_cast<double>(at::autocast::get_autocast_dtype(device.type())));
  return out;
}

Napi::Value Versions(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("torch", TORCH_VERSION);
  o.Set("parallel", at::get_parallel_info());
  o.Set("config", at::show_config());
  return o;
}

}  // namespace

at::Generator& GetGenerator(double id) {
  TORCH_CHECK(id >= 0 && id < static_cast<double>(g_generators.size()) && std::trunc(id) == id,
              "unknown generator id ", id);
  return g_generators[static_cast<size_t>(id)];
}

void RegisterRuntime(Napi::Env env, Napi::Object exports) {
  Export<ManualSeed>(env, exports, "manualSeed");
  Export<NewGenerator>(env, exports, "newGenerator");
  Export<DefaultGenerator>(env, exports, "defaultGenerator");
  Export<GeneratorSeed>(env, exports, "generatorSeed");
  Export<GeneratorInitialSeed>(env, exports, "generatorInitialSeed");
  Export<GeneratorGetState>(env, exports, "generatorGetState");
  Export<GeneratorSetState>(env, exports, "generatorSetState");
  Export<SetNumThreads>(env, exports, "setNumThreads");
  Export<GetNumThreads>(env, exports, "getNumThreads");
  Export<SetNumInteropThreads>(env, exports, "setNumInteropThreads");
  Export<CudaIsAvailable>(env, exports, "cudaIsAvailable");
  Export<CudaDeviceCount>(env, exports, "cudaDeviceCount");
  Export<Synchronize>(env, exports, "synchronize");
  Export<MemoryStats>(env, exports, "memoryStats");
  Export<EmptyCache>(env, exports, "emptyCache");
  Export<ResetPeakStats>(env, exports, "resetPeakMemoryStats");
  Export<AutocastEnter>(env, exports, "autocastEnter");
  Export<AutocastExit>(env, exports, "autocastExit");
  Export<AutocastState>(env, exports, "autocastState");
  Export<Versions>(env, exports, "versions");
}

}  // namespace extrema
