// How a stack of cached half spectra is stored: whole, or cropped to its low
// frequencies (an iterative alignment at limited resolution reads only
// those, so the cache can be a fraction of the size).
#pragma once

#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

#include "filters.hpp"
#include "plans.hpp"

namespace cryocore {

// Per image, `rows` x `cols` complex values of the half spectrum of an
// (ny, nx) image. Whole: rows = ny, cols = nx/2+1, in r2c order. Cropped:
// the rows of signed frequency |ky| <= ky_max (0..ky_max, then -ky_max..-1:
// rows = 2 ky_max + 1 < ny) and the columns kx <= kx_max (cols = kx_max + 1
// < nx/2+1).
struct SpectrumLayout {
  std::size_t ny = 0, nx = 0, rows = 0, cols = 0;

  static SpectrumLayout whole(std::size_t ny, std::size_t nx) { return {ny, nx, ny, nx / 2 + 1}; }
  static SpectrumLayout cropped(std::size_t ny, std::size_t nx, std::size_t ky_max, std::size_t kx_max) {
    if (2 * ky_max + 1 >= ny || kx_max + 1 >= nx / 2 + 1)
      throw std::invalid_argument("a cropped spectrum must keep fewer than all rows and columns (|ky| <= " +
                                  std::to_string(ky_max) + ", kx <= " + std::to_string(kx_max) + " of a " +
                                  std::to_string(ny) + " x " + std::to_string(nx) + " image)");
    return {ny, nx, 2 * ky_max + 1, kx_max + 1};
  }

  bool is_whole() const noexcept { return rows == ny && cols == nx / 2 + 1; }
  std::size_t per_image() const noexcept { return rows * cols; }
  // The largest |ky| and kx held (ny/2 and nx/2 when whole: everything).
  std::size_t ky_max() const noexcept { return is_whole() ? ny / 2 : (rows - 1) / 2; }
  std::size_t kx_max() const noexcept { return is_whole() ? nx / 2 : cols - 1; }
  bool holds(std::size_t ky, std::size_t kx) const noexcept { return ky <= ky_max() && kx <= kx_max(); }

  // Offset, in one image's storage, of the row of full-spectrum row fr
  // (which must be held).
  std::size_t row_offset(std::size_t fr) const noexcept {
    if (is_whole()) return fr * cols;
    const long f = signed_freq(fr, ny);
    return static_cast<std::size_t>(f >= 0 ? f : static_cast<long>(rows) + f) * cols;
  }

  // Full-spectrum row of stored row c.
  std::size_t full_row_of(std::size_t c) const noexcept {
    return (is_whole() || c <= ky_max()) ? c : ny - (rows - c);
  }

  // One image: the held part of a whole half spectrum F (ny x nx/2+1) into
  // its storage.
  void store(const cfloat* F, cfloat* stored) const {
    const std::size_t nxh = nx / 2 + 1;
    for (std::size_t c = 0; c < rows; ++c)
      std::memcpy(stored + c * cols, F + full_row_of(c) * nxh, cols * sizeof(cfloat));
  }

  // One image: its storage into the held rows and columns of F (whole
  // layout); the rest of F is left as it is.
  void expand(const cfloat* stored, cfloat* F) const {
    const std::size_t nxh = nx / 2 + 1;
    for (std::size_t c = 0; c < rows; ++c)
      std::memcpy(F + full_row_of(c) * nxh, stored + c * cols, cols * sizeof(cfloat));
  }

  // Throws unless every |ky| <= ky and kx <= kx is held; `what` names the reader.
  void require(std::size_t ky, std::size_t kx, const char* what) const {
    if (holds(ky, kx)) return;
    throw std::invalid_argument(std::string(what) + " reads frequencies up to |ky| = " + std::to_string(ky) +
                                ", kx = " + std::to_string(kx) + ", but the cached spectra hold only |ky| <= " +
                                std::to_string(ky_max()) + ", kx <= " + std::to_string(kx_max()) +
                                "; cache a larger crop (or the whole spectra)");
  }
};

}  // namespace cryocore
