// Moving bytes between JS TypedArrays and tensors, and reading tensor metadata.
#include "common.h"
#include "tensor_table.h"
#include "trace.h"

#include <c10/core/GradMode.h>

#include <cstring>

namespace extrema {
namespace {

// Large copies go through ATen's parallel copy kernel; small ones are a memcpy.
void CopyBytes(void* dst, const void* src, size_t n) {
  if (n < (size_t{1} << 18)) {
    std::memcpy(dst, src, n);
    return;
  }
  auto opts = at::TensorOptions().dtype(at::kByte);
  at::Tensor to = at::from_blob(dst, {static_cast<int64_t>(n)}, opts);
  at::Tensor from = at::from_blob(const_cast<void*>(src), {static_cast<int64_t>(n)}, opts);
  c10::AutoGradMode no_grad(false);
  to.copy_(from);
}

// fromBuffer(typedArray, shape, dtypeCode) -> id. Copies: JS may reuse or
// detach its buffer afterwards.
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) {
    ThrowType(env, "Expected a TypedArray for data but received " + DescribeJs(info[0]));
  }
  // The shape is read first: its getters could detach the data's buffer.
  std::vector<int64_t> shape = ToIntVector(info[1], "shape");
  at::ScalarType dtype = ToScalarType(info[2], "dtype");
  for (int64_t d : shape) {
    if (d < 0) ThrowType(env, "Expected non-negative sizes in shape");
  }
  // napi_get_typedarray_info gives the bytes of a view on an ArrayBuffer and
  // on a SharedArrayBuffer alike (Napi::ArrayBuffer only takes the former).
  size_t length = 0;
  void* data = nullptr;
  napi_typedarray_type type;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr), Napi::Value());
  size_t byte_length = info[0].As<Napi::TypedArray>().ByteLength();
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t expected = t.nbytes();
  if (byte_length != expected) {
    ThrowType(env, "Expected " + std::to_string(expected) + " bytes of data for a tensor of shape " +
                       c10::str(t.sizes()) + " and dtype " + c10::toString(dtype) + " but received " +
                       std::to_string(byte_length));
  }
  if (expected > 0) CopyBytes(t.data_ptr(), data, expected);
  return WrapTensor(env, std::move(t));
}

at::Tensor ContiguousCpu(const at::Tensor& t) {
  c10::AutoGradMode no_grad(false);
  at::Tensor c = t.device().is_cpu() ? t : t.to(at::kCPU);
  // Conjugate/negative views and non-contiguous layouts are materialised.
  return c.resolve_conj().resolve_neg().contiguous();
}

Napi::ArrayBuffer CopyOut(Napi::Env env, const at::Tensor& c) {
  auto buffer = Napi::ArrayBuffer::New(env, c.nbytes());
  if (c.nbytes() > 0) CopyBytes(buffer.Data(), c.data_ptr(), c.nbytes());
  return buffer;
}

// toBuffer(id) -> ArrayBuffer with the elements in row-major order.
Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  TraceNoteRead(t, "toBuffer");
  return CopyOut(info.Env(), ContiguousCpu(t));
}

class ReadbackWorker : public Napi::AsyncWorker {
 public:
  ReadbackWorker(Napi::Env env, at::Tensor t)
      : Napi::AsyncWorker(env), tensor_(std::move(t)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = ContiguousCpu(tensor_);
    } catch (...) {
      SetError(ErrorMessage(std::current_exception()));
    }
  }
  void OnOK() override {
    deferred_.Resolve(CopyOut(Env(), result_));
    tensor_.reset();
    result_.reset();
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  at::Tensor tensor_;
  at::Tensor result_;
  Napi::Promise::Deferred deferred_;
};

// toBufferAsync(id) -> Promise<ArrayBuffer>; the device copy runs off the JS
// thread, so a CUDA readback does not block the event loop.
Napi::Value ToBufferAsync(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  TraceNoteRead(t, "toBufferAsync");
  auto* worker = new ReadbackWorker(info.Env(), t);
  auto promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value Item(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  TraceNoteRead(t, "item");
  if (t.numel() != 1) {
    throw Napi::Error::New(env, "item() needs a tensor with exactly one element but this one has " +
                                    std::to_string(t.numel()) + " (shape " + c10::str(t.sizes()) + ")");
  }
  c10::Scalar s = t.item();
  if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
  if (s.isIntegral(false)) return Napi::Number::New(env, static_cast<double>(s.toLong()));
  return Napi::Number::New(env, s.toDouble());
}

Napi::Value Shape(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  auto sizes = t.sizes();
  auto out = Napi::Array::New(info.Env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(sizes[i]));
  return out;
}

Napi::Value Strides(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  auto strides = t.strides();
  auto out = Napi::Array::New(info.Env(), strides.size());
  for (size_t i = 0; i < strides.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(strides[i]));
  return out;
}

Napi::Value ScalarTypeOf(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  return Napi::Number::New(info.Env(), static_cast<double>(t.scalar_type()));
}

Napi::Value DeviceOf(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  return Napi::String::New(info.Env(), t.device().str());
}

// flags(id) -> bit set: 1 requires_grad, 2 is_leaf, 4 contiguous, 8 has grad_fn
Napi::Value Flags(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  int flags = (t.requires_grad() ? 1 : 0) | (t.is_leaf() ? 2 : 0) | (t.is_contiguous() ? 4 : 0) |
              (t.grad_fn() ? 8 : 0);
  return Napi::Number::New(info.Env(), flags);
}

Napi::Value SameStorage(const Napi::CallbackInfo& info) {
  const at::Tensor& a = UnwrapTensor(info[0], "first tensor");
  const at::Tensor& b = UnwrapTensor(info[1], "second tensor");
  return Napi::Boolean::New(info.Env(), a.has_storage() && b.has_storage() && a.storage().is_alias_of(b.storage()));
}

// version(id) -> the tensor's in-place modification counter, or -1 for an
// inference tensor (which keeps none). Caches derived from a tensor's values
// (packed weights) compare it to know they are stale.
Napi::Value Version(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  if (t.is_inference()) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), static_cast<double>(t._version()));
}

// share(id) -> a new handle on the same tensor (what JS `clone of a handle`
// needs when one tensor must outlive the scope of another handle).
Napi::Value Share(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  return WrapTensor(info.Env(), t);
}

}  // namespace

void RegisterTensorData(Napi::Env env, Napi::Object exports) {
  Export<FromBuffer>(env, exports, "fromBuffer");
  Export<ToBuffer>(env, exports, "toBuffer");
  Export<ToBufferAsync>(env, exports, "toBufferAsync");
  Export<Item>(env, exports, "item");
  Export<Shape>(env, exports, "shape");
  Export<Strides>(env, exports, "strides");
  Export<ScalarTypeOf>(env, exports, "scalarType");
  Export<DeviceOf>(env, exports, "device");
  Export<Flags>(env, exports, "flags");
  Export<SameStorage>(env, exports, "sameStorage");
  Export<Share>(env, exports, "share");
  Export<Version>(env, exports, "version");
}

}  // namespace extrema
