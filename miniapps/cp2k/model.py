"""The cp2k mini-app's science: problem sizes, the two stack models, the two paths, the variants.

Layout: blocks are column-major; a rank's A, B and C are flat buffers of blocks, and a stack row
holds the element offsets (a, b, c) of one product (DBCSR's parameter stack). In numpy terms a
column-major m x k block is a row-major (k, m) array, so C_blk^T = B_blk^T A_blk^T is
``Bt[b] @ At[a]`` with ``At = A.reshape(-1, k, m)`` and ``Bt = B.reshape(-1, n, k)``.
"""
import math

import numpy as np

from core import acc, smm

from . import _cp2k_kernels as kernels

VARIANTS = ("blas", "inlined", "dispatched", "specialized", "gemm_batch", "numpy")
HOST_ONLY = ("gemm_batch",)
LABELS = {"blas": "LAPACK/BLAS", "inlined": "Inlined", "dispatched": "Dispatched",
          "specialized": "Specialized", "gemm_batch": "gemm_batch (core.smm)",
          "numpy": "numpy (per-stack matmul + scatter-add)"}

GIB = 1 << 30
# The sample's constants: minimum products per private temporary, and parallel slack.
MIN_NLOCAL = 160
MIN_NPARALLEL = 240
# numpy baseline: entries per matmul call, so that its temporaries stay near 4 MiB (in cache).
NUMPY_CHUNK_BYTES = 4 << 20


class SizeError(ValueError):
    """A size argument that cannot work (the app turns it into a usage error, exit status 2)."""


