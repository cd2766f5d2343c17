"""asv benchmarks for applying poses, ``cryocore.shift`` and ``cryocore.Accumulator.add`` (over
the box ``size`` and ``threads``, on 1 000 images per call), and for the alignment pipeline:
``align`` on 2 000 images (``AlignSuite``, over the box and threads) and against 1 or 10
references (``MultiReferenceSuite``).

``setup`` makes the stack and warms the FFTW plan cache; ``peakmem_reference`` is the baseline
(setup only) for the ``peakmem_*`` numbers, which are whole-process peak RSS.
"""

import numpy as np

SIZES = [64, 128, 256]
THREADS = [1, 2]
N_IMAGES = 1000
WARMUP_IMAGES = 8


def make_stack(size, batch, seed=0):
    """Random float32 stack (batch, size, size) and pose shifts (batch, 2)."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, size, size), dtype=np.float32)
    shifts = rng.uniform(-10.0, 10.0, size=(batch, 2))
    return images, shifts


class ShiftSuite:
    """cryocore.shift: exact Fourier-space sub-pixel shift of every image."""

    params = (SIZES, THREADS)
    param_names = ["size", "threads"]
    timeout = 180

    def setup(self, size, threads):
        import cryocore

        cryocore.set_planning("measure")
        self.shift = cryocore.shift
        self.images, self.shifts = make_stack(size, N_IMAGES)
        cryocore.shift(self.images[:WARMUP_IMAGES], self.shifts[:WARMUP_IMAGES], threads=threads)

    def time_shift(self, size, threads):
        self.shift(self.images, self.shifts, threads=threads)

    def peakmem_reference(self, size, threads):
        """Baseline: setup only."""

    def peakmem_shift(self, size, threads):
        self.shift(self.images, self.shifts, threads=threads)


class AccumulatorSuite:
    """cryocore.Accumulator.add: move images back by their poses and sum in place."""

    params = (SIZES, THREADS)
    param_names = ["size", "threads"]
    timeout = 180

    def setup(self, size, threads):
        import cryocore

        cryocore.set_planning("measure")
        self.images, self.shifts = make_stack(size, N_IMAGES)
        self.weights = np.random.default_rng(1).uniform(0.5, 1.5, size=N_IMAGES)
        warm = cryocore.Accumulator((size, size))
        warm.add(self.images[:WARMUP_IMAGES], shifts=self.shifts[:WARMUP_IMAGES], threads=threads)
        # One accumulator for all timed calls: add() is an in-place update, the
        # growing sums do not change its cost.
        self.acc = cryocore.Accumulator((size, size))

    def time_add_shifts(self, size, threads):
        self.acc.add(self.images, shifts=self.shifts, threads=threads)

    def time_add_shifts_weights(self, size, threads):
        self.acc.add(self.images, shifts=self.shifts, weights=self.weights, threads=threads)

    def time_add_no_shifts(self, size, threads):
        self.acc.add(self.images, threads=threads)

    def peakmem_reference(self, size, threads):
        """Baseline: setup only."""

    def peakmem_add_shifts(self, size, threads):
        self.acc.add(self.images, shifts=self.shifts, threads=threads)


class AlignSuite:
    """Iterations of the alignment pipeline (reference-free, two half-sets) on 2 000 images."""

    params = ([64, 128], THREADS)
    param_names = ["size", "threads"]
    timeout = 240

    def setup(self, size, threads):
        import cryocore

        self.align = cryocore.align
        sim = cryocore.simulate(2000, size, snr=0.1, max_shift=size / 12, rotate=False, seed=0)
        self.images = sim.images
        self.template = sim.template
        cryocore.align(self.images[:64], iterations=1, progress=False)  # plans (rotation too)

    def time_align_10_iterations(self, size, threads):
        self.align(self.images, rotate=False, iterations=10, tolerance_px=0, progress=False, threads=threads)

    def time_align_rotate_3_iterations(self, size, threads):
        self.align(self.images, rotate=True, iterations=3, tolerance_px=0, progress=False, threads=threads)

    def peakmem_align(self, size, threads):
        self.align(self.images, rotate=False, iterations=3, tolerance_px=0, progress=False, threads=threads)


class MultiReferenceSuite:
    """Multi-reference alignment with rotations: K references against one (the cost of K)."""

    params = ([1, 10], [128])
    param_names = ["n_references", "size"]
    timeout = 240

    def setup(self, n_references, size):
        import numpy as np

        import cryocore

        sim = cryocore.simulate(1000, size, snr=0.1, max_shift=size / 12, rotate=True, seed=0)
        self.images = sim.images
        rng = np.random.default_rng(0)
        self.refs = np.stack([sim.images[rng.choice(1000, 100, replace=False)].mean(axis=0)
                              for _ in range(n_references)])
        cryocore.align(self.images[:64], self.refs, iterations=1, progress=False)  # plans

    def time_align_rotate_3_iterations(self, n_references, size):
        import cryocore

        cryocore.align(self.images, self.refs, iterations=3, tolerance_px=0, progress=False)

    def peakmem_align_rotate(self, n_references, size):
        import cryocore

        cryocore.align(self.images, self.refs, iterations=2, tolerance_px=0, progress=False)
