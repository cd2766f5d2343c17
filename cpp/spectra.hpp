// Small spectrum kernels shared by correlation, shifting and accumulation.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "filters.hpp"
#include "plans.hpp"

namespace cryocore {

// True when every value is finite. Branch-free so that it vectorises.
inline bool all_finite(const float* p, std::size_t n) {
  std::size_t bad = 0;
#pragma omp simd reduction(+ : bad)
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t u;
    std::memcpy(&u, &p[i], sizeof u);
    bad += ((u & 0x7f800000u) == 0x7f800000u) ? 1u : 0u;
  }
  return bad == 0;
}

// Powers z^f = exp(i theta f), f = 0, 1, ..., count - 1, in double
// precision, handed to put(f, re, im) in order: two interleaved recurrences
// (even and odd f, each stepping by z^2), so that neither waits on the
// other's multiplications; error ~1e-13 for any practical count.
template <class Put>
inline void phase_powers(double theta, std::size_t count, Put&& put) {
  const double c2r = std::cos(2.0 * theta), c2i = std::sin(2.0 * theta);
  double er = 1.0, ei = 0.0;                            // z^f, f even
  double odr = std::cos(theta), odi = std::sin(theta);  // z^f, f odd
  for (std::size_t f = 0; f < count; f += 2) {
    put(f, er, ei);
    if (f + 1 < count) put(f + 1, odr, odi);
    const double t = er * c2r - ei * c2i;
    ei = er * c2i + ei * c2r;
    er = t;
    const double u = odr * c2r - odi * c2i;
    odi = odr * c2i + odi * c2r;
    odr = u;
  }
}

// Phase factor of a shift along one axis for signed frequency f of an
// n-point axis: exp(-2 pi i f s / n); at the Nyquist frequency of an even n
// (which has no sign) the real part cos(pi s). The product over both axes is
// Hermitian, so a shifted real image stays real. The negative frequencies
// are the conjugates of the positive ones (three sincos per axis, no more).
inline void shift_phase_axis(std::size_t n, bool half, double s, cfloat* out) {
  const std::size_t pos = half ? n / 2 + 1 : (n + 1) / 2;  // entries k < pos hold f = k >= 0
  const double a = -2.0 * M_PI * std::fmod(s / static_cast<double>(n), 1.0);
  phase_powers(a, half ? pos : n / 2 + 1, [&](std::size_t f, double zr, double zi) {
    if (f < pos) out[f] = cfloat(static_cast<float>(zr), static_cast<float>(zi));
    if (!half && f > 0 && n - f >= pos) out[n - f] = cfloat(static_cast<float>(zr), static_cast<float>(-zi));
  });
  if (n % 2 == 0) out[n / 2] = cfloat(static_cast<float>(std::cos(M_PI * std::fmod(s, 2.0))), 0.0f);
}

// out[j] (+)= F[j] * e * ex[j] for one spectrum row (Add: accumulate, else
// assign; out may be F), in plain real arithmetic (std::complex
// multiplication guards against NaN/inf with a slow path that stops
// vectorisation; the inputs here are known to be finite). Single precision:
// accumulating callers sum a few dozen rows this way and then promote.
template <bool Add>
inline void phase_row(const cfloat* F, cfloat e, const cfloat* ex, std::size_t n, cfloat* out) {
  const float* f = reinterpret_cast<const float*>(F);
  const float* x = reinterpret_cast<const float*>(ex);
  float* o = reinterpret_cast<float*>(out);
  const float er = e.real(), ei = e.imag();
#pragma omp simd
  for (std::size_t j = 0; j < n; ++j) {
    const float pr = er * x[2 * j] - ei * x[2 * j + 1];
    const float pi = er * x[2 * j + 1] + ei * x[2 * j];
    const float a = f[2 * j], b = f[2 * j + 1];
    const float re = a * pr - b * pi, im = a * pi + b * pr;
    if (Add) {
      o[2 * j] += re;
      o[2 * j + 1] += im;
    } else {
      o[2 * j] = re;
      o[2 * j + 1] = im;
    }
  }
}

// False when the image behind a half spectrum held NaN or infinity: F(0) is
// the sum of all pixels, which any non-finite pixel makes non-finite (as do
// values too large to sum in float32).
inline bool spectrum_finite(const cfloat* F) {
  return std::isfinite(F[0].real()) && std::isfinite(F[0].imag());
}

[[noreturn]] inline void throw_non_finite_image(std::size_t index) {
  throw std::invalid_argument("image " + std::to_string(index) +
                              " contains NaN or infinity (or values too large to Fourier transform); "
                              "all pixel values must be finite");
}

}  // namespace cryocore
