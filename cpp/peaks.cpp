#include "peaks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "filters.hpp"
#include "simd.hpp"
#include "spectra.hpp"

namespace cryocore {

CRYOCORE_HOT MapPeak argmax_in_radius(const float* map, std::size_t my, std::size_t mx, double ry, double rx) {
  MapPeak best;
  const bool limited = ry >= 0.0 && rx >= 0.0;
  for (std::size_t i = 0; i < my; ++i) {
    const double sy = static_cast<double>(signed_freq(i, my));
    const float* row = map + i * mx;
    if (!limited) {
      // Vectorisable max, then the first index holding it.
      float m = row[0];
#pragma omp simd reduction(max : m)
      for (std::size_t j = 0; j < mx; ++j) m = std::max(m, row[j]);
      if (!best.found || m > best.value) {
        std::size_t j = 0;
        while (row[j] != m) ++j;
        best = MapPeak{i, j, m, true};
      }
      continue;
    }
    const double t = ry > 0.0 ? 1.0 - (sy / ry) * (sy / ry) : (sy == 0.0 ? 1.0 : -1.0);
    if (t < 0.0) continue;
    const double half = rx * std::sqrt(t);  // |dx| <= half
    for (std::size_t j = 0; j < mx; ++j) {
      const double sx = static_cast<double>(signed_freq(j, mx));
      if (std::fabs(sx) > half) continue;
      if (!best.found || row[j] > best.value) best = MapPeak{i, j, row[j], true};
    }
  }
  return best;
}

void neighbourhood3x3(const float* map, std::size_t my, std::size_t mx, std::size_t iy,
                      std::size_t ix, float v[9]) {
  for (int a = -1; a <= 1; ++a) {
    const std::size_t r = (iy + my + static_cast<std::size_t>(a + 1) - 1) % my;
    for (int b = -1; b <= 1; ++b) {
      const std::size_t c = (ix + mx + static_cast<std::size_t>(b + 1) - 1) % mx;
      v[(a + 1) * 3 + (b + 1)] = map[r * mx + c];
    }
  }
}

void quadratic_peak(const float v[9], double& oy, double& ox) {
  // f(x, y) = a + b x + c y + d x^2 + e y^2 + g x y, least squares on the
  // 3x3 grid x, y in {-1, 0, 1}.
  auto at = [&](int y, int x) { return static_cast<double>(v[(y + 1) * 3 + (x + 1)]); };
  double col[3] = {0, 0, 0}, row[3] = {0, 0, 0};
  for (int y = -1; y <= 1; ++y)
    for (int x = -1; x <= 1; ++x) {
      col[x + 1] += at(y, x);
      row[y + 1] += at(y, x);
    }
  const double b = (col[2] - col[0]) / 6.0;
  const double c = (row[2] - row[0]) / 6.0;
  const double d = (col[2] + col[0] - 2.0 * col[1]) / 6.0;
  const double e = (row[2] + row[0] - 2.0 * row[1]) / 6.0;
  const double g = (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / 4.0;
  const double det = 4.0 * d * e - g * g;
  if (d < 0.0 && e < 0.0 && det > 0.0) {
    ox = (-2.0 * e * b + g * c) / det;
    oy = (-2.0 * d * c + g * b) / det;
  } else {
    // 1D parabolas through the centre row and column.
    auto parabola = [](double l, double m, double r) {
      const double den = l - 2.0 * m + r;
      return den < 0.0 ? 0.5 * (l - r) / den : 0.0;
    };
    ox = parabola(at(0, -1), at(0, 0), at(0, 1));
    oy = parabola(at(-1, 0), at(0, 0), at(1, 0));
  }
  if (!std::isfinite(ox)) ox = 0.0;
  if (!std::isfinite(oy)) oy = 0.0;
  ox = std::clamp(ox, -1.0, 1.0);
  oy = std::clamp(oy, -1.0, 1.0);
}

namespace {
// Index of the Nyquist entry of an even n among an axis's m entries (only
// the whole axis reaches it), or m for none.
std::size_t nyquist_entry(std::size_t m, std::size_t n, bool half) {
  if (m != n || n % 2 != 0) return m;
  return half ? m / 2 : n / 2;
}

// Twiddles e(k) = exp(2 pi i f(k) s / n) for the m entries of one axis of an
// n-point spectrum (f(k) = k on the half axis, signed frequency of an m-point
// axis otherwise), with the column weights of the half axis folded in and the
// Nyquist term of an even n taken as cos(pi s).
void axis_twiddles(std::size_t m, std::size_t n, bool half, double s, float* re, float* im,
                   bool weighted = true) {
  const std::size_t count = half ? m / 2 + 1 : m;
  const std::size_t pos = half ? count : (m + 1) / 2;  // entries k < pos hold f = k >= 0
  // exp(2 pi i f s / n) for f >= 0; entry m - j (f = -j) is the conjugate.
  const double theta = 2.0 * M_PI * s / static_cast<double>(n);
  phase_powers(theta, half ? count : m / 2 + 1, [&](std::size_t f, double zr, double zi) {
    if (f < pos) {
      const double w = half && weighted ? static_cast<double>(column_weight(f, n)) : 1.0;
      re[f] = static_cast<float>(w * zr);
      im[f] = static_cast<float>(w * zi);
    }
    if (!half && f > 0 && m - f >= pos) {
      re[m - f] = static_cast<float>(zr);
      im[m - f] = static_cast<float>(-zi);
    }
  });
  const std::size_t q = nyquist_entry(m, n, half);
  if (q < count) {  // the Nyquist term: cos(pi s) (its column weight is 1)
    re[q] = static_cast<float>(std::cos(M_PI * s));
    im[q] = 0.0f;
  }
}

// U[i][kx] = sum_ky (ey[i][ky] C[ky][kx]) for W grid rows (complex, split
// planes; C is my x mxh, ey is W x my, U is W x mxh). Eight columns at a
// time, their W accumulators held in vector registers over all the rows
// (the C row is loaded once for all W; nothing is stored until the block is
// done). Each U entry is the sum over ky in row order.
// (GCC/Clang vector extensions, like rotate.cpp: SSE pairs in the baseline clone.)
typedef float v8f __attribute__((vector_size(32)));
typedef std::int32_t v8i __attribute__((vector_size(32)));

template <int W>
CRYOCORE_HOT void column_sums(const float* cre, const float* cim, std::size_t my, std::size_t mxh,
                              const float* eyr, const float* eyi, float* ur, float* ui) {
  constexpr std::size_t L = 8;
  for (std::size_t k0 = 0; k0 < mxh; k0 += L) {
    const std::size_t width = std::min(L, mxh - k0);
    v8f sr[W], si[W];
    for (int i = 0; i < W; ++i) sr[i] = si[i] = v8f{};
    // The last, partial block: the lanes past the row are masked to zero
    // (read from the rows after it while C holds L more values from there,
    // else copied lane by lane).
    v8i keep;
    for (std::size_t l = 0; l < L; ++l) keep[l] = l < width ? -1 : 0;
    v8f ar = {}, ai = {};
    for (std::size_t ky = 0; ky < my; ++ky) {
      const float* rr = cre + ky * mxh + k0;
      const float* ri = cim + ky * mxh + k0;
      if (width == L) {
        std::memcpy(&ar, rr, sizeof ar);
        std::memcpy(&ai, ri, sizeof ai);
      } else if ((my - ky) * mxh - k0 >= L) {
        std::memcpy(&ar, rr, sizeof ar);
        std::memcpy(&ai, ri, sizeof ai);
        ar = reinterpret_cast<v8f>(reinterpret_cast<v8i>(ar) & keep);
        ai = reinterpret_cast<v8f>(reinterpret_cast<v8i>(ai) & keep);
      } else {
        float tr[L] = {}, ti[L] = {};
        for (std::size_t l = 0; l < width; ++l) {
          tr[l] = rr[l];
          ti[l] = ri[l];
        }
        std::memcpy(&ar, tr, sizeof ar);
        std::memcpy(&ai, ti, sizeof ai);
      }
      for (int i = 0; i < W; ++i) {
        const float er = eyr[static_cast<std::size_t>(i) * my + ky];
        const float ei = eyi[static_cast<std::size_t>(i) * my + ky];
        sr[i] += er * ar - ei * ai;
        si[i] += er * ai + ei * ar;
      }
    }
    for (int i = 0; i < W; ++i) {
      std::memcpy(ur + static_cast<std::size_t>(i) * mxh + k0, &sr[i], width * sizeof(float));
      std::memcpy(ui + static_cast<std::size_t>(i) * mxh + k0, &si[i], width * sizeof(float));
    }
  }
}

// Twiddles of a 3-point grid (s - h, s, s + h) of one axis, rows of `count`
// entries: the centre by axis_twiddles, the neighbours as the centre times
// the step phases d = exp(2 pi i f h / n) (or their conjugates). The
// Nyquist entry, whose twiddle is the real cos(pi s), is set directly.
void grid3_twiddles(std::size_t m, std::size_t n, bool half, double s, double h, const float* dr,
                    const float* di, float* re, float* im) {
  const std::size_t count = half ? m / 2 + 1 : m;
  float *r0 = re, *i0 = im, *r1 = re + count, *i1 = im + count, *r2 = re + 2 * count, *i2 = im + 2 * count;
  axis_twiddles(m, n, half, s, r1, i1);
#pragma omp simd
  for (std::size_t k = 0; k < count; ++k) {
    r0[k] = r1[k] * dr[k] + i1[k] * di[k];
    i0[k] = i1[k] * dr[k] - r1[k] * di[k];
    r2[k] = r1[k] * dr[k] - i1[k] * di[k];
    i2[k] = i1[k] * dr[k] + r1[k] * di[k];
  }
  const std::size_t q = nyquist_entry(m, n, half);
  if (q < count) {
    r0[q] = static_cast<float>(std::cos(M_PI * (s - h)));
    r2[q] = static_cast<float>(std::cos(M_PI * (s + h)));
    i0[q] = i2[q] = 0.0f;
  }
}
}  // namespace

const LocalDft::StepPhases& LocalDft::step_phases(std::size_t m, std::size_t n, bool half, double h) {
  for (const StepPhases& sp : steps_)
    if (sp.m == m && sp.n == n && sp.half == half && sp.h == h) return sp;
  if (steps_.size() >= 8) steps_.erase(steps_.begin());
  StepPhases sp{m, n, half, h, {}, {}};
  const std::size_t count = half ? m / 2 + 1 : m;
  sp.re.resize(count);
  sp.im.resize(count);
  axis_twiddles(m, n, half, h, sp.re.data(), sp.im.data(), false);
  steps_.push_back(std::move(sp));
  return steps_.back();
}

CRYOCORE_HOT void LocalDft::evaluate(const float* cre, const float* cim, std::size_t my, std::size_t mx,
                        std::size_t ny, std::size_t nx, double y0, double x0, double step, int W,
                        float* out) {
  if (W != 1 && W != 3) throw std::invalid_argument("LocalDft::evaluate: grids of 1 or 3 points only");
  const std::size_t mxh = mx / 2 + 1;
  const std::size_t w = static_cast<std::size_t>(W);
  exr_.resize(w * mxh);
  exi_.resize(w * mxh);
  eyr_.resize(w * my);
  eyi_.resize(w * my);
  if (W == 3) {  // the refinement's grids: one twiddle recurrence per axis, not three
    const StepPhases& sx = step_phases(mx, nx, true, step);
    grid3_twiddles(mx, nx, true, x0, step, sx.re.data(), sx.im.data(), exr_.data(), exi_.data());
    const StepPhases& sy = step_phases(my, ny, false, step);
    grid3_twiddles(my, ny, false, y0, step, sy.re.data(), sy.im.data(), eyr_.data(), eyi_.data());
  } else {
    axis_twiddles(mx, nx, true, x0, exr_.data(), exi_.data());
    axis_twiddles(my, ny, false, y0, eyr_.data(), eyi_.data());
  }
  // U[i][kx] = sum_ky Ey[i][ky] C[ky][kx]: the costly stage, one pass over C.
  tr_.resize(w * mxh);
  ti_.resize(w * mxh);
  if (W == 1)
    column_sums<1>(cre, cim, my, mxh, eyr_.data(), eyi_.data(), tr_.data(), ti_.data());
  else
    column_sums<3>(cre, cim, my, mxh, eyr_.data(), eyi_.data(), tr_.data(), ti_.data());
  // out[i][j] = Re sum_kx U[i][kx] Ex[j][kx]
  for (std::size_t i = 0; i < w; ++i) {
    const float* ur = &tr_[i * mxh];
    const float* ui = &ti_[i * mxh];
    for (std::size_t j = 0; j < w; ++j) {
      const float* xr = &exr_[j * mxh];
      const float* xi = &exi_[j * mxh];
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (std::size_t kx = 0; kx < mxh; ++kx) s += ur[kx] * xr[kx] - ui[kx] * xi[kx];
      out[i * w + j] = s;
    }
  }
}

void LocalDft::point_twiddles(std::size_t my, std::size_t mx, std::size_t ny, std::size_t nx,
                              double y, double x, const float** eyr, const float** eyi,
                              const float** exr, const float** exi) {
  const std::size_t mxh = mx / 2 + 1;
  exr_.resize(mxh);
  exi_.resize(mxh);
  eyr_.resize(my);
  eyi_.resize(my);
  axis_twiddles(mx, nx, true, x, exr_.data(), exi_.data());
  axis_twiddles(my, ny, false, y, eyr_.data(), eyi_.data());
  *eyr = eyr_.data();
  *eyi = eyi_.data();
  *exr = exr_.data();
  *exi = exi_.data();
}

double LocalDft::value_at(const float* cre, const float* cim, std::size_t my, std::size_t mx,
                          std::size_t ny, std::size_t nx, double y, double x) {
  float v = 0.0f;
  evaluate(cre, cim, my, mx, ny, nx, y, x, 1.0, 1, &v);
  return static_cast<double>(v);
}

Refined LocalDft::refine(const float* cre, const float* cim, std::size_t my, std::size_t mx,
                         std::size_t ny, std::size_t nx, double y, double x, int upsample,
                         bool from_coarse, const float* low_re, const float* low_im,
                         std::size_t low_my, std::size_t low_mx) {
  const double fine = 1.0 / static_cast<double>(upsample < 1 ? 1 : upsample);
  double steps[3];
  int n_levels = 0;
  if (from_coarse && fine < 1.0) steps[n_levels++] = 1.0;
  if (fine < 0.25) steps[n_levels++] = 0.25;
  steps[n_levels++] = fine;
  float g[9];
  for (int level = 0; level < n_levels; ++level) {
    const double h = steps[level];
    // Grids lie on the lattice of their step (for step 1: the integer shifts,
    // so that upsample = 1 is the quadratic fit of the integer map).
    y = std::round(y / h) * h;
    x = std::round(x / h) * h;
    // Move the 3x3 grid until its centre holds the maximum (a few moves at
    // most: the estimate is already within a step or two of the peak).
    int by = 1, bx = 1;
    const bool low = low_re && level + 1 < n_levels;
    for (int move = 0; move < 8; ++move) {
      if (low)
        evaluate(low_re, low_im, low_my, low_mx, ny, nx, y, x, h, 3, g);
      else
        evaluate(cre, cim, my, mx, ny, nx, y, x, h, 3, g);
      int best = 4;
      for (int k = 0; k < 9; ++k)
        if (g[k] > g[best]) best = k;
      by = best / 3;
      bx = best % 3;
      if (best == 4) break;
      y += (by - 1) * h;
      x += (bx - 1) * h;
    }
    double oy = 0.0, ox = 0.0;
    if (by == 1 && bx == 1) quadratic_peak(g, oy, ox);
    y += std::clamp(oy, -0.5, 0.5) * h;
    x += std::clamp(ox, -0.5, 0.5) * h;
  }
  return Refined{y, x, value_at(cre, cim, my, mx, ny, nx, y, x)};
}

}  // namespace cryocore
