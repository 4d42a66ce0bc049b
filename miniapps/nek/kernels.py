"""Checked Python entry points to the NEK element loops (``_nek_kernels``).

Every argument is validated here, before any ``nogil`` code runs: arrays must be C-contiguous
numpy arrays of one float dtype shaped ``(elements, k, n, m)`` (outputs writable), operators
``(rows, cols)`` as :func:`miniapps.nek.science.operators` builds them. Wrong input raises
``TypeError``/``ValueError`` naming the argument.
"""
import numpy as np

import core.cpu
import core.smm

from . import _nek_kernels

VARIANTS = _nek_kernels.VARIANTS  # ("blas", "mxm", "dispatched", "specialized")
DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _input(a):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"a must be a numpy array, got {type(a).__name__}")
    if a.ndim != 4:
        raise ValueError(f"a must be a 4-D array (elements, k, n, m), got {a.ndim}-D")
    return a.shape


def _variant_id(variant):
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return VARIANTS.index(variant)


def _isa(target):
    return core.cpu.target_id() if target is None else core.cpu.isa_id(target)


def _threads(threads):
    if threads is None:
        import core.threads
        return core.threads.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return int(threads)


def _dims(**dims):
    for name, v in dims.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    return tuple(int(v) for v in dims.values())


def _field(name, x, shape_tail, dtype=None, count=None, write=False):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype not in DTYPES:
        raise TypeError(f"{name} must be float64 or float32, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, the other operands are {dtype}")
    if x.ndim != 4 or x.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (elements, {', '.join(map(str, shape_tail))}), got {x.shape}")
    if count is not None and x.shape[0] != count:
        raise ValueError(f"{name} has {x.shape[0]} elements, the input has {count}")
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if write and not x.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return x.reshape(-1)


def _operator(name, x, shape, dtype):
    x = np.asarray(x)
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got {x.dtype}")
    return np.asfortranarray(x, dtype=dtype).reshape(-1, order="F")


def _no_alias(outputs, inputs):
    for oname, o in outputs:
        for iname, i in inputs:
            if np.shares_memory(o, i):
                raise ValueError(f"{oname} overlaps {iname}")


def _scalar(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    return float(v)


def specialized_kernels(op, m, n, k, mm=0, nn=0, kk=0, dtype=np.float64, target=None):
    """The three kernels of an operation's GEMMs, dispatched up front (LIBXSMM's 'specialized')."""
    shapes = _nek_kernels.kernels_needed(op, m, n, k, mm, nn, kk)
    kw = {} if target is None else {"target": target}
    return tuple(core.smm.dispatch(sm, sn, sk, alpha=1.0, beta=0.0, dtype=np.dtype(dtype), **kw)
                 for sm, sn, sk in shapes)


def axhm(a, b, g1, g2, g3, dx, dy, dz, c, h1=1.0, h2=1.0, *, variant="specialized", threads=None,
         repetitions=1, kernels=None, target=None):
    """Helmholtz operator of every element into ``c`` (see science.axhm_reference)."""
    vid = _variant_id(variant)
    s, k, n, m = _input(a)
    tail = (k, n, m)
    af = _field("a", a, tail)
    flat = [af] + [_field(nm, x, tail, a.dtype, s) for nm, x in (("b", b), ("g1", g1), ("g2", g2), ("g3", g3))]
    cf = _field("c", c, tail, a.dtype, s, write=True)
    _no_alias([("c", c)], [("a", a), ("b", b), ("g1", g1), ("g2", g2), ("g3", g3)])
    ops = [_operator("dx", dx, (m, m), a.dtype), _operator("dy", dy, (n, n), a.dtype),
           _operator("dz", dz, (k, k), a.dtype)]
    reps, = _dims(repetitions=repetitions)
    if vid == 3 and kernels is None:
        kernels = specialized_kernels("axhm", m, n, k, dtype=a.dtype, target=target)
    if s == 0:
        return c
    _nek_kernels.axhm(vid, _isa(target), _threads(threads), reps, m, n, k, *flat, *ops, cf,
                      _scalar("h1", h1), _scalar("h2", h2), kernels)
    return c


def grad(a, dx, dy, dz, cx, cy, cz, *, variant="specialized", threads=None, repetitions=1, kernels=None,
         target=None):
    """Derivatives of every element along x, y, z into ``cx``, ``cy``, ``cz``."""
    vid = _variant_id(variant)
    s, k, n, m = _input(a)
    tail = (k, n, m)
    af = _field("a", a, tail)
    outs = [_field(nm, x, tail, a.dtype, s, write=True) for nm, x in (("cx", cx), ("cy", cy), ("cz", cz))]
    _no_alias([("cx", cx), ("cy", cy), ("cz", cz)], [("a", a)])
    _no_alias([("cx", cx)], [("cy", cy), ("cz", cz)])
    _no_alias([("cy", cy)], [("cz", cz)])
    ops = [_operator("dx", dx, (m, m), a.dtype), _operator("dy", dy, (n, n), a.dtype),
           _operator("dz", dz, (k, k), a.dtype)]
    reps, = _dims(repetitions=repetitions)
    if vid == 3 and kernels is None:
        kernels = specialized_kernels("grad", m, n, k, dtype=a.dtype, target=target)
    if s == 0:
        return cx, cy, cz
    _nek_kernels.grad(vid, _isa(target), _threads(threads), reps, m, n, k, af, *ops, *outs, kernels)
    return cx, cy, cz


def rstr(a, dx, dy, dz, c, *, variant="specialized", threads=None, repetitions=1, kernels=None, target=None):
    """Every element interpolated to ``mm x nn x kk`` points into ``c`` (elements, kk, nn, mm)."""
    vid = _variant_id(variant)
    s, k, n, m = _input(a)
    af = _field("a", a, (k, n, m))
    dx, dy, dz = (np.asarray(x) for x in (dx, dy, dz))
    if dx.ndim != 2 or dy.ndim != 2 or dz.ndim != 2:
        raise ValueError("dx, dy, dz must be 2-D")
    mm, nn, kk = dx.shape[0], dy.shape[1], dz.shape[1]
    _dims(mm=mm, nn=nn, kk=kk)
    ops = [_operator("dx", dx, (mm, m), a.dtype), _operator("dy", dy, (n, nn), a.dtype),
           _operator("dz", dz, (k, kk), a.dtype)]
    cf = _field("c", c, (kk, nn, mm), a.dtype, s, write=True)
    _no_alias([("c", c)], [("a", a)])
    reps, = _dims(repetitions=repetitions)
    if vid == 3 and kernels is None:
        kernels = specialized_kernels("rstr", m, n, k, mm, nn, kk, dtype=a.dtype, target=target)
    if s == 0:
        return c
    _nek_kernels.rstr(vid, _isa(target), _threads(threads), reps, m, n, k, mm, nn, kk, af, *ops, cf, kernels)
    return c
