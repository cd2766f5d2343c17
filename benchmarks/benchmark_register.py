"""asv benchmarks for ``cryocore.register``: translations (``RegisterSuite``, over the box
``size`` and ``threads``), its peak memory (``RegisterMemory``, over the box and the images per
call, ``batch``), rotations (``RegisterRotateSuite``, time, peak memory and angle error, over the
box and threads), with and without CTFs (``RegisterCtfSuite``) and the shift error
(``RegisterAccuracy``). Timings are on 1 000 images per call.

``setup`` builds a noisy, posed stack cheaply (template moved with ``cryocore.shift`` or
``cryocore.transform`` plus white noise; ``cryocore.simulate`` is too slow to run before every
sample) and warms FFTW's plan cache, so the timed calls measure steady-state throughput and not
planning.

``peakmem_*`` values are the peak RSS of the whole benchmark process, so they include the stack
made in ``setup``; ``peakmem_reference`` measures an empty call with the same setup to give the
baseline to subtract.
"""

import numpy as np

SIZES = [64, 128, 256]
BATCHES = [100, 1000]
THREADS = [1, 2]
N_IMAGES = 1000  # images per timed call
CONFIGS = {"upsample1": {"upsample": 1}, "upsample20": {"upsample": 20},  # register's settings measured
           "upsample20_lowpass025": {"upsample": 20, "lowpass": 0.25}}
WARMUP_IMAGES = 8  # plans are cached per image shape, a few images suffice


def posed_stack(size, batch, snr=0.1, seed=0, rotate=False):
    """(reference (size, size), images (batch, size, size) float32, true angles
    (batch,) (zeros without ``rotate``), true shifts (batch, 2)).

    The images are the reference posed by random angles (with ``rotate``;
    ``cryocore.transform``) and sub-pixel shifts (``cryocore.shift``
    otherwise) plus white Gaussian noise with variance ``var(reference) / snr``.
    They are made in small blocks written into one preallocated stack, so the
    high-water mark of setup stays close to the stack itself and the
    ``peakmem_*`` numbers show the memory of the call being measured.
    """
    import cryocore

    rng = np.random.default_rng(seed)
    reference = cryocore.make_template(size)
    max_shift = min(10.0, size / 8)
    angles = rng.uniform(0.0, 360.0, batch) if rotate else np.zeros(batch)
    shifts = rng.uniform(-max_shift, max_shift, size=(batch, 2))
    sigma = np.float32(np.sqrt(reference.var() / snr))
    images = np.empty((batch, size, size), np.float32)
    block = 32
    for start in range(0, batch, block):
        stop = min(batch, start + block)
        clean = np.broadcast_to(reference, (stop - start, size, size))
        if rotate:
            images[start:stop] = cryocore.transform(clean, angles[start:stop], shifts[start:stop])
        else:
            images[start:stop] = cryocore.shift(clean, shifts[start:stop])
        images[start:stop] += sigma * rng.standard_normal((stop - start, size, size), dtype=np.float32)
    return reference, images, angles, shifts


def make_stack(size, batch, snr=0.1, seed=0):
    """(reference, images, true shifts): :func:`posed_stack` without rotations."""
    reference, images, _, shifts = posed_stack(size, batch, snr, seed)
    return reference, images, shifts


class RegisterSuite:
    """cryocore.register: integer peak + quadratic fit, upsampled DFT refinement, low-pass."""

    params = (SIZES, THREADS)
    param_names = ["size", "threads"]
    timeout = 180

    def setup(self, size, threads):
        import cryocore

        cryocore.set_planning("measure")
        self.register = cryocore.register
        self.reference, self.images, self.true_shifts = make_stack(size, N_IMAGES)
        for kwargs in CONFIGS.values():
            cryocore.register(self.reference, self.images[:WARMUP_IMAGES], threads=threads, **kwargs)

    def time_register_upsample1(self, size, threads):
        self.register(self.reference, self.images, threads=threads, **CONFIGS["upsample1"])

    def time_register_upsample20(self, size, threads):
        self.register(self.reference, self.images, threads=threads, **CONFIGS["upsample20"])

    def time_register_upsample20_lowpass025(self, size, threads):
        self.register(self.reference, self.images, threads=threads, **CONFIGS["upsample20_lowpass025"])


