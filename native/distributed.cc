// torch.distributed's c10d, thinly: a TCPStore rendezvous, a Gloo process
// group, and its collectives on tensors. Every collective returns a Promise
// settled from the work's completion callback, so no thread (JS or libuv
// pool) blocks while one runs. What to reduce, and when, is decided in
// lib/distributed/.
#include "common.h"
#include "trace.h"
#include "tensor_table.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#ifdef EXTREMA_HAVE_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#endif

#ifdef EXTREMA_HAVE_NCCL
#include <torch/csrc/cuda/nccl.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace extrema {
namespace {

#ifdef EXTREMA_HAVE_GLOO

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  // Gloo: CPU tensors, barriers; NCCL (null unless asked for): CUDA tensors.
  c10::intrusive_ptr<c10d::Backend> backend;
  c10::intrusive_ptr<c10d::Backend> nccl;
  // The same backend as a ProcessGroup, which is what c10d's Reducer takes.
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  int rank = 0;
  int size = 1;
};

// Groups of this JS thread; an id is an index, a destroyed slot stays null.
thread_local std::vector<std::unique_ptr<Group>> g_groups;

Group& GetGroup(const Napi::Value& v) {
  double id = ToDouble(v, "process group");
  TORCH_CHECK(id >= 0 && id < static_cast<double>(g_groups.size()) && std::trunc(id) == id &&
                  g_groups[static_cast<size_t>(id)],
              "unknown or destroyed process group ", id);
  return *g_groups[static_cast<size_t>(id)];
}

struct InitOptions {
  std::string host;
  int port = 0;
  int rank = 0;
  int size = 1;
  bool isServer = false;
  std::chrono::milliseconds timeout{0};
  std::string prefix;
  bool nccl = false;
};

#ifdef EXTREMA_HAVE_NCCL
// ProcessGroupNCCL is allocated here with the layout its header gives for
// the nccl.h this file was compiled with; torch was compiled with its own.
// The same major.minor release keeps them alike (a pip torch pins its
// nvidia-nccl wheel, which is where both come from).
void CheckNcclRelease() {
  // torch packs the NCCL release it was compiled with as major << 32 | minor << 16 | patch.
  std::uint64_t built = torch::cuda::nccl::version();
  std::uint64_t major = built >> 32, minor = (built >> 16) & 0xffff;
  TORCH_CHECK(major == NCCL_MAJOR && minor == NCCL_MINOR, "this addon was compiled with the headers of NCCL ", NCCL_MAJOR, ".",
              NCCL_MINOR, " but torch was compiled with NCCL ", major, ".", minor, "; rebuild the addon against that release's nccl.h");
}

c10::intrusive_ptr<c10d::Backend> NewNccl(const c10::intrusive_ptr<c10d::Store>& store, const InitOptions& o) {
  CheckNcclRelease();
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = o.timeout;
  // Its own key space, as torch gives each backend of a group.
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("nccl/", store);
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, o.rank, o.size, options);
}
#endif

