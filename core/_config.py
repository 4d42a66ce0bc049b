"""The one place that reads the library's environment variables.

Every run-time knob of ``core`` is an environment variable documented here (as LIBXSMM's
``LIBXSMM_*`` variables are); no other module of the library reads ``os.environ``.

========================  ==================================================================
``SMM_TARGET``            ``generic`` | ``avx2`` | ``avx512`` (also LIBXSMM's ``hsw``/``skx``
                          spellings and ``0``/empty for "from CPUID"): forces an ISA path.
                          A path the CPU lacks falls back to the best one it has, with a
                          warning, never an illegal instruction.
``SMM_VERBOSE``           ``0`` (default) silent; ``1`` prints registry statistics at exit;
                          ``2`` also logs the ISA choice at import.
``SMM_TUNED_FILE``        path of the tuned-parameter JSON file (default: the per-user file
                          ``~/.cache/smm-miniapps/tuned.json``).
``TRANS_M``/``TRANS_N``   transpose tile sizes (as LIBXSMM's transpose sample).
========================  ==================================================================
"""
import os

_TARGET_ALIASES = {
    "": None, "0": None, "auto": None, "cpuid": None,
    "generic": "generic", "none": "generic", "scalar": "generic", "sse": "generic", "sse3": "generic",
    "sse4": "generic", "avx": "generic", "snb": "generic",
    "avx2": "avx2", "hsw": "avx2", "haswell": "avx2",
    "avx512": "avx512", "avx512f": "avx512", "skx": "avx512", "clx": "avx512", "cpx": "avx512",
}


def requested_target():
    """The ISA path forced by ``SMM_TARGET`` (``None``: choose from CPUID)."""
    raw = os.environ.get("SMM_TARGET", "").strip().lower()
    if raw not in _TARGET_ALIASES:
        raise ValueError(
            f"SMM_TARGET={raw!r} is not a known target; use one of generic, avx2, avx512 (or unset it)")
    return _TARGET_ALIASES[raw]


def verbose():
    """Verbosity level from ``SMM_VERBOSE`` (0 when unset or not an integer)."""
    try:
        return int(os.environ.get("SMM_VERBOSE", "0") or 0)
    except ValueError:
        return 0


def tuned_file():
    """Path of the tuned-parameter file."""
    path = os.environ.get("SMM_TUNED_FILE")
    if path:
        return path
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "smm-miniapps", "tuned.json")


def int_env(name, default=None):
    """An integer environment variable (``default`` when unset or empty); a clear error otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} must be an integer") from None


# The environment variables of the transpose tiles, as LIBXSMM's transpose sample names them.
TRANSPOSE_TILE_VARS = ("TRANS_M", "TRANS_N")


def transpose_tiles():
    """Transpose tile sizes ``(TRANS_M, TRANS_N)`` from the environment, each ``None`` when unset.

    ``TRANS_M`` is the tile's extent along the input's rows (m), ``TRANS_N`` along its columns (n),
    in elements, as in LIBXSMM's transpose sample; both must be positive integers.
    """
    tiles = []
    for name in TRANSPOSE_TILE_VARS:
        value = int_env(name)
        if value is not None and value < 1:
            raise ValueError(f"environment variable {name}={value} must be a positive integer")
        tiles.append(value)
    return tuple(tiles)
