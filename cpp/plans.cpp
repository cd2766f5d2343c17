#include "plans.hpp"

#include <map>
#include <stdexcept>
#include <tuple>

namespace cryocore {
namespace {

std::mutex& planner_mutex() {
  static std::mutex m;
  return m;
}

// Guarded by planner_mutex().
PlanEffort g_effort = PlanEffort::Measure;
// Plan caches keyed by shape and planning effort.
template <class T, class... Key>
using PlanCache = std::map<std::tuple<Key..., int>, std::shared_ptr<const T>>;

PlanCache<PrunedForward, std::size_t, std::size_t, std::size_t>& pruned_cache() {
  static PlanCache<PrunedForward, std::size_t, std::size_t, std::size_t> c;
  return c;
}
PlanCache<RingFft, std::size_t, std::size_t>& ring_cache() {
  static PlanCache<RingFft, std::size_t, std::size_t> c;
  return c;
}
PlanCache<Fft2d, std::size_t, std::size_t>& cache() {
  static PlanCache<Fft2d, std::size_t, std::size_t> c;
  return c;
}

// The cached T(shape..., effort), made on first request. Constructed under
// the planner lock (the planner is not thread-safe). The destructors also
// lock, so a failed construction must not hold it: constructors clean up
// after themselves before throwing (check_plans).
template <class T, class... Key>
std::shared_ptr<const T> cached_plan(PlanCache<T, Key...>& c, Key... shape) {
  std::lock_guard<std::mutex> lock(planner_mutex());
  const auto key = std::make_tuple(shape..., static_cast<int>(g_effort));
  auto it = c.find(key);
  if (it != c.end()) return it->second;
  auto plan = std::shared_ptr<const T>(new T(shape..., g_effort));
  c.emplace(key, plan);
  return plan;
}

// Both plans made, or neither kept (and an exception).
void check_plans(fftwf_plan a, fftwf_plan b) {
  if (a && b) return;
  if (a) fftwf_destroy_plan(a);
  if (b) fftwf_destroy_plan(b);
  throw std::runtime_error("FFTW could not create a plan");
}

void destroy_plans(fftwf_plan a, fftwf_plan b) {
  std::lock_guard<std::mutex> lock(planner_mutex());
  fftwf_destroy_plan(a);
  fftwf_destroy_plan(b);
}

unsigned effort_flag(PlanEffort e) {
  switch (e) {
    case PlanEffort::Estimate: return FFTW_ESTIMATE;
    case PlanEffort::Measure: return FFTW_MEASURE;
    case PlanEffort::Patient: return FFTW_PATIENT;
    case PlanEffort::Exhaustive: return FFTW_EXHAUSTIVE;
  }
  return FFTW_MEASURE;
}

int as_int(std::size_t n) {
  if (n > static_cast<std::size_t>(1) << 30) throw std::invalid_argument("image dimension too large for FFTW");
  return static_cast<int>(n);
}

}  // namespace

void set_planning_effort(PlanEffort effort) {
  std::lock_guard<std::mutex> lock(planner_mutex());
  g_effort = effort;
}

PlanEffort planning_effort() {
  std::lock_guard<std::mutex> lock(planner_mutex());
  return g_effort;
}

std::string export_wisdom() {
  std::lock_guard<std::mutex> lock(planner_mutex());
  char* s = fftwf_export_wisdom_to_string();
  if (!s) return std::string();
  std::string out(s);
  free(s);  // FFTW allocates the string with malloc
  return out;
}

bool import_wisdom(const std::string& wisdom) {
  std::lock_guard<std::mutex> lock(planner_mutex());
  return fftwf_import_wisdom_from_string(wisdom.c_str()) != 0;
}

void forget_wisdom() {
  std::lock_guard<std::mutex> lock(planner_mutex());
  fftwf_forget_wisdom();
}

void clear_plan_cache() {
  PlanCache<Fft2d, std::size_t, std::size_t> old;
  PlanCache<PrunedForward, std::size_t, std::size_t, std::size_t> old_pruned;
  PlanCache<RingFft, std::size_t, std::size_t> old_ring;
  {
    std::lock_guard<std::mutex> lock(planner_mutex());
    old.swap(cache());
    old_pruned.swap(pruned_cache());
    old_ring.swap(ring_cache());
  }
  // `old` is destroyed here, outside the lock: ~Fft2d takes the lock itself.
}

std::size_t plan_cache_size() {
  std::lock_guard<std::mutex> lock(planner_mutex());
  return cache().size();
}

std::string fftw_version() { return std::string(fftwf_version); }

bool fftw_aligned(const void* p) noexcept {
  // fftwf_alignment_of returns the pointer's offset from FFTW's SIMD alignment;
  // fftwf_malloc'ed buffers (on which plans are made) give 0.
  return fftwf_alignment_of(reinterpret_cast<float*>(const_cast<void*>(p))) == 0;
}

Fft2d::Fft2d(std::size_t ny, std::size_t nx, PlanEffort effort) : ny_(ny), nx_(nx) {
  // Caller holds planner_mutex. Plans are made on scratch buffers: MEASURE
  // and PATIENT overwrite them while timing.
  RealArray r(real_size());
  ComplexArray c(complex_size());
  const unsigned flags = effort_flag(effort);
  r2c_ = fftwf_plan_dft_r2c_2d(as_int(ny), as_int(nx), r.data(),
                               reinterpret_cast<fftwf_complex*>(c.data()), flags);
  c2r_ = fftwf_plan_dft_c2r_2d(as_int(ny), as_int(nx), reinterpret_cast<fftwf_complex*>(c.data()),
                               r.data(), flags);
  check_plans(r2c_, c2r_);
}

R2cPlans::~R2cPlans() {
  destroy_plans(r2c_, c2r_);
}

void R2cPlans::forward(const float* in, cfloat* out) const noexcept {
  // r2c out-of-place plans preserve their input, so the cast is safe.
  fftwf_execute_dft_r2c(r2c_, const_cast<float*>(in), reinterpret_cast<fftwf_complex*>(out));
}

void R2cPlans::inverse(cfloat* in, float* out) const noexcept {
  fftwf_execute_dft_c2r(c2r_, reinterpret_cast<fftwf_complex*>(in), out);
}

std::shared_ptr<const Fft2d> get_fft2d(std::size_t ny, std::size_t nx) { return cached_plan(cache(), ny, nx); }

namespace {
// One batched plan: the 1D r2c of each row of a (rows, m) array into the
// rows of a (rows, m/2+1) one. Caller holds planner_mutex.
fftwf_plan plan_rows_r2c(std::size_t rows, std::size_t m, float* r, cfloat* c, unsigned flags) {
  int n[1] = {as_int(m)};
  return fftwf_plan_many_dft_r2c(1, n, as_int(rows), r, nullptr, 1, as_int(m), reinterpret_cast<fftwf_complex*>(c),
                                 nullptr, 1, as_int(m / 2 + 1), flags);
}
}  // namespace

PrunedForward::PrunedForward(std::size_t ny, std::size_t nx, std::size_t cols, PlanEffort effort)
    : ny_(ny), nx_(nx), cols_(cols) {
  // Caller holds planner_mutex.
  const std::size_t nxh = nx / 2 + 1;
  RealArray r(ny * nx);
  ComplexArray c(ny * nxh);
  const unsigned flags = effort_flag(effort);
  rows_ = plan_rows_r2c(ny, nx, r.data(), c.data(), flags);
  int n_col[1] = {as_int(ny)};
  columns_ = fftwf_plan_many_dft(1, n_col, as_int(cols), reinterpret_cast<fftwf_complex*>(c.data()),
                                 nullptr, as_int(nxh), 1, reinterpret_cast<fftwf_complex*>(c.data()),
                                 nullptr, as_int(nxh), 1, FFTW_FORWARD, flags);
  check_plans(rows_, columns_);
}

PrunedForward::~PrunedForward() {
  destroy_plans(rows_, columns_);
}

void PrunedForward::forward(const float* in, cfloat* out) const noexcept {
  auto* o = reinterpret_cast<fftwf_complex*>(out);
  fftwf_execute_dft_r2c(rows_, const_cast<float*>(in), o);  // out-of-place r2c keeps its input
  fftwf_execute_dft(columns_, o, o);
}

std::shared_ptr<const PrunedForward> get_pruned_forward(std::size_t ny, std::size_t nx,
                                                        std::size_t cols) {
  return cached_plan(pruned_cache(), ny, nx, cols);
}

RingFft::RingFft(std::size_t rows, std::size_t m, PlanEffort effort) : rows_(rows), m_(m) {
  // Caller holds planner_mutex.
  const std::size_t mh = m / 2 + 1;
  RealArray r(rows * m);
  ComplexArray c(rows * mh);
  const unsigned flags = effort_flag(effort);
  r2c_ = plan_rows_r2c(rows, m, r.data(), c.data(), flags);
  c2r_ = fftwf_plan_dft_c2r_1d(as_int(m), reinterpret_cast<fftwf_complex*>(c.data()), r.data(), flags);
  check_plans(r2c_, c2r_);
}

std::shared_ptr<const RingFft> get_ring_fft(std::size_t rows, std::size_t m) {
  return cached_plan(ring_cache(), rows, m);
}

}  // namespace cryocore
