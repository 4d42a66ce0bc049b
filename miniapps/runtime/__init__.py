"""The shared mini-app runtime: MPI, threads and pinning, timing, validation, JSON records.

A mini-app holds only its science and codes against this interface (docs/runtime-contract.md;
full documentation in docs/runtime.md, record schema in docs/records.md)::

    from miniapps import runtime as rt

    def add_arguments(parser): ...          # the app's own positional arguments
    def main(ctx): ...                      # ctx: rt.Context
    if __name__ == "__main__":
        rt.run("name", main, add_arguments, doc=__doc__)
"""
from .app import launch, run, setup
from .args import UsageError, parse_size
from .context import AppError, Context
from .timing import Timing

__all__ = ["run", "launch", "setup", "Context", "Timing", "parse_size", "AppError", "UsageError"]
