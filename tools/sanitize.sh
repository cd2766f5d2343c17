#!/usr/bin/env bash
# Builds the compiled core with AddressSanitizer + UndefinedBehaviorSanitizer
# and runs the test suite against it.
#
#   bash tools/sanitize.sh                 # whole suite
#   bash tools/sanitize.sh tests/test_register.py -k sign   # any pytest arguments
#
# The instrumented module goes into a separate virtual environment
# (.venv-sanitize) so the normal install is untouched. Python itself is not
# instrumented, so the ASan runtime is preloaded; leak checking is off
# (CPython's own allocations would drown the report) and any ASan or UBSan
# finding aborts the run with a non-zero exit code.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
PYTHON=${PYTHON:-python3}
venv=.venv-sanitize
if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -Ccmake.define.CRYOCORE_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo \
  -Cbuild-dir=build/sanitize ".[test]"
asan=$(c++ -print-file-name=libasan.so)
ubsan=$(c++ -print-file-name=libubsan.so)
[ -f "$asan" ] || { echo "libasan.so not found (install the compiler's sanitizer runtime)" >&2; exit 1; }
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export CRYOCORE_SANITIZED=1
LD_PRELOAD="$asan $ubsan" "$venv/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"
echo "sanitize: ASan+UBSan build, no error reported"
