"""CPU features and the instruction-set path the library runs (the ``core.cpu`` report).

The path is chosen once per process from CPUID, or forced by ``SMM_TARGET``; a forced path the
CPU cannot run falls back to the best one it can, with a ``RuntimeWarning`` (never SIGILL).
Every ISA-dispatched extension (``core.smm``, ``core.transpose``, ...) asks this module.
"""
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


