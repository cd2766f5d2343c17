// The rotational search: RotationalSearch, register_rotate_stack.
#include "correlation.hpp"

#include "ctf.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"
#include "peaks.hpp"
#include "plans.hpp"
#include "polar.hpp"
#include "rotate.hpp"
#include "spectra.hpp"
#include "translation_search.hpp"

namespace cryocore {
using namespace detail;

namespace {
constexpr double kCoarseStep = 5.0;        // degrees between coarse rotations
constexpr double kCoarseLowpass = 0.1;     // cycles/px of the coarse search
constexpr std::size_t kAngleCandidates = 5;  // polar maxima scored by the coarse search
constexpr double kRivalDistance = 90.0;      // degrees: a rival candidate is this far from the best
constexpr double kRivalMargin = 0.5;         // and scores within kRivalMargin * (1 - best) of it
constexpr int kMaxAngleSteps = 16;           // fine rotations one search may step over
constexpr double kPolarMax = 0.2;            // cycles/px of the outer polar ring

// An angle in degrees wrapped into [0, 360).
double wrap360(double a) {
  a = std::fmod(a, 360.0);
  if (a < 0.0) a += 360.0;
  return a < 360.0 ? a : 0.0;  // (a tiny negative angle plus 360 rounds to 360)
}

// The reference rotated by j * step degrees (bicubic), j < count, prepared
// for a search on first use: an image's search touches only the rotations
// near its candidates, so a call with few images prepares few of them.
// Thread-safe (each rotation is made once; std::call_once orders the write
// before every read); what is prepared does not depend on which thread
// asked first.
class LazyRotations {
 public:
  LazyRotations(const float* ref, std::size_t ny, std::size_t nx, double step, std::size_t count,
                const TranslationSearch& search)
      : ref_(ref), ny_(ny), nx_(nx), step_(step), search_(search), spec_(count), flat_(count, 0),
        once_(new std::once_flag[count]) {}
  std::size_t size() const noexcept { return spec_.size(); }
  const ComplexArray& operator[](std::size_t j) const {
    std::call_once(once_[j], [&] {
      std::vector<float> img(ny_ * nx_);
      transform_image(ref_, ny_, nx_, step_ * static_cast<double>(j), 0.0, 0.0, false, img.data());
      PreparedRefs one = search_.prepare(img.data(), 1);
      spec_[j] = std::move(one.spec[0]);
      flat_[j] = one.flat[0];
    });
    return spec_[j];
  }
  // Whether rotation j is flat (nothing passes the filter): its spectrum is zero.
  bool flat(std::size_t j) const {
    (*this)[j];
    return flat_[j] != 0;
  }

