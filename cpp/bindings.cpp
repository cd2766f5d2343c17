// The only file that knows about Python: converts arrays, releases the GIL
// around the C++ core, and maps its exceptions (std::invalid_argument becomes
// ValueError). Argument checking that needs Python names (shapes, dtypes)
// happens in the Python layer; this layer re-checks what the core relies on.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/complex.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "accumulate.hpp"
#include "correlation.hpp"
#include "interrupt.hpp"
#include "plans.hpp"
#include "rotate.hpp"
#include "shift.hpp"

namespace py = pybind11;
using namespace cryocore;

namespace {

// Polled by the core between tasks (from the calling thread, which released
// the GIL): runs Python's signal handlers, so Ctrl-C raises KeyboardInterrupt.
bool python_interrupted() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// Runs core work without the GIL, interruptible by Ctrl-C. Safe: the arrays
// the work reads and writes are owned by the caller's frame (inputs kept
// alive by its references, outputs new), and the core touches no Python
// object; the interrupt check takes the GIL back for its own short call.
template <class Fn>
void run_without_gil(Fn&& fn) {
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

std::size_t dim(const py::array& a, py::ssize_t k) { return static_cast<std::size_t>(a.shape(k)); }

void require_stack(const py::array& a, const char* name) {
  if (a.ndim() != 3)
    throw std::invalid_argument(std::string(name) + " must be a 3D array (n, ny, nx), got " +
                                std::to_string(a.ndim()) + "D");
  if (a.shape(1) < 2 || a.shape(2) < 2)
    throw std::invalid_argument(std::string(name) + " images must be at least 2 x 2 pixels");
}

void require_same_box(const py::array& a, const py::array& b) {
  if (a.shape(1) != b.shape(1) || a.shape(2) != b.shape(2))
    throw std::invalid_argument("references and images must have the same (ny, nx) box");
}

void require_pairs(const DoubleArray& s, std::size_t n, const char* name) {
  if (s.ndim() != 2 || dim(s, 0) != n || s.shape(1) != 2)
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(n) +
                                ", 2)");
}

BandPass make_bandpass(std::optional<double> lowpass, std::optional<double> highpass,
                       double edge) {
  BandPass bp;
  bp.lowpass = lowpass.value_or(0.0);
  bp.highpass = highpass.value_or(0.0);
  bp.edge = edge;
  check_bandpass(bp);
  return bp;
}

RegisterParams make_params(int upsample, std::optional<double> max_shift,
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
py::tuple registration_outputs(std::size_t n, Fn&& fn) {
  py::array_t<double> shifts({static_cast<py::ssize_t>(n), py::ssize_t{2}});
  py::array_t<double> scores(static_cast<py::ssize_t>(n));
  py::array_t<std::int32_t> best(static_cast<py::ssize_t>(n));
  double* sp = shifts.mutable_data();
  double* cp = scores.mutable_data();
  std::int32_t* bp = best.mutable_data();
  run_without_gil([&] { fn(sp, cp, bp); });
  return py::make_tuple(shifts, scores, best);
}

py::tuple py_register(const FloatArray& refs, const FloatArray& images, int upsample,
                      std::optional<double> max_shift, std::optional<double> lowpass,
                      std::optional<double> highpass, double edge, bool phase, bool crop,
                      bool coarse, int threads) {
  require_stack(refs, "references");
  require_stack(images, "images");
  require_same_box(refs, images);
  const std::size_t n = dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  const RegisterParams p =
      make_params(upsample, max_shift, lowpass, highpass, edge, phase, crop, coarse, threads);
  check_register_params(p, ny, nx);
  const float* rp = refs.data();
  const float* ip = images.data();
  const std::size_t n_refs = dim(refs, 0);
  return registration_outputs(n, [&](double* sp, double* cp, std::int32_t* bp) {
    register_stack(rp, n_refs, ip, n, ny, nx, p, sp, cp, bp);
  });
}

// Runs a prepared rotational search on a stack of images of its box.
py::tuple run_rotational(const RotationalSearch& search, const FloatArray& images, int threads,
                         const std::optional<DoubleArray>& prior_angles,
                         const std::optional<DoubleArray>& prior_shifts) {
  require_stack(images, "images");
  if (dim(images, 1) != search.ny() || dim(images, 2) != search.nx())
    throw std::invalid_argument("images must have the references' box (" + std::to_string(search.ny()) + ", " +
                                std::to_string(search.nx()) + "), got (" + std::to_string(dim(images, 1)) +
                                ", " + std::to_string(dim(images, 2)) + ")");
  const std::size_t n = dim(images, 0);
  if (prior_angles.has_value() != prior_shifts.has_value())
    throw std::invalid_argument("prior_angles and prior_shifts go together");
  if (prior_angles && (prior_angles->ndim() != 1 || dim(*prior_angles, 0) != n))
    throw std::invalid_argument("prior_angles must have shape (" + std::to_string(n) + ",)");
  if (prior_shifts) require_pairs(*prior_shifts, n, "prior_shifts");
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  const double* pa = prior_angles ? prior_angles->data() : nullptr;
  const double* ps = prior_shifts ? prior_shifts->data() : nullptr;
  py::array_t<double> shifts({static_cast<py::ssize_t>(n), py::ssize_t{2}});
  py::array_t<double> angles(static_cast<py::ssize_t>(n));
  py::array_t<double> scores(static_cast<py::ssize_t>(n));
  py::array_t<std::int32_t> best(static_cast<py::ssize_t>(n));
  const float* ip = images.data();
  double* sp = shifts.mutable_data();
  double* ap = angles.mutable_data();
  double* cp = scores.mutable_data();
  std::int32_t* bp = best.mutable_data();
  run_without_gil([&] { search.run(ip, n, threads, sp, ap, cp, bp, pa, ps); });
  return py::make_tuple(shifts, angles, scores, best);
}

std::unique_ptr<RotationalSearch> make_rotational(const FloatArray& refs, double angular_step, int upsample,
                                                  std::optional<double> max_shift, std::optional<double> lowpass,
                                                  std::optional<double> highpass, double edge, bool coarse) {
  require_stack(refs, "references");
  const std::size_t ny = dim(refs, 1), nx = dim(refs, 2);
  const RegisterParams p = make_params(upsample, max_shift, lowpass, highpass, edge, false, true, coarse, 1);
  check_register_params(p, ny, nx);
  const float* rp = refs.data();
  const std::size_t n_refs = dim(refs, 0);
  std::unique_ptr<RotationalSearch> search;
  run_without_gil([&] { search.reset(new RotationalSearch(rp, n_refs, ny, nx, p, angular_step)); });
  return search;
}

py::tuple py_register_rotate(const FloatArray& refs, const FloatArray& images, double angular_step,
                             int upsample, std::optional<double> max_shift,
                             std::optional<double> lowpass, std::optional<double> highpass,
                             double edge, bool coarse, int threads,
                             std::optional<DoubleArray> prior_angles,
                             std::optional<DoubleArray> prior_shifts) {
  require_stack(refs, "references");
  require_stack(images, "images");
  require_same_box(refs, images);
  const auto search = make_rotational(refs, angular_step, upsample, max_shift, lowpass, highpass, edge, coarse);
  return run_rotational(*search, images, threads, prior_angles, prior_shifts);
}

// A 1D index into a stack of n images, every entry checked.
const std::int64_t* checked_index(const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& index,
                                  std::size_t n) {
  if (index.ndim() != 1) throw std::invalid_argument("index must be 1D");
  const std::int64_t* xp = index.data();
  for (py::ssize_t k = 0; k < index.shape(0); ++k)
    if (xp[k] < 0 || static_cast<std::size_t>(xp[k]) >= n)
      throw std::invalid_argument("index " + std::to_string(xp[k]) + " is out of range for " +
                                  std::to_string(n) + " images");
  return xp;
}

std::string shape_str(std::size_t a, std::size_t b, std::size_t c) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ")";
}

// The layout of cached half spectra (n, rows, cols) of (ny, nx) images:
// whole, (n, ny, nx//2+1), or cropped to the low frequencies,
// (n, 2*ky+1, kx+1) with fewer rows and columns (forward_stack(crop=...)).
SpectrumLayout layout_of(const ComplexArrayPy& spectra, std::size_t ny, std::size_t nx) {
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
SpectrumLayout check_spectra(const FloatArray& refs, const ComplexArrayPy& spectra, std::size_t nx) {
  require_stack(refs, "references");
  if (dim(refs, 2) != nx)
    throw std::invalid_argument("references must be " + std::to_string(nx) + " pixels wide (nx), got " +
                                std::to_string(dim(refs, 2)));
  return layout_of(spectra, dim(refs, 1), nx);
}

py::tuple py_register_spectra(const FloatArray& refs, const ComplexArrayPy& spectra,
                              std::size_t nx, int upsample, std::optional<double> max_shift,
                              std::optional<double> lowpass, std::optional<double> highpass,
                              double edge, bool phase, bool crop, bool coarse, int threads) {
  const SpectrumLayout layout = check_spectra(refs, spectra, nx);
  const std::size_t n = dim(spectra, 0);
  const RegisterParams p =
      make_params(upsample, max_shift, lowpass, highpass, edge, phase, crop, coarse, threads);
  check_register_params(p, layout.ny, nx);
  const float* rp = refs.data();
  const cfloat* fp = spectra.data();
  const std::size_t n_refs = dim(refs, 0);
  return registration_outputs(n, [&](double* sp, double* cp, std::int32_t* bp) {
    register_spectra(rp, n_refs, fp, layout, n, p, sp, cp, bp);
  });
}

py::tuple py_register_accumulate_spectra(
    const FloatArray& refs, const ComplexArrayPy& spectra, std::size_t nx,
    const py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>& groups,
    py::array_t<std::complex<double>, py::array::c_style> sums, double band,
    std::optional<DoubleArray> prior, std::size_t class_stride, int upsample,
    std::optional<double> max_shift, std::optional<double> lowpass, std::optional<double> highpass,
    double edge, bool phase, bool crop, bool coarse, int threads) {
  const SpectrumLayout layout = check_spectra(refs, spectra, nx);
  const std::size_t ny = layout.ny, n = dim(spectra, 0);
  if (groups.ndim() != 1 || dim(groups, 0) != n)
    throw std::invalid_argument("groups must have shape (" + std::to_string(n) + ",)");
  if (sums.ndim() != 3 || dim(sums, 1) != ny || dim(sums, 2) != nx / 2 + 1 || !sums.writeable())
    throw std::invalid_argument("sums must be a writeable complex128 array of shape (groups, " +
                                std::to_string(ny) + ", " + std::to_string(nx / 2 + 1) + ")");
  if (!(band > 0.0)) throw std::invalid_argument("band must be > 0 cycles/px");
  if (prior) require_pairs(*prior, n, "prior");
  const double* pp = prior ? prior->data() : nullptr;
  const RegisterParams p =
      make_params(upsample, max_shift, lowpass, highpass, edge, phase, crop, coarse, threads);
  check_register_params(p, ny, nx);
  const float* rp = refs.data();
  const cfloat* fp = spectra.data();
  const std::int32_t* gp = groups.data();
  std::complex<double>* op = sums.mutable_data();
  const std::size_t n_refs = dim(refs, 0), n_groups = dim(sums, 0);
  return registration_outputs(n, [&](double* sp, double* cp, std::int32_t* bp) {
    register_accumulate_spectra(rp, n_refs, fp, layout, n, p, gp, n_groups, class_stride, band, pp, sp, cp, bp,
                                op);
  });
}

py::array_t<std::complex<float>> py_forward(
    const FloatArray& images, int threads,
    std::optional<py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>> index,
    std::optional<py::array_t<std::complex<float>, py::array::c_style>> out_arg,
    std::optional<std::pair<std::size_t, std::size_t>> crop) {
  require_stack(images, "images");
  const std::size_t ny = dim(images, 1), nx = dim(images, 2);
  const SpectrumLayout layout = crop ? SpectrumLayout::cropped(ny, nx, crop->first, crop->second)
                                     : SpectrumLayout::whole(ny, nx);
  std::size_t n = dim(images, 0);
  const std::int64_t* xp = index ? checked_index(*index, n) : nullptr;
  if (index) n = dim(*index, 0);
  py::array_t<std::complex<float>> out;
  if (out_arg) {  // written in place (e.g. a slice of a spectra cache): no second copy
    out = *out_arg;
    if (out.ndim() != 3 || dim(out, 0) != n || dim(out, 1) != layout.rows || dim(out, 2) != layout.cols ||
        !out.writeable())
      throw std::invalid_argument("out must be a writeable C-contiguous complex64 array of shape " +
                                  shape_str(n, layout.rows, layout.cols));
  } else {
    out = py::array_t<std::complex<float>>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(layout.rows),
                                            static_cast<py::ssize_t>(layout.cols)});
  }
  const float* ip = images.data();
  cfloat* op = out.mutable_data();
  run_without_gil([&] { forward_stack(ip, n, layout, threads, op, xp); });
  return out;
}

