// Vector helpers for the AVX-512 inference kernels (panel_linear.cc,
// small_attention.cc, row_layer_norm.cc): lane masks for rows that are not a
// whole number of vectors, and the functions ATen's vectorized kernels
// apply, in the same form, so a fused epilogue agrees with ATen's separate
// pass to float rounding. EXTREMA_AVX512_KERNELS says whether this compiler
// and architecture build them at all (kernels.h's CpuHasAvx512 says whether
// they run on this CPU).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EXTREMA_AVX512_KERNELS 1
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace extrema {

// Lanes of the 16 floats from index `at` that are among the first `n`.
inline __mmask16 Lanes(int64_t at, int64_t n) { return static_cast<__mmask16>((1u << std::clamp<int64_t>(n - at, 0, 16)) - 1u); }

// Lanes of the 4 registers of a 64-float chunk that hold one of its first `valid` floats.
inline std::array<__mmask16, 4> ChunkMasks(int64_t valid) { return {Lanes(0, valid), Lanes(16, valid), Lanes(32, valid), Lanes(48, valid)}; }

// exp(x) to about 2 ulp (Cephes' expf: a degree-6 polynomial on x - n ln 2,
// then scaled by 2^n). Below -103 exp is under the smallest float and comes
// out 0. A NaN stays NaN (vmaxps returns its second operand when either is
// NaN).
__attribute__((target("avx512f"))) inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-103.0f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// The exact (erf) GELU, x * 0.5 * (1 + erf(x / sqrt 2)), with erf as ATen's
// Vectorized<float>::erf computes it (Abramowitz and Stegun 7.1.26, about
// 1.5e-7 absolute) and the same order of operations.
__attribute__((target("avx512f"))) inline __m512 Gelu(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512i sign_bit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f));
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(z), sign_bit);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), _mm512_abs_ps(z), one));
  __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(1.061405429f), t, _mm512_set1_ps(-1.453152027f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(1.421413741f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.284496736f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.254829592f));
  const __m512 neg_square = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_mul_ps(z, z)), sign_bit));
  const __m512 neg_exp = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(Exp(neg_square)), sign_bit));
  const __m512 erf_abs = _mm512_fmadd_ps(_mm512_mul_ps(neg_exp, t), r, one);
  const __m512 erf = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(erf_abs), sign));
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(one, erf));
}

}  // namespace extrema
#endif
