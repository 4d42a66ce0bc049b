"""Running a mini-app: MPI, arguments, the Context, and ending every rank the same way.

Exit status: 0 success; 1 a failed check or an error; 2 a bad argument. Errors never leave ranks
hanging: a rank that fails waits briefly (``AGREE_SECONDS``) for the others on a communicator of
its own; if they all failed too, the job ends normally with one message per distinct error,
otherwise this rank calls MPI_Abort, which ends the whole job.
"""
import sys
import traceback

from . import mpi as _mpi
from .args import DTYPE_CHOICES, ParserExit, UsageError, build_parser
from .context import AppError, Context

AGREE_SECONDS = 2.0


def _prog_name(main):
    """``python -m miniapps.nek`` for a module or package run with -m; the script name otherwise."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    started = spec.name[: -len(".__main__")] if spec and spec.name.endswith(".__main__") else (spec.name if spec else None)
    module = getattr(main, "__module__", None) or "__main__"
    if started and (module == "__main__" or module == started or module.startswith(started + ".")):
        return f"python -m {started}"
    if module != "__main__":
        return f"python -m {module}"
    return sys.argv[0] or "miniapp"


def run(name, main, add_arguments=None, *, doc=None, dtype="f64", dtypes=DTYPE_CHOICES, repeat=1,
        argv=None):
    """Run ``main(ctx)`` as the mini-app ``name`` on every rank, then exit with its status.

    ``add_arguments(parser)`` declares the app's own arguments; ``doc`` (the module docstring) is
    the --help description; ``dtype``/``dtypes`` the default and allowed ``--dtype``; ``repeat``
    the default ``--repeat``. Never returns.
    """
    code = launch(name, main, add_arguments, doc=doc, dtype=dtype, dtypes=dtypes, repeat=repeat, argv=argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def launch(name, main, add_arguments=None, *, doc=None, dtype="f64", dtypes=DTYPE_CHOICES, repeat=1,
           argv=None):
    """:func:`run` without the exit: returns the exit status (or aborts the job)."""
    try:
        comm, MPI, serial_reason = _mpi.init()
    except _mpi.LauncherMismatch as exc:
        print(f"{name}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    rank = comm.Get_rank()
    reduce = _mpi.Reductions(comm, MPI)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_prog_name(main), doc, add_arguments, dtype=dtype, dtypes=dtypes,
                          repeat=repeat, printing=rank == 0)
    stop = -1
    try:
        args = parser.parse_args(argv)
    except ParserExit as exc:
        stop = exc.status
    # Every rank parsed the same line, but agree anyway: one rank leaving alone would hang the rest.
    stop = reduce.max(stop)
    if stop >= 0:
        return stop
    err_comm = comm.Dup() if MPI is not None else comm
    ctx = None
    try:
        ctx = Context(name, args, comm, MPI, serial_reason, argv=argv)
        ctx.print(ctx.describe())
        if args.report_bindings:
            ctx.print_bindings()
        main(ctx)
        return 1 if ctx.finish() else 0
    except BaseException as exc:  # noqa: B902 - SystemExit/KeyboardInterrupt must end all ranks too
        return _fail(exc, name, parser, comm, err_comm, rank)
    finally:
        if ctx is not None:
            ctx.close()


def setup(name, argv=(), add_arguments=None, *, dtype="f64", dtypes=DTYPE_CHOICES, repeat=1):
    """A :class:`Context` for ``argv`` without running anything (tests, interactive use).

    Raises :class:`UsageError` for a bad argument instead of exiting.
    """
    comm, MPI, serial_reason = _mpi.init()
    parser = build_parser(name, None, add_arguments, dtype=dtype, dtypes=dtypes, repeat=repeat,
                          printing=False)
    try:
        args = parser.parse_args(list(argv))
    except ParserExit as exc:
        raise UsageError(f"bad arguments for {name}: {list(argv)} (status {exc.status})") from None
    return Context(name, args, comm, MPI, serial_reason, argv=list(argv))


def _classify(exc, name, parser):
    """(exit status, message, print a traceback now?) for an exception that ended ``main``."""
    if isinstance(exc, UsageError):
        return 2, f"{parser.format_usage()}{parser.prog}: error: {exc}", False
    if isinstance(exc, AppError):
        return 1, f"{name}: error: {exc}", False
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            return 1, f"{name}: {code}", False
        return code, None, False
    if isinstance(exc, KeyboardInterrupt):
        return 130, f"{name}: interrupted", False
    return 1, f"{name}: error: {type(exc).__name__}: {exc}", True


def _fail(exc, name, parser, comm, err_comm, rank):
    code, message, with_traceback = _classify(exc, name, parser)
    size = comm.Get_size()
    prefix = f"[rank {rank}] " if size > 1 else ""
    if with_traceback:
        # Print at once: another rank's MPI_Abort may end this process before agreement.
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write("".join(prefix + line + "\n" for line in text.rstrip("\n").split("\n")))
        sys.stderr.flush()
    if size == 1:
        if message and not with_traceback:
            print(message, file=sys.stderr, flush=True)
        return code
    if _mpi.everyone_failed(err_comm, AGREE_SECONDS):
        reports = err_comm.gather((code, None if with_traceback else message), root=0)
        if rank == 0:
            seen = []
            for _, text in reports:
                if text and text not in seen:
                    seen.append(text)
                    ranks = [i for i, (_, t) in enumerate(reports) if t == text]
                    who = "" if len(ranks) == size else f"[ranks {','.join(map(str, ranks))}] "
                    print(who + text, file=sys.stderr, flush=True)
        return max(err_comm.allgather(code))
    if message and not with_traceback:
        print(prefix + message, file=sys.stderr, flush=True)
    if code == 0:
        print(f"{prefix}{name}: error: this rank ended while others still run", file=sys.stderr, flush=True)
    _mpi.abort(comm, code or 1)
