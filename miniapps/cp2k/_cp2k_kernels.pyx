# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The cp2k mini-app's compiled parts: the run functions of its BLAS, inlined and dispatched
variants (plugged into core.acc's stack executor, so they run on the device workers or on the
rank's OpenMP team exactly like the specialized kernels), and DBCSR-style stack generation.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset
from libc.stdio cimport snprintf
from scipy.linalg.cython_blas cimport dgemm, sgemm

from core.acc cimport StackKernel, make_stack_kernel
from core.smm cimport SMM_F32, SMM_F64, dispatch_c, smm_call, smm_desc, smm_kernel

cnp.import_array()

ctypedef struct gemm_shape:
    int m, n, k, lda, ldb, ldc
    double alpha
    smm_desc desc      # for the dispatched variant: looked up on every call


cdef class _ShapeOwner:
    """Owns the C struct a run function's ctx points to."""
    cdef gemm_shape *shape

    def __dealloc__(self):
        free(self.shape)


cdef _ShapeOwner _new_shape(int m, int n, int k, int lda, int ldb, int ldc, double alpha, int dtype):
    cdef _ShapeOwner owner = _ShapeOwner()
    owner.shape = <gemm_shape *>malloc(sizeof(gemm_shape))
    if owner.shape == NULL:
        raise MemoryError()
    memset(owner.shape, 0, sizeof(gemm_shape))
    owner.shape.m, owner.shape.n, owner.shape.k = m, n, k
    owner.shape.lda, owner.shape.ldb, owner.shape.ldc = lda, ldb, ldc
    owner.shape.alpha = alpha
    d = &owner.shape.desc
    d.m, d.n, d.k, d.lda, d.ldb, d.ldc = m, n, k, lda, ldb, ldc
    d.alpha, d.beta = alpha, 1.0
    d.dtype = <int8_t>dtype
    d.isa = -1     # the process's ISA path
    return owner


# ---- BLAS: one ?gemm per product (the sample's "LAPACK/BLAS" variant) ----

cdef int _blas_run_f64(const void *ctx, const void *const *a, const void *const *b, void *c, int64_t count,
                       const void *pa, const void *pb, const void *pc, char *msg) noexcept nogil:
    cdef const gemm_shape *s = <const gemm_shape *>ctx
    cdef char tr = b'N'
    cdef int m = s.m, n = s.n, k = s.k, lda = s.lda, ldb = s.ldb, ldc = s.ldc
    cdef double alpha = s.alpha, one = 1.0
    cdef int64_t e
    for e in range(count):
        dgemm(&tr, &tr, &m, &n, &k, &alpha, <double *>a[e], &lda, <double *>b[e], &ldb, &one,
              <double *>c, &ldc)
    return 0


cdef int _blas_run_f32(const void *ctx, const void *const *a, const void *const *b, void *c, int64_t count,
                       const void *pa, const void *pb, const void *pc, char *msg) noexcept nogil:
    cdef const gemm_shape *s = <const gemm_shape *>ctx
    cdef char tr = b'N'
    cdef int m = s.m, n = s.n, k = s.k, lda = s.lda, ldb = s.ldb, ldc = s.ldc
    cdef float alpha = <float>s.alpha, one = 1.0
    cdef int64_t e
    for e in range(count):
        sgemm(&tr, &tr, &m, &n, &k, &alpha, <float *>a[e], &lda, <float *>b[e], &ldb, &one,
              <float *>c, &ldc)
    return 0


# ---- inlined: the loop nest a compiler makes of C += A*B (LIBXSMM_INLINE_XGEMM) ----

ctypedef fused real:
    double
    float


cdef inline void _inline_gemm(const gemm_shape *s, const real *a, const real *b, real *c) noexcept nogil:
    # Pointer-sized indices and column pointers: with int indices (and -fwrapv) gcc cannot prove
    # the addresses linear and leaves the inner loop scalar.
    cdef Py_ssize_t i, j, l, m = s.m, n = s.n, k = s.k, lda = s.lda, ldb = s.ldb, ldc = s.ldc
    cdef real bl
    cdef real alpha = <real>s.alpha
    cdef real *cj
    cdef const real *al
    for j in range(n):
        cj = c + j * ldc
        for l in range(k):
            bl = alpha * b[l + j * ldb]
            al = a + l * lda
            for i in range(m):   # unit stride in A and C: gcc vectorises this loop
                cj[i] += al[i] * bl


cdef int _inline_run_f64(const void *ctx, const void *const *a, const void *const *b, void *c, int64_t count,
                         const void *pa, const void *pb, const void *pc, char *msg) noexcept nogil:
    cdef int64_t e
    for e in range(count):
        _inline_gemm[double](<const gemm_shape *>ctx, <const double *>a[e], <const double *>b[e], <double *>c)
    return 0


cdef int _inline_run_f32(const void *ctx, const void *const *a, const void *const *b, void *c, int64_t count,
                         const void *pa, const void *pb, const void *pc, char *msg) noexcept nogil:
    cdef int64_t e
    for e in range(count):
        _inline_gemm[float](<const gemm_shape *>ctx, <const float *>a[e], <const float *>b[e], <float *>c)
    return 0


# ---- dispatched: a registry look-up on every product (the sample's libxsmm_gemm front end) ----

cdef int _dispatched_run(const void *ctx, const void *const *a, const void *const *b, void *c, int64_t count,
                         const void *pa, const void *pb, const void *pc, char *msg) noexcept nogil:
    cdef const gemm_shape *s = <const gemm_shape *>ctx
    cdef const smm_kernel *kp
    cdef int64_t e
    for e in range(count):
        kp = dispatch_c(&s.desc)
        if kp == NULL:
            snprintf(msg, 240, b"no SMM kernel for m=%d n=%d k=%d", s.m, s.n, s.k)
            return -1
        smm_call(kp, a[e], b[e], c)
    return 0


def _shape_args(m, n, k, dtype):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise TypeError(f"dtype must be float64 or float32, got {dt}")
    for name, v in (("m", m), ("n", n), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(m), int(n), int(k), dt


def blas_kernel(m, n, k, dtype=np.float64, alpha=1.0):
    """Stack kernel calling scipy's BLAS ``?gemm`` once per product (tight leading dimensions)."""
    m, n, k, dt = _shape_args(m, n, k, dtype)
    f64 = dt == np.float64
    owner = _new_shape(m, n, k, m, k, m, alpha, SMM_F64 if f64 else SMM_F32)
    return make_stack_kernel(_blas_run_f64 if f64 else _blas_run_f32, <const void *>owner.shape, owner,
                             "blas", m, n, k, m, k, m, False, False, dt)


def inline_kernel(m, n, k, dtype=np.float64, alpha=1.0):
    """Stack kernel with plain compiled loops (what a compiler makes of the triple loop)."""
    m, n, k, dt = _shape_args(m, n, k, dtype)
    f64 = dt == np.float64
    owner = _new_shape(m, n, k, m, k, m, alpha, SMM_F64 if f64 else SMM_F32)
    return make_stack_kernel(_inline_run_f64 if f64 else _inline_run_f32, <const void *>owner.shape, owner,
                             "inlined", m, n, k, m, k, m, False, False, dt)


def dispatched_kernel(m, n, k, dtype=np.float64, alpha=1.0):
    """Stack kernel looking its core.smm kernel up in the registry for every product."""
    m, n, k, dt = _shape_args(m, n, k, dtype)
    f64 = dt == np.float64
    owner = _new_shape(m, n, k, m, k, m, alpha, SMM_F64 if f64 else SMM_F32)
    if dispatch_c(&owner.shape.desc) == NULL:
        raise ValueError(f"core.smm has no kernel for m={m} n={n} k={k} ({dt})")
    return make_stack_kernel(_dispatched_run, <const void *>owner.shape, owner, "dispatched",
                             m, n, k, m, k, m, False, False, dt)


# ---- DBCSR-style stack generation ----

ctypedef fused index_t:
    int32_t
    int64_t


cdef class DbcsrStacks:
    """Stacks of a block-sparse product C += A B, generated as DBCSR generates them.

    A is an nrow x nk grid of m x k blocks, B an nk x ncol grid of k x n blocks, each block present
    with probability ``density``; A is stored by block rows (CSR), B by block columns, C densely
    (block (i, j) at i * ncol + j). The products of C(i, j) are the l in row i of A and column j
    of B. As DBCSR's recursive multiplication does, the product space is cut for cache reuse: the
    k range into slices of ``kslice`` (so that the A row slices and B column slices of one tile fit
    ``cache_bytes``) and C into ``tile`` x ``tile`` tiles; slice by slice, tile by tile, each C
    block's products of the slice are emitted consecutively (a run; it may continue into the next
    stack). Generation is the host's work in the stack loop (as in CP2K): :meth:`fill` continues
    where the last call stopped and wraps round the grid if it holds fewer than ``total`` products.
    """
    cdef readonly int64_t nrow, ncol, nk, total, a_blocks, b_blocks, c_blocks, grid_products
    cdef readonly int64_t a_block, b_block, c_block     # elements per block
    cdef readonly int64_t tile, kslice, nslices, ntasks
    cdef int64_t[::1] a_ptr, a_l, b_ptr, b_l, lookup, task_i, task_j, task_s
    cdef int64_t[:, ::1] a_sp, b_sp       # start of slice s of row i / column j in a_l / b_l
    cdef int64_t emitted, t, pos, look_i, look_s
    cdef readonly object index_dtype

    def __init__(self, int64_t total, int64_t per_c, int m, int n, int k, seed=0, double density=0.5,
                 double slack=1.25, int itemsize=8, int64_t cache_bytes=512 * 1024, int tile=8):
        if total < 0 or per_c < 1 or m < 1 or n < 1 or k < 1:
            raise ValueError(f"bad stack parameters: total={total} per_c={per_c} m={m} n={n} k={k}")
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        if not slack > 0.0:
            raise ValueError(f"slack must be positive, got {slack}")
        if itemsize < 1 or cache_bytes < 1 or tile < 1:
            raise ValueError(f"itemsize, cache_bytes and tile must be positive, got {itemsize}, {cache_bytes}, {tile}")
        rng = np.random.default_rng(seed)
        # Expected products of one C block: nk * density^2 = per_c; `slack` times the C blocks
        # needed (25% more by default) so that the grid rarely has to wrap.
        self.nk = max(1, <int64_t>(per_c / (density * density) + 0.5))
        nc = max(1, <int64_t>np.ceil(slack * total / per_c))
        self.nrow = max(1, int(np.ceil(np.sqrt(nc))))
        self.ncol = max(1, (nc + self.nrow - 1) // self.nrow)
        occ_a = rng.random((self.nrow, self.nk)) < density
        occ_b = rng.random((self.ncol, self.nk)) < density
        occ_a[0, 0] = occ_b[0, 0] = True        # at least one product in the grid
        self.a_ptr = np.concatenate(([0], np.cumsum(occ_a.sum(axis=1)))).astype(np.int64)
        self.b_ptr = np.concatenate(([0], np.cumsum(occ_b.sum(axis=1)))).astype(np.int64)
        self.a_l = np.nonzero(occ_a)[1].astype(np.int64)
        self.b_l = np.nonzero(occ_b)[1].astype(np.int64)
        self.lookup = np.full(self.nk, -1, dtype=np.int64)
        self.a_blocks = self.a_l.shape[0]
        self.b_blocks = self.b_l.shape[0]
        self.c_blocks = self.nrow * self.ncol
        self.a_block, self.b_block, self.c_block = m * k, k * n, m * n
        self.grid_products = int((occ_a.astype(np.int64) @ occ_b.T.astype(np.int64)).sum())
        self.total = total
        big = max(self.a_blocks * self.a_block, self.b_blocks * self.b_block, self.c_blocks * self.c_block)
        self.index_dtype = np.dtype(np.int32) if big < 2 ** 31 else np.dtype(np.int64)
        # k slices: the A and B blocks of one C tile and slice fit the cache budget; but at least
        # ~32 products per C block and slice, or runs get too short to amortise a C update.
        self.tile = tile
        block_bytes = max(m * k, k * n) * itemsize
        ks = int(cache_bytes / (2.0 * tile * density * block_bytes))
        ks = max(ks, int(np.ceil(32.0 / (density * density))), 1)
        self.kslice = min(ks, self.nk)
        self.nslices = (self.nk + self.kslice - 1) // self.kslice   # (cdivision: no -(-a // b) ceil)
        bounds = np.minimum(np.arange(self.nslices + 1) * self.kslice, self.nk)
        self.a_sp = np.ascontiguousarray(np.asarray(self.a_ptr)[:-1, None] + _prefix_counts(occ_a)[:, bounds], dtype=np.int64)
        self.b_sp = np.ascontiguousarray(np.asarray(self.b_ptr)[:-1, None] + _prefix_counts(occ_b)[:, bounds], dtype=np.int64)
        # visiting order: slice, row tile, column tile, row, column
        s_, i_, j_ = np.meshgrid(np.arange(self.nslices), np.arange(self.nrow), np.arange(self.ncol), indexing="ij")
        s_, i_, j_ = s_.ravel(), i_.ravel(), j_.ravel()
        order = np.lexsort((j_, i_, j_ // tile, i_ // tile, s_))
        self.task_i = np.ascontiguousarray(i_[order], dtype=np.int64)
        self.task_j = np.ascontiguousarray(j_[order], dtype=np.int64)
        self.task_s = np.ascontiguousarray(s_[order], dtype=np.int64)
        self.ntasks = self.task_i.shape[0]
        self.reset()

    def reset(self):
        """Start again from the first product."""
        self.lookup[:] = -1
        self.emitted = 0
        self.t = self.pos = 0
        self.look_i = self.look_s = -1

    @property
    def remaining(self):
        return self.total - self.emitted

    @property
    def sizes(self):
        """Elements of the A, B and C buffers."""
        return (self.a_blocks * self.a_block, self.b_blocks * self.b_block, self.c_blocks * self.c_block)

    def structure(self):
        """The sparsity (copies): row i of A holds l = a_l[a_ptr[i]:a_ptr[i+1]] (block ids are the
        positions in a_l), column j of B likewise; C block (i, j) is i * ncol + j."""
        return {"a_ptr": np.array(self.a_ptr), "a_l": np.array(self.a_l), "b_ptr": np.array(self.b_ptr),
                "b_l": np.array(self.b_l), "ncol": self.ncol}

    def fill(self, out):
        """Write the next stack into ``out`` ((capacity, 3) C-contiguous, of ``index_dtype``):
        element offsets of A, B, C per row. Returns the number of rows written (0: done)."""
        if not isinstance(out, np.ndarray) or out.ndim != 2 or out.shape[1] != 3 or not out.flags.c_contiguous:
            raise ValueError("out must be a C-contiguous (capacity, 3) array")
        if out.dtype != self.index_dtype:
            raise TypeError(f"out must have dtype {self.index_dtype}, got {out.dtype}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        cdef int64_t cap = out.shape[0], cnt
        cdef void *ptr = cnp.PyArray_DATA(out)
        if self.index_dtype == np.int32:
            with nogil:
                cnt = self._fill[int32_t](<int32_t *>ptr, cap)
        else:
            with nogil:
                cnt = self._fill[int64_t](<int64_t *>ptr, cap)
        return cnt

    cdef int64_t _fill(self, index_t *out, int64_t cap) noexcept nogil:
        cdef int64_t want = self.total - self.emitted
        if want > cap:
            want = cap
        cdef int64_t cnt = 0, q, qe, p, a_id, c_off, i, j, s, t = self.t
        cdef int64_t ab = self.a_block, bb = self.b_block, cb = self.c_block
        cdef int64_t *lookup = &self.lookup[0]
        cdef const int64_t *b_l = &self.b_l[0]
        cdef const int64_t *a_l = &self.a_l[0]
        while cnt < want:
            if t == self.ntasks:
                t = 0
            i = self.task_i[t]
            j = self.task_j[t]
            s = self.task_s[t]
            if i != self.look_i or s != self.look_s:
                if self.look_i >= 0:
                    for p in range(self.a_sp[self.look_i, self.look_s], self.a_sp[self.look_i, self.look_s + 1]):
                        lookup[a_l[p]] = -1
                for p in range(self.a_sp[i, s], self.a_sp[i, s + 1]):
                    lookup[a_l[p]] = p
                self.look_i = i
                self.look_s = s
            q = self.b_sp[j, s] + self.pos
            qe = self.b_sp[j, s + 1]
            c_off = (i * self.ncol + j) * cb
            # Branch-free merge: every B block of the column slice is written, kept only if
            # A(i, l) exists.
            while q < qe and cnt < want:
                a_id = lookup[b_l[q]]
                out[3 * cnt] = <index_t>(a_id * ab)
                out[3 * cnt + 1] = <index_t>(q * bb)
                out[3 * cnt + 2] = <index_t>c_off
                cnt += a_id >= 0
                q += 1
            if q < qe:
                self.pos = q - self.b_sp[j, s]
                break
            self.pos = 0
            t += 1
        self.t = t
        self.emitted += cnt
        return cnt


def _prefix_counts(occ):
    """counts[i, x] = number of present blocks in row i before column x (x = 0 .. nk)."""
    out = np.zeros((occ.shape[0], occ.shape[1] + 1), dtype=np.int64)
    np.cumsum(occ, axis=1, out=out[:, 1:])
    return out
