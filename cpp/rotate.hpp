// In-plane rotation (and shift) of images by bicubic interpolation.
#pragma once

#include <cstddef>

namespace cryocore {

// Applies poses to a stack by Keys bicubic interpolation (a = -0.5) about
// the centre (ny/2, nx/2) (integer division); samples that fall outside the
// box are 0.
//   forward (inverse = false): out(x') = in(Rot(-psi) (x' - d))   (rotate by psi, then shift)
//   inverse (inverse = true):  out(x') = in(Rot(psi) x' + d)      (bring the image back onto
//                                                                   its reference)
// with x' = (x - cx, y - cy), Rot(a) = [[cos a, -sin a], [sin a, cos a]] on (x', y'), angles
// psi in degrees (angles[i]) and shifts d = (shifts[2i], shifts[2i+1]) = (dy, dx) in pixels
// (shifts may be null). Throws std::invalid_argument for non-finite angles or shifts.
void transform_stack(const float* images, std::size_t n, std::size_t ny, std::size_t nx,
                     const double* angles, const double* shifts, bool inverse, int threads,
                     float* out);

// One image, for callers that hold their own scratch (the accumulator).
void transform_image(const float* in, std::size_t ny, std::size_t nx, double angle_deg,
                     double dy, double dx, bool inverse, float* out);

}  // namespace cryocore
