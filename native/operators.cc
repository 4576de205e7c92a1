// The extrema:: dispatcher operators: the inference kernels (kernels.h)
// registered so that the generic op path and operator traces call them as
// they call ATen's. Registered when the addon initialises, once per
// process, and each group only where it does not exist yet: a second copy of
// the addon in one process (another install of the package) must neither
// abort it on a duplicate registration nor lose the operators an older copy
// lacks. Fragments, so no copy owns the namespace.
#include "common.h"
#include "kernels.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <mutex>

namespace extrema {
namespace {

// Registers a group of operators unless `probe` (one of them) exists. The
// libraries are never destroyed: a Library unregisters its operators when it goes.
template <typename Define>
void Group(const char* probe, Define define) {
  if (c10::Dispatcher::singleton().findSchema({probe, ""}).has_value()) return;
  auto* def = new torch::Library(torch::Library::FRAGMENT, "extrema", std::nullopt, __FILE__, __LINE__);
  auto* cpu = new torch::Library(torch::Library::IMPL, "extrema", c10::DispatchKey::CPU, __FILE__, __LINE__);
  define(*def, *cpu);
}

}  // namespace

void RegisterOperators(Napi::Env, Napi::Object) {
  static std::once_flag once;
  std::call_once(once, [] {
    Group("extrema::panel_linear", [](torch::Library& def, torch::Library& cpu) {
      def.def("panels_supported() -> bool", &CpuHasAvx512);
      def.def("pack_panels(Tensor weight) -> Tensor");
      def.def("panel_linear(Tensor input, Tensor panels, Tensor? bias, int out_features, str activation) -> Tensor");
      cpu.impl("pack_panels", &PackPanels);
      cpu.impl("panel_linear", &PanelLinear);
    });
    Group("extrema::small_attention", [](torch::Library& def, torch::Library& cpu) {
      def.def("small_attention_supported() -> bool", &CpuHasAvx512);
      def.def("small_attention(Tensor query, Tensor key, Tensor value, float? scale=None) -> Tensor");
      cpu.impl("small_attention", &SmallAttention);
    });
    Group("extrema::row_layer_norm", [](torch::Library& def, torch::Library& cpu) {
      def.def("row_layer_norm_supported() -> bool", &CpuHasAvx512);
      def.def("row_layer_norm(Tensor input, Tensor weight, Tensor bias, float eps) -> Tensor");
      cpu.impl("row_layer_norm", &RowLayerNorm);
    });
  });
}

}  // namespace extrema