py::tuple py_search_extent(std::size_t ny, std::size_t nx, double band, int upsample,
                           std::optional<double> lowpass, std::optional<double> highpass, double edge,
                           bool crop, bool coarse) {
  const RegisterParams p =
      make_params(upsample, std::nullopt, lowpass, highpass, edge, false, crop, coarse, 1);
  std::size_t ky = 0, kx = 0;
  search_extent(ny, nx, p, band, ky, kx);
  return py::make_tuple(ky, kx);
}

void py_accumulate_spectra(const ComplexArrayPy& spectra, std::size_t nx,
                           std::optional<DoubleArray> shifts, std::optional<DoubleArray> weights,
                           py::array_t<std::complex<double>, py::array::c_style> sum, int threads,
                           double band) {
  if (sum.ndim() != 2 || dim(sum, 1) != nx / 2 + 1 || !sum.writeable())
    throw std::invalid_argument("sum must be a writeable complex128 (ny, nx // 2 + 1) array");
  const SpectrumLayout layout = layout_of(spectra, dim(sum, 0), nx);
  const std::size_t n = dim(spectra, 0);
  if (shifts) require_pairs(*shifts, n, "shifts");
  if (weights && (weights->ndim() != 1 || dim(*weights, 0) != n))
    throw std::invalid_argument("weights must have shape (" + std::to_string(n) + ",)");
  const cfloat* fp = spectra.data();
  const double* sp = shifts ? shifts->data() : nullptr;
  const double* wp = weights ? weights->data() : nullptr;
  std::complex<double>* out = sum.mutable_data();
  run_without_gil([&] { accumulate_spectra(fp, layout, n, sp, wp, threads, out, band); });
}

