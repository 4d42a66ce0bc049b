# cython: language_level=3
"""Raw CPUID facts (see core.cpu for the public view)."""

cdef extern from "cpu.h":
    int smm_cpu_features() nogil
    int smm_cpu_best_isa() nogil
    int smm_cpu_zmm_weight() nogil
    int smm_cpu_brand(char *out, int length) nogil
    int SMM_FEAT_SSE2, SMM_FEAT_AVX, SMM_FEAT_AVX2, SMM_FEAT_FMA
    int SMM_FEAT_AVX512F, SMM_FEAT_AVX512VL, SMM_FEAT_AVX512BW, SMM_FEAT_AVX512DQ, SMM_FEAT_NEON

ISA_NAMES = ("generic", "avx2", "avx512")


def features():
    """Set of feature names the CPU and the OS both support."""
    cdef int f = smm_cpu_features()
    names = {"sse2": SMM_FEAT_SSE2, "avx": SMM_FEAT_AVX, "avx2": SMM_FEAT_AVX2, "fma": SMM_FEAT_FMA,
             "avx512f": SMM_FEAT_AVX512F, "avx512vl": SMM_FEAT_AVX512VL, "avx512bw": SMM_FEAT_AVX512BW,
             "avx512dq": SMM_FEAT_AVX512DQ, "neon": SMM_FEAT_NEON}
    return frozenset(n for n, bit in names.items() if f & bit)


def best_isa():
    """Index into ISA_NAMES of the best path this CPU runs."""
    return smm_cpu_best_isa()


def zmm_weight():
    """Cost of a 512-bit vector FMA in 256-bit ones (2: split into halves, as Zen 4; 1: full width)."""
    return smm_cpu_zmm_weight()


def brand():
    cdef char buf[64]
    if smm_cpu_brand(buf, 64):
        return buf.decode("ascii", "replace").strip()
    return ""
