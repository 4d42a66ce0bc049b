# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Small matrix multiplication: specialised kernels, one process-wide registry, batch interfaces.

Column-major BLAS semantics throughout: ``C = alpha * op(A) @ op(B) + beta * C`` with
``beta == 0`` overwriting C (NaN/Inf in C do not leak) and ``alpha == 0`` not reading A or B.

- :func:`dispatch` returns the :class:`Kernel` for a descriptor (same descriptor, same object).
- :func:`gemm` runs one product on numpy arrays of any memory order (no copies).
- :func:`gemm_batch` runs a batch in one nogil, OpenMP-parallel call: strided 3-D stacks, or flat
  buffers with index arrays (CP2K/DBCSR stacks); C blocks that repeat are updated race-free.

See docs/api.md and docs/kernels.md.
"""
import atexit
import sys
import threading

import numpy as np

cimport cython
from cython.parallel cimport parallel, prange
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset
cimport numpy as cnp
cimport openmp

from . import _config
from . import cpu as _cpu
from .threads cimport resolve_threads, threads_for_work

cnp.import_array()

cdef extern from "smm_registry.h" nogil:
    ctypedef void (*smm_kernel_fn)(const smm_kernel *kern, const void *const *a, const void *const *b,
                                   void *c, int64_t count, const void *pa, const void *pb, const void *pc)
    ctypedef struct smm_registry_stats:
        int64_t kernels, hits, misses, specialized
    const smm_kernel *smm_registry_get(const smm_desc *d)
    int smm_desc_check(const smm_desc *d)
    void smm_select_tile(int isa, int dtype, int64_t m, int64_t n, int64_t k, int regime, int zmm_weight, int *mv,
                         int *nr)
    enum:
        SMM_TILES_ANY
        SMM_TILES_CACHED
    void smm_registry_get_stats(smm_registry_stats *out)
    int64_t smm_registry_list(const smm_kernel **kernels, int64_t *hits, int64_t maxn)
    void smm_empty_call()

cdef extern from "smm_kernel.h" nogil:
    ctypedef void (*smm_strided_fn)(const smm_kernel *kern, const void *a, const void *b, void *c,
                                    int64_t sa, int64_t sb, int64_t sc, int64_t nbatch)
    int64_t SMM_GATHER
    ctypedef struct smm_kernel_full "smm_kernel":
        smm_kernel_fn fn
        smm_kernel_fn fn_cached
        smm_strided_fn fn_strided
        smm_strided_fn fn_strided_cached

cdef int _PROCESS_ISA = _cpu.target_id()
cdef int64_t _L1_BYTES = _cpu.cache_bytes(1)
# Sequential streams (a strided batch, an index stack laid out in order) prefetch the next product
# in software only when one product's operands exceed half of L1 (see _PREFETCH).
cdef int64_t _SEQ_PF_BYTES = _L1_BYTES // 2
cdef int64_t _L2_BYTES = _cpu.cache_bytes(2)
cdef int64_t INT32_MAX_ = 2147483647
# Entries of one C gathered per batch-reduce call (pointer arrays on the stack).
DEF REDUCE_CHUNK = 64
# Unsorted index stacks are grouped by C with a hash table while they have at most this many
# distinct C blocks (the table stays in L1/L2), else by a radix sort (_group_by_hash, _group_by_sort).
DEF HASH_MAX_GROUPS = 4096
# Work (m*n*k summed over entries, ~2 flops each) below which a batch stays on one thread: waking
# and joining a team costs microseconds, and much more when the cores are shared.
DEF BATCH_GRAIN = 131072

_DTYPES = {np.dtype(np.float64): SMM_F64, np.dtype(np.float32): SMM_F32}
_DTYPE_NAMES = {"f64": np.float64, "f32": np.float32, "double": np.float64, "float": np.float32}
# "auto" (-1): batches prefetch the next entry's operands in the index form (blocks gathered from
# anywhere) when the blocks they can touch exceed a core's L2; in the strided form (sequential
# streams the hardware prefetchers follow) only when one product's operands exceed half of L1 and
# the batch does not sit in the threads' L2 already (streamed, 1 thread: 40^3 +7 %, 56^3 +31 %,
# 64^3 +10 %, 100^3 +16 %; 13^3 -30 %, 20^3 -23 %; cached 32^3-100^3 within 1 %). Since the
# kernels prefetch every line of the next C, not only each column's first, that pays from
# 26^3-28^3 on (1 thread: 32^3 +3-6 %, 28^3 +3-4 %, 26^3 and 23^3 even); before, from about 40^3
# (the whole of L1: 32^3 -10 % then).
_PREFETCH = {"none": 0, "auto": -1, "next": 1, "al2bl2_via_c": 1, "al2": 1, "bl2_via_c": 1}


def _as_dtype(dtype):
    if isinstance(dtype, str) and dtype.lower() in _DTYPE_NAMES:
        dtype = _DTYPE_NAMES[dtype.lower()]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float64 or float32, got {dtype!r}") from None
    if dt not in _DTYPES:
        raise TypeError(f"dtype must be float64 or float32, got {dt}")
    return dt


cdef object _as_size(str name, object value, bint allow_none=False, int64_t minimum=1):
    if value is None and allow_none:
        return None
    if type(value) is int and minimum <= value <= INT32_MAX_:   # the common case first (hot path)
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > INT32_MAX_:
        raise ValueError(f"{name}={value} is too large (at most 2**31-1)")
    return value


cdef object _as_scalar(str name, object value):
    if type(value) is float:   # the common case, checked first: batch calls are on hot paths
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


cdef object _as_flag(str name, object value):
    if value is False or value is True:
        return value
    if not isinstance(value, (bool, np.bool_, int, np.integer)) or int(value) not in (0, 1):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


cdef int _prefetch_id(object prefetch) except? -2:
    if type(prefetch) is str and prefetch == "auto":
        return -1
    if isinstance(prefetch, (bool, np.bool_)):
        return int(prefetch)
    if isinstance(prefetch, str) and prefetch.lower() in _PREFETCH:
        return _PREFETCH[prefetch.lower()]
    raise ValueError(f"prefetch must be 'auto', 'none', 'next' or a bool, got {prefetch!r}")


cdef int _isa_id(object target) except? -2:
    if target is None:
        return _PROCESS_ISA
    return _cpu.isa_id(target)


cdef class Kernel:
    """A GEMM kernel for one descriptor; obtain it with :func:`dispatch`.

    ``kernel(a, b, c)`` computes ``C = alpha*op(A)*op(B) + beta*C`` on column-major operands:
    2-D arrays of the operand's stored shape (``(m, k)`` for A, ``(k, m)`` if ``trans_a``) whose
    first axis is unit-stride and second axis strides by the leading dimension (Fortran order,
    or a Fortran-order view of a larger array), or 1-D contiguous buffers holding at least
    ``ld*(cols-1)+rows`` elements. Nothing is copied.
    """

    def __init__(self):
        raise TypeError("Kernel objects come from core.smm.dispatch()")

    @property
    def m(self): return self.kern.desc.m
    @property
    def n(self): return self.kern.desc.n
    @property
    def k(self): return self.kern.desc.k
    @property
    def lda(self): return self.kern.desc.lda
    @property
    def ldb(self): return self.kern.desc.ldb
    @property
    def ldc(self): return self.kern.desc.ldc
    @property
    def alpha(self): return self.kern.desc.alpha
    @property
    def beta(self): return self.kern.desc.beta
    @property
    def trans_a(self): return bool(self.kern.desc.trans_a)
    @property
    def trans_b(self): return bool(self.kern.desc.trans_b)
    @property
    def prefetch(self): return "next" if self.kern.desc.prefetch else "none"
    @property
    def target(self): return _cpu.ISA_NAMES[self.kern.desc.isa]
    @property
    def code_target(self):
        """ISA of the code that runs (an AVX-512 path may run AVX2 tiles for narrow shapes)."""
        return _cpu.ISA_NAMES[self.kern.code_isa]
    @property
    def tile(self):
        """Register tile ``(vectors, columns)`` of the micro-kernel; ``(0, 0)`` for portable code."""
        return (self.kern.mv, self.kern.nr)
    @property
    def specialized(self):
        """True when the kernel is fully unrolled for this (m, n, k) (build-time SMM_MNK list)."""
        return bool(self.kern.specialized)
    @property
    def cached_variant(self):
        """The code batch calls run when their operands fit in the threads' L2: ``code_target``,
        ``tile``, ``specialized`` and ``strided`` of the tile chosen for operands in cache
        (docs/kernels.md)."""
        return {"code_target": _cpu.ISA_NAMES[self.kern.code_isa_cached],
                "tile": (self.kern.mv_cached, self.kern.nr_cached),
                "specialized": bool(self.kern.specialized_cached),
                "strided": (<const smm_kernel_full *>self.kern).fn_strided_cached != NULL}
    @property
    def strided(self):
        """True when the kernel has a strided-batch form (the batch loop inside the kernel, for the
        smallest specialised shapes): strided batches without prefetch then run in one call."""
        return (<const smm_kernel_full *>self.kern).fn_strided != NULL
    @property
    def address(self):
        """Address of the C kernel record (``const smm_kernel*``), e.g. for ctypes/cffi callers."""
        return <uintptr_t>self.kern

    def descriptor(self):
        d = self.kern.desc
        return dict(m=d.m, n=d.n, k=d.k, lda=d.lda, ldb=d.ldb, ldc=d.ldc, alpha=d.alpha, beta=d.beta,
                    dtype=self.dtype.name, trans_a=bool(d.trans_a), trans_b=bool(d.trans_b),
                    prefetch=self.prefetch, target=self.target)

    def __repr__(self):
        d = self.kern.desc
        return (f"<core.smm.Kernel {d.m}x{d.n}x{d.k} {self.dtype.name} lda={d.lda} ldb={d.ldb} ldc={d.ldc} "
                f"alpha={d.alpha:g} beta={d.beta:g} trans_a={bool(d.trans_a)} trans_b={bool(d.trans_b)} "
                f"target={self.target} code={self.code_target} tile={self.tile} specialized={self.specialized}>")

    def __call__(self, a, b, c):
        cdef const smm_desc *d = &self.kern.desc
        cdef char *pa = _operand_ptr("a", a, self.dtype, d.k if d.trans_a else d.m, d.m if d.trans_a else d.k, d.lda, False)
        cdef char *pb = _operand_ptr("b", b, self.dtype, d.n if d.trans_b else d.k, d.k if d.trans_b else d.n, d.ldb, False)
        cdef char *pc = _operand_ptr("c", c, self.dtype, d.m, d.n, d.ldc, True)
        _check_no_overlap(a, b, c)
        with nogil:
            smm_call(self.kern, pa, pb, pc)


cdef char *_operand_ptr(str name, object x, object dtype, int64_t rows, int64_t cols, int64_t ld, bint write) except NULL:
    """Checks one column-major operand of a Kernel call and returns its data pointer (numpy's C
    API only: kernels are called in loops)."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>x
    if <object>cnp.PyArray_DESCR(arr) is not dtype and arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype}, the kernel expects {dtype}")
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if write and not flags & cnp.NPY_ARRAY_WRITEABLE:
        raise ValueError(f"{name} is read-only")
    if not flags & cnp.NPY_ARRAY_ALIGNED:
        raise ValueError(f"{name} is not aligned to its element size")
    cdef int64_t item = cnp.PyArray_ITEMSIZE(arr)
    cdef int64_t need = ld * (cols - 1) + rows
    cdef int nd = cnp.PyArray_NDIM(arr)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(arr)
    if nd == 1:
        if not flags & cnp.NPY_ARRAY_C_CONTIGUOUS:
            raise ValueError(f"{name}: a 1-D buffer must be contiguous")
        if dims[0] < need:
            raise ValueError(f"{name} holds {x.shape[0]} elements, the kernel needs {need} "
                             f"({rows}x{cols} with leading dimension {ld})")
    elif nd == 2:
        if dims[0] != rows or dims[1] != cols:
            raise ValueError(f"{name} has shape {x.shape}, the kernel expects ({rows}, {cols}) column-major")
        if (rows > 1 and strides[0] != item) or (cols > 1 and strides[1] != ld * item):
            raise ValueError(f"{name} must be column-major with leading dimension {ld} "
                             f"(strides {(item, ld * item)}), got strides {x.strides}")
    else:
        raise ValueError(f"{name} must be 1-D or 2-D, got {nd}-D")
    return <char *>cnp.PyArray_DATA(arr)


