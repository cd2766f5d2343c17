// The fused search-and-sum over cached spectra: register_accumulate_spectra.
#include "correlation.hpp"

#include <cmath>
#include <complex>
#include <stdexcept>
#include <string>
#include <vector>

#include "accumulate.hpp"
#include "parallel.hpp"
#include "translation_search.hpp"

namespace cryocore {
using namespace detail;

void register_accumulate_spectra(const float* refs, std::size_t n_refs, const cfloat* spectra,
                                 const SpectrumLayout& layout, std::size_t n,
                                 const RegisterParams& p, const std::int32_t* group,
                                 std::size_t n_groups, std::size_t class_stride, double band,
                                 const double* prior, double* shifts, double* scores,
                                 std::int32_t* best_ref, std::complex<double>* sums) {
  if (n_refs == 0) throw std::invalid_argument("at least one reference is needed");
  const std::size_t top = (n_refs - 1) * class_stride;  // added to a group by the last reference
  for (std::size_t i = 0; i < n; ++i)
    if (group[i] >= 0 && static_cast<std::size_t>(group[i]) + top >= n_groups)
      throw std::invalid_argument("group " + std::to_string(group[i]) + " of image " + std::to_string(i) +
                                  (class_stride ? " (plus the class offset of " + std::to_string(n_refs) +
                                                      " references)" : std::string()) +
                                  " is out of range for " + std::to_string(n_groups) + " groups");
  const std::size_t ny = layout.ny, nx = layout.nx;
  const TranslationSearch search(ny, nx, p);
  // The band is read from whole spectra (the cache's, or one expanded from a crop).
  const SpectrumBand B(ny, nx, band);
  require_extent(layout, search.geo, &B);
  const PreparedRefs R = search.prepare(refs, n_refs);
  Workspaces pool(p.threads, search.geo);
  const std::size_t bw = B.width(), per = ny * (nx / 2 + 1);
  std::vector<BandPhases> phases(static_cast<std::size_t>(std::max(p.threads, 1)));
  std::vector<std::complex<double>> total(n_groups * bw, 0.0);
  chunked_sum<cfloat>(n, kAccumulateChunk, p.threads, total.size(), total.data(),
                      [&](std::size_t i, std::size_t worker, cfloat* ps) {
                        Workspace& ws = pool.get(worker);
                        search.prepare_workspace(ws);
                        const cfloat* F = cached_spectrum(spectra, layout, i, ws);
                        std::int32_t bref = 0;
                        const double* pr = prior && std::isfinite(prior[2 * i]) &&
                                                   std::isfinite(prior[2 * i + 1])
                                               ? prior + 2 * i
                                               : nullptr;
                        const Refined best = register_one(search, R, F, i, ws, bref, pr);
                        shifts[2 * i] = best.dy;
                        shifts[2 * i + 1] = best.dx;
                        scores[i] = best.value;
                        if (best_ref) best_ref[i] = bref;
                        // The band is added while the spectrum is still in the cache.
                        if (group[i] >= 0) {
                          const std::size_t g = static_cast<std::size_t>(group[i]) +
                                                static_cast<std::size_t>(bref) * class_stride;
                          B.add_moved_back(F, best.dy, best.dx, 1.0f, phases[worker], ps + g * bw);
                        }
                      });
  for (std::size_t g = 0; g < n_groups; ++g) B.unpack_add(total.data() + g * bw, sums + g * per);
}

}  // namespace cryocore
