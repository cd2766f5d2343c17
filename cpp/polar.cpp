#include "polar.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "simd.hpp"

namespace cryocore {
namespace {

bool smooth(std::size_t n) {
  for (std::size_t p : {2u, 3u, 5u})
    while (n % p == 0) n /= p;
  return n == 1;
}

}  // namespace

PolarCorrelator::PolarCorrelator(std::size_t ny, std::size_t nx, double rho_min, double rho_max)
    : ny_(ny), nx_(nx) {
  if (!(rho_max > rho_min && rho_min > 0.0 && rho_max <= 0.4))
    throw std::invalid_argument("polar rings need 0 < rho_min < rho_max <= 0.4 cycles/px");
  ky_ = static_cast<std::size_t>(std::floor(rho_max * static_cast<double>(ny))) + 1;
  kx_ = static_cast<std::size_t>(std::floor(rho_max * static_cast<double>(nx))) + 1;
  gw_ = 2 * kx_ + 1;
  // Rings one frequency pixel (of the longer axis) apart.
  const double n = static_cast<double>(std::max(ny, nx));
  for (double r = rho_min; r <= rho_max + 1e-12; r += 1.0 / n) rho_.push_back(r);
  rings_ = rho_.size();
  // Half a circle of the outer ring, sampled about once per frequency pixel.
  m_ = std::max<std::size_t>(16, static_cast<std::size_t>(std::ceil(M_PI * rho_max * n)));
  m_ += m_ % 2;
  while (!smooth(m_)) m_ += 2;
  idx_.resize(rings_ * m_);
  wts_.resize(4 * rings_ * m_);
  for (std::size_t r = 0; r < rings_; ++r) {
    for (std::size_t j = 0; j < m_; ++j) {
      const double phi = M_PI * static_cast<double>(j) / static_cast<double>(m_);
      const double y = rho_[r] * static_cast<double>(ny) * std::sin(phi);
      const double x = rho_[r] * static_cast<double>(nx) * std::cos(phi) + static_cast<double>(kx_);
      const double fy = std::floor(y), fx = std::floor(x);
      const double ty = y - fy, tx = x - fx;
      const std::size_t s = r * m_ + j;
      idx_[s] = static_cast<std::uint32_t>(static_cast<std::size_t>(fy) * gw_ + static_cast<std::size_t>(fx));
      wts_[4 * s + 0] = static_cast<float>((1.0 - ty) * (1.0 - tx));
      wts_[4 * s + 1] = static_cast<float>((1.0 - ty) * tx);
      wts_[4 * s + 2] = static_cast<float>(ty * (1.0 - tx));
      wts_[4 * s + 3] = static_cast<float>(ty * tx);
    }
  }
  fft_ = get_ring_fft(rings_, m_);
}

CRYOCORE_HOT void PolarCorrelator::ring_spectra(const cfloat* F, PolarWork& w) const {
  const std::size_t nxh = nx_ / 2 + 1;
  const std::size_t rows = ky_ + 1;
  w.power.resize(rows * gw_);
  if (w.polar.size() != rings_ * m_) {
    w.polar = RealArray(rings_ * m_);
    w.rings = ComplexArray(rings_ * (m_ / 2 + 1));
    w.sum = ComplexArray(m_ / 2 + 1);
    w.corr = RealArray(m_);
  }
  // |F(ky, kx)|^2 for 0 <= ky <= ky_, |kx| <= kx_; F(ky, -kx) = conj F(-ky, kx).
  for (std::size_t ky = 0; ky < rows; ++ky) {
    const cfloat* pos = F + ky * nxh;
    const cfloat* neg = F + ((ny_ - ky) % ny_) * nxh;
    float* out = w.power.data() + ky * gw_ + kx_;
    for (std::size_t kx = 0; kx <= kx_; ++kx) {
      out[kx] = std::norm(pos[kx]);
      out[-static_cast<std::ptrdiff_t>(kx)] = std::norm(neg[kx]);
    }
  }
  const float* P = w.power.data();
  for (std::size_t r = 0; r < rings_; ++r) {
    float* ring = w.polar.data() + r * m_;
    double mean = 0.0;
    for (std::size_t j = 0; j < m_; ++j) {
      const std::size_t s = r * m_ + j;
      const float* p = P + idx_[s];
      const float* t = &wts_[4 * s];
      ring[j] = t[0] * p[0] + t[1] * p[1] + t[2] * p[gw_] + t[3] * p[gw_ + 1];
      mean += ring[j];
    }
    const auto mu = static_cast<float>(mean / static_cast<double>(m_));
    for (std::size_t j = 0; j < m_; ++j) ring[j] -= mu;
  }
  fft_->forward(w.polar.data(), w.rings.data());
}

std::vector<cfloat> PolarCorrelator::reference(const cfloat* F, PolarWork& w) const {
  ring_spectra(F, w);
  const std::size_t mh = m_ / 2 + 1;
  std::vector<cfloat> out(rings_ * mh);
  for (std::size_t r = 0; r < rings_; ++r) {
    // Each ring normalised to unit energy, then weighted by its radius (the
    // area it stands for): without the normalisation the strong, nearly
    // isotropic low rings decide alone and the angle is several degrees off.
    double e = 0.0;
    for (std::size_t k = 1; k < mh; ++k) e += std::norm(w.rings[r * mh + k]);
    const double wt = e > 0.0 ? rho_[r] / std::sqrt(e) : 0.0;
    for (std::size_t k = 0; k < mh; ++k)
      out[r * mh + k] = std::conj(w.rings[r * mh + k]) * static_cast<float>(wt);
  }
  return out;
}

CRYOCORE_HOT void PolarCorrelator::correlate(const std::vector<cfloat>& ref, PolarWork& w) const {
  const std::size_t mh = m_ / 2 + 1;
  float* s = reinterpret_cast<float*>(w.sum.data());
  std::fill(s, s + 2 * mh, 0.0f);
  for (std::size_t r = 0; r < rings_; ++r) {
    const float* a = reinterpret_cast<const float*>(w.rings.data() + r * mh);
    const float* b = reinterpret_cast<const float*>(ref.data() + r * mh);
#pragma omp simd
    for (std::size_t k = 0; k < mh; ++k) {
      s[2 * k] += a[2 * k] * b[2 * k] - a[2 * k + 1] * b[2 * k + 1];
      s[2 * k + 1] += a[2 * k] * b[2 * k + 1] + a[2 * k + 1] * b[2 * k];
    }
  }
  fft_->inverse(w.sum.data(), w.corr.data());
}

}  // namespace cryocore
