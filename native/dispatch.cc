// One generic path to every ATen operator: look an overload up once, then call
// it through the dispatcher with a boxed stack. Going through the dispatcher
// (not a hand-written wrapper) keeps autograd, autocast and every backend.
#include "common.h"
#include "generators.h"
#include "tensor_table.h"
#include "trace.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <deque>
#include <sstream>

namespace extrema {
namespace {

enum class Kind : uint8_t {
  Tensor, TensorList, OptTensorList, Int, Float, Bool, Scalar, IntList, FloatList,
  BoolList, ScalarList, OptScalarList, String, Device, Generator, Unsupported
};

struct ArgSpec {
  Kind kind = Kind::Unsupported;
  bool optional = false;
  std::optional<int32_t> fixed_size;  // int[2] accepts one int, repeated
  std::optional<c10::IValue> default_value;
  std::string label;  // "argument 'other' of aten::add.Tensor"
};

using T = at::Tensor;
using S = c10::Scalar;

// Unboxed fast paths for the handful of signatures most elementwise ops share.
// Still generic (chosen from the schema, per signature, never per op) and
// still dispatched, so autograd and autocast apply; it skips the IValue boxing
// that costs ~150-250 ns of a ~1 us small op. typed() verifies the C++
// signature against the registered kernels at lookup; on any mismatch the
// operator simply stays on the boxed path.
enum class Fast : uint8_t { None, F_T, F_TT, F_TTS, F_TS, F_TSS, F_TD, F_TI, F_TII, F_TID, I_T, I_TT, I_TTS, I_TS, I_TSS };
using D = std::optional<c10::ScalarType>;

struct FastHandles {
  std::optional<c10::TypedOperatorHandle<T(const T&)>> f_t;
  std::optional<c10::TypedOperatorHandle<T(const T&, const T&)>> f_tt;
  std::optional<c10::TypedOperatorHandle<T(const T&, const T&, const S&)>> f_tts;
  std::optional<c10::TypedOperatorHandle<T(const T&, const S&)>> f_ts;
  std::optional<c10::TypedOperatorHandle<T(const T&, const S&, const S&)>> f_tss;
  std::optional<c10::TypedOperatorHandle<T(const T&, D)>> f_td;
  std::optional<c10::TypedOperatorHandle<T(const T&, int64_t)>> f_ti;
  std::optional<c10::TypedOperatorHandle<T(const T&, int64_t, int64_t)>> f_tii;
  std::optional<c10::TypedOperatorHandle<T(const T&, int64_t, D)>> f_tid;
  std::optional<c10::TypedOperatorHandle<T&(T&)>> i_t;
  std::optional<c10::TypedOperatorHandle<T&(T&, const T&)>> i_tt;
  std::optional<c10::TypedOperatorHandle<T&(T&, const T&, const S&)>> i_tts;
  std::optional<c10::TypedOperatorHandle<T&(T&, const S&)>> i_ts;
  std::optional<c10::TypedOperatorHandle<T&(T&, const S&, const S&)>> i_tss;
};

struct OpEntry {
  c10::OperatorHandle handle;
  std::string full_name;
  std::vector<ArgSpec> args;
  std::vector<bool> returns_mutated_input;  // JS keeps its own object for these
  Fast fast = Fast::None;
  FastHandles typed;
};

// Per JS thread (worker_threads that load the addon stay isolated).
// Reading an argument can run JS (an array element getter), and that JS can
// look up or call operators while an outer call is converting: both
// containers are deques so that growing them never moves what an outer call
// is holding, and each nesting level of call() gets its own boxed stack.
struct DispatchState {
  std::deque<OpEntry> ops;
  std::deque<torch::jit::Stack> stacks;
  size_t depth = 0;
};
thread_local DispatchState* tls_state EXTREMA_FAST_TLS = nullptr;

inline DispatchState& State() {
  if (tls_state == nullptr) tls_state = new DispatchState();
  return *tls_state;
}

// The boxed stack of one call(), reused by later calls at the same depth.
class StackLease {
 public:
  explicit StackLease(DispatchState& state) : state_(state) {
    if (state.depth == state.stacks.size()) state.stacks.emplace_back();
    stack_ = &state.stacks[state.depth++];
    stack_->clear();
  }
  ~StackLease() {
    stack_->clear();
    --state_.depth;
  }
  StackLease(const StackLease&) = delete;
  StackLease& operator=(const StackLease&) = delete;
  torch::jit::Stack& stack() { return *stack_; }

