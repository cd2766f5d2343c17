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
#include "spectra.hpp"

namespace cryocore {
namespace {

constexpr std::size_t kChunk = 8;  // images per task

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
  const std::size_t nxh = nx / 2 + 1;
  for (std::size_t r = 0; r < n_refs; ++r) {
    copy_checked(refs + r * ny * nx, ny * nx, img.data(), r, "reference");
    plan->forward(img.data(), F.data());
    F[0] = cfloat(0.0f, 0.0f);
    const double e = spectral_energy(F.data(), h2.empty() ? nullptr : h2.data(), ny, nx);
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

struct Workspace {
  RealArray img, map;
  ComplexArray F, P;
  std::vector<float> pre, pim;  // Pearson product spectrum, split planes
  std::vector<float> wre, wim;  // whitened product (phase correlation)
  LocalDft dft;
  Workspace(std::size_t ny, std::size_t nx, std::size_t my, std::size_t mx)
      : img(ny * nx),
        map(my * mx),
        F(ny * (nx / 2 + 1)),
        P(my * (mx / 2 + 1)),
        pre(my * (mx / 2 + 1)),
        pim(my * (mx / 2 + 1)) {}
};

// Per-worker scratch, made on first use by the worker that owns the slot.
class Workspaces {
 public:
  Workspaces(int threads, std::size_t ny, std::size_t nx, std::size_t my, std::size_t mx)
      : slots_(static_cast<std::size_t>(std::max(threads, 1))), ny_(ny), nx_(nx), my_(my), mx_(mx) {}
  Workspace& get(std::size_t worker) {
    auto& s = slots_[worker];
    if (!s) s = std::make_unique<Workspace>(ny_, nx_, my_, mx_);
    return *s;
  }

 private:
  std::vector<std::unique_ptr<Workspace>> slots_;
  std::size_t ny_, nx_, my_, mx_;
};

// 1/|H F| (DC excluded), or 0 for a flat image.
float inverse_norm(const cfloat* F, std::size_t ny, std::size_t nx, const std::vector<float>& h2) {
  const double e = spectral_energy(F, h2.empty() ? nullptr : h2.data(), ny, nx);
  return e > 1e-30 ? static_cast<float>(1.0 / std::sqrt(e)) : 0.0f;
}

// Image spectrum in ws.F (its DC term is ignored: the reference's is zero).
const cfloat* image_spectrum(const Fft2d& plan, const float* image, std::size_t index,
                             Workspace& ws) {
  copy_checked(image, plan.real_size(), ws.img.data(), index, "image");
  plan.forward(ws.img.data(), ws.F.data());
  return ws.F.data();
}

// P = F_I * G * inv on the block, into ws.P (for the inverse FFT) and the
// split planes; with `phase`, ws.P and ws.wre/wim hold the whitened product
// times H^2 instead, and ws.pre/pim keep the Pearson product for scoring.
void product(const cfloat* F, const ComplexArray& G, std::size_t ny, std::size_t nx,
             std::size_t my, std::size_t mxh, float inv, bool phase,
             const std::vector<float>& h2, Workspace& ws) {
  const std::size_t nxh = nx / 2 + 1;
  for (std::size_t row = 0; row < my; ++row) {
    const std::size_t fr = full_row(row, my, ny);
    const float* f = reinterpret_cast<const float*>(F + fr * nxh);
    const float* g = reinterpret_cast<const float*>(G.data() + row * mxh);
    float* p = reinterpret_cast<float*>(ws.P.data() + row * mxh);
    float* pr = ws.pre.data() + row * mxh;
    float* pi = ws.pim.data() + row * mxh;
#pragma omp simd
    for (std::size_t j = 0; j < mxh; ++j) {
      const float a = f[2 * j], b = f[2 * j + 1], c = g[2 * j], d = g[2 * j + 1];
      const float re = (a * c - b * d) * inv;
      const float im = (a * d + b * c) * inv;
      p[2 * j] = re;
      p[2 * j + 1] = im;
      pr[j] = re;
      pi[j] = im;
    }
    if (phase) {
      float* wr = ws.wre.data() + row * mxh;
      float* wi = ws.wim.data() + row * mxh;
      for (std::size_t j = 0; j < mxh; ++j) {
        const float mag = std::sqrt(pr[j] * pr[j] + pi[j] * pi[j]);
        const float h = h2.empty() ? 1.0f : h2[fr * nxh + j];
        const float s = mag > 0.0f ? h / mag : 0.0f;
        wr[j] = pr[j] * s;
        wi[j] = pi[j] * s;
        p[2 * j] = wr[j];
        p[2 * j + 1] = wi[j];
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
// spectrum_of(i, ws) -> the half spectrum of image i (ny x nx/2+1).
template <class SpectrumOf>
void register_impl(const float* refs, std::size_t n_refs, std::size_t n, std::size_t ny,
                   std::size_t nx, const RegisterParams& p, double* shifts, double* scores,
                   std::int32_t* best_ref, SpectrumOf&& spectrum_of) {
  check_register_params(p, ny, nx);
  if (n_refs == 0) throw std::invalid_argument("at least one reference is needed");
  const std::vector<float> h2 = [&] {
    if (!p.filter.active()) return std::vector<float>();
    auto w = bandpass_weights(ny, nx, p.filter);
    for (auto& v : w) v *= v;
    return w;
  }();
  const bool crop = p.crop && p.filter.lowpass > 0.0;
  const std::size_t my = crop ? cropped_size(ny, p.filter.support()) : ny;
  const std::size_t mx = crop ? cropped_size(nx, p.filter.support()) : nx;
  const std::size_t mxh = mx / 2 + 1;
  const auto plan = get_fft2d(ny, nx);
  const auto inv_plan = (my == ny && mx == nx) ? plan : get_fft2d(my, mx);
  const PreparedRefs R = prepare_refs(refs, n_refs, ny, nx, my, mx, h2);
  const double sy = static_cast<double>(ny) / static_cast<double>(my);
  const double sx = static_cast<double>(nx) / static_cast<double>(mx);
  const double ry = p.max_shift >= 0.0 ? p.max_shift / sy : -1.0;
  const double rx = p.max_shift >= 0.0 ? p.max_shift / sx : -1.0;

  Workspaces pool(p.threads, ny, nx, my, mx);
  parallel_for(n_chunks(n, kChunk), p.threads, [&](std::size_t task, std::size_t worker) {
    Workspace& ws = pool.get(worker);
    if (p.phase && ws.wre.empty()) {
      ws.wre.resize(my * mxh);
      ws.wim.resize(my * mxh);
    }
    const std::size_t end = std::min(n, (task + 1) * kChunk);
    for (std::size_t i = task * kChunk; i < end; ++i) {
      const cfloat* F = spectrum_of(i, ws);
      const float inv = inverse_norm(F, ny, nx, h2);
      double best_score = -2.0, bdy = 0.0, bdx = 0.0;
      std::int32_t bref = 0;
      for (std::size_t r = 0; r < n_refs; ++r) {
        double score = 0.0, dy = 0.0, dx = 0.0;
        if (inv != 0.0f && !R.flat[r]) {
          product(F, R.spec[r], ny, nx, my, mxh, inv, p.phase, h2, ws);
          inv_plan->inverse(ws.P.data(), ws.map.data());
          const MapPeak pk = argmax_in_radius(ws.map.data(), my, mx, ry, rx);
          float v[9];
          neighbourhood3x3(ws.map.data(), my, mx, pk.iy, pk.ix, v);
          double oy = 0.0, ox = 0.0;
          quadratic_peak(v, oy, ox);
          dy = (static_cast<double>(signed_freq(pk.iy, my)) + oy) * sy;
          dx = (static_cast<double>(signed_freq(pk.ix, mx)) + ox) * sx;
          const float* cre = p.phase ? ws.wre.data() : ws.pre.data();
          const float* cim = p.phase ? ws.wim.data() : ws.pim.data();
          if (p.upsample > 1) {
            const Refined ref = ws.dft.refine(cre, cim, my, mx, ny, nx, dy, dx, p.upsample);
            dy = ref.dy;
            dx = ref.dx;
            score = ref.value;
          }
          // max_shift is a hard bound: a sub-pixel step that leaves the
          // radius is brought back onto its edge (radially).
          const double len = std::hypot(dy, dx);
          const bool outside = p.max_shift >= 0.0 && len > p.max_shift;
          if (outside) {
            const double f = len > 0.0 ? p.max_shift / len : 0.0;
            dy *= f;
            dx *= f;
          }
          if (p.phase || p.upsample <= 1 || outside)
            score = ws.dft.value_at(ws.pre.data(), ws.pim.data(), my, mx, ny, nx, dy, dx);
          score = std::clamp(score, -1.0, 1.0);
        }
        if (score > best_score) {
          best_score = score;
          bdy = dy;
          bdx = dx;
          bref = static_cast<std::int32_t>(r);
        }
      }
      shifts[2 * i] = bdy;
      shifts[2 * i + 1] = bdx;
      scores[i] = best_score;
      if (best_ref) best_ref[i] = bref;
    }
  });
}
}  // namespace

void register_stack(const float* refs, std::size_t n_refs, const float* images, std::size_t n,
                    std::size_t ny, std::size_t nx, const RegisterParams& p, double* shifts,
                    double* scores, std::int32_t* best_ref) {
  const auto plan = get_fft2d(ny, nx);
  register_impl(refs, n_refs, n, ny, nx, p, shifts, scores, best_ref,
                [&](std::size_t i, Workspace& ws) {
                  return image_spectrum(*plan, images + i * ny * nx, i, ws);
                });
}

void register_spectra(const float* refs, std::size_t n_refs, const cfloat* spectra,
                      std::size_t n, std::size_t ny, std::size_t nx, const RegisterParams& p,
                      double* shifts, double* scores, std::int32_t* best_ref) {
  const std::size_t per = ny * (nx / 2 + 1);
  register_impl(refs, n_refs, n, ny, nx, p, shifts, scores, best_ref,
                [&](std::size_t i, Workspace&) { return spectra + i * per; });
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
  Workspaces pool(threads, ny, nx, ny, nx);
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
      const float inv = inverse_norm(F, ny, nx, h2);
      if (inv == 0.0f || R.flat[0]) {
        std::fill(o, o + ny * nx, 0.0f);
        continue;
      }
      product(F, R.spec[0], ny, nx, ny, mxh, inv, phase, h2, ws);
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
