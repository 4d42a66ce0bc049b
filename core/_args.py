"""Argument checks shared by the layer modules (core.conv, core.dnn): integers that must fit the C
side's ``int``, ``(h, w)`` pairs, and outputs that must not share memory with inputs.

Each raises ``TypeError``/``ValueError`` naming the argument, so that a bad value never reaches C
(where it would wrap or be misread) and is never reported as a bare ``OverflowError``.
"""
import numpy as np

INT_MAX = 2**31 - 1


def int_arg(value, name, lo=0, hi=INT_MAX):
    """``value`` as a Python int in ``[lo, hi]`` (bools and non-integers refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if v < lo and hi == INT_MAX:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def pair_arg(value, name, lo=0, hi=INT_MAX):
    """An int (used for both) or a pair of ints, each in ``[lo, hi]``, as a tuple ``(h, w)``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        v = int_arg(value, name, lo, hi)
        return v, v
    try:
        h, w = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    return int_arg(h, f"{name}[0]", lo, hi), int_arg(w, f"{name}[1]", lo, hi)


def no_overlap(out, out_name, **inputs):
    """Refuses an output that shares memory with any of the named inputs (None ones skipped).

    Exact when numpy can decide within a small budget, else conservative (refused)."""
    for name, arr in inputs.items():
        if arr is None:
            continue
        try:
            shared = arr is out or np.shares_memory(out, arr, max_work=100000)
        except np.exceptions.TooHardError:
            shared = True
        if shared:
            raise ValueError(f"{out_name} overlaps {name}: the output must not alias an input")


def real_arg(value, name):
    """``value`` as a Python float (ints, floats and numpy scalars of either; bools refused).

    For float parameters of the C kernels, converted here so that a bad value raises an error
    naming the argument instead of Cython's anonymous conversion error."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float (an int of {int(value).bit_length()} bits)") from None


def flag_arg(value, name):
    """A bool (or numpy bool, or the ints 0 and 1) as a Python bool."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r}" if isinstance(value, (int, np.integer))
                    else f"{name} must be a bool, got {type(value).__name__}")


def dims_arg(arr, name, axes, scale=None):
    """Refuses an array whose extent along one of ``axes`` does not fit a C ``int`` (times
    ``scale[axis]`` where the kernels multiply it, e.g. channel blocks by 16), even when the
    array is empty. The error names the array and the axis."""
    for ax in axes:
        s = (scale or {}).get(ax, 1)
        if arr.shape[ax] * s > INT_MAX:
            what = f"{arr.shape[ax]} x {s}" if s != 1 else f"{arr.shape[ax]}"
            raise ValueError(f"{name}.shape[{ax}] = {arr.shape[ax]} is too large: the kernels index it "
                             f"as a C int ({what} > {INT_MAX})")
