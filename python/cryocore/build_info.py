"""What this cryocore was built with: :func:`show_config` and :func:`build_config`."""

from __future__ import annotations

import os
import re
from typing import Any

from . import _core
from .fftw import get_planning

__all__ = ["build_config", "show_config"]


def _loaded_fftw() -> str:
    """The shared libfftw3f this process has loaded (Linux), or '' (none, or unknown)."""
    try:
        with open("/proc/self/maps") as f:
            return next((line.split()[-1] for line in f if "libfftw3f" in line), "")
    except OSError:
        return ""


def build_config() -> dict[str, Any]:
    """The build as a dict: cryocore's version, the FFTW it uses (version, its SIMD, bundled in
    the wheel or the system's shared library), the compiler, the build options (CMake build type
    and cryocore's CMake options), the versions of the hot loops, the threads a run uses by
    default and FFTW's current planning effort."""
    from ._validate import as_threads

    version = str(_core.fftw_version)  # e.g. "fftw-3.3.10-sse2-avx-avx2-avx512"
    simd = [s for s in version.split("-")[2:] if s] if version.startswith("fftw-") else []
    number = re.match(r"fftw-([\d.]+)", version)
    return dict(
        version=str(_core.__version__),
        fftw_version=number.group(1) if number else version,
        fftw_simd=simd,
        fftw_bundled=bool(_core.fftw_bundled),
        fftw_library="inside cryocore._core" if _core.fftw_bundled else (_loaded_fftw() or "system"),
        compiler=str(_core.compiler),
        build_options=str(_core.build_options),
        hot_loops=str(_core.hot_loops),
        threads=as_threads(None),
        cpus=os.cpu_count(),
        planning=get_planning(),
    )


def show_config() -> None:
    """Print :func:`build_config`, a line each (``cryocore.show_config()``)."""
    c = build_config()
    print(f"cryocore {c['version']}")
    print(f"  FFTW {c['fftw_version']} (single precision), SIMD: {', '.join(c['fftw_simd']) or 'none'}; "
          + ("bundled (static, its symbols hidden)" if c["fftw_bundled"] else f"system library {c['fftw_library']}"))
    print(f"  compiler: {c['compiler']}; build: {c['build_options']}")
    print(f"  hot loops: {c['hot_loops']}")
    print(f"  threads: {c['threads']} by default ({c['cpus']} CPUs); FFTW planning: {c['planning']}")
