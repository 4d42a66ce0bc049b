"""JSON records: one object per variant per run, appended atomically to a JSON-lines file.

The schema is documented in docs/records.md (``SCHEMA`` is its version).

Writing a line: under an exclusive ``flock``, in one ``write`` on an ``O_APPEND`` descriptor, so
concurrent jobs appending to one file never interleave. Linux can still cut a write to a regular
file short when a fatal signal arrives in the middle of it; so the catchable termination signals
(``SIGTERM`` from ``scancel``/``qdel``, ``SIGHUP``, ...) are held back during the write and
delivered right after it, and a short write is cut off again before the lock is released. Only
``SIGKILL`` can leave a fragment: the next writer removes it (under the lock) before appending,
and :func:`read` skips lines that do not parse.
"""
import datetime
import fcntl
import json
import math
import os
import platform
import signal
import socket
import subprocess
import threading
import contextlib
from importlib import metadata

SCHEMA = 1

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def json_path(path, app):
    """Where ``--json PATH`` writes: ``PATH/<app>.jsonl`` when PATH is a directory or ends in '/'."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        return os.path.join(path, f"{app}.jsonl")
    return path


def _finite(value):
    """JSON has no NaN/Infinity: non-finite floats become null (docs/records.md)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain(value):
    """numpy scalars/arrays and other odd argument values as JSON-able Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def encode(record):
    """One record as one line of strict JSON (with its newline), as bytes."""
    return (json.dumps(_finite(_plain(record)), allow_nan=False, separators=(",", ":")) + "\n").encode()


# Signals whose default action ends the process (and would cut a write short).
_HELD_SIGNALS = tuple(getattr(signal, name) for name in
                      ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGXCPU", "SIGPIPE")
                      if hasattr(signal, name))


@contextlib.contextmanager
def _termination_held():
    """Catch termination signals inside the block; deliver them, as they would have been, after it.

    A handler (rather than a blocked mask) because a process-directed signal would otherwise be
    taken by another thread (an OpenMP or BLAS worker) and still end the process mid-write.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {}
    for sig in _HELD_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
        except (OSError, ValueError):
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in caught:
            os.kill(os.getpid(), sig)


def _drop_fragment(fd, size):
    """Size of the file once an unterminated last line left by a killed writer is removed.

    An unterminated line that parses (a file edited by hand) is kept and gets its newline.
    Returns ``(new_size, needs_newline)``.
    """
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size, False
    start = size
    block = 65536
    while start > 0:
        lo = max(0, start - block)
        chunk = os.pread(fd, start - lo, lo)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            start = lo + cut + 1
            break
        start = lo
    tail = os.pread(fd, size - start, start)
    try:
        json.loads(tail)
        return size, True
    except ValueError:
        os.ftruncate(fd, start)
        return start, False


def append(path, record):
    """Append ``record`` as one line to ``path`` (created with its directories), atomically."""
    line = encode(record)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size, needs_newline = _drop_fragment(fd, os.fstat(fd).st_size)
        if needs_newline:
            line = b"\n" + line
        with _termination_held():
            written = os.write(fd, line)
            if written != len(line):
                os.ftruncate(fd, size)
        if written != len(line):
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes (disk full?)")
    finally:
        os.close(fd)  # also releases the lock


def read(path):
    """Records of a JSON-lines file; lines that do not parse are skipped (returned count second)."""
    records, bad = [], 0
    with open(path, "rb") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict):
                records.append(obj)
            else:
                bad += 1
    return records, bad


def versions(mpi_library=None):
    """Versions of what the figures depend on."""
    out = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "mpi4py", "mpich", "threadpoolctl", "smm-miniapps"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        import core
        out["core"] = core.__version__
    except ImportError:
        out["core"] = None
    out["mpi"] = mpi_library
    return out


def git_describe(root=_REPO_ROOT):
    """Commit of the source tree the mini-apps run from (``-dirty`` if changed), or None."""
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        out = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None  # not a work tree, or no commit yet
    return out.stdout.strip() or None


def job_info(environ=None):
    """Batch-job identity from the scheduler's environment (None outside a batch job)."""
    env = os.environ if environ is None else environ
    if env.get("SLURM_JOB_ID"):
        return {"scheduler": "slurm", "id": env["SLURM_JOB_ID"], "name": env.get("SLURM_JOB_NAME"),
                "nodes": env.get("SLURM_JOB_NUM_NODES"), "partition": env.get("SLURM_JOB_PARTITION")}
    if env.get("PBS_JOBID"):
        return {"scheduler": "pbs", "id": env["PBS_JOBID"], "name": env.get("PBS_JOBNAME"),
                "nodes": None, "partition": env.get("PBS_QUEUE")}
    return None


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def hostname():
    return socket.gethostname()