// Connecting waits for every rank (up to the timeout), so it runs on a pool
// thread; the group enters the table only once it is whole, on the JS thread.
class InitWorker : public Napi::AsyncWorker {
 public:
  InitWorker(Napi::Env env, InitOptions o)
      : Napi::AsyncWorker(env), o_(std::move(o)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(o_.port);
      so.isServer = o_.isServer;
      so.numWorkers = static_cast<std::size_t>(o_.size);
      so.waitWorkers = true;  // every rank counts itself in; the server waits for all
      so.timeout = o_.timeout;
      // libtorch carries its own libuv and exports its symbols, but inside
      // node they bind to node's libuv (another version, other struct
      // layouts): the libuv store server then never answers. The classic
      // socket server needs no libuv.
      so.useLibUV = false;
      auto tcp = c10::make_intrusive<c10d::TCPStore>(o_.host, so);
      group_ = std::make_unique<Group>();
      group_->store = c10::make_intrusive<c10d::PrefixStore>(o_.prefix, tcp);
      auto options = c10d::ProcessGroupGloo::Options::create_default(o_.timeout);
      group_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(group_->store, o_.rank, o_.size, options);
      group_->group = c10::make_intrusive<c10d::ProcessGroup>(group_->store, o_.rank, o_.size);
      group_->group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, group_->backend);
      group_->group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
      if (o_.nccl) {
#ifdef EXTREMA_HAVE_NCCL
        group_->nccl = NewNccl(group_->store, o_);
        // The Reducer's all-reduces go through the group, which picks by device.
        group_->group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, group_->nccl);
#else
        TORCH_CHECK(false, "this build of the addon has no NCCL backend");
#endif
      }
      group_->rank = o_.rank;
      group_->size = o_.size;
    } catch (...) {
      group_.reset();
      SetError(ErrorMessage(std::current_exception()));
    }
  }
  void OnOK() override {
    g_groups.push_back(std::move(group_));
    deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(g_groups.size() - 1)));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  InitOptions o_;
  std::unique_ptr<Group> group_;
  Napi::Promise::Deferred deferred_;
};

std::string GetString(const Napi::Object& o, const char* key) { return ToString(o.Get(key), key); }
int64_t GetInt(const Napi::Object& o, const char* key) { return ToInt64(o.Get(key), key); }

