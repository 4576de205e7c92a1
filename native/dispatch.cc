// One generic path to every ATen operator: look an overload up once, then call
// it through the dispatcher with a boxed stack. Going through the dispatcher
// (not a hand-written wrapper) keeps autograd, autocast and every backend.
#include "common.h"
#include "generators.h"
#include "tensor_table.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <sstream>

namespace extrema {
namespace {

enum class Kind : uint8_t {
  Tensor, TensorList, OptTensorList, Int, Float, Bool, Scalar, IntList, FloatList,
  BoolList, String, Device, Generator, Unsupported
};

struct ArgSpec {
  Kind kind = Kind::Unsupported;
  bool optional = false;
  std::optional<int32_t> fixed_size;  // int[2] accepts one int, repeated
  std::optional<c10::IValue> default_value;
  std::string label;  // "argument 'other' of aten::add.Tensor"
};

struct OpEntry {
  c10::OperatorHandle handle;
  std::string full_name;
  std::vector<ArgSpec> args;
  std::vector<bool> returns_mutated_input;  // JS keeps its own object for these
};

thread_local std::vector<OpEntry> g_ops;
thread_local torch::jit::Stack g_stack;

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
        return opt->getElementType()->kind() == c10::TypeKind::TensorType ? Kind::OptTensorList
                                                                          : Kind::Unsupported;
      }
      switch (elem->kind()) {
        case c10::TypeKind::TensorType: return Kind::TensorList;
        case c10::TypeKind::IntType:
        case c10::TypeKind::SymIntType: return Kind::IntList;
        case c10::TypeKind::FloatType: return Kind::FloatList;
        case c10::TypeKind::BoolType: return Kind::BoolList;
        default: return Kind::Unsupported;
      }
    }
    default: return Kind::Unsupported;
  }
}

c10::Scalar ToScalar(const Napi::Value& v, const char* what) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    // JS has one number type; integral values act like Python ints so that
    // int tensors stay int and float tensors stay float.
    if (std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) return c10::Scalar(static_cast<int64_t>(d));
    return c10::Scalar(d);
  }
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
      if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an array of numbers for ") + what);
      auto arr = v.As<Napi::Array>();
      std::vector<double> out(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); ++i) out[i] = ToDouble(arr.Get(i), what);
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::BoolList: {
      if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an array of booleans for ") + what);
      auto arr = v.As<Napi::Array>();
      c10::List<bool> out;
      for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(ToBool(arr.Get(i), what));
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::TensorList: {
      if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an array of tensors for ") + what + " but received " + DescribeJs(v));
      auto arr = v.As<Napi::Array>();
      c10::List<at::Tensor> out;
      out.reserve(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(UnwrapTensor(arr.Get(i), what));
      stack.emplace_back(std::move(out));
      return;
    }
    case Kind::OptTensorList: {
      if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected an array of tensors or nulls for ") + what);
      auto arr = v.As<Napi::Array>();
      c10::List<std::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        Napi::Value e = arr.Get(i);
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
  g_ops.push_back(std::move(entry));
  return Napi::Number::New(info.Env(), static_cast<double>(g_ops.size() - 1));
}

// call(opId, ...args) -> result | [results]
Napi::Value Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) ThrowType(env, "Expected an operator id");
  uint32_t op_id = info[0].As<Napi::Number>().Uint32Value();
  if (op_id >= g_ops.size()) ThrowType(env, "Unknown operator id " + std::to_string(op_id));
  const OpEntry& op = g_ops[op_id];
  size_t given = info.Length() - 1;
  if (given > op.args.size()) {
    ThrowType(env, op.full_name + " takes " + std::to_string(op.args.size()) + " arguments but received " +
                       std::to_string(given));
  }
  torch::jit::Stack& stack = g_stack;
  stack.clear();
  for (size_t i = 0; i < op.args.size(); ++i) {
    PushArg(stack, op.args[i], i < given ? info[i + 1] : env.Undefined());
  }
  op.handle.callBoxed(stack);
  size_t n = op.returns_mutated_input.size();
  if (n == 0) {
    stack.clear();
    return env.Undefined();
  }
  if (n == 1) {
    Napi::Value out = op.returns_mutated_input[0] ? env.Undefined() : FromIValue(env, stack[0]);
    stack.clear();
    return out;
  }
  auto out = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) {
    out.Set(static_cast<uint32_t>(i), op.returns_mutated_input[i] ? env.Undefined() : FromIValue(env, stack[i]));
  }
  stack.clear();
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
  TORCH_CHECK(op_id < g_ops.size(), "unknown operator id ", op_id);
  std::ostringstream s;
  s << g_ops[op_id].handle.schema();
  return Napi::String::New(info.Env(), s.str());
}

}  // namespace

void RegisterDispatch(Napi::Env env, Napi::Object exports) {
  Export<LookupOp>(env, exports, "lookupOp");
  Export<Call>(env, exports, "call");
  Export<ListOps>(env, exports, "listOps");
  Export<OpSchema>(env, exports, "opSchema");
}

}  // namespace extrema