cdef void _extent(cnp.ndarray x, char **lo, char **hi) noexcept:
    """The bytes [lo, hi) an array spans, read through numpy's C API (no Python objects)."""
    cdef int d
    cdef cnp.npy_intp st
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(x)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(x)
    lo[0] = hi[0] = <char *>cnp.PyArray_DATA(x)
    for d in range(cnp.PyArray_NDIM(x)):
        if dims[d] == 0:
            hi[0] = lo[0]   # empty: spans nothing
            return
        st = strides[d] * (dims[d] - 1)
        if st < 0:
            lo[0] += st
        else:
            hi[0] += st
    hi[0] += cnp.PyArray_ITEMSIZE(x)


cdef bint _extents_meet(cnp.ndarray x, cnp.ndarray y):
    """Do the byte ranges spanned by two arrays intersect? (numpy's may_share_memory, without
    the Python call: a batch call's validation is on the caller's hot path.)"""
    cdef char *xlo
    cdef char *xhi
    cdef char *ylo
    cdef char *yhi
    _extent(x, &xlo, &xhi)
    _extent(y, &ylo, &yhi)
    return xlo < xhi and ylo < yhi and xlo < yhi and ylo < xhi


cdef int _check_no_overlap(a, b, c) except -1:
    if not (_extents_meet(<cnp.ndarray>a, <cnp.ndarray>c) or _extents_meet(<cnp.ndarray>b, <cnp.ndarray>c)):
        return 0        # disjoint byte ranges: the common case, decided without numpy
    for name, x in (("a", a), ("b", b)):
        if _extents_meet(x, c):
            try:
                overlap = np.shares_memory(x, c, max_work=100000)
            except np.exceptions.TooHardError:
                overlap = True
            if overlap:
                raise ValueError(f"{name} overlaps c: the output must not alias an input")
    return 0


# ---------------------------------------------------------------------------------------------
# Dispatch and the registry

_kernel_objects = {}          # address of the C record -> Kernel (same descriptor, same object)
_kernel_lock = threading.Lock()


cdef Kernel _kernel_object(const smm_kernel *kp, object dtype):
    cdef uintptr_t key = <uintptr_t>kp
    obj = _kernel_objects.get(key)
    if obj is not None:
        return <Kernel>obj
    with _kernel_lock:
        obj = _kernel_objects.get(key)
        if obj is None:
            kern = <Kernel>Kernel.__new__(Kernel)
            kern.kern = kp
            kern.dtype = dtype
            _kernel_objects[key] = kern
            obj = kern
    return <Kernel>obj


cdef const smm_kernel *dispatch_c(const smm_desc *desc) noexcept nogil:
    cdef smm_desc d = desc[0]
    if d.isa < 0:
        d.isa = <int8_t>_PROCESS_ISA
    return smm_registry_get(&d)


cdef const smm_kernel *_lookup(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc,
                               double alpha, double beta, int dtype, bint ta, bint tb, int prefetch,
                               int isa) except NULL:
    cdef smm_desc d
    memset(&d, 0, sizeof(d))
    d.m = <int32_t>m; d.n = <int32_t>n; d.k = <int32_t>k
    d.lda = <int32_t>lda; d.ldb = <int32_t>ldb; d.ldc = <int32_t>ldc
    d.alpha = alpha; d.beta = beta; d.dtype = <int8_t>dtype
    d.trans_a = ta; d.trans_b = tb; d.prefetch = <int8_t>prefetch; d.isa = <int8_t>isa
    cdef const smm_kernel *kp = smm_registry_get(&d)
    if kp == NULL:
        rc = smm_desc_check(&d)
        raise ValueError(f"invalid GEMM descriptor (m={m} n={n} k={k} lda={lda} ldb={ldb} ldc={ldc}), code {rc}"
                         if rc else "the kernel registry is full")
    return kp


def dispatch(m, n=None, k=None, *, lda=None, ldb=None, ldc=None, alpha=1.0, beta=1.0,
             dtype=np.float64, trans_a=False, trans_b=False, prefetch="auto", target=None):
    """The kernel for ``C = alpha*op(A)*op(B) + beta*C`` (column-major, m x n x k).

    ``n`` defaults to ``m`` and ``k`` to ``n`` (LIBXSMM's convention). Leading dimensions default
    to tight (``lda = k if trans_a else m``, ``ldb = n if trans_b else k``, ``ldc = m``).
    ``target`` forces an ISA path for this kernel (``'generic'``, ``'avx2'``, ``'avx512'``; the
    process's path by default). Kernels are cached in one thread-safe registry: the same
    descriptor always returns the same object.
    """
    m = _as_size("m", m)
    n = m if n is None else _as_size("n", n)
    k = n if k is None else _as_size("k", k)
    ta = _as_flag("trans_a", trans_a)
    tb = _as_flag("trans_b", trans_b)
    lda = _as_size("lda", lda, True) or (k if ta else m)
    ldb = _as_size("ldb", ldb, True) or (n if tb else k)
    ldc = _as_size("ldc", ldc, True) or m
    if lda < (k if ta else m):
        raise ValueError(f"lda={lda} is smaller than the rows of A ({k if ta else m})")
    if ldb < (n if tb else k):
        raise ValueError(f"ldb={ldb} is smaller than the rows of B ({n if tb else k})")
    if ldc < m:
        raise ValueError(f"ldc={ldc} is smaller than the rows of C ({m})")
    dt = _as_dtype(dtype)
    cdef const smm_kernel *kp = _lookup(m, n, k, lda, ldb, ldc, _as_scalar("alpha", alpha),
                                        _as_scalar("beta", beta), _DTYPES[dt], ta, tb,
                                        abs(_prefetch_id(prefetch)), _isa_id(target))
    return _kernel_object(kp, dt)


def select_tile(m, n, k, dtype=np.float64, target=None, *, cached=False, zmm_weight=None):
    """Register tile ``(vectors, columns)`` the cost model picks within one ISA family; ``cached``:
    the choice for operands that stay in cache (the kernels' cached variant); ``zmm_weight`` (1 or
    2; default this CPU's, ``core.cpu.zmm_weight()``): the cost of a 512-bit FMA in 256-bit ones
    that the AVX-512 choice assumes."""
    cdef int mv = 0, nr = 0, w = 0
    if zmm_weight is not None:
        if isinstance(zmm_weight, (bool, np.bool_)) or not isinstance(zmm_weight, (int, np.integer)):
            raise TypeError(f"zmm_weight must be 1, 2 or None, got {type(zmm_weight).__name__}")
        if zmm_weight not in (1, 2):
            raise ValueError(f"zmm_weight must be 1, 2 or None, got {zmm_weight}")
        w = zmm_weight
    smm_select_tile(_isa_id(target), _DTYPES[_as_dtype(dtype)], _as_size("m", m), _as_size("n", n),
                    _as_size("k", k), SMM_TILES_CACHED if _as_flag("cached", cached) else SMM_TILES_ANY, w,
                    &mv, &nr)
    return (mv, nr)


def registry_stats(per_shape=False):
    """Registry statistics: kernels built (and how many are specialized), hits, misses; with
    ``per_shape=True`` also a list of per-descriptor dicts with their hit counts."""
    cdef smm_registry_stats st
    smm_registry_get_stats(&st)
    out = {"kernels": st.kernels, "specialized": st.specialized, "hits": st.hits, "misses": st.misses}
    if not per_shape:
        return out
    cdef int64_t n = smm_registry_list(NULL, NULL, 0) + 64  # room for kernels built meanwhile
    cdef cnp.ndarray hits = np.zeros(n, dtype=np.int64)
    cdef cnp.ndarray buf = np.zeros(n, dtype=np.uintp)
    cdef const smm_kernel **kl = <const smm_kernel **>cnp.PyArray_DATA(buf)
    n = min(n, smm_registry_list(kl, <int64_t *>cnp.PyArray_DATA(hits), n))
    shapes = []
    for i in range(n):
        d = kl[i].desc
        shapes.append({"m": d.m, "n": d.n, "k": d.k, "lda": d.lda, "ldb": d.ldb, "ldc": d.ldc,
                       "dtype": "f64" if d.dtype == SMM_F64 else "f32", "alpha": d.alpha, "beta": d.beta,
                       "trans_a": bool(d.trans_a), "trans_b": bool(d.trans_b), "prefetch": int(d.prefetch),
                       "target": _cpu.ISA_NAMES[d.isa],
                       "tile": (kl[i].mv, kl[i].nr), "code_target": _cpu.ISA_NAMES[kl[i].code_isa], "specialized": bool(kl[i].specialized),
                       "tile_cached": (kl[i].mv_cached, kl[i].nr_cached),
                       "code_target_cached": _cpu.ISA_NAMES[kl[i].code_isa_cached],
                       "hits": int(hits[i])})
    out["per_shape"] = sorted(shapes, key=lambda s: -s["hits"])
    return out


def _print_stats_at_exit():
    st = registry_stats(per_shape=True)
    w = sys.stderr.write
    w(f"\ncore.smm: target={_cpu.target()} registry: kernels={st['kernels']} "
      f"(specialized={st['specialized']}) hits={st['hits']} misses={st['misses']}\n")
    for s in st["per_shape"][:32]:
        w(f"  {s['m']}x{s['n']}x{s['k']} {s['dtype']} lda={s['lda']} ldb={s['ldb']} ldc={s['ldc']} "
          f"a={s['alpha']:g} b={s['beta']:g} ta={int(s['trans_a'])} tb={int(s['trans_b'])} pf={s['prefetch']} {s['target']} "
          f"tile={s['tile'][0]}x{s['tile'][1]}{' spec' if s['specialized'] else ''} "
          f"cached={s['code_target_cached']}:{s['tile_cached'][0]}x{s['tile_cached'][1]}: hits={s['hits']}\n")


if _config.verbose() >= 1:
    atexit.register(_print_stats_at_exit)


# ---------------------------------------------------------------------------------------------
# gemm: one product on numpy arrays of any memory order

ctypedef struct _Layout:
    char *ptr        # data pointer
    int64_t ld       # leading dimension in column-major terms
    bint col         # True: the memory holds the matrix column-major (Fortran order)


