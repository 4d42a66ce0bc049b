/* Ends one ISA/dtype section of nek_kernels.h: the next vocabulary may define the same names. */
#undef T
#undef L
#undef V
#undef ALIGN
#undef SFX
#undef VLOADU
#undef VSTREAM
#undef VSET1
#undef VMUL
#undef VFMA
#undef SFMA
