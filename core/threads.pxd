# The thread-policy module's C-level interface (see threads.pyx).
cdef int resolve_threads(object threads) except -1
cdef int threads_for_work(int nthreads, long long nwork, long long grain) noexcept nogil