void py_accumulate_images_spectra(
    const FloatArray& images, std::optional<DoubleArray> shifts, std::optional<DoubleArray> weights,
    py::array_t<std::complex<double>, py::array::c_style> sum, int threads, double band,
    std::optional<py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>> index) {
  require_stack(images, "images");
  const std::size_t ny = dim(images, 1), nx = dim(images, 2);
  std::size_t n = dim(images, 0);
  const std::int64_t* xp = index ? checked_index(*index, n) : nullptr;
  if (index) n = dim(*index, 0);
  if (shifts) require_pairs(*shifts, n, "shifts");
  if (weights && (weights->ndim() != 1 || dim(*weights, 0) != n))
    throw std::invalid_argument("weights must have shape (" + std::to_string(n) + ",)");
  if (sum.ndim() != 2 || dim(sum, 0) != ny || dim(sum, 1) != nx / 2 + 1 || !sum.writeable())
    throw std::invalid_argument("sum must be a writeable complex128 (ny, nx // 2 + 1) array");
  const float* ip = images.data();
  const double* sp = shifts ? shifts->data() : nullptr;
  const double* wp = weights ? weights->data() : nullptr;
  std::complex<double>* out = sum.mutable_data();
  run_without_gil([&] { accumulate_images_spectra(ip, n, ny, nx, sp, wp, threads, out, band, xp); });
}