 private:
  const float* ref_;
  std::size_t ny_, nx_;
  double step_;
  const TranslationSearch& search_;
  mutable std::vector<ComplexArray> spec_;
  mutable std::vector<char> flat_;  // written once per rotation, under its once_flag
  std::unique_ptr<std::once_flag[]> once_;
};

// Indices of the (at most) k highest circular local maxima of v, best first.
std::size_t top_local_maxima(const float* v, std::size_t m, std::size_t k, std::size_t* out) {
  std::size_t count = 0;
  for (std::size_t j = 0; j < m; ++j) {
    if (!(v[j] > v[(j + m - 1) % m] && v[j] >= v[(j + 1) % m])) continue;
    std::size_t slot;
    if (count == k) {  // full: replace the weakest if this one is stronger
      if (v[j] <= v[out[k - 1]]) continue;
      slot = k - 1;
    } else {
      slot = count++;
    }
    while (slot > 0 && v[out[slot - 1]] < v[j]) {
      out[slot] = out[slot - 1];
      --slot;
    }
    out[slot] = j;
  }
  return count;
}

// Vertex offset of the parabola through (-1, l), (0, c), (1, r), within [-0.5, 0.5].
double parabola_offset(double l, double c, double r) {
  const double d = l - 2.0 * c + r;
  return d < 0.0 ? std::clamp(0.5 * (l - r) / d, -0.5, 0.5) : 0.0;
}
}  // namespace

struct RotationalSearch::Impl {
  std::size_t ny, nx, n_refs;
  std::vector<float> refs;  // own copy: the rotations are made from it on first use
  RegisterParams p, pc;     // fine (the caller's) and coarse parameters
  // (the searches below keep references to p and pc: declared after them)
  std::unique_ptr<TranslationSearch> fine, coarse;
  std::size_t K = 0, stride = 1, KC = 0;
  double dpsi = 1.0;
  std::unique_ptr<PolarCorrelator> polar;
  std::shared_ptr<const Fft2d> plan;
  std::vector<std::unique_ptr<LazyRotations>> fine_refs, coarse_refs;
  std::vector<std::vector<cfloat>> polar_refs;
  std::vector<bool> flat_ref;
};

RotationalSearch::RotationalSearch(const float* refs, std::size_t n_refs, std::size_t ny, std::size_t nx,
                                   const RegisterParams& p, double angular_step)
    : impl_(new Impl) {
  Impl& m = *impl_;
  if (n_refs == 0) throw std::invalid_argument("at least one reference is needed");
  if (!(angular_step >= 0.05 && angular_step <= 10.0))
    throw std::invalid_argument("angular_step must be in [0.05, 10] degrees, got " +
                                std::to_string(angular_step));
  check_register_params(p, ny, nx);
  const std::size_t npx = ny * nx;
  for (std::size_t r = 0; r < n_refs; ++r)
    if (!all_finite(refs + r * npx, npx))
      throw std::invalid_argument("reference " + std::to_string(r) +
                                  " contains NaN or infinity; all pixel values must be finite");
  m.ny = ny;
  m.nx = nx;
  m.n_refs = n_refs;
  m.refs.assign(refs, refs + n_refs * npx);
  m.p = p;
  m.fine.reset(new TranslationSearch(ny, nx, m.p));
  m.pc = p;  // coarse: low-passed, cropped, quadratic peak only
  // (at least three frequency pixels, for small boxes)
  const double coarse_lp = std::max(kCoarseLowpass, 3.0 / static_cast<double>(std::min(ny, nx)));
  m.pc.filter.lowpass = p.filter.lowpass > 0.0 ? std::min(p.filter.lowpass, coarse_lp) : coarse_lp;
  m.pc.filter.highpass = std::min(p.filter.highpass, 0.5 * m.pc.filter.lowpass);
  m.pc.upsample = 1;
  m.pc.phase = false;
  m.coarse.reset(new TranslationSearch(ny, nx, m.pc));
  m.K = static_cast<std::size_t>(std::lround(360.0 / angular_step));
  m.dpsi = 360.0 / static_cast<double>(m.K);
  // Coarse rotations: every stride-th fine one, about kCoarseStep apart.
  m.stride = std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(kCoarseStep / m.dpsi)));
  m.KC = (m.K + m.stride - 1) / m.stride;
  // Polar rings of the power spectra: from two frequency px (the lowest
  // rings barely change with rotation) to kPolarMax (or the low-pass).
  const double nmin = static_cast<double>(std::min(ny, nx));
  const double rho_min = std::min(std::max(2.0 / nmin, p.filter.highpass), 0.3);
  double rho_max = kPolarMax;
  if (p.filter.lowpass > 0.0) rho_max = std::min(rho_max, p.filter.lowpass);
  rho_max = std::min(std::max(rho_max, rho_min + 3.0 / nmin), 0.4);
  m.polar.reset(new PolarCorrelator(ny, nx, rho_min, rho_max));
  m.plan = get_fft2d(ny, nx);
  PolarWork w;
  RealArray img(npx);
  ComplexArray F(m.plan->complex_size());
  for (std::size_t r = 0; r < n_refs; ++r) {
    const float* ref = m.refs.data() + r * npx;
    m.fine_refs.emplace_back(new LazyRotations(ref, ny, nx, m.dpsi, m.K, *m.fine));
    m.coarse_refs.emplace_back(
        new LazyRotations(ref, ny, nx, m.dpsi * static_cast<double>(m.stride), m.KC, *m.coarse));
    m.flat_ref.push_back(m.fine_refs.back()->flat(0));  // rotation 0: the reference as it is
    std::memcpy(img.data(), ref, npx * sizeof(float));
    m.plan->forward(img.data(), F.data());
    m.polar_refs.push_back(m.polar->reference(F.data(), w));
  }
}

RotationalSearch::~RotationalSearch() = default;
std::size_t RotationalSearch::ny() const noexcept { return impl_->ny; }
std::size_t RotationalSearch::nx() const noexcept { return impl_->nx; }
std::size_t RotationalSearch::n_refs() const noexcept { return impl_->n_refs; }
std::size_t RotationalSearch::classes_searched(std::size_t candidates) const noexcept {
  return candidates > 0 && candidates < impl_->n_refs ? candidates : impl_->n_refs;
}

