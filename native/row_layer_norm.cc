// LayerNorm over the last dimension for inference, in one AVX-512 pass per
// row: ATen's layer_norm also computes and allocates the mean and inverse
// standard deviation that autograd would need, about 6 us a call at the 50
// rows of a small ViT served one image at a time, against 4 for this
// (bench:inference-kernels, BENCHMARKS.md). Registered as the dispatcher operator
// extrema::row_layer_norm (operators.cc), so operator traces replay it like
// ATen's.
//
// The same formula as ATen's kernel, so the two agree to float rounding:
// mean and biased variance of the row, rstd = 1 / sqrt(var + eps), then
// y = (x * rstd + (-mean * rstd)) * weight + bias.
#include "common.h"
#include "kernels.h"
#include "simd_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace extrema {
namespace {

#if EXTREMA_AVX512_KERNELS
__attribute__((target("avx512f"))) void NormalizeRow(const float* x, const float* weight, const float* bias, int64_t n, float eps, float* y) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(Lanes(j, n), x + j));
  const float mean = _mm512_reduce_add_ps(sum) / static_cast<float>(n);
  const __m512 m = _mm512_set1_ps(mean);
  __m512 squares = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 lanes = Lanes(j, n);
    const __m512 d = _mm512_maskz_sub_ps(lanes, _mm512_maskz_loadu_ps(lanes, x + j), m);
    squares = _mm512_fmadd_ps(d, d, squares);
  }
  const float var = _mm512_reduce_add_ps(squares) / static_cast<float>(n);
  const float rstd = 1.0f / std::sqrt(std::max(var, 0.0f) + eps);
  const __m512 scale = _mm512_set1_ps(rstd), shift = _mm512_set1_ps(-mean * rstd);
  // Products and sums rounded one at a time, as ATen writes them: fused, x * rstd
  // would keep digits that -mean * rstd lost, and a row equal to its mean (one
  // feature, say) would not give exactly `bias`. The _round forms are
  // builtins, which the compiler does not contract into FMAs either.
  constexpr int kNearest = _MM_FROUND_CUR_DIRECTION;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 lanes = Lanes(j, n);
    const __m512 normed = _mm512_add_round_ps(_mm512_mul_round_ps(_mm512_maskz_loadu_ps(lanes, x + j), scale, kNearest), shift, kNearest);
    const __m512 scaled = _mm512_mul_round_ps(normed, _mm512_maskz_loadu_ps(lanes, weight + j), kNearest);
    _mm512_mask_storeu_ps(y + j, lanes, _mm512_add_round_ps(scaled, _mm512_maskz_loadu_ps(lanes, bias + j), kNearest));
  }
}
#endif

}  // namespace

at::Tensor RowLayerNorm(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  TORCH_CHECK(CpuHasAvx512(), "row_layer_norm needs a CPU with AVX-512 (row_layer_norm_supported() is false here)");
  TORCH_CHECK(input.scalar_type() == at::kFloat && input.device().is_cpu() && input.dim() >= 1,
              "Expected a float32 CPU input [..., n] for row_layer_norm but received ", input.scalar_type(), " ", input.sizes(), " on ", input.device());
  const int64_t n = input.size(-1);
  for (const auto& [t, name] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == n && t->scalar_type() == at::kFloat && t->device().is_cpu(), "Expected a float32 CPU ", name,
                " of shape [", n, "] for row_layer_norm but received ", t->scalar_type(), " ", t->sizes(), " on ", t->device());
  }
  TORCH_CHECK(std::isfinite(eps) && eps >= 0, "Expected a finite eps >= 0 for row_layer_norm but received ", eps);
  const at::Tensor x = input.contiguous(), w = weight.contiguous(), b = bias.contiguous();
  at::Tensor out = at::empty(input.sizes(), input.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t rows = n == 0 ? 0 : x.numel() / n;
#if EXTREMA_AVX512_KERNELS
  if (rows > 0) {
    const float* xp = x.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const float* bp = b.data_ptr<float>();
    float* yp = out.data_ptr<float>();
    // Rows of 192 floats take about 0.1 us: split only what is worth a thread's start.
    const int64_t grain = std::max<int64_t>(1, 16384 / n);
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) NormalizeRow(xp + r * n, wp, bp, n, static_cast<float>(eps), yp + r * n);
    });
  }
#endif
  return out;
}

}  // namespace extrema