py::array_t<float> py_correlation_maps(const FloatArray& ref, const FloatArray& images,
                                       std::optional<double> lowpass,
                                       std::optional<double> highpass, double edge, bool phase,
                                       int threads) {
  require_stack(images, "images");
  if (ref.ndim() != 2 || ref.shape(0) != images.shape(1) || ref.shape(1) != images.shape(2))
    throw std::invalid_argument("reference must be a 2D array with the images' (ny, nx) box");
  const BandPass bp = make_bandpass(lowpass, highpass, edge);
  const std::size_t n = dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  py::array_t<float> out({images.shape(0), images.shape(1), images.shape(2)});
  const float* rp = ref.data();
  const float* ip = images.data();
  float* op = out.mutable_data();
  run_without_gil([&] { correlation_maps(rp, ip, n, ny, nx, bp, phase, threads, op); });
  return out;
}

py::array_t<float> py_shift(const FloatArray& images, const DoubleArray& shifts, int threads) {
  require_stack(images, "images");
  const std::size_t n = dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  require_pairs(shifts, n, "shifts");
  py::array_t<float> out({images.shape(0), images.shape(1), images.shape(2)});
  const float* ip = images.data();
  const double* sp = shifts.data();
  float* op = out.mutable_data();
  run_without_gil([&] { shift_stack(ip, n, ny, nx, sp, threads, op); });
  return out;
}

