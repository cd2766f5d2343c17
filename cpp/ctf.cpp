#include "ctf.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "accumulate.hpp"
#include "filters.hpp"
#include "parallel.hpp"
#include "plans.hpp"
#include "simd.hpp"
#include "spectra.hpp"

namespace cryocore {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr const char* kNames[kCtfFields] = {"defocus_u_A",     "defocus_v_A", "defocus_angle_deg",
                                            "voltage_kV",      "cs_mm",       "amplitude_contrast",
                                            "phase_shift_deg", "bfactor_A2",  "scale"};

// RELION's relativistic electron wavelength (Å) at voltage_kV.
double wavelength_A(double voltage_kV) {
  const double v = voltage_kV * 1e3;
  return 12.2643247 / std::sqrt(v * (1.0 + 0.978466e-6 * v));
}

// The particle's coefficients of gamma (see ctf.hpp) for a pose psi_deg.
struct Coefficients {
  double a, bc, bs, d, e, bfactor, scale;
};

Coefficients coefficients(const double* p, double psi_deg) {
  const double lam = wavelength_A(p[3]);
  const double angle = (p[2] - psi_deg) * kPi / 180.0;
  const double mean = 0.5 * (p[0] + p[1]), half_diff = 0.5 * (p[0] - p[1]);
  const double q0 = p[5];
  Coefficients c;
  c.a = -kPi * lam * mean;
  c.bc = -kPi * lam * half_diff * std::cos(2.0 * angle);
  c.bs = -kPi * lam * half_diff * std::sin(2.0 * angle);
  c.d = 0.5 * kPi * p[4] * 1e7 * lam * lam * lam;
  c.e = -(p[6] * kPi / 180.0) - std::atan(q0 / std::sqrt(1.0 - q0 * q0));
  c.bfactor = p[7];
  c.scale = p[8];
  return c;
}

// -sin(gamma) * scale (or its square) along a row of frequency Y (1/Å) at
// the columns' X (x2 = X^2), n entries:
//     u2 = X^2 + Y^2,  gamma = (a + bc) X^2 + 2 bs Y X + d u2^2 + (a - bc) Y^2 + e,
// reduced by the nearest multiple m of pi (rounded with the 1.5 * 2^52 trick,
// so that the loop vectorises without SSE4.1), then an odd polynomial on
// [-pi/2, pi/2] (Taylor to x^15: error below 1e-11); branch-free.
// With a B-factor, times exp(-B/4 u2): exp(x / 2^12) by its Taylor series
// to x^6, squared 12 times (relative error ~1e-12 for |x| < 700; x is
// clamped there, where the envelope is below 1e-300 anyway).
// With intact_first_peak, frequencies before the first peak (|gamma - e| < pi/2,
// RELION's --ctf_intact_first_peak) get 1 instead of -sin(gamma) (then the envelope
// and scale as elsewhere).
template <bool Squared, bool Envelope>
CRYOCORE_HOT void minus_sine_row(const double* x, const double* x2, double y, std::size_t n, const Coefficients& k,
                                 bool intact_first_peak, float* out) {
  constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  constexpr double kInvPi = 1.0 / kPi;
  const double y2 = y * y;
  const double cx2 = k.a + k.bc, cx = 2.0 * k.bs * y, d = k.d, c0 = (k.a - k.bc) * y2 + k.e, sc = k.scale;
  const double eb = -0.25 * k.bfactor / 4096.0;
  const double intact = intact_first_peak ? 0.5 * kPi : -1.0;  // |gamma - e| below this: 1
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) {
    const double u2 = x2[i] + y2;
    const double g = cx2 * x2[i] + cx * x[i] + d * (u2 * u2) + c0;
    const double before_peak = std::fabs(g - k.e) < intact ? 1.0 : 0.0;
    const double m = (g * kInvPi + kMagic) - kMagic;       // nearest integer to g / pi
    const double r = g - m * kPi;                          // in [-pi/2, pi/2]
    const double odd = m - 2.0 * ((m * 0.5 + kMagic) - kMagic);  // -1, 0 or 1
    const double sign = 2.0 * odd * odd - 1.0;             // -sin(g) = -(-1)^m sin(r)
    const double r2 = r * r;
    const double p =
        r * (1.0 + r2 * (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880 +
             r2 * (-1.0 / 39916800 + r2 * (1.0 / 6227020800 + r2 * (-1.0 / 1307674368000))))))));
    double v = (sign * p * (1.0 - before_peak) + before_peak) * sc;
    if (Envelope) {
      const double z = eb * u2;
      constexpr double c = 700.0 / 4096.0;
      const double hi = 0.5 * (z + c - std::fabs(z - c));        // min(z, c), branch-free
      const double e = 0.5 * (hi - c + std::fabs(hi + c));       // max(hi, -c)
      double t = 1.0 + e * (1.0 + e * (0.5 + e * (1.0 / 6 + e * (1.0 / 24 + e * (1.0 / 120 + e * (1.0 / 720))))));
      t *= t, t *= t, t *= t, t *= t, t *= t, t *= t;  // 12 squarings
      t *= t, t *= t, t *= t, t *= t, t *= t, t *= t;
      v *= t;
    }
    out[i] = static_cast<float>(Squared ? v * v : v);
  }
}

