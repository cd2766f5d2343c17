// FFTW plan cache, aligned buffers and wisdom.
//
// FFTW's planner is not thread-safe: every call that creates or destroys a
// plan, or touches wisdom, goes through one process-wide mutex (planner_mutex).
// Executing a plan is thread-safe, so workers run cached plans with FFTW's
// new-array functions (fftwf_execute_dft_r2c / _c2r) on their own buffers,
// without any lock. Other FFTW users in the same process must either use the
// same discipline or call fftwf_make_planner_thread_safe().
#pragma once

#include <fftw3.h>

#include <complex>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

namespace cryocore {

using cfloat = std::complex<float>;

enum class PlanEffort { Estimate = 0, Measure = 1, Patient = 2, Exhaustive = 3 };

void set_planning_effort(PlanEffort effort);
PlanEffort planning_effort();
std::string export_wisdom();
bool import_wisdom(const std::string& wisdom);
void forget_wisdom();
// Drops every cached plan (plans in use stay alive until their last user is done).
void clear_plan_cache();
std::size_t plan_cache_size();
// The FFTW version string, e.g. "fftw-3.3.10-sse2-avx".
std::string fftw_version();

struct FftwFree {
  void operator()(void* p) const noexcept { fftwf_free(p); }
};

// An fftwf_malloc'ed array (SIMD-aligned), freed with fftwf_free.
template <class T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(std::size_t n) : n_(n) {
    if (n == 0) return;
    void* p = fftwf_malloc(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    ptr_.reset(p);
  }
  T* data() noexcept { return static_cast<T*>(ptr_.get()); }
  const T* data() const noexcept { return static_cast<const T*>(ptr_.get()); }
  T& operator[](std::size_t i) noexcept { return data()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  std::size_t size() const noexcept { return n_; }

 private:
  std::unique_ptr<void, FftwFree> ptr_;
  std::size_t n_ = 0;
};

using RealArray = AlignedArray<float>;
using ComplexArray = AlignedArray<cfloat>;

// True when p has the SIMD alignment that cached plans were made with.
bool fftw_aligned(const void* p) noexcept;

// `image` itself when FFTW may read it in place (it has the plans' SIMD
// alignment; out-of-place r2c plans never write their input), else its copy
// in `scratch` (n floats, aligned).
inline const float* fft_readable(const float* image, std::size_t n, float* scratch) {
  if (fftw_aligned(image)) return image;
  std::memcpy(scratch, image, n * sizeof(float));
  return scratch;
}

// A real-to-complex plan and a complex-to-real plan, executed with FFTW's
// new-array functions on the caller's buffers (aligned like fftwf_malloc).
// Out-of-place; the r2c plan preserves its input, the c2r plan may
// overwrite its (complex) input. Non-copyable; destroyed under the planner
// mutex. The derived classes make the plans and say the sizes.
class R2cPlans {
 public:
  R2cPlans(const R2cPlans&) = delete;
  R2cPlans& operator=(const R2cPlans&) = delete;
  void forward(const float* in, cfloat* out) const noexcept;
  void inverse(cfloat* in, float* out) const noexcept;  // unnormalised

 protected:
  R2cPlans() = default;
  ~R2cPlans();
  fftwf_plan r2c_ = nullptr;
  fftwf_plan c2r_ = nullptr;
};

// Single-image 2D plans for one (ny, nx) shape.
// forward: in ny*nx floats, out ny*nxh complex; inverse: the other way.
class Fft2d : public R2cPlans {
 public:
  Fft2d(std::size_t ny, std::size_t nx, PlanEffort effort);

  std::size_t ny() const noexcept { return ny_; }
  std::size_t nx() const noexcept { return nx_; }
  std::size_t nxh() const noexcept { return nx_ / 2 + 1; }  // complex columns
  std::size_t real_size() const noexcept { return ny_ * nx_; }
  std::size_t complex_size() const noexcept { return ny_ * nxh(); }

 private:
  std::size_t ny_, nx_;
};

// Cached plans for a shape at the current planning effort. Thread-safe.
std::shared_ptr<const Fft2d> get_fft2d(std::size_t ny, std::size_t nx);

// A forward r2c of an (ny, nx) image that computes only the first `cols`
// columns (kx < cols) of the half spectrum: 1D r2c transforms of all rows,
// then 1D transforms along y of those columns only (the others hold row
// transforms). For correlations that use only low frequencies.
class PrunedForward {
 public:
  PrunedForward(std::size_t ny, std::size_t nx, std::size_t cols, PlanEffort effort);
  ~PrunedForward();
  PrunedForward(const PrunedForward&) = delete;
  PrunedForward& operator=(const PrunedForward&) = delete;
  std::size_t cols() const noexcept { return cols_; }
  // in: ny*nx floats, out: ny*(nx/2+1) complex (aligned like fftwf_malloc).
  void forward(const float* in, cfloat* out) const noexcept;

 private:
  std::size_t ny_, nx_, cols_;
  fftwf_plan rows_ = nullptr;
  fftwf_plan columns_ = nullptr;
};

std::shared_ptr<const PrunedForward> get_pruned_forward(std::size_t ny, std::size_t nx,
                                                        std::size_t cols);

// 1D transforms along the rows of a (rows, m) array: a batched r2c of every
// row, and a single-row c2r of length m. For angular (ring) correlations.
// forward: in rows*m floats, out rows*mh complex; inverse: in mh complex,
// out m floats.
class RingFft : public R2cPlans {
 public:
  RingFft(std::size_t rows, std::size_t m, PlanEffort effort);
  std::size_t rows() const noexcept { return rows_; }
  std::size_t m() const noexcept { return m_; }
  std::size_t mh() const noexcept { return m_ / 2 + 1; }

 private:
  std::size_t rows_, m_;
};

std::shared_ptr<const RingFft> get_ring_fft(std::size_t rows, std::size_t m);

}  // namespace cryocore
