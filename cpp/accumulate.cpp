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
#include "shift.hpp"
#include "spectra.hpp"

namespace cryocore {
namespace {
constexpr std::size_t kChunk = 8;  // images per partial sum; fixed: results must not depend on threads
}

void accumulate(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                const double* shifts, const double* weights, int threads, double* sum,
                double* sumsq) {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  for (std::size_t i = 0; shifts && i < 2 * n; ++i)
    if (!std::isfinite(shifts[i]))
      throw std::invalid_argument("shift " + std::to_string(i / 2) + " is not finite");
  for (std::size_t i = 0; weights && i < n; ++i)
    if (!std::isfinite(weights[i]))
      throw std::invalid_argument("weight " + std::to_string(i) + " is not finite");
  if (n == 0) return;
  const std::size_t npx = ny * nx;
  const auto plan = shifts ? get_fft2d(ny, nx) : nullptr;
  const float scale = 1.0f / static_cast<float>(npx);

  struct Scratch {
    RealArray img;
    ComplexArray F;
    std::vector<cfloat> ey, ex;
  };
  std::vector<std::unique_ptr<Scratch>> pool(static_cast<std::size_t>(threads));
  // Chunks are processed in waves; each chunk of a wave gets its own partial
  // sums, added to the totals in chunk order after the wave.
  const std::size_t total_chunks = n_chunks(n, kChunk);
  const std::size_t wave = std::min(total_chunks, static_cast<std::size_t>(threads) * 4);
  const std::size_t planes = sumsq ? 2 : 1;
  std::vector<double> partial(wave * planes * npx);

  for (std::size_t first = 0; first < total_chunks; first += wave) {
    const std::size_t count = std::min(wave, total_chunks - first);
    parallel_for(count, threads, [&](std::size_t t, std::size_t worker) {
      auto& s = pool[worker];
      if (!s) s.reset(new Scratch{RealArray(npx), ComplexArray(ny * (nx / 2 + 1)),
                                  std::vector<cfloat>(ny), std::vector<cfloat>(nx / 2 + 1)});
      double* ps = &partial[t * planes * npx];
      double* pq = sumsq ? ps + npx : nullptr;
      std::fill(ps, ps + planes * npx, 0.0);
      const std::size_t c = first + t;
      const std::size_t end = std::min(n, (c + 1) * kChunk);
      for (std::size_t i = c * kChunk; i < end; ++i) {
        float* a = s->img.data();
        std::memcpy(a, images + i * npx, npx * sizeof(float));
        if (!all_finite(a, npx))
          throw std::invalid_argument("image " + std::to_string(i) +
                                      " contains NaN or infinity; all pixel values must be finite");
        float f = 1.0f;
        if (shifts) {
          plan->forward(a, s->F.data());
          apply_shift(s->F.data(), ny, nx, -shifts[2 * i], -shifts[2 * i + 1], s->ey.data(),
                      s->ex.data());
          plan->inverse(s->F.data(), a);
          f = scale;
        }
        const double w = weights ? weights[i] : 1.0;
        if (w == 0.0) continue;
#pragma omp simd
        for (std::size_t k = 0; k < npx; ++k) {
          const double v = static_cast<double>(a[k] * f);
          ps[k] += w * v;
          if (pq) pq[k] += w * v * v;
        }
      }
    });
    for (std::size_t t = 0; t < count; ++t) {
      const double* ps = &partial[t * planes * npx];
      for (std::size_t k = 0; k < npx; ++k) sum[k] += ps[k];
      if (sumsq)
        for (std::size_t k = 0; k < npx; ++k) sumsq[k] += ps[npx + k];
    }
  }
}

}  // namespace cryocore
