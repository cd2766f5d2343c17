#include "accumulate.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"
#include "plans.hpp"
#include "rotate.hpp"
#include "shift.hpp"
#include "simd.hpp"
#include "spectra.hpp"

namespace cryocore {
namespace {

// Images per partial sum; fixed, so that results never depend on threads.
constexpr std::size_t kChunk = 8;
constexpr std::size_t kSpectraChunk = 32;  // spectra are cheap to add: larger chunks

void check_poses(std::size_t n, const double* shifts, const double* weights) {
  for (std::size_t i = 0; shifts && i < 2 * n; ++i)
    if (!std::isfinite(shifts[i]))
      throw std::invalid_argument("shift " + std::to_string(i / 2) + " is not finite");
  for (std::size_t i = 0; weights && i < n; ++i)
    if (!std::isfinite(weights[i]))
      throw std::invalid_argument("weight " + std::to_string(i) + " is not finite");
}

struct Scratch {
  RealArray img;
  ComplexArray F;
  std::vector<cfloat> ey, ex;
  Scratch(std::size_t ny, std::size_t nx)
      : img(ny * nx), F(ny * (nx / 2 + 1)), ey(ny), ex(nx / 2 + 1) {}
};

}  // namespace

void accumulate(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                const double* shifts, const double* weights, int threads, double* sum,
                double* sumsq, const double* angles, const std::int64_t* index) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  check_poses(n, shifts, weights);
  for (std::size_t i = 0; angles && i < n; ++i)
    if (!std::isfinite(angles[i]))
      throw std::invalid_argument("angle " + std::to_string(i) + " is not finite");
  if (n == 0) return;
  const std::size_t npx = ny * nx;
  const auto plan = (shifts && !angles) ? get_fft2d(ny, nx) : nullptr;
  const float scale = 1.0f / static_cast<float>(npx);
  const std::size_t planes = sumsq ? 2 : 1;
  std::vector<std::unique_ptr<Scratch>> pool(static_cast<std::size_t>(threads));
  std::vector<double> total(planes * npx, 0.0);
  chunked_sum<double>(n, kChunk, threads, planes * npx, total.data(),
              [&](std::size_t i, std::size_t worker, double* ps) {
                auto& s = pool[worker];
                if (!s) s = std::make_unique<Scratch>(ny, nx);
                const double w = weights ? weights[i] : 1.0;
                if (w == 0.0) return;
                const std::size_t at = index ? static_cast<std::size_t>(index[i]) : i;
                const float* img = images + at * npx;
                if (!all_finite(img, npx))
                  throw std::invalid_argument(
                      "image " + std::to_string(at) +
                      " contains NaN or infinity; all pixel values must be finite");
                float* a = s->img.data();
                float f = 1.0f;
                if (angles) {  // read straight from the input (no alignment needed)
                  transform_image(img, ny, nx, angles[i], shifts ? shifts[2 * i] : 0.0,
                                  shifts ? shifts[2 * i + 1] : 0.0, true, a);
                } else if (shifts) {
                  std::memcpy(a, img, npx * sizeof(float));
                  plan->forward(a, s->F.data());
                  apply_shift(s->F.data(), ny, nx, -shifts[2 * i], -shifts[2 * i + 1],
                              s->ey.data(), s->ex.data());
                  plan->inverse(s->F.data(), a);
                  f = scale;
                } else {
                  std::memcpy(a, img, npx * sizeof(float));
                }
                double* pq = sumsq ? ps + npx : nullptr;
#pragma omp simd
                for (std::size_t k = 0; k < npx; ++k) {
                  const double v = static_cast<double>(a[k] * f);
                  ps[k] += w * v;
                  if (pq) pq[k] += w * v * v;
                }
              });
  for (std::size_t k = 0; k < npx; ++k) sum[k] += total[k];
  if (sumsq)
    for (std::size_t k = 0; k < npx; ++k) sumsq[k] += total[npx + k];
}

SpectrumBand::SpectrumBand(std::size_t ny_, std::size_t nx_, double band)
    : SpectrumBand(SpectrumLayout::whole(ny_, nx_), band) {}

SpectrumBand::SpectrumBand(const SpectrumLayout& layout, double band) : ny(layout.ny), nx(layout.nx) {
  const std::size_t nxh = nx / 2 + 1;
  const bool all = !(band < 0.5);
  const auto ky_max = static_cast<std::size_t>(std::floor(band * static_cast<double>(ny)));
  cols = all ? nxh : std::min(nxh, static_cast<std::size_t>(std::floor(band * static_cast<double>(nx))) + 1);
  for (std::size_t r = 0; r < ny; ++r)
    if (all || r <= ky_max || ny - r <= ky_max) rows.push_back(r);
  layout.require(ky_extent(), kx_extent(), "the band");
  for (const std::size_t r : rows) offsets.push_back(layout.row_offset(r));
}

