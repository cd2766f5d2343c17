// Bindings of the image transforms: shift_stack, transform_stack, accumulate.
#include "common.hpp"

#include "accumulate.hpp"
#include "normalize.hpp"
#include "rotate.hpp"
#include "shift.hpp"

namespace cryocore {
namespace bindings {
namespace {

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
                   std::optional<DoubleArray> angles, std::optional<IndexArray> index) {
  require_stack(images, "images");
  const std::int64_t* xp = index ? checked_index(*index, dim(images, 0)) : nullptr;
  const std::size_t n = index ? dim(*index, 0) : dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
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
  run_without_gil([&] { accumulate(ip, n, ny, nx, sp, wp, threads, sump, sqp, ap, xp); });
}

py::array_t<float> py_normalize(const FloatArray& images, double radius_px, bool invert, std::optional<double> hot_sigma,
                                bool normalize, int threads, std::optional<IndexArray> index) {
  require_stack(images, "images");
  const std::int64_t* xp = index ? checked_index(*index, dim(images, 0)) : nullptr;
  const std::size_t n = index ? dim(*index, 0) : dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  if (hot_sigma && !(*hot_sigma > 0.0)) throw std::invalid_argument("hot_sigma must be > 0 (or None)");
  NormalizeParams p;
  p.radius_px = radius_px;
  p.invert = invert;
  p.hot_sigma = hot_sigma ? *hot_sigma : 0.0;
  p.normalize = normalize;
  p.threads = threads;
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(ny), static_cast<py::ssize_t>(nx)});
  const float* ip = images.data();
  float* op = out.mutable_data();
  run_without_gil([&] { normalize_stack(ip, n, ny, nx, p, op, xp); });
  return out;
}

py::array_t<float> py_fourier_crop(const FloatArray& images, std::size_t my, std::size_t mx, int threads,
                                   std::optional<IndexArray> index) {
  require_stack(images, "images");
  const std::int64_t* xp = index ? checked_index(*index, dim(images, 0)) : nullptr;
  const std::size_t n = index ? dim(*index, 0) : dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(my), static_cast<py::ssize_t>(mx)});
  const float* ip = images.data();
  float* op = out.mutable_data();
  run_without_gil([&] { fourier_crop_stack(ip, n, ny, nx, my, mx, threads, op, xp); });
  return out;
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

void bind_transforms(py::module_& m) {
  m.def("shift_stack", &py_shift, py::arg("images"), py::arg("shifts"), py::arg("threads") = 1,
        "Moves each image by its (dy, dx) shift (pose convention), in Fourier space.");
  m.def("normalize_stack", &py_normalize, py::arg("images"), py::arg("radius_px"), py::arg("invert") = false,
        py::arg("hot_sigma") = py::none(), py::arg("normalize") = true, py::arg("threads") = 1,
        py::arg("index") = py::none(),
        "RELION's real-space preprocessing of each image: inversion, hot pixels beyond hot_sigma background "
        "deviations set to the background mean, the background (farther than radius_px from (ny/2, nx/2)) "
        "to zero mean and unit deviation. float32 (n, ny, nx).");
  m.def("fourier_crop", &py_fourier_crop, py::arg("images"), py::arg("ny"), py::arg("nx"), py::arg("threads") = 1,
        py::arg("index") = py::none(),
        "Images (n, ny0, nx0) resampled to (ny, nx) by cutting their spectra (binning); an even crop's Nyquist "
        "row and column gather both frequencies they stand for. float32 (n, ny, nx).");
  m.def("transform_stack", &py_transform, py::arg("images"), py::arg("angles"),
        py::arg("shifts") = py::none(), py::arg("inverse") = false, py::arg("threads") = 1,
        "Applies poses (rotate by angles in degrees, then shift) by bicubic interpolation; "
        "inverse=True brings images back onto their reference.");
  m.def("accumulate", &py_accumulate, py::arg("images"), py::arg("shifts"), py::arg("weights"),
        py::arg("sum").noconvert(), py::arg("sumsq").noconvert(), py::arg("threads") = 1,
        py::arg("angles") = py::none(), py::arg("index") = py::none(),
        "Adds images moved back by their shifts, weighted, into sum (and sumsq) in place; with index, "
        "images[index] only (no copy; shifts, weights and angles per index entry). A zero weight "
        "skips its image unread.");
}

}  // namespace bindings
}  // namespace cryocore
