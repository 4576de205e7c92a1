// Scaled dot-product attention, softmax(q k^T * scale) v, for the short
// sequences of a small ViT at inference: an AVX-512 kernel per (image, head)
// with no setup. ATen's CPU flash attention is built for long sequences
// (blocking, per-call buffers); at the 50 tokens and few images of a served
// request its fixed cost is a large part of its time (bench:inference-kernels,
// BENCHMARKS.md). Registered as the dispatcher operator
// extrema::small_attention (operators.cc), so operator traces replay it like
// ATen's.
//
// Per (image, head): the keys are transposed once into [head_dim, keys] and
// the values copied, both zero padded to whole chunks of 64; the scores of
// up to 6 query rows are a register tile of 6 x 64 keys, the softmax runs
// on them in place, and the values come in as a 6 x 64 tile of the output.
// Fewer than 6 queries (a class token's one) take plain dot products on the
// rows as they are instead: the copies would cost more than the arithmetic.
// Numerically it is ATen's recipe: scores times scale, minus the row's
// maximum, exp, the weighted sum of values divided by the sum of the
// exponentials at the end. The output is laid out
// [B, queries, heads, head_dim] and returned as the [B, heads, queries,
// head_dim] view, as ATen's flash attention returns it, so merging the heads
// afterwards is a view, not a copy.
#include "common.h"
#include "kernels.h"
#include "simd_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace extrema {
namespace {

constexpr int kTileRows = 6;       // query rows per tile: 6 x 4 accumulators, as in panel_linear.cc
constexpr int64_t kChunk = 64;     // keys (scores) or head features (outputs) per tile: 4 registers
constexpr int64_t kMaxKeys = 512;  // the transposed keys and a tile's scores stay in L1/L2
constexpr int64_t kMaxHeadDim = 256;

#if EXTREMA_AVX512_KERNELS
// scores[r, c0 : c0 + 64] = q[r, :] . keys_t[:, c0 : c0 + 64] for Rows query
// rows; keys_t is [depth, padded] with `padded` a multiple of 64. Plain
// loads in the loop (padded operands), as in panel_linear.cc: with masked
// ones GCC keeps the accumulators in memory.
template <int Rows>
__attribute__((target("avx512f"))) void ScoreTile(const float* q, int64_t q_stride, const float* keys_t, int64_t padded, int64_t depth,
                                                  float* scores, int64_t c0) {
  __m512 acc[Rows][4];
  for (int r = 0; r < Rows; r++)
    for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t d = 0; d < depth; d++) {
    const float* row = keys_t + d * padded + c0;
    const __m512 w0 = _mm512_loadu_ps(row), w1 = _mm512_loadu_ps(row + 16);
    const __m512 w2 = _mm512_loadu_ps(row + 32), w3 = _mm512_loadu_ps(row + 48);
    for (int r = 0; r < Rows; r++) {
      const __m512 x = _mm512_set1_ps(q[r * q_stride + d]);
      acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(x, w2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(x, w3, acc[r][3]);
    }
  }
  for (int r = 0; r < Rows; r++)
    for (int v = 0; v < 4; v++) _mm512_storeu_ps(scores + r * padded + c0 + 16 * v, acc[r][v]);
}

// out[r, c0 : c0 + cols] = (weights[r, :keys] . values[:keys, c0 : c0 + cols]) / sums[r];
// values is [keys, v_stride] with its rows padded to a multiple of 64.
template <int Rows>
__attribute__((target("avx512f"))) void ValueTile(const float* weights, int64_t padded, const float* values, int64_t v_stride, int64_t keys,
                                                  const float* sums, float* out, int64_t out_stride, int64_t c0, int64_t cols) {
  const std::array<__mmask16, 4> mask = ChunkMasks(cols);
  __m512 acc[Rows][4];
  for (int r = 0; r < Rows; r++)
    for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t j = 0; j < keys; j++) {
    const float* row = values + j * v_stride + c0;
    const __m512 w0 = _mm512_loadu_ps(row), w1 = _mm512_loadu_ps(row + 16);
    const __m512 w2 = _mm512_loadu_ps(row + 32), w3 = _mm512_loadu_ps(row + 48);
    for (int r = 0; r < Rows; r++) {
      const __m512 x = _mm512_set1_ps(weights[r * padded + j]);
      acc[r][0] = _mm512_fmadd_ps(x, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, w1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(x, w2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(x, w3, acc[r][3]);
    }
  }
  for (int r = 0; r < Rows; r++) {
    // A division, as ATen's kernels normalise, rather than a reciprocal's extra rounding.
    const __m512 sum = _mm512_set1_ps(sums[r]);
    for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(out + r * out_stride + c0 + 16 * v, mask[v], _mm512_div_ps(acc[r][v], sum));
  }
}

// In place over one row of scores: exp(scale * s - max) on the first `keys`
// entries, 0 on the padding; returns their sum.
__attribute__((target("avx512f"))) float SoftmaxNumerators(float* scores, int64_t keys, int64_t padded, float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  __m512 top = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < padded; j += 16) {
    const __mmask16 m = Lanes(j, keys);
    top = _mm512_mask_max_ps(top, m, top, _mm512_mul_ps(_mm512_loadu_ps(scores + j), s));
  }
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(top));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < padded; j += 16) {
    const __mmask16 m = Lanes(j, keys);
    const __m512 e = _mm512_maskz_mov_ps(m, Exp(_mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(scores + j), s), max)));
    _mm512_storeu_ps(scores + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  // A NaN score makes the row's sum NaN, and so every output of the row, as in ATen.
  return _mm512_reduce_add_ps(sum);
}

using ScoreFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t);
using ValueFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, const float*, float*, int64_t, int64_t, int64_t);

template <int... I>
constexpr std::array<ScoreFn, sizeof...(I)> ScoreTable(std::integer_sequence<int, I...>) {
  return {&ScoreTile<I + 1>...};
}
template <int... I>
constexpr std::array<ValueFn, sizeof...(I)> ValueTable(std::integer_sequence<int, I...>) {
  return {&ValueTile<I + 1>...};
}
const std::array<ScoreFn, kTileRows> kScoreTiles = ScoreTable(std::make_integer_sequence<int, kTileRows>{});
const std::array<ValueFn, kTileRows> kValueTiles = ValueTable(std::make_integer_sequence<int, kTileRows>{});

// One (image, head) with few queries (a class token's attention): each
// score a dot product straight from the key rows and the output a sum of
// value rows, without the transposed copy the tiles need, which would cost
// more than the arithmetic here.
__attribute__((target("avx512f"))) void AttendFewQueries(const float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v,
                                                         int64_t v_stride, int64_t queries, int64_t keys, int64_t depth, float scale,
                                                         float* out, int64_t out_stride, std::vector<float>& scores) {
  const int64_t padded = (keys + 15) / 16 * 16;
  scores.assign(static_cast<size_t>(padded), 0.0f);
  for (int64_t i = 0; i < queries; i++) {
    const float* qi = q + i * q_stride;
    for (int64_t j = 0; j < keys; j++) {
      const float* kj = k + j * k_stride;
      __m512 acc = _mm512_setzero_ps();
      for (int64_t d = 0; d < depth; d += 16) {
        const __mmask16 m = Lanes(d, depth);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, qi + d), _mm512_maskz_loadu_ps(m, kj + d), acc);
      }
      scores[j] = _mm512_reduce_add_ps(acc);
    }
    const float sum = SoftmaxNumerators(scores.data(), keys, padded, scale);
    const __m512 total = _mm512_set1_ps(sum);
    for (int64_t c0 = 0; c0 < depth; c0 += kChunk) {
      const std::array<__mmask16, 4> mask = ChunkMasks(std::min(kChunk, depth - c0));
      __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
      for (int64_t j = 0; j < keys; j++) {
        const float* row = v + j * v_stride + c0;
        const __m512 p = _mm512_set1_ps(scores[j]);
        acc0 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(mask[0], row), acc0);
        acc1 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(mask[1], row + 16), acc1);
        acc2 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(mask[2], row + 32), acc2);
        acc3 = _mm512_fmadd_ps(p, _mm512_maskz_loadu_ps(mask[3], row + 48), acc3);
      }
      float* o = out + i * out_stride + c0;
      _mm512_mask_storeu_ps(o, mask[0], _mm512_div_ps(acc0, total));
      _mm512_mask_storeu_ps(o + 16, mask[1], _mm512_div_ps(acc1, total));
      _mm512_mask_storeu_ps(o + 32, mask[2], _mm512_div_ps(acc2, total));
      _mm512_mask_storeu_ps(o + 48, mask[3], _mm512_div_ps(acc3, total));
    }
  }
}

