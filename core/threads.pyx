# cython: language_level=3
"""Thread policy: the one module that decides how many OpenMP threads a call gets, and where they run.

``threads=None`` means the process-wide setting (:func:`get_num_threads`, which follows
``OMP_NUM_THREADS`` / the CPUs this process may use, as the OpenMP runtime sees them);
a positive int is taken as is; 0 or a negative value is an error. Small work items are not worth
waking a team for: :c:func:`threads_for_work` gives them one thread.

Pinning (used by the mini-app runtime, see docs/runtime.md): the OpenMP runtime is normally
already loaded when a program decides where its threads go, so ``OMP_PLACES``/``OMP_PROC_BIND``
cannot be set any more. :func:`bind_team` instead enters a parallel region and lets thread *i*
set its own affinity (``sched_setaffinity`` on the calling thread); :func:`team_affinity` reads
every thread's CPU and mask back from inside a region. This relies on libgomp keeping its pool
threads between regions, which it does as long as the team size does not shrink below the
bound size (a smaller team of two or more threads makes the surplus pool threads exit; threads
created later inherit the main thread's mask). Parallel code therefore uses either one thread or
the full team.
"""
cimport openmp
from cython.parallel cimport parallel
from libc.stdlib cimport malloc, calloc, free
from libc.errno cimport errno

import os
import numpy as np


cdef extern from "<sched.h>" nogil:
    # pyconfig.h (included first by every Cython module) defines _GNU_SOURCE, which these need.
    ctypedef struct cpu_set_t:
        pass
    int sched_getcpu()
    int sched_setaffinity(int pid, size_t cpusetsize, const cpu_set_t *mask)
    int sched_getaffinity(int pid, size_t cpusetsize, cpu_set_t *mask)
    cpu_set_t *CPU_ALLOC(int count)
    void CPU_FREE(cpu_set_t *cpuset)
    size_t CPU_ALLOC_SIZE(int count)
    void CPU_ZERO_S(size_t setsize, cpu_set_t *cpuset)
    void CPU_SET_S(int cpu, size_t setsize, cpu_set_t *cpuset)
    int CPU_ISSET_S(int cpu, size_t setsize, cpu_set_t *cpuset)


def get_num_threads():
    """Threads a parallel call uses when it is given ``threads=None``."""
    return openmp.omp_get_max_threads()


