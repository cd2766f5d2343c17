#!/usr/bin/env bash
# Installs cryocore and everything it needs into ./.venv.
#
#   bash tools/install.sh          the package (runtime dependencies)
#   bash tools/install.sh test     plus the test dependencies (pytest, pyfftw, scikit-image, ...)
#   bash tools/install.sh bench    plus the benchmark dependencies (asv, pyfftw, ...)
#
# On Debian/Ubuntu, run as root (or with sudo available), it first installs
# what a fresh machine lacks: a C++ compiler, pkg-config, FFTW 3 (single
# precision, libfftw3-dev), the Python headers and venv. Elsewhere, install
# those with your package manager (see README) and run it again.
# PYTHON selects the interpreter (default python3, 3.10 or newer).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
PYTHON=${PYTHON:-python3}
extra=${1:-}
case "$extra" in
  ""|test|bench) ;;
  *) echo "usage: bash tools/install.sh [test|bench]" >&2; exit 2 ;;
esac

say() { printf '[install] %s\n' "$*"; }

command -v "$PYTHON" >/dev/null 2>&1 || { echo "[install] $PYTHON not found: install Python 3.10+ first" >&2; exit 1; }

# --- system packages --------------------------------------------------------
missing=()
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! { pkg-config --exists fftw3f 2>/dev/null || [ -f /usr/include/fftw3.h ]; }; then
  missing+=(libfftw3-dev)
fi
pyinc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$pyinc/Python.h" ] || missing+=(python3-dev)
"$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[install] missing: ${missing[*]}. Install them with your package manager (FFTW 3 with" \
         "single precision: fftw-devel on Fedora/RHEL, 'brew install fftw', 'conda install fftw')." >&2
    exit 1
  fi
fi

# --- Python environment -----------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating virtual environment .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
spec="."
[ -n "$extra" ] && spec=".[$extra]"
say "pip install $spec (builds the C++ core with scikit-build-core)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check "$spec"
say "done: $(.venv/bin/python -c 'import cryocore; print("cryocore", cryocore.__version__, "with", cryocore.fftw_version)')"
