#include "correlation.hpp"

#include "accumulate.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"
#include "peaks.hpp"
#include "plans.hpp"
#include "polar.hpp"
#include "rotate.hpp"
#include "simd.hpp"
#include "spectra.hpp"

namespace cryocore {
namespace {

constexpr std::size_t kChunk = 8;  // images per task
constexpr std::size_t kAccumulateChunk = 32;  // images per partial sum of register_accumulate_spectra

bool smooth_even(std::size_t n) {
  if (n == 0 || n % 2 != 0) return false;
  for (std::size_t p : {2u, 3u, 5u})
    while (n % p == 0) n /= p;
  return n == 1;
}

// Row of the full spectrum (ny rows) that holds row r of an my-row block of
// its low frequencies.
inline std::size_t full_row(std::size_t r, std::size_t my, std::size_t ny) {
  return (my == ny || 2 * r < my) ? r : ny - (my - r);
}

// sum over the full spectrum of w(k) |F(k)|^2 (weights h2 optional), DC
// excluded, from the qy x qx/2+1 block of low frequencies of a half
// spectrum of an (ny, nx) image (the whole of it when qy = ny, qx = nx).
// Per-column sums over the rows (no horizontal reduction per row, which
// costs more than the row itself) in `cols` (scratch), then one sum over the
// columns.
CRYOCORE_HOT double block_energy(const cfloat* F, std::size_t ny, std::size_t nx, std::size_t qy, std::size_t qx,
                    const std::vector<float>& h2, std::vector<float>& cols) {
  const std::size_t nxh = nx / 2 + 1, qxh = qx / 2 + 1;
  cols.assign(qxh, 0.0f);
  float* col = cols.data();
  for (std::size_t row = 0; row < qy; ++row) {
    const std::size_t fr = full_row(row, qy, ny);
    const float* f = reinterpret_cast<const float*>(F + fr * nxh);
    const std::size_t j0 = fr == 0 ? 1 : 0;  // DC excluded
    if (h2.empty()) {
#pragma omp simd
      for (std::size_t j = j0; j < qxh; ++j) col[j] += f[2 * j] * f[2 * j] + f[2 * j + 1] * f[2 * j + 1];
    } else {
      const float* w = h2.data() + fr * nxh;
#pragma omp simd
      for (std::size_t j = j0; j < qxh; ++j) col[j] += (f[2 * j] * f[2 * j] + f[2 * j + 1] * f[2 * j + 1]) * w[j];
    }
  }
  // Columns 1.. stand for two Fourier pixels (k and -k), except the Nyquist
  // column of an even nx (only the whole spectrum reaches it).
  const bool nyquist = qx == nx && nx % 2 == 0;
  const std::size_t doubled_end = nyquist ? qxh - 1 : qxh;
  double e = static_cast<double>(col[0]);
  for (std::size_t j = 1; j < doubled_end; ++j) e += 2.0 * static_cast<double>(col[j]);
  if (nyquist) e += static_cast<double>(col[qxh - 1]);
  return e;
}

void copy_checked(const float* src, std::size_t n_px, float* dst, std::size_t index,
                  const char* what) {
  std::memcpy(dst, src, n_px * sizeof(float));
  if (!all_finite(dst, n_px))
    throw std::invalid_argument(std::string(what) + " " + std::to_string(index) +
                                " contains NaN or infinity; all pixel values must be finite");
}

// Filtered, normalised reference spectra conj(F_R) H^2 / |H F_R| on the
// (possibly cropped) block, DC removed. A zero-variance reference is all zeros.
struct PreparedRefs {
  std::size_t n = 0, my = 0, mxh = 0;
  std::vector<ComplexArray> spec;
  std::vector<bool> flat;
};

PreparedRefs prepare_refs(const float* refs, std::size_t n_refs, std::size_t ny, std::size_t nx,
                          std::size_t my, std::size_t mx, const std::vector<float>& h2) {
  const auto plan = get_fft2d(ny, nx);
  PreparedRefs out;
  out.n = n_refs;
  out.my = my;
  out.mxh = mx / 2 + 1;
  RealArray img(ny * nx);
  ComplexArray F(plan->complex_size());
  std::vector<float> scratch;
  const std::size_t nxh = nx / 2 + 1;
  for (std::size_t r = 0; r < n_refs; ++r) {
    copy_checked(refs + r * ny * nx, ny * nx, img.data(), r, "reference");
    plan->forward(img.data(), F.data());
    F[0] = cfloat(0.0f, 0.0f);
    const double e = block_energy(F.data(), ny, nx, ny, nx, h2, scratch);
    ComplexArray G(out.my * out.mxh);
    const bool flat = !(e > 1e-30);
    const float inv = flat ? 0.0f : static_cast<float>(1.0 / std::sqrt(e));
    for (std::size_t row = 0; row < my; ++row) {
      const std::size_t fr = full_row(row, my, ny);
      for (std::size_t j = 0; j < out.mxh; ++j) {
        const float w = h2.empty() ? 1.0f : h2[fr * nxh + j];
        G[row * out.mxh + j] = std::conj(F[fr * nxh + j]) * (w * inv);
      }
    }
    G[0] = cfloat(0.0f, 0.0f);
    out.spec.push_back(std::move(G));
    out.flat.push_back(flat);
  }
  return out;
}

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

Geometry full_geometry(std::size_t ny, std::size_t nx) {
  Geometry g;
  g.ny = g.qy = g.my = ny;
  g.nx = g.qx = g.mx = nx;
  g.qxh = g.mxh = nx / 2 + 1;
  return g;
}

struct Workspace {
  RealArray img, map;
  ComplexArray F, P;
  std::vector<float> pre, pim;  // Pearson product spectrum on the q block, split planes
  std::vector<float> wre, wim;  // whitened product (phase correlation)
  std::vector<float> lre, lim;  // the product on the coarse map's block (sub-pixel search)
  std::vector<float> cols;      // per-column partial sums (block_energy, score_at)
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
float inverse_norm(const cfloat* F, const Geometry& geo, const std::vector<float>& h2, Workspace& ws) {
  const double e = block_energy(F, geo.ny, geo.nx, geo.qy, geo.qx, h2, ws.cols);
  return e > 1e-30 ? static_cast<float>(1.0 / std::sqrt(e)) : 0.0f;
}

// Image spectrum in ws.F (its DC term is ignored: the reference's is zero);
// non-finite pixels are found on it (spectrum_finite).
const cfloat* image_spectrum(const Fft2d& plan, const float* image, std::size_t index,
                             Workspace& ws) {
  plan.forward(fft_readable(image, plan.real_size(), ws.img.data()), ws.F.data());
  if (!spectrum_finite(ws.F.data())) throw_non_finite_image(index);
  return ws.F.data();
}

// Pearson product F_I G inv on the q block into the split planes ws.pre/pim
// (and, with `phase`, the whitened product times H^2 into ws.wre/wim); then
// the m block of the one the peak is searched on (whitened with `phase`),
// times the taper, into ws.P for the inverse FFT.
CRYOCORE_HOT void product(const cfloat* F, const ComplexArray& G, const Geometry& geo, float inv, bool phase,
             const std::vector<float>& h2, Workspace& ws, bool map_block) {
  const std::size_t nxh = geo.nx / 2 + 1, qxh = geo.qxh;
  for (std::size_t row = 0; row < geo.qy; ++row) {
    const std::size_t fr = full_row(row, geo.qy, geo.ny);
    const float* f = reinterpret_cast<const float*>(F + fr * nxh);
    const float* g = reinterpret_cast<const float*>(G.data() + row * qxh);
    float* pr = ws.pre.data() + row * qxh;
    float* pi = ws.pim.data() + row * qxh;
#pragma omp simd
    for (std::size_t j = 0; j < qxh; ++j) {
      const float a = f[2 * j], b = f[2 * j + 1], c = g[2 * j], d = g[2 * j + 1];
      pr[j] = (a * c - b * d) * inv;
      pi[j] = (a * d + b * c) * inv;
    }
    if (phase) {
      float* wr = ws.wre.data() + row * qxh;
      float* wi = ws.wim.data() + row * qxh;
      for (std::size_t j = 0; j < qxh; ++j) {
        const float mag = std::sqrt(pr[j] * pr[j] + pi[j] * pi[j]);
        const float h = h2.empty() ? 1.0f : h2[fr * nxh + j];
        const float sc = mag > 0.0f ? h / mag : 0.0f;
        wr[j] = pr[j] * sc;
        wi[j] = pi[j] * sc;
      }
    }
  }
  if (!map_block) return;
  const float* sr = phase ? ws.wre.data() : ws.pre.data();
  const float* si = phase ? ws.wim.data() : ws.pim.data();
  const std::size_t mxh = geo.mxh;
  for (std::size_t row = 0; row < geo.my; ++row) {
    const std::size_t qr = full_row(row, geo.my, geo.qy);
    const float* a = sr + qr * qxh;
    const float* b = si + qr * qxh;
    float* p = reinterpret_cast<float*>(ws.P.data() + row * mxh);
    if (geo.taper.empty()) {
#pragma omp simd
      for (std::size_t j = 0; j < mxh; ++j) {
        p[2 * j] = a[j];
        p[2 * j + 1] = b[j];
      }
    } else {
      const float* t = geo.taper.data() + row * mxh;
#pragma omp simd
      for (std::size_t j = 0; j < mxh; ++j) {
        p[2 * j] = a[j] * t[j];
        p[2 * j + 1] = b[j] * t[j];
      }
    }
  }
}

}  // namespace

std::size_t cropped_size(std::size_t n, double support) {
  if (!(support < 0.5)) return n;
  const auto kmax = static_cast<std::size_t>(std::floor(support * static_cast<double>(n)));
  std::size_t m = 2 * kmax + 2;
  while (!smooth_even(m)) m += 2;
  return m >= n ? n : m;
}

void check_register_params(const RegisterParams& p, std::size_t ny, std::size_t nx) {
  check_bandpass(p.filter);
  if (p.upsample < 1 || p.upsample > 1000)
    throw std::invalid_argument("upsample must be an integer in [1, 1000], got " +
                                std::to_string(p.upsample));
  const double half = 0.5 * static_cast<double>(std::min(ny, nx));
  if (p.max_shift >= 0.0 && !(p.max_shift <= half))
    throw std::invalid_argument("max_shift must be at most half the box (" + std::to_string(half) +
                                " px), got " + std::to_string(p.max_shift));
  if (p.threads < 1) throw std::invalid_argument("threads must be >= 1");
}

namespace {

constexpr double kCoarseSupport = 0.125;  // cycles/px kept in the coarse map
constexpr double kCoarseTaper = 0.05;    // its raised-cosine edge

// The m block of a coarse search: support s (cycles/px) with a raised-cosine
// taper of width kCoarseTaper inside it.
void coarse_map_block(Geometry& g, double s) {
  g.my = cropped_size(g.ny, s);
  g.mx = cropped_size(g.nx, s);
  g.mxh = g.mx / 2 + 1;
  g.taper.resize(g.my * g.mxh);
  for (std::size_t r = 0; r < g.my; ++r) {
    const double fy = static_cast<double>(signed_freq(r, g.my)) / static_cast<double>(g.ny);
    for (std::size_t j = 0; j < g.mxh; ++j) {
      const double fx = static_cast<double>(j) / static_cast<double>(g.nx);
      const double t = (std::sqrt(fy * fy + fx * fx) - (s - kCoarseTaper)) / kCoarseTaper;
      const double c = t <= 0.0 ? 1.0 : (t >= 1.0 ? 0.0 : std::cos(0.5 * M_PI * t));
      g.taper[r * g.mxh + j] = static_cast<float>(c * c);
    }
  }
}

// Worth it when the coarse block is at least a quarter smaller per axis.
bool coarse_worth_it(const Geometry& g, double s) {
  return 4 * cropped_size(g.ny, s) <= 3 * g.qy && 4 * cropped_size(g.nx, s) <= 3 * g.qx;
}

Geometry register_geometry(std::size_t ny, std::size_t nx, const RegisterParams& p) {
  Geometry g = full_geometry(ny, nx);
  if (p.crop && p.filter.lowpass > 0.0) {
    // Nothing passes above the low-pass: keep only the block that holds it.
    g.qy = g.my = cropped_size(ny, p.filter.support());
    g.qx = g.mx = cropped_size(nx, p.filter.support());
    g.qxh = g.mxh = g.qx / 2 + 1;
    // The integer peak on a coarser map still, when that is much smaller.
    if (p.coarse && coarse_worth_it(g, kCoarseSupport)) coarse_map_block(g, kCoarseSupport);
  } else if (p.coarse && coarse_worth_it(g, kCoarseSupport)) {
    coarse_map_block(g, kCoarseSupport);
  }
  return g;
}

// Everything one translational search needs besides the image: the blocks,
// the filter, the inverse plan of the peak map and the search radius.
struct TranslationSearch {
  const RegisterParams& p;
  Geometry geo;
  std::vector<float> h2;
  std::shared_ptr<const Fft2d> inv_plan;
  double sy, sx, ry, rx;
  bool refine_always;

