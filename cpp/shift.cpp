#include "shift.hpp"

#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ctf.hpp"
#include "parallel.hpp"
#include "spectra.hpp"

namespace cryocore {

namespace {

// Per-worker scratch for one image and its half spectrum, made on first use.
class ImageScratch {
 public:
  struct Slot {
    RealArray img;
    ComplexArray F;
    std::vector<float> h;  // a row of a CTF (CtfGrid::multiply)
  };
  ImageScratch(int threads, std::size_t npx, std::size_t nsp)
      : slots_(static_cast<std::size_t>(threads)), npx_(npx), nsp_(nsp) {}
  Slot& get(std::size_t worker) {
    auto& s = slots_[worker];
    if (!s) s.reset(new Slot{RealArray(npx_), ComplexArray(nsp_), {}});
    return *s;
  }

 private:
  std::vector<std::unique_ptr<Slot>> slots_;
  std::size_t npx_, nsp_;
};

}  // namespace

void apply_shift(cfloat* F, std::size_t ny, std::size_t nx, double dy, double dx, cfloat* ey,
                 cfloat* ex) {
  const std::size_t nxh = nx / 2 + 1;
  shift_phase_axis(ny, false, dy, ey);
  shift_phase_axis(nx, true, dx, ex);
  for (std::size_t i = 0; i < ny; ++i) phase_row<false>(F + i * nxh, ey[i], ex, nxh, F + i * nxh);
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

void forward_stack(const float* images, std::size_t n, const SpectrumLayout& layout, int threads,
                   cfloat* out, const std::int64_t* index, const CtfRows* ctf) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  const std::size_t ny = layout.ny, nx = layout.nx;
  const auto plan = get_fft2d(ny, nx);
  const std::size_t npx = ny * nx, nsp = plan->complex_size(), per = layout.per_image();
  const bool whole = layout.is_whole();
  std::unique_ptr<CtfGrid> grid;  // the CTFs only on the frequencies stored
  if (ctf) {
    check_ctf_params(ctf->params, n);
    grid.reset(new CtfGrid(ny, nx, ctf->pixel_size_A, static_cast<long>(layout.ky_max()),
                           static_cast<long>(layout.kx_max()), ctf->intact_first_peak));
  }
  ImageScratch pool(threads, npx, nsp);
  parallel_for(n, threads, [&](std::size_t i, std::size_t worker) {
    ImageScratch::Slot* s = &pool.get(worker);
    const std::size_t src = index ? static_cast<std::size_t>(index[i]) : i;
    // FFTW writes straight into a whole output row when that is aligned,
    // else into scratch (and reads the image in place when it can).
    cfloat* o = out + i * per;
    const bool direct = whole && fftw_aligned(o);
    cfloat* spec = direct ? o : s->F.data();
    plan->forward(fft_readable(images + src * npx, npx, s->img.data()), spec);
    if (!spectrum_finite(spec)) throw_non_finite_image(src);
    if (grid) grid->multiply(ctf->params + i * kCtfFields, spec, s->h);
    if (!direct) layout.store(spec, o);
  });
}

}  // namespace cryocore

namespace cryocore {

void fourier_crop_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx, std::size_t my,
                        std::size_t mx, int threads, float* out, const std::int64_t* index) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  if (my < 2 || mx < 2 || my > ny || mx > nx)
    throw std::invalid_argument("the cropped box must be at least 2 x 2 and at most the images' box");
  const auto big = get_fft2d(ny, nx);
  const auto small = get_fft2d(my, mx);
  const std::size_t npx = ny * nx, nxh = nx / 2 + 1, mxh = mx / 2 + 1;
  const float scale = static_cast<float>(static_cast<double>(my * mx) / static_cast<double>(npx)) /
                      static_cast<float>(my * mx);  // (the crop's scale) x (the small inverse's 1/(my mx))
  // F(ky, kx) of the big half spectrum at any signed frequency (kx < 0 by conjugate symmetry).
  auto at = [&](const cfloat* F, long ky, long kx) {
    const std::size_t row = static_cast<std::size_t>((ky % static_cast<long>(ny) + static_cast<long>(ny)) %
                                                     static_cast<long>(ny));
    if (kx >= 0) return F[row * nxh + static_cast<std::size_t>(kx)];
    const std::size_t neg = (ny - row) % ny;
    return std::conj(F[neg * nxh + static_cast<std::size_t>(-kx)]);
  };
  struct Slot {
    RealArray img;
    ComplexArray F, G;
  };
  std::vector<std::unique_ptr<Slot>> pool(static_cast<std::size_t>(threads));
  parallel_for(n, threads, [&](std::size_t i, std::size_t worker) {
    auto& s = pool[worker];
    if (!s) s.reset(new Slot{RealArray(npx), ComplexArray(big->complex_size()), ComplexArray(small->complex_size())});
    const std::size_t src = index ? static_cast<std::size_t>(index[i]) : i;
    big->forward(fft_readable(images + src * npx, npx, s->img.data()), s->F.data());
    if (!spectrum_finite(s->F.data())) throw_non_finite_image(src);
    const cfloat* F = s->F.data();
    for (std::size_t r = 0; r < my; ++r) {
      const long ky = signed_freq(r, my);
      // an even crop's Nyquist row (-my/2) and column (+mx/2) gather both frequencies they stand for
      const bool fold_y = my % 2 == 0 && 2 * static_cast<std::size_t>(-ky) == my && ky < 0;
      for (std::size_t c = 0; c < mxh; ++c) {
        const long kx = static_cast<long>(c);
        const bool fold_x = mx % 2 == 0 && 2 * c == mx;
        cfloat v = at(F, ky, kx);
        if (fold_y) v += at(F, -ky, kx);
        if (fold_x) v += at(F, ky, -kx);
        if (fold_y && fold_x) v += at(F, -ky, -kx);
        s->G[r * mxh + c] = v * scale;
      }
    }
    small->inverse(s->G.data(), out + i * my * mx);
  });
}

}  // namespace cryocore
