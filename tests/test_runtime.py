"""The mini-app runtime without a launcher: arguments, CPU shares, binding, timing, validation, records."""
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, app_env
from core import threads
from miniapps import runtime as rt
from miniapps.runtime import pinning, records
from miniapps.runtime.args import build_parser, ParserExit
from miniapps.runtime.timing import Timing

CPUS = sorted(os.sched_getaffinity(0))
REQUIRED_KEYS = ("app", "variant", "args", "ranks", "threads", "pin", "oversubscribed", "target", "dtype",
                 "seconds", "gflops", "gbs", "check", "host", "cpu", "versions", "git", "time")


# ---- parse_size and arguments -------------------------------------------------------------------

@pytest.mark.parametrize("text, base, expected", [
    ("+", 100, 200), ("+++", 100, 800), ("-", 100, 50), ("--", 100, 25), ("---", 7, 0),
    ("123", 100, 123), ("0", 100, 0), ("", 100, 0), (None, 100, 0), (42, 5, 42), (" 17 ", 1, 17),
    ("+5", 10, 40),  # LIBXSMM: the first character decides, the length is the whole string's
])
def test_parse_size(text, base, expected):
    assert rt.parse_size(text, base) == expected


@pytest.mark.parametrize("text", ["x", "1.5", "12a", True])
def test_parse_size_rejects_garbage_as_usage_error(text):
    with pytest.raises(rt.UsageError, match="size"):
        rt.parse_size(text, 10)


def test_parse_size_rejects_bad_base():
    with pytest.raises(ValueError, match="base"):
        rt.parse_size("+", -1)


def _parser(**kw):
    def add(p):
        p.add_argument("m", nargs="?", type=int, default=23)
    return build_parser("prog", "doc", add, printing=False, **kw)


def test_common_options_defaults():
    a = _parser().parse_args([])
    assert (a.m, a.threads, a.pin, a.report_bindings, a.json, a.repeat, a.check, a.quiet, a.dtype) == \
        (23, None, None, False, None, 1, False, False, "f64")
    a = _parser(dtype="f32", dtypes=("f32",), repeat=5).parse_args(["7", "--threads", "3", "--pin", "scatter"])
    assert (a.m, a.threads, a.pin, a.dtype, a.repeat) == (7, 3, "scatter", "f32", 5)


@pytest.mark.parametrize("argv", [["--threads", "0"], ["--threads", "x"], ["--pin", "tight"],
                                  ["--repeat", "-1"], ["--dtype", "f16"], ["1", "2"], ["--nope"]])
def test_bad_arguments_raise_parser_exit_2(argv):
    with pytest.raises(ParserExit) as info:
        _parser().parse_args(argv)
    assert info.value.status == 2


def test_app_argument_clashing_with_common_option_is_rejected():
    def add(p):
        p.add_argument("--threads", type=int)
    with pytest.raises(Exception, match="threads"):
        build_parser("prog", None, add, printing=False)


# ---- CPU lists, topology, shares ----------------------------------------------------------------

@pytest.mark.parametrize("text, cpus", [("0-3,8,10-11", [0, 1, 2, 3, 8, 10, 11]), ("5", [5]), ("", [])])
def test_cpu_list_round_trip(text, cpus):
    assert pinning.parse_cpu_list(text) == cpus
    assert pinning.format_cpu_list(cpus) == text


def _fake_sysfs(tmp_path, layout):
    """layout: {cpu: (package, core, siblings)}."""
    for cpu, (package, core, siblings) in layout.items():
        d = tmp_path / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "physical_package_id").write_text(f"{package}\n")
        (d / "core_id").write_text(f"{core}\n")
        (d / "thread_siblings_list").write_text(pinning.format_cpu_list(siblings) + "\n")
    return str(tmp_path)


# Two packages x two cores x two hardware threads, numbered as Linux often does: the second hardware
# thread of every core comes after all first ones.
SMT_LAYOUT = {0: (0, 0, [0, 4]), 1: (0, 1, [1, 5]), 2: (1, 0, [2, 6]), 3: (1, 1, [3, 7]),
              4: (0, 0, [0, 4]), 5: (0, 1, [1, 5]), 6: (1, 0, [2, 6]), 7: (1, 1, [3, 7])}


