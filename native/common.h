// Shared helpers for every native entry point: error translation and argument
// reading. Model logic never lives in native/; this layer only moves tensors,
// calls ATen and reports errors.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <exception>
#include <string>

// Thread-local state on the per-op path uses the initial-exec model: a plain
// register-relative load instead of a __tls_get_addr call (~3% of a small op).
#if defined(__GNUC__) || defined(__clang__)
#define EXTREMA_FAST_TLS __attribute__((tls_model("initial-exec")))
#else
#define EXTREMA_FAST_TLS
#endif

namespace extrema {

using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);

// Converts C++ exceptions into JS errors. c10 errors carry a C++ backtrace in
// what(); JS callers get only the message.
template <NativeFn F>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::TypeError& e) {
    throw Napi::TypeError::New(info.Env(), e.what_without_backtrace());
  } catch (const c10::IndexError& e) {
    throw Napi::RangeError::New(info.Env(), e.what_without_backtrace());
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  } catch (...) {
    throw Napi::Error::New(info.Env(), "unknown native error");
  }
}

// The message of a failure caught off the JS thread (an AsyncWorker's
// Execute, a c10d future), worded as Guarded words it: c10's without the
// backtrace. Pass std::current_exception() inside a catch (...).
inline std::string ErrorMessage(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown native error";
  }
}

template <NativeFn F>
void Export(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(env, Guarded<F>, name));
}

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

int64_t ToInt64(const Napi::Value& v, const char* what);
double ToDouble(const Napi::Value& v, const char* what);
bool ToBool(const Napi::Value& v, const char* what);
std::string ToString(const Napi::Value& v, const char* what);
std::vector<int64_t> ToIntVector(const Napi::Value& v, const char* what);
// The elements of a JS array, read (getters and all) before any of them is
// converted, so no JS runs while native values are being assembled.
// `expected` names the wanted type in the error for a non-array.
std::vector<Napi::Value> ArrayItems(const Napi::Value& v, const char* expected, const char* what);
c10::Device ToDevice(const Napi::Value& v, const char* what);
at::ScalarType ToScalarType(const Napi::Value& v, const char* what);
std::string DescribeJs(const Napi::Value& v);

// Per-feature registration, one per .cc file.
void RegisterTensorTable(Napi::Env env, Napi::Object exports);
void RegisterDispatch(Napi::Env env, Napi::Object exports);
void RegisterTensorData(Napi::Env env, Napi::Object exports);
void RegisterAutograd(Napi::Env env, Napi::Object exports);
void RegisterRuntime(Napi::Env env, Napi::Object exports);
void RegisterGraphs(Napi::Env env, Napi::Object exports);
void RegisterDistributed(Napi::Env env, Napi::Object exports);
void RegisterTrace(Napi::Env env, Napi::Object exports);
void RegisterOperators(Napi::Env env, Napi::Object exports);

}  // namespace extrema