 private:
  DispatchState& state_;
  torch::jit::Stack* stack_;
};

Kind KindOf(const c10::TypePtr& type, bool* optional) {
  c10::TypePtr t = type;
  if (auto opt = t->cast<c10::OptionalType>()) {
    *optional = true;
    t = opt->getElementType();
  }
  switch (t->kind()) {
    case c10::TypeKind::TensorType: return Kind::Tensor;
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType: return Kind::Int;
    case c10::TypeKind::FloatType:
    case c10::TypeKind::SymFloatType: return Kind::Float;
    case c10::TypeKind::BoolType:
    case c10::TypeKind::SymBoolType: return Kind::Bool;
    case c10::TypeKind::NumberType: return Kind::Scalar;
    case c10::TypeKind::StringType: return Kind::String;
    case c10::TypeKind::DeviceObjType: return Kind::Device;
    case c10::TypeKind::GeneratorType: return Kind::Generator;
    case c10::TypeKind::ListType: {
      c10::TypePtr elem = t->expectRef<c10::ListType>().getElementType();
      if (auto opt = elem->cast<c10::OptionalType>()) {
        switch (opt->getElementType()->kind()) {
          case c10::TypeKind::TensorType: return Kind::OptTensorList;
          case c10::TypeKind::NumberType: return Kind::OptScalarList;  // oneDNN's fused-op arguments
          default: return Kind::Unsupported;
        }
      }
      switch (elem->kind()) {
        case c10::TypeKind::TensorType: return Kind::TensorList;
        case c10::TypeKind::IntType:
        case c10::TypeKind::SymIntType: return Kind::IntList;
        case c10::TypeKind::FloatType: return Kind::FloatList;
        case c10::TypeKind::BoolType: return Kind::BoolList;
        case c10::TypeKind::NumberType: return Kind::ScalarList;
        default: return Kind::Unsupported;
      }
    }
    default: return Kind::Unsupported;
  }
}

// Reads a JS number as a Scalar with one N-API call; false if v is no number.
// JS has one number type: integral values act like Python ints so that int
// tensors stay int and float tensors stay float.
bool NumberScalar(const Napi::Value& v, c10::Scalar* out) {
  double d = 0;
  if (napi_get_value_double(v.Env(), v, &d) != napi_ok) return false;
  if (std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) {
    *out = c10::Scalar(static_cast<int64_t>(d));
  } else {
    *out = c10::Scalar(d);
  }
  return true;
}

c10::Scalar ToScalar(const Napi::Value& v, const char* what) {
  c10::Scalar number;
  if (NumberScalar(v, &number)) return number;
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) return c10::Scalar(ToInt64(v, what));
  ThrowType(v.Env(), std::string("Expected a number or boolean for ") + what + " but received " + DescribeJs(v));
}

void PushArg(torch::jit::Stack& stack, const ArgSpec& spec, const Napi::Value& v) {
  const char* what = spec.label.c_str();
  if (v.IsUndefined() || v.IsNull()) {
    if (v.IsUndefined() && spec.default_value) {
      stack.push_back(*spec.default_value);
      return;
    }
    if (spec.optional) {
      stack.emplace_back();
      return;
    }
    if (spec.default_value) {
      stack.push_back(*spec.default_value);
      return;
    }
    ThrowType(v.Env(), std::string("Missing required ") + what);
  }
  switch (spec.kind) {
    case Kind::Tensor: stack.emplace_back(UnwrapTensor(v, what)); return;
    case Kind::Int: stack.emplace_back(ToInt64(v, what)); return;
    case Kind::Float: stack.emplace_back(ToDouble(v, what)); return;
    case Kind::Bool: stack.emplace_back(ToBool(v, what)); return;
    case Kind::Scalar: stack.emplace_back(ToScalar(v, what)); return;
    case Kind::String: stack.emplace_back(ToString(v, what)); return;
    case Kind::Device: stack.emplace_back(ToDevice(v, what)); return;
    case Kind::Generator: stack.emplace_back(GetGenerator(ToDouble(v, what))); return;
    case Kind::IntList: {
      if (v.IsNumber() && spec.fixed_size) {
        stack.emplace_back(std::vector<int64_t>(*spec.fixed_size, ToInt64(v, what)));
      } else {
        stack.emplace_back(ToIntVector(v, what));
      }
      return;
    }
    case Kind::FloatList: {
      std::vector<double> out;
      for (const Napi::Value& e : ArrayItems(v, "an array of numbers", what)) out.push_back(ToDouble(e, what));
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::BoolList: {
      c10::List<bool> out;
      for (const Napi::Value& e : ArrayItems(v, "an array of booleans", what)) out.push_back(ToBool(e, what));
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::ScalarList: {
      std::vector<Napi::Value> items = ArrayItems(v, "an array of numbers", what);
      c10::impl::GenericList out(c10::NumberType::get());
      out.reserve(items.size());
      for (const Napi::Value& e : items) out.push_back(ToScalar(e, what));
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::OptScalarList: {
      std::vector<Napi::Value> items = ArrayItems(v, "an array of numbers or nulls", what);
      c10::impl::GenericList out(c10::OptionalType::create(c10::NumberType::get()));
      out.reserve(items.size());
      for (const Napi::Value& e : items) {
        if (e.IsNull() || e.IsUndefined()) {
          out.push_back(c10::IValue());
        } else {
          out.push_back(ToScalar(e, what));
        }
      }
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::TensorList: {
      std::vector<Napi::Value> items = ArrayItems(v, "an array of tensors", what);
      c10::List<at::Tensor> out;
      out.reserve(items.size());
      for (const Napi::Value& e : items) out.push_back(UnwrapTensor(e, what));
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::OptTensorList: {
      c10::List<std::optional<at::Tensor>> out;
      for (const Napi::Value& e : ArrayItems(v, "an array of tensors or nulls", what)) {
        if (e.IsNull() || e.IsUndefined()) {
          out.push_back(std::nullopt);
        } else {
          out.push_back(UnwrapTensor(e, what));
        }
      }
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::Unsupported:
      ThrowType(v.Env(), std::string("The type of ") + what + " cannot be passed from JS");
  }
}

Napi::Value FromIValue(Napi::Env env, c10::IValue& v) {
  if (v.isTensor()) return WrapTensor(env, std::move(v).toTensor());  // no refcount round trip
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isDevice()) return Napi::String::New(env, v.toDevice().str());
  if (v.isSymInt()) return Napi::Number::New(env, static_cast<double>(v.toSymInt().guard_int(__FILE__, __LINE__)));
  if (v.isSymFloat()) return Napi::Number::New(env, v.toSymFloat().guard_float(__FILE__, __LINE__));
  if (v.isList()) {
    auto list = v.toListRef();
    auto out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      c10::IValue item = list[i];
      out.Set(static_cast<uint32_t>(i), FromIValue(env, item));
    }
    return out;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    auto out = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); ++i) {
      c10::IValue item = elems[i];
      out.Set(static_cast<uint32_t>(i), FromIValue(env, item));
    }
    return out;
  }
  TORCH_CHECK(false, "cannot return a value of type ", v.tagKind(), " to JS");
}

std::string ReprDefault(const c10::IValue& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void SelectFastPath(OpEntry& entry) {
  const c10::FunctionSchema& schema = entry.handle.schema();
  const auto& args = schema.arguments();
  const auto& rets = schema.returns();
  if (rets.size() != 1 || rets[0].type()->kind() != c10::TypeKind::TensorType || args.empty() || args.size() > 3) return;
  bool inplace = args[0].alias_info() && args[0].alias_info()->isWrite();
  if (inplace != entry.returns_mutated_input[0]) return;
  std::string shape;
  for (size_t i = 0; i < args.size(); ++i) {
    const ArgSpec& spec = entry.args[i];
    if (i > 0 && args[i].alias_info() && args[i].alias_info()->isWrite()) return;
    const c10::TypePtr& real = args[i].real_type();
    if (auto opt = real->cast<c10::OptionalType>()) {
      // ScalarType? dtype=None is the only optional a fast signature takes
      if (opt->getElementType()->kind() != c10::TypeKind::ScalarTypeType) return;
      shape += 'D';
    } else if (real->kind() == c10::TypeKind::TensorType) {
      shape += 'T';
    } else if (real->kind() == c10::TypeKind::NumberType) {
      if (spec.default_value && !spec.default_value->isScalar()) return;
      shape += 'S';
    } else if (real->kind() == c10::TypeKind::IntType) {
      if (spec.default_value && !spec.default_value->isInt()) return;
      shape += 'I';
    } else {
      return;
    }
  }
  try {
    const auto& h = entry.handle;
    if (!inplace) {
      if (shape == "T") { entry.typed.f_t = h.typed<T(const T&)>(); entry.fast = Fast::F_T; }
      else if (shape == "TT") { entry.typed.f_tt = h.typed<T(const T&, const T&)>(); entry.fast = Fast::F_TT; }
      else if (shape == "TTS") { entry.typed.f_tts = h.typed<T(const T&, const T&, const S&)>(); entry.fast = Fast::F_TTS; }
      else if (shape == "TS") { entry.typed.f_ts = h.typed<T(const T&, const S&)>(); entry.fast = Fast::F_TS; }
      else if (shape == "TSS") { entry.typed.f_tss = h.typed<T(const T&, const S&, const S&)>(); entry.fast = Fast::F_TSS; }
      else if (shape == "TD") { entry.typed.f_td = h.typed<T(const T&, D)>(); entry.fast = Fast::F_TD; }
      else if (shape == "TI") { entry.typed.f_ti = h.typed<T(const T&, int64_t)>(); entry.fast = Fast::F_TI; }
      else if (shape == "TII") { entry.typed.f_tii = h.typed<T(const T&, int64_t, int64_t)>(); entry.fast = Fast::F_TII; }
      else if (shape == "TID") { entry.typed.f_tid = h.typed<T(const T&, int64_t, D)>(); entry.fast = Fast::F_TID; }
    } else {
      if (shape == "T") { entry.typed.i_t = h.typed<T&(T&)>(); entry.fast = Fast::I_T; }
      else if (shape == "TT") { entry.typed.i_tt = h.typed<T&(T&, const T&)>(); entry.fast = Fast::I_TT; }
      else if (shape == "TTS") { entry.typed.i_tts = h.typed<T&(T&, const T&, const S&)>(); entry.fast = Fast::I_TTS; }
      else if (shape == "TS") { entry.typed.i_ts = h.typed<T&(T&, const S&)>(); entry.fast = Fast::I_TS; }
      else if (shape == "TSS") { entry.typed.i_tss = h.typed<T&(T&, const S&, const S&)>(); entry.fast = Fast::I_TSS; }
    }
  } catch (const c10::Error&) {
    entry.fast = Fast::None;  // the kernel's C++ signature differs: stay boxed
  }
}

// Reads a Scalar argument for the fast path, falling back to its default.
inline S FastScalar(const ArgSpec& spec, const Napi::Value& v) {
  S number;
  if (NumberScalar(v, &number)) return number;  // the common case first
  if (v.IsUndefined() && spec.default_value) return spec.default_value->toScalar();
  return ToScalar(v, spec.label.c_str());
}

inline int64_t FastInt(const ArgSpec& spec, const Napi::Value& v) {
  if (v.IsUndefined() && spec.default_value) return spec.default_value->toInt();
  return ToInt64(v, spec.label.c_str());
}

inline D FastDType(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  return ToScalarType(v, "dtype");
}

inline const T& FastTensor(const ArgSpec& spec, const Napi::Value& v) {
  return UnwrapTensor(v, spec.label.c_str());
}

Napi::Value CallFast(const Napi::CallbackInfo& info, const OpEntry& op) {
  Napi::Env env = info.Env();
  const auto& a = op.args;
  auto arg = [&](size_t i) { return i + 1 < info.Length() ? info[i + 1] : env.Undefined(); };
  switch (op.fast) {
    case Fast::F_T: return WrapTensor(env, op.typed.f_t->call(FastTensor(a[0], arg(0))));
    case Fast::F_TT: return WrapTensor(env, op.typed.f_tt->call(FastTensor(a[0], arg(0)), FastTensor(a[1], arg(1))));
    case Fast::F_TTS:
      return WrapTensor(env, op.typed.f_tts->call(FastTensor(a[0], arg(0)), FastTensor(a[1], arg(1)), FastScalar(a[2], arg(2))));
    case Fast::F_TS: return WrapTensor(env, op.typed.f_ts->call(FastTensor(a[0], arg(0)), FastScalar(a[1], arg(1))));
    case Fast::F_TSS:
      return WrapTensor(env, op.typed.f_tss->call(FastTensor(a[0], arg(0)), FastScalar(a[1], arg(1)), FastScalar(a[2], arg(2))));
    case Fast::F_TD: return WrapTensor(env, op.typed.f_td->call(FastTensor(a[0], arg(0)), FastDType(arg(1))));
    case Fast::F_TI: return WrapTensor(env, op.typed.f_ti->call(FastTensor(a[0], arg(0)), FastInt(a[1], arg(1))));
    case Fast::F_TII:
      return WrapTensor(env, op.typed.f_tii->call(FastTensor(a[0], arg(0)), FastInt(a[1], arg(1)), FastInt(a[2], arg(2))));
    case Fast::F_TID:
      return WrapTensor(env, op.typed.f_tid->call(FastTensor(a[0], arg(0)), FastInt(a[1], arg(1)), FastDType(arg(2))));
    case Fast::I_T: {
      T self = FastTensor(a[0], arg(0));
      op.typed.i_t->call(self);
      return env.Undefined();
    }
    case Fast::I_TT: {
      T self = FastTensor(a[0], arg(0));
      op.typed.i_tt->call(self, FastTensor(a[1], arg(1)));
      return env.Undefined();
    }
    case Fast::I_TTS: {
      T self = FastTensor(a[0], arg(0));
      op.typed.i_tts->call(self, FastTensor(a[1], arg(1)), FastScalar(a[2], arg(2)));
      return env.Undefined();
    }
    case Fast::I_TS: {
      T self = FastTensor(a[0], arg(0));
      op.typed.i_ts->call(self, FastScalar(a[1], arg(1)));
      return env.Undefined();
    }
    case Fast::I_TSS: {
      T self = FastTensor(a[0], arg(0));
      op.typed.i_tss->call(self, FastScalar(a[1], arg(1)), FastScalar(a[2], arg(2)));
      return env.Undefined();
    }
    case Fast::None: break;
  }
  return env.Undefined();
}

// lookupOp(name, overload) -> op id
Napi::Value LookupOp(const Napi::CallbackInfo& info) {
  std::string name = ToString(info[0], "operator name");
  std::string overload = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  auto handle = c10::Dispatcher::singleton().findOp({name, overload});
  if (!handle) {
    throw Napi::Error::New(info.Env(), "Unknown operator " + name + (overload.empty() ? "" : "." + overload));
  }
  OpEntry entry{*handle, name + (overload.empty() ? "" : "." + overload), {}, {}};
  const c10::FunctionSchema& schema = handle->schema();
  for (const c10::Argument& arg : schema.arguments()) {
    ArgSpec spec;
    spec.kind = KindOf(arg.real_type(), &spec.optional);
    spec.fixed_size = arg.N();
    spec.default_value = arg.default_value();
    spec.label = "argument '" + arg.name() + "' of " + entry.full_name;
    entry.args.push_back(std::move(spec));
  }
  for (const c10::Argument& ret : schema.returns()) {
    bool mutated = false;
    if (ret.alias_info() && ret.alias_info()->isWrite() && ret.type()->kind() == c10::TypeKind::TensorType) {
      for (const c10::Argument& arg : schema.arguments()) {
        if (arg.alias_info() && arg.alias_info()->isWrite() &&
            arg.alias_info()->beforeSets() == ret.alias_info()->beforeSets()) {
          mutated = true;
        }
      }
    }
    entry.returns_mutated_input.push_back(mutated);
  }
  SelectFastPath(entry);
  State().ops.push_back(std::move(entry));
  return Napi::Number::New(info.Env(), static_cast<double>(State().ops.size() - 1));
}

// call(opId, ...args) -> result | [results]
Napi::Value Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) ThrowType(env, "Expected an operator id");
  uint32_t op_id = info[0].As<Napi::Number>().Uint32Value();
  DispatchState& state = State();
  if (op_id >= state.ops.size()) ThrowType(env, "Unknown operator id " + std::to_string(op_id));
  const OpEntry& op = state.ops[op_id];
  size_t given = info.Length() - 1;
  if (given > op.args.size()) {
    ThrowType(env, op.full_name + " takes " + std::to_string(op.args.size()) + " arguments but received " +
                       std::to_string(given));
  }
  // A recording trace needs the boxed arguments, so it takes the boxed path.
  if (op.fast != Fast::None && !TraceRecording()) return CallFast(info, op);
  StackLease lease(state);
  torch::jit::Stack& stack = lease.stack();
  for (size_t i = 0; i < op.args.size(); ++i) {
    PushArg(stack, op.args[i], i < given ? info[i + 1] : env.Undefined());
  }
  // Asked again: reading the arguments can run JS, which can begin or end a trace.
  if (TraceRecording()) {
    TraceRecordCall(op.handle, stack);
    try {
      op.handle.callBoxed(stack);
    } catch (...) {
      // The function may catch this in JS and go on; its replay could not.
      TraceRefuse(("an operator that failed (" + op.full_name + ")").c_str());
      throw;
    }
    TraceRecordResults(stack);
  } else {
    op.handle.callBoxed(stack);
  }
  size_t n = op.returns_mutated_input.size();
  if (n == 0) return env.Undefined();
  if (n == 1) return op.returns_mutated_input[0] ? env.Undefined() : FromIValue(env, stack[0]);
  auto out = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) {
    out.Set(static_cast<uint32_t>(i), op.returns_mutated_input[i] ? env.Undefined() : FromIValue(env, stack[i]));
  }
  return out;
}

Napi::Value DescribeArgument(Napi::Env env, const c10::Argument& arg) {
  auto o = Napi::Object::New(env);
  o.Set("name", arg.name());
  o.Set("type", arg.real_type()->annotation_str());
  if (arg.N()) o.Set("size", *arg.N());
  if (arg.default_value()) o.Set("default", ReprDefault(*arg.default_value()));
  o.Set("kwargOnly", arg.kwarg_only());
  o.Set("mutable", arg.alias_info() != nullptr && arg.alias_info()->isWrite());
  o.Set("alias", arg.alias_info() != nullptr);
  return o;
}

// listOps() -> [{name, overload, schema, arguments, returns}] for every
// operator registered with the dispatcher; feeds the TypeScript generator.
Napi::Value ListOps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& dispatcher = c10::Dispatcher::singleton();
  auto names = dispatcher.getAllOpNames();
  auto out = Napi::Array::New(env);
  uint32_t k = 0;
  for (const auto& name : names) {
    auto handle = dispatcher.findOp(name);
    if (!handle || !handle->hasSchema()) continue;
    const auto& schema = handle->schema();
    auto o = Napi::Object::New(env);
    o.Set("name", name.name);
    o.Set("overload", name.overload_name);
    std::ostringstream s;
    s << schema;
    o.Set("schema", s.str());
    auto args = Napi::Array::New(env);
    for (size_t i = 0; i < schema.arguments().size(); ++i) {
      args.Set(static_cast<uint32_t>(i), DescribeArgument(env, schema.arguments()[i]));
    }
    o.Set("arguments", args);
    auto rets = Napi::Array::New(env);
    for (size_t i = 0; i < schema.returns().size(); ++i) {
      rets.Set(static_cast<uint32_t>(i), DescribeArgument(env, schema.returns()[i]));
    }
    o.Set("returns", rets);
    out.Set(k++, o);
  }
  return out;
}

Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  uint32_t op_id = static_cast<uint32_t>(ToInt64(info[0], "operator id"));
  TORCH_CHECK(op_id < State().ops.size(), "unknown operator id ", op_id);
  std::ostringstream s;
  s << State().ops[op_id].handle.schema();
  return Napi::String::New(info.Env(), s.str());
}

// opIsFast(id) -> whether the op runs on an unboxed fast path (for tests).
Napi::Value OpIsFast(const Napi::CallbackInfo& info) {
  uint32_t op_id = static_cast<uint32_t>(ToInt64(info[0], "operator id"));
  TORCH_CHECK(op_id < State().ops.size(), "unknown operator id ", op_id);
  return Napi::Boolean::New(info.Env(), State().ops[op_id].fast != Fast::None);
}

}  // namespace

void RegisterDispatch(Napi::Env env, Napi::Object exports) {
  Export<LookupOp>(env, exports, "lookupOp");
  Export<Call>(env, exports, "call");
  Export<ListOps>(env, exports, "listOps");
  Export<OpSchema>(env, exports, "opSchema");
  Export<OpIsFast>(env, exports, "opIsFast");
}

}  // namespace extrema