def set_num_threads(int n):
    """Set the process-wide default thread count (``omp_set_num_threads``)."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    openmp.omp_set_num_threads(n)


def openmp_enabled():
    """True: the extensions were compiled with OpenMP."""
    return True


cdef int resolve_threads(object threads) except -1:
    if threads is None:
        return openmp.omp_get_max_threads()
    if type(threads) is not int:
        # numpy integers are counts too (threads=np.int64(2) from an array of settings); bools
        # and anything else that is not an integer are refused.
        if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)):
            raise TypeError(f"threads must be an int or None, got {type(threads).__name__}")
        threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    if threads > 4096:
        raise ValueError(f"threads={threads} is not a sensible thread count")
    return threads


cdef int threads_for_work(int nthreads, long long nwork, long long grain) noexcept nogil:
    """One thread when the work is under two grains, otherwise the whole team.

    Not a team sized to the work: libgomp ends the surplus pool threads when a team of two or
    more is smaller than the previous one, so the next full team would start fresh threads
    that carry the main thread's CPU mask instead of their own pinning (and pay for
    pthread_create). A team of one never touches the pool; idle members of a full team cost
    only a barrier.
    """
    if nthreads <= 1:
        return 1
    if grain > 0 and nwork < 2 * grain:
        return 1
    if nwork < 2:
        return 1
    return nthreads


def _mask_bits():
    """Bits a CPU mask needs: the kernel rejects masks shorter than its possible-CPU count."""
    highest = (os.cpu_count() or 1) - 1
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            for part in f.read().strip().split(","):
                highest = max(highest, int(part.rpartition("-")[2]))
    except (OSError, ValueError):
        pass
    bits = 1024
    while bits <= highest:
        bits *= 2
    return bits


def _team_size(nthreads):
    if nthreads is None:
        return openmp.omp_get_max_threads()
    if isinstance(nthreads, bool) or not isinstance(nthreads, int):
        raise TypeError(f"nthreads must be an int or None, got {type(nthreads).__name__}")
    if nthreads < 1 or nthreads > 4096:
        raise ValueError(f"nthreads must be in 1..4096, got {nthreads}")
    return nthreads


def bind_team(cpu_groups):
    """Pin OpenMP thread *i* to the CPUs ``cpu_groups[i]`` and make that the default team.

    ``cpu_groups`` has one non-empty sequence of CPU numbers per thread. Sets the default team
    size to ``len(cpu_groups)`` (dynamic teams off), then each thread of one parallel region of
    that size sets its own affinity. Raises ``OSError`` naming the thread and CPUs the kernel
    refused, ``RuntimeError`` if the OpenMP runtime gave a smaller team.
    """
    groups = [list(g) for g in cpu_groups]
    cdef int nthreads = len(groups)
    if nthreads < 1 or nthreads > 4096:
        raise ValueError(f"cpu_groups must have 1..4096 entries, got {nthreads}")
    cdef int nbits = _mask_bits()
    for i, g in enumerate(groups):
        if not g:
            raise ValueError(f"cpu_groups[{i}] is empty")
        for c in g:
            if isinstance(c, bool) or not isinstance(c, int) or c < 0 or c >= nbits:
                raise ValueError(f"cpu_groups[{i}] has an invalid CPU number {c!r}")
    cdef int total = sum(len(g) for g in groups)
    cdef int *offsets = <int *> malloc((nthreads + 1) * sizeof(int))
    cdef int *cpus = <int *> malloc(total * sizeof(int))
    cdef int *errors = <int *> calloc(nthreads, sizeof(int))
    cdef int *ran = <int *> calloc(nthreads, sizeof(int))
    if offsets == NULL or cpus == NULL or errors == NULL or ran == NULL:
        free(offsets); free(cpus); free(errors); free(ran)
        raise MemoryError()
    cdef int pos = 0
    for i, g in enumerate(groups):
        offsets[i] = pos
        for c in g:
            cpus[pos] = c
            pos += 1
    offsets[nthreads] = pos
    cdef int tid = 0, j = 0
    cdef int team[1]
    team[0] = 0
    cdef size_t setsize = CPU_ALLOC_SIZE(nbits)
    cdef cpu_set_t *mask = NULL
    try:
        openmp.omp_set_dynamic(0)
        openmp.omp_set_num_threads(nthreads)
        with nogil, parallel(num_threads=nthreads):
            tid = openmp.omp_get_thread_num()
            if tid == 0:
                team[0] = openmp.omp_get_num_threads()
            mask = CPU_ALLOC(nbits)
            if mask == NULL:
                errors[tid] = 12  # ENOMEM
            else:
                CPU_ZERO_S(setsize, mask)
                for j in range(offsets[tid], offsets[tid + 1]):
                    CPU_SET_S(cpus[j], setsize, mask)
                # pid 0 is the calling thread, not the process, on Linux.
                if sched_setaffinity(0, setsize, mask) != 0:
                    errors[tid] = errno
                CPU_FREE(mask)
            ran[tid] = 1
        if team[0] != nthreads:
            raise RuntimeError(f"asked OpenMP for a team of {nthreads} threads, got {team[0]} "
                               "(OMP_THREAD_LIMIT or a nested region?)")
        for i in range(nthreads):
            if errors[i]:
                raise OSError(errors[i], f"cannot pin OpenMP thread {i} to CPUs {groups[i]}: "
                                         f"{os.strerror(errors[i])}")
    finally:
        free(offsets); free(cpus); free(errors); free(ran)


def team_affinity(nthreads=None):
    """What each thread of a parallel region of ``nthreads`` (default: the default team) sees.

    Returns one ``(cpu, allowed)`` pair per thread id: the CPU the thread was running on
    (``sched_getcpu``) and the sorted tuple of CPUs its affinity mask allows, both read by the
    thread itself inside the region.
    """
    cdef int n = _team_size(nthreads)
    cdef int nbits = _mask_bits()
    cdef size_t setsize = CPU_ALLOC_SIZE(nbits)
    cdef unsigned char *allowed = <unsigned char *> calloc(<size_t> n * nbits, 1)
    cdef int *where = <int *> malloc(n * sizeof(int))
    cdef int *errors = <int *> calloc(n, sizeof(int))
    if allowed == NULL or where == NULL or errors == NULL:
        free(allowed); free(where); free(errors)
        raise MemoryError()
    cdef int tid = 0, c = 0
    cdef int team[1]
    team[0] = 0
    cdef cpu_set_t *mask = NULL
    try:
        with nogil, parallel(num_threads=n):
            tid = openmp.omp_get_thread_num()
            if tid == 0:
                team[0] = openmp.omp_get_num_threads()
            where[tid] = sched_getcpu()
            mask = CPU_ALLOC(nbits)
            if mask == NULL:
                errors[tid] = 12  # ENOMEM
            else:
                if sched_getaffinity(0, setsize, mask) != 0:
                    errors[tid] = errno
                else:
                    for c in range(nbits):
                        if CPU_ISSET_S(c, setsize, mask):
                            allowed[<size_t> tid * nbits + c] = 1
                CPU_FREE(mask)
        if team[0] != n:
            raise RuntimeError(f"asked OpenMP for a team of {n} threads, got {team[0]}")
        result = []
        for tid in range(n):
            if errors[tid]:
                raise OSError(errors[tid], f"thread {tid}: sched_getaffinity: {os.strerror(errors[tid])}")
            row = tuple(c for c in range(nbits) if allowed[<size_t> tid * nbits + c])
            result.append((where[tid], row))
        return result
    finally:
        free(allowed); free(where); free(errors)


def current_cpu():
    """CPU the calling thread runs on now (``sched_getcpu``; Python 3.11 has no ``os.sched_getcpu``)."""
    return sched_getcpu()