class RegisterMemory:
    """Peak memory of cryocore.register (2 threads) by box and number of images per call."""

    params = (SIZES, BATCHES)
    param_names = ["size", "batch"]
    timeout = 180

    def setup(self, size, batch):
        import cryocore

        self.register = cryocore.register
        self.reference, self.images, _ = make_stack(size, batch)
        for kwargs in CONFIGS.values():
            cryocore.register(self.reference, self.images[:WARMUP_IMAGES], threads=2, **kwargs)

    def peakmem_reference(self, size, batch):
        """Baseline: setup only (the stack and the warmed plans)."""

    def peakmem_register_upsample1(self, size, batch):
        self.register(self.reference, self.images, threads=2, **CONFIGS["upsample1"])

    def peakmem_register_upsample20_lowpass025(self, size, batch):
        self.register(self.reference, self.images, threads=2, **CONFIGS["upsample20_lowpass025"])


class RegisterAccuracy:
    """RMS shift error (pixels) of cryocore.register on the setup stack, tracked over commits.

    Not a timing: ``track_*`` records the returned value, so a change that
    makes registration faster but less accurate shows up next to the timings.
    """

    params = ([128], [1000])
    param_names = ["size", "batch"]
    unit = "pixels"
    timeout = 180

    def setup(self, size, batch):
        import cryocore

        self.register = cryocore.register
        self.reference, self.images, self.true_shifts = make_stack(size, batch)

    def _rms(self, **kwargs):
        est = self.register(self.reference, self.images, **kwargs).shifts
        return float(np.sqrt(np.mean((est - self.true_shifts) ** 2)))

    def track_rms_upsample1(self, size, batch):
        return self._rms(**CONFIGS["upsample1"])

    def track_rms_upsample20(self, size, batch):
        return self._rms(**CONFIGS["upsample20"])

    def track_rms_upsample20_lowpass025(self, size, batch):
        return self._rms(**CONFIGS["upsample20_lowpass025"])


class RegisterRotateSuite:
    """cryocore.register(rotate=True): rotational + translational search (default angular_step 1)."""

    params = ([64, 128], THREADS)
    param_names = ["size", "threads"]
    timeout = 300

    def setup(self, size, threads):
        import cryocore

        cryocore.set_planning("measure")
        self.register = cryocore.register
        self.reference, self.images, self.angles, self.shifts = posed_stack(size, N_IMAGES, rotate=True)
        self.register(self.reference, self.images[:WARMUP_IMAGES], rotate=True, threads=threads)

    def time_register_rotate(self, size, threads):
        self.register(self.reference, self.images, rotate=True, threads=threads)

    def peakmem_register_rotate(self, size, threads):
        self.register(self.reference, self.images, rotate=True, threads=threads)

    def track_median_angle_error(self, size, threads):
        est = self.register(self.reference, self.images, rotate=True, threads=threads).angles
        return float(np.median(np.abs((est - self.angles + 180.0) % 360.0 - 180.0)))

    track_median_angle_error.unit = "degrees"


class RegisterCtfSuite:
    """cryocore.register with and without each image's CTF (computed on the fly in the core), on
    the same posed stack (128 px, 2 Å/px, defocus 0.8-2.5 µm): the two timings' ratio is the
    cost of CTF-aware registration (benchmarks/compare_ctf.py measures it in one run too)."""

    params = ([False, True], [1000])
    param_names = ["rotate", "batch"]
    timeout = 300

    def setup(self, rotate, batch):
        import cryocore

        cryocore.set_planning("measure")
        self.register = cryocore.register
        self.reference, self.images, _, _ = posed_stack(128, batch, rotate=rotate)
        rng = np.random.default_rng(1)
        self.ctf = cryocore.CtfParameters.from_arrays(batch, dict(defocus_u_A=rng.uniform(8000, 25000, batch),
                                                                  defocus_v_A=rng.uniform(8000, 25000, batch),
                                                                  defocus_angle_deg=rng.uniform(0, 180, batch)))
        self.register(self.reference, self.images[:WARMUP_IMAGES], rotate=rotate)
        self.register(self.reference, self.images[:WARMUP_IMAGES], rotate=rotate, ctf=self.ctf.take(slice(0, 8)),
                      pixel_size_A=2.0)

    def time_register_without_ctf(self, rotate, batch):
        self.register(self.reference, self.images, rotate=rotate)

    def time_register_with_ctf(self, rotate, batch):
        self.register(self.reference, self.images, rotate=rotate, ctf=self.ctf, pixel_size_A=2.0)
