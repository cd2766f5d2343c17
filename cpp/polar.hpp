// Rotational correlation of Fourier power spectra on polar grids.
//
// |F|^2 of an image does not change when the image is shifted, and turns
// with it when it is rotated. Sampled on rings (radius rho in cycles/px,
// angle phi in [0, 180): the power spectrum of a real image is centrosymmetric)
// and transformed along the angle, the power spectra of an image and a
// reference give their circular correlation over rotations for all angles at
// once with one short inverse FFT: c(psi) = sum_rings sum_phi
// w(rho) P_img(rho, phi) P_ref(rho, phi - psi). Its peaks are candidate angles
// of the image, each with a 180-degree twin that the power spectrum cannot
// tell apart (the caller checks both). This is the translation-invariant
// first stage of register_rotate_stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "plans.hpp"

namespace cryocore {

struct PolarWork {
  std::vector<float> power;  // |F|^2 on the centred grid that holds the rings
  RealArray polar;           // rings x m samples
  ComplexArray rings;        // rings x (m/2+1): their angular spectra
  ComplexArray sum;          // m/2+1: weighted product summed over rings
  RealArray corr;            // m: correlation over psi in [0, 180)
};

class PolarCorrelator {
 public:
  // Rings from rho_min to rho_max cycles/px, one frequency pixel apart.
  PolarCorrelator(std::size_t ny, std::size_t nx, double rho_min, double rho_max);
  std::size_t angles() const noexcept { return m_; }
  double step_degrees() const noexcept { return 180.0 / static_cast<double>(m_); }
  std::size_t spectrum_size() const noexcept { return rings_ * (m_ / 2 + 1); }

  // Angular spectra of the rings of |F|^2 (F: half spectrum, ny x nx/2+1),
  // each ring's mean removed, into w.rings.
  void ring_spectra(const cfloat* F, PolarWork& w) const;
  // The reference's ring spectra, conjugated and weighted: ready for correlate.
  std::vector<cfloat> reference(const cfloat* F, PolarWork& w) const;
  // c(psi_j), psi_j = j * step_degrees(), into w.corr (after ring_spectra).
  void correlate(const std::vector<cfloat>& ref, PolarWork& w) const;

 private:
  std::size_t ny_, nx_, ky_, kx_, gw_;  // grid: rows 0..ky_, columns -kx_..kx_
  std::size_t rings_ = 0, m_ = 0;
  std::vector<double> rho_;
  std::vector<std::uint32_t> idx_;  // per sample: top-left grid index
  std::vector<float> wts_;          // per sample: 4 bilinear weights
  std::shared_ptr<const RingFft> fft_;
};

}  // namespace cryocore
