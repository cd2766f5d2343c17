// The translational search: register_stack, register_spectra, search_extent, correlation_maps.
#include "correlation.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"
#include "peaks.hpp"
#include "plans.hpp"
#include "simd.hpp"
#include "spectra.hpp"
#include "translation_search.hpp"

namespace cryocore {
using namespace detail;

namespace {

bool smooth_even(std::size_t n) {
  if (n == 0 || n % 2 != 0) return false;
  for (std::size_t p : {2u, 3u, 5u})
    while (n % p == 0) n /= p;
  return n == 1;
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

// Largest |ky| and kx of the q block (everything the search reads).
void geometry_extent(const Geometry& g, std::size_t& ky, std::size_t& kx) {
  ky = g.qy == g.ny ? g.ny / 2 : g.qy / 2;
  kx = g.qx == g.nx ? g.nx / 2 : g.qxh - 1;
}

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

namespace detail {

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

Geometry full_geometry(std::size_t ny, std::size_t nx) {
  Geometry g;
  g.ny = g.qy = g.my = ny;
  g.nx = g.qx = g.mx = nx;
  g.qxh = g.mxh = nx / 2 + 1;
  return g;
}

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

TranslationSearch::TranslationSearch(std::size_t ny, std::size_t nx, const RegisterParams& params)
    : p(params) {
  check_register_params(p, ny, nx);
  if (p.filter.active()) {
    h2 = bandpass_weights(ny, nx, p.filter);
    for (auto& v : h2) v *= v;
  }
  geo = register_geometry(ny, nx, p);
  inv_plan = get_fft2d(geo.my, geo.mx);
  sy = static_cast<double>(ny) / static_cast<double>(geo.my);
  sx = static_cast<double>(nx) / static_cast<double>(geo.mx);
  ry = p.max_shift >= 0.0 ? p.max_shift / sy : -1.0;
  rx = p.max_shift >= 0.0 ? p.max_shift / sx : -1.0;
  // The coarse map samples the peak every sy px: refine at least on a 1 px
  // grid at full resolution, even for upsample = 1.
  refine_always = geo.my != geo.qy || geo.mx != geo.qx;
}

Refined TranslationSearch::run(const cfloat* F, float inv, const ComplexArray& G, Workspace& ws) const {
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

Refined TranslationSearch::local(const cfloat* F, float inv, const ComplexArray& G, double dy, double dx, bool coarse,
              Workspace& ws) const {
  product(F, G, geo, inv, p.phase, h2, ws, false);
  return finish(dy, dx, true, coarse, ws);
}

Refined TranslationSearch::finish(double dy, double dx, bool refine, bool coarse, Workspace& ws) const {
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

double TranslationSearch::score_at(const cfloat* F, float inv, const ComplexArray& G, double dy, double dx,
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

// The best of n_refs prepared references for the image with spectrum F.
// With a prior shift (prior != nullptr), a local search around it instead
// (TranslationSearch::local: no inverse FFT, no integer search).
Refined register_one(const TranslationSearch& search, const PreparedRefs& R, const cfloat* F,
                     std::size_t index, Workspace& ws, std::int32_t& bref, const double* prior) {
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

const cfloat* cached_spectrum(const cfloat* spectra, const SpectrumLayout& layout, std::size_t i,
                              Workspace& ws) {
  const cfloat* stored = spectra + i * layout.per_image();
  if (layout.is_whole()) return stored;
  layout.expand(stored, ws.F.data());
  return ws.F.data();
}

void require_extent(const SpectrumLayout& layout, const Geometry& geo, const SpectrumBand* band) {
  std::size_t ky = 0, kx = 0;
  geometry_extent(geo, ky, kx);
  layout.require(ky, kx, "the translational search (its low-pass)");
  if (band) layout.require(band->ky_extent(), band->kx_extent(), "the band added to the sums");
}

}  // namespace detail

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

void register_stack(const float* refs, std::size_t n_refs, const float* images, std::size_t n,
                    std::size_t ny, std::size_t nx, const RegisterParams& p, double* shifts,
                    double* scores, std::int32_t* best_ref, const CtfRows* ctf) {
  check_register_params(p, ny, nx);
  const Geometry geo = register_geometry(ny, nx, p);
  std::unique_ptr<CtfGrid> grid;  // the CTFs on the frequencies the search reads only
  if (ctf) {
    check_ctf_params(ctf->params, n);
    std::size_t ky = 0, kx = 0;
    geometry_extent(geo, ky, kx);
    grid.reset(new CtfGrid(ny, nx, ctf->pixel_size_A, static_cast<long>(ky), static_cast<long>(kx),
                           ctf->intact_first_peak));
  }
  // Only the q block's columns are ever read: when that is fewer than all, transform just those along y.
  std::shared_ptr<const PrunedForward> pruned;
  std::shared_ptr<const Fft2d> plan;
  if (geo.qx < nx)
    pruned = get_pruned_forward(ny, nx, geo.qxh);
  else
    plan = get_fft2d(ny, nx);
  register_impl(refs, n_refs, n, ny, nx, p, shifts, scores, best_ref, [&](std::size_t i, Workspace& ws) {
    // (non-finite pixels are caught on the spectrum: register_one; NaN times a CTF stays NaN)
    const float* image = fft_readable(images + i * ny * nx, ny * nx, ws.img.data());
    if (pruned)
      pruned->forward(image, ws.F.data());
    else
      plan->forward(image, ws.F.data());
    if (grid) grid->multiply(ctf->params + i * kCtfFields, ws.F.data(), ws.ctf);
    return static_cast<const cfloat*>(ws.F.data());
  });
}

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

}  // namespace cryocore