  TranslationSearch(std::size_t ny, std::size_t nx, const RegisterParams& params) : p(params) {
    check_register_params(p, ny, nx);
    if (p.filter.active()) {
      h2 = bandpass_weights(ny, nx, p.filter);
      for (auto& v : h2) v *= v;
    }
    geo = register_geometry(ny, nx, p);
    inv_plan = get_fft2d(geo.my, geo.mx, geo.my != ny || geo.mx != nx);  // cropped: follows the band
    sy = static_cast<double>(ny) / static_cast<double>(geo.my);
    sx = static_cast<double>(nx) / static_cast<double>(geo.mx);
    ry = p.max_shift >= 0.0 ? p.max_shift / sy : -1.0;
    rx = p.max_shift >= 0.0 ? p.max_shift / sx : -1.0;
    // The coarse map samples the peak every sy px: refine at least on a 1 px
    // grid at full resolution, even for upsample = 1.
    refine_always = geo.my != geo.qy || geo.mx != geo.qx;
  }

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
  Refined run(const cfloat* F, float inv, const ComplexArray& G, Workspace& ws) const {
    const std::size_t my = geo.my, mx = geo.mx;
    product(F, G, geo, inv, p.phase, h2, ws, true);
    inv_plan->inverse(ws.P.data(), ws.map.data());
    const MapPeak pk = argmax_in_radius(ws.map.data(), my, mx, ry, rx);
    float v[9];
    neighbourhood3x3(ws.map.data(), my, mx, pk.iy, pk.ix, v);
    double oy = 0.0, ox = 0.0;
    quadratic_peak(v, oy, ox);
    const double dy = (static_cast<double>(signed_freq(pk.iy, my)) + oy) * sy;
    const double dx = (static_cast<double>(signed_freq(pk.ix, mx)) + ox) * sx;
    return finish(dy, dx, p.upsample > 1 || refine_always, false, ws);
  }

