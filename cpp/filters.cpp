#include "filters.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace cryocore {

void check_bandpass(const BandPass& bp) {
  auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  if (!std::isfinite(bp.lowpass) || bp.lowpass < 0.0 || bp.lowpass > 0.5)
    bad("lowpass must be in (0, 0.5] cycles/pixel (or None), got " + std::to_string(bp.lowpass));
  if (!std::isfinite(bp.highpass) || bp.highpass < 0.0 || bp.highpass >= 0.5)
    bad("highpass must be in (0, 0.5) cycles/pixel (or None), got " + std::to_string(bp.highpass));
  if (bp.lowpass > 0.0 && bp.highpass > 0.0 && bp.highpass >= bp.lowpass)
    bad("highpass (" + std::to_string(bp.highpass) + ") must be below lowpass (" +
        std::to_string(bp.lowpass) + ")");
  if (!std::isfinite(bp.edge) || bp.edge < 0.0 || bp.edge > 0.25)
    bad("filter edge width must be in [0, 0.25] cycles/pixel, got " + std::to_string(bp.edge));
}

namespace {
// Raised-cosine step: 0 below a - w/2, 1 above a + w/2.
double smooth_step(double f, double a, double w) {
  if (w <= 0.0) return f >= a ? 1.0 : 0.0;
  const double t = (f - (a - 0.5 * w)) / w;
  if (t <= 0.0) return 0.0;
  if (t >= 1.0) return 1.0;
  const double s = std::sin(0.5 * M_PI * t);
  return s * s;
}
}  // namespace

std::vector<float> bandpass_weights(std::size_t ny, std::size_t nx, const BandPass& bp) {
  const std::size_t nxh = nx / 2 + 1;
  std::vector<float> w(ny * nxh, 1.0f);
  for (std::size_t i = 0; i < ny; ++i) {
    const double fy = static_cast<double>(signed_freq(i, ny)) / static_cast<double>(ny);
    for (std::size_t j = 0; j < nxh; ++j) {
      const double fx = static_cast<double>(j) / static_cast<double>(nx);
      const double f = std::sqrt(fy * fy + fx * fx);
      double h = 1.0;
      if (bp.lowpass > 0.0) h *= 1.0 - smooth_step(f, bp.lowpass, bp.edge);
      if (bp.highpass > 0.0) h *= smooth_step(f, bp.highpass, bp.edge);
      w[i * nxh + j] = static_cast<float>(h);
    }
  }
  return w;
}

}  // namespace cryocore