using RowFn = void (*)(const double*, const double*, double, std::size_t, const Coefficients&, bool, float*);

RowFn row_function(bool squared, bool envelope) {
  return squared ? (envelope ? &minus_sine_row<true, true> : &minus_sine_row<true, false>)
                 : (envelope ? &minus_sine_row<false, true> : &minus_sine_row<false, false>);
}

}  // namespace

void check_ctf_params(const double* params, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const double* p = params + i * kCtfFields;
    for (std::size_t f = 0; f < kCtfFields; ++f) {
      const double v = p[f];
      const char* expected = nullptr;
      if (!std::isfinite(v))
        expected = "a finite number";
      else if (f == 3 && v <= 0)
        expected = "a positive voltage in kV";
      else if (f == 4 && v < 0)
        expected = "a spherical aberration >= 0 mm";
      else if (f == 5 && (v < 0 || v >= 1))
        expected = "an amplitude contrast in [0, 1)";
      if (expected)
        throw std::invalid_argument("particle " + std::to_string(i + 1) + ": " + kNames[f] + " is " +
                                    std::to_string(v) + "; expected " + expected);
    }
  }
}

CtfGrid::CtfGrid(std::size_t ny, std::size_t nx, double pixel_size_A, long ky_max, long kx_max,
                 bool intact_first_peak)
    : ny_(ny), nxh_(nx / 2 + 1), intact_(intact_first_peak) {
  if (!(pixel_size_A > 0) || !std::isfinite(pixel_size_A))
    throw std::invalid_argument("pixel_size_A must be a positive number, got " + std::to_string(pixel_size_A));
  const std::size_t last = kx_max < 0 ? nxh_ - 1 : std::min<std::size_t>(static_cast<std::size_t>(kx_max), nxh_ - 1);
  for (std::size_t r = 0; r < ny; ++r)
    if (ky_max < 0 || std::labs(signed_freq(r, ny)) <= ky_max) {
      rows_.push_back(r);
      y_.push_back(static_cast<double>(signed_freq(r, ny)) / (static_cast<double>(ny) * pixel_size_A));
    }
  for (std::size_t kx = 0; kx <= last; ++kx) {
    x_.push_back(static_cast<double>(kx) / (static_cast<double>(nx) * pixel_size_A));
    x2_.push_back(x_.back() * x_.back());
  }
}

void CtfGrid::evaluate(const double* params, double psi_deg, bool squared, float* out) const {
  const Coefficients k = coefficients(params, psi_deg);
  const RowFn fn = row_function(squared, k.bfactor != 0.0);
  if (rows_.size() != ny_ || x_.size() != nxh_) std::fill(out, out + size(), 0.0f);
  for (std::size_t j = 0; j < rows_.size(); ++j) fn(x_.data(), x2_.data(), y_[j], x_.size(), k, intact_, out + rows_[j] * nxh_);
}

void CtfGrid::multiply(const double* params, cfloat* F, std::vector<float>& scratch) const {
  const Coefficients k = coefficients(params, 0.0);
  const RowFn fn = row_function(false, k.bfactor != 0.0);
  const std::size_t w = x_.size();
  scratch.resize(w);
  float* h = scratch.data();
  for (std::size_t j = 0; j < rows_.size(); ++j) {
    fn(x_.data(), x2_.data(), y_[j], w, k, intact_, h);
    float* f = reinterpret_cast<float*>(F + rows_[j] * nxh_);
#pragma omp simd
    for (std::size_t c = 0; c < w; ++c) {
      f[2 * c] *= h[c];
      f[2 * c + 1] *= h[c];
    }
  }
}

