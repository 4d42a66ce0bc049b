"""MPI for the mini-apps: mpi4py's COMM_WORLD, or a serial stand-in when no MPI library loads.

The stand-in makes ``python -m miniapps.X`` work where mpi4py is installed without an MPI
library (or not at all). It refuses to stand in when a launcher started several tasks: N
processes each believing they are alone would run N independent jobs and report them as one
(what ``srun --mpi=none`` does to MPI programs).
"""
import os
import sys
import time


class SerialComm:
    """A one-rank communicator with the mpi4py methods the runtime and mini-apps use."""

    rank = 0
    size = 1

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Barrier(self):
        pass

    barrier = Barrier

    def bcast(self, obj, root=0):
        return obj

    def gather(self, obj, root=0):
        return [obj]

    def allgather(self, obj):
        return [obj]

    def scatter(self, objs, root=0):
        return objs[0]

    def reduce(self, obj, op=None, root=0):
        return obj

    def allreduce(self, obj, op=None):
        return obj

    def Allreduce(self, sendbuf, recvbuf, op=None):
        _copy_buffer(sendbuf, recvbuf)

    def Reduce(self, sendbuf, recvbuf, op=None, root=0):
        _copy_buffer(sendbuf, recvbuf)

    def Bcast(self, buf, root=0):
        pass

    def Split_type(self, split_type=None, key=0, info=None):
        return self

    def Split(self, color=0, key=0):
        return self

    def Dup(self, info=None):
        return self

    def Free(self):
        pass

    def Ibarrier(self):
        return _DoneRequest()

    def Abort(self, errorcode=1):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(errorcode)

    def Get_name(self):
        return "serial"

    def __repr__(self):
        return "SerialComm()"


class _DoneRequest:
    def Test(self):
        return True

    def Wait(self):
        pass


def _copy_buffer(sendbuf, recvbuf):
    import numpy as np
    if isinstance(sendbuf, (list, tuple)):
        sendbuf = sendbuf[0]
    if isinstance(recvbuf, (list, tuple)):
        recvbuf = recvbuf[0]
    np.copyto(np.asarray(recvbuf), np.asarray(sendbuf))


def launcher_size():
    """How many tasks the launcher says it started (None when not under a known launcher).

    Hydra/MPICH and Slurm's PMI set PMI_SIZE; Open MPI sets OMPI_COMM_WORLD_SIZE; Slurm sets
    SLURM_STEP_NUM_TASKS inside an ``srun`` step (also with ``--mpi=none``, which is the case this
    guards against).
    """
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"):
        raw = os.environ.get(name, "").strip()
        if raw.isdigit():
            return int(raw)
    return None


class LauncherMismatch(RuntimeError):
    """The launcher started several tasks but MPI sees a single rank."""


def init():
    """Start MPI. Returns ``(comm, MPI module or None, why serial or None)``.

    Raises :class:`LauncherMismatch` when a launcher started several tasks but each sees a world of
    one rank (no MPI library, or a launcher that provides no PMI).
    """
    why = None
    try:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    except (ImportError, RuntimeError, OSError) as exc:  # mpi4py raises RuntimeError for no libmpi
        MPI, comm = None, SerialComm()
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
    started = launcher_size()
    if comm.Get_size() == 1 and started is not None and started > 1:
        detail = f"MPI could not start ({why})" if MPI is None else "MPI sees a world of 1 rank"
        raise LauncherMismatch(
            f"the launcher started {started} tasks but {detail}: every task would run alone. "
            "Use mpiexec from the same MPI as mpi4py, or srun --mpi=pmi2.")
    return comm, MPI, why


def library_version(MPI):
    """First line of the MPI library's version string (None for the serial stand-in)."""
    if MPI is None:
        return None
    try:
        return " ".join(MPI.Get_library_version().strip().splitlines()[0].split())
    except Exception:  # an MPI-2 library without MPI_Get_library_version
        return "MPI {}.{}".format(*MPI.Get_version())


def node_comm(comm, MPI):
    """Communicator of the ranks sharing this node's memory (``Split_type(COMM_TYPE_SHARED)``)."""
    if MPI is None:
        return comm
    return comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())


class Reductions:
    """max/min/sum over a communicator that also work on the serial stand-in.

    Scalars go through mpi4py's object reductions; float arrays through the buffer ones
    (element-wise; the object MAX of mpi4py cannot compare arrays).
    """

    def __init__(self, comm, MPI):
        self.comm = comm
        self._ops = None if MPI is None else {"max": MPI.MAX, "min": MPI.MIN, "sum": MPI.SUM}

    def _reduce(self, value, op):
        if self._ops is None:
            return value
        return self.comm.allreduce(value, op=self._ops[op])

    def _reduce_array(self, values, op):
        import numpy as np
        send = np.ascontiguousarray(values, dtype=np.float64)
        if self._ops is None:
            return send.copy()
        recv = np.empty_like(send)
        self.comm.Allreduce(send, recv, op=self._ops[op])
        return recv

    def max(self, value):
        return self._reduce(value, "max")

    def min(self, value):
        return self._reduce(value, "min")

    def sum(self, value):
        return self._reduce(value, "sum")

    def max_array(self, values):
        return self._reduce_array(values, "max")

    def sum_array(self, values):
        return self._reduce_array(values, "sum")


def everyone_failed(err_comm, seconds):
    """True if every rank enters this within ``seconds`` (all of them failed); else False.

    Uses a non-blocking barrier on a communicator reserved for this, so that ranks still busy in
    the program's own collectives can never match it.
    """
    request = err_comm.Ibarrier()
    deadline = time.monotonic() + seconds
    while not request.Test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def abort(comm, code):
    """End the whole job now (MPI_Abort), after flushing what this rank has printed."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        if comm.Get_size() > 1:
            comm.Abort(code)
        os._exit(code)
