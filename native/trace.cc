// Operator traces: record the dispatcher calls a JavaScript function makes for
// some input tensors, then replay that list on new inputs of the same shapes
// with one call from JS. A replay runs the same operators with the same
// arguments, so it computes exactly what the function would; it only skips
// the JavaScript between operators. Nothing model-specific lives here: a
// trace is a list of (operator, arguments), where each tensor argument is
// either a tensor the trace computed (a slot) or one it found (a constant,
// held by reference: a weight changed in place is seen, a replaced one not).
//
// While recording, every tensor the trace computed keeps its TensorImpl
// object (a weak reference) until the end, so that no later tensor can reuse
// its address and be mistaken for it. Only the object: a tensor that dies
// gives its storage back as it would in an eager pass. Holding the whole
// tensors made a recording allocate fresh memory for every intermediate, which
// the kernel then faulted in page by page: 212 ms instead of 56 to record
// the demo model's forward pass at 32 images, and that much more memory.
#include "trace.h"

#include "common.h"
#include "tensor_table.h"

#include <ATen/autocast_mode.h>
#include <c10/util/intrusive_ptr.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace extrema {
namespace {

// A tensor argument: a slot the trace fills, or a constant it holds.
struct TensorRef {
  static constexpr int32_t kConstant = -1;
  static constexpr int32_t kAbsent = -2;  // a None in an optional-tensor list
  int32_t slot = kConstant;
  at::Tensor constant;
};

struct ArgRef {
  enum class Kind : uint8_t { Constant, Tensor, TensorList, OptTensorList } kind = Kind::Constant;
  c10::IValue constant;            // Kind::Constant
  TensorRef tensor;                // Kind::Tensor
  std::vector<TensorRef> elems;    // the lists
};

struct Step {
  c10::OperatorHandle op;
  std::vector<ArgRef> args;
  // Per return: the slots it fills (one for a tensor, one per element of a
  // tensor list, none for anything else).
  std::vector<std::vector<int32_t>> outputs;
  // Slots no later step reads: released right after this one.
  std::vector<int32_t> release;
};

// Autocast decides which kernels ATen runs below the recorded operators, so a
// replay must run under the autocast state of its recording.
struct AutocastState {
  bool cpu = false;
  bool cuda = false;
  at::ScalarType cpu_dtype = at::kBFloat16;
  at::ScalarType cuda_dtype = at::kHalf;
  static AutocastState Now() {
    return {at::autocast::is_autocast_enabled(at::kCPU), at::autocast::is_autocast_enabled(at::kCUDA),
            at::autocast::get_autocast_dtype(at::kCPU), at::autocast::get_autocast_dtype(at::kCUDA)};
  }
  bool operator==(const AutocastState& o) const {
    return cpu == o.cpu && cuda == o.cuda && (!cpu || cpu_dtype == o.cpu_dtype) && (!cuda || cuda_dtype == o.cuda_dtype);
  }
  std::string Describe() const {
    std::string out;
    if (cpu) out += std::string("cpu ") + c10::toString(cpu_dtype);
    if (cuda) out += (out.empty() ? "" : ", ") + std::string("cuda ") + c10::toString(cuda_dtype);
    return out.empty() ? "off" : out;
  }
};

struct Trace {
  AutocastState autocast;
  std::vector<std::vector<int64_t>> input_shapes;
  std::vector<at::ScalarType> input_dtypes;
  std::vector<c10::Device> input_devices;
  std::vector<Step> steps;
  std::vector<TensorRef> outputs;
  int32_t slots = 0;
};

struct Recorder {
  Trace trace;
  std::unordered_map<const c10::TensorImpl*, int32_t> slot_of;
  std::vector<c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>> keep_alive;
  std::string refused;  // why the recording cannot be replayed (the whole message), if it cannot
};

thread_local Recorder* tls_recorder EXTREMA_FAST_TLS = nullptr;
thread_local std::vector<std::unique_ptr<Trace>> g_traces;

TensorRef RefOf(const Recorder& recorder, const at::Tensor& t) {
  TensorRef r;
  if (t.defined()) {
    auto found = recorder.slot_of.find(t.unsafeGetTensorImpl());
    if (found != recorder.slot_of.end()) {
      r.slot = found->second;
      return r;
    }
  }
  r.constant = t;
  return r;
}

int32_t NewSlot(Recorder& recorder, const at::Tensor& t) {
  int32_t slot = recorder.trace.slots++;
  if (t.defined()) {
    recorder.slot_of[t.unsafeGetTensorImpl()] = slot;
    recorder.keep_alive.emplace_back(t.getIntrusivePtr());
  }
  return slot;
}

bool IsOptionalTensorList(const c10::IValue& v) {
  if (!v.isList()) return false;
  auto element = v.toList().elementType();
  auto optional = element->cast<c10::OptionalType>();
  return optional && optional->getElementType()->kind() == c10::TypeKind::TensorType;
}

Trace& GetTrace(const Napi::Value& v) {
  double id = ToDouble(v, "trace");
  TORCH_CHECK(id >= 0 && id < static_cast<double>(g_traces.size()) && std::trunc(id) == id && g_traces[static_cast<size_t>(id)],
              "unknown or disposed trace id ", id);
  return *g_traces[static_cast<size_t>(id)];
}

std::vector<at::Tensor> Tensors(const Napi::Value& v, const char* what) {
  std::vector<at::Tensor> out;
  for (const Napi::Value& e : ArrayItems(v, "an array of tensors", what)) out.push_back(UnwrapTensor(e, what));
  return out;
}

// traceBegin(inputs): recording starts; `inputs` are what replays will replace.
Napi::Value TraceBegin(const Napi::CallbackInfo& info) {
  // Read first: reading a JS array can run JS.
  std::vector<at::Tensor> inputs = Tensors(info[0], "inputs of the trace");
  TORCH_CHECK(tls_recorder == nullptr, "a trace is already recording on this thread; traces do not nest");
  auto recorder = std::make_unique<Recorder>();
  recorder->trace.autocast = AutocastState::Now();
  for (const at::Tensor& t : inputs) {
    TORCH_CHECK(t.defined(), "an input of the trace is an undefined tensor");
    TORCH_CHECK(!recorder->slot_of.count(t.unsafeGetTensorImpl()), "the same tensor is given twice as an input of the trace");
    recorder->trace.input_shapes.push_back(t.sizes().vec());
    recorder->trace.input_dtypes.push_back(t.scalar_type());
    recorder->trace.input_devices.push_back(t.device());
    NewSlot(*recorder, t);
  }
  tls_recorder = recorder.release();
  return info.Env().Undefined();
}

// traceAbort(): drops the recording (the traced function threw).
Napi::Value TraceAbort(const Napi::CallbackInfo& info) {
  delete tls_recorder;
  tls_recorder = nullptr;
  return info.Env().Undefined();
}

// traceEnd(outputs) -> trace id
Napi::Value TraceEnd(const Napi::CallbackInfo& info) {
  TORCH_CHECK(tls_recorder != nullptr, "no trace is recording on this thread");
  std::unique_ptr<Recorder> recorder(tls_recorder);
  tls_recorder = nullptr;
  if (!recorder->refused.empty()) throw Napi::Error::New(info.Env(), recorder->refused);
  Trace& trace = recorder->trace;
  std::vector<at::Tensor> outputs = Tensors(info[0], "outputs of the trace");
  for (const at::Tensor& t : outputs) trace.outputs.push_back(RefOf(*recorder, t));
  // Each slot's last reader; the inputs' and outputs' slots are never released.
  std::vector<int32_t> last(trace.slots, -1);
  for (size_t s = 0; s < trace.steps.size(); ++s) {
    const Step& step = trace.steps[s];
    auto read = [&](const TensorRef& r) {
      if (r.slot >= 0) last[r.slot] = static_cast<int32_t>(s);
    };
    for (const ArgRef& a : step.args) {
      read(a.tensor);
      for (const TensorRef& e : a.elems) read(e);
    }
    for (const auto& slots : step.outputs) {
      for (int32_t slot : slots) {
        if (last[slot] < static_cast<int32_t>(s)) last[slot] = static_cast<int32_t>(s);
      }
    }
  }
  std::vector<bool> keep(trace.slots, false);
  for (size_t i = 0; i < trace.input_shapes.size(); ++i) keep[i] = true;
  for (const TensorRef& r : trace.outputs) {
    if (r.slot >= 0) keep[r.slot] = true;
  }
  for (int32_t slot = 0; slot < trace.slots; ++slot) {
    if (!keep[slot] && last[slot] >= 0) trace.steps[last[slot]].release.push_back(slot);
  }
  // A trace lives as long as its server: give back what the vectors grew into while recording.
  trace.steps.shrink_to_fit();
  for (Step& step : trace.steps) {
    step.args.shrink_to_fit();
    step.outputs.shrink_to_fit();
  }
  g_traces.push_back(std::make_unique<Trace>(std::move(trace)));
  return Napi::Number::New(info.Env(), static_cast<double>(g_traces.size() - 1));
}

const at::Tensor& Resolve(const TensorRef& r, const std::vector<at::Tensor>& slots) {
  return r.slot >= 0 ? slots[r.slot] : r.constant;  // never kAbsent: callers skip those
}

// traceRun(id, inputs) -> output tensors
Napi::Value TraceRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Inputs first: reading a JS array can run JS, which could dispose the trace.
  std::vector<at::Tensor> inputs = Tensors(info[1], "inputs of the trace");
  TORCH_CHECK(tls_recorder == nullptr, "cannot replay a trace while another one records");
  const Trace& trace = GetTrace(info[0]);
  AutocastState autocast = AutocastState::Now();
  if (!(autocast == trace.autocast)) {
    throw Napi::Error::New(env, "The trace was recorded with autocast " + trace.autocast.Describe() + " and is replayed with autocast " +
                                    autocast.Describe() + "; replay it under the autocast of its recording");
  }
  if (inputs.size() != trace.input_shapes.size()) {
    ThrowType(env, "Expected " + std::to_string(trace.input_shapes.size()) + " input tensors for the trace but received " +
                       std::to_string(inputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor& t = inputs[i];
    if (t.sizes().vec() != trace.input_shapes[i]) {
      throw Napi::RangeError::New(env, "Expected shape " + c10::str(c10::IntArrayRef(trace.input_shapes[i])) + " for input " + std::to_string(i) +
                                           " of the trace (the shape it was recorded with) but received " + c10::str(t.sizes()));
    }
    if (t.scalar_type() != trace.input_dtypes[i] || t.device() != trace.input_devices[i]) {
      ThrowType(env, "Expected a " + std::string(c10::toString(trace.input_dtypes[i])) + " tensor on " + trace.input_devices[i].str() + " for input " +
                         std::to_string(i) + " of the trace but received " + c10::toString(t.scalar_type()) + " on " + t.device().str());
    }
  }
  std::vector<at::Tensor> slots(trace.slots);
  for (size_t i = 0; i < inputs.size(); ++i) slots[i] = inputs[i];
  torch::jit::Stack stack;
  for (const Step& step : trace.steps) {
    stack.clear();
    for (const ArgRef& a : step.args) {
      switch (a.kind) {
        case ArgRef::Kind::Constant: stack.push_back(a.constant); break;
        case ArgRef::Kind::Tensor: stack.emplace_back(Resolve(a.tensor, slots)); break;
        case ArgRef::Kind::TensorList: {
          c10::List<at::Tensor> list;
          list.reserve(a.elems.size());
          for (const TensorRef& e : a.elems) list.push_back(Resolve(e, slots));
          stack.emplace_back(std::move(list));
          break;
        }
        case ArgRef::Kind::OptTensorList: {
          c10::List<std::optional<at::Tensor>> list;
          for (const TensorRef& e : a.elems) {
            if (e.slot == TensorRef::kAbsent) {
              list.push_back(std::nullopt);
            } else {
              list.push_back(Resolve(e, slots));
            }
          }
          stack.emplace_back(std::move(list));
          break;
        }
      }
    }
    step.op.callBoxed(stack);
    for (size_t r = 0; r < step.outputs.size() && r < stack.size(); ++r) {
      const auto& targets = step.outputs[r];
      if (targets.empty()) continue;
      if (stack[r].isTensor()) {
        slots[targets[0]] = stack[r].toTensor();
      } else {
        auto list = stack[r].toTensorList();
        TORCH_CHECK(list.size() == targets.size(), "a traced call of ", step.op.schema().name(), " returned ", list.size(),
                    " tensors on replay but ", targets.size(), " when recorded");
        for (size_t e = 0; e < targets.size(); ++e) slots[targets[e]] = list.get(e);
      }
    }
    for (int32_t slot : step.release) slots[slot].reset();
  }
  auto out = Napi::Array::New(env, trace.outputs.size());
  for (size_t i = 0; i < trace.outputs.size(); ++i) out.Set(static_cast<uint32_t>(i), WrapTensor(env, Resolve(trace.outputs[i], slots)));
  FlushExternalMemory(env);
  return out;
}

// traceInfo(id) -> { steps, inputs, outputs, slots }
Napi::Value TraceInfo(const Napi::CallbackInfo& info) {
  const Trace& trace = GetTrace(info[0]);
  auto o = Napi::Object::New(info.Env());
  o.Set("steps", static_cast<double>(trace.steps.size()));
  o.Set("inputs", static_cast<double>(trace.input_shapes.size()));
  o.Set("outputs", static_cast<double>(trace.outputs.size()));
  o.Set("slots", static_cast<double>(trace.slots));
  // Bytes of the distinct storages the trace holds as constants (weights it shares with the model included).
  std::unordered_map<const void*, int64_t> storages;
  auto add = [&](const TensorRef& r) {
    if (r.slot < 0 && r.constant.defined() && r.constant.has_storage()) {
      storages[r.constant.storage().unsafeGetStorageImpl()] = static_cast<int64_t>(r.constant.storage().nbytes());
    }
  };
  for (const Step& step : trace.steps) {
    for (const ArgRef& a : step.args) {
      add(a.tensor);
      for (const TensorRef& e : a.elems) add(e);
    }
  }
  for (const TensorRef& r : trace.outputs) add(r);
  int64_t bytes = 0;
  for (const auto& [_, n] : storages) bytes += n;
  o.Set("constantBytes", static_cast<double>(bytes));
  o.Set("constants", static_cast<double>(storages.size()));
  return o;
}

Napi::Value TraceDispose(const Napi::CallbackInfo& info) {
  double id = ToDouble(info[0], "trace");
  if (id >= 0 && id < static_cast<double>(g_traces.size()) && std::trunc(id) == id) g_traces[static_cast<size_t>(id)].reset();
  return info.Env().Undefined();
}

}  // namespace

bool TraceRecording() { return tls_recorder != nullptr; }

void TraceRecordCall(const c10::OperatorHandle& op, const torch::jit::Stack& args) {
  if (tls_recorder == nullptr) return;
  Step step{op, {}, {}, {}};
  step.args.reserve(args.size());
  for (const c10::IValue& v : args) {
    ArgRef a;
    if (v.isTensor()) {
      a.kind = ArgRef::Kind::Tensor;
      a.tensor = RefOf(*tls_recorder, v.toTensor());
    } else if (v.isTensorList()) {
      a.kind = ArgRef::Kind::TensorList;
      for (const at::Tensor& t : v.toTensorList().vec()) a.elems.push_back(RefOf(*tls_recorder, t));
    } else if (IsOptionalTensorList(v)) {
      a.kind = ArgRef::Kind::OptTensorList;
      for (const c10::IValue& e : v.toListRef()) a.elems.push_back(e.isTensor() ? RefOf(*tls_recorder, e.toTensor()) : TensorRef{TensorRef::kAbsent, {}});
    } else {
      a.constant = v;
    }
    step.args.push_back(std::move(a));
  }
  tls_recorder->trace.steps.push_back(std::move(step));
}

// Operators whose non-tensor results depend on shapes only, which a trace fixes.
bool ShapeQuery(const c10::OperatorName& name) {
  static const char* const kNames[] = {"aten::size", "aten::sym_size", "aten::stride", "aten::sym_stride", "aten::numel",
                                       "aten::sym_numel", "aten::dim", "aten::is_contiguous", "aten::is_floating_point",
                                       "aten::is_complex", "aten::is_same_size"};
  for (const char* n : kNames) {
    if (name.name == n) return true;
  }
  return false;
}

void TraceRecordResults(const torch::jit::Stack& results) {
  if (tls_recorder == nullptr || tls_recorder->trace.steps.empty()) return;
  Step& step = tls_recorder->trace.steps.back();
  for (const c10::IValue& v : results) {
    std::vector<int32_t> slots;
    if (v.isTensor()) {
      slots.push_back(NewSlot(*tls_recorder, v.toTensor()));
    } else if (v.isTensorList()) {
      for (const at::Tensor& t : v.toTensorList().vec()) slots.push_back(NewSlot(*tls_recorder, t));
    } else if (!v.isNone() && !ShapeQuery(step.op.operator_name())) {
      // A number or flag computed from values (aten::equal, _local_scalar_dense): JS may branch on it.
      TraceRefuse(("an operator that answers a value, " + step.op.operator_name().name + ", which JavaScript could act on").c_str());
    }
    step.outputs.push_back(std::move(slots));
  }
}

void TraceNoteRead(const at::Tensor& t, const char* what) {
  if (tls_recorder == nullptr || !tls_recorder->refused.empty() || !t.defined()) return;
  if (tls_recorder->slot_of.count(t.unsafeGetTensorImpl())) {
    tls_recorder->refused = std::string("The traced function read the values of a tensor it computed (") + what +
                            "); a trace replays operators only, so it cannot follow what JavaScript did with them";
  }
}

void TraceRefuse(const char* what) {
  if (tls_recorder == nullptr || !tls_recorder->refused.empty()) return;
  tls_recorder->refused = std::string("The traced function called ") + what + ", which a trace does not record, so a replay would skip it";
}

void RegisterTrace(Napi::Env env, Napi::Object exports) {
  Export<TraceBegin>(env, exports, "traceBegin");
  Export<TraceEnd>(env, exports, "traceEnd");
  Export<TraceAbort>(env, exports, "traceAbort");
  Export<TraceRun>(env, exports, "traceRun");
  Export<TraceInfo>(env, exports, "traceInfo");
  Export<TraceDispose>(env, exports, "traceDispose");
}

}  // namespace extrema