void py_accumulate(const FloatArray& images, std::optional<DoubleArray> shifts,
                   std::optional<DoubleArray> weights,
                   py::array_t<double, py::array::c_style> sum,
                   std::optional<py::array_t<double, py::array::c_style>> sumsq, int threads,
                   std::optional<DoubleArray> angles) {
  require_stack(images, "images");
  const std::size_t n = dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  if (shifts) require_pairs(*shifts, n, "shifts");
  if (weights && (weights->ndim() != 1 || dim(*weights, 0) != n))
    throw std::invalid_argument("weights must have shape (" + std::to_string(n) + ",)");
  auto check_plane = [&](const py::array& a, const char* name) {
    if (a.ndim() != 2 || dim(a, 0) != ny || dim(a, 1) != nx || !a.writeable())
      throw std::invalid_argument(std::string(name) + " must be a writeable float64 (" +
                                  std::to_string(ny) + ", " + std::to_string(nx) + ") array");
  };
  check_plane(sum, "sum");
  if (sumsq) check_plane(*sumsq, "sumsq");
  if (angles && (angles->ndim() != 1 || dim(*angles, 0) != n))
    throw std::invalid_argument("angles must have shape (" + std::to_string(n) + ",)");
  const double* ap = angles ? angles->data() : nullptr;
  const float* ip = images.data();
  const double* sp = shifts ? shifts->data() : nullptr;
  const double* wp = weights ? weights->data() : nullptr;
  double* sump = sum.mutable_data();
  double* sqp = sumsq ? sumsq->mutable_data() : nullptr;
  run_without_gil([&] { accumulate(ip, n, ny, nx, sp, wp, threads, sump, sqp, ap); });
}

