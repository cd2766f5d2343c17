// Bindings of the searches: register_stack, register_rotate and RotationalSearch,
// register_spectra, register_accumulate_spectra, search_extent, correlation_maps.
#include "common.hpp"

#include <string>

#include "accumulate.hpp"
#include "correlation.hpp"

namespace cryocore {
namespace bindings {
namespace {

// The settings with the call's thread count, checked against the box.
RegisterParams with_threads(RegisterParams p, int threads, std::size_t ny, std::size_t nx) {
  p.threads = threads;
  check_register_params(p, ny, nx);
  return p;
}

py::tuple py_register(const FloatArray& refs, const FloatArray& images, const RegisterParams& settings,
                      int threads, std::optional<DoubleArray> ctf, std::optional<double> pixel_size_A,
                      bool intact_first_peak) {
  require_stack(refs, "references");
  require_stack(images, "images");
  require_same_box(refs, images);
  const std::size_t n = dim(images, 0), ny = dim(images, 1), nx = dim(images, 2);
  const RegisterParams p = with_threads(settings, threads, ny, nx);
  const float* rp = refs.data();
  const float* ip = images.data();
  const std::size_t n_refs = dim(refs, 0);
  const std::optional<CtfRows> rows = ctf_rows(ctf, pixel_size_A, n, intact_first_peak);
  const CtfRows* xp = rows ? &*rows : nullptr;
  return registration_outputs(n, [&](double* sp, double* cp, std::int32_t* bp) {
    register_stack(rp, n_refs, ip, n, ny, nx, p, sp, cp, bp, xp);
  });
}

// Runs a prepared rotational search on a stack of images of its box.
py::tuple run_rotational(const RotationalSearch& search, const FloatArray& images, int threads,
                         const std::optional<DoubleArray>& prior_angles,
                         const std::optional<DoubleArray>& prior_shifts,
                         const std::optional<IndexArray>& index, const std::optional<DoubleArray>& ctf,
                         std::optional<double> pixel_size_A,
                         std::optional<py::array_t<float, py::array::c_style>> filtered, bool intact_first_peak,
                         std::size_t candidates,
                         const std::optional<py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>>& prior_classes,
                         bool per_class) {
  require_stack(images, "images");
  if (dim(images, 1) != search.ny() || dim(images, 2) != search.nx())
    throw std::invalid_argument("images must have the references' box (" + std::to_string(search.ny()) + ", " +
                                std::to_string(search.nx()) + "), got (" + std::to_string(dim(images, 1)) +
                                ", " + std::to_string(dim(images, 2)) + ")");
  const std::int64_t* xp = index ? checked_index(*index, dim(images, 0)) : nullptr;
  const std::size_t n = index ? dim(*index, 0) : dim(images, 0);
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
  const std::optional<CtfRows> rows = ctf_rows(ctf, pixel_size_A, n, intact_first_peak);
  const CtfRows* rp = rows ? &*rows : nullptr;
  float* fp = nullptr;
  if (filtered) {
    if (!rows) throw std::invalid_argument("filtered needs ctf");
    if (filtered->ndim() != 3 || dim(*filtered, 0) != n || dim(*filtered, 1) != search.ny() ||
        dim(*filtered, 2) != search.nx() || !filtered->writeable())
      throw std::invalid_argument("filtered must be a writeable float32 array of shape " +
                                  shape_str(n, search.ny(), search.nx()));
    fp = filtered->mutable_data();
  }
  if (prior_classes && (prior_classes->ndim() != 1 || dim(*prior_classes, 0) != n))
    throw std::invalid_argument("prior_classes must have shape (" + std::to_string(n) + ",)");
  const std::int32_t* pcp = prior_classes ? prior_classes->data() : nullptr;
  if (!per_class) {
    run_without_gil([&] { search.run(ip, n, threads, sp, ap, cp, bp, pa, ps, xp, rp, fp, candidates, pcp); });
    return py::make_tuple(shifts, angles, scores, best);
  }
  const auto N = static_cast<py::ssize_t>(n);
  const auto C = static_cast<py::ssize_t>(search.classes_searched(candidates));
  py::array_t<double> c_shifts({N, C, py::ssize_t{2}});
  py::array_t<double> c_angles({N, C}), c_scores({N, C});
  py::array_t<std::int32_t> c_classes({N, C});
  const ClassPoses poses{static_cast<std::size_t>(C), c_shifts.mutable_data(), c_angles.mutable_data(),
                         c_scores.mutable_data(), c_classes.mutable_data()};
  run_without_gil([&] { search.run(ip, n, threads, sp, ap, cp, bp, pa, ps, xp, rp, fp, candidates, pcp, &poses); });
  return py::make_tuple(shifts, angles, scores, best, py::make_tuple(c_shifts, c_angles, c_scores, c_classes));
}

std::unique_ptr<RotationalSearch> make_rotational(const FloatArray& refs, const RegisterParams& settings,
                                                  double angular_step) {
  require_stack(refs, "references");
  if (settings.phase) throw std::invalid_argument("the rotational search has no phase correlation (phase=False)");
  const std::size_t ny = dim(refs, 1), nx = dim(refs, 2);
  const RegisterParams p = with_threads(settings, 1, ny, nx);
  const float* rp = refs.data();
  const std::size_t n_refs = dim(refs, 0);
  std::unique_ptr<RotationalSearch> search;
  run_without_gil([&] { search.reset(new RotationalSearch(rp, n_refs, ny, nx, p, angular_step)); });
  return search;
}

py::tuple py_register_rotate(const FloatArray& refs, const FloatArray& images, const RegisterParams& settings,
                             double angular_step, int threads, std::optional<DoubleArray> prior_angles,
                             std::optional<DoubleArray> prior_shifts, std::optional<DoubleArray> ctf,
                             std::optional<double> pixel_size_A, bool intact_first_peak) {
  require_stack(refs, "references");
  require_stack(images, "images");
  require_same_box(refs, images);
  const auto search = make_rotational(refs, settings, angular_step);
  return run_rotational(*search, images, threads, prior_angles, prior_shifts, std::nullopt, ctf, pixel_size_A,
                        std::nullopt, intact_first_peak, 0, std::nullopt, false);
}

py::tuple py_register_spectra(const FloatArray& refs, const ComplexArrayPy& spectra, std::size_t nx,
                              const RegisterParams& settings, int threads) {
  const SpectrumLayout layout = check_spectra(refs, spectra, nx);
  const std::size_t n = dim(spectra, 0);
  const RegisterParams p = with_threads(settings, threads, layout.ny, nx);
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
    std::optional<DoubleArray> prior, std::size_t class_stride, const RegisterParams& settings, int threads) {
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
  const RegisterParams p = with_threads(settings, threads, ny, nx);
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

py::tuple py_search_extent(std::size_t ny, std::size_t nx, const RegisterParams& settings, double band) {
  const RegisterParams p = with_threads(settings, 1, ny, nx);
  std::size_t ky = 0, kx = 0;
  search_extent(ny, nx, p, band, ky, kx);
  return py::make_tuple(ky, kx);
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

}  // namespace

std::string settings_repr(const RegisterParams& p) {
  auto opt = [](double v, bool on) { return on ? std::to_string(v) : std::string("None"); };
  return "SearchSettings(upsample=" + std::to_string(p.upsample) + ", max_shift=" +
         opt(p.max_shift, p.max_shift >= 0.0) + ", lowpass=" + opt(p.filter.lowpass, p.filter.lowpass > 0.0) +
         ", highpass=" + opt(p.filter.highpass, p.filter.highpass > 0.0) + ", edge=" + std::to_string(p.filter.edge) +
         ", phase=" + (p.phase ? "True" : "False") + ", crop=" + (p.crop ? "True" : "False") +
         ", coarse=" + (p.coarse ? "True" : "False") + ")";
}

void bind_search(py::module_& m) {
  // The translational search's settings, bound once and taken by every search.
  py::class_<RegisterParams>(m, "SearchSettings",
                             "How a translational search runs (also the rotational search's shift search): "
                             "upsample (sub-pixel factor), max_shift (px), lowpass/highpass/edge (cycles/px, "
                             "raised-cosine band-pass of both image and reference), phase (phase correlation for "
                             "the peak), crop (inverse FFT on the low-passed block), coarse (integer peak on the "
                             "correlation band-limited to 0.125 cycles/px).")
      .def(py::init([](int upsample, std::optional<double> max_shift, std::optional<double> lowpass,
                       std::optional<double> highpass, double edge, bool phase, bool crop, bool coarse) {
             if (upsample < 1) throw std::invalid_argument("upsample must be >= 1");
             if (max_shift && !(*max_shift >= 0.0)) throw std::invalid_argument("max_shift must be >= 0 px");
             return make_params(upsample, max_shift, lowpass, highpass, edge, phase, crop, coarse, 1);
           }),
           py::arg("upsample") = 20, py::arg("max_shift") = py::none(), py::arg("lowpass") = py::none(),
           py::arg("highpass") = py::none(), py::arg("edge") = 0.02, py::arg("phase") = false,
           py::arg("crop") = true, py::arg("coarse") = true)
      .def_property_readonly("upsample", [](const RegisterParams& p) { return p.upsample; })
      .def_property_readonly("max_shift", [](const RegisterParams& p) -> std::optional<double> {
        return p.max_shift >= 0.0 ? std::optional<double>(p.max_shift) : std::nullopt;
      })
      .def_property_readonly("lowpass", [](const RegisterParams& p) -> std::optional<double> {
        return p.filter.lowpass > 0.0 ? std::optional<double>(p.filter.lowpass) : std::nullopt;
      })
      .def_property_readonly("highpass", [](const RegisterParams& p) -> std::optional<double> {
        return p.filter.highpass > 0.0 ? std::optional<double>(p.filter.highpass) : std::nullopt;
      })
      .def_property_readonly("edge", [](const RegisterParams& p) { return p.filter.edge; })
      .def_property_readonly("phase", [](const RegisterParams& p) { return p.phase; })
      .def_property_readonly("crop", [](const RegisterParams& p) { return p.crop; })
      .def_property_readonly("coarse", [](const RegisterParams& p) { return p.coarse; })
      .def("__repr__", &settings_repr);
  const RegisterParams defaults = make_params(20, std::nullopt, std::nullopt, std::nullopt, 0.02, false, true, true, 1);

  m.def("register_stack", &py_register, py::arg("references"), py::arg("images"),
        py::arg("settings") = defaults, py::arg("threads") = 1, py::arg("ctf") = py::none(),
        py::arg("pixel_size_A") = py::none(), py::arg("intact_first_peak") = false,
        "Registers images (n, ny, nx) against references (k, ny, nx). Returns "
        "(shifts (n, 2) float64 (dy, dx), scores (n,) float64, best reference (n,) int32). "
        "ctf (n, 9) and pixel_size_A: each image multiplied by its CTF first.");
  py::class_<RotationalSearch>(m, "RotationalSearch",
                               "register_rotate with its references prepared once, for many stacks "
                               "(chunks): the reference's rotations are made on first use and kept.")
      .def(py::init(&make_rotational), py::arg("references"), py::arg("settings") = defaults,
           py::arg("angular_step") = 1.0)
      .def("register", &run_rotational, py::arg("images"), py::arg("threads") = 1,
           py::arg("prior_angles") = py::none(), py::arg("prior_shifts") = py::none(),
           py::arg("index") = py::none(), py::arg("ctf") = py::none(), py::arg("pixel_size_A") = py::none(),
           py::arg("filtered") = py::none(), py::arg("intact_first_peak") = false, py::arg("candidates") = 0,
           py::arg("prior_classes") = py::none(), py::arg("per_class") = false,
           "(shifts (n, 2), angles (n,), scores (n,), best reference (n,)) of images against the "
           "prepared references: the same as register_rotate with the same arguments; with index, "
           "of images[index] only (no copy), the priors and results per index entry. With ctf (n, 9) "
           "and pixel_size_A, each image is multiplied by its CTF before the search (CTF X against the "
           "references); filtered (a writeable float32 (n, ny, nx) array) then receives each CTF X. candidates > 0: "
           "the full search against only that many references per image, those whose power spectra's rotational "
           "correlation with the image's peaks highest. prior_classes (n,) int32 (several references): an image "
           "with a finite prior pose and prior class >= 0 is searched locally against that class only. "
           "per_class=True: every searched class is refined, and a fifth item (shifts (n, C, 2), angles (n, C), "
           "scores (n, C), classes (n, C)) holds each one's pose and score (C = candidates or the number of "
           "references; unused slots: class -1, score NaN).");
  m.def("register_rotate", &py_register_rotate, py::arg("references"), py::arg("images"),
        py::arg("settings") = defaults, py::arg("angular_step") = 1.0, py::arg("threads") = 1,
        py::arg("prior_angles") = py::none(), py::arg("prior_shifts") = py::none(),
        py::arg("ctf") = py::none(), py::arg("pixel_size_A") = py::none(), py::arg("intact_first_peak") = false,
        "Rotational + translational registration against references (k, ny, nx). Returns "
        "(shifts (n, 2), angles (n,) degrees in [0, 360), scores (n,), best reference (n,)). "
        "prior_angles (n,) and prior_shifts (n, 2), one reference: where finite, a local search "
        "from that pose. ctf (n, 9) and pixel_size_A: each image multiplied by its CTF first.");
  m.def("register_spectra", &py_register_spectra, py::arg("references"), py::arg("spectra"),
        py::arg("nx"), py::arg("settings") = defaults, py::arg("threads") = 1,
        "register_stack from cached half spectra (n, ny, nx//2+1) made by forward_stack.");
  m.def("register_accumulate_spectra", &py_register_accumulate_spectra, py::arg("references"),
        py::arg("spectra"), py::arg("nx"), py::arg("groups"), py::arg("sums").noconvert(),
        py::arg("band") = 0.5, py::arg("prior") = py::none(), py::arg("class_stride") = 0,
        py::arg("settings") = defaults, py::arg("threads") = 1,
        "register_spectra, and in the same pass each image's band (accumulate_spectra, moved back "
        "by its new shift, weight 1) added to sums[groups[i] + best[i] * class_stride] in place "
        "(groups[i] < 0: none). prior (n, 2): where finite, a local search from that shift instead "
        "of the full one.");
  m.def("search_extent", &py_search_extent, py::arg("ny"), py::arg("nx"), py::arg("settings") = defaults,
        py::arg("band") = 0.0,
        "(ky, kx): the largest |ky| and kx of an image spectrum that register_spectra reads with "
        "these settings (ny//2, nx//2: all), and with band > 0 register_accumulate_spectra too: "
        "what a cropped spectra cache must hold.");
  m.def("correlation_maps", &py_correlation_maps, py::arg("reference"), py::arg("images"),
        py::arg("lowpass") = py::none(), py::arg("highpass") = py::none(),
        py::arg("edge") = 0.02, py::arg("phase") = false, py::arg("threads") = 1,
        "Normalised circular cross-correlation maps (n, ny, nx), unshifted layout.");
}

}  // namespace bindings
}  // namespace cryocore
