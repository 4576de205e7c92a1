// The inference kernels of native/ (panel_linear.cc, small_attention.cc,
// row_layer_norm.cc) that operators.cc registers as extrema:: dispatcher
// operators. Each is plain arithmetic over tensors; which layer uses which
// is decided in lib/.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace extrema {

// Whether the kernels' AVX-512 code runs on this CPU (GCC's and clang's check
// includes the OS saving the AVX-512 state, XCR0).
inline bool CpuHasAvx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return avx512;
#else
  return false;
#endif
}

at::Tensor PackPanels(const at::Tensor& weight);
at::Tensor PanelLinear(const at::Tensor& input, const at::Tensor& panels, const std::optional<at::Tensor>& bias, int64_t out_features,
                       c10::string_view activation);
at::Tensor SmallAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, std::optional<double> scale);
at::Tensor RowLayerNorm(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias, double eps);

}  // namespace extrema