  // Like run, from a shift estimate (dy, dx) a pixel or two off, without
  // the inverse FFT and the integer search: the sub-pixel search starts on a
  // 1 px grid (`coarse`) or a 1/4 px grid around the estimate.
  Refined local(const cfloat* F, float inv, const ComplexArray& G, double dy, double dx, bool coarse,
                Workspace& ws) const {
    product(F, G, geo, inv, p.phase, h2, ws, false);
    return finish(dy, dx, true, coarse, ws);
  }

  // Sub-pixel refinement on the product in ws (optional), the max_shift
  // bound, the Pearson score.
  Refined finish(double dy, double dx, bool refine, bool coarse, Workspace& ws) const {
    const std::size_t ny = geo.ny, nx = geo.nx, qy = geo.qy, qx = geo.qx;
    double score = 0.0;
    const float* cre = p.phase ? ws.wre.data() : ws.pre.data();
    const float* cim = p.phase ? ws.wim.data() : ws.pim.data();
    if (refine) {
      // With a coarse map, the coarse sub-pixel levels run on its (much
      // smaller) block of the product too; the last level on the whole q block.
      const float *lre = nullptr, *lim = nullptr;
      if (geo.my < geo.qy && geo.mx < geo.qx && p.upsample > 4) {
        const std::size_t mxh = geo.mxh, qxh = geo.qxh;
        ws.lre.resize(geo.my * mxh);
        ws.lim.resize(geo.my * mxh);
        for (std::size_t r = 0; r < geo.my; ++r) {
          const std::size_t qr = full_row(r, geo.my, geo.qy);
          std::memcpy(&ws.lre[r * mxh], cre + qr * qxh, mxh * sizeof(float));
          std::memcpy(&ws.lim[r * mxh], cim + qr * qxh, mxh * sizeof(float));
        }
        lre = ws.lre.data();
        lim = ws.lim.data();
      }
      const Refined ref = ws.dft.refine(cre, cim, qy, qx, ny, nx, dy, dx, p.upsample, coarse, lre, lim,
                                        geo.my, geo.mx);
      dy = ref.dy;
      dx = ref.dx;
      score = ref.value;
    }
    // max_shift is a hard bound: a sub-pixel step that leaves the radius is
    // brought back onto its edge (radially).
    const double len = std::hypot(dy, dx);
    const bool outside = p.max_shift >= 0.0 && len > p.max_shift;
    if (outside) {
      const double f = len > 0.0 ? p.max_shift / len : 0.0;
      dy *= f;
      dx *= f;
    }
    if (p.phase || !refine || outside)
      score = ws.dft.value_at(ws.pre.data(), ws.pim.data(), qy, qx, ny, nx, dy, dx);
    return Refined{dy, dx, std::clamp(score, -1.0, 1.0)};
  }

