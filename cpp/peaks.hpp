// Peak finding on correlation maps: integer argmax inside a search radius,
// a 2D quadratic fit on the 3x3 neighbourhood, and exact evaluation of the
// band-limited correlation on small local grids from its spectrum (the
// matrix-multiply DFT of Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33,
// 156, 2008), used for sub-pixel refinement.
#pragma once

#include <cstddef>
#include <vector>

namespace cryocore {

struct MapPeak {
  std::size_t iy = 0, ix = 0;  // index into the map
  float value = 0.0f;
  bool found = false;
};

// Largest value of a circular map (my rows, mx columns) among the positions
// whose signed offsets (dy, dx) satisfy (dy/ry)^2 + (dx/rx)^2 <= 1; ry or rx
// < 0 means no limit. Ties go to the first position in row-major order.
MapPeak argmax_in_radius(const float* map, std::size_t my, std::size_t mx, double ry, double rx);

// The 3x3 values around a map position, with circular wrap-around, row-major
// (v[0] = (-1,-1), v[4] = centre, v[8] = (+1,+1)).
void neighbourhood3x3(const float* map, std::size_t my, std::size_t mx, std::size_t iy,
                      std::size_t ix, float v[9]);

// Offset (oy, ox) of the maximum of the least-squares 2D quadratic through a
// 3x3 neighbourhood, in grid steps, each clipped to [-1, 1]. Falls back to
// independent 1D parabolas when the fit has no maximum.
void quadratic_peak(const float v[9], double& oy, double& ox);

struct Refined {
  double dy, dx, value;
};

// Evaluates the correlation c(y, x) = Re sum_k C(k) P(k; y, x) at arbitrary
// positions from its half spectrum C, given as separate real and imaginary
// planes (my rows x mx/2+1 columns). P is the shift phase
// exp(2 pi i (ky y/ny + kx x/nx)) with the Nyquist terms of even sizes taken
// as cos(pi y) / cos(pi x), so that c(y, x) is the correlation of the
// reference with the image Fourier-shifted back by (y, x). The block may be
// the low-frequency part of an (ny, nx) spectrum that is zero outside it:
// rows are signed frequencies of an my-point axis, columns 0..mx/2.
// Holds scratch space: one per worker, not thread-safe.
class LocalDft {
 public:
  // out[i*W + j] = c(y0 + (i - (W-1)/2) step, x0 + (j - (W-1)/2) step), for
  // W = 1 (one value) or 3 (a 3x3 grid); std::invalid_argument otherwise.
  void evaluate(const float* cre, const float* cim, std::size_t my, std::size_t mx,
                std::size_t ny, std::size_t nx, double y0, double x0, double step, int W,
                float* out);

  // Sub-pixel maximum near an estimate (y, x) in pixels. Coarse to fine:
  // 3x3 grids of spacing 1 px (with `from_coarse`: the estimate may be a
  // pixel or two off), 1/4 px (when upsample > 4) and then 1/upsample px,
  // each on the lattice of its spacing and moved until its centre is the
  // largest value, followed by a quadratic fit; the value is evaluated
  // exactly at the result.
  //
  // `low` (optional): the same spectrum cropped to a smaller low-frequency
  // block (low_my x low_mx/2+1, split planes), used for every level but the
  // last: the coarse levels only have to land within a few fine steps of the
  // peak, which the last level (on the whole block) then climbs to.
  Refined refine(const float* cre, const float* cim, std::size_t my, std::size_t mx,
                 std::size_t ny, std::size_t nx, double y, double x, int upsample,
                 bool from_coarse = false, const float* low_re = nullptr,
                 const float* low_im = nullptr, std::size_t low_my = 0, std::size_t low_mx = 0);

  // The twiddles of evaluate for one position (y, x): ey (my values, split
  // planes) and ex (mx/2+1, column weights folded in); valid until the next call.
  void point_twiddles(std::size_t my, std::size_t mx, std::size_t ny, std::size_t nx, double y,
                      double x, const float** eyr, const float** eyi, const float** exr,
                      const float** exi);

  // c(y, x) at one position.
  double value_at(const float* cre, const float* cim, std::size_t my, std::size_t mx,
                  std::size_t ny, std::size_t nx, double y, double x);

 private:
  // exp(2 pi i f h / n) for the entries of one axis (no column weights): the
  // step between neighbouring grid points; a few are kept (one per level).
  struct StepPhases {
    std::size_t m, n;
    bool half;
    double h;
    std::vector<float> re, im;
  };
  const StepPhases& step_phases(std::size_t m, std::size_t n, bool half, double h);

  std::vector<float> exr_, exi_, eyr_, eyi_, tr_, ti_;
  std::vector<StepPhases> steps_;
};

}  // namespace cryocore
