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
