"""The object a mini-app's ``main(ctx)`` receives: MPI, threads, timing, validation, reports.

Collective methods (every rank must call them, in the same order): :meth:`Context.timeit`,
:meth:`Context.gather_timing`, :meth:`Context.timer`, :meth:`Context.validate` (when checking),
:meth:`Context.report`, :meth:`Context.bindings`, :meth:`Context.barrier`. The others are local.
"""
import contextlib
import os
import sys
import time

import numpy as np

from core import cpu as _cpu

from . import mpi as _mpi
from . import pinning, records
from .args import UsageError, app_arguments
from .timing import Stopwatch, Timing, timeit as _timeit

_DTYPES = {"f64": np.dtype(np.float64), "f32": np.dtype(np.float32)}
# Default validation tolerances (relative, infinity norm): a few thousand ulps of the type, for
# sums of products whose length the runtime does not know.
_TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}
_CHUNK = 1 << 22  # elements compared at a time: bounds the temporaries of validate()
_MAX_HOSTS_IN_RECORD = 64


class AppError(RuntimeError):
    """A clean failure (``ctx.fail``): its message is printed without a traceback, exit status 1."""


class Context:
    """Everything a mini-app needs beside its science (docs/runtime-contract.md).

    Created by :func:`miniapps.runtime.run` (or :func:`miniapps.runtime.setup` in tests) after
    MPI is up, the node's CPUs are shared among its ranks, this rank's OpenMP threads are bound and
    BLAS is limited to one thread.
    """

    def __init__(self, name, args, comm, MPI=None, serial_reason=None, argv=None):
        self.name = name
        self.args = args
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.comm = comm
        self.mpi = MPI
        self.serial_reason = serial_reason
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._reduce = _mpi.Reductions(comm, MPI)
        self.quiet = bool(getattr(args, "quiet", False))
        self.check = bool(getattr(args, "check", False))
        self.dtype = _DTYPES[getattr(args, "dtype", "f64")]
        self.target = _cpu.target()
        self.reports = []
        self._failed_variants = []
        self._blas_limits = None
        self._last_progress = 0.0
        self._binding_warned = False
        self._setup_node()
        self._setup_threads()
        self._setup_blas()
        self._setup_metadata()

    # ---- set-up (collective) -------------------------------------------------------------

    def _setup_node(self):
        self.local_comm = _mpi.node_comm(self.comm, self.mpi)
        self.local_rank = self.local_comm.Get_rank()
        self.local_size = self.local_comm.Get_size()
        self.host = records.hostname()
        hosts = self.comm.allgather(self.host)
        self.rank0_host = hosts[0]
        self.hosts = sorted(set(hosts))
        self.nodes = len(self.hosts)
        masks = self.local_comm.allgather(pinning.initial_mask())
        shares, node_cpus, source = pinning.node_shares(masks)
        self.cpus = shares[self.local_rank]
        self.node_cpus = node_cpus
        self.share_source = source
        self.ranks_per_node = self._reduce.max(self.local_size)

    def _setup_threads(self):
        requested = getattr(self.args, "threads", None)
        self.threads = requested or pinning.default_threads(
            self.cpus, self.local_size, len(self.node_cpus), pinning.omp_num_threads_env())
        node_threads = self.local_comm.allreduce(self.threads)  # sum: every rank of this node
        self.oversubscribed = bool(self._reduce.max(
            int(node_threads > len(self.node_cpus) or self.local_size > len(self.node_cpus))))
        self.threads_total = self._reduce.sum(self.threads)
        pin = getattr(self.args, "pin", None)
        self.pin = pin or ("none" if self.oversubscribed else "compact")
        self.thread_cpus = pinning.thread_groups(self.cpus, self.threads, self.pin)
        if self.thread_cpus is None:
            self.cpus = sorted(os.sched_getaffinity(0))  # nothing enforced: where it runs now
        pinning.bind(self.threads, self.thread_cpus)
        wrong = pinning.mismatches(self.thread_cpus, pinning.read_back(self.threads))
        self.binding_ok = self._reduce.min(int(not wrong)) == 1
        if wrong:
            self._warn(f"threads {wrong} did not keep the CPUs they were bound to")

    def _setup_blas(self):
        from threadpoolctl import threadpool_info, threadpool_limits
        # BLAS pools beside our OpenMP team would oversubscribe the rank's CPUs; a BLAS variant
        # of a mini-app calls BLAS once per small product, as LIBXSMM's samples do.
        self._blas_limits = threadpool_limits(limits=1, user_api="blas")
        keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer")
        self.threadpools = [{k: pool.get(k) for k in keep} for pool in threadpool_info()]

    def _setup_metadata(self):
        meta = None
        if self.rank == 0:
            meta = {"cpu": _cpu.model(), "versions": records.versions(_mpi.library_version(self.mpi)),
                    "git": records.git_describe(), "job": records.job_info()}
        self._meta = self.comm.bcast(meta, root=0)

    def close(self):
        """Undo the BLAS limit (the runtime calls this when the mini-app returns)."""
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
            self._blas_limits = None

    # ---- printing (rank 0) ---------------------------------------------------------------

    def print(self, *args, **kwargs):
        """``print`` on rank 0 only, and not with ``--quiet``."""
        if self.rank == 0 and not self.quiet:
            kwargs.setdefault("flush", True)
            print(*args, **kwargs)

    def header(self, text):
        """The sample's configuration line(s), printed first (rank 0, not with ``--quiet``)."""
        self.print(text)

    def progress(self, i, n, label=""):
        """A progress line for long runs: rank 0, at most every 2 s, and always at the end."""
        if self.rank != 0 or self.quiet:
            return
        now = time.monotonic()
        if i < n and now - self._last_progress < 2.0:
            return
        self._last_progress = now
        pct = 100.0 * i / n if n else 100.0
        print(f"\t{label + ' ' if label else ''}{i}/{n} ({pct:.0f}%)", flush=True)

    def _warn(self, text):
        print(f"[rank {self.rank}] warning: {text}", file=sys.stderr, flush=True)

    # ---- errors ----------------------------------------------------------------------------

    def fail(self, msg):
        """Stop with a clean error (no traceback), exit status 1 on every rank.

        When every rank calls it, the job ends normally with status 1; when only some do, the
        runtime aborts the job (MPI_Abort) within seconds.
        """
        raise AppError(msg)

    def usage_error(self, msg):
        """Stop because of a bad argument combination: message and usage, exit status 2."""
        raise UsageError(msg)

    # ---- threads and BLAS ------------------------------------------------------------------

    @contextlib.contextmanager
    def blas_single_threaded(self):
        """Limit numpy/scipy BLAS pools to one thread inside the block (threadpoolctl).

        The runtime already does this for the whole of ``main``; use it where code runs outside
        (or to make the intent explicit).
        """
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1, user_api="blas"):
            yield

    def _ensure_binding(self):
        """Re-pin if a team of another size replaced pool threads (docs/runtime.md)."""
        if self.thread_cpus is None:
            return
        wrong = pinning.mismatches(self.thread_cpus, pinning.read_back(self.threads))
        if wrong:
            if not self._binding_warned:
                self._warn(f"OpenMP threads {wrong} lost their binding (a parallel region with a "
                           f"team smaller than {self.threads}?); binding them again")
                self._binding_warned = True
            pinning.bind(self.threads, self.thread_cpus)

    def bindings(self):
        """Collective: every rank's binding, read back from inside an OpenMP region.

        Returns (on every rank) one dict per rank: host, rank, local_rank, local_size, cpus
        (share), pin, threads and ``omp``: ``[(thread, cpu, allowed_cpus), ...]``.
        """
        mine = {"host": self.host, "rank": self.rank, "local_rank": self.local_rank,
                "local_size": self.local_size, "cpus": list(self.cpus), "pin": self.pin,
                "threads": self.threads,
                "omp": [(t, cpu, list(allowed)) for t, (cpu, allowed) in enumerate(pinning.read_back(self.threads))]}
        return self.comm.allgather(mine)

    def print_bindings(self):
        """Collective: rank 0 prints :meth:`bindings` (also with ``--quiet``: it was asked for)."""
        table = self.bindings()
        if self.rank != 0:
            return table
        fmt = pinning.format_cpu_list
        for b in table:
            print(f"bindings: rank {b['rank']} on {b['host']} (node rank {b['local_rank']} of "
                  f"{b['local_size']}): cpus {fmt(b['cpus'])}, pin {b['pin']}, {b['threads']} "
                  f"thread{'s' if b['threads'] != 1 else ''}"
                  f"{', oversubscribed' if self.oversubscribed else ''}")
            for t, cpu, allowed in b["omp"]:
                print(f"\tomp thread {t}: on cpu {cpu}, allowed {fmt(allowed)}")
        sys.stdout.flush()
        return table

    # ---- timing ----------------------------------------------------------------------------

    def barrier(self):
        self.comm.Barrier()

    def timeit(self, fn, repeat=None, warmup=1, per_repeat=True):
        """Collective: ``warmup`` untimed calls of ``fn()``, a barrier, ``repeat`` timed calls.

        ``repeat`` defaults to ``--repeat``. Returns a :class:`Timing` of each rank's seconds per
        call (``per_repeat=False``: the total over the repeats).
        """
        if repeat is None:
            repeat = getattr(self.args, "repeat", 1)
        self._ensure_binding()
        return _timeit(self.comm, fn, repeat=repeat, warmup=warmup, per_repeat=per_repeat)

    def timer(self, repeat=1, per_repeat=True):
        """Collective: ``with ctx.timer() as sw: ...`` then ``sw.timing`` (for hand-made loops)."""
        self._ensure_binding()
        return Stopwatch(self.comm, repeat, per_repeat)

    def gather_timing(self, seconds, repeat=1, per_repeat=True):
        """Collective: a :class:`Timing` from this rank's own measured seconds."""
        return Timing.gather(self.comm, seconds, repeat, per_repeat)

    # ---- validation ------------------------------------------------------------------------

    def validate(self, result, reference, tol=None):
        """Collective when checking: compare ``result`` with the numpy ``reference``.

        ``result``/``reference``: arrays of the same shape, or equally long sequences of them;
        ``reference`` may be a callable (only called when checking). Returns None without
        ``--check``; otherwise ``{"ok", "max_rel_err", "max_abs_err", "l2_rel_err", "tol"}`` over
        all ranks, where ``max_rel_err = max|result - reference| / max|reference|``. ``ok`` needs
        ``max_rel_err <= tol`` and no NaN/Inf where the reference has none. Default ``tol``: 1e-10
        (f64), 1e-4 (f32), 0 (integers).
        """
        if not self.check:
            return None
        if callable(reference):
            reference = reference()
        pairs = _pairs(result, reference)
        if tol is None:
            tol = max(_TOLERANCE.get(np.asarray(r).dtype, 0.0) for r, _ in pairs) if pairs else 0.0
        stats = np.zeros(5)  # max|diff|, max|ref|, sum diff^2, sum ref^2, bad (non-finite)
        for res, ref in pairs:
            _accumulate(stats, res, ref)
        top = self._reduce.max_array([stats[0], stats[1], stats[4]])
        sums = self._reduce.sum_array([stats[2], stats[3]])
        max_abs, max_ref, bad = float(top[0]), float(top[1]), bool(top[2])
        if max_ref > 0:
            rel = max_abs / max_ref
        else:
            rel = 0.0 if max_abs == 0 else float("inf")
        l2 = float(np.sqrt(sums[0] / sums[1])) if sums[1] > 0 else (0.0 if sums[0] == 0 else float("inf"))
        ok = (not bad) and rel <= tol
        if bad:
            rel = float("inf")
        return {"ok": bool(ok), "max_rel_err": rel, "max_abs_err": float("inf") if bad else max_abs,
                "l2_rel_err": float("inf") if bad else l2, "tol": float(tol)}

    # ---- reports ---------------------------------------------------------------------------

    def report(self, variant, timing, flops=None, nbytes=None, calls=None, check=None, extra=None,
               *, label=None, show=True):
        """Collective: print the LIBXSMM-style lines of one variant and write its record.

        ``flops``, ``nbytes`` and ``calls`` are this rank's work in the timed interval (per
        repeat when ``timing.per_repeat``); rates are their sums over ranks divided by
        ``timing.max``. GB are 2^30 bytes, as in LIBXSMM. ``check`` is what :meth:`validate`
        returned. ``extra`` (a dict) goes into the record as is. Returns the record (every rank).
        """
        if not isinstance(timing, Timing):
            raise TypeError(f"timing must be a Timing (from ctx.timeit), got {type(timing).__name__}")
        work = np.array([flops or 0.0, nbytes or 0.0, calls or 0.0, flops is not None,
                         nbytes is not None, calls is not None], dtype=np.float64)
        total = self._reduce.sum_array(work)
        seconds = timing.max
        per = lambda amount, given: (amount / seconds if seconds > 0 else None) if given else None
        gflops = per(total[0] / 1e9, total[3] > 0)
        gbs = per(total[1] / 2 ** 30, total[4] > 0)
        calls_per_s = per(total[2], total[5] > 0)
        if check is not None and not check.get("ok", False):
            self._failed_variants.append(variant)
        record = self._record(variant, label, timing, gflops, gbs, calls_per_s,
                              _count(total[0], total[3]), _count(total[1], total[4]),
                              _count(total[2], total[5]), check, extra)
        if show:
            self._print_variant(label or variant, timing, gflops, gbs, calls_per_s, check)
        path = getattr(self.args, "json", None)
        if path and self.rank == 0:
            records.append(records.json_path(path, self.name), record)
        self.reports.append(record)
        return record

    def _print_variant(self, title, timing, gflops, gbs, calls_per_s, check):
        if self.rank != 0 or self.quiet:
            return
        lines = [f"{title}..."]
        if gflops is not None:
            lines.append(f"\tperformance: {gflops:.1f} GFLOPS/s")
        if gbs is not None:
            lines.append(f"\tbandwidth: {gbs:.1f} GB/s")
        if calls_per_s is not None:
            lines.append(f"\tcalls/s: {calls_per_s:.0f} Hz")
        duration = f"\tduration: {_ms(timing.max)} ms"
        if len(timing.per_rank) > 1:
            duration += f" (ranks: min {_ms(timing.min)}, avg {_ms(timing.avg)})"
        lines.append(duration)
        if check is not None:
            line = (f"\tdiff: max_rel={check['max_rel_err']:.3g} L2rel={check.get('l2_rel_err', float('nan')):.3g} "
                    f"Linf={check.get('max_abs_err', float('nan')):.3g}")
            if not check.get("ok", False):
                line += f" FAILED (tol {check.get('tol', float('nan')):.3g})"
            lines.append(line)
        print("\n".join(lines), flush=True)

    def _record(self, variant, label, timing, gflops, gbs, calls_per_s, flops, nbytes, calls, check, extra):
        meta = self._meta
        return {
            "schema": records.SCHEMA,
            "app": self.name,
            "variant": variant,
            "label": label,
            "args": app_arguments(self.args),
            "argv": self.argv,
            "ranks": self.size,
            "nodes": self.nodes,
            "ranks_per_node": self.ranks_per_node,
            "threads": self.threads,
            "threads_total": self.threads_total,
            "pin": self.pin,
            "oversubscribed": self.oversubscribed,
            "binding": {"source": self.share_source, "ok": self.binding_ok},
            "target": self.target,
            "dtype": _dtype_name(self.dtype),
            "repeat": timing.repeat,
            "seconds": timing.max,
            "seconds_min": timing.min,
            "seconds_avg": timing.avg,
            "seconds_per_rank": list(timing.per_rank),
            "per_repeat": timing.per_repeat,
            "gflops": gflops,
            "gbs": gbs,
            "calls_per_s": calls_per_s,
            "flops": flops,
            "bytes": nbytes,
            "calls": calls,
            "check": None if check is None else {k: check[k] for k in check},
            "extra": extra,
            "host": self.rank0_host,
            "hosts": self.hosts[:_MAX_HOSTS_IN_RECORD],
            "cpu": meta["cpu"],
            "threadpools": self.threadpools,
            "mpi": meta["versions"].get("mpi") if self.mpi is not None else None,
            "versions": meta["versions"],
            "git": meta["git"],
            "job": meta["job"],
            "time": records.utc_now(),
        }

    def finish(self):
        """Collective: True if any rank saw a failed check (the runtime then exits with 1)."""
        failed = self._reduce.max(int(bool(self._failed_variants)))
        if failed and self.rank == 0:
            names = ", ".join(self._failed_variants) or "(on another rank)"
            print(f"{self.name}: validation FAILED: {names}", file=sys.stderr, flush=True)
        return bool(failed)

    def describe(self):
        """One configuration line: what the runtime set up (printed first by the runtime)."""
        mpi = "serial (no MPI: " + self.serial_reason + ")" if self.serial_reason else (
            f"{self.size} rank{'s' if self.size != 1 else ''} on {self.nodes} node{'s' if self.nodes != 1 else ''}")
        return (f"{self.name}: {mpi}, {self.threads} thread{'s' if self.threads != 1 else ''}/rank, "
                f"pin={self.pin}{' (oversubscribed)' if self.oversubscribed else ''}, "
                f"target={self.target}, dtype={_dtype_name(self.dtype)}")


