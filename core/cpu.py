"""CPU features and the instruction-set path the library runs (the ``core.cpu`` report).

The path is chosen once per process from CPUID, or forced by ``SMM_TARGET``; a forced path the
CPU cannot run falls back to the best one it can, with a ``RuntimeWarning`` (never SIGILL).
Every ISA-dispatched extension (``core.smm``, ``core.transpose``, ...) asks this module.
"""
import os
import platform
import warnings

from . import _config, _cpuid

ISA_NAMES = _cpuid.ISA_NAMES  # ordered: each path needs the features of the ones before it


def features():
    """Features the CPU and the OS support, e.g. ``{'avx2', 'fma', ...}``."""
    return _cpuid.features()


def available_targets():
    """ISA paths this machine can run, best last."""
    return ISA_NAMES[: _cpuid.best_isa() + 1]


def _resolve():
    best = ISA_NAMES[_cpuid.best_isa()]
    wanted = _config.requested_target()
    if wanted is None:
        return best, None
    if ISA_NAMES.index(wanted) > ISA_NAMES.index(best):
        msg = f"SMM_TARGET={wanted} is not supported by this CPU; using {best}"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return best, msg
    return wanted, None


_TARGET, _FALLBACK = _resolve()


def target():
    """Name of the ISA path in use: ``'generic'``, ``'avx2'`` or ``'avx512'``."""
    return _TARGET


def target_id():
    """Index of :func:`target` in :data:`ISA_NAMES` (what the C kernels tables are indexed by)."""
    return ISA_NAMES.index(_TARGET)


def isa_id(name):
    """Index of an ISA path name; ``ValueError`` if unknown, or if this CPU cannot run it."""
    if name not in ISA_NAMES:
        raise ValueError(f"target must be one of {ISA_NAMES}, got {name!r}")
    if name not in available_targets():
        raise ValueError(f"target {name!r} is not supported by this CPU (available: {available_targets()})")
    return ISA_NAMES.index(name)


def model():
    """CPU model name (CPUID brand string, or the platform's processor string)."""
    return _cpuid.brand() or platform.processor() or platform.machine()


_CACHE_DEFAULTS = {1: 32 << 10, 2: 1 << 20, 3: 32 << 20}


def cache_bytes(level):
    """Size in bytes of one core's data cache at `level` (1, 2; 3 for the shared last level), from
    sysconf or /sys; a typical size where the system does not say. Batch heuristics (prefetching,
    streaming stores) compare working sets with it."""
    if level not in _CACHE_DEFAULTS:
        raise ValueError(f"level must be 1, 2 or 3, got {level!r}")
    name = "SC_LEVEL1_DCACHE_SIZE" if level == 1 else f"SC_LEVEL{level}_CACHE_SIZE"
    try:
        size = os.sysconf(name)
    except (ValueError, OSError, AttributeError):
        size = 0
    if not size or size <= 0:
        size = _sys_cache_bytes(level)
    return size or _CACHE_DEFAULTS[level]


def _sys_cache_bytes(level):
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for index in sorted(os.listdir(base)):
            with open(os.path.join(base, index, "level")) as f:
                if int(f.read()) != level:
                    continue
            with open(os.path.join(base, index, "type")) as f:
                if f.read().strip() == "Instruction":
                    continue
            with open(os.path.join(base, index, "size")) as f:
                text = f.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            return int(text.rstrip("KMG")) * scale
    except (OSError, ValueError):
        pass
    return 0


def zmm_weight():
    """Cost of one 512-bit vector FMA in 256-bit ones, as the AVX-512 tile model weighs it: 2 where
    the core splits zmm work into two halves (AMD Zen 4), 1 where its 512-bit units are full width.
    ``SMM_ZMM_WEIGHT=1|2`` overrides the detection."""
    return _cpuid.zmm_weight()


def info():
    """A dict fit for records: model, features, available targets, the chosen target and why."""
    return {
        "model": model(),
        "machine": platform.machine(),
        "features": sorted(features()),
        "available": list(available_targets()),
        "target": _TARGET,
        "forced": _config.requested_target(),
        "fallback": _FALLBACK,
        "cache_bytes": {level: cache_bytes(level) for level in (1, 2, 3)},
        "zmm_weight": zmm_weight(),
    }


def report():
    """Human-readable summary (what ``python -m core.cpu`` prints)."""
    i = info()
    lines = [f"cpu:       {i['model']} ({i['machine']})",
             f"features:  {' '.join(i['features']) or '-'}",
             f"available: {', '.join(i['available'])}",
             f"target:    {i['target']}" + (f" (forced by SMM_TARGET={i['forced']})" if i["forced"] else " (from CPUID)")]
    if i["fallback"]:
        lines.append(f"warning:   {i['fallback']}")
    return "\n".join(lines)


