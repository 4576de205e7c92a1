// Autograd entry points the dispatcher cannot express: running backward,
// reading and writing .grad, and the thread-local grad mode.
#include "common.h"
#include "trace.h"

#include <c10/core/InferenceMode.h>

#include <memory>
#include <vector>
#include "tensor_table.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

namespace extrema {
namespace {

std::vector<at::Tensor> TensorsFrom(const Napi::Value& v, const char* what, bool allow_null) {
  std::vector<Napi::Value> items = ArrayItems(v, "an array of tensors", what);
  std::vector<at::Tensor> out;
  out.reserve(items.size());
  for (const Napi::Value& e : items) {
    if (allow_null && (e.IsNull() || e.IsUndefined())) {
      out.emplace_back();
    } else {
      out.push_back(UnwrapTensor(e, what));
    }
  }
  return out;
}

// backward(outputs[], grads[] | null, retainGraph, createGraph, inputs[] | null)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  TraceRefuse("backward");
  auto outputs = TensorsFrom(info[0], "outputs", false);
  std::vector<at::Tensor> grads;
  if (info[1].IsArray()) grads = TensorsFrom(info[1], "gradients", true);
  std::optional<bool> retain;
  if (info[2].IsBoolean()) retain = info[2].As<Napi::Boolean>().Value();
  bool create = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  std::vector<at::Tensor> inputs;
  if (info[4].IsArray()) inputs = TensorsFrom(info[4], "inputs", false);
  torch::autograd::backward(outputs, grads, retain, create, inputs);
  return info.Env().Undefined();
}

// grad(outputs[], inputs[], gradOutputs[] | null, retainGraph, createGraph, allowUnused) -> (id|null)[]
Napi::Value Grad(const Napi::CallbackInfo& info) {
  TraceRefuse("grad");
  auto outputs = TensorsFrom(info[0], "outputs", false);
  auto inputs = TensorsFrom(info[1], "inputs", false);
  std::vector<at::Tensor> grad_outputs;
  if (info[2].IsArray()) grad_outputs = TensorsFrom(info[2], "grad outputs", true);
  std::optional<bool> retain;
  if (info[3].IsBoolean()) retain = info[3].As<Napi::Boolean>().Value();
  bool create = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
  bool allow_unused = info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
  auto grads = torch::autograd::grad(outputs, inputs, grad_outputs, retain, create, allow_unused);
  auto out = Napi::Array::New(info.Env(), grads.size());
  for (size_t i = 0; i < grads.size(); ++i) out.Set(static_cast<uint32_t>(i), WrapTensor(info.Env(), grads[i]));
  return out;
}

Napi::Value GetGrad(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  return WrapTensor(info.Env(), t.grad());
}

Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  TraceRefuse("setGrad");
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  if (info[1].IsNull() || info[1].IsUndefined()) {
    t.mutable_grad().reset();
  } else {
    const at::Tensor& g = UnwrapTensor(info[1], "gradient");
    TORCH_CHECK(g.sizes() == t.sizes(), "assigned grad has shape ", g.sizes(), " but the tensor has shape ", t.sizes());
    TORCH_CHECK(g.scalar_type() == t.scalar_type(), "assigned grad has dtype ", g.scalar_type(),
                " but the tensor has dtype ", t.scalar_type());
    TORCH_CHECK(g.device() == t.device(), "assigned grad is on ", g.device(), " but the tensor is on ", t.device());
    t.mutable_grad() = g;
  }
  return info.Env().Undefined();
}

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  TraceRefuse("requiresGrad_");
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  bool flag = ToBool(info[1], "requiresGrad");
  const_cast<at::Tensor&>(t).set_requires_grad(flag);
  return info.Env().Undefined();
}

Napi::Value GradFnName(const Napi::CallbackInfo& info) {
  const at::Tensor& t = UnwrapTensor(info[0], "tensor");
  auto fn = t.grad_fn();
  if (!fn) return info.Env().Null();
  return Napi::String::New(info.Env(), fn->name());
}

// setGradEnabled(bool) -> previous
Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(ToBool(info[0], "enabled"));
  return Napi::Boolean::New(info.Env(), previous);
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

// Inference mode spans many JS calls, so its RAII guards live on a per-thread
// stack: inferenceModeEnter() pushes one, inferenceModeExit() pops the last.
thread_local std::vector<std::unique_ptr<c10::InferenceMode>> g_inference;

Napi::Value InferenceModeEnter(const Napi::CallbackInfo& info) {
  g_inference.push_back(std::make_unique<c10::InferenceMode>(true));
  return Napi::Number::New(info.Env(), static_cast<double>(g_inference.size()));
}

// inferenceModeExit(depth): `depth` is what the matching enter returned, so
// an unbalanced exit is an error instead of silently leaving the wrong guard.
Napi::Value InferenceModeExit(const Napi::CallbackInfo& info) {
  double depth = ToDouble(info[0], "depth");
  TORCH_CHECK(!g_inference.empty() && depth == static_cast<double>(g_inference.size()), "inference mode exited out of order (depth ", depth, ", open ", g_inference.size(), ")");
  g_inference.pop_back();
  return info.Env().Undefined();
}

}  // namespace

void RegisterAutograd(Napi::Env env, Napi::Object exports) {
  Export<Backward>(env, exports, "backward");
  Export<Grad>(env, exports, "grad");
  Export<GetGrad>(env, exports, "getGrad");
  Export<SetGrad>(env, exports, "setGrad");
  Export<SetRequiresGrad>(env, exports, "setRequiresGrad");
  Export<GradFnName>(env, exports, "gradFnName");
  Export<SetGradEnabled>(env, exports, "setGradEnabled");
  Export<IsGradEnabled>(env, exports, "isGradEnabled");
  Export<InferenceModeEnter>(env, exports, "inferenceModeEnter");
  Export<InferenceModeExit>(env, exports, "inferenceModeExit");
}

}  // namespace extrema
