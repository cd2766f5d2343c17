#include "shift.hpp"

#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"
#include "spectra.hpp"

namespace cryocore {

void apply_shift(cfloat* F, std::size_t ny, std::size_t nx, double dy, double dx, cfloat* ey,
                 cfloat* ex) {
  const std::size_t nxh = nx / 2 + 1;
  shift_phase_axis(ny, false, dy, ey);
  shift_phase_axis(nx, true, dx, ex);
  for (std::size_t i = 0; i < ny; ++i) multiply_phase_row(F + i * nxh, ey[i], ex, nxh);
}

void shift_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                 const double* shifts, int threads, float* out) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  for (std::size_t i = 0; i < 2 * n; ++i)
    if (!std::isfinite(shifts[i]))
      throw std::invalid_argument("shift " + std::to_string(i / 2) + " is not finite");
  const auto plan = get_fft2d(ny, nx);
  const std::size_t npx = ny * nx;
  const float scale = 1.0f / static_cast<float>(npx);
  struct Scratch {
    RealArray img;
    ComplexArray F;
    std::vector<cfloat> ey, ex;
  };
  std::vector<std::unique_ptr<Scratch>> pool(static_cast<std::size_t>(threads));
  parallel_for(n, threads, [&](std::size_t i, std::size_t worker) {
    auto& s = pool[worker];
    if (!s) s.reset(new Scratch{RealArray(npx), ComplexArray(plan->complex_size()),
                                std::vector<cfloat>(ny), std::vector<cfloat>(nx / 2 + 1)});
    std::memcpy(s->img.data(), images + i * npx, npx * sizeof(float));
    if (!all_finite(s->img.data(), npx))
      throw std::invalid_argument("image " + std::to_string(i) +
                                  " contains NaN or infinity; all pixel values must be finite");
    plan->forward(s->img.data(), s->F.data());
    apply_shift(s->F.data(), ny, nx, shifts[2 * i], shifts[2 * i + 1], s->ey.data(), s->ex.data());
    plan->inverse(s->F.data(), s->img.data());
    float* o = out + i * npx;
    const float* r = s->img.data();
#pragma omp simd
    for (std::size_t k = 0; k < npx; ++k) o[k] = r[k] * scale;
  });
}

}  // namespace cryocore

namespace cryocore {

void forward_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                   int threads, cfloat* out, const std::int64_t* index) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  const auto plan = get_fft2d(ny, nx);
  const std::size_t npx = ny * nx, nsp = plan->complex_size();
  struct Scratch {
    RealArray img;
    ComplexArray F;
  };
  std::vector<std::unique_ptr<Scratch>> pool(static_cast<std::size_t>(threads));
  parallel_for(n, threads, [&](std::size_t i, std::size_t worker) {
    auto& s = pool[worker];
    if (!s) s.reset(new Scratch{RealArray(npx), ComplexArray(nsp)});
    const std::size_t src = index ? static_cast<std::size_t>(index[i]) : i;
    // FFTW reads the image in place when it has the plans' SIMD alignment
    // (out-of-place r2c never writes its input), else a copy; it writes
    // straight into the output row when that is aligned, else into scratch.
    const float* img = images + src * npx;
    if (!fftw_aligned(img)) {
      std::memcpy(s->img.data(), img, npx * sizeof(float));
      img = s->img.data();
    }
    cfloat* o = out + i * nsp;
    const bool direct = fftw_aligned(o);
    plan->forward(img, direct ? o : s->F.data());
    // F(0) is the sum of all pixels: NaN or infinity anywhere makes it non-finite.
    const cfloat dc = direct ? o[0] : s->F[0];
    if (!(std::isfinite(dc.real()) && std::isfinite(dc.imag())))
      throw std::invalid_argument("image " + std::to_string(src) +
                                  " contains NaN or infinity (or values too large to Fourier transform); "
                                  "all pixel values must be finite");
    if (!direct) std::memcpy(o, s->F.data(), nsp * sizeof(cfloat));
  });
}

}  // namespace cryocore
