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

// sum over the full spectrum of w(k) |F(k)|^2 (weights optional), DC excluded,
// from the half spectrum (columns other than 0 and Nyquist count twice).
inline double spectral_energy(const cfloat* F, const float* w, std::size_t ny, std::size_t nx) {
  const std::size_t nxh = nx / 2 + 1;
  const std::size_t last_mid = (nx % 2 == 0) ? nxh - 2 : nxh - 1;  // last column counted twice
  double total = 0.0;
  for (std::size_t i = 0; i < ny; ++i) {
    const float* row = reinterpret_cast<const float*>(F + i * nxh);
    const float* wr = w ? w + i * nxh : nullptr;
    auto e = [&](std::size_t j) {
      const float v = row[2 * j] * row[2 * j] + row[2 * j + 1] * row[2 * j + 1];
      return wr ? v * wr[j] : v;
    };
    float mid = 0.0f;
    if (wr) {
#pragma omp simd reduction(+ : mid)
      for (std::size_t j = 1; j <= last_mid; ++j)
        mid += (row[2 * j] * row[2 * j] + row[2 * j + 1] * row[2 * j + 1]) * wr[j];
    } else {
#pragma omp simd reduction(+ : mid)
      for (std::size_t j = 1; j <= last_mid; ++j)
        mid += row[2 * j] * row[2 * j] + row[2 * j + 1] * row[2 * j + 1];
    }
    double edge = (i == 0) ? 0.0 : static_cast<double>(e(0));  // DC excluded
    if (nx % 2 == 0) edge += static_cast<double>(e(nxh - 1));
    total += edge + 2.0 * static_cast<double>(mid);
  }
  return total;
}

// Phase factor of a shift along one axis for signed frequency f of an
// n-point axis: exp(-2 pi i f s / n); at the Nyquist frequency of an even n
// (which has no sign) the real part cos(pi s). The product over both axes is
// Hermitian, so a shifted real image stays real. Computed by a recurrence in
// double precision (three sincos per axis instead of one per frequency; the
// error stays below 1e-12 for any practical n).
inline void shift_phase_axis(std::size_t n, bool half, double s, cfloat* out) {
  const std::size_t m = half ? n / 2 + 1 : n;
  const double a = -2.0 * M_PI * std::fmod(s / static_cast<double>(n), 1.0);
  const double cr = std::cos(a), ci = std::sin(a);
  // Negative frequencies f = k - n: exp(-2 pi i (k - n) s / n) = z^k exp(2 pi i s).
  const double b = 2.0 * M_PI * std::fmod(s, 1.0);
  const double wr = std::cos(b), wi = std::sin(b);
  double zr = 1.0, zi = 0.0;
  for (std::size_t k = 0; k < m; ++k) {
    if (n % 2 == 0 && 2 * k == n) {
      out[k] = cfloat(static_cast<float>(std::cos(M_PI * std::fmod(s, 2.0))), 0.0f);
    } else if (!half && 2 * k > n) {
      out[k] = cfloat(static_cast<float>(zr * wr - zi * wi), static_cast<float>(zr * wi + zi * wr));
    } else {
      out[k] = cfloat(static_cast<float>(zr), static_cast<float>(zi));
    }
    const double t = zr * cr - zi * ci;
    zi = zr * ci + zi * cr;
    zr = t;
  }
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
