// Bindings of the images' spectra: forward_stack, accumulate_spectra, accumulate_images_spectra.
#include "common.hpp"

#include "accumulate.hpp"
#include "shift.hpp"

namespace cryocore {
namespace bindings {
namespace {

py::array_t<std::complex<float>> py_forward(
    const FloatArray& images, int threads,
    std::optional<py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>> index,
    std::optional<py::array_t<std::complex<float>, py::array::c_style>> out_arg,
    std::optional<std::pair<std::size_t, std::size_t>> crop, std::optional<DoubleArray> ctf,
    std::optional<double> pixel_size_A, bool intact_first_peak) {
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
  const std::optional<CtfRows> rows = ctf_rows(ctf, pixel_size_A, n, intact_first_peak);
  const CtfRows* cp = rows ? &*rows : nullptr;
  const float* ip = images.data();
  cfloat* op = out.mutable_data();
  run_without_gil([&] { forward_stack(ip, n, layout, threads, op, xp, cp); });
  return out;
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

}  // namespace

void bind_spectra(py::module_& m) {
  m.def("forward_stack", &py_forward, py::arg("images"), py::arg("threads") = 1,
        py::arg("index") = py::none(), py::arg("out") = py::none(), py::arg("crop") = py::none(),
        py::arg("ctf") = py::none(), py::arg("pixel_size_A") = py::none(), py::arg("intact_first_peak") = false,
        "Half spectra (n, ny, nx//2+1) complex64 of a stack (unnormalised r2c); with index, "
        "of images[index] only; with out, written into that array (returned); with crop=(ky, kx), "
        "only the frequencies |ky| <= ky, kx <= kx: (n, 2*ky+1, kx+1), rows 0..ky then -ky..-1; "
        "with ctf (n, 9) and pixel_size_A, each times its image's CTF (computed on the fly).");
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
}

}  // namespace bindings
}  // namespace cryocore
