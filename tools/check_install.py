"""Checks an installed cryocore (run by tools/build_wheel.sh and tools/check_sdist.sh with the
fresh venv's Python, from outside the source tree): it imports, uses the FFTW it should (bundled
or the system's), registers a simulated stack correctly and shows its configuration.

    python tools/check_install.py bundled|system
"""

import sys

import numpy as np

import cryocore

fftw = sys.argv[1] if len(sys.argv) == 2 else ""
if fftw not in ("bundled", "system"):
    sys.exit("usage: python tools/check_install.py bundled|system")
config = cryocore.build_config()
assert config["fftw_bundled"] == (fftw == "bundled"), config
sim = cryocore.simulate(200, 128, snr=0.5, max_shift=6, rotate=False, seed=1)
r = cryocore.register(sim.template, sim.images)
err = float(np.sqrt(np.mean(np.sum((r.shifts - sim.shifts) ** 2, axis=1))))
assert err < 0.2, err  # (the system-FFTW build: 0.129 px on this stack)
if fftw == "bundled":
    with open("/proc/self/maps") as maps:
        assert "libfftw3f" not in maps.read(), "a shared libfftw3f was loaded"
cryocore.show_config()
print(f"registered 200 simulated images: RMS shift error {err:.4f} px"
      + ("; no libfftw3f loaded" if fftw == "bundled" else ""))