def test_topology_reads_sysfs(tmp_path):
    topo = pinning.topology(range(8), _fake_sysfs(tmp_path, SMT_LAYOUT))
    assert topo[0] == (0, 0, 0) and topo[4] == (0, 0, 1) and topo[7] == (1, 1, 1)
    assert pinning.topology([3], str(tmp_path / "missing")) == {3: (0, 3, 0)}


def test_compact_and_scatter_orders():
    topo = {c: (p, core, t) for c, (p, core, sib) in SMT_LAYOUT.items() for t in [sib.index(c)]}
    assert pinning.compact_order(range(8), topo) == [0, 4, 1, 5, 2, 6, 3, 7]
    assert pinning.scatter_order(range(8), topo) == [0, 2, 1, 3, 4, 6, 5, 7]


def test_node_shares_split_identical_masks_into_disjoint_blocks():
    topo = {c: (p, core, t) for c, (p, core, sib) in SMT_LAYOUT.items() for t in [sib.index(c)]}
    shares, node_cpus, source = pinning.node_shares([range(8)] * 2, topo)
    assert source == "runtime" and node_cpus == list(range(8))
    assert shares == [[0, 1, 4, 5], [2, 3, 6, 7]]  # one package each, hyperthreads kept together
    shares, _, _ = pinning.node_shares([range(8)] * 3, topo)
    assert [len(s) for s in shares] == [3, 3, 2]
    assert sorted(c for s in shares for c in s) == list(range(8))


def test_node_shares_keep_disjoint_launcher_masks():
    shares, node_cpus, source = pinning.node_shares([[2, 3], [0, 1]])
    assert source == "launcher" and shares == [[2, 3], [0, 1]] and node_cpus == [0, 1, 2, 3]


def test_node_shares_with_more_ranks_than_cpus_wrap_round():
    shares, node_cpus, source = pinning.node_shares([[0, 1]] * 4, {0: (0, 0, 0), 1: (0, 1, 0)})
    assert shares == [[0], [1], [0], [1]] and source == "runtime"


def test_node_shares_reject_empty_mask():
    with pytest.raises(ValueError):
        pinning.node_shares([[0], []])


def test_thread_groups():
    topo = {c: (p, core, t) for c, (p, core, sib) in SMT_LAYOUT.items() for t in [sib.index(c)]}
    share = list(range(8))
    assert pinning.thread_groups(share, 4, "compact", topo) == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert pinning.thread_groups(share, 2, "scatter", topo) == [[0, 1, 4, 5], [2, 3, 6, 7]]
    assert pinning.thread_groups(share, 4, "scatter", topo) == [[0, 4], [2, 6], [1, 5], [3, 7]]
    assert pinning.thread_groups([0, 1], 3, "compact", {0: (0, 0, 0), 1: (0, 1, 0)}) == [[0], [1], [0]]
    assert pinning.thread_groups(share, 4, "none", topo) is None
    with pytest.raises(ValueError):
        pinning.thread_groups(share, 0, "compact", topo)


def test_default_threads():
    assert pinning.default_threads([0, 1, 2], local_size=2, node_cpu_count=5) == 3
    assert pinning.default_threads([0], local_size=4, node_cpu_count=2) == 1
    assert pinning.default_threads([0, 1], local_size=1, node_cpu_count=2, omp_num_threads=3) == 3


# ---- binding, read back from inside the OpenMP region ------------------------------------------

