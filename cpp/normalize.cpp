#include "normalize.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"
#include "spectra.hpp"

namespace cryocore {

namespace {

// Per row, the particle's columns [lo, hi) (inside the circle); the rest is background.
struct Rows {
  std::vector<std::size_t> lo, hi;
  std::size_t background = 0;
};

Rows particle_rows(std::size_t ny, std::size_t nx, double radius) {
  Rows r;
  const double cy = static_cast<double>(ny / 2), cx = static_cast<double>(nx / 2);
  for (std::size_t y = 0; y < ny; ++y) {
    const double dy = static_cast<double>(y) - cy;
    const double h2 = radius * radius - dy * dy;
    std::size_t lo = 0, hi = 0;  // empty: the whole row is background
    if (h2 >= 0.0) {
      const double h = std::sqrt(h2);
      // inside: |x - cx| <= h (the same as numpy's hypot(y, x) > radius for the background)
      const double first = std::ceil(cx - h), last = std::floor(cx + h);
      lo = static_cast<std::size_t>(std::max(0.0, first));
      hi = static_cast<std::size_t>(std::min(static_cast<double>(nx), last + 1.0));
      if (hi < lo) hi = lo;
    }
    r.lo.push_back(lo);
    r.hi.push_back(hi);
    r.background += nx - (hi - lo);
  }
  return r;
}

// Mean and population deviation of the background of one image (sign: +1 or -1 applied).
void background_stats(const float* img, std::size_t ny, std::size_t nx, const Rows& rows, double& mean,
                      double& sd) {
  double s = 0.0, s2 = 0.0;
  for (std::size_t y = 0; y < ny; ++y) {
    const float* row = img + y * nx;
    double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
    for (std::size_t x = 0; x < rows.lo[y]; ++x) {
      a += row[x];
      b += static_cast<double>(row[x]) * row[x];
    }
#pragma omp simd reduction(+ : a, b)
    for (std::size_t x = rows.hi[y]; x < nx; ++x) {
      a += row[x];
      b += static_cast<double>(row[x]) * row[x];
    }
    s += a;
    s2 += b;
  }
  const double m = static_cast<double>(rows.background);
  mean = s / m;
  sd = std::sqrt(std::max(0.0, s2 / m - mean * mean));
}

}  // namespace

void normalize_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx, const NormalizeParams& p,
                     float* out, const std::int64_t* index) {
  if (p.threads < 1) throw std::invalid_argument("threads must be >= 1");
  if (!(p.radius_px > 0.0) || !std::isfinite(p.radius_px))
    throw std::invalid_argument("the particle radius must be a positive number of pixels");
  const Rows rows = particle_rows(ny, nx, p.radius_px);
  if (rows.background < 10)
    throw std::invalid_argument("a particle radius of " + std::to_string(p.radius_px) + " px leaves " +
                                std::to_string(rows.background) + " background pixels in a box of " +
                                std::to_string(ny) + " x " + std::to_string(nx) + " px (at least 10 are needed)");
  const std::size_t npx = ny * nx;
  parallel_for(n, p.threads, [&](std::size_t i, std::size_t) {
    const std::size_t src = index ? static_cast<std::size_t>(index[i]) : i;
    const float* in = images + src * npx;
    if (!all_finite(in, npx))
      throw std::invalid_argument("image " + std::to_string(src) +
                                  " contains NaN or infinity; all pixel values must be finite");
    float* o = out + i * npx;
    const float sign = p.invert ? -1.0f : 1.0f;
#pragma omp simd
    for (std::size_t k = 0; k < npx; ++k) o[k] = sign * in[k];
    double mean = 0.0, sd = 0.0;
    background_stats(o, ny, nx, rows, mean, sd);
    if (p.hot_sigma > 0.0 && sd > 0.0) {
      const double limit = p.hot_sigma * sd;
      const float fm = static_cast<float>(mean);
#pragma omp simd
      for (std::size_t k = 0; k < npx; ++k) o[k] = std::fabs(o[k] - mean) > limit ? fm : o[k];
      background_stats(o, ny, nx, rows, mean, sd);
    }
    if (!p.normalize) return;
    const double scale = sd > 0.0 ? 1.0 / sd : 1.0;
#pragma omp simd
    for (std::size_t k = 0; k < npx; ++k) o[k] = static_cast<float>((o[k] - mean) * scale);
  });
}

}  // namespace cryocore
