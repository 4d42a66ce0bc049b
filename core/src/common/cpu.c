#include <stdlib.h>
#include "cpu.h"
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* CPUID can trap to the hypervisor in a VM (microseconds): every query below is computed once.
 * Racing first calls compute the same value, so relaxed atomics suffice. */
static int detect_features(void);

int smm_cpu_features(void)
{
  static int cached = -1;
  int f = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (f < 0) {
    f = detect_features();
    __atomic_store_n(&cached, f, __ATOMIC_RELAXED);
  }
  return f;
}

static int detect_features(void)
{
  int f = 0;
#if defined(__x86_64__) || defined(__i386__)
  /* libgcc's detection also checks XGETBV, i.e. that the OS saves the AVX/AVX-512 state. */
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse2")) f |= SMM_FEAT_SSE2;
  if (__builtin_cpu_supports("avx")) f |= SMM_FEAT_AVX;
  if (__builtin_cpu_supports("avx2")) f |= SMM_FEAT_AVX2;
  if (__builtin_cpu_supports("fma")) f |= SMM_FEAT_FMA;
  if (__builtin_cpu_supports("avx512f")) f |= SMM_FEAT_AVX512F;
  if (__builtin_cpu_supports("avx512vl")) f |= SMM_FEAT_AVX512VL;
  if (__builtin_cpu_supports("avx512bw")) f |= SMM_FEAT_AVX512BW;
  if (__builtin_cpu_supports("avx512dq")) f |= SMM_FEAT_AVX512DQ;
#elif defined(__aarch64__)
  f |= SMM_FEAT_NEON;
#endif
  return f;
}

int smm_cpu_best_isa(void)
{
  int f = smm_cpu_features();
  if (f & SMM_FEAT_AVX512F) return SMM_ISA_AVX512;
  if ((f & SMM_FEAT_AVX2) && (f & SMM_FEAT_FMA)) return SMM_ISA_AVX2;
  return SMM_ISA_GENERIC;
}

static int detect_zmm_weight(void);

int smm_cpu_zmm_weight(void)
{
  static int cached = 0;
  int w = __atomic_load_n(&cached, __ATOMIC_RELAXED);
  if (!w) {
    /* SMM_ZMM_WEIGHT=1|2 overrides the detection: tests run both tile choices on one machine, and a
     * CPU the table does not know can be told. */
    const char *env = getenv("SMM_ZMM_WEIGHT");
    w = (env && (env[0] == '1' || env[0] == '2') && env[1] == '\0') ? env[0] - '0' : detect_zmm_weight();
    __atomic_store_n(&cached, w, __ATOMIC_RELAXED);
  }
  return w;
}

static int detect_zmm_weight(void)
{
#if defined(__x86_64__) || defined(__i386__)
  unsigned int a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return 1;
  const int amd = (b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u); /* "AuthenticAMD" */
  if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return 1;
  const unsigned int family = ((a >> 8) & 0xfu) + (((a >> 8) & 0xfu) == 0xfu ? ((a >> 20) & 0xffu) : 0u);
  return family == 0x19u ? 2 : 1; /* Zen 4 double-pumps zmm; Zen 5 (0x1a) has full-width units */
#else
  return 1;
#endif
}

int smm_cpu_brand(char *out, int len)
{
  if (len <= 0) return 0;
  out[0] = '\0';
#if defined(__x86_64__) || defined(__i386__)
  unsigned int regs[12], maxext = __get_cpuid_max(0x80000000u, 0);
  if (maxext < 0x80000004u) return 0;
  for (unsigned int i = 0; i < 3; ++i)
    __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  char brand[49];
  memcpy(brand, regs, 48);
  brand[48] = '\0';
  const char *s = brand;
  while (*s == ' ') ++s;
  strncpy(out, s, (size_t)len - 1);
  out[len - 1] = '\0';
  return 1;
#else
  return 0;
#endif
}
