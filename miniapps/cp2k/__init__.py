"""cp2k: CP2K/DBCSR-style processing of matrix stacks (LIBXSMM's cp2k sample), host or offload.

A "stack" lists small products (A block, B block, C block) of one shape (m x k times k x n into
m x n, column-major); it is processed as one batched SMM whose C blocks repeat. Two stack models:
  dbcsr   (default) a block-sparse product C += A B generated as DBCSR does: stacks of up to
          --stack-size entries over many A, B and C blocks, sorted by C block (CP2K's real case)
  sample  LIBXSMM 1.11's sample: every product accumulates into one C; groups of t products are
          summed in private temporaries that are then added into C under locks
Two paths:
  offload (default) an accelerator-style device (core.acc): --device-threads worker threads of
          its own, --streams streams; the host generates stack i+1 and copies it to the device
          while the device processes stack i; the report shows host/device busy time and overlap
  host    each rank processes its stacks on its own OpenMP team (--threads)
Variants (as the sample): LAPACK/BLAS (scipy ?gemm per product), Inlined (compiled loops),
Dispatched (kernel looked up per product), Specialized (kernel obtained once, with prefetch),
gemm_batch (core.smm's batch call; host path), numpy (per-stack matmul + scatter-add: the baseline).

Sizes (per rank): m (default 23), r = stack size s (0: about 2 GiB shared among the node's ranks,
s = 2 GiB / ((m*k + k*n) * sizeof(T)) / ranks-per-node; "+"/"-" shorthands: q << len, q >> len
with q = 2^30 / (3*m*m*sizeof(T))), t = group size u (products per C block; default
isqrt(s*160/240); "+"/"-": 160 << len, 160 >> len), n (default k), k (default m).
Example: mpiexec -n 4 python -m miniapps.cp2k 23 0 0 --check
"""


def add_arguments(parser):
    """The app's own arguments (the runtime adds the common options)."""
    from .app import add_arguments as add
    add(parser)


def main(ctx):
    """Run the mini-app on a runtime Context (``python -m miniapps.cp2k``)."""
    from .app import main as run
    return run(ctx)
