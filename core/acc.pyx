# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""An accelerator-style device made of host threads: the offload path of CP2K's stack processing.

CP2K drives GPUs through a small interface (DBCSR's ``acc``): a device, streams (in-order queues),
events, device memory, asynchronous host-to-device copies, and a "process stack" call that runs a
batch of small products on the device. This module provides the same interface on the CPU: the
device is a pool of native worker threads of its own (not the rank's OpenMP team; OpenMP is never
nested inside it), so the host can generate stack i+1 while the device processes stack i.

    dev = Device(threads=2)
    s = dev.stream()
    a_d = dev.empty(a.shape, a.dtype); s.copy_to_device(a_d, a)
    ...
    s.process_stack(smm_stack_kernel(23), a_d, b_d, c_d, stack_d)   # (count, 3) offsets
    s.copy_to_host(c, c_d)
    s.synchronize()          # an error inside a worker is raised here as DeviceError

Stacks are DBCSR parameter stacks: row e holds the element offsets (minus ``index_base``) of A,
B and C blocks (column-major, m x k, k x n, m x n, leading dimensions from the kernel). C blocks
may repeat anywhere, also across concurrent streams: updates are race-free (see docs/cp2k.md).
Errors (bad indices, a failing host function) never hang the device or leave a silent wrong
result: the stream skips its later work and the next ``synchronize``/``Event.wait`` raises.

The same executor also runs synchronously on the caller's OpenMP team (:func:`run_stack`).
"""
import atexit
import os
import weakref

import numpy as np

cimport cython
cimport numpy as cnp
from cpython.ref cimport PyObject
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from .smm cimport Kernel, smm_desc, smm_kernel, smm_call_reduce_prefetch, reduce_bytes
from .threads cimport resolve_threads

cnp.import_array()

cdef extern from "acc.h" nogil:
    enum: ACC_MSG_LEN
    ctypedef int (*acc_run_fn)(const void *ctx, const void *const *a, const void *const *b, void *c,
                               int64_t count, const void *pa, const void *pb, const void *pc, char *msg)
    ctypedef struct acc_kernel:
        acc_run_fn run
        const void *ctx
        int32_t m, n, k, lda, ldb, ldc
        int8_t trans_a, trans_b, elsize
    ctypedef struct acc_stack:
        const void *idx[3]
        int64_t stride[3]
        int64_t count, base
        int idx64
        const char *a
        const char *b
        char *c
        int64_t a_size, b_size, c_size
    ctypedef struct acc_device:
        pass
    ctypedef struct acc_stream:
        pass
    ctypedef struct acc_event:
        pass
    ctypedef int (*acc_host_fn)(void *ctx, int64_t *err_id, char *msg)
    ctypedef struct acc_stats:
        double busy, thread_busy, copy, compute, host
        int64_t ops, chunks, intervals

    int acc_stack_run_host(const acc_kernel *k, const acc_stack *st, int nthreads, int64_t grain, char *msg)
    void acc_set_reduce_bytes(int64_t nbytes)
    acc_device *acc_device_create(int nworkers, const int *cpus, int ncpus, char *msg)
    void acc_device_destroy(acc_device *dev)
    void acc_device_synchronize(acc_device *dev)
    void acc_device_get_stats(acc_device *dev, acc_stats *out)
    int64_t acc_device_get_intervals(acc_device *dev, double *out, int64_t maxn)
    void acc_device_reset_stats(acc_device *dev)
    int64_t acc_device_new_error_id(acc_device *dev)
    acc_stream *acc_stream_create(acc_device *dev)
    void acc_stream_destroy(acc_stream *s)
    int acc_enqueue_copy(acc_stream *s, void *dst, const void *src, int64_t nbytes)
    int acc_enqueue_fill(acc_stream *s, void *dst, int value, int64_t nbytes)
    int acc_enqueue_stack(acc_stream *s, const acc_kernel *k, const acc_stack *st, int64_t grain)
    int acc_enqueue_host(acc_stream *s, acc_host_fn fn, void *ctx)
    int acc_enqueue_record(acc_stream *s, acc_event *ev)
    int acc_enqueue_wait(acc_stream *s, acc_event *ev)
    int acc_enqueue_fault(acc_stream *s, const char *msg)
    uint64_t acc_stream_submitted(acc_stream *s)
    uint64_t acc_stream_completed(acc_stream *s)
    int64_t acc_stream_wait(acc_stream *s, uint64_t seq, char *msg)
    int acc_stream_idle(acc_stream *s)
    size_t ACC_EVENT_SIZE "sizeof(acc_event)"
    void acc_event_init(acc_event *ev, acc_device *dev)
    int64_t acc_event_wait(acc_event *ev, char *msg)
    int acc_event_done(acc_event *ev)
    double acc_now()

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)


class DeviceError(RuntimeError):
    """An operation failed inside the device (raised on the host at synchronize/wait).

    ``error_id`` identifies the failure; when a host function raised, the original exception is
    the ``__cause__``.
    """
    error_id = 0


# Batch-reduce calls hold no more A and B blocks than core.smm's gemm_batch puts in one (gathered
# 64^3 blocks onto 64 C's, 1 thread, ran at 25 GFLOP/s in calls of 64 products and 48 in calls of 4).
acc_set_reduce_bytes(reduce_bytes())


def now():
    """The device's clock (CLOCK_MONOTONIC seconds): busy intervals are in this clock."""
    return acc_now()


_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _dtype(dtype, name="dtype"):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a numpy dtype, got {dtype!r}") from None
    return dt


# ---------------------------------------------------------------------------------------------
# Stack kernels: what a stack's runs are computed with.

cdef class StackKernel:
    """How the executor accumulates a run of products into one C block (see :func:`smm_stack_kernel`).

    Made by :meth:`from_smm` / :func:`smm_stack_kernel` (core.smm kernels), or from Cython by
    ``make_stack_kernel`` with any nogil run function (e.g. BLAS per product).
    """

    def __init__(self):
        raise TypeError("StackKernel objects come from smm_stack_kernel(), StackKernel.from_smm() "
                        "or make_stack_kernel() (Cython)")

    @staticmethod
    def from_smm(kernel):
        """Wrap a ``core.smm.Kernel``; its beta must be 1 (stacks accumulate into C)."""
        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel must be a core.smm.Kernel, got {type(kernel).__name__}")
        cdef const smm_kernel *kp = (<Kernel>kernel).kern
        if kp.desc.beta != 1.0:
            raise ValueError(f"a stack kernel accumulates into C: the kernel needs beta=1, got {kp.desc.beta}")
        name = "smm-prefetch" if kp.desc.prefetch else "smm"
        return make_stack_kernel(_smm_run, <const void *>kp, kernel, name, kp.desc.m, kp.desc.n, kp.desc.k,
                                 kp.desc.lda, kp.desc.ldb, kp.desc.ldc, kp.desc.trans_a, kp.desc.trans_b,
                                 (<Kernel>kernel).dtype)

    @property
    def block_shapes(self):
        """Numpy shapes of one column-major A, B and C block as (rows, cols): ((m, k), (k, n), (m, n))."""
        return ((self.k if self.trans_a else self.m, self.m if self.trans_a else self.k),
                (self.n if self.trans_b else self.k, self.k if self.trans_b else self.n),
                (self.m, self.n))

    def footprints(self):
        """Elements spanned by one A, B and C block (with their leading dimensions)."""
        (ra, ca), (rb, cb), (rc, cc) = self.block_shapes
        return ((ca - 1) * self.lda + ra, (cb - 1) * self.ldb + rb, (cc - 1) * self.ldc + rc)

    def __repr__(self):
        return (f"StackKernel({self.name}, m={self.m} n={self.n} k={self.k} lda={self.lda} ldb={self.ldb} "
                f"ldc={self.ldc}, {np.dtype(self.dtype).name})")


cdef int _smm_run(const void *ctx, const void *const *a, const void *const *b, void *c, int64_t count,
                  const void *pa, const void *pb, const void *pc, char *msg) noexcept nogil:
    smm_call_reduce_prefetch(<const smm_kernel *>ctx, a, b, c, count, pa, pb, pc)
    return 0


cdef StackKernel make_stack_kernel(stack_run_fn run, const void *ctx, object owner, str name,
                                   int m, int n, int k, int lda, int ldb, int ldc,
                                   bint trans_a, bint trans_b, object dtype):
    dt = _dtype(dtype)
    if dt not in _DTYPES:
        raise TypeError(f"stack kernels are float64 or float32, got {dt}")
    if run == NULL:
        raise ValueError("a stack kernel needs a run function")
    for nm, v in (("m", m), ("n", n), ("k", k)):
        if v < 1:
            raise ValueError(f"{nm} must be >= 1, got {v}")
    if lda < (k if trans_a else m) or ldb < (n if trans_b else k) or ldc < m:
        raise ValueError(f"leading dimensions lda={lda} ldb={ldb} ldc={ldc} are too small for m={m} n={n} k={k}")
    cdef StackKernel sk = StackKernel.__new__(StackKernel)
    sk.run = run
    sk.ctx = ctx
    sk.owner = owner
    sk.name = name
    sk.m, sk.n, sk.k, sk.lda, sk.ldb, sk.ldc = m, n, k, lda, ldb, ldc
    sk.trans_a, sk.trans_b = trans_a, trans_b
    sk.dtype = dt
    return sk


def smm_stack_kernel(m, n=None, k=None, *, dtype=np.float64, prefetch=True, alpha=1.0,
                     lda=None, ldb=None, ldc=None, trans_a=False, trans_b=False, target=None):
    """A stack kernel on ``core.smm``: one kernel obtained up front, called as a batch-reduce per
    run of equal C blocks; ``prefetch`` asks for the kernel that prefetches the next run's operands."""
    from . import smm
    kern = smm.dispatch(m, n, k, lda=lda, ldb=ldb, ldc=ldc, alpha=alpha, beta=1.0, dtype=dtype,
                        trans_a=trans_a, trans_b=trans_b, prefetch="next" if prefetch else "none",
                        target=target)
    return StackKernel.from_smm(kern)


cdef void _fill_kernel(acc_kernel *out, StackKernel sk):
    memset(out, 0, sizeof(acc_kernel))
    out.run = <acc_run_fn>sk.run
    out.ctx = sk.ctx
    out.m, out.n, out.k = sk.m, sk.n, sk.k
    out.lda, out.ldb, out.ldc = sk.lda, sk.ldb, sk.ldc
    out.trans_a, out.trans_b = sk.trans_a, sk.trans_b
    out.elsize = <int8_t>np.dtype(sk.dtype).itemsize


def _check_base(index_base):
    if isinstance(index_base, bool) or index_base not in (0, 1):
        raise ValueError(f"index_base must be 0 or 1 (DBCSR's stacks are 1-based), got {index_base!r}")
    return int(index_base)


def _check_grain(grain):
    if grain is None:
        return 0
    if isinstance(grain, bool) or not isinstance(grain, (int, np.integer)) or grain < 1:
        raise ValueError(f"grain must be a positive int (entries per chunk) or None, got {grain!r}")
    return int(grain)


# ---------------------------------------------------------------------------------------------
# Synchronous host execution (the rank's OpenMP team).

def _host_operand(name, x, dt, write):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != dt:
        raise TypeError(f"{name} has dtype {x.dtype}, the kernel computes in {dt}")
    if x.ndim != 1 or not x.flags.c_contiguous or not x.flags.aligned:
        raise ValueError(f"{name} must be a flat, contiguous, aligned 1-D buffer, got shape {x.shape}")
    if write and not x.flags.writeable:
        raise ValueError(f"{name} is read-only")


def _host_index(stack):
    """Three 1-D index views (any stride) of one integer dtype, and the entry count."""
    if isinstance(stack, np.ndarray):
        if stack.ndim != 2 or stack.shape[1] != 3:
            raise ValueError(f"stack must have shape (count, 3), got {stack.shape}")
        cols = [stack[:, 0], stack[:, 1], stack[:, 2]]
    elif isinstance(stack, (tuple, list)) and len(stack) == 3:
        cols = list(stack)
    else:
        raise TypeError("stack must be a (count, 3) integer array or a tuple (a_index, b_index, c_index)")
    for i, x in enumerate(cols):
        nm = ("a_index", "b_index", "c_index")[i]
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{nm} must be a numpy.ndarray, got {type(x).__name__}")
        if x.dtype not in _INDEX_DTYPES:
            raise TypeError(f"{nm} must be int32 or int64, got {x.dtype}")
        if x.ndim != 1:
            raise ValueError(f"{nm} must be 1-D, got shape {x.shape}")
        if x.strides[0] % x.itemsize or not x.flags.aligned:
            raise ValueError(f"{nm}: stride {x.strides[0]} is not a multiple of the element size")
    n = cols[0].shape[0]
    if any(x.shape[0] != n for x in cols):
        raise ValueError(f"index arrays differ in length: {[x.shape[0] for x in cols]}")
    if len({x.dtype for x in cols}) > 1:
        cols = [x.astype(np.int64) for x in cols]
    return cols, n


def run_stack(StackKernel kernel, a, b, c, stack, *, index_base=0, threads=None, grain=None):
    """Process a stack now, on this thread's OpenMP team (``threads``: team size, default the
    process setting): ``c[C_e] += alpha * A_e @ B_e`` for every entry, race-free for repeated C.

    ``a``, ``b``, ``c``: flat 1-D buffers of the kernel's dtype; ``stack``: a (count, 3) int32/int64
    array of element offsets, or a tuple of three 1-D index arrays. Returns ``c``.
    """
    if kernel is None:
        raise TypeError("kernel must be a StackKernel")
    dt = kernel.dtype
    _host_operand("a", a, dt, False)
    _host_operand("b", b, dt, False)
    _host_operand("c", c, dt, True)
    if np.may_share_memory(c, a) or np.may_share_memory(c, b):
        raise ValueError("c overlaps a or b")
    cols, n = _host_index(stack)
    cdef int base = _check_base(index_base)
    cdef int64_t g = _check_grain(grain)
    cdef int nthreads = resolve_threads(threads)
    cdef acc_kernel ck
    cdef acc_stack st
    _fill_kernel(&ck, kernel)
    memset(&st, 0, sizeof(acc_stack))
    for i in range(3):
        st.idx[i] = <const void *>cnp.PyArray_DATA(cols[i])
        st.stride[i] = cols[i].strides[0] // cols[i].itemsize
    st.idx64 = cols[0].dtype == np.int64
    st.count = n
    st.base = base
    st.a = <const char *>cnp.PyArray_DATA(a)
    st.b = <const char *>cnp.PyArray_DATA(b)
    st.c = <char *>cnp.PyArray_DATA(c)
    st.a_size, st.b_size, st.c_size = a.shape[0], b.shape[0], c.shape[0]
    cdef char msg[ACC_MSG_LEN]
    cdef int rc
    msg[0] = 0
    with nogil:
        rc = acc_stack_run_host(&ck, &st, nthreads, g, msg)
    if rc:
        raise ValueError(msg.decode("utf-8", "replace"))
    return c


# ---------------------------------------------------------------------------------------------
# The device.

_live_devices = weakref.WeakSet()


@atexit.register
def _close_all_devices():
    # Workers must be idle and joined before the interpreter finalizes (a host function running on
    # a worker needs the GIL).
    for dev in list(_live_devices):
        try:
            dev.close()
        except Exception:
            pass


cdef class Device:
    """A pool of ``threads`` worker threads with its own memory, streams and events.

    ``cpus``: CPUs the workers may run on (default: inherit the creating thread's mask; pass the
    rank's CPU share when the main thread is pinned to a single core by OpenMP).
    """
    cdef acc_device *dev
    cdef readonly int threads
    cdef readonly tuple cpus
    cdef dict _exceptions
    cdef object __weakref__

    def __cinit__(self, threads=None, cpus=None):
        self.dev = NULL
        self._exceptions = {}
        cdef int nw = resolve_threads(threads)
        cpu_list = ()
        if cpus is not None:
            try:
                cpu_list = tuple(int(x) for x in cpus)
            except (TypeError, ValueError):
                raise TypeError(f"cpus must be an iterable of CPU ids, got {cpus!r}") from None
            if not cpu_list or any(x < 0 or x >= 1024 for x in cpu_list):
                raise ValueError(f"cpus must be non-empty CPU ids in [0, 1024), got {cpu_list}")
        cdef int *cp = <int *>malloc(max(1, len(cpu_list)) * sizeof(int))
        if cp == NULL:
            raise MemoryError()
        for i, x in enumerate(cpu_list):
            cp[i] = x
        cdef char msg[ACC_MSG_LEN]
        cdef int ncpu = len(cpu_list)
        msg[0] = 0
        with nogil:
            self.dev = acc_device_create(nw, cp, ncpu, msg)
        free(cp)
        if self.dev == NULL:
            raise RuntimeError(msg.decode("utf-8", "replace"))
        self.threads = nw
        self.cpus = cpu_list
        _live_devices.add(self)

    def __dealloc__(self):
        if self.dev != NULL:
            with nogil:
                acc_device_destroy(self.dev)
            self.dev = NULL

    cdef int _check_open(self) except -1:
        if self.dev == NULL:
            raise RuntimeError("the device is closed")
        return 0

    @property
    def closed(self):
        return self.dev == NULL

    def close(self):
        """Wait for all work, stop the workers. Errors not yet collected are dropped."""
        if self.dev != NULL:
            with nogil:
                acc_device_destroy(self.dev)
            self.dev = NULL
        _live_devices.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def stream(self):
        """A new stream (in-order queue) on this device."""
        self._check_open()
        return Stream(self)

    def event(self):
        """A new event (not recorded yet: waiting on it returns at once)."""
        self._check_open()
        return Event(self)

    def empty(self, shape, dtype=np.float64):
        """Device memory for an array of ``shape`` and ``dtype`` (contents undefined)."""
        self._check_open()
        return DeviceBuffer(self, shape, dtype)

    def synchronize(self):
        """Wait until every stream is idle. Errors stay with their streams (use Stream.synchronize)."""
        self._check_open()
        with nogil:
            acc_device_synchronize(self.dev)

    def stats(self):
        """Busy time since the last reset: ``busy`` (union over workers), ``thread_busy`` (sum),
        worker time by kind (``copy``, ``compute``, ``host``), ``ops`` and ``chunks`` done."""
        self._check_open()
        cdef acc_stats s
        acc_device_get_stats(self.dev, &s)
        return {"busy": s.busy, "thread_busy": s.thread_busy, "copy": s.copy, "compute": s.compute,
                "host": s.host, "ops": s.ops, "chunks": s.chunks, "intervals": s.intervals,
                "threads": self.threads}

    def busy_intervals(self):
        """(n, 2) array of [start, end) times (in :func:`now`'s clock) when any worker was busy."""
        self._check_open()
        cdef int64_t n = acc_device_get_intervals(self.dev, NULL, 0)
        out = np.empty((n, 2), dtype=np.float64)
        cdef double[:, ::1] v = out
        if n:
            n = min(n, acc_device_get_intervals(self.dev, &v[0, 0], n))
        return out[:n]

    def reset_stats(self):
        self._check_open()
        acc_device_reset_stats(self.dev)

    def __repr__(self):
        state = "closed" if self.dev == NULL else f"{self.threads} worker thread(s)"
        return f"<core.acc.Device {state}>"


@cython.no_gc_clear
cdef class DeviceBuffer:
    """Memory owned by a device (64-byte aligned). The host reaches it only through stream copies."""
    cdef char *ptr
    cdef readonly Device device
    cdef readonly object dtype
    cdef readonly tuple shape
    cdef readonly int64_t size, nbytes

    def __cinit__(self, Device device, shape, dtype=np.float64):
        self.ptr = NULL
        if device is None:
            raise TypeError("device must be a Device")
        dt = _dtype(dtype)
        if dt.hasobject:  # copies move raw bytes: Python object pointers must never be copied
            raise TypeError(f"dtype must hold plain data, not Python objects, got {dt}")
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        try:
            shp = tuple(int(x) for x in shape)
        except TypeError:
            raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
        if any(x < 0 for x in shp):
            raise ValueError(f"shape must be non-negative, got {shp}")
        size = 1
        for x in shp:
            size *= x
        nbytes = size * dt.itemsize
        if nbytes > (1 << 46):
            raise ValueError(f"{nbytes} bytes is more than a device buffer may hold")
        cdef void *p = NULL
        if posix_memalign(&p, 64, <size_t>max(64, nbytes)) != 0:
            raise MemoryError(f"cannot allocate {nbytes} bytes of device memory")
        self.ptr = <char *>p
        self.device = device
        self.dtype = dt
        self.shape = shp
        self.size = size
        self.nbytes = nbytes

    def __dealloc__(self):
        free(self.ptr)
        self.ptr = NULL

    def __repr__(self):
        return f"<DeviceBuffer shape={self.shape} dtype={self.dtype.name}>"


@cython.no_gc_clear
cdef class _HostCall:
    cdef object fn
    cdef tuple args
    cdef Device device


cdef int _host_trampoline(void *ctx, int64_t *err_id, char *msg) noexcept with gil:
    # Called by a device worker (a thread Python did not create): `with gil` takes the GIL for it.
    cdef _HostCall call = <_HostCall>ctx
    cdef bytes text
    cdef Py_ssize_t i
    try:
        call.fn(*call.args)
        return 0
    except BaseException as exc:
        eid = acc_device_new_error_id(call.device.dev)
        call.device._exceptions[eid] = exc
        err_id[0] = eid
        name = getattr(call.fn, "__qualname__", None) or repr(call.fn)
        text = f"host function {name} raised {type(exc).__name__}: {exc}".encode("utf-8", "replace")
        text = text[:ACC_MSG_LEN - 1]
        for i in range(len(text)):
            msg[i] = text[i]
        msg[len(text)] = 0
        return -1


cdef _raise_device_error(Device device, int64_t eid, const char *msg, str where):
    err = DeviceError(f"{where}: {msg.decode('utf-8', 'replace')}")
    err.error_id = eid
    cause = device._exceptions.get(eid)
    if cause is not None:
        raise err from cause
    raise err


@cython.no_gc_clear
cdef class Stream:
    """An in-order queue of device operations. Objects an operation uses (arrays, buffers) are kept
    alive until it is done; host arrays must not be modified (copy_to_device) or read
    (copy_to_host) before then: wait on an event recorded after the copy, or synchronize."""
    cdef acc_stream *s
    cdef readonly Device device
    cdef object _pending     # list of (seq, objects kept alive)

    def __cinit__(self, Device device):
        self.s = NULL
        if device is None:
            raise TypeError("device must be a Device")
        device._check_open()
        self.device = device
        self._pending = []
        self.s = acc_stream_create(device.dev)
        if self.s == NULL:
            raise MemoryError("cannot create a stream")

    def __dealloc__(self):
        if self.s != NULL:
            with nogil:
                acc_stream_destroy(self.s)   # waits for its work: the kept objects are still alive here
            self.s = NULL

    cdef int _check(self) except -1:
        if self.device.dev == NULL:
            raise RuntimeError("the stream's device is closed")
        return 0

    cdef _keep(self, objects):
        cdef uint64_t done = acc_stream_completed(self.s)
        if self._pending and self._pending[0][0] <= done:
            self._pending = [p for p in self._pending if p[0] > done]
        self._pending.append((acc_stream_submitted(self.s), objects))

    cdef _enqueued(self, int rc, objects):
        if rc != 0:
            raise RuntimeError("cannot enqueue: out of memory or the device is closing")
        self._keep(objects)

    def _dst_span(self, DeviceBuffer buf, arr, offset, name):
        if buf.device is not self.device:
            raise ValueError(f"{name} belongs to another device")
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
            raise ValueError(f"offset must be a non-negative int (elements), got {offset!r}")
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"the host array must be a numpy.ndarray, got {type(arr).__name__}")
        if arr.dtype != buf.dtype:
            raise TypeError(f"host array dtype {arr.dtype} differs from the device buffer's {buf.dtype}")
        if not arr.flags.c_contiguous:
            raise ValueError("the host array must be C-contiguous (copies move bytes as they lie)")
        if (offset + arr.size) > buf.size:
            raise ValueError(f"{arr.size} elements at offset {offset} do not fit a device buffer of {buf.size}")
        return int(offset) * buf.dtype.itemsize

    def copy_to_device(self, DeviceBuffer dst, src, *, offset=0):
        """Asynchronous copy of host array ``src`` into ``dst`` starting at element ``offset``."""
        self._check()
        cdef int64_t off = self._dst_span(dst, src, offset, "dst")
        cdef int rc = acc_enqueue_copy(self.s, dst.ptr + off, cnp.PyArray_DATA(src), src.nbytes)
        self._enqueued(rc, (dst, src))

    def copy_to_host(self, dst, DeviceBuffer src, *, offset=0):
        """Asynchronous copy from ``src`` (from element ``offset``) into host array ``dst``."""
        self._check()
        cdef int64_t off = self._dst_span(src, dst, offset, "src")
        if not dst.flags.writeable:
            raise ValueError("dst is read-only")
        cdef int rc = acc_enqueue_copy(self.s, cnp.PyArray_DATA(dst), src.ptr + off, dst.nbytes)
        self._enqueued(rc, (dst, src))

    def fill_zero(self, DeviceBuffer dst):
        """Asynchronous zeroing of a device buffer."""
        self._check()
        if dst.device is not self.device:
            raise ValueError("dst belongs to another device")
        self._enqueued(acc_enqueue_fill(self.s, dst.ptr, 0, dst.nbytes), (dst,))

    def process_stack(self, StackKernel kernel, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c,
                      DeviceBuffer stack, count=None, *, index_base=0, grain=None):
        """Asynchronous stack processing by the device workers: for the first ``count`` rows
        (a_off, b_off, c_off) of ``stack`` (shape (n, 3), int32/int64 element offsets),
        ``C += alpha * A @ B`` on the blocks of ``a``, ``b``, ``c``. Indices are checked on the
        device: out-of-range entries fail the operation (raised at synchronize), nothing is written
        out of bounds. ``grain``: entries per chunk (default: several chunks per worker)."""
        self._check()
        if kernel is None:
            raise TypeError("kernel must be a StackKernel")
        for nm, buf in (("a", a), ("b", b), ("c", c), ("stack", stack)):
            if buf is None:
                raise TypeError(f"{nm} must be a DeviceBuffer")
            if buf.device is not self.device:
                raise ValueError(f"{nm} belongs to another device")
        for nm, buf in (("a", a), ("b", b), ("c", c)):
            if buf.dtype != kernel.dtype:
                raise TypeError(f"{nm} has dtype {buf.dtype}, the kernel computes in {kernel.dtype}")
        if c is a or c is b:
            raise ValueError("c must not be the same buffer as a or b")
        if stack.dtype not in _INDEX_DTYPES:
            raise TypeError(f"stack must be int32 or int64, got {stack.dtype}")
        if len(stack.shape) != 2 or stack.shape[1] != 3:
            raise ValueError(f"stack must have shape (n, 3) (a, b, c offsets per row), got {stack.shape}")
        cap = stack.shape[0]
        if count is None:
            count = cap
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 0 <= count <= cap:
            raise ValueError(f"count must be an int in [0, {cap}], got {count!r}")
        cdef int base = _check_base(index_base)
        cdef int64_t g = _check_grain(grain)
        cdef acc_kernel ck
        cdef acc_stack st
        _fill_kernel(&ck, kernel)
        memset(&st, 0, sizeof(acc_stack))
        cdef int64_t isz = stack.dtype.itemsize
        cdef int i
        for i in range(3):
            st.idx[i] = <const void *>(stack.ptr + i * isz)
            st.stride[i] = 3
        st.idx64 = isz == 8
        st.count = count
        st.base = base
        st.a, st.b, st.c = a.ptr, b.ptr, c.ptr
        st.a_size, st.b_size, st.c_size = a.size, b.size, c.size
        self._enqueued(acc_enqueue_stack(self.s, &ck, &st, g), (kernel, a, b, c, stack))

    def launch_host_func(self, fn, *args):
        """Run ``fn(*args)`` on a device worker, in stream order (with the GIL). An exception is
        raised on the host at the next synchronize (as DeviceError, with it as the cause)."""
        self._check()
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        call = _HostCall()
        call.fn = fn
        call.args = tuple(args)
        call.device = self.device
        self._enqueued(acc_enqueue_host(self.s, _host_trampoline, <void *>call), (call,))

    def inject_fault(self, message="injected fault"):
        """An operation that fails on the device (for testing error paths)."""
        self._check()
        cdef bytes text = str(message).encode("utf-8", "replace")
        self._enqueued(acc_enqueue_fault(self.s, text), ())

    def record(self, event=None):
        """Record ``event`` (a new one if None) after the work enqueued so far; returns it."""
        self._check()
        if event is None:
            event = Event(self.device)
        elif not isinstance(event, Event):
            raise TypeError(f"event must be an Event, got {type(event).__name__}")
        cdef Event ev = event
        if ev.device is not self.device:
            raise ValueError("the event belongs to another device")
        self._enqueued(acc_enqueue_record(self.s, ev.ev), (ev,))
        return ev

    def wait_event(self, Event event):
        """Work enqueued later waits for ``event``'s last record (its failure fails this stream)."""
        self._check()
        if event is None:
            raise TypeError("event must be an Event")
        if event.device is not self.device:
            raise ValueError("the event belongs to another device")
        self._enqueued(acc_enqueue_wait(self.s, event.ev), (event,))

    def synchronize(self):
        """Wait for all enqueued work; raise DeviceError if an operation failed since the last call."""
        self._check()
        cdef char msg[ACC_MSG_LEN]
        cdef uint64_t seq = acc_stream_submitted(self.s)
        cdef int64_t eid
        msg[0] = 0
        with nogil:
            eid = acc_stream_wait(self.s, seq, msg)
        self._pending = [p for p in self._pending if p[0] > seq]
        if eid:
            _raise_device_error(self.device, eid, msg, "device stream")

    def query(self):
        """True if all enqueued work is done (errors are raised by synchronize)."""
        self._check()
        return bool(acc_stream_idle(self.s))