def _count(amount, given):
    """A summed amount for the record: None when not given, an int when it is a whole number."""
    if not given:
        return None
    return int(amount) if float(amount).is_integer() and abs(amount) < 2 ** 63 else float(amount)


def _dtype_name(dtype):
    return {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}.get(np.dtype(dtype), np.dtype(dtype).name)


def _ms(seconds):
    ms = 1e3 * seconds
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


def _pairs(result, reference):
    """(result, reference) array pairs; ValueError naming what does not match."""
    if isinstance(result, (list, tuple)) or isinstance(reference, (list, tuple)):
        if not isinstance(result, (list, tuple)) or not isinstance(reference, (list, tuple)):
            raise ValueError("result and reference must both be arrays or both be sequences of arrays")
        if len(result) != len(reference):
            raise ValueError(f"result has {len(result)} arrays, reference {len(reference)}")
        return [p for r, f in zip(result, reference) for p in _pairs(r, f)]
    res, ref = np.asarray(result), np.asarray(reference)
    if res.shape != ref.shape:
        raise ValueError(f"result shape {res.shape} differs from reference shape {ref.shape}")
    return [(res, ref)]


def _accumulate(stats, res, ref):
    res, ref = res.reshape(-1), ref.reshape(-1)
    for start in range(0, res.size, _CHUNK):
        r = res[start:start + _CHUNK].astype(np.float64, copy=False)
        f = ref[start:start + _CHUNK].astype(np.float64, copy=False)
        with np.errstate(invalid="ignore", over="ignore"):
            same = (r == f) | (np.isnan(r) & np.isnan(f))
            diff = np.where(same, 0.0, np.abs(r - f))
        finite_ref = np.abs(f[np.isfinite(f)])
        if not np.all(np.isfinite(diff)):
            stats[4] = 1.0
            diff = diff[np.isfinite(diff)]
        if diff.size:
            stats[0] = max(stats[0], float(diff.max()))
            stats[2] += float(np.dot(diff, diff))
        if finite_ref.size:
            stats[1] = max(stats[1], float(finite_ref.max()))
            stats[3] += float(np.dot(finite_ref, finite_ref))