// One (image, head): q [queries, depth], k and v [keys, depth] by their row
// strides (features contiguous); out [queries, depth] by out_stride.
void AttendHead(const float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v, int64_t v_stride, int64_t queries,
                int64_t keys, int64_t depth, float scale, float* out, int64_t out_stride, std::vector<float>& keys_t,
                std::vector<float>& values, std::vector<float>& scores) {
  if (queries < kTileRows) return AttendFewQueries(q, q_stride, k, k_stride, v, v_stride, queries, keys, depth, scale, out, out_stride, scores);
  // Keys transposed and values copied, both zero padded to whole chunks, so the tiles' loads never go past them.
  const int64_t padded = (keys + kChunk - 1) / kChunk * kChunk, width = (depth + kChunk - 1) / kChunk * kChunk;
  keys_t.assign(static_cast<size_t>(depth * padded), 0.0f);
  // In blocks of 16 keys: 16 reads of a feature column and a 64-byte write, rather than a write a row apart per element.
  for (int64_t j0 = 0; j0 < keys; j0 += 16) {
    const int64_t n = std::min<int64_t>(16, keys - j0);
    for (int64_t d = 0; d < depth; d++) {
      float* to = keys_t.data() + d * padded + j0;
      for (int64_t j = 0; j < n; j++) to[j] = k[(j0 + j) * k_stride + d];
    }
  }
  values.assign(static_cast<size_t>(keys * width), 0.0f);
  for (int64_t j = 0; j < keys; j++) std::copy(v + j * v_stride, v + j * v_stride + depth, values.data() + j * width);
  scores.resize(static_cast<size_t>(kTileRows * padded));
  std::array<float, kTileRows> sums;
  // Tiles of even height (50 queries: 9 tiles of 5-6), so no tile is a lone row.
  const int64_t tiles = (queries + kTileRows - 1) / kTileRows;
  int64_t i = 0;
  for (int64_t t = 0; t < tiles; t++) {
    const int64_t height = (queries - i + (tiles - t) - 1) / (tiles - t);
    for (int64_t c0 = 0; c0 < padded; c0 += kChunk) kScoreTiles[height - 1](q + i * q_stride, q_stride, keys_t.data(), padded, depth, scores.data(), c0);
    for (int64_t r = 0; r < height; r++) sums[r] = SoftmaxNumerators(scores.data() + r * padded, keys, padded, scale);
    for (int64_t c0 = 0; c0 < depth; c0 += kChunk) {
      kValueTiles[height - 1](scores.data(), padded, values.data(), width, keys, sums.data(), out + i * out_stride, out_stride, c0, std::min(kChunk, depth - c0));
    }
    i += height;
  }
}
#endif

}  // namespace

at::Tensor SmallAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, std::optional<double> scale) {
  TORCH_CHECK(CpuHasAvx512(), "small_attention needs a CPU with AVX-512 (small_attention_supported() is false here)");
  for (const auto& [t, name] : {std::pair{&q, "query"}, std::pair{&k, "key"}, std::pair{&v, "value"}}) {
    TORCH_CHECK(t->dim() == 4, "Expected a 4-D ", name, " [batch, heads, tokens, head_dim] for small_attention but received shape ", t->sizes());
    TORCH_CHECK(t->scalar_type() == at::kFloat && t->device().is_cpu(), "Expected a float32 CPU ", name, " for small_attention but received ",
                t->scalar_type(), " on ", t->device());
  }
  const int64_t batch = q.size(0), heads = q.size(1), queries = q.size(2), depth = q.size(3), keys = k.size(2);
  TORCH_CHECK(k.size(0) == batch && k.size(1) == heads && k.size(3) == depth && v.sizes() == k.sizes(),
              "small_attention: query ", q.sizes(), ", key ", k.sizes(), " and value ", v.sizes(), " do not match");
  TORCH_CHECK(keys >= 1 && keys <= kMaxKeys && depth >= 1 && depth <= kMaxHeadDim, "small_attention takes 1 to ", kMaxKeys,
              " keys and head_dim 1 to ", kMaxHeadDim, "; received ", keys, " keys of ", depth);
  const double factor = scale.has_value() ? *scale : 1.0 / std::sqrt(static_cast<double>(depth));
  // Features contiguous in each row; any strides across rows, heads and images (the views of a fused qkv).
  auto rows = [](const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); };
  const at::Tensor qc = rows(q), kc = rows(k), vc = rows(v);
  at::Tensor out = at::empty({batch, queries, heads, depth}, q.options().memory_format(at::MemoryFormat::Contiguous));
#if EXTREMA_AVX512_KERNELS
  if (out.numel() > 0) {
    const float* qp = qc.data_ptr<float>();
    const float* kp = kc.data_ptr<float>();
    const float* vp = vc.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> keys_t, values, scores;
      for (int64_t item = begin; item < end; item++) {
        const int64_t b = item / heads, h = item % heads;
        AttendHead(qp + b * qc.stride(0) + h * qc.stride(1), qc.stride(2), kp + b * kc.stride(0) + h * kc.stride(1), kc.stride(2),
                   vp + b * vc.stride(0) + h * vc.stride(1), vc.stride(2), queries, keys, depth, static_cast<float>(factor),
                   op + (b * queries * heads + h) * depth, heads * depth, keys_t, values, scores);
      }
    });
  }
#endif
  return out.transpose(1, 2);
}

}  // namespace extrema