@cython.no_gc_clear
cdef class Event:
    """A marker in a stream: :meth:`wait` blocks the host until the work before it is done."""
    cdef acc_event *ev
    cdef readonly Device device

    def __cinit__(self, Device device):
        self.ev = NULL
        if device is None:
            raise TypeError("device must be a Device")
        device._check_open()
        self.device = device
        self.ev = <acc_event *>malloc(ACC_EVENT_SIZE)
        if self.ev == NULL:
            raise MemoryError()
        acc_event_init(self.ev, device.dev)

    def __dealloc__(self):
        free(self.ev)
        self.ev = NULL

    def record(self, Stream stream):
        """Record this event on ``stream`` (same as ``stream.record(self)``)."""
        if stream is None:
            raise TypeError("stream must be a Stream")
        stream.record(self)
        return self

    def wait(self):
        """Block until the last record is done; raise DeviceError if its stream had failed before it."""
        self.device._check_open()
        cdef char msg[ACC_MSG_LEN]
        cdef int64_t eid
        msg[0] = 0
        with nogil:
            eid = acc_event_wait(self.ev, msg)
        if eid:
            _raise_device_error(self.device, eid, msg, "device event")

    synchronize = wait

    def query(self):
        """True if the last record is done (or the event was never recorded)."""
        self.device._check_open()
        return bool(acc_event_done(self.ev))


