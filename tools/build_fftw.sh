#!/usr/bin/env bash
# Builds FFTW 3 in single precision, static and -fPIC, with threads and the SIMD of the machine's
# architecture chosen at run time (x86-64: SSE2, AVX, AVX2, AVX-512, FMA; arm64: NEON), into
# PREFIX (default /tmp/fftw): what a cryocore wheel bundles (CMake -DCRYOCORE_FFTW_STATIC=PREFIX).
#   bash tools/build_fftw.sh [PREFIX]          FFTW_SOURCE=dir: that source tree, else it is
#                                              downloaded from fftw.org (version FFTW_VERSION)
set -euo pipefail
prefix=${1:-/tmp/fftw}
version=${FFTW_VERSION:-3.3.10}
if [ -f "$prefix/lib/libfftw3f.a" ]; then echo "[build_fftw] $prefix already holds libfftw3f.a"; exit 0; fi
src=${FFTW_SOURCE:-}
if [ -z "$src" ]; then
  work=$(mktemp -d)
  curl -fsSL "https://www.fftw.org/fftw-$version.tar.gz" -o "$work/fftw.tar.gz"
  tar -xzf "$work/fftw.tar.gz" -C "$work"
  src="$work/fftw-$version"
fi
case "$(uname -m)" in
  x86_64|amd64) simd="--enable-sse2 --enable-avx --enable-avx2 --enable-avx512 --enable-fma" ;;
  aarch64|arm64) simd="--enable-neon" ;;
  *) simd="" ;;
esac
cd "$src"
./configure --enable-float --enable-threads $simd --with-pic --enable-static --disable-shared \
  --disable-fortran --disable-doc --prefix="$prefix"
make -j"$( (nproc || sysctl -n hw.ncpu) 2>/dev/null)"
make install
