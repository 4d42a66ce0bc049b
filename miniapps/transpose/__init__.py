"""LIBXSMM's transpose sample on core.transpose: the mini-app (``python -m miniapps.transpose``)
and its tile tuner (``python -m miniapps.transpose.tune``). What both share lives here: the
sample's shapes (fixed, or random within bounds) and the table of resolved per-shape parameters
that the timed C loop (:mod:`miniapps.transpose._kern`) runs."""
import numpy as np

from core import transpose as _tr

# LIBXSMM's transpose sample: fixed seed when checking (CHECK != 0).
SEED = 25071975


def random_shapes(rng, m, n, ldi, ldo, count, lbound, inplace):
    """``count`` shapes ``(km, kn, kldi, kldo)`` as the sample draws them.

    ``km`` in ``[|lbound|, m]``, ``kn`` in ``[|lbound|, n]`` (in-place: ``kn = km``). A negative
    ``lbound`` makes the leading dimensions tight; otherwise they are random too, between the drawn
    extent and ``ldi``/``ldo``.
    """
    low = abs(lbound)
    if low > m or (not inplace and low > n):
        raise ValueError(f"lbound={lbound} exceeds the matrix extents m={m}, n={n}")
    shapes = []
    for _ in range(count):
        km = int(rng.integers(low, m + 1))
        kn = km if inplace else int(rng.integers(low, n + 1))
        if lbound < 0:
            kldi, kldo = max(km, 1), max(kn, 1)
        else:
            kldi = int(rng.integers(max(km, 1), max(ldi, km, 1) + 1))
            kldo = kldi if inplace else int(rng.integers(max(kn, 1), max(ldo, kn, 1) + 1))
        shapes.append((km, kn, kldi, kldo))
    return shapes


def shape_table(shapes, dtype, kind, *, threads=None, target=None, tile_m=None, tile_n=None):
    """The ``_kern.run_shapes`` table: each shape with the tiles, threads and streaming choice the
    library would use for it (:func:`core.transpose.plan`), resolved before any timing."""
    rows = []
    for km, kn, kldi, kldo in shapes:
        p = _tr.plan(km, kn, dtype=dtype, kind=kind, tile_m=tile_m, tile_n=tile_n, threads=threads,
                     target=target)
        rows.append((km, kn, kldi, kldo, p["tile_m"], p["tile_n"], p["threads"], int(p["streaming"])))
    return np.array(rows, dtype=np.int64).reshape(-1, 8)