@pytest.mark.parametrize("nthreads", [1, 2, 4])
def test_bind_team_is_read_back_by_every_thread(nthreads, restore_affinity):
    groups = [[CPUS[(t + 1) % len(CPUS)]] for t in range(nthreads)]  # not the identity: proves it moved
    threads.bind_team(groups)
    assert threads.get_num_threads() == nthreads
    seen = threads.team_affinity()
    assert len(seen) == nthreads
    for t, (cpu, allowed) in enumerate(seen):
        assert list(allowed) == groups[t], f"thread {t}"
        assert cpu == groups[t][0], f"thread {t} ran on cpu {cpu}"
    # The pool threads keep their binding from one region to the next.
    assert threads.team_affinity() == [(g[0], tuple(g)) for g in groups]
    # A team of one leaves libgomp's pool alone.
    threads.team_affinity(1)
    assert [a for _, a in threads.team_affinity(nthreads)] == [tuple(g) for g in groups]


def test_bind_team_groups_of_several_cpus(restore_affinity):
    threads.bind_team([CPUS, CPUS[:1]])
    seen = threads.team_affinity(2)
    assert list(seen[0][1]) == CPUS and seen[0][0] in CPUS
    assert list(seen[1][1]) == CPUS[:1]


def test_bind_team_errors(restore_affinity):
    bad = max(CPUS) + 1
    with pytest.raises(OSError, match=f"thread 1 to CPUs \\[{bad}\\]"):
        threads.bind_team([[CPUS[0]], [bad]])
    with pytest.raises(ValueError, match="empty"):
        threads.bind_team([[CPUS[0]], []])
    with pytest.raises(ValueError):
        threads.bind_team([])
    with pytest.raises(ValueError, match="invalid CPU"):
        threads.bind_team([[-1]])
    with pytest.raises(TypeError):
        threads.team_affinity("2")
    assert threads.current_cpu() in range(os.cpu_count())


def test_context_rebinds_threads_replaced_by_a_smaller_team(restore_affinity):
    ctx = rt.setup("t", ["--threads", "4", "--pin", "compact"])
    assert ctx.oversubscribed == (4 > len(CPUS)) and ctx.pin == "compact"
    expected = [tuple(g) for g in ctx.thread_cpus]
    assert [a for _, a in threads.team_affinity(4)] == expected
    threads.team_affinity(3)  # libgomp ends pool thread 3; the next team of 4 starts a fresh one
    seen = [a for _, a in threads.team_affinity(4)]
    if len(CPUS) > 1:
        assert seen[3] == tuple(ctx.thread_cpus[0]), "libgomp behaviour changed: the new thread kept its mask"
    ctx.timeit(lambda: None)
    assert [a for _, a in threads.team_affinity(4)] == expected
    ctx.close()


# ---- Context in one process ---------------------------------------------------------------------

def test_context_defaults(restore_affinity):
    ctx = rt.setup("t", [])
    assert (ctx.rank, ctx.size, ctx.local_rank) == (0, ctx.comm.Get_size(), 0)
    assert ctx.cpus == CPUS and ctx.threads == len(CPUS) and ctx.pin == "compact"
    assert not ctx.oversubscribed and ctx.binding_ok
    assert ctx.thread_cpus == [[c] for c in CPUS]
    assert [a for _, a in threads.team_affinity()] == [(c,) for c in CPUS]
    assert ctx.dtype == np.float64 and ctx.target in ("generic", "avx2", "avx512")
    blas = [p for p in ctx.threadpools if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 1 for p in blas)
    ctx.close()


def test_context_oversubscribed_defaults_to_no_pinning(restore_affinity):
    ctx = rt.setup("t", ["--threads", str(2 * len(CPUS))])
    assert ctx.oversubscribed and ctx.pin == "none" and ctx.thread_cpus is None
    assert threads.get_num_threads() == 2 * len(CPUS)
    ctx.close()


def test_timeit_excludes_warmup_and_averages(restore_affinity):
    ctx = rt.setup("t", ["--repeat", "3", "--threads", "1"])
    calls = []
    t = ctx.timeit(lambda: (calls.append(1), time.sleep(0.01)), warmup=2)
    assert len(calls) == 5 and t.repeat == 3 and t.per_repeat
    assert 0.009 < t.max < 0.5 and t.min <= t.avg <= t.max and len(t.per_rank) == ctx.size
    total = ctx.timeit(lambda: time.sleep(0.01), repeat=2, warmup=0, per_repeat=False)
    assert total.max >= 0.02
    with ctx.timer() as sw:
        time.sleep(0.01)
    assert sw.timing.max >= 0.01
    with pytest.raises(ValueError):
        ctx.timeit(lambda: None, repeat=0)
    ctx.close()


