"""asv benchmarks for 2D classification: one multi-reference iteration at K = 10 and 50 on 1 and 2
threads (time and peak memory), the starting classes (the subset registered image against
image), and ``cryocore.classify`` from start to end on 3 000 images (``ClassifySuite``).

``setup`` simulates 1 000 images of 10 synthetic particles (64 px, rotations, SNR 0.1) and
warms FFTW's plans; the iteration is ``cryocore.align`` with K references (the class averages
of a classification) and ``class_candidates=5``, as ``cryocore.classify`` runs it.
"""

import numpy as np


class ClassifyIterationSuite:
    params = ([10, 50], [1, 2])
    param_names = ["k", "threads"]
    timeout = 600

    def setup(self, k, threads):
        import cryocore
        from cryocore.simulation import make_views

        self.cryocore = cryocore
        views = make_views(10, 64, seed=0)
        self.sim = cryocore.simulate(1000, 64, snr=0.1, templates=views, max_shift=3, seed=1)
        rng = np.random.default_rng(2)
        self.refs = np.stack([views[i % 10] for i in range(k)]) + 0.05 * rng.standard_normal((k, 64, 64))
        self._run(threads)

    def _run(self, threads):
        return self.cryocore.align(self.sim.images, self.refs, iterations=1, class_candidates=5,
                                   progress=False, threshold_mad=2.5, threads=threads)

    def time_one_iteration(self, k, threads):
        self._run(threads)

    def peakmem_one_iteration(self, k, threads):
        self._run(threads)


class SeedingSuite:
    """The starting classes of a classification: 300 images registered against each other."""

    timeout = 300

    def setup(self):
        import cryocore
        from cryocore.simulation import make_views

        views = make_views(10, 64, seed=0)
        self.sim = cryocore.simulate(1000, 64, snr=0.1, templates=views, max_shift=3, seed=1)

    def time_seed_classes(self):
        from cryocore.pipeline.seeding import seed_classes

        seed_classes(lambda idx: self.sim.images[idx], 1000, 10, rotate=True, lowpass=0.12, threads=2, seed=0)


class ClassifySuite:
    """``cryocore.classify`` from the images to the result: 3 000 images of 10 synthetic particles
    (64 px, rotations, SNR 0.1, 10% junk) into K = 10 classes, at most 8 iterations, on 1 and 2
    threads; time and peak memory. Starting classes, iterations, rejection and final averages are
    all in the timing (FFTW's plans too: no warm-up call, which would cost as much as the run)."""

    params = [1, 2]
    param_names = ["threads"]
    timeout = 900

    def setup(self, threads):
        import cryocore
        from cryocore.simulation import make_views

        self.cryocore = cryocore
        views = make_views(10, 64, seed=0)
        self.sim = cryocore.simulate(3000, 64, snr=0.1, templates=views, max_shift=3, seed=1, junk_fraction=0.1)

    def _run(self, threads):
        return self.cryocore.classify(self.sim.images, 10, iterations=8, threads=threads, progress=False, seed=0)

    def time_classify(self, threads):
        self._run(threads)

    def peakmem_classify(self, threads):
        self._run(threads)

