// The microscope's contrast transfer function, RELION's formula, units and
// signs (CONVENTIONS.md, CTF), computed on the fly from each particle's
// parameters on the frequencies a pass needs: no CTF image is stored per
// particle.
//
// With X, Y the frequency (1/Å) along columns and rows, u2 = X^2 + Y^2 and
// the astigmatic defocus written as (U+V)/2 + (U-V)/2 cos(2 (theta - angle)),
//     gamma = A u2 + Bc (X^2 - Y^2) + Bs 2XY + D u2^2 + E,
//     CTF   = -sin(gamma) exp(-B/4 u2) scale,
// so each particle costs its coefficients once, then a few multiply-adds and
// one sine per frequency.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "plans.hpp"

namespace cryocore {

// One particle's parameters, in this order (RELION's units): defocus U and V
// (Å, positive = underfocus), astigmatism angle (degrees from x to U),
// voltage (kV), spherical aberration (mm), amplitude contrast Q0 in [0, 1),
// phase shift (degrees), B-factor (Å^2), scale.
constexpr std::size_t kCtfFields = 9;

// Throws std::invalid_argument naming the first particle (1-based) and
// parameter that is not finite or out of range (voltage <= 0, Cs < 0, Q0
// outside [0, 1)).
void check_ctf_params(const double* params, std::size_t n);

// The grid's frequency terms on the half spectrum of an (ny, nx) box (ny rows,
// nx/2+1 columns), within |ky| <= ky_max, kx <= kx_max (the band a pass reads;
// entries outside are written as 0).
class CtfGrid {
 public:
  // ky_max/kx_max < 0: the whole half spectrum. intact_first_peak: 1 before the
  // first peak (|gamma - e| < pi/2, RELION's --ctf_intact_first_peak).
  CtfGrid(std::size_t ny, std::size_t nx, double pixel_size_A, long ky_max = -1, long kx_max = -1,
          bool intact_first_peak = false);
  std::size_t size() const noexcept { return ny_ * nxh_; }

  // The CTF of one particle (kCtfFields parameters) turned into the
  // reference frame of a pose psi_deg (its astigmatism angle minus psi),
  // on the whole half spectrum (size() floats); squared: CTF^2.
  void evaluate(const double* params, double psi_deg, bool squared, float* out) const;

  // A whole half spectrum F (size() values) times this particle's CTF within
  // the grid's extent (the rest of F is left as it is); scratch: one row.
  void multiply(const double* params, cfloat* F, std::vector<float>& scratch) const;

 private:
  std::size_t ny_, nxh_;
  bool intact_;
  std::vector<std::size_t> rows_;  // the rows within the band
  std::vector<double> y_;          // their frequencies Y (1/Å)
  std::vector<double> x_, x2_;     // the columns' X (1/Å) and X^2, kx <= kx_max
};

// The CTFs of the images of one call: row i (kCtfFields values) of params is
// the i-th image's (of the call's images, not of the stack an index reads).
struct CtfRows {
  const double* params;
  double pixel_size_A;
  bool intact_first_peak = false;  // 1 before the first peak (CtfGrid)
};

// Images (n, ny, nx) each filtered by its own CTF: the inverse FFT of CTF_i F_i
// (params: n x kCtfFields). index (may be null): image i is images[index[i]].
// Throws naming an image that holds NaN or infinity.
void ctf_filter_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx, const CtfRows& ctf,
                      int threads, float* out, const std::int64_t* index = nullptr);

// Each particle's CTF (or CTF^2) on the half spectrum, turned by its angle
// (psi, degrees; may be null): out n x ny x (nx/2+1) float32.
void ctf_planes(const CtfRows& ctf, const double* angles, std::size_t n, std::size_t ny, std::size_t nx,
                bool squared, int threads, float* out);

// Adds weight_i CTF_i^2 (turned by angle_i; angles may be null) to
// out[group_i] (n_groups x ny x (nx/2+1) float64) within the band (cycles/px
// per axis, as accumulate_spectra's: |ky| <= band ny, kx <= band nx; >= 0.5:
// all); group < 0 or weight 0: skipped. Deterministic for any thread count.
void accumulate_ctf2(const CtfRows& ctf, const double* angles, const double* weights, const std::int32_t* group,
                     std::size_t n, std::size_t n_groups, std::size_t ny, std::size_t nx, double band, int threads,
                     double* out);

}  // namespace cryocore
