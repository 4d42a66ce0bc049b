"""core.acc: the accelerator-style device (workers, streams, events, memory, stack processing)."""
import faulthandler
import gc
import os
import threading
import time

import numpy as np
import pytest

from core import acc, cpu, smm

SEED = 20240611


@pytest.fixture(autouse=True)
def no_hang():
    # A device bug shows up as a hang: turn one into a failure with every thread's traceback.
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def dev():
    d = acc.Device(threads=2)
    yield d
    d.close()


def make_stack(rng, m, n, k, count, na, nb, nc, *, sorted_c=True, index_dtype=np.int32, base=0):
    """Random stack (offsets) over na A, nb B and nc C blocks, plus flat A and B."""
    ia = rng.integers(0, na, count) * (m * k)
    ib = rng.integers(0, nb, count) * (k * n)
    ic = rng.integers(0, nc, count)
    if sorted_c:
        ic = np.sort(ic)
    ic = ic * (m * n)
    st = np.stack([ia, ib, ic], axis=1).astype(index_dtype) + base
    return st


def reference(A, B, st, m, n, k, nc, base=0, dtype=np.float64):
    """C from numpy in float64: column-major blocks as row-major transposes."""
    st = st.astype(np.int64) - base
    At = A.astype(np.float64).reshape(-1, k, m)
    Bt = B.astype(np.float64).reshape(-1, n, k)
    Ct = np.zeros((nc, n, m))
    prod = np.matmul(Bt[st[:, 1] // (k * n)], At[st[:, 0] // (m * k)])
    np.add.at(Ct, st[:, 2] // (m * n), prod)
    return Ct.reshape(-1)


def operands(rng, m, n, k, na, nb, dtype):
    A = rng.uniform(-1, 1, na * m * k).astype(dtype)
    B = rng.uniform(-1, 1, nb * k * n).astype(dtype)
    return A, B


def tol(dtype):
    return 1e-12 if np.dtype(dtype) == np.float64 else 2e-5


def run_on_device(dev, kern, A, B, st, c_size, *, streams=1, grain=None, base=0, count=None):
    s = dev.stream()
    A_d, B_d = dev.empty(A.shape, A.dtype), dev.empty(B.shape, B.dtype)
    C_d = dev.empty(c_size, A.dtype)
    S_d = dev.empty(st.shape, st.dtype)
    s.copy_to_device(A_d, A)
    s.copy_to_device(B_d, B)
    s.copy_to_device(S_d, st)
    s.fill_zero(C_d)
    s.process_stack(kern, A_d, B_d, C_d, S_d, count, grain=grain, index_base=base)
    out = np.full(c_size, np.nan, dtype=A.dtype)
    s.copy_to_host(out, C_d)
    s.synchronize()
    return out


SHAPES = [(1, 1, 1), (2, 2, 2), (2, 3, 1), (5, 7, 3), (13, 5, 17), (23, 23, 23), (7, 1, 9)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_process_stack_matches_numpy(dev, m, n, k, dtype):
    rng = np.random.default_rng(SEED)
    na, nb, nc, count = 37, 29, 11, 1001      # 1001: not a multiple of any grain or thread count
    A, B = operands(rng, m, n, k, na, nb, dtype)
    st = make_stack(rng, m, n, k, count, na, nb, nc)
    ref = reference(A, B, st, m, n, k, nc)
    kern = acc.smm_stack_kernel(m, n, k, dtype=dtype)
    out = run_on_device(dev, kern, A, B, st, nc * m * n, grain=97)
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol(dtype) * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("sorted_c", [True, False])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("base", [0, 1])
@pytest.mark.parametrize("grain", [None, 1, 7, 5000])
def test_stack_layouts(dev, sorted_c, index_dtype, base, grain):
    rng = np.random.default_rng(SEED + 1)
    m, n, k, na, nb, nc, count = 4, 3, 5, 20, 20, 6, 777
    A, B = operands(rng, m, n, k, na, nb, np.float64)
    st = make_stack(rng, m, n, k, count, na, nb, nc, sorted_c=sorted_c, index_dtype=index_dtype, base=base)
    ref = reference(A, B, st, m, n, k, nc, base=base)
    out = run_on_device(dev, acc.smm_stack_kernel(m, n, k), A, B, st, nc * m * n, grain=grain, base=base)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_heavy_c_repetition_single_c(dev):
    """Every product into one C (the sample's model): chunks go through private blocks and locks."""
    rng = np.random.default_rng(SEED + 2)
    m, n, k, count = 6, 5, 4, 4099
    A, B = operands(rng, m, n, k, count, count, np.float64)
    st = np.zeros((count, 3), np.int32)
    st[:, 0] = np.arange(count) * m * k
    st[:, 1] = np.arange(count) * k * n
    ref = reference(A, B, st, m, n, k, 1)
    for grain in (1, 13, 160, None):
        out = run_on_device(dev, acc.smm_stack_kernel(m, n, k), A, B, st, m * n, grain=grain)
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_long_runs_of_large_blocks(dev, threads):
    """Runs of hundreds of 64x48x56 products on 3 C blocks: each run goes to the kernel in pieces
    whose A and B blocks fit a quarter of the L2 (a few products each); device and host agree with
    the reference."""
    rng = np.random.default_rng(SEED + 12)
    m, n, k, na, nb, nc, count = 64, 48, 56, 40, 40, 3, 700
    A, B = operands(rng, m, n, k, na, nb, np.float64)
    st = make_stack(rng, m, n, k, count, na, nb, nc, sorted_c=True)
    ref = reference(A, B, st, m, n, k, nc)
    out = run_on_device(dev, acc.smm_stack_kernel(m, n, k), A, B, st, nc * m * n, grain=None)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-11 * np.abs(ref).max())
    C = np.zeros(nc * m * n)
    acc.run_stack(acc.smm_stack_kernel(m, n, k), A, B, C, st, threads=threads)
    np.testing.assert_allclose(C, ref, rtol=0, atol=1e-11 * np.abs(ref).max())


def test_count_prefix_and_empty(dev):
    rng = np.random.default_rng(SEED + 3)
    m = n = k = 3
    A, B = operands(rng, m, n, k, 10, 10, np.float64)
    st = make_stack(rng, m, n, k, 50, 10, 10, 4)
    out = run_on_device(dev, acc.smm_stack_kernel(3), A, B, st, 4 * 9, count=17)
    np.testing.assert_allclose(out, reference(A, B, st[:17], m, n, k, 4), atol=1e-13)
    out = run_on_device(dev, acc.smm_stack_kernel(3), A, B, st, 4 * 9, count=0)
    assert not out.any()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_device_threads_give_same_result(threads):
    rng = np.random.default_rng(SEED + 4)
    m, n, k, na, nb, nc, count = 9, 8, 7, 50, 50, 17, 3001
    A, B = operands(rng, m, n, k, na, nb, np.float64)
    st = make_stack(rng, m, n, k, count, na, nb, nc)
    with acc.Device(threads=threads) as d:
        out = run_on_device(d, acc.smm_stack_kernel(m, n, k), A, B, st, nc * m * n, grain=50)
    np.testing.assert_allclose(out, reference(A, B, st, m, n, k, nc), rtol=0, atol=1e-12 * 30)


def test_streams_update_shared_c_race_free():
    """Stacks on four streams hit the same C blocks at the same time."""
    rng = np.random.default_rng(SEED + 5)
    m, n, k, na, nb, nc, count, nstreams = 5, 5, 5, 64, 64, 3, 2000, 4
    A, B = operands(rng, m, n, k, na, nb, np.float64)
    stacks = [make_stack(rng, m, n, k, count, na, nb, nc) for _ in range(nstreams)]
    ref = sum(reference(A, B, st, m, n, k, nc) for st in stacks)
    with acc.Device(threads=3) as d:
        streams = [d.stream() for _ in range(nstreams)]
        A_d, B_d, C_d = d.empty(A.shape), d.empty(B.shape), d.empty(nc * m * n)
        s0 = streams[0]
        s0.copy_to_device(A_d, A)
        s0.copy_to_device(B_d, B)
        s0.fill_zero(C_d)
        ready = s0.record()
        kern = acc.smm_stack_kernel(m)
        bufs = []
        for s, st in zip(streams, stacks):
            s.wait_event(ready)
            S_d = d.empty(st.shape, st.dtype)
            bufs.append(S_d)
            s.copy_to_device(S_d, st)
            s.process_stack(kern, A_d, B_d, C_d, S_d, grain=64)
        for s in streams[1:]:
            s0.wait_event(s.record())
        out = np.empty(nc * m * n)
        s0.copy_to_host(out, C_d)
        for s in streams:
            s.synchronize()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-11)


@pytest.mark.parametrize("target", cpu.available_targets())
def test_every_isa_path(dev, target):
    rng = np.random.default_rng(SEED + 6)
    m, n, k = 11, 6, 9
    A, B = operands(rng, m, n, k, 30, 30, np.float64)
    st = make_stack(rng, m, n, k, 500, 30, 30, 7)
    kern = acc.smm_stack_kernel(m, n, k, target=target)
    out = run_on_device(dev, kern, A, B, st, 7 * m * n)
    np.testing.assert_allclose(out, reference(A, B, st, m, n, k, 7), atol=1e-12)


def test_transposed_kernel(dev):
    """Footprints follow the descriptor: A stored k x m (trans_a), checked against numpy."""
    rng = np.random.default_rng(SEED + 7)
    m, n, k, na, nb, nc = 4, 6, 3, 10, 10, 5
    A = rng.uniform(-1, 1, na * k * m)
    B = rng.uniform(-1, 1, nb * k * n)
    st = make_stack(rng, m, n, k, 200, na, nb, nc)
    kern = acc.smm_stack_kernel(m, n, k, trans_a=True)
    out = run_on_device(dev, kern, A, B, st, nc * m * n)
    # column-major k x m block (lda = k) is a row-major (m, k) array: op(A) = its rows as columns
    Ablk = A.reshape(-1, m, k)            # [blk, i, l] = A_col[l + i*k] = op(A)[i, l]
    Bblk = B.reshape(-1, n, k)            # [blk, j, l] = B[l, j]
    ref = np.zeros((nc, n, m))
    for a, b, c in st:
        ref[c // (m * n)] += (Ablk[a // (m * k)] @ Bblk[b // (k * n)].T).T
    np.testing.assert_allclose(out, ref.reshape(-1), atol=1e-12)


# ---- events and ordering -------------------------------------------------------------------

def test_events_order_streams(dev):
    s1, s2 = dev.stream(), dev.stream()
    seen = []

    def slow():
        time.sleep(0.2)
        seen.append("first")

    s1.launch_host_func(slow)
    ev = s1.record()
    s2.wait_event(ev)
    s2.launch_host_func(seen.append, "second")
    assert not ev.query() or seen == ["first"]
    s2.synchronize()
    assert seen == ["first", "second"]
    assert ev.query()
    ev.wait()


def test_unrecorded_event_is_done(dev):
    ev = dev.event()
    assert ev.query()
    ev.wait()


def test_host_functions_run_on_device_workers():
    """The workers are the device's own threads: not the caller, at most `threads` of them."""
    with acc.Device(threads=2) as d:
        s = d.stream()
        idents = []
        for _ in range(20):
            s.launch_host_func(lambda: idents.append(threading.get_ident()))
        s.synchronize()
    assert threading.get_ident() not in idents
    assert 1 <= len(set(idents)) <= 2


def test_device_workers_get_the_given_cpus():
    cpus = sorted(os.sched_getaffinity(0))
    with acc.Device(threads=2, cpus=[cpus[-1]]) as d:
        s = d.stream()
        masks = []
        for _ in range(4):
            s.launch_host_func(lambda: masks.append(os.sched_getaffinity(0)))
        s.synchronize()
    assert masks and all(mk == {cpus[-1]} for mk in masks)


def test_pending_objects_stay_alive(dev):
    """A host array handed to an async copy outlives its last Python reference."""
    s = dev.stream()
    buf = dev.empty(1 << 20)
    gate = threading.Event()
    s.launch_host_func(gate.wait)
    s.copy_to_device(buf, np.arange(1 << 20, dtype=np.float64))   # the array's only reference
    gc.collect()
    gate.set()
    out = np.empty(1 << 20)
    s.copy_to_host(out, buf)
    s.synchronize()
    np.testing.assert_array_equal(out, np.arange(1 << 20))


def test_copies_large_and_offset(dev):
    s = dev.stream()
    n = (5 << 20) // 8 + 3          # several 2 MiB copy chunks, and a remainder
    x = np.random.default_rng(SEED).random(n)
    buf = dev.empty(n + 10)
    s.fill_zero(buf)
    s.copy_to_device(buf, x, offset=10)
    out = np.empty(n + 10)
    s.copy_to_host(out, buf)
    part = np.empty(7)
    s.copy_to_host(part, buf, offset=13)
    s.synchronize()
    assert not out[:10].any()
    np.testing.assert_array_equal(out[10:], x)
    np.testing.assert_array_equal(part, x[3:10])


def test_stream_drop_with_pending_work(dev):
    s = dev.stream()
    buf = dev.empty(1000)
    s.launch_host_func(time.sleep, 0.05)
    s.copy_to_device(buf, np.ones(1000))
    del s
    gc.collect()
    dev.synchronize()


def test_stats_and_busy_intervals(dev):
    rng = np.random.default_rng(SEED)
    A, B = operands(rng, 8, 8, 8, 100, 100, np.float64)
    st = make_stack(rng, 8, 8, 8, 5000, 100, 100, 10)
    dev.reset_stats()
    t0 = acc.now()
    run_on_device(dev, acc.smm_stack_kernel(8), A, B, st, 10 * 64)
    t1 = acc.now()
    stats = dev.stats()
    assert stats["busy"] > 0 and stats["compute"] > 0 and stats["ops"] >= 6
    iv = dev.busy_intervals()
    assert iv.ndim == 2 and iv.shape[1] == 2 and iv.shape[0] >= 1
    assert (iv[:, 0] >= t0).all() and (iv[:, 1] <= t1).all() and (iv[:, 1] >= iv[:, 0]).all()
    assert abs((iv[:, 1] - iv[:, 0]).sum() - stats["busy"]) < 1e-6


def test_overlap_arithmetic():
    ov = acc.overlap([(0, 2), (5, 6), (1, 3)], [(2.5, 5.5), (10, 11)])
    assert ov["host"] == pytest.approx(4.0)       # [0,3) + [5,6)
    assert ov["device"] == pytest.approx(4.0)     # [2.5,5.5) + [10,11)
    assert ov["union"] == pytest.approx(7.0)      # [0,6) + [10,11)
    assert ov["overlap"] == pytest.approx(1.0)    # [2.5,3) + [5,5.5)
    empty = acc.overlap([], [])
    assert empty == {"host": 0.0, "device": 0.0, "union": 0.0, "overlap": 0.0}


# ---- errors surface on the host ----------------------------------------------------------

def test_bad_index_fails_on_device_and_skips_later_work(dev):
    rng = np.random.default_rng(SEED)
    m = n = k = 4
    A, B = operands(rng, m, n, k, 10, 10, np.float64)
    st = make_stack(rng, m, n, k, 100, 10, 10, 3)
    st[42, 1] = 10 * k * n - 1          # the block would run past the end of B
    s = dev.stream()
    A_d, B_d, C_d, S_d = dev.empty(A.shape), dev.empty(B.shape), dev.empty(3 * 16), dev.empty(st.shape, st.dtype)
    s.copy_to_device(A_d, A)
    s.copy_to_device(B_d, B)
    s.copy_to_device(S_d, st)
    s.fill_zero(C_d)
    s.process_stack(acc.smm_stack_kernel(4), A_d, B_d, C_d, S_d)
    after = s.record()
    out = np.full(48, 7.0)
    s.copy_to_host(out, C_d)             # skipped: it would copy a wrong result
    with pytest.raises(acc.DeviceError, match="entry 42: B index"):
        s.synchronize()
    assert (out == 7.0).all()
    with pytest.raises(acc.DeviceError, match="entry 42"):
        after.wait()                     # the event recorded after the failure carries it
    s.synchronize()                      # collected: the stream works again
    s.copy_to_host(out, C_d)
    s.synchronize()
    assert not (out == 7.0).any()


@pytest.mark.parametrize("field", [0, 2])
def test_negative_index_fails(dev, field):
    st = np.zeros((5, 3), np.int64)
    st[3, field] = -1
    buf = dev.empty(100)
    S_d = dev.empty(st.shape, st.dtype)
    s = dev.stream()
    s.copy_to_device(S_d, st)
    s.process_stack(acc.smm_stack_kernel(2), buf, dev.empty(100), dev.empty(100), S_d)
    with pytest.raises(acc.DeviceError, match="entry 3"):
        s.synchronize()


def test_exception_in_worker_surfaces_with_cause(dev):
    s = dev.stream()
    ran = []

    def boom(x):
        raise KeyError(x)

    s.launch_host_func(boom, "lost")
    s.launch_host_func(ran.append, 1)     # skipped after the failure
    with pytest.raises(acc.DeviceError, match="KeyError") as info:
        s.synchronize()
    assert isinstance(info.value.__cause__, KeyError)
    assert ran == []
    s.launch_host_func(ran.append, 2)
    s.synchronize()
    assert ran == [2]


def test_failure_propagates_through_wait_event(dev):
    s1, s2 = dev.stream(), dev.stream()
    s1.inject_fault("broken upstream")
    ev = s1.record()
    s2.wait_event(ev)
    ran = []
    s2.launch_host_func(ran.append, 1)
    with pytest.raises(acc.DeviceError, match="broken upstream"):
        s2.synchronize()
    assert ran == []
    with pytest.raises(acc.DeviceError, match="broken upstream"):
        s1.synchronize()


def test_failing_run_function_reports(dev):
    """A run function's own error (dispatched kernels report a missing kernel this way)."""
    s = dev.stream()
    s.inject_fault("kernel failed")
    with pytest.raises(acc.DeviceError, match="kernel failed"):
        s.synchronize()


# ---- argument checking on the host ----------------------------------------------------------

def test_bad_arguments(dev):
    s = dev.stream()
    kern = acc.smm_stack_kernel(3)
    a, b, c = dev.empty(90), dev.empty(90), dev.empty(90)
    st = dev.empty((10, 3), np.int32)
    with pytest.raises(TypeError, match="dtype"):
        s.process_stack(kern, dev.empty(90, np.float32), b, c, st)
    with pytest.raises(TypeError, match="int32 or int64"):
        s.process_stack(kern, a, b, c, dev.empty((10, 3), np.float64))
    with pytest.raises(ValueError, match="shape"):
        s.process_stack(kern, a, b, c, dev.empty((10, 2), np.int32))
    with pytest.raises(ValueError, match="count"):
        s.process_stack(kern, a, b, c, st, 11)
    with pytest.raises(ValueError, match="index_base"):
        s.process_stack(kern, a, b, c, st, index_base=2)
    with pytest.raises(ValueError, match="grain"):
        s.process_stack(kern, a, b, c, st, grain=0)
    with pytest.raises(ValueError, match="same buffer"):
        s.process_stack(kern, a, b, a, st)
    with pytest.raises(TypeError):
        s.process_stack(None, a, b, c, st)
    with acc.Device(threads=1) as other:
        with pytest.raises(ValueError, match="another device"):
            s.process_stack(kern, other.empty(90), b, c, st)
    with pytest.raises(ValueError, match="do not fit"):
        s.copy_to_device(a, np.zeros(91))
    with pytest.raises(TypeError, match="dtype"):
        s.copy_to_device(a, np.zeros(9, np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        s.copy_to_device(a, np.zeros(20)[::2])
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros(9)
        ro.flags.writeable = False
        s.copy_to_host(ro, a)
    with pytest.raises(ValueError, match="offset"):
        s.copy_to_device(a, np.zeros(9), offset=-1)
    with pytest.raises(TypeError, match="callable"):
        s.launch_host_func(3)
    s.synchronize()


def test_bad_device_arguments():
    with pytest.raises(ValueError):
        acc.Device(threads=0)
    with pytest.raises(TypeError):
        acc.Device(threads="2")
    with pytest.raises(ValueError, match="cpus"):
        acc.Device(threads=1, cpus=[-1])
    with pytest.raises(ValueError, match="non-negative"):
        acc.Device(threads=1).empty((-1, 3))
    with pytest.raises(TypeError):
        acc.StackKernel()
    with pytest.raises(TypeError, match="core.smm.Kernel"):
        acc.StackKernel.from_smm("kernel")
    with pytest.raises(ValueError, match="beta=1"):
        acc.StackKernel.from_smm(smm.dispatch(4, beta=0.0))


def test_closed_device():
    d = acc.Device(threads=1)
    s = d.stream()
    buf = d.empty(1)
    d.close()
    assert d.closed
    with pytest.raises(RuntimeError, match="closed"):
        s.copy_to_device(buf, np.zeros(1))
    with pytest.raises(RuntimeError, match="closed"):
        s.synchronize()
    with pytest.raises(RuntimeError, match="closed"):
        d.stream()
    d.close()   # twice is fine


# ---- synchronous host execution --------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 7, 3), (23, 23, 23)])
def test_run_stack_host(threads, m, n, k):
    rng = np.random.default_rng(SEED + 8)
    na, nb, nc, count = 21, 19, 5, 999
    A, B = operands(rng, m, n, k, na, nb, np.float64)
    st = make_stack(rng, m, n, k, count, na, nb, nc, sorted_c=False)
    C = np.zeros(nc * m * n)
    acc.run_stack(acc.smm_stack_kernel(m, n, k), A, B, C, st, threads=threads, grain=100)
    np.testing.assert_allclose(C, reference(A, B, st, m, n, k, nc), atol=1e-11)
    C2 = np.zeros_like(C)   # the tuple form, as three strided views
    acc.run_stack(acc.smm_stack_kernel(m, n, k), A, B, C2, (st[:, 0], st[:, 1], st[:, 2]), threads=threads)
    np.testing.assert_allclose(C2, C, atol=1e-11)


# Indices at the ends of the int64 range: offsets must be compared before anything is added to
# them, or base/footprint arithmetic wraps and a block lands before the buffer.
EXTREME_INDICES = [2**63 - 1, 2**63 - 2, 2**63 - 4, -2**63, -2**63 + 1, 2**62, -1]


@pytest.mark.parametrize("base", [0, 1])
@pytest.mark.parametrize("field", [0, 1, 2])
@pytest.mark.parametrize("value", EXTREME_INDICES)
def test_run_stack_extreme_index_never_touches_outside(field, value, base):
    kern = acc.smm_stack_kernel(2)
    guard = 7.0
    bufs = [np.full(24, guard) for _ in range(3)]
    a, b, c = (x[8:16] for x in bufs)          # 8 elements each, guards on both sides
    st = np.full((2, 3), base, np.int64)
    st[1, field] = value
    with pytest.raises(ValueError, match=f"entry 1: {'ABC'[field]} index {value} "):
        acc.run_stack(kern, a, b, c, st, index_base=base)
    for x in bufs:
        assert (x[:8] == guard).all() and (x[16:] == guard).all()


@pytest.mark.parametrize("value", EXTREME_INDICES)
def test_process_stack_extreme_index_fails(dev, value):
    s = dev.stream()
    a, b, c = dev.empty(8), dev.empty(8), dev.empty(8)
    st = np.zeros((2, 3), np.int64)
    st[1, 2] = value
    S_d = dev.empty(st.shape, st.dtype)
    s.copy_to_device(S_d, st)
    s.process_stack(acc.smm_stack_kernel(2), a, b, c, S_d)
    with pytest.raises(acc.DeviceError, match=f"entry 1: C index {value} "):
        s.synchronize()


@pytest.mark.parametrize("dtype", [object, np.dtype([("x", np.float64), ("o", object)])])
def test_device_buffer_refuses_python_objects(dev, dtype):
    with pytest.raises(TypeError, match="dtype must hold plain data"):
        dev.empty(4, dtype=dtype)


def test_run_stack_host_errors():
    kern = acc.smm_stack_kernel(2)
    A, B, C = np.zeros(40), np.zeros(40), np.zeros(40)
    st = np.zeros((3, 3), np.int32)
    st[1, 2] = 39
    with pytest.raises(ValueError, match="entry 1: C index 39"):
        acc.run_stack(kern, A, B, C, st)
    with pytest.raises(ValueError, match="overlaps"):
        acc.run_stack(kern, A, B, A, np.zeros((3, 3), np.int32))
    with pytest.raises(TypeError, match="dtype"):
        acc.run_stack(kern, A.astype(np.float32), B, C, np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="shape"):
        acc.run_stack(kern, A, B, C, np.zeros((3, 4), np.int32))
    with pytest.raises(TypeError, match="int32 or int64"):
        acc.run_stack(kern, A, B, C, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="flat"):
        acc.run_stack(kern, A.reshape(4, 10), B, C, np.zeros((3, 3), np.int32))
