// Function multiversioning for the hot loops: on x86-64 with GCC or Clang,
// functions marked CRYOCORE_HOT are compiled twice, for x86-64-v3 (AVX2 +
// FMA) and for the baseline, and the loader picks the version the CPU
// supports (ifunc). Wheels stay baseline-safe; no -march=native is needed.
// Results can differ in the last bits between the two versions (FMA), never
// between thread counts.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(CRYOCORE_NO_MULTIVERSION) && !defined(__SANITIZE_ADDRESS__)
#define CRYOCORE_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#define CRYOCORE_HOT_TARGETS "x86-64-v3 (AVX2, FMA) and the build's target, chosen at load time"
#else
#define CRYOCORE_HOT_TARGETS "one version (the compiler's target)"
#define CRYOCORE_HOT
#endif
