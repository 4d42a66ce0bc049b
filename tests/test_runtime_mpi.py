"""The runtime under MPI.

Two kinds of tests: programs started with ``mpiexec -n P`` from plain pytest (exit codes, aborts,
bindings, records of whole jobs), and in-process tests marked ``mpi`` that pytest-mpi runs on every
rank of ``mpiexec -n 2 python -m pytest --with-mpi -m mpi tests/``.
"""
import os
import re
import time

import numpy as np
import pytest

from miniapps.runtime import records

CPUS = sorted(os.sched_getaffinity(0))


def _bindings(stdout):
    """{rank: (share, [allowed mask per thread])} parsed from --report-bindings output."""
    out, rank = {}, None
    for line in stdout.splitlines():
        m = re.match(r"bindings: rank (\d+) on \S+ \(node rank (\d+) of (\d+)\): cpus ([\d,-]+), pin (\w+)", line)
        if m:
            rank = int(m.group(1))
            out[rank] = (m.group(4), [], m.group(5))
            continue
        m = re.match(r"\s+omp thread (\d+): on cpu (\d+), allowed ([\d,-]+)", line)
        if m and rank is not None:
            out[rank][1].append(m.group(3))
    return out


def _cpus(text):
    from miniapps.runtime.pinning import parse_cpu_list
    return set(parse_cpu_list(text))


@pytest.mark.skipif(len(CPUS) < 2, reason="needs 2 CPUs")
def test_two_ranks_get_disjoint_bound_shares_and_one_record_per_variant(run_app, tmp_path):
    p = run_app("toyapp", "300", "4", "--check", "--report-bindings", "--json", tmp_path, ranks=2)
    assert p.returncode == 0, p.stderr
    b = _bindings(p.stdout)
    assert sorted(b) == [0, 1]
    shares = [_cpus(b[r][0]) for r in (0, 1)]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    assert shares[0] | shares[1] == set(CPUS)
    for r in (0, 1):
        share, masks, pin = b[r]
        assert pin == "compact" and masks, p.stdout
        assert set().union(*map(_cpus, masks)) == _cpus(share)  # read back from inside the region
    assert p.stdout.count("AXPY...") == 1  # rank 0 prints
    good, bad = records.read(str(tmp_path / "toyapp.jsonl"))
    assert bad == 0 and [r["variant"] for r in good] == ["axpy", "matmul"]
    for r in good:
        assert r["ranks"] == 2 and r["ranks_per_node"] == 2 and r["nodes"] == 1
        assert not r["oversubscribed"] and r["check"]["ok"] and len(r["seconds_per_rank"]) == 2
        assert r["seconds"] == max(r["seconds_per_rank"]) and r["binding"]["ok"]
        assert r["mpi"].startswith("MPICH")