def test_timing_from_ranks():
    t = Timing.from_ranks([1.0, 3.0, 2.0], repeat=4)
    assert (t.min, t.avg, t.max, t.seconds, t.repeat) == (1.0, 2.0, 3.0, 3.0, 4)
    with pytest.raises(ValueError):
        Timing.from_ranks([])
    with pytest.raises(ValueError):
        Timing.from_ranks([float("nan")])


def test_validate(restore_affinity):
    ctx = rt.setup("t", ["--check", "--threads", "1"])
    ref = np.linspace(1.0, 2.0, 101)
    ok = ctx.validate(ref.copy(), ref)
    assert ok["ok"] and ok["max_rel_err"] == 0.0
    bad = ref.copy()
    bad[7] += 0.5
    chk = ctx.validate(bad, ref, tol=1e-3)
    assert not chk["ok"] and chk["max_rel_err"] == pytest.approx(0.25) and chk["max_abs_err"] == pytest.approx(0.5)
    assert ctx.validate(bad, ref, tol=0.3)["ok"]
    nan = ref.copy()
    nan[3] = np.nan
    assert not ctx.validate(nan, ref)["ok"]
    assert ctx.validate(np.float32(ref), ref)["tol"] == 1e-4
    pair = ctx.validate((ref, ref[:5]), lambda: (ref, ref[:5]))
    assert pair["ok"]
    with pytest.raises(ValueError, match="shape"):
        ctx.validate(ref[:5], ref)
    with pytest.raises(ValueError, match="arrays"):
        ctx.validate((ref,), (ref, ref))
    ctx.close()
    quiet = rt.setup("t", ["--threads", "1"])
    assert quiet.validate(ref, lambda: pytest.fail("reference computed without --check")) is None
    quiet.close()


def test_report_rates_and_record(tmp_path, restore_affinity, capsys):
    out = tmp_path / "res"
    ctx = rt.setup("t", ["--threads", "1", "--json", str(out) + "/", "--check"])
    t = Timing.from_ranks([0.5] * ctx.size)
    chk = {"ok": True, "max_rel_err": 0.0}
    rec = ctx.report("v1", t, flops=1e9, nbytes=2 ** 30, calls=10, check=chk, extra={"x": 1}, label="V one")
    assert rec["gflops"] == pytest.approx(2.0 * ctx.size) and rec["gbs"] == pytest.approx(2.0 * ctx.size)
    assert rec["calls_per_s"] == pytest.approx(20 * ctx.size) and rec["flops"] == 10 ** 9 * ctx.size
    for key in REQUIRED_KEYS:
        assert key in rec, key
    printed = capsys.readouterr().out
    assert "V one...\n\tperformance: 2.0 GFLOPS/s\n\tbandwidth: 2.0 GB/s\n\tcalls/s: 20 Hz\n\tduration: 500 ms" in printed
    rec2 = ctx.report("v2", t, check={"ok": False, "max_rel_err": 1.0})
    assert rec2["gflops"] is None and rec2["gbs"] is None
    assert ctx.finish() is True
    lines = (out / "t.jsonl").read_text().splitlines()
    assert [json.loads(l)["variant"] for l in lines] == ["v1", "v2"]
    assert json.loads(lines[0])["extra"] == {"x": 1}
    with pytest.raises(TypeError):
        ctx.report("v3", 1.0)
    ctx.close()


# ---- records ------------------------------------------------------------------------------------

def test_json_path(tmp_path):
    assert records.json_path(str(tmp_path), "smm") == str(tmp_path / "smm.jsonl")
    assert records.json_path("new/dir/", "smm") == "new/dir/smm.jsonl"
    assert records.json_path("x.jsonl", "smm") == "x.jsonl"


