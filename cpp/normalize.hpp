// Per-image preprocessing in real space (RELION's extraction steps): contrast
// inversion, hot-pixel removal and background normalisation. The background is
// the pixels farther than radius_px from the box centre (ny/2, nx/2).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cryocore {

struct NormalizeParams {
  double radius_px = 0.0;   // the particle's radius; the background is outside it
  bool invert = false;      // multiply by -1 first
  double hot_sigma = 0.0;   // > 0: pixels beyond hot_sigma background deviations -> the background mean
  bool normalize = true;    // background to zero mean and unit standard deviation
  int threads = 1;
};

// out[i] = images[index[i]] (images[i] when index is null) with the steps
// above, in this order: inversion, hot pixels (the background's statistics
// then made again), normalisation. Statistics in double precision; a flat
// background (deviation 0) is only centred. Throws std::invalid_argument for
// NaN/inf pixels (naming the image) or a radius that leaves fewer than 10
// background pixels.
void normalize_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx, const NormalizeParams& p,
                     float* out, const std::int64_t* index = nullptr);

}  // namespace cryocore
