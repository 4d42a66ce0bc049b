/* CPU feature detection shared by every ISA-dispatched extension. */
#ifndef SMM_CPU_H
#define SMM_CPU_H

/* Instruction-set paths, ordered: a higher id implies the lower ones. */
enum smm_isa { SMM_ISA_GENERIC = 0, SMM_ISA_AVX2 = 1, SMM_ISA_AVX512 = 2, SMM_ISA_COUNT = 3 };

/* Bit set of features the CPU *and* the OS support (OS: XSAVE-enabled register state). */
enum {
  SMM_FEAT_SSE2 = 1, SMM_FEAT_AVX = 2, SMM_FEAT_AVX2 = 4, SMM_FEAT_FMA = 8,
  SMM_FEAT_AVX512F = 16, SMM_FEAT_AVX512VL = 32, SMM_FEAT_AVX512BW = 64, SMM_FEAT_AVX512DQ = 128,
  SMM_FEAT_NEON = 256
};

int smm_cpu_features(void);
/* Best ISA path this CPU can run. */
int smm_cpu_best_isa(void);
/* Relative cost of one 512-bit vector operation in 256-bit ones: 2 where the core splits zmm work
 * into two halves (AMD Zen 4), 1 where 512-bit units are full width (Intel server cores, Zen 5).
 * SMM_ZMM_WEIGHT=1|2 in the environment overrides it (read once). */
int smm_cpu_zmm_weight(void);
/* Writes the CPU brand string (at most len-1 chars); returns 0 if unknown. */
int smm_cpu_brand(char *out, int len);

#endif