void ctf_filter_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx, const CtfRows& ctf,
                      int threads, float* out, const std::int64_t* index) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  const double* params = ctf.params;
  check_ctf_params(params, n);
  const auto plan = get_fft2d(ny, nx);
  const CtfGrid grid(ny, nx, ctf.pixel_size_A, -1, -1, ctf.intact_first_peak);
  const std::size_t npx = ny * nx, nsp = plan->complex_size();
  const float scale = 1.0f / static_cast<float>(npx);
  struct Slot {
    RealArray img;
    ComplexArray F;
    std::vector<float> h;
  };
  std::vector<std::unique_ptr<Slot>> pool(static_cast<std::size_t>(threads));
  parallel_for(n, threads, [&](std::size_t i, std::size_t worker) {
    auto& s = pool[worker];
    if (!s) s.reset(new Slot{RealArray(npx), ComplexArray(nsp), {}});
    const std::size_t src = index ? static_cast<std::size_t>(index[i]) : i;
    plan->forward(fft_readable(images + src * npx, npx, s->img.data()), s->F.data());
    if (!spectrum_finite(s->F.data())) throw_non_finite_image(src);
    grid.multiply(params + i * kCtfFields, s->F.data(), s->h);
    float* f = reinterpret_cast<float*>(s->F.data());
#pragma omp simd
    for (std::size_t k = 0; k < 2 * nsp; ++k) f[k] *= scale;
    plan->inverse(s->F.data(), out + i * npx);
  });
}

void ctf_planes(const CtfRows& ctf, const double* angles, std::size_t n, std::size_t ny, std::size_t nx,
                bool squared, int threads, float* out) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  const double* params = ctf.params;
  check_ctf_params(params, n);
  const CtfGrid grid(ny, nx, ctf.pixel_size_A, -1, -1, ctf.intact_first_peak);
  parallel_for(n, threads, [&](std::size_t i, std::size_t) {
    grid.evaluate(params + i * kCtfFields, angles ? angles[i] : 0.0, squared, out + i * grid.size());
  });
}

void accumulate_ctf2(const CtfRows& ctf, const double* angles, const double* weights, const std::int32_t* group,
                     std::size_t n, std::size_t n_groups, std::size_t ny, std::size_t nx, double band, int threads,
                     double* out) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  const double* params = ctf.params;
  check_ctf_params(params, n);
  for (std::size_t i = 0; i < n; ++i) {
    if (group[i] >= 0 && static_cast<std::size_t>(group[i]) >= n_groups)
      throw std::invalid_argument("group " + std::to_string(group[i]) + " of particle " + std::to_string(i) +
                                  " is out of range for " + std::to_string(n_groups) + " groups");
    if (!std::isfinite(weights[i]) || (angles && !std::isfinite(angles[i])))
      throw std::invalid_argument("the weight or angle of particle " + std::to_string(i) + " is not finite");
  }
  const SpectrumBand B(ny, nx, band);
  const CtfGrid grid(ny, nx, ctf.pixel_size_A, static_cast<long>(B.ky_extent()), static_cast<long>(B.kx_extent()),
                     ctf.intact_first_peak);
  const std::size_t per = grid.size();
  std::vector<std::vector<float>> planes(static_cast<std::size_t>(threads), std::vector<float>(per));
  // Partial sums per chunk of 32 particles in single precision, added in chunk order.
  chunked_sum<float>(n, 32, threads, n_groups * per, out, [&](std::size_t i, std::size_t worker, float* ps) {
    if (group[i] < 0 || weights[i] == 0.0) return;
    std::vector<float>& plane = planes[worker];
    grid.evaluate(params + i * kCtfFields, angles ? angles[i] : 0.0, true, plane.data());
    const float w = static_cast<float>(weights[i]);
    float* o = ps + static_cast<std::size_t>(group[i]) * per;
    const float* p = plane.data();
#pragma omp simd
    for (std::size_t k = 0; k < per; ++k) o[k] += w * p[k];
  });
}

}  // namespace cryocore
