// Reading plain JS values into C++ types, with messages that name the argument.
#include "common.h"

#include <cmath>

namespace extrema {

std::string DescribeJs(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: return "the number " + std::to_string(v.As<Napi::Number>().DoubleValue());
    case napi_string: return "the string \"" + v.As<Napi::String>().Utf8Value() + "\"";
    case napi_bigint: return "a bigint";
    case napi_object: return v.IsArray() ? "an array" : "an object";
    case napi_function: return "a function";
    default: return "a value of another type";
  }
}

int64_t ToInt64(const Napi::Value& v, const char* what) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) {
      return static_cast<int64_t>(d);
    }
  } else if (v.IsBigInt()) {
    bool lossless = false;
    int64_t r = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (lossless) return r;
  }
  ThrowType(v.Env(), std::string("Expected an integer for ") + what + " but received " + DescribeJs(v));
}

double ToDouble(const Napi::Value& v, const char* what) {
  if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue();
  ThrowType(v.Env(), std::string("Expected a number for ") + what + " but received " + DescribeJs(v));
}

bool ToBool(const Napi::Value& v, const char* what) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  ThrowType(v.Env(), std::string("Expected a boolean for ") + what + " but received " + DescribeJs(v));
}

std::string ToString(const Napi::Value& v, const char* what) {
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  ThrowType(v.Env(), std::string("Expected a string for ") + what + " but received " + DescribeJs(v));
}

std::vector<int64_t> ToIntVector(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) {
    ThrowType(v.Env(), std::string("Expected an array of integers for ") + what + " but received " + DescribeJs(v));
  }
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) out[i] = ToInt64(arr.Get(i), what);
  return out;
}

c10::Device ToDevice(const Napi::Value& v, const char* what) {
  std::string s = ToString(v, what);
  try {
    return c10::Device(s);
  } catch (const c10::Error&) {
    ThrowType(v.Env(), std::string("Expected a device such as \"cpu\" or \"cuda:0\" for ") + what +
                           " but received \"" + s + "\"");
  }
}

at::ScalarType ToScalarType(const Napi::Value& v, const char* what) {
  int64_t code = ToInt64(v, what);
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) {
    ThrowType(v.Env(), std::string("Expected a dtype code for ") + what + " but received " + std::to_string(code));
  }
  return static_cast<at::ScalarType>(code);
}

}  // namespace extrema
