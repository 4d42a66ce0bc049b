"""The dispatch micro-benchmark (python -m miniapps.dispatch): its nogil loops, the shapes, the
kernels' check against numpy, the printed figures, records and errors, alone and under MPI."""
import json
import os
import re
import tempfile

import numpy as np
import pytest

import core.cpu
import core.smm
from miniapps import _dispatch_bench as bench
from miniapps import dispatch
from miniapps import runtime as rt

LINES = ("function-call (empty)", "dispatch (ro/cached)", "code-gen (rw)", "dispatch (ro)")


def _descs(shapes, dtype=np.float64):
    shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 3)
    return bench.Descriptors(shapes[:, 0], shapes[:, 1], shapes[:, 2], dtype=dtype)


def test_shapes_are_distinct_in_range_and_reproducible():
    s = dispatch.draw_shapes(3000, 4, 9)
    assert s.shape[1] == 3 and s.min() >= 4 and s.max() <= 8
    assert len({tuple(r) for r in s}) == len(s) == 5 ** 3   # 3000 draws cover all 125 shapes
    np.testing.assert_array_equal(s, dispatch.draw_shapes(3000, 4, 9))
    few = dispatch.draw_shapes(5, 4, 64)
    np.testing.assert_array_equal(few, np.random.default_rng(dispatch.SEED).integers(4, 64, size=(5, 3)))


@pytest.mark.parametrize("threads", (1, 2, 3))
def test_measurements_count_their_calls_in_blocks(threads):
    d = _descs([(3, 4, 5), (6, 7, 8), (9, 2, 1)])
    for result, calls in ((bench.empty_calls(1001, threads, block=100), 1001),
                          (bench.dispatch_cycle(d, 2, 1001, threads, block=100), 1001),
                          (bench.dispatch_order(d, np.array([2, 0, 1, 1]), 5, threads, block=3), 20)):
        thread_seconds, wall, n, failed, block_seconds, block_calls = result
        assert n == calls and failed == 0
        assert thread_seconds > 0 and wall > 0
        # every call is in exactly one block, no block exceeds the size, each thread's share is
        # cut into whole blocks plus a remainder
        assert block_calls.sum() == calls and block_calls.max() <= (3 if calls == 20 else 100)
        assert len(block_seconds) == len(block_calls) and np.all(block_seconds >= 0)
        assert block_seconds.sum() == pytest.approx(thread_seconds)
    assert bench.empty_calls(0, threads)[2] == 0


def test_per_call_is_the_median_of_full_blocks():
    # one preempted block (1 s) and a short remainder block (2 calls) do not move the figure
    sec = np.array([1e-6, 1.2e-6, 1.0, 0.9e-6, 1e-3])
    cal = np.array([1000, 1000, 1000, 1000, 2])
    assert bench.per_call(sec, cal) == pytest.approx(np.median([1e-9, 1.2e-9, 1e-3, 0.9e-9]))
    assert bench.per_call(np.array([2e-6]), np.array([2])) == pytest.approx(1e-6)
    assert bench.per_call(np.array([]), np.array([])) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        bench.per_call(np.zeros(2), np.zeros(3))


def test_look_ups_return_the_registry_kernels():
    """What the loops look up is what core.smm.dispatch returns: building through dispatch_c
    adds the kernel to the registry, a second look-up finds it without building."""
    shape = (37, 3, 41)
    d = _descs([shape])
    stats = core.smm.registry_stats(per_shape=True)
    present = any((s["m"], s["n"], s["k"], s["alpha"], s["beta"], s["dtype"]) == shape + (1.0, 1.0, "f64")
                  for s in stats["per_shape"])
    bench.dispatch_order(d, np.array([0]))
    after = core.smm.registry_stats()["kernels"]
    assert after - stats["kernels"] == (0 if present else 1)
    bench.dispatch_cycle(d, 1, 50)
    assert core.smm.registry_stats()["kernels"] == after
    k = core.smm.dispatch(*shape, prefetch="none")
    assert (k.m, k.n, k.k, k.alpha, k.beta, k.prefetch) == (37, 3, 41, 1.0, 1.0, "none")


