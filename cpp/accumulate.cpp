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

// Sums add_image(i, worker, partial) over images 0..n-1 into `total`
// (`width` values of type T), deterministically: images are grouped in fixed
// chunks, each chunk sums into its own zeroed partial (type P: the chunk's
// few images may be summed in single precision), and partials are added to
// the total in chunk order. Chunks run in waves of a few per thread so that
// the partials stay small.
template <class P, class T, class AddImage>
void chunked_sum(std::size_t n, std::size_t chunk, int threads, std::size_t width, T* total,
                 AddImage&& add_image) {
  const std::size_t chunks = n_chunks(n, chunk);
  const std::size_t wave = std::min(chunks, static_cast<std::size_t>(threads) * 4);
  std::vector<P> partial(wave * width);
  for (std::size_t first = 0; first < chunks; first += wave) {
    const std::size_t count = std::min(wave, chunks - first);
    parallel_for(count, threads, [&](std::size_t t, std::size_t worker) {
      P* ps = &partial[t * width];
      std::fill(ps, ps + width, P(0));
      const std::size_t c = first + t;
      for (std::size_t i = c * chunk, end = std::min(n, (c + 1) * chunk); i < end; ++i)
        add_image(i, worker, ps);
    });
    for (std::size_t t = 0; t < count; ++t) {
      const P* ps = &partial[t * width];
      for (std::size_t k = 0; k < width; ++k) total[k] += T(ps[k]);
    }
  }
}

// Adds one spectrum's band rows, each times ey[row] * ex[col] * w, into the
// packed partial ps (rows.size() x cols).
CRYOCORE_HOT void add_band(const cfloat* F, std::size_t nxh, const std::vector<std::size_t>& rows,
                           std::size_t cols, const cfloat* ey, const cfloat* ex, float w,
                           cfloat* ps) {
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const std::size_t r = rows[k];
    add_phase_shifted_row(F + r * nxh, ey[r] * w, ex, cols, ps + k * cols);
  }
}

void prefetch_band(const cfloat* F, std::size_t nxh, const std::vector<std::size_t>& rows,
                   std::size_t cols) {
  const std::size_t bytes = cols * sizeof(cfloat);
  for (const std::size_t r : rows) {
    const char* p = reinterpret_cast<const char*>(F + r * nxh);
    for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 0);
  }
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
                double* sumsq, const double* angles) {
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
                float* a = s->img.data();
                std::memcpy(a, images + i * npx, npx * sizeof(float));
                if (!all_finite(a, npx))
                  throw std::invalid_argument(
                      "image " + std::to_string(i) +
                      " contains NaN or infinity; all pixel values must be finite");
                const double w = weights ? weights[i] : 1.0;
                if (w == 0.0) return;
                float f = 1.0f;
                if (angles) {
                  float* b = reinterpret_cast<float*>(s->F.data());  // ny*(nx/2+1) complex >= ny*nx floats
                  transform_image(a, ny, nx, angles[i], shifts ? shifts[2 * i] : 0.0,
                                  shifts ? shifts[2 * i + 1] : 0.0, true, b);
                  std::memcpy(a, b, npx * sizeof(float));
                } else if (shifts) {
                  plan->forward(a, s->F.data());
                  apply_shift(s->F.data(), ny, nx, -shifts[2 * i], -shifts[2 * i + 1],
                              s->ey.data(), s->ex.data());
                  plan->inverse(s->F.data(), a);
                  f = scale;
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

void accumulate_spectra(const cfloat* spectra, std::size_t n, std::size_t ny, std::size_t nx,
                        const double* shifts, const double* weights, int threads,
                        std::complex<double>* sum, double band) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  check_poses(n, shifts, weights);
  if (n == 0) return;
  const std::size_t nxh = nx / 2 + 1, nsp = ny * nxh;
  // Rows |ky| <= band*ny and columns kx <= band*nx (all of them for band >= 0.5).
  const bool all = !(band < 0.5);
  const auto ky_max = static_cast<std::size_t>(std::floor(band * static_cast<double>(ny)));
  const std::size_t cols = all ? nxh : std::min(nxh, static_cast<std::size_t>(std::floor(band * static_cast<double>(nx))) + 1);
  std::vector<std::size_t> rows;
  for (std::size_t r = 0; r < ny; ++r)
    if (all || r <= ky_max || ny - r <= ky_max) rows.push_back(r);
  struct Phases {
    std::vector<cfloat> ey, ex;
  };
  std::vector<std::unique_ptr<Phases>> pool(static_cast<std::size_t>(threads));
  // Partial sums hold only the band, rows.size() x cols, packed.
  std::vector<std::complex<double>> total(rows.size() * cols, 0.0);
  chunked_sum<cfloat>(n, kSpectraChunk, threads, total.size(), total.data(),
              [&](std::size_t i, std::size_t worker, cfloat* ps) {
                const double w = weights ? weights[i] : 1.0;
                if (w == 0.0) return;
                // The stack of spectra is far larger than the CPU's caches and
                // each row is a short run: ask for the next image's band now.
                for (std::size_t k = i + 2; k < n && k < i + 2 + 2; ++k)
                  if (!weights || weights[k] != 0.0) {
                    prefetch_band(spectra + k * nsp, nxh, rows, cols);
                    break;
                  }
                auto& ph = pool[worker];
                if (!ph) ph.reset(new Phases{std::vector<cfloat>(ny), std::vector<cfloat>(nxh)});
                const double dy = shifts ? -shifts[2 * i] : 0.0;
                const double dx = shifts ? -shifts[2 * i + 1] : 0.0;
                shift_phase_axis(ny, false, dy, ph->ey.data());
                shift_phase_axis(nx, true, dx, ph->ex.data());
                add_band(spectra + i * nsp, nxh, rows, cols, ph->ey.data(), ph->ex.data(),
                         static_cast<float>(w), ps);
              });
  for (std::size_t k = 0; k < rows.size(); ++k)
    for (std::size_t j = 0; j < cols; ++j) sum[rows[k] * nxh + j] += total[k * cols + j];
}

}  // namespace cryocore
