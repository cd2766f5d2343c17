#include "rotate.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "parallel.hpp"
#include "simd.hpp"
#include "spectra.hpp"

namespace cryocore {
namespace {

// Keys cubic convolution weights (a = -0.5) for the 4 taps at offsets -1, 0, 1, 2 of a sample
// at fractional position t in [0, 1).
inline void cubic_weights(float t, float w[4]) {
  const float t2 = t * t, t3 = t2 * t;
  w[0] = -0.5f * t3 + t2 - 0.5f * t;
  w[1] = 1.5f * t3 - 2.5f * t2 + 1.0f;
  w[2] = -1.5f * t3 + 2.0f * t2 + 0.5f * t;
  w[3] = 0.5f * t3 - 0.5f * t2;
}

}  // namespace

CRYOCORE_HOT void transform_image(const float* in, std::size_t ny, std::size_t nx,
                                  double angle_deg, double dy, double dx, bool inverse,
                                  float* out) {
  const double a = angle_deg * M_PI / 180.0;
  const double c = std::cos(a), s = std::sin(a);
  const double cy = static_cast<double>(ny / 2), cx = static_cast<double>(nx / 2);
  const auto iny = static_cast<long>(ny), inx = static_cast<long>(nx);
  // Source position (u, v) = (x, y) of the input for output pixel (x', y'):
  //   inverse: (u, v) = Rot(psi) (x', y') + (dx, dy)
  //   forward: (u, v) = Rot(-psi) ((x', y') - (dx, dy))
  for (std::size_t yi = 0; yi < ny; ++yi) {
    const double yp = static_cast<double>(yi) - cy;
    for (std::size_t xi = 0; xi < nx; ++xi) {
      const double xp = static_cast<double>(xi) - cx;
      double u, v;
      if (inverse) {
        u = c * xp - s * yp + dx;
        v = s * xp + c * yp + dy;
      } else {
        const double qx = xp - dx, qy = yp - dy;
        u = c * qx + s * qy;
        v = -s * qx + c * qy;
      }
      const double sx = u + cx, sy = v + cy;
      const double fx = std::floor(sx), fy = std::floor(sy);
      const long x0 = static_cast<long>(fx), y0 = static_cast<long>(fy);
      float wx[4], wy[4];
      cubic_weights(static_cast<float>(sx - fx), wx);
      cubic_weights(static_cast<float>(sy - fy), wy);
      float acc = 0.0f;
      if (x0 >= 1 && y0 >= 1 && x0 + 2 < inx && y0 + 2 < iny) {
        for (int j = 0; j < 4; ++j) {
          const float* row = in + static_cast<std::size_t>(y0 - 1 + j) * nx + static_cast<std::size_t>(x0 - 1);
          acc += wy[j] * (wx[0] * row[0] + wx[1] * row[1] + wx[2] * row[2] + wx[3] * row[3]);
        }
      } else {  // near or beyond the edge: taps outside the box count as 0
        for (int j = 0; j < 4; ++j) {
          const long yy = y0 - 1 + j;
          if (yy < 0 || yy >= iny) continue;
          float r = 0.0f;
          for (int k = 0; k < 4; ++k) {
            const long xx = x0 - 1 + k;
            if (xx < 0 || xx >= inx) continue;
            r += wx[k] * in[static_cast<std::size_t>(yy) * nx + static_cast<std::size_t>(xx)];
          }
          acc += wy[j] * r;
        }
      }
      out[yi * nx + xi] = acc;
    }
  }
}

void transform_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                     const double* angles, const double* shifts, bool inverse, int threads,
                     float* out) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(angles[i]))
      throw std::invalid_argument("angle " + std::to_string(i) + " is not finite");
    if (shifts && !(std::isfinite(shifts[2 * i]) && std::isfinite(shifts[2 * i + 1])))
      throw std::invalid_argument("shift " + std::to_string(i) + " is not finite");
  }
  const std::size_t npx = ny * nx;
  parallel_for(n, threads, [&](std::size_t i, std::size_t) {
    if (!all_finite(images + i * npx, npx))
      throw std::invalid_argument("image " + std::to_string(i) +
                                  " contains NaN or infinity; all pixel values must be finite");
    const double dy = shifts ? shifts[2 * i] : 0.0, dx = shifts ? shifts[2 * i + 1] : 0.0;
    transform_image(images + i * npx, ny, nx, angles[i], dy, dx, inverse, out + i * npx);
  });
}

}  // namespace cryocore