cdef inline bint _col_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1, int64_t item,
                             bint *col, int64_t *ld) noexcept:
    """A rows x cols matrix with byte strides (s0, s1) as a column-major one: False when neither
    axis is unit-stride (or the other stride is too short); else *col (the memory holds the
    matrix, not its transpose) and *ld."""
    if (rows == 1 or s0 == item) and s1 > 0 and s1 % item == 0 and (cols == 1 or s1 // item >= rows):
        col[0] = True
        ld[0] = s1 // item if cols > 1 else (rows if rows > 1 else 1)
    elif (cols == 1 or s1 == item) and s0 > 0 and s0 % item == 0 and (rows == 1 or s0 // item >= cols):
        col[0] = False
        ld[0] = s0 // item if rows > 1 else (cols if cols > 1 else 1)
    elif rows == 1 and cols == 1:
        col[0] = True
        ld[0] = 1
    else:
        return False
    return True


cdef bint _layout(str name, cnp.ndarray x, _Layout *L) except -1:
    """A non-empty 2-D operand as a column-major matrix into L; False if it has no unit-stride axis."""
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(x)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(x)
    L.ptr = <char *>cnp.PyArray_DATA(x)
    if not _col_layout(dims[0], dims[1], strides[0], strides[1], cnp.PyArray_ITEMSIZE(x), &L.col, &L.ld):
        return False
    if L.ld > INT32_MAX_:
        raise ValueError(f"{name}: leading dimension {L.ld} is too large")
    return True


cdef int _check_array(str name, object x, int type_num, bint write) except -1:
    """An operand of gemm or gemm_batch: an ndarray of the type, aligned, writeable if it is C.
    Through numpy's C API with no Python objects made (both are called in loops)."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>x
    if cnp.PyArray_TYPE(arr) != type_num or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{name} has dtype {x.dtype}, expected {np.dtype(cnp.PyArray_DescrFromType(type_num))} "
                        f"(all operands must share one dtype)")
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not flags & cnp.NPY_ARRAY_ALIGNED:
        raise ValueError(f"{name} is not aligned to its element size")
    if write and not flags & cnp.NPY_ARRAY_WRITEABLE:
        raise ValueError(f"{name} is read-only")
    return 0


cdef int _check_matrix(str name, object x, int type_num, bint write) except -1:
    """A 2-D operand of gemm."""
    _check_array(name, x, type_num, write)
    if cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    return 0


cdef object _common_dtype(a, b, c):
    if not cnp.PyArray_Check(c):
        raise TypeError(f"c must be a numpy.ndarray, got {type(c).__name__}")
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>c)
    if (t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT) or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>c):
        raise TypeError(f"c has dtype {c.dtype}; float64 and float32 are supported")
    return <object>cnp.PyArray_DESCR(<cnp.ndarray>c)


def gemm(a, b, c, alpha=1.0, beta=1.0, trans_a=False, trans_b=False, *, target=None):
    """``c[...] = alpha * op(a) @ op(b) + beta * c`` in place, ``op(x) = x.T`` if ``trans_x``.

    Arrays may be C- or Fortran-ordered or strided views with one unit-stride axis: a row-major
    problem runs as the transposed column-major one (operands swapped), nothing is copied. An
    operand with no unit-stride axis is copied (A, B) or computed through a temporary (C).
    """
    dt = _common_dtype(a, b, c)
    cdef int tn = cnp.PyArray_TYPE(<cnp.ndarray>c)
    _check_matrix("a", a, tn, False)
    _check_matrix("b", b, tn, False)
    _check_matrix("c", c, tn, True)
    cdef bint ta = _as_flag("trans_a", trans_a)
    cdef bint tb = _as_flag("trans_b", trans_b)
    cdef cnp.npy_intp *da = cnp.PyArray_DIMS(<cnp.ndarray>a)
    cdef cnp.npy_intp *db = cnp.PyArray_DIMS(<cnp.ndarray>b)
    cdef cnp.npy_intp *dc = cnp.PyArray_DIMS(<cnp.ndarray>c)
    cdef int64_t m = da[1] if ta else da[0], ka = da[0] if ta else da[1]
    cdef int64_t kb = db[1] if tb else db[0], n = db[0] if tb else db[1]
    if ka != kb:
        raise ValueError(f"a and b do not conform: op(a) is {m}x{ka}, op(b) is {kb}x{n}")
    if dc[0] != m or dc[1] != n:
        raise ValueError(f"c has shape {c.shape}, op(a) @ op(b) has shape ({m}, {n})")
    alpha = _as_scalar("alpha", alpha)
    beta = _as_scalar("beta", beta)
    cdef int isa = _isa_id(target)
    _check_no_overlap(a, b, c)
    if m == 0 or n == 0:
        return c
    if ka == 0:
        c *= beta if beta != 0.0 else 0.0
        if beta == 0.0:
            c[...] = 0
        return c
    if m > INT32_MAX_ or n > INT32_MAX_ or ka > INT32_MAX_:
        _as_size("m", m); _as_size("n", n); _as_size("k", ka)
    cdef _Layout La, Lb, Lc
    if not _layout("a", a, &La):
        a = np.asfortranarray(a); _layout("a", a, &La)
    if not _layout("b", b, &Lb):
        b = np.asfortranarray(b); _layout("b", b, &Lb)
    if not _layout("c", c, &Lc):
        tmp = np.asfortranarray(c)
        gemm(a, b, tmp, alpha, beta, ta, tb, target=target)
        c[...] = tmp
        return c
    cdef const smm_kernel *kp
    cdef char *p1
    cdef char *p2
    if Lc.col:   # C = op(A) op(B): flags say whether the memory must be transposed to give op(X)
        kp = _lookup(m, n, ka, La.ld, Lb.ld, Lc.ld, alpha, beta, _DTYPES[dt],
                     ta ^ (not La.col), tb ^ (not Lb.col), 0, isa)
        p1 = La.ptr; p2 = Lb.ptr
    else:        # memory of C is C^T = op(B)^T op(A)^T
        kp = _lookup(n, m, ka, Lb.ld, La.ld, Lc.ld, alpha, beta, _DTYPES[dt],
                     tb ^ Lb.col, ta ^ La.col, 0, isa)
        p1 = Lb.ptr; p2 = La.ptr
    cdef char *pc = Lc.ptr
    with nogil:
        smm_call(kp, p1, p2, pc)
    return c


# ---------------------------------------------------------------------------------------------
# gemm_batch: the ISA-independent batch framework (one nogil call, OpenMP over entries/runs)

ctypedef fused index_t:
    int32_t
    int64_t


cdef inline int64_t _offset(const index_t *idx, int64_t stride, int64_t base, int64_t e) noexcept nogil:
    if idx != NULL:
        return <int64_t>idx[e] - base
    return e * stride


cdef bint _last_cached = False


def _last_batch_regime():
    """Which kernel variant the last gemm_batch call of the process ran: "cached" (operands fit in
    the threads' L2) or "any" (a test hook)."""
    return "cached" if _last_cached else "any"


cdef inline bint _fits_cache(double nbytes, int nthreads) noexcept nogil:
    """A batch whose operands fit in the L2 of the threads that run it counts as cached (its kernels
    then run their cached variant: in cache wide tiles win, from memory tall ones; docs/kernels.md)."""
    return nbytes <= <double>_L2_BYTES * (nthreads if nthreads > 1 else 1)


cdef inline smm_kernel_fn _kernel_fn(const smm_kernel *kp, bint cached) noexcept nogil:
    return (<const smm_kernel_full *>kp).fn_cached if cached else (<const smm_kernel_full *>kp).fn


# A batch-reduce call holds at most this many bytes of A and B blocks: every register tile of C
# sweeps all of the call's products, so beyond the L2 each tile read them again from L3 or memory
# (gathered 64^3 blocks, 64 C's, 1 thread: 25 GFLOP/s in calls of 64 products, 48 in calls of 4;
# 32^3 42 -> 45; 23^3 and smaller run 64 per call either way).
cdef int64_t _REDUCE_BYTES = _L2_BYTES // 4


cdef int64_t reduce_bytes() noexcept nogil:
    return _REDUCE_BYTES


cdef inline int64_t _reduce_chunk(const smm_kernel *kp, int64_t item) noexcept nogil:
    """Products of one C per batch-reduce call: REDUCE_CHUNK, fewer when their A and B blocks
    would outgrow _REDUCE_BYTES (at least one)."""
    cdef int64_t per = (<int64_t>kp.desc.m * kp.desc.k + <int64_t>kp.desc.k * kp.desc.n) * item
    if _REDUCE_BYTES <= 0 or per <= 0:
        return REDUCE_CHUNK
    return max(1, min(REDUCE_CHUNK, _REDUCE_BYTES // per))


cdef inline bint _follows(int64_t da, int64_t db, int64_t span_a, int64_t span_b) noexcept nogil:
    """Do the next product's A and B blocks start da, db bytes after this one's, within one block
    (span_a, span_b)? Such products stream as a strided batch's do (see _run_entries)."""
    return 0 <= da <= span_a and 0 <= db <= span_b


cdef int64_t _gather_singles(smm_strided_fn sfn, const smm_kernel *kp, char *a, char *b, char *c, int64_t item,
                            const index_t *ia, const index_t *ib, const index_t *ic,
                            int64_t sa, int64_t sb, int64_t sc, int64_t base,
                            const int64_t *order, int64_t e, int64_t e1, bint reduce,
                            bint in_order_only, int64_t span_a, int64_t span_b) noexcept nogil:
    """From entry e on, the products that are not batch-reduced (with `reduce`, those whose next
    entry has another C), REDUCE_CHUNK per call of the strided form in its gather mode, in order.
    `in_order_only` (a batch that prefetches products too small to prefetch in a sequential
    stack): only products whose next entry's A and B blocks start within span_a, span_b bytes
    after theirs, which _run_entries calls without prefetch. Stops at the first other entry and
    returns it (e1 when none is left)."""
    cdef const void *ga[REDUCE_CHUNK]
    cdef const void *gb[REDUCE_CHUNK]
    cdef void *gc[REDUCE_CHUNK]
    cdef int64_t n, g, oa, ob, oc, a_next = 0, b_next = 0, c_next = 0, da, db
    cdef bint stop = False
    cdef int64_t lim
    if order == NULL and ia != NULL and ib != NULL and ic != NULL and not in_order_only:
        # The common stack (three index arrays, given order): the same walk without the per-entry
        # tests for omitted arrays and a permutation.
        while e < e1 and not stop:
            n = 0
            lim = min(e1, e + REDUCE_CHUNK)
            while e < lim:
                oc = <int64_t>ic[e] - base
                if reduce and e + 1 < e1 and <int64_t>ic[e + 1] - base == oc:
                    stop = True
                    break
                ga[n] = a + (<int64_t>ia[e] - base) * item
                gb[n] = b + (<int64_t>ib[e] - base) * item
                gc[n] = c + oc * item
                n += 1
                e += 1
            if n:
                sfn(kp, ga, gb, gc, SMM_GATHER, 0, 0, n)
        return e
    g = order[e] if order != NULL else e
    oa = _offset(ia, sa, base, g)
    ob = _offset(ib, sb, base, g)
    oc = _offset(ic, sc, base, g)
    while e < e1 and not stop:
        n = 0
        while n < REDUCE_CHUNK and e < e1:
            if e + 1 < e1:
                g = order[e + 1] if order != NULL else e + 1
                a_next = _offset(ia, sa, base, g)
                b_next = _offset(ib, sb, base, g)
                c_next = _offset(ic, sc, base, g)
                if reduce and c_next == oc:
                    stop = True
                    break
                if in_order_only:
                    da = (a_next - oa) * item
                    db = (b_next - ob) * item
                    if not _follows(da, db, span_a, span_b):
                        stop = True
                        break
            ga[n] = a + oa * item
            gb[n] = b + ob * item
            gc[n] = c + oc * item
            n += 1
            e += 1
            oa = a_next
            ob = b_next
            oc = c_next
        if n:
            sfn(kp, ga, gb, gc, SMM_GATHER, 0, 0, n)
    return e


cdef void _run_entries(const smm_kernel *kp, char *a, char *b, char *c, int64_t item,
                       const index_t *ia, const index_t *ib, const index_t *ic,
                       int64_t sa, int64_t sb, int64_t sc, int64_t base,
                       const int64_t *order, int64_t e0, int64_t e1, bint reduce, bint prefetch,
                       char *cfixed, bint cached) noexcept nogil:
    """Entries [e0, e1) of the (possibly permuted) batch, all on one thread. Consecutive entries that
    share a C are one batch-reduce call when `reduce` (C read and written once per chunk of
    _reduce_chunk products).
    `cfixed`: write every product there instead (a private partial sum of one C's split run).
    `cached`: the operands fit in cache, run the kernel's cached variant.
    Products that are neither batch-reduced nor prefetched go, REDUCE_CHUNK at a time and in order,
    to the kernel's strided form in its gather mode where it has one (the loop inside the kernel,
    as in a strided batch), see _gather_singles."""
    cdef const void *ap[REDUCE_CHUNK]
    cdef const void *bp[REDUCE_CHUNK]
    cdef int64_t e = e0, f, j, g, nxt
    cdef int64_t oc
    cdef smm_kernel_fn fn = _kernel_fn(kp, cached)
    cdef smm_strided_fn sfn = NULL
    cdef const void *pa
    cdef const void *pb
    cdef const void *pc
    # Blocks that follow the previous ones in memory (a stack laid out in order) stream through the
    # hardware prefetchers as a strided batch does, and are prefetched only as it is (a product that
    # outgrows L1): software prefetches there cost what they cost in the strided form (sequential
    # 16^3 index stacks, 1 thread: 22.6 GFLOP/s with, 36.8 without; 13^3 26.2 / 32.0), while
    # gathered blocks still gain from them (shuffled 16^3: 10.8 -> 12.6; 32^3 22.8 -> 27.0). A call
    # counts as in order when each of its products' A and B blocks, and the next call's, start
    # within one block after the previous ones: in DBCSR's stacks A steps along a run but B jumps,
    # and judging by the next call alone left a third of the calls without prefetch (cp2k's 23^3
    # stack, 1 thread: 48.7 -> 50.8 GFLOP/s, as core.acc's stack kernel).
    cdef int64_t span_a = 0, span_b = 0, da, db
    cdef bint seq_pf = True, inorder
    cdef int64_t chunk = _reduce_chunk(kp, item) if reduce else 1
    if prefetch:
        span_a = <int64_t>kp.desc.lda * (kp.desc.m if kp.desc.trans_a else kp.desc.k) * item
        span_b = <int64_t>kp.desc.ldb * (kp.desc.k if kp.desc.trans_b else kp.desc.n) * item
        seq_pf = (<int64_t>kp.desc.m * kp.desc.k + <int64_t>kp.desc.k * kp.desc.n
                  + <int64_t>kp.desc.m * kp.desc.n) * item > _SEQ_PF_BYTES
    if cfixed == NULL and not (prefetch and seq_pf):
        sfn = (<const smm_kernel_full *>kp).fn_strided_cached if cached else (<const smm_kernel_full *>kp).fn_strided
    while e < e1:
        if sfn != NULL:
            e = _gather_singles(sfn, kp, a, b, c, item, ia, ib, ic, sa, sb, sc, base, order, e, e1, reduce,
                                prefetch, span_a, span_b)
            if e >= e1:
                break
        g = order[e] if order != NULL else e
        oc = _offset(ic, sc, base, g)
        f = e + 1
        if reduce:
            while f < e1 and f - e < chunk:
                j = order[f] if order != NULL else f
                if _offset(ic, sc, base, j) != oc:
                    break
                f += 1
        inorder = True
        for j in range(e, f):
            g = order[j] if order != NULL else j
            ap[j - e] = a + _offset(ia, sa, base, g) * item
            bp[j - e] = b + _offset(ib, sb, base, g) * item
            if j > e and inorder and not seq_pf:
                da = <const char *>ap[j - e] - <const char *>ap[j - e - 1]
                db = <const char *>bp[j - e] - <const char *>bp[j - e - 1]
                inorder = _follows(da, db, span_a, span_b)
        if prefetch:
            nxt = f if f < e1 else f - 1
            nxt = order[nxt] if order != NULL else nxt
            pa = a + _offset(ia, sa, base, nxt) * item
            pb = b + _offset(ib, sb, base, nxt) * item
            pc = c + _offset(ic, sc, base, nxt) * item
            da = <const char *>pa - <const char *>ap[f - e - 1]
            db = <const char *>pb - <const char *>bp[f - e - 1]
            if not seq_pf and inorder and _follows(da, db, span_a, span_b):
                pa = pb = pc = NULL
            fn(kp, ap, bp, cfixed if cfixed != NULL else c + oc * item, f - e, pa, pb, pc)
        else:
            fn(kp, ap, bp, cfixed if cfixed != NULL else c + oc * item, f - e, NULL, NULL, NULL)
        e = f


cdef void _run_strided(const smm_kernel *kp, char *a, char *b, char *c, int64_t sa, int64_t sb, int64_t sc,
                       int64_t e0, int64_t e1, bint prefetch, bint cached) noexcept nogil:
    """Entries [e0, e1) of a strided batch with distinct C's (byte strides): the lean loop, or one
    call of the kernel's strided form where it has one (the smallest shapes, no prefetch)."""
    cdef smm_kernel_fn fn = _kernel_fn(kp, cached)
    cdef smm_strided_fn sfn
    cdef const void *ap
    cdef const void *bp
    cdef int64_t e
    if not prefetch:
        sfn = (<const smm_kernel_full *>kp).fn_strided_cached if cached else (<const smm_kernel_full *>kp).fn_strided
        if sfn != NULL:
            sfn(kp, a + e0 * sa, b + e0 * sb, c + e0 * sc, sa, sb, sc, e1 - e0)
            return
    for e in range(e0, e1):
        ap = a + e * sa
        bp = b + e * sb
        if prefetch and e + 1 < e1:
            fn(kp, &ap, &bp, c + e * sc, 1, a + (e + 1) * sa, b + (e + 1) * sb, c + (e + 1) * sc)
        else:
            fn(kp, &ap, &bp, c + e * sc, 1, NULL, NULL, NULL)


cdef inline int64_t _team_bound(int64_t n, int64_t j) noexcept nogil:
    """Inside a parallel block: where team member j's contiguous part of n entries starts (member
    j - 1's ends), by the size of the team OpenMP gave, which may be smaller than asked. A parallel
    block, not a prange over the team: prange makes its variables lastprivate, and the member that
    ends the loop writes them back to the caller's stack, a cache line that then crosses cores on
    every call (bare 2-thread region called from Python: 1.10 -> 0.84 us)."""
    cdef int64_t nt = openmp.omp_get_num_threads()
    return min(j * ((n + nt - 1) // nt), n)


# A batch of distinct C's whose entries do not divide evenly among the team (strided, or the index
# form with distinct C's) hands its last nbatch % team entries out by columns instead: member t
# computes columns [t*w, (t+1)*w) of each (kernels for w columns and for the last piece's width),
# so that no member runs a whole product more than the others (64^3 in cache, 5 products on 2
# threads: 3 against 2 products, a third of the second core idle). Only for products of at least
# _SPLIT_WORK (m*n*k): below it (20^3, 16^3) the pieces cost what the balance gains. Every C column
# sums its products in the same order, so the bits do not depend on the split
# (tests/test_smm_batch.py, *_uneven_tail_split_by_columns).
cdef int64_t _SPLIT_WORK = 16384
cdef bint _split_tails = True


def _split_tail(enabled=None):
    """Whether batches split their uneven tail by columns (see _Tail); enabled=False turns it off
    for the process (a hook for tests and A/B timing). Returns the setting in force before."""
    global _split_tails
    cdef bint before = _split_tails
    if enabled is not None:
        _split_tails = bool(enabled)
    return before


cdef struct _Tail:
    int nt                    # the team the split was made for (another team size: no split)
    int64_t w                 # columns per piece; piece t starts at column t*w
    const smm_kernel *kw      # kernel for w columns
    const smm_kernel *kl      # kernel for the last piece (n - (nt-1)*w columns, at least 1)
    int64_t bcol, ccol        # bytes from one column of op(B) and of C to the next


cdef inline void _run_piece(const _Tail *tail, int64_t t, const char *a, const char *b, char *c,
                            bint cached) noexcept nogil:
    """Member t's columns of one product (A, B, C: its whole blocks)."""
    cdef const smm_kernel *kp = tail.kl if t == tail.nt - 1 else tail.kw
    cdef const void *ap = a
    cdef const void *bp = b + t * tail.w * tail.bcol
    _kernel_fn(kp, cached)(kp, &ap, &bp, c + t * tail.w * tail.ccol, 1, NULL, NULL, NULL)


cdef inline int64_t _even_share(const _Tail *tail, int64_t nbatch) noexcept nogil:
    """Inside a parallel block: the entries that run whole (the rest by columns, _run_piece)."""
    if tail != NULL and openmp.omp_get_num_threads() == tail.nt:
        return nbatch - nbatch % tail.nt
    return nbatch


cdef void _run_strided_batch(const smm_kernel *kp, char *a, char *b, char *c, int64_t sa, int64_t sb,
                             int64_t sc, int64_t nbatch, bint prefetch, int nthreads, bint cached,
                             const _Tail *tail) noexcept nogil:
    cdef int64_t t = 0, e0 = 0, e1 = 0, whole = nbatch, e = 0
    if nthreads <= 1:
        _run_strided(kp, a, b, c, sa, sb, sc, 0, nbatch, prefetch, cached)
        return
    with parallel(num_threads=nthreads):
        t = openmp.omp_get_thread_num()
        whole = _even_share(tail, nbatch)
        e0 = _team_bound(whole, t)
        e1 = _team_bound(whole, t + 1)
        if e0 < e1:
            _run_strided(kp, a, b, c, sa, sb, sc, e0, e1, prefetch, cached)
        for e in range(whole, nbatch):
            _run_piece(tail, t, a + e * sa, b + e * sb, c + e * sc, cached)


# The last split planned (a batch is often called again with the same kernel and team).
cdef _Tail _tail_memo
cdef const smm_kernel *_tail_memo_kp = NULL
cdef bint _tail_memo_cached = False


cdef const _Tail *_plan_tail(const smm_kernel *kp, int64_t nb, int nt, int isa, bint cached,
                             _Tail *tail) except? NULL:
    """The column split of a batch's uneven tail (see _Tail), or NULL where it does not apply.
    Called with the GIL held (the memo is shared)."""
    global _tail_memo, _tail_memo_kp, _tail_memo_cached
    cdef const smm_desc *d = &kp.desc
    cdef int64_t n = d.n, w, nr = max(1, <int64_t>(kp.nr_cached if cached else kp.nr))
    cdef int64_t item = 8 if d.dtype == SMM_F64 else 4
    if not _split_tails or nt <= 1 or nb % nt == 0 or <int64_t>d.m * d.n * d.k < _SPLIT_WORK or n < 2 * nt:
        return NULL
    if _tail_memo_kp == kp and _tail_memo.nt == nt and _tail_memo_cached == cached:
        tail[0] = _tail_memo
        return tail
    w = (n + nt - 1) // nt
    if (nt - 1) * (((w + nr - 1) // nr) * nr) < n:
        w = ((w + nr - 1) // nr) * nr  # whole register tiles per piece where the last keeps columns
    if (nt - 1) * w >= n:  # many threads, few columns (n = 11 on 5 threads): no column for the last
        return NULL
    tail.nt = nt
    tail.w = w
    tail.kw = _lookup(d.m, w, d.k, d.lda, d.ldb, d.ldc, d.alpha, d.beta, d.dtype, d.trans_a, d.trans_b, 0, isa)
    tail.kl = tail.kw
    if n - (nt - 1) * w != w:
        tail.kl = _lookup(d.m, n - (nt - 1) * w, d.k, d.lda, d.ldb, d.ldc, d.alpha, d.beta, d.dtype,
                          d.trans_a, d.trans_b, 0, isa)
    tail.bcol = item * (1 if d.trans_b else d.ldb)
    tail.ccol = item * d.ldc
    _tail_memo = tail[0]
    _tail_memo_kp = kp
    _tail_memo_cached = cached
    return tail


ctypedef fused real_t:
    float
    double


cdef void _add_block(real_t *c, const real_t *s, int64_t m, int64_t n, int64_t ldc) noexcept nogil:
    cdef int64_t i, j
    for j in range(n):
        for i in range(m):
            c[i + j * ldc] += s[i + j * m]


cdef void _run_batch(const smm_kernel *kp, const smm_kernel *kp0, char *a, char *b, char *c, int64_t item,
                     const index_t *ia, const index_t *ib, const index_t *ic,
                     int64_t sa, int64_t sb, int64_t sc, int64_t base, int64_t nbatch,
                     const int64_t *order, const int64_t *tasks, int64_t ntasks, char *scratch,
                     bint reduce, bint prefetch, int nthreads, bint cached, const _Tail *tail) noexcept nogil:
    """Whole batch. `tasks` (rows of e0, e1, slot) keep every C inside one task, or split a long
    run of one C (batch-reduce only) into tasks whose partial sums go to scratch slot >= 0 (kernel
    kp0: beta = 1 onto zeroed scratch, tight ldc), added in order afterwards. NULL tasks: one task, or distinct C's
    (then `tail`, if not NULL, splits the entries beyond an even share by columns, as in a strided batch)."""
    cdef int64_t r, t = 0, e0 = 0, e1 = 0, whole = nbatch, e = 0
    cdef int64_t sbytes = <int64_t>kp.desc.m * kp.desc.n * item
    if tasks == NULL:
        if nthreads <= 1:
            _run_entries(kp, a, b, c, item, ia, ib, ic, sa, sb, sc, base, order, 0, nbatch, reduce, prefetch, NULL, cached)
            return
        # Distinct C's: contiguous blocks of entries per thread (as LIBXSMM's batch), so each
        # thread streams through its part and prefetches its own next entry.
        with parallel(num_threads=nthreads):
            t = openmp.omp_get_thread_num()
            whole = _even_share(tail, nbatch)
            e0 = _team_bound(whole, t)
            e1 = _team_bound(whole, t + 1)
            if e0 < e1:
                _run_entries(kp, a, b, c, item, ia, ib, ic, sa, sb, sc, base, order, e0, e1, reduce, prefetch, NULL, cached)
            for e in range(whole, nbatch):
                _run_piece(tail, t, a + _offset(ia, sa, base, e) * item, b + _offset(ib, sb, base, e) * item,
                           c + _offset(ic, sc, base, e) * item, cached)
        return
    for r in prange(ntasks, nogil=True, num_threads=nthreads, schedule="dynamic"):
        if tasks[3 * r + 2] < 0:
            _run_entries(kp, a, b, c, item, ia, ib, ic, sa, sb, sc, base, order, tasks[3 * r], tasks[3 * r + 1],
                         reduce, prefetch, NULL, cached)
        else:
            _run_entries(kp0, a, b, c, item, ia, ib, ic, sa, sb, sc, base, order, tasks[3 * r], tasks[3 * r + 1],
                         reduce, prefetch, scratch + tasks[3 * r + 2] * sbytes, cached)


# Hashed lock array (the alternative to grouping by C, kept for measurement: sync="locks").
DEF NLOCKS = 1024
cdef openmp.omp_lock_t _c_locks[NLOCKS]
cdef int _i
for _i in range(NLOCKS):
    openmp.omp_init_lock(&_c_locks[_i])


cdef void _run_locked(const smm_kernel *kp, char *a, char *b, char *c, int64_t item,
                      const index_t *ia, const index_t *ib, const index_t *ic, int64_t base,
                      int64_t e0, int64_t e1, bint prefetch, bint cached) noexcept nogil:
    """Entries [e0, e1) in order, each run of one C under that C's hashed lock (batch-reduced)."""
    cdef int64_t e = e0, f, oc
    cdef uint64_t h
    while e < e1:
        oc = _offset(ic, 0, base, e)
        f = e + 1
        while f < e1 and f - e < REDUCE_CHUNK and _offset(ic, 0, base, f) == oc:
            f += 1
        h = <uint64_t>oc * 0x9e3779b97f4a7c15ULL
        h = (h >> 40) & (NLOCKS - 1)
        openmp.omp_set_lock(&_c_locks[h])
        _run_entries(kp, a, b, c, item, ia, ib, ic, 0, 0, 0, base, NULL, e, f, True, prefetch, NULL, cached)
        openmp.omp_unset_lock(&_c_locks[h])
        e = f


cdef void _run_batch_locked(const smm_kernel *kp, char *a, char *b, char *c, int64_t item,
                            const index_t *ia, const index_t *ib, const index_t *ic, int64_t base,
                            int64_t nbatch, bint prefetch, int nthreads, bint cached) noexcept nogil:
    cdef int64_t t = 0, e0 = 0, e1 = 0
    with parallel(num_threads=nthreads):
        t = openmp.omp_get_thread_num()
        e0 = _team_bound(nbatch, t)
        e1 = _team_bound(nbatch, t + 1)
        if e0 < e1:
            _run_locked(kp, a, b, c, item, ia, ib, ic, base, e0, e1, prefetch, cached)


cdef int64_t _sorted_runs(const index_t *ic, int64_t n, int64_t *runs) noexcept nogil:
    """One pass over C offsets: -1 if they ever decrease, else the boundaries of the runs of equal
    offsets (runs[r] is the first entry of run r, runs[count] = n) and their count."""
    cdef int64_t e, nr = 1
    if n <= 0:
        runs[0] = 0
        return 0
    runs[0] = 0
    for e in range(1, n):
        if ic[e] != ic[e - 1]:
            if ic[e] < ic[e - 1]:
                return -1
            runs[nr] = e
            nr += 1
    runs[nr] = n
    return nr


cdef void _minmax(const index_t *idx, int64_t n, int64_t *lo, int64_t *hi) noexcept nogil:
    # Selects on locals, no early branch: gcc vectorises the loop (682 int32 indices: 0.8 -> 0.3 ns each).
    cdef index_t v, l = idx[0], h = idx[0]
    cdef int64_t e
    for e in range(1, n):
        v = idx[e]
        l = v if v < l else l
        h = v if v > h else h
    lo[0] = l
    hi[0] = h


cdef int _index_range(str name, object idx, int64_t n, int64_t *lo, int64_t *hi) except -1:
    """(min, max) of an index array, checked for dtype, length and layout (C API: hot path)."""
    if not cnp.PyArray_Check(idx):
        raise TypeError(f"{name} must be a numpy.ndarray of int32 or int64, got {type(idx).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>idx
    cdef int t = cnp.PyArray_TYPE(arr)
    if (t != cnp.NPY_INT32 and t != cnp.NPY_INT64) or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{name} must have dtype int32 or int64, got {idx.dtype}")
    if cnp.PyArray_NDIM(arr) != 1:
        raise ValueError(f"{name} must be 1-D, got shape {idx.shape}")
    if cnp.PyArray_DIMS(arr)[0] != n:
        raise ValueError(f"{name} must have the batch length {n}, got {idx.shape[0]} entries")
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not flags & cnp.NPY_ARRAY_C_CONTIGUOUS or not flags & cnp.NPY_ARRAY_ALIGNED:
        raise ValueError(f"{name} must be contiguous and aligned")
    lo[0] = hi[0] = 0
    if n:
        with nogil:
            if t == cnp.NPY_INT32:
                _minmax(<const int32_t *>cnp.PyArray_DATA(arr), n, lo, hi)
            else:
                _minmax(<const int64_t *>cnp.PyArray_DATA(arr), n, lo, hi)
    return 0


cdef inline bint _blocks_overlap(int64_t d, int64_t rows, int64_t cols, int64_t ld) noexcept nogil:
    """Do column-major blocks (rows x cols, leading dimension ld) at element offsets 0 and d > 0
    share an element?"""
    if d >= (cols - 1) * ld + rows:  # past the first block's last element (the usual case: no division)
        return False
    cdef int64_t q = d // ld, r = d % ld
    return (r < rows and q < cols) or (r + rows > ld and q + 1 < cols)


# Distinct C blocks that are neighbours in offset order must not partially overlap, or two threads
# would race on the shared elements. (Blocks interleaved with a third one in between are not
# checked: that needs ld > rows and is the caller's promise.) Both return the first bad pair or -1.
cdef int64_t _first_overlap_sorted(const int64_t *u, int64_t n, int64_t rows, int64_t cols,
                                   int64_t ld) noexcept nogil:
    """u: distinct offsets, ascending."""
    cdef int64_t i
    for i in range(n - 1):
        if _blocks_overlap(u[i + 1] - u[i], rows, cols, ld):
            return i
    return -1


cdef int64_t _first_overlap_runs(const index_t *ic, const int64_t *runs, int64_t nruns, int64_t rows,
                                 int64_t cols, int64_t ld) noexcept nogil:
    """Runs of a stack sorted by C: run r starts at entry runs[r]."""
    cdef int64_t r
    for r in range(nruns - 1):
        if _blocks_overlap(<int64_t>ic[runs[r + 1]] - <int64_t>ic[runs[r]], rows, cols, ld):
            return r
    return -1


def _overlap_error(int64_t lo, int64_t hi, int64_t rows, int64_t cols, int64_t ld):
    return ValueError(f"c_index: C blocks at offsets {lo} and {hi} overlap partially ({rows}x{cols}, "
                      f"ldc={ld}); repeated C blocks must use identical offsets")


ctypedef struct _Stack:
    char *ptr        # first matrix
    int64_t ld       # leading dimension in column-major terms
    int64_t rows     # numpy shape of one matrix: rows x cols
    int64_t cols
    int64_t stride   # batch stride in elements (0: one matrix for every entry)
    bint col         # True: the memory holds the matrix column-major (Fortran order)


cdef int _stack_layout(str name, object x, int type_num, int64_t nbatch, bint write, _Stack *S) except -1:
    """A 3-D stack (batch, rows, cols) or a 2-D matrix used for every entry, into S. Checked
    through numpy's C API with no Python objects made: this runs on every batch call."""
    _check_array(name, x, type_num, write)
    cdef cnp.ndarray arr = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(arr)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(arr)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(arr)
    cdef int64_t item = cnp.PyArray_ITEMSIZE(arr)
    if nd == 2:
        S.stride = 0
    elif nd == 3:
        if dims[0] != nbatch:
            raise ValueError(f"{name} holds {x.shape[0]} matrices, the batch has {nbatch}")
        if strides[0] % item or strides[0] < 0:
            raise ValueError(f"{name}: the batch stride {x.strides[0]} bytes is not a non-negative "
                             f"multiple of the element size")
        S.stride = strides[0] // item if nbatch > 1 else 0
    else:
        raise ValueError(f"{name} must be a 3-D stack (batch, rows, cols) or a 2-D matrix, got {x.ndim}-D")
    cdef int64_t rows = dims[nd - 2], cols = dims[nd - 1], s0, s1
    S.rows = rows
    S.cols = cols
    S.ptr = <char *>cnp.PyArray_DATA(arr)
    if cnp.PyArray_SIZE(arr) == 0:   # numpy gives empty arrays any strides (often 0): nothing is read
        s0 = item
        s1 = (rows if rows > 1 else 1) * item
    else:
        s0 = strides[nd - 2]
        s1 = strides[nd - 1]
    if not _col_layout(rows, cols, s0, s1, item, &S.col, &S.ld):
        raise ValueError(f"{name}: each matrix needs one unit-stride axis (C or Fortran order), "
                         f"got strides {x.strides}")
    if S.ld > INT32_MAX_:
        raise ValueError(f"{name}: leading dimension {S.ld} is too large")
    return 0


def gemm_batch(a, b, c, alpha=1.0, beta=1.0, *, a_index=None, b_index=None, c_index=None,
               index_base=0, m=None, n=None, k=None, lda=None, ldb=None, ldc=None,
               trans_a=False, trans_b=False, batch=None, threads=None, distinct_c=False,
               prefetch="auto", target=None, sync="group"):
    """Many products in one nogil call: ``C_i = alpha * op(A_i) @ op(B_i) + beta * C_i``.

    Strided form: ``a``, ``b``, ``c`` are stacks of shape ``(batch, rows, cols)`` (numpy shapes:
    ``a[i]`` is ``(m, k)``, or ``(k, m)`` with ``trans_a``), each matrix C- or Fortran-ordered, any
    batch stride; ``a`` or ``b`` may have batch stride 0 (``np.broadcast_to``) or be 2-D (one matrix
    for every entry). ``c`` needs distinct matrices.

    Index form (any of ``a_index``, ``b_index``, ``c_index`` given, ``a``/``b``/``c`` 1-D buffers):
    entry i multiplies the column-major blocks starting at element ``a_index[i] - index_base`` of
    ``a`` (m x k, or k x m with ``trans_a``, leading dimension ``lda``), ``b_index[i]`` of ``b`` and
    ``c_index[i]`` of ``c`` (m x n, ``ldc``); an omitted index array means offset 0 for every entry
    (then ``batch`` gives the length if no index array does). Index arrays are int32 or int64.

    Entries are applied as if in order for each C: repeated C blocks (same offset) are grouped so
    each is updated by one thread, and runs of consecutive entries on one C are reduced in registers
    (C loaded and stored once per run) when ``beta == 1``. ``distinct_c=True`` promises no C
    repeats (skips the grouping). ``sync="locks"`` (beta == 1 only) takes a hashed lock per C
    run instead of grouping, as LIBXSMM's batch does (kept to measure against). ``threads``: OpenMP threads for this call, taken as given; the
    default (None) uses the process setting, or one thread when the batch is too small to pay for
    waking a team (less than about 2**17 m*n*k per thread).
    """
    dt = _common_dtype(a, b, c)
    if not cnp.PyArray_Check(a):
        raise TypeError(f"a must be a numpy.ndarray, got {type(a).__name__}")
    if not cnp.PyArray_Check(b):
        raise TypeError(f"b must be a numpy.ndarray, got {type(b).__name__}")
    alpha = _as_scalar("alpha", alpha)
    beta = _as_scalar("beta", beta)
    ta = _as_flag("trans_a", trans_a)
    tb = _as_flag("trans_b", trans_b)
    isa = _isa_id(target)
    pf = _prefetch_id(prefetch)
    nthreads = resolve_threads(threads)
    if index_base not in (0, 1) or isinstance(index_base, bool):
        raise ValueError(f"index_base must be 0 or 1, got {index_base!r}")
    if sync not in ("group", "locks"):
        raise ValueError(f"sync must be 'group' or 'locks', got {sync!r}")
    if a_index is not None or b_index is not None or c_index is not None or cnp.PyArray_NDIM(<cnp.ndarray>a) == 1:
        return _gemm_batch_index(a, b, c, dt, alpha, beta, a_index, b_index, c_index, index_base,
                                 m, n, k, lda, ldb, ldc, ta, tb, batch, nthreads, distinct_c, pf, isa,
                                 threads is not None, sync == "locks")
    if (m is not None or n is not None or k is not None or lda is not None or ldb is not None
            or ldc is not None or batch is not None):
        raise ValueError("m, n, k, lda, ldb, ldc and batch are for the index form; "
                         "the strided form takes them from the arrays")
    return _gemm_batch_strided(a, b, c, dt, alpha, beta, ta, tb, nthreads, pf, isa, threads is not None)


cdef object _gemm_batch_strided(a, b, c, dt, double alpha, double beta, bint ta, bint tb, int nthreads, int pf, int isa,
                        bint explicit):
    if not cnp.PyArray_Check(c) or cnp.PyArray_NDIM(<cnp.ndarray>c) != 3:
        raise ValueError(f"c must be a 3-D stack (batch, rows, cols), got shape {getattr(c, 'shape', None)}")
    cdef int64_t nb = cnp.PyArray_DIMS(<cnp.ndarray>c)[0]
    cdef int type_num = (<cnp.dtype>dt).type_num
    cdef _Stack A, B, C
    _stack_layout("a", a, type_num, nb, False, &A)
    _stack_layout("b", b, type_num, nb, False, &B)
    _stack_layout("c", c, type_num, nb, True, &C)
    cdef int64_t mm, ka, kb, nn
    if ta:
        mm = A.cols; ka = A.rows
    else:
        mm = A.rows; ka = A.cols
    if tb:
        kb = B.cols; nn = B.rows
    else:
        kb = B.rows; nn = B.cols
    if ka != kb:
        raise ValueError(f"a and b do not conform: op(a[i]) is {mm}x{ka}, op(b[i]) is {kb}x{nn}")
    if C.rows != mm or C.cols != nn:
        raise ValueError(f"c[i] has shape {tuple(c.shape[1:])}, op(a[i]) @ op(b[i]) has shape ({mm}, {nn})")
    _check_no_overlap(a, b, c)
    if nb == 0 or mm == 0 or nn == 0:
        return c
    if mm > INT32_MAX_ or nn > INT32_MAX_ or ka > INT32_MAX_:
        raise ValueError(f"the matrices ({mm}x{ka} times {ka}x{nn}) are too large (dimensions at most 2**31-1)")
    # The C stack in column-major terms (rows x cols, ld): its entries must be distinct.
    cdef int64_t crow = mm if C.col else nn, ccol = nn if C.col else mm, foot, q, sc = C.stride
    if nb > 1:
        if sc == 0:
            raise ValueError("c: a batch stride of 0 would make every entry write the same C")
        foot = C.ld * (ccol - 1) + crow
        for q in range(1, min(nb, foot // sc + 2)):
            if q * sc < foot and _blocks_overlap(q * sc, crow, ccol, C.ld):
                raise ValueError("c: the matrices of the stack overlap each other")
    if ka == 0:  # C = beta C, once per element: only after the entries are known distinct
        if beta == 0.0:
            c[...] = 0
        else:
            c *= beta
        return c
    cdef const smm_kernel *kp
    cdef char *p1
    cdef char *p2
    cdef int64_t s1, s2
    cdef int dtype_id = SMM_F64 if type_num == cnp.NPY_DOUBLE else SMM_F32
    cdef int64_t item = cnp.PyArray_ITEMSIZE(<cnp.ndarray>c)
    cdef bint auto = pf < 0
    if auto:  # see _PREFETCH
        pf = 1 if (mm * ka + ka * nn + mm * nn) * item > _SEQ_PF_BYTES else 0
    if C.col:
        kp = _lookup(mm, nn, ka, A.ld, B.ld, C.ld, alpha, beta, dtype_id, ta ^ (not A.col), tb ^ (not B.col), pf, isa)
        p1 = A.ptr; p2 = B.ptr; s1 = A.stride; s2 = B.stride
    else:
        kp = _lookup(nn, mm, ka, B.ld, A.ld, C.ld, alpha, beta, dtype_id, tb ^ B.col, ta ^ A.col, pf, isa)
        p1 = B.ptr; p2 = A.ptr; s1 = B.stride; s2 = A.stride
    cdef char *pc = C.ptr
    # threads=None: the policy sizes the team by the work; an explicit count is taken as given.
    cdef double flops = <double>nb * <double>mm * <double>nn * <double>ka
    cdef int64_t work = <int64_t>flops if flops < 4.6e18 else (<int64_t>1 << 62)
    cdef int nt = threads_for_work(nthreads, work, BATCH_GRAIN) if explicit == 0 else nthreads
    cdef int64_t b1 = s1 * item, b2 = s2 * item, bc = sc * item
    cdef bint fits = _fits_cache(<double>item * (<double>(nb if A.stride else 1) * mm * ka
                                                 + <double>(nb if B.stride else 1) * ka * nn
                                                 + <double>nb * mm * nn), nt)
    # "auto" does not prefetch a batch that sits in the threads' L2: the next product is there already.
    cdef bint pref = pf != 0 and not (auto and fits)
    cdef _Tail tail
    cdef const _Tail *tp = _plan_tail(kp, nb, nt, isa, fits, &tail)
    global _last_cached
    _last_cached = fits
    with nogil:
        _run_strided_batch(kp, p1, p2, pc, b1, b2, bc, nb, pref, nt, fits, tp)
    return c


cdef int _flat(str name, object x, object dt, bint write) except -1:
    """A flat operand of the index form, checked through numpy's C API (a batch call's hot path)."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(x).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>x
    if cnp.PyArray_TYPE(arr) != (<cnp.dtype>dt).type_num or not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{name} has dtype {x.dtype}, expected {dt} (all operands must share one dtype)")
    if cnp.PyArray_NDIM(arr) != 1:
        raise ValueError(f"{name} must be a flat 1-D buffer in the index form, got shape {x.shape}")
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not flags & cnp.NPY_ARRAY_C_CONTIGUOUS:
        raise ValueError(f"{name} must be contiguous")
    if not flags & cnp.NPY_ARRAY_ALIGNED:
        raise ValueError(f"{name} is not aligned to its element size")
    if write and not flags & cnp.NPY_ARRAY_WRITEABLE:
        raise ValueError(f"{name} is read-only")
    return 0


cdef int _check_index_operand(str name, object idx, object buf, int64_t rows, int64_t cols, int64_t ld,
                              int64_t nb, int64_t base, int *type_seen, int *ntypes) except -1:
    """Every block of one operand (rows x cols, leading dimension ld, at the offsets idx[i] - base;
    None: offset 0) lies inside its flat buffer; counts the index dtypes seen."""
    if ld < rows:
        raise ValueError(f"ld{name[0]}={ld} is smaller than the rows of {name[0].upper()} ({rows})")
    cdef int64_t foot = ld * (cols - 1) + rows, lo = base, hi = base
    if idx is not None:
        _index_range(name, idx, nb, &lo, &hi)
        if cnp.PyArray_TYPE(<cnp.ndarray>idx) != type_seen[0]:
            ntypes[0] += 1
            type_seen[0] = cnp.PyArray_TYPE(<cnp.ndarray>idx)
    if nb and lo < base:
        raise ValueError(f"{name}: index {lo} is below index_base={base}")
    # Offsets are at most 2**63 - 1: compare without forming hi + foot, which could wrap.
    if nb and hi - base > cnp.PyArray_DIMS(<cnp.ndarray>buf)[0] - foot:
        raise ValueError(f"{name}: the block at index {hi} ({rows}x{cols}, ld={ld}) ends at element "
                         f"{(hi - base) + <object>foot}, past the end of {name[0]} ({buf.shape[0]} elements)")
    return 0


cdef object _gemm_batch_index(a, b, c, dt, double alpha, double beta, a_index, b_index, c_index, int64_t base,
                      m, n, k, lda_arg, ldb_arg, ldc_arg, bint ta, bint tb, batch, int nthreads, distinct_c, int pf, int isa,
                      bint explicit, bint locks=False):
    _flat("a", a, dt, False)
    _flat("b", b, dt, False)
    _flat("c", c, dt, True)
    if m is None:
        raise ValueError("the index form needs the block shape: m (and n, k)")
    cdef int64_t mm = _as_size("m", m)
    cdef int64_t nn = mm if n is None else _as_size("n", n)
    cdef int64_t kk = nn if k is None else _as_size("k", k)
    cdef int64_t lda = (kk if ta else mm) if lda_arg is None else _as_size("lda", lda_arg)
    cdef int64_t ldb = (nn if tb else kk) if ldb_arg is None else _as_size("ldb", ldb_arg)
    cdef int64_t ldc = mm if ldc_arg is None else _as_size("ldc", ldc_arg)
    first = a_index if a_index is not None else (b_index if b_index is not None else c_index)
    cdef int64_t nb
    if first is not None:
        if cnp.PyArray_Check(first):   # (its dtype and shape are checked below)
            nb = cnp.PyArray_DIMS(<cnp.ndarray>first)[0] if cnp.PyArray_NDIM(<cnp.ndarray>first) else -1
        else:
            nb = len(first) if hasattr(first, "__len__") else -1
        if batch is not None and _as_size("batch", batch, False, 0) != nb:
            raise ValueError(f"batch={batch} differs from the index arrays' length {nb}")
    elif batch is None:
        raise ValueError("the index form needs a_index, b_index or c_index (or batch)")
    else:
        nb = _as_size("batch", batch, False, 0)
    # Each block must lie inside its buffer for every index.
    cdef int ntypes = 0, type_seen = -1
    _check_index_operand("a_index", a_index, a, kk if ta else mm, mm if ta else kk, lda, nb, base, &type_seen, &ntypes)
    _check_index_operand("b_index", b_index, b, nn if tb else kk, kk if tb else nn, ldb, nb, base, &type_seen, &ntypes)
    _check_index_operand("c_index", c_index, c, mm, nn, ldc, nb, base, &type_seen, &ntypes)
    _check_no_overlap(a, b, c)
    if nb == 0:
        return c
    if ntypes > 1:   # one index type per call: widen the narrow ones (a copy of the indices only)
        a_index, b_index, c_index = (None if x is None else x.astype(np.int64) for x in (a_index, b_index, c_index))
        type_seen = cnp.NPY_INT64
    cdef bint wide = type_seen != cnp.NPY_INT32
    # The bytes of A and B (and C) blocks the batch can touch: at most each whole buffer.
    cdef double esz = cnp.PyArray_ITEMSIZE(<cnp.ndarray>a)
    cdef double touched = (min(<double>cnp.PyArray_NBYTES(<cnp.ndarray>a), (nb if a_index is not None else 1) * esz * mm * kk)
                           + min(<double>cnp.PyArray_NBYTES(<cnp.ndarray>b), (nb if b_index is not None else 1) * esz * kk * nn))
    cdef double touched_c = min(<double>cnp.PyArray_NBYTES(<cnp.ndarray>c), (nb if c_index is not None else 1) * esz * mm * nn)
    cdef int dtype_id = SMM_F64 if (<cnp.dtype>dt).type_num == cnp.NPY_DOUBLE else SMM_F32
    if pf < 0:
        # "auto": prefetch the next entry's blocks when the blocks the batch can touch exceed a
        # core's L2 (gathered from memory, where it pays up to 1.8x); a stack that fits is cached
        # when called repeatedly, and there the prefetches cost up to 17 % (8^3, measured).
        pf = 1 if touched > _L2_BYTES else 0
    cdef const smm_kernel *kp = _lookup(mm, nn, kk, lda, ldb, ldc, alpha, beta, dtype_id, ta, tb, pf, isa)
    # C repeats: group equal C offsets (stable: per-C order kept) so that a C belongs to one task.
    cdef int nt = threads_for_work(nthreads, <int64_t>min(<double>nb * mm * nn * kk, 4.0e18), BATCH_GRAIN) if explicit == 0 else nthreads
    cdef bint reduce = beta == 1.0 and alpha != 0.0
    order = tasks = scratch = None
    cdef int64_t nruns = 0, ntasks = 0
    cdef int64_t *order_p = NULL
    cdef int64_t *runs_p = NULL
    cdef int64_t *tasks_p = NULL
    cdef char *scratch_p = NULL
    cdef const smm_kernel *kp0 = kp
    # The grouping (and its check that distinct C blocks do not partially overlap) runs whenever
    # threads were asked for, so a call's validity never depends on the batch size.
    cdef const void *ic_data = NULL if c_index is None else cnp.PyArray_DATA(c_index)
    cdef int64_t *keys_p
    cdef int64_t nbg
    cdef bint locked = locks and nt > 1 and not distinct_c and reduce and c_index is not None
    cdef int64_t bad = -1
    cdef bint hashed = False
    if nthreads > 1 and not distinct_c:
        runs = np.empty(nb + 1, dtype=np.int64)
        runs_p = <int64_t *>cnp.PyArray_DATA(runs)
        nbg = nb
        if c_index is not None:
            if wide:
                nruns = _sorted_runs[int64_t](<const int64_t *>ic_data, nbg, runs_p)
            else:
                nruns = _sorted_runs[int32_t](<const int32_t *>ic_data, nbg, runs_p)
            if nruns < 0:  # not sorted by C
                order = np.empty(nb, dtype=np.int64)
                order_p = <int64_t *>cnp.PyArray_DATA(order)
                keys = np.empty(nb, dtype=np.int64)
                keys_p = <int64_t *>cnp.PyArray_DATA(keys)
                with nogil:
                    if wide:
                        nruns = _group_by_hash[int64_t](<const int64_t *>ic_data, nbg, order_p, runs_p, keys_p)
                    else:
                        nruns = _group_by_hash[int32_t](<const int32_t *>ic_data, nbg, order_p, runs_p, keys_p)
                    hashed = nruns != -2
                    if not hashed and wide:
                        nruns = _group_by_sort[int64_t](<const int64_t *>ic_data, nbg, order_p, runs_p, keys_p)
                    elif not hashed:
                        nruns = _group_by_sort[int32_t](<const int32_t *>ic_data, nbg, order_p, runs_p, keys_p)
                if nruns < 0:
                    raise MemoryError("gemm_batch: no memory to group the entries by C")
                if hashed:   # the hash's groups are in first-appearance order; the sort's ascending
                    keys[:nruns].sort()
                bad = _first_overlap_sorted(keys_p, nruns, mm, nn, ldc)
                if bad >= 0:
                    raise _overlap_error(keys_p[bad] - base, keys_p[bad + 1] - base, mm, nn, ldc)
            else:
                if wide:
                    bad = _first_overlap_runs[int64_t](<const int64_t *>ic_data, runs_p, nruns, mm, nn, ldc)
                else:
                    bad = _first_overlap_runs[int32_t](<const int32_t *>ic_data, runs_p, nruns, mm, nn, ldc)
                if bad >= 0:
                    raise _overlap_error(int(c_index[runs_p[bad]]) - base, int(c_index[runs_p[bad + 1]]) - base,
                                         mm, nn, ldc)
        else:  # one C for every entry: one run
            runs_p[0] = 0
            runs_p[1] = nb
            nruns = 1
    # Every C distinct (and checked): nothing to keep together, the threads take contiguous parts
    # as with distinct_c=True (sequential 8^3 index stack, 131072 entries, 2 threads: 6.2 -> 5.5 ms).
    if nthreads > 1 and not distinct_c and not locked and nt > 1 and nruns < nb:
        tasks, slots = _plan_tasks(runs, nruns, nt, reduce)
        ntasks = tasks.shape[0]
        tasks_p = <int64_t *>cnp.PyArray_DATA(tasks)
        if slots:
            # Partial sums accumulate (several reduce chunks per piece) into zeroed, tight scratch.
            scratch = np.zeros(slots * mm * nn, dtype=dt)
            scratch_p = <char *>cnp.PyArray_DATA(scratch)
            kp0 = _lookup(mm, nn, kk, lda, ldb, mm, alpha, 1.0, dtype_id, ta, tb, pf, isa)
        nt = threads_for_work(nt, ntasks, 1)
    else:
        # One thread, the locks, or distinct C's: the entries run in their given order, which is
        # the sequential semantics; the grouping above only validated the C blocks.
        order = None
        order_p = NULL
    cdef bint fits = _fits_cache(<double>(touched + touched_c), nt)
    cdef _Tail tail
    # Distinct C's on a team: the entries beyond an even share run by columns (see _Tail).
    cdef const _Tail *tp = _plan_tail(kp, nb, nt, isa, fits, &tail) \
        if tasks_p == NULL and not locked and order_p == NULL else NULL
    global _last_cached
    _last_cached = fits
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef char *pc = <char *>cnp.PyArray_DATA(c)
    cdef int64_t item = cnp.PyArray_ITEMSIZE(<cnp.ndarray>c), nbb = nb
    cdef bint pref = pf != 0
    cdef void *ia = NULL if a_index is None else cnp.PyArray_DATA(a_index)
    cdef void *ib = NULL if b_index is None else cnp.PyArray_DATA(b_index)
    cdef void *ic = NULL if c_index is None else cnp.PyArray_DATA(c_index)
    if locked:
        with nogil:
            if wide:
                _run_batch_locked[int64_t](kp, pa, pb, pc, item, <const int64_t *>ia, <const int64_t *>ib,
                                           <const int64_t *>ic, base, nbb, pref, nt, fits)
            else:
                _run_batch_locked[int32_t](kp, pa, pb, pc, item, <const int32_t *>ia, <const int32_t *>ib,
                                           <const int32_t *>ic, base, nbb, pref, nt, fits)
        return c
    with nogil:
        if wide:
            _run_batch[int64_t](kp, kp0, pa, pb, pc, item, <const int64_t *>ia, <const int64_t *>ib,
                                <const int64_t *>ic, 0, 0, 0, base, nbb, order_p, tasks_p, ntasks, scratch_p,
                                reduce, pref, nt, fits, tp)
        else:
            _run_batch[int32_t](kp, kp0, pa, pb, pc, item, <const int32_t *>ia, <const int32_t *>ib,
                                <const int32_t *>ic, 0, 0, 0, base, nbb, order_p, tasks_p, ntasks, scratch_p,
                                reduce, pref, nt, fits, tp)
    if scratch is not None:
        _add_partial_sums(c, scratch, tasks, runs, order, c_index, base, mm, nn, ldc)
    return c


def _plan_tasks(const int64_t[::1] runs, int64_t nruns, int nt, bint reduce):
    """Tasks (e0, e1, slot) over runs of one C: consecutive short runs packed into tasks of about a
    fair share of entries (a few per thread, so dynamic scheduling balances them without a task per
    run); with batch-reduce, a run longer than a share is split: its first piece updates C, the
    others sum into scratch slots 0, 1, ... (added later, in order)."""
    if nruns < 1 or nruns >= runs.shape[0] or nt < 1:
        raise ValueError(f"_plan_tasks: {nruns} runs need {nruns + 1} boundaries and nt >= 1")
    cdef const int64_t *rp = &runs[0]
    cdef int64_t nb = rp[nruns]
    cdef int64_t share = max(REDUCE_CHUNK, -(-nb // (4 * nt)))
    # At most one flushed packed task per run, plus the pieces of split runs (a run of L > share
    # entries gives ceil(L / share) <= L / share + 1 pieces, and there are fewer than nb / share
    # such runs), plus the last task.
    cdef cnp.ndarray tasks = np.empty((nruns + 2 * (nb // share) + 3, 3), dtype=np.int64)
    cdef int64_t *tp = <int64_t *>cnp.PyArray_DATA(tasks)
    cdef int64_t r, r0, r1, s0, cur = 0, nt_ = 0, slot = 0
    with nogil:
        for r in range(nruns):
            r0 = rp[r]
            r1 = rp[r + 1]
            if reduce and r1 - r0 > share:
                if cur < r0:
                    tp[3 * nt_] = cur; tp[3 * nt_ + 1] = r0; tp[3 * nt_ + 2] = -1; nt_ += 1
                tp[3 * nt_] = r0; tp[3 * nt_ + 1] = r0 + share; tp[3 * nt_ + 2] = -1; nt_ += 1
                s0 = r0 + share
                while s0 < r1:
                    tp[3 * nt_] = s0; tp[3 * nt_ + 1] = min(s0 + share, r1); tp[3 * nt_ + 2] = slot
                    nt_ += 1
                    slot += 1
                    s0 += share
                cur = r1
            elif cur < r0 and r1 - cur > share:
                tp[3 * nt_] = cur; tp[3 * nt_ + 1] = r0; tp[3 * nt_ + 2] = -1; nt_ += 1
                cur = r0
        if cur < nb:
            tp[3 * nt_] = cur; tp[3 * nt_ + 1] = nb; tp[3 * nt_ + 2] = -1; nt_ += 1
    return tasks[:nt_], slot


cdef int64_t _count_runs(const index_t *ic, int64_t n) noexcept nogil:
    """Runs of equal offsets among n >= 1 entries."""
    cdef int64_t e, nr = 1
    for e in range(1, n):
        if ic[e] != ic[e - 1]:
            nr += 1
    return nr


cdef int64_t _group_by_hash(const index_t *ic, int64_t n, int64_t *order, int64_t *runs,
                            int64_t *keys) noexcept nogil:
    """Stable grouping of entries by C offset in O(n): an open-addressing table (at most half full)
    gives each distinct offset a group (first-appearance order), hashing once per run of equal
    offsets; a counting pass places the entries. Fills order (n), runs (groups + 1 boundaries) and
    keys (one offset per group); returns the group count, -1 if out of memory, or -2 (nothing
    filled) when there are more than HASH_MAX_GROUPS groups."""
    cdef int64_t nr, cap = 16, mask, g, ng = 0, e, e0, h, r, t, key
    cdef int bits = 4
    if n <= 0:
        runs[0] = 0
        return 0
    nr = _count_runs(ic, n)
    while cap < 2 * min(nr, <int64_t>HASH_MAX_GROUPS):
        cap *= 2
        bits += 1
    mask = cap - 1
    cdef int64_t *slot_key = <int64_t *>malloc(cap * sizeof(int64_t))
    cdef int64_t *slot_group = <int64_t *>malloc(cap * sizeof(int64_t))
    cdef int64_t *run_group = <int64_t *>malloc(nr * sizeof(int64_t))
    cdef int64_t *run_start = <int64_t *>malloc((nr + 1) * sizeof(int64_t))
    if slot_key == NULL or slot_group == NULL or run_group == NULL or run_start == NULL:
        free(slot_key); free(slot_group); free(run_group); free(run_start)
        return -1
    memset(slot_group, 0xff, cap * sizeof(int64_t))
    r = 0
    e0 = 0
    for e in range(1, n + 1):
        if e < n and ic[e] == ic[e - 1]:
            continue
        key = ic[e0]   # the run [e0, e)
        # The top bits of a Fibonacci hash: the low ones collide for offsets that are multiples of
        # one block size (an earlier version used bits 20 and up: 35 ns per entry on cp2k's stacks).
        h = <int64_t>((<uint64_t>key * 0x9e3779b97f4a7c15ULL) >> (64 - bits))
        while True:
            g = slot_group[h]
            if g < 0:
                if ng == HASH_MAX_GROUPS:
                    free(slot_key); free(slot_group); free(run_group); free(run_start)
                    return -2
                g = ng
                slot_group[h] = g
                slot_key[h] = key
                keys[g] = key
                runs[g] = 0
                ng += 1
                break
            if slot_key[h] == key:
                break
            h = (h + 1) & mask
        run_group[r] = g
        run_start[r] = e0
        runs[g] += e - e0
        r += 1
        e0 = e
    run_start[nr] = n
    t = 0
    for g in range(ng):     # counts -> start positions
        h = runs[g]
        runs[g] = t
        t += h
    runs[ng] = n
    for r in range(nr):     # runs[g] walks through group g, then is restored below
        g = run_group[r]
        for e in range(run_start[r], run_start[r + 1]):
            order[runs[g]] = e
            runs[g] += 1
    for g in range(ng - 1, 0, -1):
        runs[g] = runs[g - 1]
    runs[0] = 0
    free(slot_key); free(slot_group); free(run_group); free(run_start)
    return ng


cdef int64_t _group_by_sort(const index_t *ic, int64_t n, int64_t *order, int64_t *runs,
                            int64_t *keys) noexcept nogil:
    """Stable grouping of entries by C offset in O(n): the runs of equal offsets are sorted by offset
    with an LSD radix sort (11-bit digits over the offsets' range; stable, so each C keeps its
    entries' order), which also lists the distinct offsets in order for the overlap check. Fills
    order (n), runs (groups + 1 boundaries) and keys (the groups' offsets, ascending); returns the
    group count, or -1 if out of memory. For stacks onto many C blocks, where a hash table and
    then sorting its keys took 90 ns per entry (131072 distinct C's shuffled, 1x1x1 products,
    2 threads: 12 -> 5 ms)."""
    cdef int64_t nr, e, e0, r, i, g, ng = 0, lo, hi, span, pos, t, d
    cdef int shift, p, npass = 0
    if n <= 0:
        runs[0] = 0
        return 0
    nr = _count_runs(ic, n)
    # Runs as (offset, run) pairs, sorted together so that every pass reads its input in order.
    cdef int64_t *rstart = <int64_t *>malloc((nr + 1) * sizeof(int64_t))
    cdef int64_t *key0 = <int64_t *>malloc(nr * sizeof(int64_t))
    cdef int64_t *key1 = <int64_t *>malloc(nr * sizeof(int64_t))
    cdef int64_t *idx0 = <int64_t *>malloc(nr * sizeof(int64_t))
    cdef int64_t *idx1 = <int64_t *>malloc(nr * sizeof(int64_t))
    cdef int64_t *hist = <int64_t *>malloc(2048 * sizeof(int64_t))
    cdef int64_t *ka = key0
    cdef int64_t *kb = key1
    cdef int64_t *ia = idx0
    cdef int64_t *ib = idx1
    cdef int64_t *swap
    if rstart == NULL or key0 == NULL or key1 == NULL or idx0 == NULL or idx1 == NULL or hist == NULL:
        free(rstart); free(key0); free(key1); free(idx0); free(idx1); free(hist)
        return -1
    r = 0
    e0 = 0
    for e in range(1, n + 1):
        if e < n and ic[e] == ic[e - 1]:
            continue
        ka[r] = ic[e0]   # the run [e0, e)
        ia[r] = r
        rstart[r] = e0
        r += 1
        e0 = e
    rstart[nr] = n
    lo = ka[0]
    hi = ka[0]
    for r in range(nr):
        if ka[r] < lo:
            lo = ka[r]
        elif ka[r] > hi:
            hi = ka[r]
    span = hi - lo   # offsets are validated >= 0, so this does not overflow
    while span > 0:
        span >>= 11
        npass += 1
    for p in range(npass):
        shift = 11 * p
        memset(hist, 0, 2048 * sizeof(int64_t))
        for i in range(nr):
            hist[((ka[i] - lo) >> shift) & 2047] += 1
        t = 0
        for d in range(2048):
            e = hist[d]
            hist[d] = t
            t += e
        for i in range(nr):
            d = ((ka[i] - lo) >> shift) & 2047
            kb[hist[d]] = ka[i]
            ib[hist[d]] = ia[i]
            hist[d] += 1
        swap = ka
        ka = kb
        kb = swap
        swap = ia
        ia = ib
        ib = swap
    pos = 0
    for i in range(nr):
        if i == 0 or ka[i] != ka[i - 1]:
            keys[ng] = ka[i]
            runs[ng] = pos
            ng += 1
        r = ia[i]
        for e in range(rstart[r], rstart[r + 1]):
            order[pos] = e
            pos += 1
    runs[ng] = n
    free(rstart); free(key0); free(key1); free(idx0); free(idx1); free(hist)
    return ng


def _add_partial_sums(c, scratch, tasks, runs, order, c_index, int64_t base, int64_t m, int64_t n, int64_t ldc):
    """C += each scratch partial sum, in task order (deterministic for a given thread count)."""
    cdef int64_t i, slot, e, off, item = c.itemsize
    cdef char *pc = <char *>cnp.PyArray_DATA(c)
    cdef char *ps = <char *>cnp.PyArray_DATA(scratch)
    for i in range(tasks.shape[0]):
        slot = tasks[i, 2]
        if slot < 0:
            continue
        e = tasks[i, 0]
        if order is not None:
            e = order[e]
        off = 0 if c_index is None else int(c_index[e]) - base
        if item == 8:
            _add_block[double](<double *>(pc + off * item), <const double *>(ps + slot * m * n * item), m, n, ldc)
        else:
            _add_block[float](<float *>(pc + off * item), <const float *>(ps + slot * m * n * item), m, n, ldc)
