"""Command lines: the common options every mini-app takes, LIBXSMM's size shorthands, usage errors.

A mini-app declares only its own (positional, LIBXSMM-ordered) arguments; :func:`build_parser`
adds the common options. Every rank parses the same command line, but only rank 0 prints; a
bad argument raises :class:`ParserExit` instead of calling ``sys.exit`` so that the runtime can
make all ranks leave together with status 2.
"""
import argparse
import re
import sys

PIN_CHOICES = ("none", "compact", "scatter")
DTYPE_CHOICES = ("f64", "f32")

# dest names of the options build_parser adds; everything else in the namespace is the app's own.
COMMON_DESTS = ("threads", "pin", "report_bindings", "json", "repeat", "check", "quiet", "dtype")

EPILOG = """\
exit status: 0 success; 1 a failed --check, or an error (with several ranks, one rank's error
aborts the whole job through MPI_Abort); 2 a bad argument.

Run alone (python -m ...) or under any MPI launcher (mpiexec -n 4 python -m ..., srun --mpi=pmi2
python -m ...). Each rank gets a disjoint share of its node's CPUs; --threads OpenMP threads are
bound inside it unless --pin none. Environment: SMM_TARGET forces the ISA path (generic, avx2,
avx512); OMP_NUM_THREADS is the default of --threads when set. See docs/runtime.md."""


class UsageError(ValueError):
    """A bad argument found after parsing (raise it from a mini-app: exit status 2, with usage)."""


class ParserExit(Exception):
    """The parser wants the program to stop (after --help, or with status 2 after a bad argument)."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Parser(argparse.ArgumentParser):
    """argparse that prints only where ``printing`` is true and never exits by itself."""

    def __init__(self, *args, printing=True, **kwargs):
        self.printing = printing
        super().__init__(*args, **kwargs)

    def _print_message(self, message, file=None):
        if self.printing and message:
            super()._print_message(message, file)
            (file or sys.stderr).flush()

    def exit(self, status=0, message=None):
        if message:
            self._print_message(message, sys.stderr)
        raise ParserExit(status)


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_size(text, base):
    """LIBXSMM's size argument: an integer, or ``+``/``-`` shorthands relative to ``base``.

    As in LIBXSMM's samples (e.g. cp2k's ``r`` and ``t``), the first character decides: a
    string starting with ``+`` gives ``base << len(text)``, one starting with ``-`` gives
    ``base >> len(text)`` (so ``"+++"`` is ``base * 8`` and ``"--"`` is ``base // 4``);
    anything else is read as an integer. ``None`` or ``""`` give 0 (the sample's "default").
    Raises :class:`UsageError` (exit status 2 under :func:`run`) for anything else.
    """
    if text is None:
        return 0
    if isinstance(text, bool):
        raise UsageError(f"size must be an integer or a +/- shorthand, got {text!r}")
    if isinstance(text, int):
        return text
    if isinstance(base, bool) or not isinstance(base, int) or base < 0:
        raise ValueError(f"base must be a non-negative int, got {base!r}")
    s = str(text).strip()
    if not s:
        return 0
    if s[0] == "+":
        return base << len(s)
    if s[0] == "-":
        return base >> len(s)
    try:
        return int(s)
    except ValueError:
        raise UsageError(f"size {text!r} is not an integer or a +/- shorthand "
                         "('+' doubles, '-' halves per character)") from None


def build_parser(prog, doc, add_arguments=None, *, dtype="f64", dtypes=DTYPE_CHOICES, repeat=1,
                 printing=True):
    """The parser of one mini-app: its own arguments (``add_arguments(parser)``) + common options."""
    if dtype not in dtypes or any(d not in DTYPE_CHOICES for d in dtypes):
        raise ValueError(f"dtype {dtype!r} / dtypes {dtypes!r} must come from {DTYPE_CHOICES}")
    parser = Parser(prog=prog, description=doc, epilog=EPILOG, printing=printing,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    # LIBXSMM's size shorthands "-", "---" (halve per dash) are positionals, not options: argparse
    # takes an argument that looks like a negative number as positional, so widen that pattern.
    parser._negative_number_matcher = re.compile(r"^-+$|^-\d+$|^-\d*\.\d+$")
    if add_arguments is not None:
        add_arguments(parser)
    for action in parser._actions:
        if action.dest in COMMON_DESTS:
            raise ValueError(f"the mini-app's argument {action.dest!r} clashes with a common option")
    common = parser.add_argument_group("runtime options (common to all mini-apps)")
    common.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="OpenMP threads per rank (default: OMP_NUM_THREADS if set, else the "
                             "CPUs of this rank's share of the node; 1 when ranks outnumber CPUs)")
    common.add_argument("--pin", choices=PIN_CHOICES, default=None,
                        help="bind each rank's threads inside its CPU share: compact (neighbouring "
                             "CPUs), scatter (spread over packages and cores) or none (default: "
                             "compact, none when ranks x threads exceed the node's CPUs)")
    common.add_argument("--report-bindings", action="store_true",
                        help="print host, rank, node-local rank, CPU share and each OpenMP thread's "
                             "CPU and mask, read back from inside a parallel region")
    common.add_argument("--json", metavar="PATH", default=None,
                        help="append one JSON record per variant to PATH (a directory, or a path "
                             "ending in '/', means PATH/<app>.jsonl); see docs/records.md")
    common.add_argument("--repeat", type=positive_int, default=repeat, metavar="N",
                        help=f"timed repetitions of each variant (default: {repeat}); one untimed "
                             "warm-up run comes first")
    common.add_argument("--check", action="store_true",
                        help="validate every variant against the numpy reference; exit 1 on a mismatch")
    common.add_argument("--quiet", action="store_true",
                        help="print nothing but errors and --report-bindings (use with --json)")
    common.add_argument("--dtype", choices=tuple(dtypes), default=dtype,
                        help=f"floating-point type: f64 (DP) or f32 (SP) (default: {dtype})")
    return parser


def app_arguments(namespace):
    """The mini-app's own arguments of a parsed namespace, as a dict (what records call ``args``)."""
    return {k: v for k, v in vars(namespace).items() if k not in COMMON_DESTS}