// distInit({host, port, rank, size, isServer, timeoutMs, prefix}) -> Promise<group id>
Napi::Value DistInit(const Napi::CallbackInfo& info) {
  TORCH_CHECK(info[0].IsObject(), "distInit expects an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  InitOptions io;
  io.host = GetString(o, "host");
  io.port = static_cast<int>(GetInt(o, "port"));
  io.rank = static_cast<int>(GetInt(o, "rank"));
  io.size = static_cast<int>(GetInt(o, "size"));
  io.isServer = ToBool(o.Get("isServer"), "isServer");
  io.timeout = std::chrono::milliseconds(GetInt(o, "timeoutMs"));
  io.prefix = GetString(o, "prefix");
  io.nccl = ToBool(o.Get("nccl"), "nccl");
  TORCH_CHECK(io.port > 0 && io.port < 65536, "port must be in [1, 65535], got ", io.port);
  TORCH_CHECK(io.size >= 1 && io.rank >= 0 && io.rank < io.size, "rank ", io.rank, " is not in [0, ", io.size, ")");
  TORCH_CHECK(io.timeout.count() > 0, "timeoutMs must be positive");
  auto* worker = new InitWorker(info.Env(), std::move(io));
  auto promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Waits for a work that has no future (Gloo's reduce_scatter) on a pool thread.
class WaitWorker : public Napi::AsyncWorker {
 public:
  WaitWorker(Napi::Env env, c10::intrusive_ptr<c10d::Work> work)
      : Napi::AsyncWorker(env), work_(std::move(work)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      work_->wait();
    } catch (...) {
      SetError(ErrorMessage(std::current_exception()));
    }
  }
  void OnOK() override {
    work_.reset();
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    work_.reset();
    deferred_.Reject(e.Value());
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  Napi::Promise::Deferred deferred_;
};

// Settles a Promise on the JS thread when a c10d work completes. Works with a
// future call back from Gloo's thread and occupy no thread while in flight.
Napi::Value Settle(Napi::Env env, c10::intrusive_ptr<c10d::Work> work) {
  c10::intrusive_ptr<c10::ivalue::Future> future;
  try {
    future = work->getFuture();
  } catch (const c10::Error&) {
    auto* worker = new WaitWorker(env, std::move(work));
    auto promise = worker->Promise();
    worker->Queue();
    return promise;
  }
  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  auto promise = deferred->Promise();
  auto tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                            "extrema-collective", 0, 1);
  // The callback may run right here (already complete) or on a Gloo thread;
  // either way the Promise settles later, on the JS thread.
  future->addCallback([tsfn, deferred, work](c10::ivalue::Future& f) mutable {
    std::string error;
    if (f.hasError()) {
      error = ErrorMessage(f.exception_ptr());
      if (error.empty()) error = "the collective failed";  // empty means success below
    }
    tsfn.NonBlockingCall([deferred, error = std::move(error)](Napi::Env env, Napi::Function) {
      if (error.empty()) {
        deferred->Resolve(env.Undefined());
      } else {
        deferred->Reject(Napi::Error::New(env, error).Value());
      }
    });
    tsfn.Release();
    work.reset();
  });
  return promise;
}

std::vector<at::Tensor> TensorList(const Napi::Value& v, const char* what) {
  std::vector<Napi::Value> items = ArrayItems(v, "an array of tensors", what);
  std::vector<at::Tensor> out;
  out.reserve(items.size());
  for (const auto& item : items) out.push_back(UnwrapTensor(item, what));
  return out;
}

// The backend for these tensors: NCCL for CUDA ones (where the group has
// it), Gloo for CPU ones. lib/runtime/process-group.ts checks first and
// says what to do; this guards the native side on its own.
c10d::Backend& BackendFor(Group& g, const std::vector<at::Tensor>& tensors) {
  TORCH_CHECK(!tensors.empty(), "a collective needs at least one tensor");
  c10::Device device = tensors[0].device();
  for (const auto& t : tensors) TORCH_CHECK(t.device() == device, "a collective's tensors must share one device, got ", device, " and ", t.device());
  if (device.is_cuda()) {
    TORCH_CHECK(g.nccl, "CUDA tensors need the NCCL backend, which this group was not initialised with");
    return *g.nccl;
  }
  TORCH_CHECK(device.is_cpu(), "the Gloo backend reduces CPU tensors, not ", device);
  return *g.backend;
}

// NCCL's work is complete from the host's side once queued on its stream
// (its future completes at once); wait() makes this thread's current stream
// wait for it, without blocking the host unless TORCH_NCCL_BLOCKING_WAIT is
// set, so what JavaScript queues next sees the result. Gloo's work completes
// on its own threads and settles the Promise from there.
Napi::Value Issue(Napi::Env env, const Group& g, const c10d::Backend& backend, c10::intrusive_ptr<c10d::Work> work) {
  if (&backend == g.nccl.get()) {
    work->wait();
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }
  return Settle(env, std::move(work));
}

c10d::ReduceOp ToReduceOp(const Napi::Value& v) {
  std::string op = ToString(v, "reduce op");
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  TORCH_CHECK(false, "unknown reduce op \"", op, "\" (sum, max, min, product)");
}

// distAllReduce(group, tensors, op) -> Promise<void>; in place.
Napi::Value DistAllReduce(const Napi::CallbackInfo& info) {
  TraceRefuse("the collective allReduce");
  Group& g = GetGroup(info[0]);
  auto tensors = TensorList(info[1], "tensors");
  c10d::AllreduceOptions opts;
  opts.reduceOp = ToReduceOp(info[2]);
  c10d::Backend& b = BackendFor(g, tensors);
  return Issue(info.Env(), g, b, b.allreduce(tensors, opts));
}

// distBroadcast(group, tensors, root) -> Promise<void>; in place.
Napi::Value DistBroadcast(const Napi::CallbackInfo& info) {
  TraceRefuse("the collective broadcast");
  Group& g = GetGroup(info[0]);
  auto tensors = TensorList(info[1], "tensors");
  c10d::BroadcastOptions opts;
  opts.rootRank = ToInt64(info[2], "root");
  c10d::Backend& b = BackendFor(g, tensors);
  return Issue(info.Env(), g, b, b.broadcast(tensors, opts));
}

// distAllGather(group, outputs, input) -> Promise<void>: outputs[r] <- rank r's input.
Napi::Value DistAllGather(const Napi::CallbackInfo& info) {
  TraceRefuse("the collective allGather");
  Group& g = GetGroup(info[0]);
  std::vector<std::vector<at::Tensor>> outputs{TensorList(info[1], "outputs")};
  std::vector<at::Tensor> inputs{UnwrapTensor(info[2], "input")};
  std::vector<at::Tensor> all = outputs[0];
  all.push_back(inputs[0]);
  c10d::Backend& b = BackendFor(g, all);
  return Issue(info.Env(), g, b, b.allgather(outputs, inputs));
}

// distReduceScatter(group, output, inputs, op) -> Promise<void>: output <- op over ranks of inputs[rank].
Napi::Value DistReduceScatter(const Napi::CallbackInfo& info) {
  TraceRefuse("the collective reduceScatter");
  Group& g = GetGroup(info[0]);
  std::vector<at::Tensor> outputs{UnwrapTensor(info[1], "output")};
  std::vector<std::vector<at::Tensor>> inputs{TensorList(info[2], "inputs")};
  c10d::ReduceScatterOptions opts;
  opts.reduceOp = ToReduceOp(info[3]);
  std::vector<at::Tensor> all = inputs[0];
  all.push_back(outputs[0]);
  c10d::Backend& b = BackendFor(g, all);
  return Issue(info.Env(), g, b, b.reduce_scatter(outputs, inputs, opts));
}

// distBarrier(group) -> Promise<void>
Napi::Value DistBarrier(const Napi::CallbackInfo& info) {
  TraceRefuse("the collective barrier");
  Group& g = GetGroup(info[0]);
  return Settle(info.Env(), g.backend->barrier(c10d::BarrierOptions()));
}

// distStoreSet(group, key, bytes) / distStoreGet(group, key) -> Uint8Array:
// small messages between ranks (a failing rank's reason, a shared seed).
Napi::Value DistStoreSet(const Napi::CallbackInfo& info) {
  Group& g = GetGroup(info[0]);
  std::string key = ToString(info[1], "key");
  TORCH_CHECK(info[2].IsTypedArray(), "distStoreSet expects a Uint8Array value");
  auto bytes = info[2].As<Napi::Uint8Array>();
  g.store->set(key, std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ByteLength()));
  return info.Env().Undefined();
}

Napi::Value DistStoreCheck(const Napi::CallbackInfo& info) {
  Group& g = GetGroup(info[0]);
  return Napi::Boolean::New(info.Env(), g.store->check({ToString(info[1], "key")}));
}

Napi::Value DistStoreGet(const Napi::CallbackInfo& info) {
  Group& g = GetGroup(info[0]);
  std::vector<uint8_t> value = g.store->get(ToString(info[1], "key"));
  auto out = Napi::Uint8Array::New(info.Env(), value.size());
  std::copy(value.begin(), value.end(), out.Data());
  return out;
}

// c10d's Reducer, torch DDP's engine: it hooks each parameter's gradient
// accumulator, all-reduces a bucket as soon as its gradients are all ready
// (while backward goes on), and before backward returns writes the averaged
// gradients into .grad. Ids index this table; a disposed slot stays null.
thread_local std::vector<std::unique_ptr<c10d::Reducer>> g_reducers;

c10d::Reducer& GetReducer(const Napi::Value& v) {
  double id = ToDouble(v, "reducer");
  TORCH_CHECK(id >= 0 && id < static_cast<double>(g_reducers.size()) && std::trunc(id) == id &&
                  g_reducers[static_cast<size_t>(id)],
              "unknown or disposed reducer ", id);
  return *g_reducers[static_cast<size_t>(id)];
}

// distReducerCreate(group, params, bucketBytes, firstBucketBytes) -> id. The
// buckets are torch DDP's: a small first one, then bucketBytes each, in
// reverse parameter order (the order backward produces gradients).
Napi::Value DistReducerCreate(const Napi::CallbackInfo& info) {
  Group& g = GetGroup(info[0]);
  std::vector<at::Tensor> params;
  for (const auto& item : ArrayItems(info[1], "an array of tensors", "parameters")) params.push_back(UnwrapTensor(item, "parameter"));
  TORCH_CHECK(!params.empty(), "a reducer needs at least one parameter");
  for (const auto& p : params) TORCH_CHECK(p.requires_grad() && p.is_leaf(), "every parameter given to the reducer must be a leaf that requires grad");
  TORCH_CHECK(!params[0].is_cuda() || g.nccl, "CUDA parameters need the NCCL backend, which this group was not initialised with");
  int64_t cap = ToInt64(info[2], "bucketBytes");
  int64_t first = ToInt64(info[3], "firstBucketBytes");
  TORCH_CHECK(cap > 0 && first > 0, "bucket sizes must be positive");
  std::vector<bool> dense(params.size(), false);
  auto [indices, limits] = c10d::compute_bucket_assignment_by_size(params, {static_cast<size_t>(first), static_cast<size_t>(cap)}, dense);
  std::reverse(indices.begin(), indices.end());
  std::reverse(limits.begin(), limits.end());
  std::vector<int64_t> limits64(limits.begin(), limits.end());
  auto reducer = std::make_unique<c10d::Reducer>(params, indices, g.group, dense, cap, /*find_unused_parameters=*/false,
                                                 /*gradient_as_bucket_view=*/false, std::unordered_map<size_t, std::string>(), first,
                                                 /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false, limits64);
  g_reducers.push_back(std::move(reducer));
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("id", static_cast<double>(g_reducers.size() - 1));
  out.Set("buckets", static_cast<double>(indices.size()));
  return out;
}

// distReducerPrepare(id): the next backward all-reduces (torch DDP calls
// this in forward; without it, as in no_sync(), gradients stay local).
Napi::Value DistReducerPrepare(const Napi::CallbackInfo& info) {
  GetReducer(info[0]).prepare_for_backward({});
  return info.Env().Undefined();
}

Napi::Value DistReducerDispose(const Napi::CallbackInfo& info) {
  double id = ToDouble(info[0], "reducer");
  GetReducer(info[0]);
  g_reducers[static_cast<size_t>(id)].reset();
  return info.Env().Undefined();
}

// distDestroy(group): drops this rank's group; work still in flight keeps
// what it needs alive until it completes.
Napi::Value DistDestroy(const Napi::CallbackInfo& info) {
  double id = ToDouble(info[0], "process group");
  auto nccl = GetGroup(info[0]).nccl;
  g_groups[static_cast<size_t>(id)].reset();
  // NCCL's communicators are finalised as torch's destroy_process_group()
  // does (queued work finishes first); dropped without it, its destructor
  // aborts them and warns. The slot is gone first, so a failure here
  // leaves no half-destroyed group behind.
  if (nccl) nccl->shutdown();
  return info.Env().Undefined();
}

#endif  // EXTREMA_HAVE_GLOO

Napi::Value DistAvailable(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
#ifdef EXTREMA_HAVE_GLOO
  out.Set("gloo", true);
#else
  out.Set("gloo", false);
#endif
#ifdef EXTREMA_HAVE_NCCL
  out.Set("nccl", true);
#else
  out.Set("nccl", false);
#endif
  return out;
}

}  // namespace

void RegisterDistributed(Napi::Env env, Napi::Object exports) {
  Export<DistAvailable>(env, exports, "distAvailable");
#ifdef EXTREMA_HAVE_GLOO
  Export<DistInit>(env, exports, "distInit");
  Export<DistAllReduce>(env, exports, "distAllReduce");
  Export<DistBroadcast>(env, exports, "distBroadcast");
  Export<DistAllGather>(env, exports, "distAllGather");
  Export<DistReduceScatter>(env, exports, "distReduceScatter");
  Export<DistBarrier>(env, exports, "distBarrier");
  Export<DistStoreSet>(env, exports, "distStoreSet");
  Export<DistStoreGet>(env, exports, "distStoreGet");
  Export<DistStoreCheck>(env, exports, "distStoreCheck");
  Export<DistDestroy>(env, exports, "distDestroy");
  Export<DistReducerCreate>(env, exports, "distReducerCreate");
  Export<DistReducerPrepare>(env, exports, "distReducerPrepare");
  Export<DistReducerDispose>(env, exports, "distReducerDispose");
#endif
}

}  // namespace extrema
