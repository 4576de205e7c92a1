// A float32 product for inference Linear layers at few rows: the weight
// pre-packed once into panels of 64 output columns ([panels, in, 64], zero
// padded), and an AVX-512 register tile of up to 6 rows x 64 columns that
// walks a panel from start to end. An MLP's exact GELU runs on the tile
// while it is in registers (simd_math.h, ATen's formula): 8% off fc1 at any
// batch against a second pass with ATen's gelu_. Registered as dispatcher operators
// (extrema::pack_panels, extrema::panel_linear; operators.cc) so the generic
// op path and operator traces call them as they call ATen's.
//
// Why not oneDNN's packed product (mkldnn::_linear_pointwise): its kernels are
// as fast, but each call rebuilds oneDNN's primitive descriptor, 10-20 us a
// layer; a small ViT's 36 layers at batch 1 spend about 0.6 ms of a 4.9 ms
// forward pass on that (BENCHMARKS.md). libtorch does not export oneDNN's API,
// so the primitive cannot be kept from here.
#include "common.h"
#include "kernels.h"
#include "simd_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

namespace extrema {
namespace {

constexpr int64_t kPanelCols = 64;  // 4 AVX-512 registers of floats
constexpr int kTileRows = 6;        // 6 x 4 accumulators: 24 of the 32 registers
constexpr int64_t kBlockFloats = 64 * 1024;  // a block of input rows (256 KB) stays in L2 while every panel passes

#if EXTREMA_AVX512_KERNELS
// C[rows, cols] = A[rows, :K] x panel[K, 64] (+ bias), for the first `cols`
// (<= 64) columns of the panel. Meanwhile it asks for `ahead_lines` cache
// lines from `ahead` (a share of the next panel) into L2, `ahead_per_k` a step.
template <int Rows, bool WithGelu>
__attribute__((target("avx512f"))) void Tile(const float* a, int64_t lda, const float* panel, const float* bias,
                                             int64_t depth, float* c, int64_t ldc, int64_t cols, const char* ahead,
                                             int64_t ahead_per_k, int64_t ahead_lines) {
  const std::array<__mmask16, 4> mask = ChunkMasks(cols);
  __m512 acc[Rows][4];
  for (int v = 0; v < 4; v++) {
    const __m512 start = bias != nullptr ? _mm512_maskz_loadu_ps(mask[v], bias + 16 * v) : _mm512_setzero_ps();
    for (int r = 0; r < Rows; r++) acc[r][v] = start;
  }
  for (int64_t k = 0; k < depth; k++) {
    const float* row = panel + k * kPanelCols;
    const __m512 w0 = _mm512_loadu_ps(row), w1 = _mm512_loadu_ps(row + 16);
    const __m512 w2 = _mm512_loadu_ps(row + 32), w3 = _mm512_loadu_ps(row + 48);
    // Eight panel rows ahead: the weights stream from L2/L3 once per tile.
    _mm_prefetch(reinterpret_cast<const char*>(row + 8 * kPanelCols), _MM_HINT_T0);
    for (int64_t q = 0; q < ahead_per_k; q++) {
      const int64_t line = k * ahead_per_k + q;
      if (line < ahead_lines) _mm_prefetch(ahead + 64 * line, _MM_HINT_T1);
    }
    for (int r = 0; r < Rows; r++) {
      const __m512 x = _mm512_set1_ps(a[r * lda + k]);
      acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(x, w2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(x, w3, acc[r][3]);
    }
  }
  for (int r = 0; r < Rows; r++) {
    for (int v = 0; v < 4; v++) {
      // The MLP's GELU on the tile while it is in registers, rather than a second pass over the output.
      if constexpr (WithGelu) acc[r][v] = Gelu(acc[r][v]);
      _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], acc[r][v]);
    }
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, const float*, int64_t, float*, int64_t, int64_t, const char*, int64_t,
                       int64_t);

template <bool WithGelu, int... I>
constexpr std::array<TileFn, sizeof...(I)> TileTable(std::integer_sequence<int, I...>) {
  return {&Tile<I + 1, WithGelu>...};
}

const std::array<TileFn, kTileRows> kTiles = TileTable<false>(std::make_integer_sequence<int, kTileRows>{});
const std::array<TileFn, kTileRows> kGeluTiles = TileTable<true>(std::make_integer_sequence<int, kTileRows>{});
#endif

// out[m, n] = x[m, k] W^T + b, then GELU if `gelu`, with W packed by PackPanels; x and out contiguous.
void Multiply(const float* x, int64_t m, int64_t k, const float* panels, int64_t n, const float* bias, bool gelu, float* out) {
#if EXTREMA_AVX512_KERNELS
  const int64_t panel_count = (n + kPanelCols - 1) / kPanelCols;
  // Blocks of even height, so one more row than a block holds is not a full block and a 1-row one.
  const int64_t max_block_rows = std::max<int64_t>(kTileRows * 8, kBlockFloats / k);
  const int64_t blocks = (m + max_block_rows - 1) / max_block_rows;
  const int64_t block_rows = (m + blocks - 1) / blocks;
  // Block-major: one block's inputs meet every panel while they are in cache.
  at::parallel_for(0, blocks * panel_count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; item++) {
      const int64_t row0 = (item / panel_count) * block_rows, p = item % panel_count;
      const int64_t rows = std::min(block_rows, m - row0);
      const int64_t col0 = p * kPanelCols, cols = std::min(kPanelCols, n - col0);
      const float* panel = panels + p * k * kPanelCols;
      // Tiles of even height too (49 rows: 9 tiles of 5-6 rows), so no tile is a lone row.
      const int64_t tiles = (rows + kTileRows - 1) / kTileRows;
      // The first block meets each panel cold (weights are read once per forward
      // pass): its tiles each bring a share of the next panel into L2 while this
      // one computes (3-4% of a batch-1 pass). Later blocks find them in cache.
      const char* next = row0 == 0 && p + 1 < panel_count ? reinterpret_cast<const char*>(panel + k * kPanelCols) : nullptr;
      const int64_t lines = next != nullptr ? k * kPanelCols * static_cast<int64_t>(sizeof(float)) / 64 : 0;
      const int64_t share = (lines + tiles - 1) / tiles, per_k = (share + k - 1) / k;
      int64_t r = 0;
      for (int64_t t = 0; t < tiles; t++) {
        const int64_t left = rows - r, height = (left + (tiles - t) - 1) / (tiles - t);
        const int64_t own = std::clamp<int64_t>(lines - t * share, 0, share);
        (gelu ? kGeluTiles : kTiles)[height - 1](x + (row0 + r) * k, k, panel, bias != nullptr ? bias + col0 : nullptr, k,
                           out + (row0 + r) * n + col0, n, cols, next != nullptr ? next + 64 * t * share : nullptr, per_k, own);
        r += height;
      }
    }
  });
#else
  (void)x, (void)m, (void)k, (void)panels, (void)n, (void)bias, (void)gelu, (void)out;
  TORCH_CHECK(false, "panel_linear needs an x86-64 CPU with AVX-512");
#endif
}

}  // namespace

