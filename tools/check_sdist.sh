#!/usr/bin/env bash
# Builds cryocore's sdist and checks what its users get (Linux, as root: step 2 needs a private
# mount namespace):
# 1. with the system's FFTW: `pip install cryocore-*.tar.gz` in a fresh venv compiles the core
#    against it; cryocore imports, registers a simulated stack correctly and reports that FFTW;
# 2. without FFTW (fftw3.h, the fftw3f pkg-config file and libfftw3f hidden by overlays in a
#    private mount namespace, as on a machine without libfftw3-dev): the install fails with
#    CMake's message saying what to install.
#   bash tools/check_sdist.sh          outputs in $WORK (default build/sdist)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$here/build/sdist}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
say() { printf '[check_sdist] %s\n' "$*"; }

"$PYTHON" -m venv "$WORK/tools-venv"
"$WORK/tools-venv/bin/python" -m pip install -q --disable-pip-version-check build
rm -rf "$WORK/dist"
fail_with_log() { say "FAILED: $1 (the end of $2:)"; tail -30 "$2" >&2; exit 1; }
"$WORK/tools-venv/bin/python" -m build --sdist --outdir "$WORK/dist" "$here" >"$WORK/sdist-build.log" 2>&1 ||
  fail_with_log "python -m build --sdist" "$WORK/sdist-build.log"
sdist=$(ls "$WORK"/dist/*.tar.gz)
say "sdist: $sdist ($(du -h "$sdist" | cut -f1))"

# --- 1. with the system's FFTW -------------------------------------------------------------
rm -rf "$WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
say "pip install of the sdist (compiles the core against the system's FFTW)"
"$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check "$sdist" >"$WORK/install.log" 2>&1 ||
  fail_with_log "pip install of the sdist" "$WORK/install.log"
(cd "$WORK" && "$WORK/venv/bin/python" "$here/tools/check_install.py" system)  # (not from the source tree)

# --- 2. without FFTW ----------------------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
  say "skipped the build without FFTW: it needs root and unshare"; exit 0
fi
lib=$(ldconfig -p | awk '/libfftw3f\.so\.3 /{print $NF; exit}')
[ -n "$lib" ] || { say "FAILED: ldconfig finds no libfftw3f, yet the sdist built"; exit 1; }
libdir=$(dirname "$(readlink -f "$lib")")
hide=""
for dir in /usr/include /usr/local/include "$libdir" "$libdir/pkgconfig"; do
  for f in "$dir"/fftw3.h "$dir"/libfftw3f.* "$dir"/fftw3f.pc; do
    if [ -e "$f" ]; then hide="$hide $dir"; break; fi
  done
done
say "pip install of the sdist with FFTW hidden in:$hide"
export WORK SDIST=$sdist OVL=$WORK/ovl PYTHON
mkdir -p "$OVL"
set +e
# shellcheck disable=SC2086,SC2016
unshare -m bash -c '
  set -e
  mount -t tmpfs none "$OVL"
  i=0
  for dir in "$@"; do
    i=$((i + 1)); mkdir -p "$OVL/u$i" "$OVL/w$i"
    mount -t overlay overlay -o "lowerdir=$dir,upperdir=$OVL/u$i,workdir=$OVL/w$i" "$dir"
    rm -f "$dir"/fftw3.h "$dir"/libfftw3f* "$dir"/fftw3f.pc
  done
  rm -rf "$WORK/venv-nofftw" && "$PYTHON" -m venv "$WORK/venv-nofftw"
  "$WORK/venv-nofftw/bin/python" -m pip install --disable-pip-version-check --no-cache-dir "$SDIST"
' _ $hide >"$WORK/install-nofftw.log" 2>&1 </dev/null
status=$?
set -e
[ "$status" != 0 ] || { say "FAILED: the sdist installed without FFTW"; exit 1; }
grep -q "cryocore needs FFTW 3 in single precision" "$WORK/install-nofftw.log" ||
  { say "FAILED: no clear message"; tail -30 "$WORK/install-nofftw.log"; exit 1; }
say "without FFTW the install stops (exit $status) with CMake's message:"
grep -A3 "cryocore needs FFTW 3 in single precision" "$WORK/install-nofftw.log" | head -4
say "ok"
