"""Bad input to core.smm gives a ValueError or TypeError that names the argument, never a crash:
wrong dtypes, mismatched shapes, leading dimensions below the rows, zero/negative/huge sizes,
index arrays out of range or of the wrong dtype/length, read-only or misaligned C, A or B
overlapping C, a C batch stride of 0, C stacks whose matrices overlap. The cases that would touch
memory out of bounds if a check were missing also run in a child process, so that a crash is a
test failure with the case's name rather than the end of the test run."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core import cpu
from core import smm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE = 2**31  # one past the largest size the descriptor holds (int32)


def fz(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype, order="F")


def stack(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


def misaligned(shape, dtype=np.float64, order="F"):
    """A writable array of `shape` whose data pointer is not a multiple of the element size."""
    n = int(np.prod(shape))
    raw = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)
    arr = raw[1:].view(dtype)
    return arr.reshape(shape[::-1]).T if order == "F" else arr.reshape(shape)


def readonly(x):
    x.flags.writeable = False
    return x


def overlapping_c_stack():
    """A writable (3, 4, 5) stack whose matrices share memory (batch stride 1 element)."""
    buf = np.zeros(100)
    return np.lib.stride_tricks.as_strided(buf, (3, 4, 5), (8, 40, 8))


def zero_stride_c_stack():
    buf = np.zeros((4, 5))
    return np.lib.stride_tricks.as_strided(buf, (3, 4, 5), (0, 40, 8))


def flat(n=100, dtype=np.float64):
    return np.zeros(n, dtype)


def i32(*v):
    return np.array(v, np.int32)


def i64(*v):
    return np.array(v, np.int64)


K456 = None


def kern456():
    global K456
    if K456 is None:
        K456 = smm.dispatch(4, 5, 6)
    return K456


# (id, callable, exception type, regex the message must match: it names the argument)
CASES = [
    # ---- dispatch: sizes, leading dimensions, dtype, flags
    ("dispatch m=0", lambda: smm.dispatch(0, 1, 1), ValueError, r"\bm\b"),
    ("dispatch n=0", lambda: smm.dispatch(1, 0, 1), ValueError, r"\bn\b"),
    ("dispatch k=0", lambda: smm.dispatch(1, 1, 0), ValueError, r"\bk\b"),
    ("dispatch m<0", lambda: smm.dispatch(-3, 1, 1), ValueError, r"\bm\b"),
    ("dispatch k<0", lambda: smm.dispatch(1, 1, -1), ValueError, r"\bk\b"),
    ("dispatch huge m", lambda: smm.dispatch(HUGE, 1, 1), ValueError, r"\bm\b"),
    ("dispatch huge n", lambda: smm.dispatch(1, 2**40, 1), ValueError, r"\bn\b"),
    ("dispatch huge k", lambda: smm.dispatch(1, 1, 2**64), ValueError, r"\bk\b"),
    ("dispatch huge lda", lambda: smm.dispatch(4, lda=HUGE), ValueError, r"\blda\b"),
    ("dispatch m float", lambda: smm.dispatch(4.0, 4, 4), TypeError, r"\bm\b"),
    ("dispatch m str", lambda: smm.dispatch("4"), TypeError, r"\bm\b"),
    ("dispatch lda<m", lambda: smm.dispatch(5, 5, 5, lda=4), ValueError, r"\blda\b"),
    ("dispatch lda<k trans_a", lambda: smm.dispatch(5, 5, 6, lda=5, trans_a=True), ValueError, r"\blda\b"),
    ("dispatch ldb<k", lambda: smm.dispatch(5, 5, 6, ldb=5), ValueError, r"\bldb\b"),
    ("dispatch ldb<n trans_b", lambda: smm.dispatch(5, 6, 5, ldb=5, trans_b=True), ValueError, r"\bldb\b"),
    ("dispatch ldc<m", lambda: smm.dispatch(5, 5, 5, ldc=4), ValueError, r"\bldc\b"),
    ("dispatch ldc=0", lambda: smm.dispatch(5, ldc=0), ValueError, r"\bldc\b"),
    ("dispatch dtype int32", lambda: smm.dispatch(4, dtype=np.int32), TypeError, r"\bdtype\b"),
    ("dispatch dtype complex", lambda: smm.dispatch(4, dtype=np.complex128), TypeError, r"\bdtype\b"),
    ("dispatch dtype float16", lambda: smm.dispatch(4, dtype=np.float16), TypeError, r"\bdtype\b"),
    ("dispatch dtype junk", lambda: smm.dispatch(4, dtype="nonsense"), TypeError, r"\bdtype\b"),
    ("dispatch alpha str", lambda: smm.dispatch(4, alpha="2"), TypeError, r"\balpha\b"),
    ("dispatch beta complex", lambda: smm.dispatch(4, beta=1j), TypeError, r"\bbeta\b"),
    ("dispatch trans_a=2", lambda: smm.dispatch(4, trans_a=2), TypeError, r"\btrans_a\b"),
    ("dispatch trans_b str", lambda: smm.dispatch(4, trans_b="T"), TypeError, r"\btrans_b\b"),
    ("dispatch prefetch", lambda: smm.dispatch(4, prefetch="sometimes"), ValueError, r"\bprefetch\b"),
    ("dispatch target", lambda: smm.dispatch(4, target="sse9"), ValueError, r"\btarget\b"),
    ("select_tile m=0", lambda: smm.select_tile(0, 1, 1), ValueError, r"\bm\b"),
    ("select_tile dtype", lambda: smm.select_tile(4, 4, 4, dtype=np.int8), TypeError, r"\bdtype\b"),
    # ---- Kernel.__call__
    ("kernel a dtype", lambda: kern456()(fz(4, 6, dtype=np.float32), fz(6, 5), fz(4, 5)), TypeError, r"\ba\b"),
    ("kernel c dtype", lambda: kern456()(fz(4, 6), fz(6, 5), fz(4, 5, dtype=np.int64)), TypeError, r"\bc\b"),
    ("kernel a shape", lambda: kern456()(fz(4, 5), fz(6, 5), fz(4, 5)), ValueError, r"\ba\b"),
    ("kernel b shape", lambda: kern456()(fz(4, 6), fz(5, 6), fz(4, 5)), ValueError, r"\bb\b"),
    ("kernel c shape", lambda: kern456()(fz(4, 6), fz(6, 5), fz(5, 5)), ValueError, r"\bc\b"),
    ("kernel a C order", lambda: kern456()(np.zeros((4, 6)), fz(6, 5), fz(4, 5)), ValueError, r"\ba\b"),
    ("kernel c padded ld", lambda: kern456()(fz(4, 6), fz(6, 5), fz(6, 5)[:4]), ValueError, r"\bc\b"),
    ("kernel a list", lambda: kern456()([[0.0] * 6] * 4, fz(6, 5), fz(4, 5)), TypeError, r"\ba\b"),
    ("kernel c None", lambda: kern456()(fz(4, 6), fz(6, 5), None), TypeError, r"\bc\b"),
    ("kernel flat a short", lambda: kern456()(flat(23), fz(6, 5), fz(4, 5)), ValueError, r"\ba\b"),
    ("kernel flat c short", lambda: kern456()(fz(4, 6), fz(6, 5), flat(19)), ValueError, r"\bc\b"),
    ("kernel flat b strided", lambda: kern456()(fz(4, 6), flat(60)[::2], fz(4, 5)), ValueError, r"\bb\b"),
    ("kernel 3-D", lambda: kern456()(fz(4, 6, 1), fz(6, 5), fz(4, 5)), ValueError, r"\ba\b"),
    ("kernel c read-only", lambda: kern456()(fz(4, 6), fz(6, 5), readonly(fz(4, 5))), ValueError, r"\bc\b"),
    ("kernel c misaligned", lambda: kern456()(fz(4, 6), fz(6, 5), misaligned((4, 5))), ValueError, r"\bc\b"),
    ("kernel a misaligned", lambda: kern456()(misaligned((4, 6)), fz(6, 5), fz(4, 5)), ValueError, r"\ba\b"),
    ("kernel a overlaps c", lambda: (lambda buf: kern456()(buf[:24], fz(6, 5), buf[10:30]))(flat(100)),
     ValueError, r"\ba\b.*overlap|overlap.*\ba\b"),
    ("kernel b is c", lambda: (lambda buf: smm.dispatch(4)(fz(4, 4), buf, buf))(fz(4, 4)),
     ValueError, r"\bb\b.*overlap|overlap.*\bb\b"),
    ("Kernel()", lambda: smm.Kernel(), TypeError, r"dispatch"),
    # ---- gemm
    ("gemm a dtype", lambda: smm.gemm(fz(4, 6, dtype=np.float32), fz(6, 5), fz(4, 5)), TypeError, r"\ba\b"),
    ("gemm b dtype", lambda: smm.gemm(fz(4, 6), fz(6, 5, dtype=np.int64), fz(4, 5)), TypeError, r"\bb\b"),
    ("gemm c dtype", lambda: smm.gemm(fz(4, 6), fz(6, 5), fz(4, 5, dtype=np.complex128)), TypeError, r"\bc\b"),
    ("gemm c big-endian", lambda: smm.gemm(fz(4, 6), fz(6, 5), fz(4, 5).astype(">f8")), TypeError, r"\bc\b"),
    ("gemm all big-endian", lambda: smm.gemm(*(fz(4, 4).astype(">f8") for _ in range(3))), TypeError, r"\bc\b"),
    ("batch all big-endian", lambda: smm.gemm_batch(*(stack(2, 4, 4).astype(">f8") for _ in range(3))),
     TypeError, r"\bc\b"),
    ("index all big-endian", lambda: smm.gemm_batch(*(flat().astype(">f8") for _ in range(3)), m=4, batch=2),
     TypeError, r"\bc\b"),
    ("gemm a list", lambda: smm.gemm([[1.0]], fz(1, 1), fz(1, 1)), TypeError, r"\ba\b"),
    ("gemm c list", lambda: smm.gemm(fz(1, 1), fz(1, 1), [[1.0]]), TypeError, r"\bc\b"),
    ("gemm a 1-D", lambda: smm.gemm(np.zeros(4), fz(4, 1), fz(1, 1)), ValueError, r"\ba\b"),
    ("gemm c 3-D", lambda: smm.gemm(fz(1, 1), fz(1, 1), fz(1, 1, 1)), ValueError, r"\bc\b"),
    ("gemm k mismatch", lambda: smm.gemm(fz(4, 6), fz(5, 5), fz(4, 5)), ValueError, r"\ba\b.*\bb\b"),
    ("gemm k mismatch trans", lambda: smm.gemm(fz(4, 6), fz(6, 5), fz(4, 5), trans_a=True), ValueError, r"\ba\b"),
    ("gemm c shape", lambda: smm.gemm(fz(4, 6), fz(6, 5), fz(5, 4)), ValueError, r"\bc\b"),
    ("gemm c read-only", lambda: smm.gemm(fz(4, 6), fz(6, 5), readonly(fz(4, 5))), ValueError, r"\bc\b"),
    ("gemm c broadcast", lambda: smm.gemm(fz(4, 6), fz(6, 5), np.broadcast_to(fz(1, 5), (4, 5))),
     ValueError, r"\bc\b"),
    ("gemm c misaligned", lambda: smm.gemm(fz(4, 6), fz(6, 5), misaligned((4, 5), order="C")), ValueError, r"\bc\b"),
    ("gemm b misaligned", lambda: smm.gemm(fz(4, 6), misaligned((6, 5)), fz(4, 5)), ValueError, r"\bb\b"),
    ("gemm a overlaps c", lambda: (lambda buf: smm.gemm(buf[:16].reshape(4, 4), fz(4, 4), buf[8:24].reshape(4, 4)))(
        flat(40)), ValueError, r"\ba\b"),
    ("gemm b overlaps c (view)", lambda: (lambda buf: smm.gemm(fz(4, 4), buf[:, :4], buf[:, 2:6]))(
        np.zeros((4, 8))), ValueError, r"\bb\b"),
    ("gemm alpha str", lambda: smm.gemm(fz(4, 6), fz(6, 5), fz(4, 5), "1"), TypeError, r"\balpha\b"),
    ("gemm beta None", lambda: smm.gemm(fz(4, 6), fz(6, 5), fz(4, 5), 1.0, None), TypeError, r"\bbeta\b"),
    ("gemm trans_a str", lambda: smm.gemm(fz(4, 6), fz(6, 5), fz(4, 5), trans_a="yes"), TypeError, r"\btrans_a\b"),
    # ---- gemm_batch, strided form
    ("batch a list", lambda: smm.gemm_batch([[[0.0]]], stack(1, 1, 1), stack(1, 1, 1)), TypeError, r"\ba\b"),
    ("batch b list", lambda: smm.gemm_batch(stack(1, 1, 1), [[[0.0]]], stack(1, 1, 1)), TypeError, r"\bb\b"),
    ("batch c list", lambda: smm.gemm_batch(stack(1, 1, 1), stack(1, 1, 1), [[[0.0]]]), TypeError, r"\bc\b"),
    ("batch a dtype", lambda: smm.gemm_batch(stack(3, 4, 6, dtype=np.float32), stack(3, 6, 5), stack(3, 4, 5)),
     TypeError, r"\ba\b"),
    ("batch c dtype", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 4, 5, dtype=np.int32)),
     TypeError, r"\bc\b"),
    ("batch count mismatch", lambda: smm.gemm_batch(stack(3, 4, 6), stack(2, 6, 5), stack(3, 4, 5)),
     ValueError, r"\bb\b"),
    ("batch k mismatch", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 5, 5), stack(3, 4, 5)),
     ValueError, r"\ba\b.*\bb\b"),
    ("batch c shape", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 4, 4)), ValueError, r"\bc\b"),
    ("batch c 2-D", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(4, 5)), ValueError, r"\bc\b"),
    ("batch a 4-D", lambda: smm.gemm_batch(stack(3, 4, 6, 1), stack(3, 6, 5), stack(3, 4, 5)), ValueError, r"\ba\b"),
    ("batch c stride 0", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), zero_stride_c_stack()),
     ValueError, r"\bc\b"),
    ("batch c broadcast", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5),
                                                 np.broadcast_to(stack(4, 5), (3, 4, 5))), ValueError, r"\bc\b"),
    ("batch c overlapping stack", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), overlapping_c_stack()),
     ValueError, r"\bc\b"),
    # k = 0 only scales C, but scaling an overlapping stack would scale shared elements twice
    ("batch c overlapping stack, k=0", lambda: smm.gemm_batch(stack(3, 4, 0), stack(3, 0, 5), overlapping_c_stack(),
                                                              beta=0.5), ValueError, r"\bc\b"),
    ("batch c read-only", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), readonly(stack(3, 4, 5))),
     ValueError, r"\bc\b"),
    ("batch c misaligned", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), misaligned((3, 4, 5), order="C")),
     ValueError, r"\bc\b"),
    ("batch a overlaps c", lambda: (lambda buf: smm.gemm_batch(buf[:72].reshape(3, 4, 6), stack(3, 6, 5),
                                                               buf[60:120].reshape(3, 4, 5)))(flat(200)),
     ValueError, r"\ba\b"),
    ("batch a negative stride", lambda: smm.gemm_batch(stack(3, 4, 6)[::-1], stack(3, 6, 5), stack(3, 4, 5)),
     ValueError, r"\ba\b"),
    ("batch c no unit stride", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 8, 10)[:, ::2, ::2]),
     ValueError, r"\bc\b"),
    ("batch threads 0", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 4, 5), threads=0),
     ValueError, r"\bthreads\b"),
    ("batch threads float", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 4, 5), threads=2.0),
     TypeError, r"\bthreads\b"),
    ("batch threads numpy bool", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 4, 5),
                                                       threads=np.bool_(True)), TypeError, r"\bthreads\b"),
    ("batch threads numpy huge", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 4, 5),
                                                       threads=np.int64(2**40)), ValueError, r"\bthreads\b"),
    ("batch m with strided", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 4, 5), m=4),
     ValueError, r"\bm\b"),
    ("batch index_base 2", lambda: smm.gemm_batch(stack(3, 4, 6), stack(3, 6, 5), stack(3, 4, 5), index_base=2),
     ValueError, r"\bindex_base\b"),
    # ---- gemm_batch, index form
    ("index no shape", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0)), ValueError, r"\bm\b"),
    ("index no index no batch", lambda: smm.gemm_batch(flat(), flat(), flat(), m=4), ValueError, r"batch|index"),
    ("index m=0", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0), m=0), ValueError, r"\bm\b"),
    ("index k<0", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0), m=4, k=-2), ValueError, r"\bk\b"),
    ("index huge m", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0), m=HUGE), ValueError, r"\bm\b"),
    ("index huge block", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0), m=2**31 - 1, n=2**31 - 1,
                                                k=1), ValueError, r"_index|\b[abc]\b"),
    ("index batch<0", lambda: smm.gemm_batch(flat(), flat(), flat(), m=4, batch=-1), ValueError, r"\bbatch\b"),
    ("index batch mismatch", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0, 0), m=4, batch=3),
     ValueError, r"\bbatch\b"),
    ("index lda<m", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0), m=4, lda=3), ValueError, r"\blda\b"),
    ("index ldb<k", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0), m=4, ldb=3), ValueError, r"\bldb\b"),
    ("index ldc<m", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0), m=4, ldc=3), ValueError, r"\bldc\b"),
    ("index c past end", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0, 85), m=4),
     ValueError, r"\bc_index\b"),
    ("index a past end", lambda: smm.gemm_batch(flat(), flat(), flat(), a_index=i64(99), m=4),
     ValueError, r"\ba_index\b"),
    ("index b past end ld", lambda: smm.gemm_batch(flat(), flat(), flat(), b_index=i32(0), m=4, ldb=40),
     ValueError, r"\bb_index\b"),
    ("index c negative", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(-1), m=4),
     ValueError, r"\bc_index\b"),
    ("index base 1 zero", lambda: smm.gemm_batch(flat(), flat(), flat(), a_index=i32(0), m=4, index_base=1),
     ValueError, r"\ba_index\b"),
    ("index base 1 past end", lambda: smm.gemm_batch(flat(16), flat(), flat(), a_index=i32(2), m=4, index_base=1),
     ValueError, r"\ba_index\b"),
    ("index int64 huge", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i64(2**62), m=4),
     ValueError, r"\bc_index\b"),
    ("index int64 most negative", lambda: smm.gemm_batch(flat(), flat(), flat(), b_index=i64(-2**63), m=4),
     ValueError, r"\bb_index\b"),
    ("index int64 wraps", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i64(2**63 - 1), m=4),
     ValueError, r"\bc_index\b"),
    ("index float dtype", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=np.zeros(1), m=4),
     TypeError, r"\bc_index\b"),
    ("index int16", lambda: smm.gemm_batch(flat(), flat(), flat(), a_index=np.zeros(1, np.int16), m=4),
     TypeError, r"\ba_index\b"),
    ("index uint64", lambda: smm.gemm_batch(flat(), flat(), flat(), b_index=np.zeros(1, np.uint64), m=4),
     TypeError, r"\bb_index\b"),
    ("index big-endian", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=np.zeros(1, ">i4"), m=4),
     TypeError, r"\bc_index\b"),
    ("index list", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=[0], m=4), TypeError, r"\bc_index\b"),
    ("index wrong length", lambda: smm.gemm_batch(flat(), flat(), flat(), a_index=i32(0, 0), c_index=i32(0), m=4),
     ValueError, r"\bc_index\b"),
    ("index 2-D", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0, 0).reshape(1, 2), m=4),
     ValueError, r"\bc_index\b"),
    ("index 0-D", lambda: smm.gemm_batch(flat(), flat(), flat(), b_index=np.array(0, np.int32), m=4),
     ValueError, r"\bb_index must be 1-D"),
    ("index 0-D after 1-D", lambda: smm.gemm_batch(flat(), flat(), flat(), a_index=i32(0), c_index=np.array(0, np.int32),
                                                    m=4), ValueError, r"\bc_index must be 1-D"),
    ("index strided", lambda: smm.gemm_batch(flat(), flat(), flat(), c_index=i32(0, 0, 0, 0)[::2], m=4),
     ValueError, r"\bc_index\b"),
    ("index a 2-D", lambda: smm.gemm_batch(stack(10, 10), flat(), flat(), c_index=i32(0), m=4), ValueError, r"\ba\b"),
    ("index c 2-D", lambda: smm.gemm_batch(flat(), flat(), stack(10, 10), c_index=i32(0), m=4), ValueError, r"\bc\b"),
    ("index a dtype", lambda: smm.gemm_batch(flat(dtype=np.float32), flat(), flat(), c_index=i32(0), m=4),
     TypeError, r"\ba\b"),
    ("index c read-only", lambda: smm.gemm_batch(flat(), flat(), readonly(flat()), c_index=i32(0), m=4),
     ValueError, r"\bc\b"),
    ("index c misaligned", lambda: smm.gemm_batch(flat(), flat(), misaligned((100,)), c_index=i32(0), m=4),
     ValueError, r"\bc\b"),
    ("index a overlaps c", lambda: (lambda buf: smm.gemm_batch(buf[:50], flat(), buf[40:], c_index=i32(0), m=4))(
        flat(200)), ValueError, r"\ba\b"),
    ("index b is c", lambda: (lambda buf: smm.gemm_batch(flat(), buf, buf, c_index=i32(0), m=4))(flat()),
     ValueError, r"\bb\b"),
    ("index partially overlapping C blocks", lambda: smm.gemm_batch(flat(), flat(), flat(),
                                                                    c_index=i64(*([0, 1] * 40)), m=4, threads=2),
     ValueError, r"\bc_index\b"),
]


@pytest.mark.parametrize("call,exc,pattern", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_raises_naming_the_argument(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_partially_overlapping_c_blocks_rejected_for_any_batch_size():
    """C blocks that share some but not all elements, with 2 threads asked for: rejected for small
    batches too (which the library runs on one thread), so that whether a call is valid does not
    depend on the batch size."""
    for nb in (2, 10, 80):
        with pytest.raises(ValueError, match=r"\bc_index\b"):
            smm.gemm_batch(flat(), flat(), flat(), c_index=i64(*([0, 3] * (nb // 2))), m=4, threads=2)


def test_errors_leave_c_untouched():
    """A rejected call writes nothing."""
    c = np.arange(100.0)
    before = c.copy()
    with pytest.raises(ValueError):
        smm.gemm_batch(flat(), flat(), c, 1.0, 0.0, c_index=i32(0, 4, 85), m=4)
    with pytest.raises(ValueError):
        smm.gemm_batch(flat(), flat(), c, 1.0, 0.0, c_index=i32(0, 4), a_index=i32(0, 99), m=4)
    assert np.array_equal(c, before)


def test_tight_bounds_are_accepted():
    """The last valid offsets (block ending exactly at the buffer's end) and ld == rows are fine."""
    m, n, k = 4, 3, 5
    a = np.ones(m * k + 7)
    b = np.ones(k * n + 2)
    c = np.zeros(m * n + 1)
    smm.gemm_batch(a, b, c, 1.0, 0.0, a_index=i32(7), b_index=i32(2), c_index=i32(1), m=m, n=n, k=k)
    assert np.all(c[1:] == k) and c[0] == 0
    smm.gemm_batch(a, b, c, 1.0, 0.0, a_index=i32(8), b_index=i32(3), c_index=i32(2), m=m, n=n, k=k, index_base=1)
    assert np.all(c[1:] == k)


# The calls above that would read or write out of bounds if a check were missing, in a child:
# a crash there fails this test with the name of the last case instead of killing the run.
CRASHY = [c[0] for c in CASES if any(w in c[0] for w in ("past end", "huge", "negative", "overlap", "stride 0",
                                                          "short", "most negative", "wraps", "base 1",
                                                          "misaligned", "no unit stride"))]

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import test_smm_errors as t
    cases = {{c[0]: c for c in t.CASES}}
    for name in {names!r}:
        print(name, flush=True)
        _, call, exc, pattern = cases[name]
        try:
            call()
        except exc:
            continue
        except Exception as e:
            print("WRONG EXCEPTION", type(e).__name__, e, flush=True)
            sys.exit(3)
        print("NO EXCEPTION", flush=True)
        sys.exit(4)
    print("OK", flush=True)
""")


def test_crash_prone_cases_in_a_child():
    assert len(CRASHY) >= 20
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    code = CHILD.format(tests=os.path.join(ROOT, "tests"), names=CRASHY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines and lines[-1] == "OK", (
        f"child exited with {proc.returncode}; last lines: {lines[-3:]}\n{proc.stderr[-2000:]}")


@pytest.mark.skipif("avx512" in cpu.available_targets(), reason="this CPU runs every path")
def test_target_the_cpu_lacks_is_refused():
    missing = [t for t in cpu.ISA_NAMES if t not in cpu.available_targets()]
    with pytest.raises(ValueError, match=r"\btarget\b"):
        smm.dispatch(4, target=missing[-1])


@pytest.mark.parametrize("threads", [np.int64(2), np.int32(1), np.uint8(2)])
def test_numpy_integer_thread_counts_are_accepted(threads):
    """A thread count taken from a numpy array of settings is a count like any int."""
    rng = np.random.default_rng(7)
    a, b, c = rng.random((3, 4, 6)), rng.random((3, 6, 5)), rng.random((3, 4, 5))
    want = c + np.matmul(a, b)
    smm.gemm_batch(a, b, c, threads=threads)
    np.testing.assert_allclose(c, want, rtol=1e-12)
    from core import transpose as tr
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(tr.transpose(x, threads=threads), x.T)
