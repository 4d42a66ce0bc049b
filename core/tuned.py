"""Tuned parameters: the JSON file autotuners write and the library reads by default.

The file is :func:`core._config.tuned_file` (``SMM_TUNED_FILE``, default
``~/.cache/smm-miniapps/tuned.json``). One file holds every tuner's results, keyed by what the best
value depends on::

    {"format": "smm-miniapps-tuned", "version": 1,
     "entries": {
       "<section>": {                      e.g. "transpose"
         "<cpu model>": {                  core.cpu.model()
           "<isa path>": {                 "generic" | "avx2" | "avx512"
             "<key>": {                    e.g. "otrans-f64"
               "<size class>": {...}}}}}}} "small" | "medium" | "large": the tuned values

A missing file means "nothing tuned"; an unreadable one is ignored with a warning when reading, and
refused when writing (it is never silently replaced). Writes are atomic (temporary file + rename,
under a lock file), so concurrent tuners and readers never see half a file.
"""
import contextlib
import json
import os
import tempfile
import time
import warnings

from . import _config, cpu

FORMAT = "smm-miniapps-tuned"
VERSION = 1

# Size classes by the bytes of one operand: "small" fits a core's L2 on current x86 server parts,
# "medium" a shared L3, "large" is memory-bound. Upper bounds (exclusive), in bytes.
SIZE_CLASSES = (("small", 1 << 19), ("medium", 1 << 24), ("large", None))

_cache = {}      # path -> ((mtime_ns, size), document)
_warned = set()  # (path, stat key) already reported as unreadable

# Library calls look tuned values up on every call; re-checking the path and the file's stat at most
# this often keeps that under a microsecond. store() and refresh() take effect at once.
RECHECK_SECONDS = 0.25
_current = {"checked": -1e9, "path": None, "doc": None}  # mutated, never rebound: core.transpose reads it


def size_class(nbytes):
    """Size class (``'small'``, ``'medium'``, ``'large'``) of an operand of ``nbytes`` bytes."""
    for name, upper in SIZE_CLASSES:
        if upper is None or nbytes < upper:
            return name
    raise AssertionError("unreachable")


def size_class_bounds(name):
    """``(lower, upper)`` bytes of a size class; ``upper`` is ``None`` for the last one."""
    lower = 0
    for cls, upper in SIZE_CLASSES:
        if cls == name:
            return lower, upper
        lower = upper
    raise ValueError(f"size class must be one of {[c for c, _ in SIZE_CLASSES]}, got {name!r}")


def path():
    """The tuned-parameter file in use."""
    return _config.tuned_file()


def _empty():
    return {"format": FORMAT, "version": VERSION, "entries": {}}


def _parse(text, where):
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("entries"), dict):
        raise ValueError(f"{where} is not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise ValueError(f"{where} has version {doc.get('version')!r}, this library reads version {VERSION}")
    return doc


def _read(file):
    """The document at ``file``; raises ``ValueError`` when it exists but cannot be used."""
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return _empty()
    try:
        return _parse(text, file)
    except json.JSONDecodeError as e:
        raise ValueError(f"{file} is not valid JSON ({e})") from None


def load(file=None):
    """The whole document (cached; re-read when the file changes). Unreadable: warn, use empty."""
    file = file or path()
    try:
        st = os.stat(file)
    except OSError:
        _cache.pop(file, None)
        return _empty()
    key = (st.st_mtime_ns, st.st_size)
    hit = _cache.get(file)
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        doc = _read(file)
    except (OSError, ValueError) as e:
        if (file, key) not in _warned:
            _warned.add((file, key))
            warnings.warn(f"ignoring the tuned-parameter file: {e}", RuntimeWarning, stacklevel=2)
        doc = _empty()
    _cache[file] = (key, doc)
    return doc


_MODEL = None


def _model():
    global _MODEL
    if _MODEL is None:
        _MODEL = cpu.model()
    return _MODEL


def refresh():
    """Forget what was read: the next look-up re-reads ``SMM_TUNED_FILE`` and the file."""
    _current["checked"] = -1e9
    _cache.clear()


def current():
    """The document of the file in use, re-checked at most every ``RECHECK_SECONDS``."""
    now = time.monotonic()
    if now - _current["checked"] >= RECHECK_SECONDS or _current["doc"] is None:
        _current["path"] = path()
        _current["doc"] = load(_current["path"])
        _current["checked"] = now
    return _current["doc"]


def lookup(section, key, size_class, *, model=None, isa=None, file=None):
    """Tuned values (a dict) for this CPU model and ISA path, or ``None`` when nothing was tuned.

    Without ``file``: the file in use (:func:`current`); changes to it are seen within
    ``RECHECK_SECONDS`` (or at once after :func:`refresh`).
    """
    entries = (load(file) if file else current())["entries"]
    try:
        found = entries[section][model or _model()][isa or cpu.target()][key][size_class]
    except (KeyError, TypeError):
        return None
    return found if isinstance(found, dict) else None


@contextlib.contextmanager
def _locked(file):
    lock_path = file + ".lock"
    with open(lock_path, "a") as lock:
        try:
            import fcntl
        except ImportError:  # not POSIX: the atomic rename still keeps readers safe
            yield
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def store(section, key, size_class, values, *, model=None, isa=None, file=None):
    """Write ``values`` (a JSON-able dict) for this CPU model, ISA path, key and size class.

    Other entries in the file are kept. Returns the file's path. ``ValueError`` if the existing
    file is not a tuned-parameter file (it is left untouched).
    """
    size_class_bounds(size_class)  # validates the name
    if not isinstance(values, dict):
        raise TypeError(f"values must be a dict, got {type(values).__name__}")
    file = file or path()
    os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
    with _locked(file):
        doc = _read(file)
        node = doc["entries"]
        for part in (section, model or _model(), isa or cpu.target(), key):
            node = node.setdefault(part, {})
        node[size_class] = values
        fd, tmp = tempfile.mkstemp(prefix=".tuned-", suffix=".json", dir=os.path.dirname(os.path.abspath(file)))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(tmp, file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    refresh()
    return file