  // Pearson score of the image against G at a given shift (no search):
  // Re sum_k F(k) G(k) inv e(k . shift), without storing the product.
  CRYOCORE_HOT double score_at(const cfloat* F, float inv, const ComplexArray& G, double dy, double dx,
                               Workspace& ws) const {
    const float *eyr, *eyi, *exr, *exi;
    ws.dft.point_twiddles(geo.qy, geo.qx, geo.ny, geo.nx, dy, dx, &eyr, &eyi, &exr, &exi);
    const std::size_t nxh = geo.nx / 2 + 1, qxh = geo.qxh;
    // v = Re sum_j ex_j U_j with U_j = sum_rows ey_row P_row,j (P = F G): the
    // column sums U accumulate row after row (no horizontal reduction per
    // row), one dot product with ex at the end.
    ws.cols.assign(2 * qxh, 0.0f);
    float* ur = ws.cols.data();
    float* ui = ur + qxh;
    for (std::size_t row = 0; row < geo.qy; ++row) {
      const float* f = reinterpret_cast<const float*>(F + full_row(row, geo.qy, geo.ny) * nxh);
      const float* g = reinterpret_cast<const float*>(G.data() + row * qxh);
      const float er = eyr[row], ei = eyi[row];
#pragma omp simd
      for (std::size_t j = 0; j < qxh; ++j) {
        const float a = f[2 * j], b = f[2 * j + 1], c = g[2 * j], d = g[2 * j + 1];
        const float pr = a * c - b * d, pi = a * d + b * c;
        ur[j] += er * pr - ei * pi;
        ui[j] += er * pi + ei * pr;
      }
    }
    double v = 0.0;
    for (std::size_t j = 0; j < qxh; ++j)
      v += static_cast<double>(ur[j]) * static_cast<double>(exr[j]) -
           static_cast<double>(ui[j]) * static_cast<double>(exi[j]);
    return std::clamp(v * static_cast<double>(inv), -1.0, 1.0);
  }
};

// The best of n_refs prepared references for the image with spectrum F.
// With a prior shift (prior != nullptr), a local search around it instead
// (TranslationSearch::local: no inverse FFT, no integer search).
Refined register_one(const TranslationSearch& search, const PreparedRefs& R, const cfloat* F,
                     std::size_t index, Workspace& ws, std::int32_t& bref,
                     const double* prior = nullptr) {
  if (!spectrum_finite(F)) throw_non_finite_image(index);
  const float inv = inverse_norm(F, search.geo, search.h2, ws);
  Refined best{0.0, 0.0, -2.0};
  bref = 0;
  for (std::size_t r = 0; r < R.n; ++r) {
    Refined res{0.0, 0.0, 0.0};
    if (inv != 0.0f && !R.flat[r])
      res = prior ? search.local(F, inv, R.spec[r], prior[0], prior[1], false, ws) : search.run(F, inv, R.spec[r], ws);
    if (res.value > best.value) {
      best = res;
      bref = static_cast<std::int32_t>(r);
    }
  }
  return best;
}

// spectrum_of(i, ws) -> the half spectrum of image i (ny x nx/2+1).
template <class SpectrumOf>
void register_impl(const float* refs, std::size_t n_refs, std::size_t n, std::size_t ny,
                   std::size_t nx, const RegisterParams& p, double* shifts, double* scores,
                   std::int32_t* best_ref, SpectrumOf&& spectrum_of) {
  if (n_refs == 0) throw std::invalid_argument("at least one reference is needed");
  const TranslationSearch search(ny, nx, p);
  const PreparedRefs R = search.prepare(refs, n_refs);
  Workspaces pool(p.threads, search.geo);
  parallel_for(n_chunks(n, kChunk), p.threads, [&](std::size_t task, std::size_t worker) {
    Workspace& ws = pool.get(worker);
    search.prepare_workspace(ws);
    const std::size_t end = std::min(n, (task + 1) * kChunk);
    for (std::size_t i = task * kChunk; i < end; ++i) {
      std::int32_t bref = 0;
      const Refined best = register_one(search, R, spectrum_of(i, ws), i, ws, bref);
      shifts[2 * i] = best.dy;
      shifts[2 * i + 1] = best.dx;
      scores[i] = best.value;
      if (best_ref) best_ref[i] = bref;
    }
  });
}
}  // namespace

void register_stack(const float* refs, std::size_t n_refs, const float* images, std::size_t n,
                    std::size_t ny, std::size_t nx, const RegisterParams& p, double* shifts,
                    double* scores, std::int32_t* best_ref) {
  check_register_params(p, ny, nx);
  const Geometry geo = register_geometry(ny, nx, p);
  if (geo.qx < nx) {
    // Only the q block's columns are ever read: transform just those along y.
    const auto pruned = get_pruned_forward(ny, nx, geo.qxh);
    register_impl(refs, n_refs, n, ny, nx, p, shifts, scores, best_ref,
                  [&](std::size_t i, Workspace& ws) {
                    // (non-finite pixels are caught on the spectrum: register_one)
                    pruned->forward(fft_readable(images + i * ny * nx, ny * nx, ws.img.data()), ws.F.data());
                    return static_cast<const cfloat*>(ws.F.data());
                  });
    return;
  }
  const auto plan = get_fft2d(ny, nx);
  register_impl(refs, n_refs, n, ny, nx, p, shifts, scores, best_ref,
                [&](std::size_t i, Workspace& ws) {
                  plan->forward(fft_readable(images + i * ny * nx, ny * nx, ws.img.data()), ws.F.data());
                  return static_cast<const cfloat*>(ws.F.data());
                });
}

namespace {
// Largest |ky| and kx of the q block (everything the search reads).
void geometry_extent(const Geometry& g, std::size_t& ky, std::size_t& kx) {
  ky = g.qy == g.ny ? g.ny / 2 : g.qy / 2;
  kx = g.qx == g.nx ? g.nx / 2 : g.qxh - 1;
}

// Image i of a cached stack as a whole half spectrum: in place when the
// cache is whole, else expanded into ws.F (whose other entries stay zero).
const cfloat* cached_spectrum(const cfloat* spectra, const SpectrumLayout& layout, std::size_t i,
                              Workspace& ws) {
  const cfloat* stored = spectra + i * layout.per_image();
  if (layout.is_whole()) return stored;
  layout.expand(stored, ws.F.data());
  return ws.F.data();
}

// Throws unless the cache holds all that the search (and the band) reads.
void require_extent(const SpectrumLayout& layout, const Geometry& geo, const SpectrumBand* band) {
  std::size_t ky = 0, kx = 0;
  geometry_extent(geo, ky, kx);
  layout.require(ky, kx, "the translational search (its low-pass)");
  if (band) layout.require(band->ky_extent(), band->kx_extent(), "the band added to the sums");
}
}  // namespace

void search_extent(std::size_t ny, std::size_t nx, const RegisterParams& p, double band,
                   std::size_t& ky, std::size_t& kx) {
  check_register_params(p, ny, nx);
  geometry_extent(register_geometry(ny, nx, p), ky, kx);
  if (band > 0.0) {
    const SpectrumBand B(ny, nx, band);
    ky = std::max(ky, B.ky_extent());
    kx = std::max(kx, B.kx_extent());
  }
}

void register_spectra(const float* refs, std::size_t n_refs, const cfloat* spectra,
                      const SpectrumLayout& layout, std::size_t n, const RegisterParams& p,
                      double* shifts, double* scores, std::int32_t* best_ref) {
  check_register_params(p, layout.ny, layout.nx);
  require_extent(layout, register_geometry(layout.ny, layout.nx, p), nullptr);
  register_impl(refs, n_refs, n, layout.ny, layout.nx, p, shifts, scores, best_ref,
                [&](std::size_t i, Workspace& ws) { return cached_spectrum(spectra, layout, i, ws); });
}

namespace {

constexpr double kCoarseStep = 5.0;        // degrees between coarse rotations
constexpr double kCoarseLowpass = 0.1;     // cycles/px of the coarse search
constexpr std::size_t kAngleCandidates = 5;  // polar maxima scored by the coarse search
constexpr double kRivalDistance = 90.0;      // degrees: a rival candidate is this far from the best
constexpr double kRivalMargin = 0.5;         // and scores within kRivalMargin * (1 - best) of it
constexpr int kMaxAngleSteps = 16;           // fine rotations one search may step over
constexpr double kPolarMax = 0.2;            // cycles/px of the outer polar ring

// The reference rotated by j * step degrees (bicubic), j < count, prepared
// for a search on first use: an image's search touches only the rotations
// near its candidates, so a call with few images prepares few of them.
// Thread-safe (each rotation is made once; std::call_once orders the write
// before every read); what is prepared does not depend on which thread
// asked first.
class LazyRotations {
 public:
  LazyRotations(const float* ref, std::size_t ny, std::size_t nx, double step, std::size_t count,
                const TranslationSearch& search)
      : ref_(ref), ny_(ny), nx_(nx), step_(step), search_(search), spec_(count), flat_(count, 0),
        once_(new std::once_flag[count]) {}
  std::size_t size() const noexcept { return spec_.size(); }
  const ComplexArray& operator[](std::size_t j) const {
    std::call_once(once_[j], [&] {
      std::vector<float> img(ny_ * nx_);
      transform_image(ref_, ny_, nx_, step_ * static_cast<double>(j), 0.0, 0.0, false, img.data());
      PreparedRefs one = search_.prepare(img.data(), 1);
      spec_[j] = std::move(one.spec[0]);
      flat_[j] = one.flat[0];
    });
    return spec_[j];
  }
  // Whether rotation j is flat (nothing passes the filter): its spectrum is zero.
  bool flat(std::size_t j) const {
    (*this)[j];
    return flat_[j] != 0;
  }