def test_four_ranks_on_fewer_cpus_run_and_are_reported_oversubscribed(run_app, tmp_path):
    if len(CPUS) >= 4:
        pytest.skip("needs fewer than 4 CPUs")
    p = run_app("toyapp", "100", "4", "--check", "--json", tmp_path, "--report-bindings", ranks=4, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "(oversubscribed)" in p.stdout and "pin=none" in p.stdout and "1 thread/rank" in p.stdout
    good, _ = records.read(str(tmp_path / "toyapp.jsonl"))
    assert len(good) == 2
    for r in good:
        assert r["ranks"] == 4 and r["oversubscribed"] and r["pin"] == "none" and r["threads"] == 1
        assert r["check"]["ok"]


def test_oversubscribed_threads_can_still_be_pinned_inside_the_share(run_app):
    p = run_app("toyapp", "100", "--threads", "2", "--pin", "compact", "--report-bindings", ranks=2)
    assert p.returncode == 0, p.stderr
    b = _bindings(p.stdout)
    for r in (0, 1):
        share, masks, pin = b[r]
        assert pin == "compact" and len(masks) == 2
        assert all(_cpus(m) <= _cpus(share) for m in masks)


def test_bad_argument_exits_2_on_every_rank_without_hanging(run_app):
    start = time.monotonic()
    p = run_app("toyapp", "--threads", "-3", ranks=2, timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.count("usage:") == 1 and "--threads: must be >= 1" in p.stderr
    p = run_app("toyapp", "0", ranks=2, timeout=60)  # rejected by the app itself, after MPI set-up
    assert p.returncode == 2 and p.stderr.count("n must be >= 1") == 1
    assert time.monotonic() - start < 30


def test_exception_on_one_rank_aborts_the_job_within_seconds(run_app):
    start = time.monotonic()
    p = run_app("toyapp", "--fail-rank", "1", ranks=2, timeout=60)
    elapsed = time.monotonic() - start
    assert p.returncode != 0
    assert "[rank 1] RuntimeError: toyapp failure on rank 1" in p.stderr
    assert elapsed < 15, elapsed


def test_exception_aborts_a_rank_that_never_reaches_a_collective(run_app):
    start = time.monotonic()
    p = run_app("toyapp", "--fail-rank", "0", "--hang-rank", "1", ranks=2, timeout=60)
    assert p.returncode != 0 and "toyapp failure on rank 0" in p.stderr
    assert time.monotonic() - start < 15


def test_error_on_every_rank_ends_cleanly_with_one_message(run_app):
    p = run_app("toyapp", "--fail-all", ranks=2, timeout=60)
    assert p.returncode == 1
    assert p.stderr.count("asked to fail on every rank") == 1 and "Abort" not in p.stderr


def test_failed_check_on_two_ranks_exits_1(run_app):
    p = run_app("toyapp", "50", "--check", "--wrong", ranks=2, timeout=60)
    assert p.returncode == 1 and "validation FAILED: axpy" in p.stderr


def test_help_under_mpiexec_prints_once(run_app):
    p = run_app("toyapp", "--help", ranks=2)
    assert p.returncode == 0 and p.stdout.count("usage:") == 1


# ---- in-process, on every rank of an MPI job (pytest-mpi) ---------------------------------------

@pytest.fixture
def mpi_context(restore_affinity):
    from miniapps import runtime as rt
    ctx = rt.setup("mpitest", ["--check"])
    yield ctx
    ctx.close()


@pytest.mark.mpi(min_size=2)
def test_context_under_mpi(mpi_context):
    from core import threads
    ctx = mpi_context
    comm = ctx.comm
    assert ctx.size == comm.Get_size() >= 2 and ctx.rank == comm.Get_rank()
    assert ctx.local_size == len([h for h in comm.allgather(ctx.host) if h == ctx.host])
    shares = ctx.local_comm.allgather(ctx.cpus)
    if not ctx.oversubscribed:
        flat = [c for s in shares for c in s]
        assert len(flat) == len(set(flat)), f"shares overlap: {shares}"
        assert [list(a) for _, a in threads.team_affinity(ctx.threads)] == [list(g) for g in ctx.thread_cpus]


@pytest.mark.mpi(min_size=2)
def test_timing_validation_and_rates_over_ranks(mpi_context):
    ctx = mpi_context
    t = ctx.timeit(lambda: time.sleep(0.002 * (ctx.rank + 1)), repeat=2)
    assert len(t.per_rank) == ctx.size and t.per_rank[ctx.rank] >= 0.002 * (ctx.rank + 1)
    assert t.max >= 0.002 * ctx.size and t.min <= t.avg <= t.max
    ref = np.ones(10)
    res = ref.copy()
    if ctx.rank == ctx.size - 1:
        res[0] = 1.5  # only the last rank is wrong: every rank must see the failure
    chk = ctx.validate(res, ref, tol=0.1)
    assert not chk["ok"] and chk["max_rel_err"] == pytest.approx(0.5)
    rec = ctx.report("v", t, flops=1e6, calls=1, show=False)
    assert rec["flops"] == 10 ** 6 * ctx.size and rec["gflops"] == pytest.approx(1e-3 * ctx.size / t.max)
    assert rec["ranks"] == ctx.size