# ---------------------------------------------------------------------------------------------
# Overlap of host and device work.

def _merge(intervals):
    iv = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
    iv = iv[iv[:, 1] > iv[:, 0]]
    if iv.shape[0] == 0:
        return iv
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    # A new group starts where an interval begins after every earlier one has ended.
    n = iv.shape[0]
    ends = np.maximum.accumulate(iv[:, 1])
    starts = np.concatenate(([True], iv[1:, 0] > ends[:n - 1]))
    out = np.empty((int(starts.sum()), 2))
    out[:, 0] = iv[starts, 0]
    out[:, 1] = np.maximum.reduceat(iv[:, 1], np.flatnonzero(starts))
    return out


def overlap(host_intervals, device_intervals):
    """Busy time of the host, of the device, of either (union) and of both (overlap), in seconds,
    from lists of [start, end) intervals (in :func:`now`'s clock)."""
    h = _merge(host_intervals)
    d = _merge(device_intervals)
    u = _merge(np.concatenate([h, d]) if h.size or d.size else np.empty((0, 2)))
    host = float((h[:, 1] - h[:, 0]).sum())
    dev = float((d[:, 1] - d[:, 0]).sum())
    union = float((u[:, 1] - u[:, 0]).sum())
    return {"host": host, "device": dev, "union": union, "overlap": host + dev - union}