 private:
  const float* ref_;
  std::size_t ny_, nx_;
  double step_;
  const TranslationSearch& search_;
  mutable std::vector<ComplexArray> spec_;
  mutable std::vector<char> flat_;  // written once per rotation, under its once_flag
  std::unique_ptr<std::once_flag[]> once_;
};

// Indices of the (at most) k highest circular local maxima of v, best first.
std::size_t top_local_maxima(const float* v, std::size_t m, std::size_t k, std::size_t* out) {
  std::size_t count = 0;
  for (std::size_t j = 0; j < m; ++j) {
    if (!(v[j] > v[(j + m - 1) % m] && v[j] >= v[(j + 1) % m])) continue;
    std::size_t slot;
    if (count == k) {  // full: replace the weakest if this one is stronger
      if (v[j] <= v[out[k - 1]]) continue;
      slot = k - 1;
    } else {
      slot = count++;
    }
    while (slot > 0 && v[out[slot - 1]] < v[j]) {
      out[slot] = out[slot - 1];
      --slot;
    }
    out[slot] = j;
  }
  return count;
}

// Vertex offset of the parabola through (-1, l), (0, c), (1, r), within [-0.5, 0.5].
double parabola_offset(double l, double c, double r) {
  const double d = l - 2.0 * c + r;
  return d < 0.0 ? std::clamp(0.5 * (l - r) / d, -0.5, 0.5) : 0.0;
}

}  // namespace

struct RotationalSearch::Impl {
  std::size_t ny, nx, n_refs;
  std::vector<float> refs;  // own copy: the rotations are made from it on first use
  RegisterParams p, pc;     // fine (the caller's) and coarse parameters
  // (the searches below keep references to p and pc: declared after them)
  std::unique_ptr<TranslationSearch> fine, coarse;
  std::size_t K = 0, stride = 1, KC = 0;
  double dpsi = 1.0;
  std::unique_ptr<PolarCorrelator> polar;
  std::shared_ptr<const Fft2d> plan;
  std::vector<std::unique_ptr<LazyRotations>> fine_refs, coarse_refs;
  std::vector<std::vector<cfloat>> polar_refs;
  std::vector<bool> flat_ref;
};

RotationalSearch::RotationalSearch(const float* refs, std::size_t n_refs, std::size_t ny, std::size_t nx,
                                   const RegisterParams& p, double angular_step)
    : impl_(new Impl) {
  Impl& m = *impl_;
  if (n_refs == 0) throw std::invalid_argument("at least one reference is needed");
  if (!(angular_step >= 0.05 && angular_step <= 10.0))
    throw std::invalid_argument("angular_step must be in [0.05, 10] degrees, got " +
                                std::to_string(angular_step));
  check_register_params(p, ny, nx);
  const std::size_t npx = ny * nx;
  for (std::size_t r = 0; r < n_refs; ++r)
    if (!all_finite(refs + r * npx, npx))
      throw std::invalid_argument("reference " + std::to_string(r) +
                                  " contains NaN or infinity; all pixel values must be finite");
  m.ny = ny;
  m.nx = nx;
  m.n_refs = n_refs;
  m.refs.assign(refs, refs + n_refs * npx);
  m.p = p;
  m.fine.reset(new TranslationSearch(ny, nx, m.p));
  m.pc = p;  // coarse: low-passed, cropped, quadratic peak only
  // (at least three frequency pixels, for small boxes)
  const double coarse_lp = std::max(kCoarseLowpass, 3.0 / static_cast<double>(std::min(ny, nx)));
  m.pc.filter.lowpass = p.filter.lowpass > 0.0 ? std::min(p.filter.lowpass, coarse_lp) : coarse_lp;
  m.pc.filter.highpass = std::min(p.filter.highpass, 0.5 * m.pc.filter.lowpass);
  m.pc.upsample = 1;
  m.pc.phase = false;
  m.coarse.reset(new TranslationSearch(ny, nx, m.pc));
  m.K = static_cast<std::size_t>(std::lround(360.0 / angular_step));
  m.dpsi = 360.0 / static_cast<double>(m.K);
  // Coarse rotations: every stride-th fine one, about kCoarseStep apart.
  m.stride = std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(kCoarseStep / m.dpsi)));
  m.KC = (m.K + m.stride - 1) / m.stride;
  // Polar rings of the power spectra: from two frequency px (the lowest
  // rings barely change with rotation) to kPolarMax (or the low-pass).
  const double nmin = static_cast<double>(std::min(ny, nx));
  const double rho_min = std::min(std::max(2.0 / nmin, p.filter.highpass), 0.3);
  double rho_max = kPolarMax;
  if (p.filter.lowpass > 0.0) rho_max = std::min(rho_max, p.filter.lowpass);
  rho_max = std::min(std::max(rho_max, rho_min + 3.0 / nmin), 0.4);
  m.polar.reset(new PolarCorrelator(ny, nx, rho_min, rho_max));
  m.plan = get_fft2d(ny, nx);
  PolarWork w;
  RealArray img(npx);
  ComplexArray F(m.plan->complex_size());
  for (std::size_t r = 0; r < n_refs; ++r) {
    const float* ref = m.refs.data() + r * npx;
    m.fine_refs.emplace_back(new LazyRotations(ref, ny, nx, m.dpsi, m.K, *m.fine));
    m.coarse_refs.emplace_back(
        new LazyRotations(ref, ny, nx, m.dpsi * static_cast<double>(m.stride), m.KC, *m.coarse));
    m.flat_ref.push_back(m.fine_refs.back()->flat(0));  // rotation 0: the reference as it is
    std::memcpy(img.data(), ref, npx * sizeof(float));
    m.plan->forward(img.data(), F.data());
    m.polar_refs.push_back(m.polar->reference(F.data(), w));
  }
}

