// In-place accumulation of (shifted, weighted) images into running sums.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "plans.hpp"
#include "spectrum_layout.hpp"

namespace cryocore {

// For each image i with weight w_i (1 when weights is null) and pose shift
// (dy_i, dx_i) (none when shifts is null), the image is moved back onto the
// reference, a_i(y, x) = image_i(y + dy_i, x + dx_i) (Fourier interpolation),
// and
//     sum[y, x]   += w_i a_i(y, x)
//     sumsq[y, x] += w_i a_i(y, x)^2      (sumsq may be null)
// without materialising the moved stack. Images are added in fixed chunks
// whose partial sums are reduced in chunk order, so the result is
// bit-identical for any thread count. Throws std::invalid_argument for
// NaN/inf pixels, shifts or weights.
//
// With angles (degrees, may be null) the images are brought back by their
// full pose instead, a_i(x') = image_i(Rot(psi_i) x' + d_i), in one bicubic
// interpolation (rotate.hpp).
// index (may be null): the i-th of the n entries is images[index[i]] (no
// copy of a subset); a zero weight skips its image unread.
void accumulate(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                const double* shifts, const double* weights, int threads, double* sum,
                double* sumsq, const double* angles = nullptr, const std::int64_t* index = nullptr);

// Fourier-space version on cached half spectra (n images stored in
// `layout`, as forward_stack makes them): sum[k] += w_i F_i(k)
// exp(+2 pi i k.d_i / n), the spectrum of the image moved back by its shift
// (sum: ny x nx/2+1). One inverse FFT of the sum (divided by ny*nx) gives the
// real-space sum. Deterministic like accumulate. band < 0.5 (cycles/px) adds
// only the rows |ky| <= band*ny and columns kx <= band*nx (a low-passed sum
// at a fraction of the cost); the other entries of sum are left as they
// are. A cropped layout must hold the band (std::invalid_argument if not).
void accumulate_spectra(const cfloat* spectra, const SpectrumLayout& layout, std::size_t n,
                        const double* shifts, const double* weights, int threads,
                        std::complex<double>* sum, double band = 0.5);

// accumulate_spectra from the images themselves (each transformed on the
// fly): the same sums as forward_stack followed by accumulate_spectra,
// without storing the spectra. Image i is images[index[i]] (images[i] when
// index is null), shifts and weights are per i. Throws
// std::invalid_argument for NaN/inf pixels, shifts or weights.
void accumulate_images_spectra(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                               const double* shifts, const double* weights, int threads,
                               std::complex<double>* sum, double band = 0.5,
                               const std::int64_t* index = nullptr);

// The low-frequency band of a half spectrum (ny x nx/2+1) that
// accumulate_spectra adds: rows |ky| <= band*ny, columns kx <= band*nx (all
// of them for band >= 0.5), packed row after row in partial sums.
struct BandPhases {
  std::vector<cfloat> ey, ex;
};

struct SpectrumBand {
  std::size_t ny, nx;
  std::vector<std::size_t> rows;     // full-spectrum rows of the band
  std::vector<std::size_t> offsets;  // where each is stored in one image (layout)
  std::size_t cols = 0;
  // The band of spectra stored in `layout` (whole by default); throws
  // std::invalid_argument when a cropped layout does not hold it.
  SpectrumBand(std::size_t ny, std::size_t nx, double band);
  SpectrumBand(const SpectrumLayout& layout, double band);
  std::size_t width() const noexcept { return rows.size() * cols; }
  // Largest |ky| and kx of the band (ny/2, nx/2 for the whole spectrum).
  std::size_t ky_extent() const noexcept;
  std::size_t kx_extent() const noexcept { return cols - 1; }
  // Asks the CPU to fetch the band of F (one image in the layout) into its caches.
  void prefetch(const cfloat* F) const;
  // ps (packed, width()) += w * the band of F (one image in the layout)
  // moved back by the pose shift (dy, dx).
  void add_moved_back(const cfloat* F, double dy, double dx, float w, BandPhases& ph, cfloat* ps) const;
  // sum (ny x nx/2+1) += the packed band.
  void unpack_add(const std::complex<double>* packed, std::complex<double>* sum) const;
};

}  // namespace cryocore