def problem_size(m, r, t, n, k, itemsize, ranks_per_node, parse_size):
    """(m, n, k, s, u) per rank from the sample's arguments (docs/cp2k.md, "sizes").

    ``r``/``t`` are strings (or None) with the sample's "+"/"-" shorthands, read by
    ``parse_size(text, base)``; 0 or None mean the defaults.
    """
    if m is None:
        m = 23
    for name, v in (("m", m), ("n", n), ("k", k)):
        if v is not None and v < 0:
            raise SizeError(f"{name} must be positive, got {v}")
    if m < 1:
        raise SizeError(f"m must be positive, got {m}")
    k = k or m
    n = n or k
    if max(m, n, k) > 1024:
        raise SizeError(f"blocks of {m}x{n}x{k} are not small matrices (each dimension must be <= 1024)")
    q = GIB // (3 * m * m * itemsize)
    if _is_default(r):
        s = max(1, (2 * GIB) // ((m * k + k * n) * itemsize) // max(1, ranks_per_node))
    else:
        s = parse_size(r, q)
        if s < 1:
            raise SizeError(f"stack size r={r!r} gives {s} products; it must give at least 1")
    if _is_default(t):
        u = max(1, math.isqrt(s * MIN_NLOCAL // MIN_NPARALLEL))
    else:
        u = parse_size(t, MIN_NLOCAL)
        if u < 1:
            raise SizeError(f"group size t={t!r} gives {u}; it must give at least 1")
    return m, n, k, s, u


def _is_default(text):
    return text is None or str(text).strip() in ("", "0")


def _random(rng, size, dtype):
    """Uniform in [-1, 1): sums of products then have random signs (a fair test of rounding)."""
    x = rng.random(size, dtype=dtype)
    x *= 2
    x -= 1
    return x


def _numpy_chunk(m, n, k, itemsize):
    return max(64, NUMPY_CHUNK_BYTES // ((m * k + k * n + m * n) * itemsize))


def _numpy_stack(Cv, At, Bt, stack, blocks, chunk):
    """One stack the numpy way: gather, batched matmul, sum each run of equal C, scatter-add."""
    ids = stack // blocks
    cnt = ids.shape[0]
    for lo in range(0, cnt, chunk):
        sub = ids[lo:lo + chunk]
        prod = np.matmul(Bt[sub[:, 1]], At[sub[:, 0]])
        cid = sub[:, 2]
        starts = np.flatnonzero(cid[1:] != cid[:-1]) + 1
        starts = np.concatenate(([0], starts))
        np.add.at(Cv, cid[starts], np.add.reduceat(prod, starts, axis=0))


class Problem:
    """What both paths need: sizes, host data, stacks."""
    model = None

    def __init__(self, m, n, k, s, u, dtype, stack_size, seed):
        self.m, self.n, self.k, self.s, self.u = m, n, k, s, u
        self.dtype = np.dtype(dtype)
        self.stack_size = stack_size
        self.seed = seed
        self.blocks = np.array([m * k, k * n, m * n], dtype=np.int64)
        self._reference = None

    @property
    def flops(self):
        return 2.0 * self.s * self.m * self.n * self.k

    @property
    def nbytes(self):
        """Bytes as the sample counts them: every A and B block loaded once, every C update read
        and written once."""
        m, n, k = self.m, self.n, self.k
        return float((self.s * (m * k + k * n) + self.c_updates * m * n * 2) * self.dtype.itemsize)

    def tolerance(self):
        """Relative tolerance: rounding of sums of `terms` products grows like sqrt(terms) * eps."""
        eps = float(np.finfo(self.dtype).eps)
        default = 1e-10 if self.dtype == np.float64 else 1e-4
        return max(default, 2.0 * eps * math.sqrt(self.k * self.max_products_per_c))

    def reference(self):
        """C from numpy in float64 (computed once)."""
        if self._reference is None:
            self._reference = self._compute_reference()
        return self._reference


class SampleProblem(Problem):
    """LIBXSMM 1.11's sample: s products, A_i and B_i streamed, all accumulating into one C."""
    model = "sample"

    def __init__(self, m, n, k, s, u, dtype, stack_size, seed):
        super().__init__(m, n, k, s, u, dtype, stack_size, seed)
        rng = np.random.default_rng(seed)
        self.A = _random(rng, s * m * k, self.dtype)
        self.B = _random(rng, s * k * n, self.dtype)
        self.c_size = m * n
        self.c_updates = -(-s // u)
        self.max_products_per_c = s
        self.grain = u            # the sample's chunks of u products
        self.stack_size = min(stack_size, s)
        self.nstacks = -(-s // self.stack_size)
        big = max(s * m * k, s * k * n)
        self.index_dtype = np.dtype(np.int32) if big < 2 ** 31 else np.dtype(np.int64)
        self.memory_bytes = s * (m * k + k * n) * self.dtype.itemsize

    def stack_template(self, count):
        """Rows (e*mk, e*kn, 0): product e of a run of consecutive A and B blocks into C."""
        e = np.arange(count, dtype=np.int64)
        st = np.zeros((count, 3), dtype=self.index_dtype)
        st[:, 0] = e * self.blocks[0]
        st[:, 1] = e * self.blocks[1]
        return st

    def describe(self):
        return (f"model=sample: one stack of {self.s} products into one C, groups of u={self.u} "
                f"summed in private temporaries")

    def numpy_run(self, C, A=None, B=None, limit=None):
        A = self.A if A is None else A
        B = self.B if B is None else B
        m, n, k = self.m, self.n, self.k
        At, Bt = A.reshape(-1, k, m), B.reshape(-1, n, k)
        Ct = C.reshape(n, m)
        Ct[...] = 0
        chunk = _numpy_chunk(m, n, k, A.itemsize)
        end = self.s if limit is None else min(self.s, limit * self.stack_size)
        for lo in range(0, end, chunk):
            hi = min(end, lo + chunk)
            Ct += np.matmul(Bt[lo:hi], At[lo:hi]).sum(axis=0)
        return C

    def _compute_reference(self):
        C = np.zeros(self.c_size, dtype=np.float64)
        return self.numpy_run(C, self.A.astype(np.float64, copy=False), self.B.astype(np.float64, copy=False))


class DbcsrProblem(Problem):
    """A DBCSR-style block-sparse product: stacks over many A, B, C blocks, generated on the fly."""
    model = "dbcsr"

    def __init__(self, m, n, k, s, u, dtype, stack_size, seed):
        super().__init__(m, n, k, s, u, dtype, stack_size, seed)
        self.gen = kernels.DbcsrStacks(s, u, m, n, k, seed=seed, itemsize=self.dtype.itemsize)
        rng = np.random.default_rng(seed + 1)
        a_size, b_size, c_size = self.gen.sizes
        self.A = _random(rng, a_size, self.dtype)
        self.B = _random(rng, b_size, self.dtype)
        self.c_size = c_size
        self.grain = None
        self.stack_size = min(stack_size, s)
        self.index_dtype = self.gen.index_dtype
        self.memory_bytes = (a_size + b_size + c_size) * self.dtype.itemsize
        self._count_stacks()

    def _count_stacks(self):
        """One untimed pass: the number of stacks, C updates (runs) and the longest C sum."""
        buf = self.new_stack_buffer()
        nstacks = updates = 0
        per_c = np.zeros(self.gen.c_blocks, dtype=np.int64)
        self.gen.reset()
        while True:
            cnt = self.gen.fill(buf)
            if not cnt:
                break
            cid = buf[:cnt, 2]
            nstacks += 1
            updates += 1 + int(np.count_nonzero(cid[1:] != cid[:-1]))
            np.add.at(per_c, cid // self.blocks[2], 1)
        self.gen.reset()
        self.nstacks, self.c_updates = nstacks, updates
        self.max_products_per_c = int(per_c.max()) if per_c.size else 0
        self.c_blocks_used = int(np.count_nonzero(per_c))

    def new_stack_buffer(self):
        return np.empty((self.stack_size, 3), dtype=self.index_dtype)

    def describe(self):
        g = self.gen
        return (f"model=dbcsr: {self.nstacks} stack{'s' if self.nstacks != 1 else ''} of <= {self.stack_size} "
                f"products, {self.c_blocks_used} C blocks (~u={self.u} products each), A {g.a_blocks} and "
                f"B {g.b_blocks} blocks of a {g.nrow}x{g.nk} by {g.nk}x{g.ncol} block grid, visited in "
                f"{g.tile}x{g.tile} C tiles and {g.nslices} k slice{'s' if g.nslices != 1 else ''}")

    def numpy_run(self, C, A=None, B=None, limit=None, progress=None):
        A = self.A if A is None else A
        B = self.B if B is None else B
        m, n, k = self.m, self.n, self.k
        At, Bt = A.reshape(-1, k, m), B.reshape(-1, n, k)
        Cv = C.reshape(-1, n, m)
        Cv[...] = 0
        chunk = _numpy_chunk(m, n, k, A.itemsize)
        buf = self.new_stack_buffer()
        self.gen.reset()
        i = 0
        while True:
            cnt = self.gen.fill(buf)
            if not cnt:
                break
            _numpy_stack(Cv, At, Bt, buf[:cnt], self.blocks, chunk)
            i += 1
            if progress is not None:
                progress(i)
            if limit is not None and i >= limit:
                break
        return C

    def _compute_reference(self):
        C = np.zeros(self.c_size, dtype=np.float64)
        return self.numpy_run(C, self.A.astype(np.float64, copy=False), self.B.astype(np.float64, copy=False))


def make_problem(model, m, n, k, s, u, dtype, stack_size, seed):
    cls = {"sample": SampleProblem, "dbcsr": DbcsrProblem}[model]
    return cls(m, n, k, s, u, dtype, stack_size, seed)


def stack_kernel(variant, p):
    """The core.acc stack kernel of a variant (None for gemm_batch and numpy)."""
    if variant == "blas":
        return kernels.blas_kernel(p.m, p.n, p.k, p.dtype)
    if variant == "inlined":
        return kernels.inline_kernel(p.m, p.n, p.k, p.dtype)
    if variant == "dispatched":
        return kernels.dispatched_kernel(p.m, p.n, p.k, p.dtype)
    if variant == "specialized":
        return acc.smm_stack_kernel(p.m, p.n, p.k, dtype=p.dtype, prefetch=True)
    return None


class _Path:
    """Common to both paths: the result buffer, progress for long runs."""

    def __init__(self, problem, progress=None):
        self.problem = problem
        self.C = np.zeros(problem.c_size, dtype=problem.dtype)
        self._progress = progress or (lambda i, n: None)

    def runner(self, variant):
        """A callable ``run(limit=None)`` that processes all stacks (or the first ``limit``) with
        ``variant`` and returns C (on the host)."""
        if variant == "numpy":
            p = self.problem
            if p.model == "dbcsr":
                return lambda limit=None: p.numpy_run(self.C, limit=limit,
                                                      progress=lambda i: self._progress(i, p.nstacks))
            return lambda limit=None: p.numpy_run(self.C, limit=limit)
        return self._runner(variant)

    def overlap(self):
        return None

    def close(self):
        pass


class HostPath(_Path):
    """Every rank processes its stacks on its own OpenMP team."""
    name = "host"

    def __init__(self, problem, threads, progress=None):
        super().__init__(problem, progress)
        self.threads = threads
        if problem.model == "dbcsr":
            self.buf = problem.new_stack_buffer()
        else:
            self.full_stack = problem.stack_template(problem.s)

    def _runner(self, variant):
        p = self.problem
        if variant == "gemm_batch":
            def process(stack):
                soa = stack.T.copy()     # gemm_batch takes contiguous index arrays
                smm.gemm_batch(p.A, p.B, self.C, a_index=soa[0], b_index=soa[1], c_index=soa[2],
                               m=p.m, n=p.n, k=p.k, threads=self.threads, prefetch="auto")
        else:
            kern = stack_kernel(variant, p)

            def process(stack):
                acc.run_stack(kern, p.A, p.B, self.C, stack, threads=self.threads, grain=p.grain)
        if p.model == "sample":
            def run(limit=None):
                self.C[...] = 0
                end = p.s if limit is None else min(p.s, limit * p.stack_size)
                process(self.full_stack[:end])
                return self.C
            return run

        def run(limit=None):
            self.C[...] = 0
            p.gen.reset()
            i = 0
            while True:
                cnt = p.gen.fill(self.buf)
                if not cnt:
                    break
                process(self.buf[:cnt])
                i += 1
                self._progress(i, p.nstacks)
                if limit is not None and i >= limit:
                    break
            return self.C
        return run


class OffloadPath(_Path):
    """Stacks go to a core.acc device: the host generates and copies stack i+1 while the device
    processes stack i (double buffering over 2 x streams stack buffers)."""
    name = "offload"

    def __init__(self, problem, device, nstreams, progress=None):
        super().__init__(problem, progress)
        p = problem
        self.dev = device
        self.streams = [device.stream() for _ in range(nstreams)]
        self.nslots = 2 * nstreams      # a multiple of the streams: a slot is always reused in order
        self.C_d = device.empty(p.c_size, p.dtype)
        self.stack_d = [device.empty((p.stack_size, 3), p.index_dtype) for _ in range(self.nslots)]
        self.copied = [device.event() for _ in range(self.nslots)]
        self.used = [False] * self.nslots
        if p.model == "dbcsr":
            self.A_d = device.empty(p.A.shape, p.dtype)
            self.B_d = device.empty(p.B.shape, p.dtype)
            self.host_stack = [p.new_stack_buffer() for _ in range(self.nslots)]
        else:
            self.A_d = [device.empty(p.stack_size * p.m * p.k, p.dtype) for _ in range(self.nslots)]
            self.B_d = [device.empty(p.stack_size * p.k * p.n, p.dtype) for _ in range(self.nslots)]
            self.template = p.stack_template(p.stack_size)
        self.host_intervals = []
        self.wall = (0.0, 0.0)

    def _start(self):
        """Reset statistics; the inputs go to the device (DBCSR copies its panels per multiply)."""
        self.dev.reset_stats()
        self.host_intervals = []
        t0 = acc.now()
        s0 = self.streams[0]
        p = self.problem
        if p.model == "dbcsr":
            s0.copy_to_device(self.A_d, p.A)
            s0.copy_to_device(self.B_d, p.B)
        else:
            # the sample's stacks are all alike: one index template serves every stack buffer
            for slot in range(self.nslots):
                self.streams[slot % len(self.streams)].copy_to_device(self.stack_d[slot], self.template)
        s0.fill_zero(self.C_d)
        ready = s0.record()
        for st in self.streams[1:]:
            st.wait_event(ready)
        self.used = [False] * self.nslots
        self.host_intervals.append((t0, acc.now()))
        return t0

    def _finish(self, t_start):
        t0 = acc.now()
        s0 = self.streams[0]
        for st in self.streams[1:]:
            s0.wait_event(st.record())
        s0.copy_to_host(self.C, self.C_d)
        self.host_intervals.append((t0, acc.now()))
        for st in self.streams:
            st.synchronize()         # device errors surface here
        self.wall = (t_start, acc.now())
        return self.C

    def _runner(self, variant):
        if variant in HOST_ONLY:
            raise ValueError(f"variant {variant!r} runs on the host path only")
        p = self.problem
        kern = stack_kernel(variant, p)
        nst = len(self.streams)

        if p.model == "sample":
            def run(limit=None):
                t_start = self._start()
                nstacks = p.nstacks if limit is None else min(p.nstacks, limit)
                for i in range(nstacks):
                    t0 = acc.now()
                    slot, st = i % self.nslots, self.streams[i % nst]
                    lo = i * p.stack_size
                    hi = min(p.s, lo + p.stack_size)
                    st.copy_to_device(self.A_d[slot], p.A[lo * p.m * p.k:hi * p.m * p.k])
                    st.copy_to_device(self.B_d[slot], p.B[lo * p.k * p.n:hi * p.k * p.n])
                    st.process_stack(kern, self.A_d[slot], self.B_d[slot], self.C_d, self.stack_d[slot],
                                     hi - lo, grain=p.grain)
                    self.host_intervals.append((t0, acc.now()))
                    self._progress(i + 1, nstacks)
                return self._finish(t_start)
            return run

        def run(limit=None):
            t_start = self._start()
            p.gen.reset()
            i = 0
            while True:
                slot, st = i % self.nslots, self.streams[i % nst]
                if self.used[slot]:
                    self.copied[slot].wait()     # the host buffer's last copy must be done
                t0 = acc.now()
                buf = self.host_stack[slot]
                cnt = p.gen.fill(buf)
                if cnt:
                    st.copy_to_device(self.stack_d[slot], buf[:cnt])
                    st.record(self.copied[slot])
                    self.used[slot] = True
                    st.process_stack(kern, self.A_d, self.B_d, self.C_d, self.stack_d[slot], cnt)
                self.host_intervals.append((t0, acc.now()))
                if not cnt:
                    break
                i += 1
                self._progress(i, p.nstacks)
                if limit is not None and i >= limit:
                    break
            return self._finish(t_start)
        return run

    def overlap(self):
        """Host-busy, device-busy, their union and overlap (seconds) of the last run."""
        ov = acc.overlap(self.host_intervals, self.dev.busy_intervals())
        ov["wall"] = self.wall[1] - self.wall[0]
        stats = self.dev.stats()
        ov["device_thread_busy"] = stats["thread_busy"]
        ov["device_copy"] = stats["copy"]
        ov["device_compute"] = stats["compute"]
        return ov

    def close(self):
        """Wait for the streams; an error they still hold was raised already (or is being raised:
        do not mask it with a second one)."""
        for st in self.streams:
            try:
                st.synchronize()
            except acc.DeviceError:
                pass