def test_records_are_strict_json(tmp_path):
    path = tmp_path / "r.jsonl"
    records.append(str(path), {"a": float("inf"), "b": [float("nan"), 1.5], "c": np.float32(2.5),
                               "d": np.arange(3), "e": {"f": np.int64(4)}})
    line = path.read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {"a": None, "b": [None, 1.5], "c": 2.5, "d": [0, 1, 2], "e": {"f": 4}}


def test_append_removes_a_fragment_and_keeps_an_unterminated_record(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"ok": 0}\n{"half": ')
    records.append(str(path), {"ok": 1})
    assert records.read(str(path)) == ([{"ok": 0}, {"ok": 1}], 0)
    path.write_text('{"ok": 0}')
    records.append(str(path), {"ok": 1})
    assert records.read(str(path)) == ([{"ok": 0}, {"ok": 1}], 0)


def _append_many(path, worker, count):
    for i in range(count):
        records.append(path, {"worker": worker, "i": i, "pad": "x" * (8192 + worker)})


def test_concurrent_appends_never_interleave(tmp_path):
    path = str(tmp_path / "r.jsonl")
    procs = [multiprocessing.get_context("fork").Process(target=_append_many, args=(path, w, 150))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    good, bad = records.read(path)
    assert bad == 0 and len(good) == 600
    for w in range(4):
        assert [r["i"] for r in good if r["worker"] == w] == list(range(150))


def _write_until_killed(path, sig):
    """Start a process appending 256 KiB records in a loop; kill it with ``sig`` mid-stream."""
    code = ("import sys; from miniapps.runtime import records\n"
            "i = 0\n"
            "while True:\n"
            "    records.append(sys.argv[1], {'i': i, 'pad': 'y' * 262144}); i += 1\n")
    proc = subprocess.Popen([sys.executable, "-c", code, path], env=app_env(), cwd=ROOT)
    deadline = time.monotonic() + 30
    while (not os.path.exists(path) or os.path.getsize(path) < 8 << 20) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    assert proc.wait(30) == -sig


@pytest.mark.parametrize("attempt", range(3))
def test_terminated_writer_leaves_only_whole_lines(tmp_path, attempt):
    path = str(tmp_path / "r.jsonl")
    _write_until_killed(path, signal.SIGTERM)
    good, bad = records.read(path)
    assert bad == 0 and len(good) > 10
    assert [r["i"] for r in good] == list(range(len(good)))
    with open(path, "rb") as f:
        assert f.read().endswith(b"\n")


def test_fragment_of_a_sigkilled_writer_is_removed_by_the_next_append(tmp_path):
    path = str(tmp_path / "r.jsonl")
    _write_until_killed(path, signal.SIGKILL)
    records.append(path, {"i": "next"})
    good, bad = records.read(path)
    assert bad == 0 and good[-1] == {"i": "next"}
    assert [r["i"] for r in good[:-1]] == list(range(len(good) - 1))


def test_git_and_job_info(tmp_path):
    assert records.git_describe(str(tmp_path)) is None
    assert records.job_info({}) is None
    assert records.job_info({"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2"})["scheduler"] == "slurm"
    assert records.job_info({"PBS_JOBID": "9.server"})["id"] == "9.server"


# ---- the toy mini-app as a program (singleton) --------------------------------------------------

def test_help_documents_every_common_option(run_app):
    p = run_app("toyapp", "--help")
    assert p.returncode == 0, p.stderr
    for opt in ("--threads", "--pin", "--report-bindings", "--json", "--repeat", "--check", "--quiet",
                "--dtype", "compact", "scatter", "exit status", "toyapp: a tiny mini-app"):
        assert opt in p.stdout, opt


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "--threads: must be >= 1"), (["--pin", "x"], "--pin: invalid choice"),
    (["1", "2", "3", "4"], "unrecognized arguments"), (["0"], "n must be >= 1"),
    (["10", "4", "xyz"], "size 'xyz' is not an integer"),
])
def test_bad_argument_exits_2_with_usage(run_app, args, message):
    p = run_app("toyapp", *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "usage: python -m toyapp" in p.stderr and message in p.stderr


def test_singleton_run_writes_records(run_app, tmp_path):
    p = run_app("toyapp", "200", "4", "+", "--check", "--repeat", "2", "--json", tmp_path, "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert "AXPY...\n\tperformance:" in p.stdout and "Stacked matmul..." in p.stdout
    assert "n=200 k=4 s=32" in p.stdout
    good, bad = records.read(str(tmp_path / "toyapp.jsonl"))
    assert bad == 0 and [r["variant"] for r in good] == ["axpy", "matmul"]
    for r in good:
        assert r["ranks"] == 1 and r["threads"] == 1 and r["check"]["ok"] and r["repeat"] == 2
        assert r["args"]["n"] == 200 and r["dtype"] == "f64" and r["seconds"] > 0
    assert good[0]["extra"] == {"calls_made": 3}


def test_quiet_prints_nothing(run_app):
    p = run_app("toyapp", "10", "--quiet", "--threads", "1")
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""


def test_failed_check_exits_1(run_app):
    p = run_app("toyapp", "10", "--check", "--wrong", "--dtype", "f32", "--threads", "1")
    assert p.returncode == 1
    assert "FAILED" in p.stdout and "validation FAILED: axpy" in p.stderr


def test_app_error_and_exception_exit_1(run_app):
    p = run_app("toyapp", "--fail-all", "--threads", "1")
    assert p.returncode == 1 and "toyapp: error: asked to fail on every rank" in p.stderr
    assert "Traceback" not in p.stderr
    p = run_app("toyapp", "--fail-rank", "0", "--threads", "1")
    assert p.returncode == 1 and "Traceback" in p.stderr and "RuntimeError: toyapp failure on rank 0" in p.stderr


def _fake_mpi4py(tmp_path):
    """An mpi4py whose MPI module cannot load its library, as on a machine without MPI."""
    pkg = tmp_path / "fake" / "mpi4py"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "MPI.py").write_text("raise RuntimeError('cannot load MPI library')\n")
    return str(tmp_path / "fake")


def test_serial_stand_in_when_mpi_cannot_load(run_app, tmp_path):
    fake = _fake_mpi4py(tmp_path)
    p = run_app("toyapp", "50", "--check", "--json", tmp_path / "r.jsonl", "--threads", "1",
                env={"PYTHONPATH": fake})
    assert p.returncode == 0, p.stderr
    assert "serial (no MPI: RuntimeError: cannot load MPI library)" in p.stdout
    good, _ = records.read(str(tmp_path / "r.jsonl"))
    assert len(good) == 2 and good[0]["mpi"] is None and good[0]["ranks"] == 1


def test_several_tasks_without_mpi_is_an_error(run_app, tmp_path):
    fake = _fake_mpi4py(tmp_path)
    p = run_app("toyapp", "--threads", "1", env={"PYTHONPATH": fake, "SLURM_STEP_NUM_TASKS": "2"})
    assert p.returncode == 1 and "the launcher started 2 tasks" in p.stderr


def test_shares_come_from_the_start_mask_even_when_libgomp_moved_the_main_thread(run_app):
    p = run_app("toyapp", "10", "--report-bindings", "--quiet", env={"OMP_PROC_BIND": "true", "OMP_PLACES": "cores"})
    assert p.returncode == 0, p.stderr
    n = len(CPUS)
    assert f"cpus {pinning.format_cpu_list(CPUS)}, pin compact, {n} thread{'s' if n > 1 else ''}" in p.stdout
    assert p.stdout.count("omp thread") == n


def test_omp_num_threads_is_the_default_thread_count(run_app):
    p = run_app("toyapp", "10", env={"OMP_NUM_THREADS": "1"})
    assert p.returncode == 0 and "1 thread/rank" in p.stdout
    p = run_app("toyapp", "10", "--threads", "2", env={"OMP_NUM_THREADS": "1"})
    assert p.returncode == 0 and "2 threads/rank" in p.stdout