void RotationalSearch::run(const float* images, std::size_t n, int threads, double* shifts, double* angles,
                           double* scores, std::int32_t* best_ref, const double* prior_angles,
                           const double* prior_shifts, const std::int64_t* index, const CtfRows* ctf,
                           float* filtered, std::size_t candidates, const std::int32_t* prior_class,
                           const ClassPoses* per_class) const {
  if (threads < 1) throw std::invalid_argument("threads must be >= 1");
  if (per_class && per_class->slots < classes_searched(candidates))
    throw std::invalid_argument("per_class needs a slot per class searched");
  if (filtered && !ctf) throw std::invalid_argument("filtered images need CTFs");
  const Impl& m = *impl_;
  const std::size_t ny = m.ny, nx = m.nx, npx = ny * nx, n_refs = m.n_refs, K = m.K, KC = m.KC;
  const std::size_t stride = m.stride;
  const double dpsi = m.dpsi;
  const TranslationSearch& fine = *m.fine;
  const TranslationSearch& coarse = *m.coarse;
  const PolarCorrelator& polar = *m.polar;
  const Fft2d* plan = m.plan.get();
  const auto& fine_refs = m.fine_refs;
  const auto& coarse_refs = m.coarse_refs;
  const auto& polar_refs = m.polar_refs;
  const auto& flat_ref = m.flat_ref;
  const std::size_t M = polar.angles();
  Workspaces fine_pool(threads, fine.geo), coarse_pool(threads, coarse.geo);
  std::vector<PolarWork> polar_pool(static_cast<std::size_t>(threads));
  std::unique_ptr<CtfGrid> grid;
  if (ctf) {
    check_ctf_params(ctf->params, n);
    grid.reset(new CtfGrid(ny, nx, ctf->pixel_size_A, -1, -1, ctf->intact_first_peak));
  }
  const float scale = 1.0f / static_cast<float>(npx);
  struct CtfScratch {
    std::vector<float> h;
    ComplexArray G;
  };
  std::vector<std::unique_ptr<CtfScratch>> ctf_pool(static_cast<std::size_t>(threads));
  struct ClassScreen {  // the classes an image is searched against, and the pre-screen's scores
    std::vector<std::size_t> chosen;
    std::vector<float> best, corr;  // per reference: its peak, its correlation over psi (M)
  };
  std::vector<ClassScreen> screen_pool(static_cast<std::size_t>(threads));
  parallel_for(n_chunks(n, kChunk), threads, [&](std::size_t task, std::size_t worker) {
    Workspace& ws = fine_pool.get(worker);
    Workspace& cws = coarse_pool.get(worker);
    PolarWork& pw = polar_pool[worker];
    fine.prepare_workspace(ws);
    ClassScreen& cs = screen_pool[worker];
    std::vector<std::size_t>& chosen = cs.chosen;
    const std::size_t end = std::min(n, (task + 1) * kChunk);
    for (std::size_t i = task * kChunk; i < end; ++i) {
      const std::size_t at = index ? static_cast<std::size_t>(index[i]) : i;
      const cfloat* F = image_spectrum(*plan, images + at * npx, at, ws);
      if (grid) {  // the search (and the sum) see CTF X
        auto& c = ctf_pool[worker];
        if (!c) c.reset(new CtfScratch{{}, ComplexArray(filtered ? grid->size() : 0)});
        grid->multiply(ctf->params + i * kCtfFields, ws.F.data(), c->h);
        if (filtered) {  // c2r overwrites its input: from a copy
          std::copy(ws.F.data(), ws.F.data() + grid->size(), c->G.data());
          float* out = filtered + i * npx;
          plan->inverse(c->G.data(), out);
#pragma omp simd
          for (std::size_t k = 0; k < npx; ++k) out[k] *= scale;
        }
      }
      const float inv = inverse_norm(F, fine.geo, fine.h2, ws);
      const float cinv = inverse_norm(F, coarse.geo, coarse.h2, ws);
      Refined best{0.0, 0.0, -2.0};
      double best_psi = 0.0;
      std::int32_t bref = 0;
      // A finite prior pose (one reference only) replaces the global search.
      // (with several references: around the prior pose against the prior class only)
      const std::int32_t pc = n_refs == 1 ? 0 : (prior_class ? prior_class[i] : -1);
      const bool have_prior = prior_angles && prior_shifts && pc >= 0 && static_cast<std::size_t>(pc) < n_refs &&
                              std::isfinite(prior_angles[i]) && std::isfinite(prior_shifts[2 * i]) &&
                              std::isfinite(prior_shifts[2 * i + 1]);
      const double prior_psi = have_prior ? wrap360(prior_angles[i]) : 0.0;
      if (inv != 0.0f && cinv != 0.0f && !have_prior) polar.ring_spectra(F, pw);
      // The references searched: all, or with `candidates` the ones whose power spectra's
      // rotational correlation with the image's peaks highest (invariant to the image's
      // rotation and shift: a cheap pre-screen), in their own order.
      chosen.resize(n_refs);
      for (std::size_t r = 0; r < n_refs; ++r) chosen[r] = r;
      if (have_prior) chosen.assign(1, static_cast<std::size_t>(pc));
      const bool screened = candidates > 0 && n_refs > candidates && !have_prior && inv != 0.0f && cinv != 0.0f;
      if (screened) {
        cs.best.assign(n_refs, -std::numeric_limits<float>::infinity());
        cs.corr.resize(n_refs * M);  // each reference's correlation, kept for stage 1 below
        for (std::size_t r = 0; r < n_refs; ++r) {
          if (flat_ref[r]) continue;
          polar.correlate(polar_refs[r], pw);
          std::copy(pw.corr.data(), pw.corr.data() + M, &cs.corr[r * M]);
          cs.best[r] = *std::max_element(pw.corr.data(), pw.corr.data() + M);
        }
        std::stable_sort(chosen.begin(), chosen.end(),
                         [&](std::size_t a, std::size_t b) { return cs.best[a] > cs.best[b]; });
        chosen.resize(candidates);
        std::sort(chosen.begin(), chosen.end());
      }
      if (per_class) {
        for (std::size_t s = 0; s < per_class->slots; ++s) {
          const std::size_t o = i * per_class->slots + s;
          per_class->classes[o] = -1;
          per_class->scores[o] = std::numeric_limits<double>::quiet_NaN();
          per_class->angles[o] = per_class->shifts[2 * o] = per_class->shifts[2 * o + 1] = 0.0;
        }
      }
      std::size_t slot = 0;
      // One searched class's pose and score into its slot (per_class).
      auto record = [&](std::size_t r, const Refined& res, double psi) {
        if (!per_class) return;
        const std::size_t o = i * per_class->slots + slot++;
        per_class->classes[o] = static_cast<std::int32_t>(r);
        per_class->scores[o] = res.value < -1.0 ? 0.0 : res.value;
        per_class->shifts[2 * o] = res.dy;
        per_class->shifts[2 * o + 1] = res.dx;
        per_class->angles[o] = psi;
      };
      for (const std::size_t r : chosen) {
        if (inv == 0.0f || cinv == 0.0f || flat_ref[r]) {
          if (best.value < 0.0) best = Refined{0.0, 0.0, 0.0};
          record(r, Refined{0.0, 0.0, 0.0}, 0.0);
          continue;
        }
        std::size_t j = 0;
        Refined res{0.0, 0.0, -2.0};
        if (have_prior) {
          // Local: from the prior pose (nearest fine rotation, sub-pixel grids
          // from the prior shift), then the angular steps below.
          j = static_cast<std::size_t>(std::lround(prior_psi / dpsi)) % K;
          res = fine.local(F, inv, (*fine_refs[r])[j], prior_shifts[2 * i], prior_shifts[2 * i + 1], false, ws);
        } else {
        // Candidate angles: the best maxima of the power spectra's rotational
        // correlation, each with its 180-degree twin, scored by a coarse
        // (low-passed, cropped) translational search at the nearest coarse
        // rotation of the reference.
        if (!screened) polar.correlate(polar_refs[r], pw);  // (else made by the pre-screen)
        const float* corr = screened ? &cs.corr[r * M] : pw.corr.data();
        std::size_t peaks[kAngleCandidates];
        const std::size_t n_peaks = top_local_maxima(corr, M, kAngleCandidates, peaks);
        double cand_psi[2 * kAngleCandidates];
        double cand_score[2 * kAngleCandidates];
        Refined cand_shift[2 * kAngleCandidates];
        std::size_t n_cand = 0;
        for (std::size_t k = 0; k < n_peaks; ++k) {
          const std::size_t jc = peaks[k];
          // The correlation's lag is the pose angle (checked by the
          // noise-free tests at every angle).
          const double psi = (static_cast<double>(jc) +
                               parabola_offset(corr[(jc + M - 1) % M], corr[jc], corr[(jc + 1) % M])) *
                             polar.step_degrees();
          for (double twin : {psi, psi + 180.0}) {
            const double a = std::fmod(twin + 360.0, 360.0);
            const std::size_t jf = static_cast<std::size_t>(std::lround(a / dpsi)) % K;
            const std::size_t jcoarse = static_cast<std::size_t>(std::lround(static_cast<double>(jf) / static_cast<double>(stride))) % KC;
            cand_psi[n_cand] = a;
            cand_shift[n_cand] = coarse.run(F, cinv, (*coarse_refs[r])[jcoarse], cws);
            cand_score[n_cand] = cand_shift[n_cand].value;
            ++n_cand;
          }
        }
        // Fine: the sub-pixel search at full resolution, at the nearest fine
        // rotation, from the coarse shift, of the best candidate by coarse
        // score, and of its strongest rival far from it if that one scores
        // nearly as well (twins 180 degrees apart can look alike at the
        // coarse resolution).
        std::size_t order[2 * kAngleCandidates] = {};
        for (std::size_t k = 0; k < n_cand; ++k) order[k] = k;
        std::sort(order, order + n_cand, [&](std::size_t a, std::size_t b) {
          return cand_score[a] > cand_score[b] || (cand_score[a] == cand_score[b] && a < b);
        });
        std::size_t n_fine = 1;
        for (std::size_t k = 1; k < n_cand; ++k) {
          const double d = std::fabs(std::remainder(cand_psi[order[k]] - cand_psi[order[0]], 360.0));
          if (d < kRivalDistance) continue;
          if (cand_score[order[k]] >= cand_score[order[0]] - kRivalMargin * (1.0 - cand_score[order[0]]))
            order[n_fine++] = order[k];
          break;
        }
        for (std::size_t k = 0; k < n_fine; ++k) {
          const std::size_t jf = static_cast<std::size_t>(std::lround(cand_psi[order[k]] / dpsi)) % K;
          const Refined& c = cand_shift[order[k]];
          const Refined cand = fine.local(F, inv, (*fine_refs[r])[jf], c.dy, c.dx, true, ws);
          if (cand.value > res.value) {
            res = cand;
            j = jf;
          }
        }
        }
        if (res.value <= best.value && !per_class) continue;
        // Angular search at a fixed shift: step to the better neighbouring
        // rotation while there is one (one new score per step), then re-refine
        // the shift at the new rotation; repeat until the rotation holds. A
        // parabola through the neighbours' scores refines the angle.
        double sm = 0.0, sp = 0.0;
        auto score = [&](std::size_t jj) {
          return fine.score_at(F, inv, (*fine_refs[r])[jj % K], res.dy, res.dx, ws);
        };
        int steps = 0;
        for (int round = 0; round < 3; ++round) {
          double c = res.value;
          sm = score(j + K - 1);
          sp = score(j + 1);
          const std::size_t j0 = j;
          while ((sm > c || sp > c) && steps < kMaxAngleSteps) {
            if (sp > sm) {
              j = (j + 1) % K;
              sm = c;
              c = sp;
              sp = score(j + 1);
            } else {
              j = (j + K - 1) % K;
              sp = c;
              c = sm;
              sm = score(j + K - 1);
            }
            ++steps;
          }
          if (j == j0) break;
          res = fine.local(F, inv, (*fine_refs[r])[j], res.dy, res.dx, false, ws);
          if (round == 2) {  // the shift moved: neighbours at the final shift
            sm = score(j + K - 1);
            sp = score(j + 1);
          }
        }
        const double psi = wrap360((static_cast<double>(j) + parabola_offset(sm, res.value, sp)) * dpsi);
        record(r, res, psi);
        if (res.value <= best.value) continue;  // (per_class: every class is refined)
        best = res;
        best_psi = psi;
        bref = static_cast<std::int32_t>(r);
      }
      shifts[2 * i] = best.dy;
      shifts[2 * i + 1] = best.dx;
      angles[i] = best_psi;
      scores[i] = best.value < -1.0 ? 0.0 : best.value;
      if (best_ref) best_ref[i] = bref;
    }
  });
}

void register_rotate_stack(const float* refs, std::size_t n_refs, const float* images,
                           std::size_t n, std::size_t ny, std::size_t nx, const RegisterParams& p,
                           double angular_step, double* shifts, double* angles, double* scores,
                           std::int32_t* best_ref, const double* prior_angles,
                           const double* prior_shifts) {
  const RotationalSearch search(refs, n_refs, ny, nx, p, angular_step);
  search.run(images, n, p.threads, shifts, angles, scores, best_ref, prior_angles, prior_shifts);
}

}  // namespace cryocore
