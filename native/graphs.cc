// Device graphs (CUDA graphs): record a sequence of kernels once and replay it
// with one launch. Built on ATen's device-generic graph interface, so these
// sources need no CUDA headers and build against CPU-only libtorch too; where
// the interface is missing (torch before 2.10) or no backend registered one,
// graphSupported() says false and the rest refuse with a reason.
//
// Each graph owns a side stream from the device's pool: warm-up and capture
// both run on it, as torch.cuda.graph does, because kernels and the caching
// allocator may not be captured on the default stream, and libraries (cuBLAS
// workspaces) set themselves up per stream, so that must happen before capture
// on the same stream.
#include "common.h"

#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/version.h>

#include <memory>
#include <optional>

#if __has_include(<ATen/core/GraphImplInterface.h>)
#include <ATen/core/GraphImplInterface.h>
#define EXTREMA_HAVE_GRAPHS 1
#endif

namespace extrema {
namespace {

struct DeviceGraph {
  c10::Device device;
  c10::Stream stream;
  // The stream that was current before enterStream, restored by leaveStream.
  std::optional<c10::Stream> previous;
  bool capturing = false;
  bool captured = false;
#ifdef EXTREMA_HAVE_GRAPHS
  std::unique_ptr<at::GraphImplInterface> impl;
#endif
};

thread_local std::vector<std::unique_ptr<DeviceGraph>> g_graphs;

bool Supported(const c10::Device& device) {
#ifdef EXTREMA_HAVE_GRAPHS
  return !device.is_cpu() && at::has_graph_impl(device.type());
#else
  (void)device;
  return false;
#endif
}

DeviceGraph& GetGraph(const Napi::Value& v) {
  double id = ToDouble(v, "graph");
  TORCH_CHECK(id >= 0 && id < static_cast<double>(g_graphs.size()) && std::trunc(id) == id && g_graphs[static_cast<size_t>(id)],
              "unknown or disposed graph id ", id);
  return *g_graphs[static_cast<size_t>(id)];
}

// `waiter` waits (on the device, not the host) for what is queued on `producer`.
void StreamWait(const c10::Stream& waiter, const c10::Stream& producer) {
  c10::Event event(producer.device_type());
  event.record(producer);
  event.block(waiter);
}

Napi::Value GraphSupported(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Supported(ToDevice(info[0], "device")));
}

// graphCreate(device) -> id
Napi::Value GraphCreate(const Napi::CallbackInfo& info) {
  c10::Device device = ToDevice(info[0], "device");
#ifndef EXTREMA_HAVE_GRAPHS
  TORCH_CHECK(false, "device graphs need torch 2.10 or later (this addon was built against torch ", TORCH_VERSION, ")");
#else
  TORCH_CHECK(!device.is_cpu(), "device graphs are for accelerators (cuda); on cpu run the step directly");
  TORCH_CHECK(at::has_graph_impl(device.type()), "this libtorch has no graph support for ", device.type(), " devices");
  const auto* guard = c10::impl::getDeviceGuardImpl(device.type());
  if (!device.has_index()) device = c10::Device(device.type(), guard->getDevice().index());
  auto graph = std::unique_ptr<DeviceGraph>(new DeviceGraph{device, guard->getStreamFromGlobalPool(device, false)});
  graph->impl = at::create_graph_impl(device.type());
  TORCH_CHECK(graph->impl, "could not create a graph for ", device);
  g_graphs.push_back(std::move(graph));
  return Napi::Number::New(info.Env(), static_cast<double>(g_graphs.size() - 1));
#endif
}

// graphEnterStream(id): the graph's stream becomes current, after the work
// already queued on the current stream.
Napi::Value GraphEnterStream(const Napi::CallbackInfo& info) {
  DeviceGraph& g = GetGraph(info[0]);
  TORCH_CHECK(!g.previous, "the graph's stream is already current");
  const auto* guard = c10::impl::getDeviceGuardImpl(g.device.type());
  c10::Stream current = guard->getStream(g.device);
  StreamWait(g.stream, current);
  g.previous = guard->exchangeStream(g.stream);
  return info.Env().Undefined();
}

// graphLeaveStream(id): back to the stream that was current, which then waits
// for the graph's stream.
Napi::Value GraphLeaveStream(const Napi::CallbackInfo& info) {
  DeviceGraph& g = GetGraph(info[0]);
  TORCH_CHECK(g.previous, "the graph's stream is not current");
  TORCH_CHECK(!g.capturing, "end the capture before leaving the graph's stream");
  const auto* guard = c10::impl::getDeviceGuardImpl(g.device.type());
  guard->exchangeStream(*g.previous);
  StreamWait(*g.previous, g.stream);
  g.previous.reset();
  return info.Env().Undefined();
}

Napi::Value GraphCaptureBegin(const Napi::CallbackInfo& info) {
  DeviceGraph& g = GetGraph(info[0]);
  TORCH_CHECK(g.previous, "enter the graph's stream before capturing (warm up on it first)");
  TORCH_CHECK(!g.capturing && !g.captured, "this graph is already captured; reset it to capture again");
#ifdef EXTREMA_HAVE_GRAPHS
  // Global: any unsafe call (a host sync, a cudaMalloc) from any thread fails
  // the capture with an error instead of corrupting it, as torch.cuda.graph.
  g.impl->capture_begin({0, 0}, at::GraphCaptureMode::Global);
#endif
  g.capturing = true;
  return info.Env().Undefined();
}

Napi::Value GraphCaptureEnd(const Napi::CallbackInfo& info) {
  DeviceGraph& g = GetGraph(info[0]);
  TORCH_CHECK(g.capturing, "this graph is not capturing");
  g.capturing = false;
#ifdef EXTREMA_HAVE_GRAPHS
  g.impl->capture_end();
#endif
  g.captured = true;
  return info.Env().Undefined();
}

Napi::Value GraphReplay(const Napi::CallbackInfo& info) {
  DeviceGraph& g = GetGraph(info[0]);
  TORCH_CHECK(g.captured, "this graph has not been captured");
  TORCH_CHECK(!g.previous, "replay from the caller's stream, not the graph's");
#ifdef EXTREMA_HAVE_GRAPHS
  g.impl->replay();
#endif
  return info.Env().Undefined();
}

// graphDispose(id): frees the graph and its memory pool (the tensors captured
// into it must not be used afterwards; the TS side disposes them first).
Napi::Value GraphDispose(const Napi::CallbackInfo& info) {
  DeviceGraph& g = GetGraph(info[0]);
#ifdef EXTREMA_HAVE_GRAPHS
  if (g.capturing) {
    g.capturing = false;
    try {
      g.impl->capture_end();
    } catch (const std::exception&) {
      // The capture was already invalid (that is usually why it is disposed mid-way).
    }
  }
#endif
  if (g.previous) {
    c10::impl::getDeviceGuardImpl(g.device.type())->exchangeStream(*g.previous);
  }
  double id = ToDouble(info[0], "graph");
  g_graphs[static_cast<size_t>(id)].reset();
  return info.Env().Undefined();
}

}  // namespace

void RegisterGraphs(Napi::Env env, Napi::Object exports) {
  Export<GraphSupported>(env, exports, "graphSupported");
  Export<GraphCreate>(env, exports, "graphCreate");
  Export<GraphEnterStream>(env, exports, "graphEnterStream");
  Export<GraphLeaveStream>(env, exports, "graphLeaveStream");
  Export<GraphCaptureBegin>(env, exports, "graphCaptureBegin");
  Export<GraphCaptureEnd>(env, exports, "graphCaptureEnd");
  Export<GraphReplay>(env, exports, "graphReplay");
  Export<GraphDispose>(env, exports, "graphDispose");
}

}  // namespace extrema
