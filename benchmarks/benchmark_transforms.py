"""asv benchmarks for applying poses: ``cryocore.shift`` and ``cryocore.Accumulator.add``.

Parametrised over the image box (``size``) and the number of images per call
(``batch``). ``setup`` makes a random stack and pose shifts and warms the
FFTW plan cache; ``peakmem_reference`` is the baseline (setup only) for the
``peakmem_*`` numbers, which are whole-process peak RSS.
"""

import numpy as np

SIZES = [64, 128, 256]
BATCHES = [100, 1000]
WARMUP_IMAGES = 8


def make_stack(size, batch, seed=0):
    """Random float32 stack (batch, size, size) and pose shifts (batch, 2)."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, size, size), dtype=np.float32)
    shifts = rng.uniform(-10.0, 10.0, size=(batch, 2))
    return images, shifts


class ShiftSuite:
    """cryocore.shift: exact Fourier-space sub-pixel shift of every image."""

    params = (SIZES, BATCHES)
    param_names = ["size", "batch"]
    timeout = 180

    def setup(self, size, batch):
        import cryocore

        cryocore.set_planning("measure")
        self.shift = cryocore.shift
        self.images, self.shifts = make_stack(size, batch)
        cryocore.shift(self.images[:WARMUP_IMAGES], self.shifts[:WARMUP_IMAGES])

    def time_shift(self, size, batch):
        self.shift(self.images, self.shifts)

    def peakmem_reference(self, size, batch):
        """Baseline: setup only."""

    def peakmem_shift(self, size, batch):
        self.shift(self.images, self.shifts)


class AccumulatorSuite:
    """cryocore.Accumulator.add: move images back by their poses and sum in place."""

    params = (SIZES, BATCHES)
    param_names = ["size", "batch"]
    timeout = 180

    def setup(self, size, batch):
        import cryocore

        cryocore.set_planning("measure")
        self.Accumulator = cryocore.Accumulator
        self.images, self.shifts = make_stack(size, batch)
        self.weights = np.random.default_rng(1).uniform(0.5, 1.5, size=batch)
        warm = cryocore.Accumulator((size, size))
        warm.add(self.images[:WARMUP_IMAGES], shifts=self.shifts[:WARMUP_IMAGES])
        # One accumulator for all timed calls: add() is an in-place update, the
        # growing sums do not change its cost.
        self.acc = cryocore.Accumulator((size, size))

    def time_add_shifts(self, size, batch):
        self.acc.add(self.images, shifts=self.shifts)

    def time_add_shifts_weights(self, size, batch):
        self.acc.add(self.images, shifts=self.shifts, weights=self.weights)

    def time_add_no_shifts(self, size, batch):
        self.acc.add(self.images)

    def peakmem_reference(self, size, batch):
        """Baseline: setup only."""

    def peakmem_add_shifts(self, size, batch):
        self.acc.add(self.images, shifts=self.shifts)


class AlignSuite:
    """Iterations of the alignment pipeline (reference-free, two half-sets)."""

    params = ([64, 128], [500, 2000])
    param_names = ["size", "n_images"]
    timeout = 240

    def setup(self, size, n_images):
        import cryocore

        sim = cryocore.simulate(n_images, size, snr=0.1, max_shift=size / 12, rotate=False, seed=0)
        self.images = sim.images
        self.template = sim.template
        cryocore.align(self.images[:64], iterations=1, progress=False)  # plans (rotation too)

    def time_align_10_iterations(self, size, n_images):
        import cryocore

        cryocore.align(self.images, rotate=False, iterations=10, tolerance_px=0, progress=False)

    def time_align_rotate_3_iterations(self, size, n_images):
        import cryocore

        cryocore.align(self.images, rotate=True, iterations=3, tolerance_px=0, progress=False)

    def time_register_one_pass(self, size, n_images):
        import cryocore

        cryocore.register(self.template, self.images)

    def peakmem_align(self, size, n_images):
        import cryocore

        cryocore.align(self.images, rotate=False, iterations=3, tolerance_px=0, progress=False)


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