RotationalSearch::~RotationalSearch() = default;
std::size_t RotationalSearch::ny() const noexcept { return impl_->ny; }
std::size_t RotationalSearch::nx() const noexcept { return impl_->nx; }

void RotationalSearch::run(const float* images, std::size_t n, int threads, double* shifts, double* angles,
                           double* scores, std::int32_t* best_ref, const double* prior_angles,
                           const double* prior_shifts) const {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  const Impl& m = *impl_;
  const std::size_t ny = m.ny, nx = m.nx, npx = ny * nx, n_refs = m.n_refs, K = m.K, KC = m.KC;
  const std::size_t stride = m.stride;
  const double dpsi = m.dpsi;
  const TranslationSearch& fine = *m.fine;
  const TranslationSearch& coarse = *m.coarse;
  const PolarCorrelator& polar = *m.polar;
  const Fft2d* plan = m.plan.get();
  const auto& fine_refs = m.fine_refs;
  const auto& coarse_refs = m.coarse_refs;
  const auto& polar_refs = m.polar_refs;
  const auto& flat_ref = m.flat_ref;
  const std::size_t M = polar.angles();
  Workspaces fine_pool(threads, fine.geo), coarse_pool(threads, coarse.geo);
  std::vector<PolarWork> polar_pool(static_cast<std::size_t>(threads));
  parallel_for(n_chunks(n, kChunk), threads, [&](std::size_t task, std::size_t worker) {
    Workspace& ws = fine_pool.get(worker);
    Workspace& cws = coarse_pool.get(worker);
    PolarWork& pw = polar_pool[worker];
    fine.prepare_workspace(ws);
    const std::size_t end = std::min(n, (task + 1) * kChunk);
    for (std::size_t i = task * kChunk; i < end; ++i) {
      const cfloat* F = image_spectrum(*plan, images + i * npx, i, ws);
      const float inv = inverse_norm(F, fine.geo, fine.h2, ws);
      const float cinv = inverse_norm(F, coarse.geo, coarse.h2, ws);
      Refined best{0.0, 0.0, -2.0};
      double best_psi = 0.0;
      std::int32_t bref = 0;
      // A finite prior pose (one reference only) replaces the global search.
      const bool have_prior = prior_angles && prior_shifts && n_refs == 1 && std::isfinite(prior_angles[i]) &&
                              std::isfinite(prior_shifts[2 * i]) && std::isfinite(prior_shifts[2 * i + 1]);
      const double prior_psi = have_prior ? std::fmod(std::fmod(prior_angles[i], 360.0) + 360.0, 360.0) : 0.0;
      if (inv != 0.0f && cinv != 0.0f && !have_prior) polar.ring_spectra(F, pw);
      for (std::size_t r = 0; r < n_refs; ++r) {
        if (inv == 0.0f || cinv == 0.0f || flat_ref[r]) {
          if (best.value < 0.0) best = Refined{0.0, 0.0, 0.0};
          continue;
        }
        std::size_t j = 0;
        Refined res{0.0, 0.0, -2.0};
        if (have_prior) {
          // Local: from the prior pose (nearest fine rotation, sub-pixel grids
          // from the prior shift), then the angular steps below.
          j = static_cast<std::size_t>(std::lround(prior_psi / dpsi)) % K;
          res = fine.local(F, inv, (*fine_refs[r])[j], prior_shifts[2 * i], prior_shifts[2 * i + 1], false, ws);
        } else {
        // Candidate angles: the best maxima of the power spectra's rotational
        // correlation, each with its 180-degree twin, scored by a coarse
        // (low-passed, cropped) translational search at the nearest coarse
        // rotation of the reference.
        polar.correlate(polar_refs[r], pw);
        const float* corr = pw.corr.data();
        std::size_t peaks[kAngleCandidates];
        const std::size_t n_peaks = top_local_maxima(corr, M, kAngleCandidates, peaks);
        double cand_psi[2 * kAngleCandidates];
        double cand_score[2 * kAngleCandidates];
        Refined cand_shift[2 * kAngleCandidates];
        std::size_t n_cand = 0;
        for (std::size_t k = 0; k < n_peaks; ++k) {
          const std::size_t jc = peaks[k];
          // The correlation's lag is the pose angle (checked by the
          // noise-free tests at every angle).
          const double psi = (static_cast<double>(jc) +
                               parabola_offset(corr[(jc + M - 1) % M], corr[jc], corr[(jc + 1) % M])) *
                             polar.step_degrees();
          for (double twin : {psi, psi + 180.0}) {
            const double a = std::fmod(twin + 360.0, 360.0);
            const std::size_t jf = static_cast<std::size_t>(std::lround(a / dpsi)) % K;
            const std::size_t jcoarse = static_cast<std::size_t>(std::lround(static_cast<double>(jf) / static_cast<double>(stride))) % KC;
            cand_psi[n_cand] = a;
            cand_shift[n_cand] = coarse.run(F, cinv, (*coarse_refs[r])[jcoarse], cws);
            cand_score[n_cand] = cand_shift[n_cand].value;
            ++n_cand;
          }
        }
        // Fine: the sub-pixel search at full resolution, at the nearest fine
        // rotation, from the coarse shift, of the best candidate by coarse
        // score, and of its strongest rival far from it if that one scores
        // nearly as well (twins 180 degrees apart can look alike at the
        // coarse resolution).
        std::size_t order[2 * kAngleCandidates] = {};
        for (std::size_t k = 0; k < n_cand; ++k) order[k] = k;
        std::sort(order, order + n_cand, [&](std::size_t a, std::size_t b) {
          return cand_score[a] > cand_score[b] || (cand_score[a] == cand_score[b] && a < b);
        });
        std::size_t n_fine = 1;
        for (std::size_t k = 1; k < n_cand; ++k) {
          const double d = std::fabs(std::remainder(cand_psi[order[k]] - cand_psi[order[0]], 360.0));
          if (d < kRivalDistance) continue;
          if (cand_score[order[k]] >= cand_score[order[0]] - kRivalMargin * (1.0 - cand_score[order[0]]))
            order[n_fine++] = order[k];
          break;
        }
        for (std::size_t k = 0; k < n_fine; ++k) {
          const std::size_t jf = static_cast<std::size_t>(std::lround(cand_psi[order[k]] / dpsi)) % K;
          const Refined& c = cand_shift[order[k]];
          const Refined cand = fine.local(F, inv, (*fine_refs[r])[jf], c.dy, c.dx, true, ws);
          if (cand.value > res.value) {
            res = cand;
            j = jf;
          }
        }
        }
        if (res.value <= best.value) continue;
        // Angular search at a fixed shift: step to the better neighbouring
        // rotation while there is one (one new score per step), then re-refine
        // the shift at the new rotation; repeat until the rotation holds. A
        // parabola through the neighbours' scores refines the angle.
        double sm = 0.0, sp = 0.0;
        auto score = [&](std::size_t jj) {
          return fine.score_at(F, inv, (*fine_refs[r])[jj % K], res.dy, res.dx, ws);
        };
        int steps = 0;
        for (int round = 0; round < 3; ++round) {
          double c = res.value;
          sm = score(j + K - 1);
          sp = score(j + 1);
          const std::size_t j0 = j;
          while ((sm > c || sp > c) && steps < kMaxAngleSteps) {
            if (sp > sm) {
              j = (j + 1) % K;
              sm = c;
              c = sp;
              sp = score(j + 1);
            } else {
              j = (j + K - 1) % K;
              sp = c;
              c = sm;
              sm = score(j + K - 1);
            }
            ++steps;
          }
          if (j == j0) break;
          res = fine.local(F, inv, (*fine_refs[r])[j], res.dy, res.dx, false, ws);
          if (round == 2) {  // the shift moved: neighbours at the final shift
            sm = score(j + K - 1);
            sp = score(j + 1);
          }
        }
        best = res;
        best_psi = (static_cast<double>(j) + parabola_offset(sm, res.value, sp)) * dpsi;
        bref = static_cast<std::int32_t>(r);
      }
      best_psi = std::fmod(best_psi, 360.0);
      if (best_psi < 0.0) best_psi += 360.0;
      shifts[2 * i] = best.dy;
      shifts[2 * i + 1] = best.dx;
      angles[i] = best_psi;
      scores[i] = best.value < -1.0 ? 0.0 : best.value;
      if (best_ref) best_ref[i] = bref;
    }
  });
}

