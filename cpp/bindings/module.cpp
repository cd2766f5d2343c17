// The module cryocore._core: the only code that knows about Python (with the
// other files of this folder). It converts arrays, releases the GIL around the
// C++ core, and maps its exceptions (std::invalid_argument becomes ValueError).
// Argument checking that needs Python names (shapes, dtypes) happens in the
// Python layer; this layer re-checks what the core relies on.
#include "common.hpp"

#include "plans.hpp"
#include "simd.hpp"

using namespace cryocore;
using namespace cryocore::bindings;

PYBIND11_MODULE(_core, m) {
  m.doc() = "cryocore's compiled core (private; use the cryocore package).";
#ifdef CRYOCORE_VERSION
  m.attr("__version__") = CRYOCORE_VERSION;
#endif
  m.attr("fftw_version") = cryocore::fftw_version();
#ifdef CRYOCORE_FFTW_BUNDLED
  m.attr("fftw_bundled") = true;  // a static FFTW linked in, its symbols hidden
#else
  m.attr("fftw_bundled") = false;  // the system's shared libfftw3f
#endif
#if defined(__clang__)
  m.attr("compiler") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("compiler") = "gcc " __VERSION__;
#else
  m.attr("compiler") = "unknown";
#endif
#ifdef CRYOCORE_BUILD_OPTIONS
  m.attr("build_options") = CRYOCORE_BUILD_OPTIONS;
#endif
  m.attr("hot_loops") = CRYOCORE_HOT_TARGETS;

  bind_ctf(m);
  bind_search(m);
  bind_spectra(m);
  bind_transforms(m);

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
