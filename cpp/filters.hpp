// Fourier-space filters on the half spectrum (r2c layout: ny rows, nx/2+1
// columns) and frequency helpers.
#pragma once

#include <cstddef>
#include <vector>

namespace cryocore {

// Signed frequency index of row `i` of an n-point FFT: 0, 1, ..., -1
// (numpy.fft.fftfreq(n) * n; the Nyquist row of an even n is -n/2).
inline long signed_freq(std::size_t i, std::size_t n) {
  return (2 * i < n) ? static_cast<long>(i) : static_cast<long>(i) - static_cast<long>(n);
}

// Band-pass settings, frequencies in cycles per pixel (0 < f <= 0.5 along an axis).
struct BandPass {
  double lowpass = 0.0;   // keep frequencies below this; 0 = no low-pass
  double highpass = 0.0;  // keep frequencies above this; 0 = no high-pass
  double edge = 0.02;     // width of the raised-cosine edge, cycles per pixel
  bool active() const noexcept { return lowpass > 0.0 || highpass > 0.0; }
  // The highest radial frequency the filter lets through (> 0.5*sqrt(2) = none).
  double support() const noexcept { return lowpass > 0.0 ? lowpass + 0.5 * edge : 1.0; }
};

// Validates the settings; throws std::invalid_argument with a message.
void check_bandpass(const BandPass& bp);

// Amplitude H(k) of the filter on the half spectrum of an (ny, nx) image,
// radial frequency f = sqrt((ky/ny)^2 + (kx/nx)^2).
std::vector<float> bandpass_weights(std::size_t ny, std::size_t nx, const BandPass& bp);

// Multiplicity of a half-spectrum column in the full spectrum: 1 for kx = 0
// and for the Nyquist column of an even nx, 2 otherwise.
inline float column_weight(std::size_t kx, std::size_t nx) {
  return (kx == 0 || 2 * kx == nx) ? 1.0f : 2.0f;
}

}  // namespace cryocore