void register_rotate_stack(const float* refs, std::size_t n_refs, const float* images,
                           std::size_t n, std::size_t ny, std::size_t nx, const RegisterParams& p,
                           double angular_step, double* shifts, double* angles, double* scores,
                           std::int32_t* best_ref, const double* prior_angles,
                           const double* prior_shifts) {
  const RotationalSearch search(refs, n_refs, ny, nx, p, angular_step);
  search.run(images, n, p.threads, shifts, angles, scores, best_ref, prior_angles, prior_shifts);
}

void correlation_maps(const float* ref, const float* images, std::size_t n, std::size_t ny,
                      std::size_t nx, const BandPass& filter, bool phase, int threads,
                      float* out) {
  check_bandpass(filter);
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  std::vector<float> h2;
  if (filter.active()) {
    h2 = bandpass_weights(ny, nx, filter);
    for (auto& v : h2) v *= v;
  }
  const auto plan = get_fft2d(ny, nx);
  const PreparedRefs R = prepare_refs(ref, 1, ny, nx, ny, nx, h2);
  const std::size_t mxh = nx / 2 + 1;
  const Geometry geo = full_geometry(ny, nx);
  Workspaces pool(threads, geo);
  parallel_for(n_chunks(n, kChunk), threads, [&](std::size_t task, std::size_t worker) {
    Workspace& ws = pool.get(worker);
    if (phase && ws.wre.empty()) {
      ws.wre.resize(ny * mxh);
      ws.wim.resize(ny * mxh);
    }
    const std::size_t end = std::min(n, (task + 1) * kChunk);
    for (std::size_t i = task * kChunk; i < end; ++i) {
      float* o = out + i * ny * nx;
      const cfloat* F = image_spectrum(*plan, images + i * ny * nx, i, ws);
      const float inv = inverse_norm(F, geo, h2, ws);
      if (inv == 0.0f || R.flat[0]) {
        std::fill(o, o + ny * nx, 0.0f);
        continue;
      }
      product(F, R.spec[0], geo, inv, phase, h2, ws, true);
      plan->inverse(ws.P.data(), ws.map.data());
      const float* m = ws.map.data();
      if (phase) {
        std::memcpy(o, m, ny * nx * sizeof(float));
      } else {  // Pearson values: rounding must not leave [-1, 1]
        for (std::size_t k = 0; k < ny * nx; ++k) o[k] = std::clamp(m[k], -1.0f, 1.0f);
      }
    }
  });
}

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
