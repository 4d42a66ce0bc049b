"""Timing over ranks: warm-up untimed, a barrier, each rank's own clock, min/avg/max over ranks."""
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Seconds of one measurement on every rank (``per_rank[r]`` is rank r's).

    ``repeat`` is how many timed runs the figure covers; with ``per_repeat`` true the seconds
    are per run (total / repeat), else the total. Rates use :attr:`max`: the job is as fast as
    its slowest rank.
    """
    per_rank: tuple
    min: float
    avg: float
    max: float
    repeat: int = 1
    per_repeat: bool = True

    @classmethod
    def from_ranks(cls, per_rank, repeat=1, per_repeat=True):
        per_rank = tuple(float(s) for s in per_rank)
        if not per_rank:
            raise ValueError("per_rank must not be empty")
        if any(s < 0 or s != s for s in per_rank):
            raise ValueError(f"seconds must be non-negative numbers, got {per_rank}")
        return cls(per_rank, min(per_rank), sum(per_rank) / len(per_rank), max(per_rank),
                   int(repeat), bool(per_repeat))

    @classmethod
    def gather(cls, comm, seconds, repeat=1, per_repeat=True):
        """Collective: every rank passes its own seconds; every rank gets the same Timing."""
        return cls.from_ranks(comm.allgather(float(seconds)), repeat, per_repeat)

    @property
    def seconds(self):
        """The figure rates are computed from: the slowest rank's seconds."""
        return self.max


def timeit(comm, fn, repeat=1, warmup=1, per_repeat=True):
    """Collective: ``warmup`` untimed calls, a barrier, then ``repeat`` timed calls of ``fn()``."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    for _ in range(warmup):
        fn()
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    elapsed = time.perf_counter() - start
    seconds = elapsed / repeat if per_repeat else elapsed
    return Timing.gather(comm, seconds, repeat, per_repeat)


class Stopwatch:
    """``with ctx.timer() as sw: ...`` times a block on every rank (barrier first); ``sw.timing``
    is available after the block (a collective gather at exit)."""

    def __init__(self, comm, repeat=1, per_repeat=True):
        self._comm = comm
        self._repeat = repeat
        self._per_repeat = per_repeat
        self._start = None
        self.timing = None

    def __enter__(self):
        self._comm.Barrier()
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        elapsed = time.perf_counter() - self._start
        if exc_type is not None:
            return False  # do not enter a collective on an error path: the runtime handles it
        seconds = elapsed / self._repeat if self._per_repeat else elapsed
        self.timing = Timing.gather(self._comm, seconds, self._repeat, self._per_repeat)
        return False
