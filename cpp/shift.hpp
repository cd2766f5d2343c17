// Exact (band-limited) sub-pixel shifts in Fourier space.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ctf.hpp"
#include "plans.hpp"
#include "spectrum_layout.hpp"

namespace cryocore {

// Multiplies a half spectrum (ny x nx/2+1) by the phase of a shift (dy, dx)
// in the pose convention: the image moves to larger indices,
// F(k) *= exp(-2 pi i (ky dy/ny + kx dx/nx)); Nyquist terms of even sizes get
// cos(pi d) so the result stays the spectrum of a real image. ey and ex are
// scratch arrays of ny and nx/2+1 entries.
void apply_shift(cfloat* F, std::size_t ny, std::size_t nx, double dy, double dx, cfloat* ey,
                 cfloat* ex);

// out[i] = images[i] moved by (shifts[2i], shifts[2i+1]) pixels:
// out(y, x) = images(y - dy, x - dx), circularly, with band-limited
// interpolation. Throws std::invalid_argument for NaN/inf pixels or shifts.
void shift_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                 const double* shifts, int threads, float* out);

}  // namespace cryocore

namespace cryocore {

// Half spectra (unnormalised r2c) of a stack of (ny, nx) images, stored in
// `layout` (whole: n x ny x nx/2+1; or cropped to the low frequencies): out[k]
// is the spectrum of images[index[k]] (of images[k] when index is null), so
// a subset is transformed without copying it first. Throws
// std::invalid_argument for NaN/inf pixels.
// With ctf, each spectrum times its image's CTF (ctf.hpp), computed on the
// stored frequencies only.
void forward_stack(const float* images, std::size_t n, const SpectrumLayout& layout, int threads,
                   cfloat* out, const std::int64_t* index = nullptr, const CtfRows* ctf = nullptr);

// Images (n, ny, nx; images[index[i]] when index is given) resampled to (my, mx) <= (ny, nx) by
// cutting their spectra (band-limited binning); an even crop's Nyquist row and column gather
// both frequencies they stand for (+m/2 and -m/2). out: n x my x mx. Throws for NaN/inf pixels.
void fourier_crop_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx, std::size_t my,
                        std::size_t mx, int threads, float* out, const std::int64_t* index = nullptr);

}  // namespace cryocore