std::size_t SpectrumBand::ky_extent() const noexcept {
  std::size_t k = 0;
  for (const std::size_t r : rows) k = std::max(k, static_cast<std::size_t>(std::labs(signed_freq(r, ny))));
  return k;
}

void SpectrumBand::prefetch(const cfloat* F) const {
  const std::size_t bytes = cols * sizeof(cfloat);
  for (const std::size_t o : offsets) {
    const char* p = reinterpret_cast<const char*>(F + o);
    for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 0);
  }
}

CRYOCORE_HOT void SpectrumBand::add_moved_back(const cfloat* F, double dy, double dx, float w,
                                               BandPhases& ph, cfloat* ps) const {
  const std::size_t nxh = nx / 2 + 1;
  ph.ey.resize(ny);
  ph.ex.resize(nxh);
  shift_phase_axis(ny, false, -dy, ph.ey.data());
  shift_phase_axis(nx, true, -dx, ph.ex.data());
  for (std::size_t k = 0; k < rows.size(); ++k)
    phase_row<true>(F + offsets[k], ph.ey[rows[k]] * w, ph.ex.data(), cols, ps + k * cols);
}

void SpectrumBand::unpack_add(const std::complex<double>* packed, std::complex<double>* sum) const {
  const std::size_t nxh = nx / 2 + 1;
  for (std::size_t k = 0; k < rows.size(); ++k)
    for (std::size_t j = 0; j < cols; ++j) sum[rows[k] * nxh + j] += packed[k * cols + j];
}

namespace {
// The frame of the Fourier-space sums: for each image i with weight
// w_i != 0, add(i, w_i, worker, phases, ps) adds its band moved back into
// the packed partial sum ps (skip(i) for w_i = 0), in fixed chunks reduced
// in order; then sum += the packed total.
template <class Add, class Skip>
void sum_bands(const SpectrumBand& B, std::size_t n, const double* weights, int threads,
               std::complex<double>* sum, Add&& add, Skip&& skip) {
  if (n == 0) return;
  std::vector<BandPhases> phases(static_cast<std::size_t>(threads));
  std::vector<std::complex<double>> total(B.width(), 0.0);  // the band only, packed
  chunked_sum<cfloat>(n, kSpectraChunk, threads, total.size(), total.data(),
                      [&](std::size_t i, std::size_t worker, cfloat* ps) {
                        const double w = weights ? weights[i] : 1.0;
                        if (w == 0.0)
                          skip(i);
                        else
                          add(i, static_cast<float>(w), worker, phases[worker], ps);
                      });
  B.unpack_add(total.data(), sum);
}
}  // namespace

void accumulate_spectra(const cfloat* spectra, const SpectrumLayout& layout, std::size_t n,
                        const double* shifts, const double* weights, int threads,
                        std::complex<double>* sum, double band) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  check_poses(n, shifts, weights);
  const SpectrumBand B(layout, band);
  const std::size_t nsp = layout.per_image();
  sum_bands(
      B, n, weights, threads, sum,
      [&](std::size_t i, float w, std::size_t, BandPhases& ph, cfloat* ps) {
        // The stack of spectra is far larger than the CPU's caches and each
        // row is a short run: ask for the next image's band now.
        for (std::size_t k = i + 1; k < n && k < i + 3; ++k)
          if (!weights || weights[k] != 0.0) {
            B.prefetch(spectra + k * nsp);
            break;
          }
        B.add_moved_back(spectra + i * nsp, shifts ? shifts[2 * i] : 0.0, shifts ? shifts[2 * i + 1] : 0.0, w,
                         ph, ps);
      },
      [](std::size_t) {});
}

void accumulate_images_spectra(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                               const double* shifts, const double* weights, int threads,
                               std::complex<double>* sum, double band, const std::int64_t* index) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  check_poses(n, shifts, weights);
  const SpectrumBand B(ny, nx, band);
  const auto plan = get_fft2d(ny, nx);
  const std::size_t npx = ny * nx;
  std::vector<std::unique_ptr<Scratch>> pool(static_cast<std::size_t>(threads));
  sum_bands(
      B, n, weights, threads, sum,
      [&](std::size_t i, float w, std::size_t worker, BandPhases& ph, cfloat* ps) {
        const std::size_t src = index ? static_cast<std::size_t>(index[i]) : i;
        auto& s = pool[worker];
        if (!s) s = std::make_unique<Scratch>(ny, nx);
        plan->forward(fft_readable(images + src * npx, npx, s->img.data()), s->F.data());
        if (!spectrum_finite(s->F.data())) throw_non_finite_image(src);
        B.add_moved_back(s->F.data(), shifts ? shifts[2 * i] : 0.0, shifts ? shifts[2 * i + 1] : 0.0, w, ph, ps);
      },
      [&](std::size_t i) {  // not added, but bad pixels are still reported
        const std::size_t src = index ? static_cast<std::size_t>(index[i]) : i;
        if (!all_finite(images + src * npx, npx)) throw_non_finite_image(src);
      });
}

}  // namespace cryocore
