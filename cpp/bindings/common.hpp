// What every binding file shares: array types and checks, the GIL release with
// Ctrl-C polling, search parameters from keyword arguments, cached-spectra layouts.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/complex.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "correlation.hpp"
#include "ctf.hpp"
#include "interrupt.hpp"
#include "spectrum_layout.hpp"

namespace cryocore {
namespace bindings {

namespace py = pybind11;

// Polled by the core between tasks (from the calling thread, which released
// the GIL): runs Python's signal handlers, so Ctrl-C raises KeyboardInterrupt.
inline bool python_interrupted() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// Runs core work without the GIL, interruptible by Ctrl-C. Safe: the arrays
// the work reads and writes are owned by the caller's frame (inputs kept
// alive by its references, outputs new), and the core touches no Python
// object; the interrupt check takes the GIL back for its own short call.
template <class Fn>
inline void run_without_gil(Fn&& fn) {
  try {
    py::gil_scoped_release release;
    InterruptScope scope(&python_interrupted);
    fn();
  } catch (const Interrupted&) {
    throw py::error_already_set();  // the KeyboardInterrupt set by the signal handler
  }
}

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using ComplexArrayPy = py::array_t<std::complex<float>, py::array::c_style | py::array::forcecast>;

inline std::size_t dim(const py::array& a, py::ssize_t k) { return static_cast<std::size_t>(a.shape(k)); }

inline void require_stack(const py::array& a, const char* name) {
  if (a.ndim() != 3)
    throw std::invalid_argument(std::string(name) + " must be a 3D array (n, ny, nx), got " +
                                std::to_string(a.ndim()) + "D");
  if (a.shape(1) < 2 || a.shape(2) < 2)
    throw std::invalid_argument(std::string(name) + " images must be at least 2 x 2 pixels");
}

inline void require_same_box(const py::array& a, const py::array& b) {
  if (a.shape(1) != b.shape(1) || a.shape(2) != b.shape(2))
    throw std::invalid_argument("references and images must have the same (ny, nx) box");
}

inline void require_pairs(const DoubleArray& s, std::size_t n, const char* name) {
  if (s.ndim() != 2 || dim(s, 0) != n || s.shape(1) != 2)
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(n) +
                                ", 2)");
}

inline BandPass make_bandpass(std::optional<double> lowpass, std::optional<double> highpass,
                       double edge) {
  BandPass bp;
  bp.lowpass = lowpass.value_or(0.0);
  bp.highpass = highpass.value_or(0.0);
  bp.edge = edge;
  check_bandpass(bp);
  return bp;
}

inline RegisterParams make_params(int upsample, std::optional<double> max_shift,
                           std::optional<double> lowpass, std::optional<double> highpass,
                           double edge, bool phase, bool crop, bool coarse, int threads) {
  RegisterParams p;
  p.upsample = upsample;
  p.max_shift = max_shift.value_or(-1.0);
  p.filter = make_bandpass(lowpass, highpass, edge);
  p.phase = phase;
  p.crop = crop;
  p.coarse = coarse;
  p.threads = threads;
  return p;
}

// Runs fn(shifts, scores, best) without the GIL and returns the three arrays.
template <class Fn>
inline py::tuple registration_outputs(std::size_t n, Fn&& fn) {
  py::array_t<double> shifts({static_cast<py::ssize_t>(n), py::ssize_t{2}});
  py::array_t<double> scores(static_cast<py::ssize_t>(n));
  py::array_t<std::int32_t> best(static_cast<py::ssize_t>(n));
  double* sp = shifts.mutable_data();
  double* cp = scores.mutable_data();
  std::int32_t* bp = best.mutable_data();
  run_without_gil([&] { fn(sp, cp, bp); });
  return py::make_tuple(shifts, scores, best);
}

using IndexArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

// A 1D index into a stack of n images, every entry checked.
inline const std::int64_t* checked_index(const IndexArray& index, std::size_t n) {
  if (index.ndim() != 1) throw std::invalid_argument("index must be 1D");
  const std::int64_t* xp = index.data();
  for (py::ssize_t k = 0; k < index.shape(0); ++k)
    if (xp[k] < 0 || static_cast<std::size_t>(xp[k]) >= n)
      throw std::invalid_argument("index " + std::to_string(xp[k]) + " is out of range for " +
                                  std::to_string(n) + " images");
  return xp;
}

inline std::string shape_str(std::size_t a, std::size_t b, std::size_t c) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ")";
}

// The layout of cached half spectra (n, rows, cols) of (ny, nx) images:
// whole, (n, ny, nx//2+1), or cropped to the low frequencies,
// (n, 2*ky+1, kx+1) with fewer rows and columns (forward_stack(crop=...)).
inline SpectrumLayout layout_of(const ComplexArrayPy& spectra, std::size_t ny, std::size_t nx) {
  const std::size_t nxh = nx / 2 + 1;
  if (spectra.ndim() == 3) {
    const std::size_t rows = dim(spectra, 1), cols = dim(spectra, 2);
    if (rows == ny && cols == nxh) return SpectrumLayout::whole(ny, nx);
    if (rows % 2 == 1 && rows < ny && cols >= 1 && cols < nxh)
      return SpectrumLayout::cropped(ny, nx, (rows - 1) / 2, cols - 1);
  }
  std::string got = "ndim " + std::to_string(spectra.ndim());
  if (spectra.ndim() == 3) got = "shape " + shape_str(dim(spectra, 0), dim(spectra, 1), dim(spectra, 2));
  throw std::invalid_argument("spectra of " + std::to_string(ny) + " x " + std::to_string(nx) +
                              " images must have shape (n, " + std::to_string(ny) + ", " + std::to_string(nxh) +
                              ") (whole) or (n, 2*ky+1, kx+1) with fewer rows and columns (cropped); got " + got);
}

// References (k, ny, nx) and cached half spectra of the same box.
inline SpectrumLayout check_spectra(const FloatArray& refs, const ComplexArrayPy& spectra, std::size_t nx) {
  require_stack(refs, "references");
  if (dim(refs, 2) != nx)
    throw std::invalid_argument("references must be " + std::to_string(nx) + " pixels wide (nx), got " +
                                std::to_string(dim(refs, 2)));
  return layout_of(spectra, dim(refs, 1), nx);
}

// The bindings of each area, called by the module (module.cpp).
// (n, 9) float64 CTF parameters (kCtfFields per image, ctf.hpp's order).
inline void require_ctf_params(const DoubleArray& params, std::size_t n, const char* name = "params") {
  if (params.ndim() != 2 || dim(params, 0) != n || dim(params, 1) != kCtfFields)
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(n) + ", " +
                                std::to_string(kCtfFields) + "): one row of CTF parameters per image");
}

// The optional ctf= and pixel_size_A= arguments of a search or transform of n images (null: none).
// The returned rows point into `params`, which the caller keeps alive.
inline std::optional<CtfRows> ctf_rows(const std::optional<DoubleArray>& params, std::optional<double> pixel_size_A,
                                       std::size_t n, bool intact_first_peak = false) {
  if (!params) {
    if (pixel_size_A) throw std::invalid_argument("pixel_size_A is given without ctf parameters");
    return std::nullopt;
  }
  require_ctf_params(*params, n, "ctf");
  if (!pixel_size_A) throw std::invalid_argument("ctf needs pixel_size_A (Å per pixel)");
  return CtfRows{params->data(), *pixel_size_A, intact_first_peak};
}

void bind_ctf(py::module_& m);
void bind_search(py::module_& m);
void bind_spectra(py::module_& m);
void bind_transforms(py::module_& m);

}  // namespace bindings
}  // namespace cryocore