@pytest.mark.parametrize("target", core.cpu.available_targets())
@pytest.mark.parametrize("dtype", (np.float64, np.float32))
def test_every_kernel_runs_once_like_numpy(run_app, target, dtype):
    """run_each with the process's ISA path (SMM_TARGET in a child) against the numpy loop."""
    dt = "f64" if dtype == np.float64 else "f32"
    out = run_app("miniapps.dispatch", 300, 3, 1, 1, 23, 1, "--check", "--dtype", dt,
                  env={"SMM_TARGET": target}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"target={target}" in out.stdout
    m = re.search(r"check=(\S+) \(max_rel=(\S+) vs numpy\)", out.stdout)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) < (1e-13 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("dtype", (np.float64, np.float32))
def test_run_each_in_process(dtype):
    shapes = dispatch.draw_shapes(200, 1, 20)
    d = _descs(shapes, dtype)
    rng = np.random.default_rng(3)
    a, b = (rng.random(19 * 19).astype(dtype) for _ in range(2))
    c = np.zeros(19 * 19, dtype)
    assert bench.run_each(d, a, b, c) == 0
    ref = dispatch.reference_check(shapes, a, b, np.zeros_like(c))
    assert np.abs(c - ref).max() / np.abs(ref).max() < (1e-13 if dtype == np.float64 else 1e-5)


def test_bad_bench_arguments():
    d = _descs([(4, 5, 6)])
    with pytest.raises(ValueError, match="nlocal must be in 1..1"):
        bench.dispatch_cycle(d, 2, 10)
    with pytest.raises(ValueError, match="calls must be >= 0"):
        bench.empty_calls(-1)
    with pytest.raises(ValueError, match="threads must be in"):
        bench.empty_calls(10, 0)
    with pytest.raises(ValueError, match="block must be an int >= 1"):
        bench.empty_calls(10, 1, block=0)
    with pytest.raises(TypeError, match="order must be a 1-D int64"):
        bench.dispatch_order(d, np.array([0], dtype=np.int32))
    with pytest.raises(ValueError, match="order must index"):
        bench.dispatch_order(d, np.array([1]))
    with pytest.raises(ValueError, match="m must hold sizes"):
        _descs([(0, 5, 6)])
    with pytest.raises(ValueError, match="one length"):
        bench.Descriptors(np.array([1, 2]), np.array([1]), np.array([1]))
    with pytest.raises(TypeError, match="dtype must be"):
        _descs([(4, 5, 6)], np.int32)
    a = np.zeros(30)
    with pytest.raises(ValueError, match="c holds 19 elements, the largest block needs 20"):
        bench.run_each(d, a, a.copy(), np.zeros(19))
    with pytest.raises(TypeError, match="b has dtype float32"):
        bench.run_each(d, a, a.astype(np.float32), a.copy())
    with pytest.raises(ValueError, match="c overlaps"):
        bench.run_each(d, a, a.copy(), a)
    with pytest.raises(IndexError):
        d.shape(1)


# ---- the program ------------------------------------------------------------------------------

def test_prints_the_sample_lines_and_records(run_app, tmp_path):
    out = run_app("miniapps.dispatch", 500, 4, 2, 2, 16, 2, "--threads", "2", "--check",
                  "--json", tmp_path, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    header = next(line for line in lines if line.startswith("Dispatching"))
    distinct = int(re.search(r"\((\d+) distinct", header).group(1))
    assert distinct == len(dispatch.draw_shapes(500, 2, 16))
    assert "local=4 kernels using 2 threads" in header
    found = [next(i for i, line in enumerate(lines) if line.strip().startswith(name + ":")) for name in LINES]
    assert found == sorted(found)                    # in the sample's order
    for i in found:
        assert re.search(r": [\d.]+ (ns \(\d+ MHz\)|us \(\d+ kHz\))$", lines[i]), lines[i]
    assert lines[-1] == "Finished"
    recs = [json.loads(line) for line in open(tmp_path / "dispatch.jsonl")]
    assert [r["variant"] for r in recs] == ["empty", "cached", "build", "registry"]
    for r in recs:
        assert r["app"] == "dispatch" and r["extra"]["nthreads"] == 2 and r["extra"]["ns_per_call"] > 0
        assert r["extra"]["failed_lookups"] == 0 and r["calls_per_s"] > 0 and r["extra"]["blocks"] >= 1
    assert [r["calls"] for r in recs] == [1000, 1000, distinct - 4, 2 * distinct]
    assert recs[2]["extra"]["kernels_built"] == distinct - 4
    assert recs[3]["check"]["ok"] and [r["check"] for r in recs[:3]] == [None] * 3


def test_no_kernel_left_to_build(run_app):
    out = run_app("miniapps.dispatch", 1, 5, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "code-gen (rw): no kernel left to build" in out.stdout


@pytest.mark.parametrize("args,match", [
    (["0"], "ntotal must be >= 1"), (["10", "0"], "nlocal must be >= 1"),
    (["10", "1", "3", "--threads", "2"], "nthreads=3 must be 1 or this rank's thread count (2)"),
    (["10", "1", "1", "0"], "nrepeat must be >= 1"), (["10", "1", "1", "1", "4", "4"], "maxsize must exceed"),
    (["10", "1", "1", "1", "8", "0"], "minsize must be >= 1"), (["x"], "invalid int value"),
    (["10", "1", "1", "1", "5000"], "not a small matrix"),
])
def test_bad_arguments_exit_2_with_usage(run_app, args, match):
    out = run_app("miniapps.dispatch", *args, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "usage: python -m miniapps.dispatch" in out.stderr and match in out.stderr


def test_a_wrong_kernel_result_fails_the_check(monkeypatch, restore_affinity, capsys):
    real = bench.run_each

    def wrong(descs, a, b, c):
        bad = real(descs, a, b, c)
        c[0] += 1.0
        return bad

    monkeypatch.setattr(dispatch.bench, "run_each", wrong)
    argv = ["100", "1", "1", "1", "8", "--check", "--threads", "1"]
    assert rt.launch("dispatch", dispatch.main, dispatch.add_arguments, argv=argv) == 1
    assert "FAILED" in capsys.readouterr().out


def test_two_ranks(run_app, tmp_path):
    out = run_app("miniapps.dispatch", 200, 2, 1, 1, 12, "--check", "--json", tmp_path, ranks=2, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "on each of 2 ranks" in out.stdout and out.stdout.count("Finished") == 1
    recs = [json.loads(line) for line in open(tmp_path / "dispatch.jsonl")]
    assert all(r["ranks"] == 2 and len(r["seconds_per_rank"]) == 2 for r in recs)
    assert recs[0]["calls"] == 2 * 200   # summed over ranks


@pytest.mark.mpi
def test_ranks_measure_in_process(restore_affinity):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    out = comm.bcast(tempfile.mkdtemp(prefix="dispatch-mpi-") if comm.Get_rank() == 0 else None, root=0)
    argv = ["300", "3", "1", "2", "20", "--check", "--quiet", "--threads", "1", "--json", out + "/"]
    assert rt.launch("dispatch", dispatch.main, dispatch.add_arguments, argv=argv) == 0
    comm.Barrier()
    if comm.Get_rank() == 0:
        recs = [json.loads(line) for line in open(os.path.join(out, "dispatch.jsonl"))]
        assert [r["variant"] for r in recs] == ["empty", "cached", "build", "registry"]
        assert all(r["ranks"] == comm.Get_size() for r in recs) and recs[3]["check"]["ok"]
        assert recs[1]["calls"] == comm.Get_size() * 600
