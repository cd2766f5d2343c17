// Batched, normalised cross-correlation of image stacks against one or more
// references, with sub-pixel peak search.
//
// For a reference R and an image I (both with their mean removed and the
// same Fourier filter H applied), the correlation at shift d is
//     cc(d) = sum_x R(x - d) I(x) / (|R| |I|),
// the Pearson correlation of R with I moved back by d. Its peak is the pose
// shift of CONVENTIONS.md: an image that is R moved by (+3, -2) peaks at
// d = (+3, -2). It is the inverse FFT of F_I conj(F_R) H^2 / (|H F_I| |H F_R|).
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "ctf.hpp"
#include "filters.hpp"
#include "plans.hpp"
#include "spectrum_layout.hpp"

namespace cryocore {

struct RegisterParams {
  int upsample = 20;        // refine to 1/upsample px; 1 = quadratic fit only
  double max_shift = -1.0;  // search radius in pixels; < 0 = whole box
  BandPass filter;          // applied to both reference and image
  bool phase = false;       // phase correlation (whitened) for the peak search
  bool crop = true;         // with a low-pass, inverse FFT on the cropped spectrum
  // Search the integer peak on the correlation band-limited to 0.125
  // cycles/px (a small inverse FFT; when at most 3/4 of the map per axis),
  // then refine it on the full-resolution or low-passed correlation (3x3
  // grids of 1/4 px ... 1/upsample px, moved until centred on the local
  // maximum). false: the full-size (or cropped) map.
  bool coarse = true;
  int threads = 1;
};

// Checks parameters against an (ny, nx) box; throws std::invalid_argument.
void check_register_params(const RegisterParams& p, std::size_t ny, std::size_t nx);

// refs: n_refs x ny x nx, images: n x ny x nx (C order, float32).
// Outputs: shifts[2i] = dy, shifts[2i+1] = dx (pose convention), scores[i]
// (Pearson, in [-1, 1]; 0 for a zero-variance image or reference), and
// best_ref[i] (index of the best reference; may be null).
// Throws std::invalid_argument naming the first image that holds NaN/inf.
// ctf (may be null): each image's spectrum is multiplied by its CTF (on the
// frequencies the search reads) before the search.
void register_stack(const float* refs, std::size_t n_refs, const float* images, std::size_t n,
                    std::size_t ny, std::size_t nx, const RegisterParams& p, double* shifts,
                    double* scores, std::int32_t* best_ref, const CtfRows* ctf = nullptr);

// The same from the images' half spectra (n images stored in `layout`, as
// forward_stack makes them; their DC terms are ignored), so that the forward
// FFTs can be cached across iterations. A cropped layout must hold every
// frequency the search reads (search_extent; std::invalid_argument if not).
void register_spectra(const float* refs, std::size_t n_refs, const cfloat* spectra,
                      const SpectrumLayout& layout, std::size_t n, const RegisterParams& p,
                      double* shifts, double* scores, std::int32_t* best_ref);

// The largest |ky| and kx a translational search with these parameters
// reads from an image's spectrum (ny/2, nx/2: all of it), and with band > 0
// those of the band register_accumulate_spectra adds too: what a cropped
// cache must hold.
void search_extent(std::size_t ny, std::size_t nx, const RegisterParams& p, double band,
                   std::size_t& ky, std::size_t& kx);

// register_spectra, and in the same pass over the cache each image's band
// (accumulate_spectra, moved back by the shift just found, weight 1) added
// to sums[group[i] + best_ref[i] * class_stride] (n_groups x ny x nx/2+1,
// complex128, added to in place): with class_stride > 0 the sum an image goes
// to depends on the reference it matched best (multi-reference alignment:
// groups (class, quarter)); group[i] < 0 adds nothing. Deterministic for any thread count. For
// iterative alignment: one read of the cached spectra per iteration; the
// caller subtracts the images it rejects afterwards. prior (n x 2, may be
// null): where finite, a local search from that shift instead of the full
// one (the sub-pixel grids of register_stack, moved at most a couple of
// pixels: no inverse FFT, no integer search).
void register_accumulate_spectra(const float* refs, std::size_t n_refs, const cfloat* spectra,
                                 const SpectrumLayout& layout, std::size_t n,
                                 const RegisterParams& p, const std::int32_t* group,
                                 std::size_t n_groups, std::size_t class_stride, double band,
                                 const double* prior, double* shifts, double* scores,
                                 std::int32_t* best_ref, std::complex<double>* sums);

// Rotational + translational registration in three stages.
// 1. Candidates (polar.hpp): the rotational correlation of the image's and
//    the reference's power spectra on polar rings (2 frequency px to
//    0.2 cycles/px, or the low-pass), which does not depend on the shift;
//    its 5 best maxima over [0, 180) and their 180-degree twins.
// 2. Coarse: the translational search at each candidate, against the
//    reference rotated by the nearest of every ~5 degrees, on the correlation
//    low-passed to 0.1 cycles/px (a small cropped inverse FFT).
// 3. Fine: from the best candidate's coarse shift (and from its strongest
//    rival >= 90 degrees away when that one scores within half the best's
//    distance to 1), the sub-pixel search at full resolution (the caller's
//    filter, upsample, max_shift) against the reference pre-rotated
//    (bicubic) every angular_step degrees; then steps to a better
//    neighbouring rotation at a fixed shift, re-refining the shift after a
//    move, and a parabola through the neighbours' scores for the angle.
// angles[i] in [0, 360), pose convention (the image is the reference rotated
// by psi, then shifted); the score is the Pearson correlation at the nearest
// sampled rotation.
// prior_angles (n) and prior_shifts (n x 2) (may be null; one reference
// only): where both are finite, a local search from that pose replaces
// stages 1-2 (the sub-pixel search from the prior shift at the nearest fine
// rotation, then the angular steps, at most kMaxAngleSteps rotations away).
void register_rotate_stack(const float* refs, std::size_t n_refs, const float* images,
                           std::size_t n, std::size_t ny, std::size_t nx, const RegisterParams& p,
                           double angular_step, double* shifts, double* angles, double* scores,
                           std::int32_t* best_ref, const double* prior_angles = nullptr,
                           const double* prior_shifts = nullptr);

// The same search with its references prepared once for many calls (a
// stack read chunk by chunk): the reference's rotations are made on first
// use and kept, so each call pays only for its images. The references are
// copied; run() may be called from several threads at once, and gives the
// same results as register_rotate_stack for any thread count.
// Every searched class's own best pose for each image (soft assignment): slot s of image i is
// at i * slots + s; slots at least the number of classes searched per image (the candidates,
// or all references); unused slots get class -1 and score NaN. The classes of an image are in
// increasing order.
struct ClassPoses {
  std::size_t slots = 0;
  double* shifts = nullptr;  // n x slots x 2
  double* angles = nullptr;  // n x slots
  double* scores = nullptr;  // n x slots
  std::int32_t* classes = nullptr;  // n x slots
};

class RotationalSearch {
 public:
  RotationalSearch(const float* refs, std::size_t n_refs, std::size_t ny, std::size_t nx,
                   const RegisterParams& p, double angular_step);
  ~RotationalSearch();
  RotationalSearch(const RotationalSearch&) = delete;
  RotationalSearch& operator=(const RotationalSearch&) = delete;
  std::size_t ny() const noexcept;
  std::size_t nx() const noexcept;
  std::size_t n_refs() const noexcept;
  // The classes each image is searched against with `candidates` (see run): at most n_refs.
  std::size_t classes_searched(std::size_t candidates) const noexcept;
  // index (may be null): the i-th of the n images is images[index[i]] (no copy of a subset).
  // ctf (may be null): each image's spectrum is multiplied by its CTF before the search (the
  // search compares CTF X with the references); filtered (n x ny x nx, may be null with ctf):
  // receives each CTF X in real space, for sums made in the same read.
  // candidates > 0 (fewer than the references): each image gets the full search against only
  // that many references, those whose power spectra's rotational correlation with its own
  // peaks highest (stage 1's correlation: invariant to the image's pose; 2D classification).
  // prior_class (n, may be null): with several references, an image with a finite prior pose
  // and a prior class >= 0 is searched locally around that pose against that class only.
  // per_class (may be null): receives each searched class's refined pose and score (every one
  // is refined, not only those that beat the best so far; the best is then the best refined).
  void run(const float* images, std::size_t n, int threads, double* shifts, double* angles, double* scores,
           std::int32_t* best_ref, const double* prior_angles, const double* prior_shifts,
           const std::int64_t* index = nullptr, const CtfRows* ctf = nullptr, float* filtered = nullptr,
           std::size_t candidates = 0, const std::int32_t* prior_class = nullptr,
           const ClassPoses* per_class = nullptr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Normalised correlation maps at integer shifts: out[i, y, x] is the Pearson
// correlation at shift (signed(y), signed(x)) (circular, unshifted layout,
// like numpy.fft). The phase flag whitens the spectrum (then values are not
// Pearson scores). out: n x ny x nx.
void correlation_maps(const float* ref, const float* images, std::size_t n, std::size_t ny,
                      std::size_t nx, const BandPass& filter, bool phase, int threads,
                      float* out);

// Length of the inverse FFT axis that holds every frequency |k| <= support*n
// strictly below its own Nyquist frequency (an even, 2-3-5-smooth length);
// n when that is not shorter.
std::size_t cropped_size(std::size_t n, double support);

}  // namespace cryocore
