"""cp2k under MPI, in the test processes: ``mpiexec -n 2 python -m pytest --with-mpi tests/test_cp2k_mpi.py``."""
import json
import os
import tempfile

import pytest

from miniapps import cp2k
from miniapps import runtime as rt


def _shared_dir(comm):
    path = tempfile.mkdtemp(prefix="cp2k-mpi-") if comm.Get_rank() == 0 else None
    return comm.bcast(path, root=0)


@pytest.mark.mpi
@pytest.mark.parametrize("path,model_name", [("offload", "dbcsr"), ("host", "dbcsr"), ("offload", "sample")])
def test_ranks_run_and_validate(restore_affinity, path, model_name):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    out = _shared_dir(comm)
    argv = ["7", "900", "11", "5", "3", "--path", path, "--model", model_name, "--stack-size", "250",
            "--check", "--quiet", "--json", out + "/", "--variants", "specialized,blas,numpy"]
    code = rt.launch("cp2k", cp2k.main, cp2k.add_arguments, argv=argv)
    assert code == 0
    comm.Barrier()
    if comm.Get_rank() == 0:
        with open(os.path.join(out, "cp2k.jsonl")) as f:
            records = [json.loads(line) for line in f]
        assert [r["variant"] for r in records] == ["blas", "specialized", "numpy"]
        for r in records:
            assert r["ranks"] == comm.Get_size()
            assert r["check"]["ok"]
            # figures aggregate over ranks: total flops of every rank
            assert r["flops"] == comm.Get_size() * 2 * 900 * 7 * 5 * 3
            if path == "offload" and r["variant"] != "numpy":
                assert len(r["extra"]["overlap_per_rank"]) == comm.Get_size()