py::array_t<float> py_transform(const FloatArray& images, const DoubleArray& angles,
                                std::optional<DoubleArray> shifts, bool inverse, int threads) {
  require_stack(images, "images");
  const std::size_t n = dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  if (angles.ndim() != 1 || dim(angles, 0) != n)
    throw std::invalid_argument("angles must have shape (" + std::to_string(n) + ",)");
  if (shifts) require_pairs(*shifts, n, "shifts");
  py::array_t<float> out({images.shape(0), images.shape(1), images.shape(2)});
  const float* ip = images.data();
  const double* ap = angles.data();
  const double* sp = shifts ? shifts->data() : nullptr;
  float* op = out.mutable_data();
  run_without_gil([&] { transform_stack(ip, n, ny, nx, ap, sp, inverse, threads, op); });
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "cryocore's compiled core (private; use the cryocore package).";
#ifdef CRYOCORE_VERSION
  m.attr("__version__") = CRYOCORE_VERSION;
#endif
  m.attr("fftw_version") = cryocore::fftw_version();

  m.def("register_stack", &py_register, py::arg("references"), py::arg("images"),
        py::arg("upsample") = 20, py::arg("max_shift") = py::none(),
        py::arg("lowpass") = py::none(), py::arg("highpass") = py::none(),
        py::arg("edge") = 0.02, py::arg("phase") = false, py::arg("crop") = true,
        py::arg("coarse") = true, py::arg("threads") = 1,
        "Registers images (n, ny, nx) against references (k, ny, nx). Returns "
        "(shifts (n, 2) float64 (dy, dx), scores (n,) float64, best reference (n,) int32).");
  py::class_<RotationalSearch>(m, "RotationalSearch",
                               "register_rotate with its references prepared once, for many stacks "
                               "(chunks): the reference's rotations are made on first use and kept.")
      .def(py::init(&make_rotational), py::arg("references"), py::arg("angular_step") = 1.0,
           py::arg("upsample") = 20, py::arg("max_shift") = py::none(), py::arg("lowpass") = py::none(),
           py::arg("highpass") = py::none(), py::arg("edge") = 0.02, py::arg("coarse") = true)
      .def("register", &run_rotational, py::arg("images"), py::arg("threads") = 1,
           py::arg("prior_angles") = py::none(), py::arg("prior_shifts") = py::none(),
           "(shifts (n, 2), angles (n,), scores (n,), best reference (n,)) of images against the "
           "prepared references: the same as register_rotate with the same arguments.");
  m.def("register_rotate", &py_register_rotate, py::arg("references"), py::arg("images"),
        py::arg("angular_step") = 1.0, py::arg("upsample") = 20, py::arg("max_shift") = py::none(),
        py::arg("lowpass") = py::none(), py::arg("highpass") = py::none(), py::arg("edge") = 0.02,
        py::arg("coarse") = true, py::arg("threads") = 1, py::arg("prior_angles") = py::none(),
        py::arg("prior_shifts") = py::none(),
        "Rotational + translational registration against references (k, ny, nx). Returns "
        "(shifts (n, 2), angles (n,) degrees in [0, 360), scores (n,), best reference (n,)). "
        "prior_angles (n,) and prior_shifts (n, 2), one reference: where finite, a local search "
        "from that pose.");
  m.def("register_spectra", &py_register_spectra, py::arg("references"), py::arg("spectra"),
        py::arg("nx"), py::arg("upsample") = 20, py::arg("max_shift") = py::none(),
        py::arg("lowpass") = py::none(), py::arg("highpass") = py::none(),
        py::arg("edge") = 0.02, py::arg("phase") = false, py::arg("crop") = true,
        py::arg("coarse") = true, py::arg("threads") = 1,
        "register_stack from cached half spectra (n, ny, nx//2+1) made by forward_stack.");
  m.def("register_accumulate_spectra", &py_register_accumulate_spectra, py::arg("references"),
        py::arg("spectra"), py::arg("nx"), py::arg("groups"), py::arg("sums").noconvert(),
        py::arg("band") = 0.5, py::arg("prior") = py::none(), py::arg("class_stride") = 0,
        py::arg("upsample") = 20, py::arg("max_shift") = py::none(), py::arg("lowpass") = py::none(),
        py::arg("highpass") = py::none(), py::arg("edge") = 0.02, py::arg("phase") = false,
        py::arg("crop") = true, py::arg("coarse") = true, py::arg("threads") = 1,
        "register_spectra, and in the same pass each image's band (accumulate_spectra, moved back "
        "by its new shift, weight 1) added to sums[groups[i] + best[i] * class_stride] in place "
        "(groups[i] < 0: none). prior (n, 2): where finite, a local search from that shift instead "
        "of the full one.");
  m.def("forward_stack", &py_forward, py::arg("images"), py::arg("threads") = 1,
        py::arg("index") = py::none(), py::arg("out") = py::none(), py::arg("crop") = py::none(),
        "Half spectra (n, ny, nx//2+1) complex64 of a stack (unnormalised r2c); with index, "
        "of images[index] only; with out, written into that array (returned); with crop=(ky, kx), "
        "only the frequencies |ky| <= ky, kx <= kx: (n, 2*ky+1, kx+1), rows 0..ky then -ky..-1.");
  m.def("search_extent", &py_search_extent, py::arg("ny"), py::arg("nx"), py::arg("band") = 0.0,
        py::arg("upsample") = 20, py::arg("lowpass") = py::none(), py::arg("highpass") = py::none(),
        py::arg("edge") = 0.02, py::arg("crop") = true, py::arg("coarse") = true,
        "(ky, kx): the largest |ky| and kx of an image spectrum that register_spectra reads with "
        "these parameters (ny//2, nx//2: all), and with band > 0 register_accumulate_spectra too: "
        "what a cropped spectra cache must hold.");
  m.def("accumulate_spectra", &py_accumulate_spectra, py::arg("spectra"), py::arg("nx"),
        py::arg("shifts"), py::arg("weights"), py::arg("sum").noconvert(), py::arg("threads") = 1,
        py::arg("band") = 0.5,
        "Adds half spectra moved back by their shifts, weighted, into sum (complex128) in place; "
        "band < 0.5 cycles/px adds only the rows and columns within it.");
  m.def("accumulate_images_spectra", &py_accumulate_images_spectra, py::arg("images"), py::arg("shifts"),
        py::arg("weights"), py::arg("sum").noconvert(), py::arg("threads") = 1, py::arg("band") = 0.5,
        py::arg("index") = py::none(),
        "accumulate_spectra from the images (n, ny, nx), each transformed on the fly: the same sums "
        "as forward_stack + accumulate_spectra without storing the spectra; with index, of "
        "images[index] (shifts and weights per index entry).");
  m.def("correlation_maps", &py_correlation_maps, py::arg("reference"), py::arg("images"),
        py::arg("lowpass") = py::none(), py::arg("highpass") = py::none(),
        py::arg("edge") = 0.02, py::arg("phase") = false, py::arg("threads") = 1,
        "Normalised circular cross-correlation maps (n, ny, nx), unshifted layout.");
  m.def("shift_stack", &py_shift, py::arg("images"), py::arg("shifts"), py::arg("threads") = 1,
        "Moves each image by its (dy, dx) shift (pose convention), in Fourier space.");
  m.def("transform_stack", &py_transform, py::arg("images"), py::arg("angles"),
        py::arg("shifts") = py::none(), py::arg("inverse") = false, py::arg("threads") = 1,
        "Applies poses (rotate by angles in degrees, then shift) by bicubic interpolation; "
        "inverse=True brings images back onto their reference.");
  m.def("accumulate", &py_accumulate, py::arg("images"), py::arg("shifts"), py::arg("weights"),
        py::arg("sum").noconvert(), py::arg("sumsq").noconvert(), py::arg("threads") = 1,
        py::arg("angles") = py::none(),
        "Adds images moved back by their shifts, weighted, into sum (and sumsq) in place.");

  m.def("set_planning_effort", [](int e) {
    if (e < 0 || e > 3) throw std::invalid_argument("planning effort must be 0..3");
    set_planning_effort(static_cast<PlanEffort>(e));
  }, py::arg("effort"), "Sets FFTW's planning effort: 0 estimate, 1 measure, 2 patient, 3 exhaustive.");
  m.def("planning_effort", [] { return static_cast<int>(planning_effort()); },
        "The current FFTW planning effort (0..3).");
  m.def("export_wisdom", [] { return py::bytes(export_wisdom()); },
        "FFTW's accumulated wisdom (single precision) as bytes.");
  m.def("import_wisdom", [](const py::bytes& b) { return import_wisdom(std::string(b)); },
        py::arg("wisdom"), "Adds wisdom from export_wisdom(); returns False if FFTW rejects it.");
  m.def("forget_wisdom", &forget_wisdom, "Discards FFTW's wisdom.");
  m.def("clear_plan_cache", &clear_plan_cache, "Drops cryocore's cached FFTW plans.");
  m.def("plan_cache_size", &plan_cache_size, "Number of cached plan pairs.");
}
