// Bindings of the CTF: ctf_planes, ctf_filter, accumulate_ctf2.
#include "common.hpp"

#include "ctf.hpp"

namespace cryocore {
namespace bindings {
namespace {

void require_vector(const std::optional<DoubleArray>& a, std::size_t n, const char* name) {
  if (a && (a->ndim() != 1 || dim(*a, 0) != n))
    throw std::invalid_argument(std::string(name) + " must have shape (" + std::to_string(n) + ",)");
}

py::array_t<float> py_ctf_planes(const DoubleArray& params, std::size_t ny, std::size_t nx, double pixel_size_A,
                                 std::optional<DoubleArray> angles, bool squared, int threads, bool intact_first_peak) {
  const std::size_t n = params.ndim() == 2 ? dim(params, 0) : 0;
  require_ctf_params(params, n);
  require_vector(angles, n, "angles");
  if (ny < 1 || nx < 1) throw std::invalid_argument("the box must be at least 1 x 1 pixels");
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(ny),
                          static_cast<py::ssize_t>(nx / 2 + 1)});
  const double* pp = params.data();
  const double* ap = angles ? angles->data() : nullptr;
  float* op = out.mutable_data();
  const CtfRows rows{pp, pixel_size_A, intact_first_peak};
  run_without_gil([&] { ctf_planes(rows, ap, n, ny, nx, squared, threads, op); });
  return out;
}

py::array_t<float> py_ctf_filter(const FloatArray& images, const DoubleArray& params, double pixel_size_A, int threads,
                                 std::optional<IndexArray> index, bool intact_first_peak) {
  require_stack(images, "images");
  const std::int64_t* xp = index ? checked_index(*index, dim(images, 0)) : nullptr;
  const std::size_t n = index ? dim(*index, 0) : dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  require_ctf_params(params, n);
  py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(ny), static_cast<py::ssize_t>(nx)});
  const float* ip = images.data();
  const double* pp = params.data();
  float* op = out.mutable_data();
  const CtfRows rows{pp, pixel_size_A, intact_first_peak};
  run_without_gil([&] { ctf_filter_stack(ip, n, ny, nx, rows, threads, op, xp); });
  return out;
}

void py_accumulate_ctf2(const DoubleArray& params, const DoubleArray& weights,
                        const py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>& groups,
                        py::array_t<double, py::array::c_style> out, std::size_t nx, double pixel_size_A, double band,
                        std::optional<DoubleArray> angles, int threads, bool intact_first_peak) {
  const std::size_t n = params.ndim() == 2 ? dim(params, 0) : 0;
  require_ctf_params(params, n);
  require_vector(weights, n, "weights");
  require_vector(angles, n, "angles");
  if (groups.ndim() != 1 || dim(groups, 0) != n)
    throw std::invalid_argument("groups must have shape (" + std::to_string(n) + ",)");
  if (out.ndim() != 3 || !out.writeable())
    throw std::invalid_argument("out must be a writeable float64 (n_groups, ny, nx // 2 + 1) array");
  const std::size_t G = dim(out, 0), ny = dim(out, 1), nxh = dim(out, 2);
  if (ny < 1 || nx < 1 || nxh != nx / 2 + 1)
    throw std::invalid_argument("out must have shape (n_groups, ny, nx // 2 + 1) with nx = " + std::to_string(nx));
  const double* pp = params.data();
  const double* wp = weights.data();
  const double* ap = angles ? angles->data() : nullptr;
  const std::int32_t* gp = groups.data();
  double* op = out.mutable_data();
  const CtfRows rows{pp, pixel_size_A, intact_first_peak};
  run_without_gil([&] { accumulate_ctf2(rows, ap, wp, gp, n, G, ny, nx, band, threads, op); });
}

}  // namespace

void bind_ctf(py::module_& m) {
  m.def("ctf_planes", &py_ctf_planes, py::arg("params"), py::arg("ny"), py::arg("nx"), py::arg("pixel_size_A"),
        py::arg("angles") = py::none(), py::arg("squared") = false, py::arg("threads") = 1,
        py::arg("intact_first_peak") = false,
        "Each particle's CTF (params (n, 9), RELION's units) on the half spectrum (n, ny, nx//2+1) float32, "
        "turned into the reference frame by angles (psi, degrees); squared: CTF^2; intact_first_peak: 1 before "
        "the first peak (RELION's --ctf_intact_first_peak).");
  m.def("ctf_filter", &py_ctf_filter, py::arg("images"), py::arg("params"), py::arg("pixel_size_A"),
        py::arg("threads") = 1, py::arg("index") = py::none(), py::arg("intact_first_peak") = false,
        "Each image (n, ny, nx) filtered by its own CTF (params (n, 9)), computed on the fly: the inverse FFT "
        "of CTF_i F_i; with index, images[index] (one row of params per index entry).");
  m.def("accumulate_ctf2", &py_accumulate_ctf2, py::arg("params"), py::arg("weights"), py::arg("groups"),
        py::arg("out").noconvert(), py::arg("nx"), py::arg("pixel_size_A"), py::arg("band") = 0.5, py::arg("angles") = py::none(),
        py::arg("threads") = 1, py::arg("intact_first_peak") = false,
        "Adds weights[i] * CTF_i^2 (turned by angles[i]) to out[groups[i]] (n_groups, ny, nx//2+1) float64 in "
        "place, within the band (cycles/px per axis); group < 0 or weight 0 skips a particle.");
}

}  // namespace bindings
}  // namespace cryocore
