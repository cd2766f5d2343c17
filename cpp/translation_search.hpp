// The translational search's machinery, shared by the searches' files
// (translation.cpp, rotation.cpp, register_accumulate.cpp): reference
// preparation, the spectrum blocks a search works on, per-worker scratch,
// and TranslationSearch. Internal to the core: not part of its interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "accumulate.hpp"
#include "correlation.hpp"
#include "peaks.hpp"
#include "plans.hpp"
#include "simd.hpp"
#include "spectra.hpp"
#include "spectrum_layout.hpp"

namespace cryocore {
namespace detail {

constexpr std::size_t kChunk = 8;  // images per task
constexpr std::size_t kAccumulateChunk = 32;  // images per partial sum of register_accumulate_spectra

// Row of the full spectrum (ny rows) that holds row r of an my-row block of
// its low frequencies.
inline std::size_t full_row(std::size_t r, std::size_t my, std::size_t ny) {
  return (my == ny || 2 * r < my) ? r : ny - (my - r);
}

// Filtered, normalised reference spectra conj(F_R) H^2 / |H F_R| on the
// (possibly cropped) block, DC removed. A zero-variance reference is all zeros.
struct PreparedRefs {
  std::size_t n = 0, my = 0, mxh = 0;
  std::vector<ComplexArray> spec;
  std::vector<bool> flat;
};

PreparedRefs prepare_refs(const float* refs, std::size_t n_refs, std::size_t ny, std::size_t nx,
                          std::size_t my, std::size_t mx, const std::vector<float>& h2);

// The blocks of the spectrum a registration works on. The product spectrum
// is kept on the q block (qy x qx/2+1 lowest frequencies) for the sub-pixel
// search and the scores; the integer peak is searched on the inverse FFT of
// the m block (my x mx), which may be smaller still (coarse search), with an
// optional taper to soften its edge.
struct Geometry {
  std::size_t ny = 0, nx = 0;
  std::size_t qy = 0, qx = 0, qxh = 0;
  std::size_t my = 0, mx = 0, mxh = 0;
  std::vector<float> taper;  // my x mxh, empty for none
};

Geometry full_geometry(std::size_t ny, std::size_t nx);

struct Workspace {
  RealArray img, map;
  ComplexArray F, P;
  std::vector<float> pre, pim;  // Pearson product spectrum on the q block, split planes
  std::vector<float> wre, wim;  // whitened product (phase correlation)
  std::vector<float> lre, lim;  // the product on the coarse map's block (sub-pixel search)
  std::vector<float> cols;      // per-column partial sums (block_energy, score_at)
  std::vector<float> ctf;       // a row of an image's CTF (CtfGrid::multiply)
  LocalDft dft;
  explicit Workspace(const Geometry& g)
      : img(g.ny * g.nx),
        map(g.my * g.mx),
        F(g.ny * (g.nx / 2 + 1)),
        P(g.my * g.mxh),
        pre(g.qy * g.qxh),
        pim(g.qy * g.qxh) {
    // Zero once: a cropped cached spectrum is expanded into F's held rows
    // and columns only (cached_spectrum), the rest must read as zero.
    std::fill(F.data(), F.data() + F.size(), cfloat(0.0f, 0.0f));
  }
};

// Per-worker scratch, made on first use by the worker that owns the slot.
class Workspaces {
 public:
  Workspaces(int threads, const Geometry& g)
      : slots_(static_cast<std::size_t>(std::max(threads, 1))), g_(g) {}
  Workspace& get(std::size_t worker) {
    auto& s = slots_[worker];
    if (!s) s = std::make_unique<Workspace>(g_);
    return *s;
  }

 private:
  std::vector<std::unique_ptr<Workspace>> slots_;
  const Geometry& g_;
};

// 1/|H F| (DC excluded), or 0 for a flat image. H is zero outside the q
// block, so only that block is summed (all of it without a low-pass).
float inverse_norm(const cfloat* F, const Geometry& geo, const std::vector<float>& h2, Workspace& ws);

// Image spectrum in ws.F (its DC term is ignored: the reference's is zero);
// non-finite pixels are found on it (spectrum_finite).
const cfloat* image_spectrum(const Fft2d& plan, const float* image, std::size_t index, Workspace& ws);

// The blocks of a search with these parameters (cropped to the low-pass, coarse map).
Geometry register_geometry(std::size_t ny, std::size_t nx, const RegisterParams& p);

// Everything one translational search needs besides the image: the blocks,
// the filter, the inverse plan of the peak map and the search radius.
struct TranslationSearch {
  const RegisterParams& p;
  Geometry geo;
  std::vector<float> h2;
  std::shared_ptr<const Fft2d> inv_plan;
  double sy, sx, ry, rx;
  bool refine_always;

  TranslationSearch(std::size_t ny, std::size_t nx, const RegisterParams& params);

  PreparedRefs prepare(const float* refs, std::size_t n_refs) const {
    return prepare_refs(refs, n_refs, geo.ny, geo.nx, geo.qy, geo.qx, h2);
  }

  void prepare_workspace(Workspace& ws) const {
    if (p.phase && ws.wre.empty()) {
      ws.wre.resize(geo.qy * geo.qxh);
      ws.wim.resize(geo.qy * geo.qxh);
    }
  }

  // Best shift of the image with spectrum F (1/|H F| = inv) against one
  // prepared reference G: {dy, dx, Pearson score}.
  Refined run(const cfloat* F, float inv, const ComplexArray& G, Workspace& ws) const;

  // Like run, from a shift estimate (dy, dx) a pixel or two off, without
  // the inverse FFT and the integer search: the sub-pixel search starts on a
  // 1 px grid (`coarse`) or a 1/4 px grid around the estimate.
  Refined local(const cfloat* F, float inv, const ComplexArray& G, double dy, double dx, bool coarse,
                Workspace& ws) const;

  // Sub-pixel refinement on the product in ws (optional), the max_shift
  // bound, the Pearson score.
  Refined finish(double dy, double dx, bool refine, bool coarse, Workspace& ws) const;

  // Pearson score of the image against G at a given shift (no search):
  // Re sum_k F(k) G(k) inv e(k . shift), without storing the product.
  CRYOCORE_HOT double score_at(const cfloat* F, float inv, const ComplexArray& G, double dy, double dx,
                               Workspace& ws) const;
};

// The best of n_refs prepared references for the image with spectrum F.
// With a prior shift (prior != nullptr), a local search around it instead
// (TranslationSearch::local: no inverse FFT, no integer search).
Refined register_one(const TranslationSearch& search, const PreparedRefs& R, const cfloat* F,
                     std::size_t index, Workspace& ws, std::int32_t& bref, const double* prior = nullptr);

// Image i of a cached stack as a whole half spectrum: in place when the
// cache is whole, else expanded into ws.F (whose other entries stay zero).
const cfloat* cached_spectrum(const cfloat* spectra, const SpectrumLayout& layout, std::size_t i, Workspace& ws);

// Throws unless the cache holds all that the search (and the band) reads.
void require_extent(const SpectrumLayout& layout, const Geometry& geo, const SpectrumBand* band);

}  // namespace detail
}  // namespace cryocore