at::Tensor PackPanels(const at::Tensor& weight) {
  TORCH_CHECK(CpuHasAvx512(), "pack_panels needs a CPU with AVX-512 (panels_supported() is false here)");
  TORCH_CHECK(weight.dim() == 2, "Expected a 2-D weight [out, in] for pack_panels but received ", weight.dim(), " dimensions");
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.device().is_cpu(),
              "Expected a float32 CPU weight for pack_panels but received ", weight.scalar_type(), " on ", weight.device());
  const int64_t n = weight.size(0), k = weight.size(1);
  TORCH_CHECK(n > 0 && k > 0, "Expected a non-empty weight for pack_panels but received [", n, ", ", k, "]");
  const int64_t panel_count = (n + kPanelCols - 1) / kPanelCols;
  // [n, k] -> zero rows up to a whole panel -> [panels, 64, k] -> [panels, k, 64].
  const at::Tensor padded = at::constant_pad_nd(weight.detach(), {0, 0, 0, panel_count * kPanelCols - n}, 0);
  return padded.view({panel_count, kPanelCols, k}).transpose(1, 2).contiguous();
}

at::Tensor PanelLinear(const at::Tensor& input, const at::Tensor& panels, const std::optional<at::Tensor>& bias,
                       int64_t out_features, c10::string_view activation) {
  TORCH_CHECK(activation == "none" || activation == "gelu", "Expected 'none' or 'gelu' for the activation of panel_linear but received '",
              std::string(activation), "'");
  TORCH_CHECK(panels.dim() == 3 && panels.size(2) == kPanelCols && panels.scalar_type() == at::kFloat && panels.device().is_cpu() &&
                  panels.is_contiguous(),
              "Expected panels from pack_panels for panel_linear but received a tensor of shape ", panels.sizes());
  const int64_t k = panels.size(1);
  TORCH_CHECK(k > 0 && panels.size(0) > 0, "Expected panels from pack_panels for panel_linear but received an empty tensor of shape ", panels.sizes());
  TORCH_CHECK(out_features > (panels.size(0) - 1) * kPanelCols && out_features <= panels.size(0) * kPanelCols,
              "panel_linear: ", out_features, " output features do not fit ", panels.size(0), " panels of ", kPanelCols);
  TORCH_CHECK(input.scalar_type() == at::kFloat && input.device().is_cpu(), "Expected a float32 CPU input for panel_linear but received ",
              input.scalar_type(), " on ", input.device());
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == k, "Expected an input of width ", k, " for panel_linear but received shape ", input.sizes());
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == out_features && bias->scalar_type() == at::kFloat && bias->device().is_cpu(),
                "Expected a float32 CPU bias of shape [", out_features, "] for panel_linear but received ", bias->sizes());
  }
  TORCH_CHECK(CpuHasAvx512(), "panel_linear needs a CPU with AVX-512 (panels_supported() is false here)");
  const at::Tensor x = input.contiguous();
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
  shape.back() = out_features;
  at::Tensor out = at::empty(shape, input.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t m = x.numel() / k;
  if (m > 0) {
    Multiply(x.data_ptr<float>(), m, k, panels.data_ptr<float>(), out_features, b.defined() ? b.data_ptr<float>() : nullptr,
             activation == "gelu", out.data_ptr<float>());
  }
  return out;
}

}  // namespace extrema
