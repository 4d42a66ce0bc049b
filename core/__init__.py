"""smm-miniapps core: small matrix multiplication kernels and friends.

Sub-modules: ``core.cpu`` (features and the ISA path), ``core.smm`` (GEMM kernels, registry,
batches), ``core.transpose`` (transpose, copy, zero), ``core.tuned`` (tuned-parameter file),
``core.acc`` (accelerator-style device), ``core.conv`` and ``core.dnn`` (conv-net kernels),
``core.threads`` (thread policy, pinning); see docs/api.md.
"""
__version__ = "0.1.0"

from . import cpu  # noqa: E402  (chooses the ISA path once, at import)



def get_include():
    """Directory of the C headers (``smm_kernel.h``) for Cython/C code that calls the kernels."""
    import os
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


__all__ = ["cpu", "get_include", "__version__"]
