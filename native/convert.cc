// Reading plain JS values into C++ types, with messages that name the argument.
#include "common.h"

#include <cmath>

namespace extrema {

std::string DescribeJs(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    // JS's own formatting (1.5, 2147483648, NaN), not printf's 6 decimals
    case napi_number: return "the number " + v.ToString().Utf8Value();
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
    if (std::isfinite(d) && std::trunc(d) == d) {
      // Beyond 2^53 a JS number no longer names one integer: the caller
      // cannot have meant the value libtorch would see.
      if (std::fabs(d) <= 9007199254740991.0) return static_cast<int64_t>(d);
      throw Napi::RangeError::New(v.Env(), std::string("Expected an integer between -(2^53 - 1) and 2^53 - 1 for ") + what +
                                               " but received " + DescribeJs(v));
    }
  } else if (v.IsBigInt()) {
    bool lossless = false;
    int64_t r = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (lossless) return r;
    throw Napi::RangeError::New(v.Env(), std::string("Expected an integer within int64 for ") + what + " but received a bigint out of range");
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

std::vector<Napi::Value> ArrayItems(const Napi::Value& v, const char* expected, const char* what) {
  if (!v.IsArray()) ThrowType(v.Env(), std::string("Expected ") + expected + " for " + what + " but received " + DescribeJs(v));
  auto arr = v.As<Napi::Array>();
  // The length is read once: a getter may grow or shrink the array while
  // its elements are read, and the copy must not follow it.
  uint32_t n = arr.Length();
  std::vector<Napi::Value> items;
  items.reserve(n);
  for (uint32_t i = 0; i < n; ++i) items.push_back(arr.Get(i));
  return items;
}

std::vector<int64_t> ToIntVector(const Napi::Value& v, const char* what) {
  std::vector<Napi::Value> items = ArrayItems(v, "an array of integers", what);
  std::vector<int64_t> out;
  out.reserve(items.size());
  for (const Napi::Value& item : items) out.push_back(ToInt64(item, what));
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
