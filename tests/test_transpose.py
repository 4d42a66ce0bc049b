"""core.transpose against numpy: every ISA path this CPU runs, both float types (and the complex and
integer ones the kernels move as raw bits), 1 and 2 threads, awkward shapes and leading dimensions,
streaming stores on and off, and clear errors for bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import cpu, tuned
from core import transpose as tr

TARGETS = [pytest.param(t, marks=pytest.mark.skipif(t not in cpu.available_targets(),
                                                    reason=f"this CPU does not run the {t} path"))
           for t in cpu.ISA_NAMES]
RUNNABLE = list(cpu.available_targets())
FLOATS = [np.float64, np.float32]
ALL_TYPES = [np.float64, np.float32, np.complex128, np.complex64, np.int32, np.int64]
SHAPES = [(1, 1), (1, 37), (37, 1), (2, 3), (7, 5), (8, 8), (13, 17), (16, 16), (17, 16), (31, 7),
          (97, 101), (64, 200), (127, 129)]
# Large enough that the library gives them 2 threads and several tiles (asserted below).
PARALLEL_SHAPES = [(257, 301), (509, 263), (1000, 67)]


@pytest.fixture
def rng():
    return np.random.default_rng(20250607)


@pytest.fixture(autouse=True)
def _no_tile_env(monkeypatch, tmp_path):
    """Tests see built-in defaults unless they set TRANS_M/TRANS_N or a tuned file themselves."""
    monkeypatch.delenv("TRANS_M", raising=False)
    monkeypatch.delenv("TRANS_N", raising=False)
    monkeypatch.setenv("SMM_TUNED_FILE", str(tmp_path / "no-such-tuned.json"))
    tuned.refresh()
    yield
    tuned.refresh()


def _random(shape, dtype, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _flat_reference(a, m, n, ldi, ldo, out):
    """out[i*ldo + j] = a[j*ldi + i] with numpy views; entries outside the matrix stay as in out."""
    ref = out.copy()
    ref[:m * ldo].reshape(m, ldo)[:, :n] = a[:n * ldi].reshape(n, ldi)[:, :m].T
    return ref


# ------------------------------------------------------------------------------- out-of-place

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", ALL_TYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_transpose_2d_matches_numpy(target, dtype, shape, rng):
    a = _random(shape, dtype, rng)
    for order in "CF":
        src = np.asarray(a, order=order)
        out = tr.transpose(src, target=target, threads=1)
        assert out.dtype == a.dtype and out.shape == a.T.shape
        np.testing.assert_array_equal(out, a.T)
        assert out.flags.c_contiguous if order == "C" else out.flags.f_contiguous


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", PARALLEL_SHAPES)
@pytest.mark.parametrize("streaming", [False, True])
def test_two_threads_equal_one_thread_and_numpy(target, dtype, shape, streaming, rng):
    assert tr.plan(*shape, dtype=dtype, threads=2, target=target)["threads"] == 2
    a = _random(shape, dtype, rng)
    one = tr.transpose(a, threads=1, target=target, streaming=streaming)
    two = tr.transpose(a, threads=2, target=target, streaming=streaming)
    np.testing.assert_array_equal(one, a.T)
    np.testing.assert_array_equal(two, one)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("m, n, ldi, ldo", [(1, 9, 1, 9), (9, 1, 12, 1), (13, 17, 20, 19), (64, 64, 64, 64),
                                            (61, 67, 61, 72), (100, 37, 128, 40), (300, 257, 311, 264)])
@pytest.mark.parametrize("threads", [1, 2])
def test_flat_buffers_with_leading_dimensions(target, dtype, m, n, ldi, ldo, threads, rng):
    a = _random(ldi * n, dtype, rng)
    sentinel = _random(ldo * m + 5, dtype, rng)
    for streaming in (False, True):
        out = sentinel.copy()
        res = tr.transpose(a, out, m=m, n=n, ldi=ldi, ldo=ldo, threads=threads, target=target,
                           streaming=streaming)
        assert res is out
        np.testing.assert_array_equal(out, _flat_reference(a, m, n, ldi, ldo, sentinel))  # padding untouched


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("offset", [0, 1, 3, 7])
def test_streaming_with_misaligned_output_and_line_multiple_ld(target, offset, rng):
    # ldo * 8 bytes is a multiple of 64: the peel makes every later tile stream; offset moves the
    # output off the 64-byte grid by whole elements.
    m, n, ldo = 203, 131, 136
    a = _random((n, m), np.float64, rng).reshape(-1)
    base = np.zeros(ldo * m + 16)
    out = base[offset:offset + ldo * m]
    for tile_m in (None, 16):  # one band (threads share strips), or many (threads share bands)
        out[:] = 0
        tr.transpose(a, out, m=m, n=n, ldo=ldo, threads=2, target=target, streaming=True, tile_m=tile_m)
        np.testing.assert_array_equal(out, _flat_reference(a, m, n, m, ldo, np.zeros(ldo * m)))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("in_offset, out_offset", [(0, 0), (1, 0), (0, 3), (5, 7), (7, 1), (2, 2)])
@pytest.mark.parametrize("unit", [64, 32])
@pytest.mark.parametrize("threads", [1, 2])
def test_row_and_column_peels_for_aligned_blocks(target, dtype, in_offset, out_offset, unit, threads, rng):
    # Leading dimensions of whole 64-byte lines (unit 64), or of an odd number of 32-byte halves
    # (unit 32, as 700^2 f64), with inputs and outputs off that grid: the driver transposes the first
    # rows and columns apart up to a `unit` boundary; every offset must give the same result, out of
    # place and in place.
    es = np.dtype(dtype).itemsize
    per = unit // es
    m, n = 5 * per + 3, 3 * per + 5
    ldi, ldo = (6 * per, 5 * per) if unit == 64 else (13 * per, 9 * per)
    assert (ldi * es) % 64 == (ldo * es) % 64 == unit % 64
    base_in = _random(ldi * n + 8, dtype, rng)
    a = base_in[in_offset:in_offset + ldi * n]
    base_out = np.zeros(ldo * m + 8, dtype)
    out = base_out[out_offset:out_offset + ldo * m]
    for streaming in (False, True):
        out[:] = 0
        tr.transpose(a, out, m=m, n=n, ldi=ldi, ldo=ldo, threads=threads, target=target, streaming=streaming)
        np.testing.assert_array_equal(out, _flat_reference(a, m, n, ldi, ldo, np.zeros(ldo * m, dtype)))
    # In place: a square matrix with rows ldi apart, off the grid by in_offset.
    view = _random(ldi * ldi + 8, dtype, rng)[in_offset:in_offset + ldi * ldi]
    nsq = ldi - 3
    want = view.copy().reshape(ldi, ldi)
    want[:nsq, :nsq] = want[:nsq, :nsq].T.copy()
    mat = np.lib.stride_tricks.as_strided(view, shape=(nsq, nsq), strides=(ldi * es, es))
    tr.transpose_inplace(mat, threads=threads, target=target)
    np.testing.assert_array_equal(view.reshape(ldi, ldi), want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("offset", [0, 2, 5])
@pytest.mark.parametrize("pad", [0, 1])
@pytest.mark.parametrize("threads", [1, 2])
def test_border_in_several_chunks(dtype, offset, pad, threads, rng):
    # Matrices wide and tall enough for the border (peeled first rows and columns, and the rows and
    # columns past the last register block) to run in several chunks, over threads: contiguous
    # (pad 0, where a column's last rows share a line with the next column's first ones) or padded.
    es = np.dtype(dtype).itemsize
    per = 64 // es
    m, n = 37 * per, 41 * per  # whole lines: the peel is in play for every offset but 0
    ldi, ldo = m + pad * per, n + pad * per
    m, n = m - 3 if pad else m, n - 5 if pad else n  # padded: also rows and columns past the last block
    base_in = _random(ldi * n + 8, dtype, rng)
    a = base_in[offset:offset + ldi * n]
    base_out = np.full(ldo * m + 8, -7, dtype)
    out = base_out[offset:offset + ldo * m]
    for streaming in (False, True):
        out[:] = -7
        tr.transpose(a, out, m=m, n=n, ldi=ldi, ldo=ldo, threads=threads, streaming=streaming)
        want = _flat_reference(a, m, n, ldi, ldo, np.full(ldo * m, -7, dtype))
        np.testing.assert_array_equal(out, want)
    assert np.all(base_out[:offset] == -7) and np.all(base_out[offset + ldo * m:] == -7)


@pytest.fixture
def prefetch_from(request):
    """Sets the input size from which streaming transposes prefetch (restored afterwards)."""
    old = tr._prefetch_bytes()
    yield tr._prefetch_bytes
    tr._prefetch_bytes(old)


def test_prefetch_only_when_streaming_an_input_beyond_the_threshold(prefetch_from):
    prefetch_from(1 << 20)
    streams = tr.plan(512, 512, streaming=True)["streaming"]  # False on the generic path only
    assert tr.plan(512, 512, streaming=True)["prefetch"] == streams       # 2 MiB input
    assert not tr.plan(256, 256, streaming=True)["prefetch"]              # 512 KiB
    assert not tr.plan(512, 512, streaming=False)["prefetch"]
    assert not tr.plan(512, 512, streaming=True, target="generic")["prefetch"]
    prefetch_from(0)
    assert tr.plan(8, 8, streaming=True)["prefetch"] == streams
    with pytest.raises(ValueError, match="value"):
        prefetch_from(-1)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
# ldi in bytes: 2 KiB multiples (the kernels then skip the prefetch) and others, with remainders
@pytest.mark.parametrize("m, n, ldi_bytes", [(250, 203, 2048), (256, 131, 4096), (203, 250, 2112),
                                             (517, 77, 4160), (61, 333, 520)])
@pytest.mark.parametrize("threads", [1, 2])
def test_streaming_with_prefetch_matches_numpy(target, dtype, m, n, ldi_bytes, threads, prefetch_from, rng):
    es = np.dtype(dtype).itemsize
    ldi = max(ldi_bytes // es, m)
    ldo = -(-n * es // 64) * 64 // es  # whole lines: every output row streams
    prefetch_from(0)
    assert tr.plan(m, n, dtype=dtype, target=target, streaming=True)["prefetch"] == (target != "generic")
    a = _random(ldi * n + 5, dtype, rng)
    for in_offset in (0, 3):
        src = a[in_offset:in_offset + ldi * n]
        # one band, or many (the read-ahead crosses band ends); strips of 512 bytes: with ldi a
        # multiple of 2 KiB, the kernels then bring the next tile into L2 (on every path)
        for tile_m, tile_n in ((None, None), (24, None), (24, 512 // es)):
            out = np.zeros(ldo * m, dtype)
            tr.transpose(src, out, m=m, n=n, ldi=ldi, ldo=ldo, threads=threads, target=target, streaming=True,
                         tile_m=tile_m, tile_n=tile_n)
            np.testing.assert_array_equal(out, _flat_reference(src, m, n, ldi, ldo, np.zeros(ldo * m, dtype)))


def test_aliased_inputs_default_to_wide_tiles_where_measured(prefetch_from, monkeypatch):
    """Streamed inputs large enough to be read ahead, with columns a multiple of 2 KiB apart:
    AVX-512 f64 defaults to tiles of 512 x 64 (transpose.pyx READ_AHEAD_TILES); other paths, other
    strides, smaller inputs and explicit tiles keep theirs."""
    monkeypatch.delenv("TRANS_M", raising=False)
    monkeypatch.delenv("TRANS_N", raising=False)
    prefetch_from(1 << 20)
    tiles = lambda n, **kw: (lambda p: (p["tile_m"], p["tile_n"]))(tr.plan(n, n, streaming=True, **kw))  # noqa: E731
    default = tr.DEFAULT_TILES[(8, "o")]["medium"]
    if "avx512" in cpu.available_targets():
        for threads in (1, 2):
            assert tiles(1024, target="avx512", threads=threads) == (512, 64)   # 8 KiB columns, 8 MiB
            assert tiles(256, target="avx512", threads=threads) == tr.DEFAULT_TILES[(8, "o")]["small"]
            assert tiles(1024, target="avx512", threads=threads, tile_n=16) == (512, 16)
            assert tiles(1024, target="avx512", threads=threads, dtype=np.float32)[1] == 32
            assert tiles(1000, target="avx512", threads=threads) == default     # 8000-byte columns
    if "avx2" in cpu.available_targets():
        assert tiles(1024, target="avx2", threads=1) == default


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("tiles", [(1, 1), (3, 5), (8, 8), (9, 31), (160, 2), (1000, 1000)])
def test_any_tile_size_gives_the_same_result(target, tiles, rng):
    a = _random((123, 77), np.float64, rng)
    out = tr.transpose(a, tile_m=tiles[0], tile_n=tiles[1], threads=2, target=target)
    np.testing.assert_array_equal(out, a.T)


def test_padded_views_and_mixed_orders(rng):
    big = _random((40, 50), np.float64, rng)
    a = big[3:33, 5:28]  # C-order view with ld 50
    out_big = np.full((60, 45), -1.0)
    out = out_big[2:25, 4:34]  # C-order view with ld 45
    tr.transpose(a, out)
    np.testing.assert_array_equal(out, a.T)
    assert np.all(out_big[:2] == -1) and np.all(out_big[:, :4] == -1)
    f_out = np.empty((23, 30), order="F")
    tr.transpose(a, f_out)  # orders differ: the library copies, the values are still a.T
    np.testing.assert_array_equal(f_out, a.T)
    np.testing.assert_array_equal(tr.transpose(np.asfortranarray(a)), a.T)
    np.testing.assert_array_equal(tr.transpose(a[::2, ::3]), a[::2, ::3].T)  # no unit stride: copied


def test_empty_and_list_input():
    assert tr.transpose(np.zeros((0, 5))).shape == (5, 0)
    assert tr.transpose(np.zeros(0), m=0, n=3).shape == (0,)
    np.testing.assert_array_equal(tr.transpose([[1.0, 2.0], [3.0, 4.0]]), [[1.0, 3.0], [2.0, 4.0]])


@pytest.mark.parametrize("target", TARGETS)
def test_bits_move_unchanged(target, rng):
    # NaN payloads, signalling NaNs, negative zero: the kernels only move bits.
    bits = rng.integers(0, 2 ** 63, size=(67, 45), dtype=np.uint64) | np.uint64(0x7FF0000000000001)
    a = bits.view(np.float64)
    out = tr.transpose(a, target=target, threads=2)
    np.testing.assert_array_equal(out.view(np.uint64), bits.T)
    b32 = rng.integers(0, 2 ** 31, size=(33, 70), dtype=np.uint32) | np.uint32(0x7F800001)
    out32 = tr.transpose(b32.view(np.float32), target=target)
    np.testing.assert_array_equal(out32.view(np.uint32), b32.T)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(0, 90), n=st.integers(0, 90), pad_i=st.integers(0, 9), pad_o=st.integers(0, 9),
       dtype=st.sampled_from([np.float64, np.float32, np.complex128, np.complex64]),
       target=st.sampled_from(RUNNABLE), threads=st.sampled_from([1, 2]),
       tile_m=st.none() | st.integers(1, 40), tile_n=st.none() | st.integers(1, 40),
       streaming=st.sampled_from([None, False, True]), seed=st.integers(0, 2 ** 32 - 1))
def test_flat_transpose_property(m, n, pad_i, pad_o, dtype, target, threads, tile_m, tile_n, streaming, seed):
    rng = np.random.default_rng(seed)
    ldi, ldo = max(m, 1) + pad_i, max(n, 1) + pad_o
    a = _random(max(ldi * n, 1), dtype, rng)
    out = _random(max(ldo * m, 1), dtype, rng)
    ref = _flat_reference(a, m, n, ldi, ldo, out)
    tr.transpose(a, out, m=m, n=n, ldi=ldi, ldo=ldo, threads=threads, target=target, tile_m=tile_m,
                 tile_n=tile_n, streaming=streaming)
    np.testing.assert_array_equal(out, ref)


# ----------------------------------------------------------------------------------- in-place

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64])
@pytest.mark.parametrize("size", [1, 2, 7, 8, 9, 16, 31, 64, 97, 300])
@pytest.mark.parametrize("threads", [1, 2])
def test_inplace_square(target, dtype, size, threads, rng):
    a = _random((size, size), dtype, rng)
    for tile in (None, 8, 24):
        b = a.copy()
        assert tr.transpose_inplace(b, tile=tile, threads=threads, target=target) is b
        np.testing.assert_array_equal(b, a.T)


@pytest.mark.parametrize("target", TARGETS)
def test_inplace_square_view_with_padding(target, rng):
    big = _random((120, 130), np.float64, rng)
    before = big.copy()
    view = big[5:105, 10:110]
    tr.transpose_inplace(view, threads=2, target=target)
    np.testing.assert_array_equal(view, before[5:105, 10:110].T)
    outside = np.ones(big.shape, bool)
    outside[5:105, 10:110] = False
    np.testing.assert_array_equal(big[outside], before[outside])  # nothing outside the view moved
    f = np.asfortranarray(before[:50, :50])
    tr.transpose_inplace(f, target=target)
    np.testing.assert_array_equal(f, before[:50, :50].T)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("offset", [0, 1, 3, 6])
@pytest.mark.parametrize("threads", [1, 2])
def test_inplace_square_off_the_line_grid(target, offset, threads, rng):
    # ld = 136 elements is 17 lines: the border rows/columns before the first line boundary are
    # swapped apart from the tiles.
    big = _random((300, 136), np.float64, rng)
    before = big.copy()
    view = big.reshape(-1)[offset:offset + 129 * 136].reshape(129, 136)[:, :129]
    expect = view.T.copy()
    tr.transpose_inplace(view, tile=16, threads=threads, target=target)
    np.testing.assert_array_equal(view, expect)
    untouched = np.ones(big.size, bool)
    idx = offset + np.arange(129)[:, None] * 136 + np.arange(129)[None, :]
    untouched[idx.reshape(-1)] = False
    np.testing.assert_array_equal(big.reshape(-1)[untouched], before.reshape(-1)[untouched])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", [(1, 9), (9, 1), (3, 5), (40, 17), (128, 64), (301, 257)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_inplace_rectangular_contiguous_returns_a_view(target, shape, order, rng):
    a = _random(shape, np.float32, rng)
    b = np.array(a, order=order)
    res = tr.transpose_inplace(b, threads=2, target=target)
    assert res.shape == a.T.shape and np.shares_memory(res, b)
    np.testing.assert_array_equal(res, a.T)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("m, n, ldi, ldo", [(5, 5, 5, 5), (5, 5, 7, 7), (5, 5, 6, 9), (7, 3, 7, 3),
                                            (7, 3, 10, 4), (40, 33, 41, 40), (64, 100, 64, 128)])
def test_inplace_flat_buffers(target, m, n, ldi, ldo, rng):
    size = max((n - 1) * ldi + m, (m - 1) * ldo + n) + 3
    buf = _random(size, np.float64, rng)
    src = buf.copy()
    tr.transpose_inplace(buf, m=m, n=n, ldi=ldi, ldo=ldo, threads=2, target=target)
    i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    np.testing.assert_array_equal(buf[i * ldo + j], src[j * ldi + i])


# ------------------------------------------------------------------------------- copy and zero

@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", FLOATS + [np.complex128])
@pytest.mark.parametrize("m, n, ldi, ldo", [(1, 1, 1, 1), (1, 50, 3, 2), (50, 1, 50, 50), (37, 29, 40, 45),
                                            (1000, 300, 1000, 1000), (513, 129, 520, 600)])
@pytest.mark.parametrize("threads", [1, 2])
def test_copy_and_zero_with_leading_dimensions(target, dtype, m, n, ldi, ldo, threads, rng):
    a = _random(ldi * n, dtype, rng)
    for streaming in (False, True):
        out = _random(ldo * n, dtype, rng)
        ref = out.copy()
        ref.reshape(n, ldo)[:, :m] = a.reshape(n, ldi)[:, :m]
        tr.copy(a, out, m=m, n=n, ldi=ldi, ldo=ldo, threads=threads, target=target, streaming=streaming)
        np.testing.assert_array_equal(out, ref)
        ref.reshape(n, ldo)[:, :m] = 0
        assert tr.zero(out, m=m, n=n, ld=ldo, threads=threads, target=target, streaming=streaming) is out
        np.testing.assert_array_equal(out, ref)


def test_copy_and_zero_2d(rng):
    a = _random((70, 90), np.float64, rng)
    np.testing.assert_array_equal(tr.copy(a), a)
    f = np.empty((70, 90), order="F")
    np.testing.assert_array_equal(tr.copy(a, f), a)  # orders differ: moved by the transpose kernel
    big = np.ones((80, 100))
    tr.zero(big[5:75, 3:93])
    assert big[5:75, 3:93].sum() == 0 and big.sum() == 80 * 100 - 70 * 90


# ------------------------------------------------------------------------------------- errors

def test_leading_dimension_too_small():
    a = np.zeros(100)
    with pytest.raises(ValueError, match="ldi=4 is too small"):
        tr.transpose(a, m=5, n=5, ldi=4)
    with pytest.raises(ValueError, match="ldo=3 is too small"):
        tr.transpose(a, m=5, n=5, ldo=3)
    with pytest.raises(ValueError, match="ld=2 is too small"):
        tr.zero(a, m=5, n=5, ld=2)
    with pytest.raises(ValueError, match="ldo=1 is too small"):
        tr.copy(a, m=5, n=5, ldo=1)


def test_buffers_too_small():
    with pytest.raises(ValueError, match="a has 20 elements"):
        tr.transpose(np.zeros(20), m=5, n=5)
    with pytest.raises(ValueError, match="out has 24 elements"):
        tr.transpose(np.zeros(25), np.zeros(24), m=5, n=5)
    with pytest.raises(ValueError, match="no room"):
        tr.transpose_inplace(np.zeros(30), m=3, n=10, ldi=3, ldo=11)


def test_overlapping_input_and_output():
    buf = np.zeros(200)
    with pytest.raises(ValueError, match="overlaps"):
        tr.transpose(buf[:100], buf[50:150], m=10, n=10)
    with pytest.raises(ValueError, match="overlaps"):
        tr.transpose(buf, buf, m=10, n=10)
    sq = np.zeros((10, 10))
    with pytest.raises(ValueError, match="overlaps"):
        tr.transpose(sq, sq)
    with pytest.raises(ValueError, match="overlaps"):
        tr.copy(buf[:100], buf[10:110], m=10, n=10)
    tr.transpose(buf[:100], buf[100:], m=10, n=10)  # adjacent is fine


def test_inplace_non_square_without_room():
    big = np.zeros((10, 20))
    with pytest.raises(ValueError, match="non-square 4x6 array needs it contiguous"):
        tr.transpose_inplace(big[:4, :6])
    with pytest.raises(ValueError, match="read-only"):
        ro = np.zeros((4, 4))
        ro.flags.writeable = False
        tr.transpose_inplace(ro)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: tr.transpose(np.zeros((3, 3), dtype=np.float16)), TypeError, "a has dtype float16"),
    (lambda: tr.transpose(np.zeros((3, 3), dtype=object)), TypeError, "a has dtype object"),
    (lambda: tr.transpose(np.zeros((3, 3)), np.zeros((3, 3), np.float32)), TypeError, "out has dtype"),
    (lambda: tr.transpose(np.zeros((3, 4)), np.zeros((3, 4))), ValueError, r"out has shape \(3, 4\)"),
    (lambda: tr.transpose(np.zeros((3, 4)), np.zeros((8, 6))[::2, ::2]), ValueError, "unit stride"),
    (lambda: tr.transpose(np.zeros((2, 2, 2))), ValueError, "ndim=3"),
    (lambda: tr.transpose(np.zeros(9)), TypeError, "needs m= and n="),
    (lambda: tr.transpose(np.zeros(9), m=3.0, n=3), TypeError, "m must be an integer"),
    (lambda: tr.transpose(np.zeros(9), m=-1, n=3), ValueError, "m must be >= 0"),
    (lambda: tr.transpose(np.zeros((3, 3)), m=3), TypeError, "describe flat"),
    (lambda: tr.transpose(np.zeros((3, 3)), threads=0), ValueError, "threads"),
    (lambda: tr.transpose(np.zeros((3, 3)), tile_m=0), ValueError, "tile_m must be >= 1"),
    (lambda: tr.transpose(np.zeros((3, 3)), target="sse9"), ValueError, "target must be one of"),
    (lambda: tr.transpose(np.zeros((3, 3)), streaming="yes"), TypeError, "streaming"),
    (lambda: tr.transpose(np.zeros(18)[::2], m=3, n=3), ValueError, "a must be contiguous"),
    (lambda: tr.transpose_inplace([[1.0]]), TypeError, "a must be a numpy array"),
    (lambda: tr.zero(np.zeros(4), m=2), TypeError, "needs m= and n="),
    (lambda: tr.plan(4, 4, kind="x"), ValueError, "kind must be"),
    # sizes and leading dimensions beyond any buffer, even where no element offset would use them
    (lambda: tr.transpose(np.arange(4.0), m=4, n=1, ldi=2**63), ValueError, r"ldi=\d+ is too large"),
    (lambda: tr.transpose(np.arange(64.0), m=1, n=64, ldo=2**70), ValueError, r"ldo=\d+ is too large"),
    (lambda: tr.copy(np.arange(17.0), m=17, n=1, ldo=2**64), ValueError, r"ldo=\d+ is too large"),
    (lambda: tr.zero(np.zeros(16), m=16, n=1, ld=2**63), ValueError, r"ld=\d+ is too large"),
    (lambda: tr.transpose_inplace(np.zeros(17), m=16, n=1, ldi=2**63), ValueError, r"ldi=\d+ is too large"),
    (lambda: tr.transpose(np.zeros(0), m=2**63, n=0), ValueError, r"m=\d+ is too large"),
    (lambda: tr.transpose(np.zeros(0), m=2**62, n=0), ValueError, "out would need"),
    (lambda: tr.copy(np.zeros(0), m=0, n=2**62), ValueError, "out would need"),
    # the thread count is checked even when there is nothing to do
    (lambda: tr.transpose(np.zeros((5, 0)), threads=1.5), TypeError, "threads must be an int"),
    (lambda: tr.copy(np.zeros((0, 3)), threads=0), ValueError, "threads"),
    (lambda: tr.zero(np.zeros(0), m=0, n=0, threads=-1), ValueError, "threads"),
    (lambda: tr.transpose_inplace(np.zeros((0, 0)), threads="2"), TypeError, "threads must be an int"),
])
def test_bad_arguments_name_what_is_wrong(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("ld", [2**40, 2**62])
def test_leading_dimension_of_a_single_column_is_not_used(ld):
    """One column (or one row of the output): no element offset uses the leading dimension, so any
    value up to the limit is valid, and the C side never multiplies by it."""
    a = np.arange(1.0, 8.0)
    out = np.full(9, -1.0)
    tr.transpose(a, out[1:8], m=7, n=1, ldi=ld)           # 7 x 1 -> 1 x 7, ldo defaults to 1
    np.testing.assert_array_equal(out, [-1, *a, -1])
    out2 = np.full(9, -1.0)
    tr.copy(a, out2[1:8], m=7, n=1, ldi=ld, ldo=ld)
    np.testing.assert_array_equal(out2, [-1, *a, -1])
    z = np.full(9, 5.0)
    tr.zero(z[1:8], m=7, n=1, ld=ld)
    np.testing.assert_array_equal(z, [5, 0, 0, 0, 0, 0, 0, 0, 5])
    b = a.copy()
    tr.transpose_inplace(b, m=7, n=1, ldi=ld, ldo=1)
    np.testing.assert_array_equal(b, a)


def test_unavailable_target_is_an_error_not_a_crash():
    missing = [t for t in cpu.ISA_NAMES if t not in cpu.available_targets()]
    if not missing:
        pytest.skip("this CPU runs every ISA path")
    with pytest.raises(ValueError, match="not supported by this CPU"):
        tr.transpose(np.zeros((4, 4)), target=missing[-1])


def test_read_only_output():
    out = np.zeros((3, 3))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        tr.transpose(np.zeros((3, 3)), out)


# --------------------------------------------------------------------- dispatch and parameters

@pytest.mark.parametrize("target", TARGETS)
def test_plan_names_the_kernel_of_each_path(target):
    names = {"generic": "trans_generic_8byte_8x8", "avx2": "trans_avx2_f64_4x4", "avx512": "trans_avx512_f64_8x8"}
    p = tr.plan(100, 100, target=target)
    assert p["kernel"] == names[target] and p["target"] == target
    inplace = {"generic": "trans_generic_8byte_8x8", "avx2": "trans_avx2_f64_4x4", "avx512": "trans_avx2_f64_4x4"}
    assert tr.plan(100, 100, target=target, kind="i")["kernel"] == inplace[target]  # AVX-512 borrows AVX2
    assert target in tr.kernels() and len(tr.kernels()[target]) == 3


def test_default_target_is_the_process_path():
    assert tr.plan(10, 10)["target"] == cpu.target()


def test_tiles_round_up_to_the_register_block():
    p = tr.plan(1000, 1000, tile_m=3, tile_n=9, target=RUNNABLE[-1])
    bm, bn = p["register_block"]
    assert p["tile_m"] % bm == 0 and p["tile_n"] % bn == 0 and p["tile_m"] >= 3 and p["tile_n"] >= 9
    assert p["tile_source"] == {"m": "argument", "n": "argument"}


def test_tile_sources_in_order(monkeypatch, tmp_path):
    file = tmp_path / "tuned.json"
    monkeypatch.setenv("SMM_TUNED_FILE", str(file))
    tuned.refresh()
    default = tr.plan(50, 50, target="generic")
    assert default["tile_source"] == {"m": "default", "n": "default"}
    tuned.store("transpose", tr.tuned_key("o", np.float64), tuned.size_class(50 * 50 * 8),
                {"tile_m": 24, "tile_n": 40}, isa="generic")
    p = tr.plan(50, 50, target="generic")
    assert (p["tile_m"], p["tile_n"]) == (24, 40) and p["tile_source"] == {"m": "tuned", "n": "tuned"}
    assert tr.plan(50, 50, target="generic", dtype=np.float32)["tile_source"]["m"] == "default"  # other key
    assert tr.plan(5000, 5000, target="generic")["tile_source"]["m"] == "default"  # other size class
    monkeypatch.setenv("TRANS_M", "16")
    p = tr.plan(50, 50, target="generic")
    assert (p["tile_m"], p["tile_n"]) == (16, 40) and p["tile_source"] == {"m": "TRANS_M", "n": "tuned"}
    monkeypatch.setenv("TRANS_N", "8")
    assert tr.plan(50, 50, target="generic")["tile_source"] == {"m": "TRANS_M", "n": "TRANS_N"}
    p = tr.plan(50, 50, target="generic", tile_m=32)
    assert p["tile_m"] == 32 and p["tile_source"] == {"m": "argument", "n": "TRANS_N"}


def test_bad_tile_environment(monkeypatch):
    monkeypatch.setenv("TRANS_M", "zero")
    with pytest.raises(ValueError, match="TRANS_M"):
        tr.plan(10, 10)
    monkeypatch.setenv("TRANS_M", "-3")
    with pytest.raises(ValueError, match="TRANS_M"):
        tr.transpose(np.zeros((4, 4)))


def test_corrupt_tuned_file_is_ignored_with_a_warning(monkeypatch, tmp_path):
    file = tmp_path / "tuned.json"
    file.write_text("{not json")
    monkeypatch.setenv("SMM_TUNED_FILE", str(file))
    tuned.refresh()
    with pytest.warns(RuntimeWarning, match="ignoring the tuned-parameter file"):
        p = tr.plan(50, 50)
    assert p["tile_source"]["m"] == "default"
    with pytest.raises(ValueError, match="not valid JSON"):
        tuned.store("transpose", "otrans-f64", "small", {"tile_m": 8})
    assert file.read_text() == "{not json"  # never clobbered


def test_tuned_values_of_the_wrong_type_fall_back_to_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("SMM_TUNED_FILE", str(tmp_path / "t.json"))
    tuned.refresh()
    tuned.store("transpose", "otrans-f64", "small", {"tile_m": "big", "tile_n": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tr.plan(20, 20)["tile_source"] == {"m": "default", "n": "default"}


def test_tuned_store_keeps_other_entries(tmp_path):
    file = str(tmp_path / "t.json")
    tuned.store("transpose", "otrans-f64", "small", {"tile_m": 8}, model="A", isa="avx2", file=file)
    tuned.store("transpose", "otrans-f64", "large", {"tile_m": 64}, model="A", isa="avx2", file=file)
    tuned.store("other", "k", "small", {"x": 1}, model="B", isa="generic", file=file)
    assert tuned.lookup("transpose", "otrans-f64", "small", model="A", isa="avx2", file=file) == {"tile_m": 8}
    assert tuned.lookup("transpose", "otrans-f64", "large", model="A", isa="avx2", file=file) == {"tile_m": 64}
    assert tuned.lookup("other", "k", "small", model="B", isa="generic", file=file) == {"x": 1}
    assert tuned.lookup("transpose", "otrans-f64", "small", model="A", isa="avx512", file=file) is None
    with pytest.raises(ValueError, match="size class"):
        tuned.store("transpose", "otrans-f64", "huge", {}, file=file)


def test_size_classes():
    assert tuned.size_class(0) == "small" and tuned.size_class((1 << 19) - 1) == "small"
    assert tuned.size_class(1 << 19) == "medium" and tuned.size_class(1 << 24) == "large"
    assert tuned.size_class_bounds("medium") == (1 << 19, 1 << 24)


def test_streaming_is_automatic_for_outputs_beyond_the_last_level_cache():
    assert not tr.plan(100, 100)["streaming"]
    big = tr.plan(8192, 8192)
    assert big["streaming"] == (big["target"] != "generic")
    assert not tr.plan(8192, 8192, streaming=False)["streaming"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("m, n, pad_o", [(300, 203, 1), (131, 517, 3), (77, 40, 5), (1, 333, 1), (333, 1, 2),
                                         (129, 47, 7)])
@pytest.mark.parametrize("threads", [1, 2])
def test_streaming_into_rows_off_the_line_grid(target, dtype, m, n, pad_o, threads, prefetch_from, rng):
    # ldo * size is not a multiple of 64 bytes: tiles go through the aligned staging buffer and each
    # row streams from its own line boundary (trans_impl.h, staged): several tiles per strip, strips
    # with a partial last one, bands (tile_m), the input read-ahead, outputs off the grid by whole
    # elements; the padding after each row is never written.
    ldi, ldo = m + 3, n + pad_o
    prefetch_from(0)
    a = _random(ldi * n, dtype, rng)
    for out_offset in (0, 1):
        for tile_m in (None, 72):
            base = _random(ldo * m + 2, dtype, rng)
            out = base[out_offset:out_offset + ldo * m]
            ref = _flat_reference(a, m, n, ldi, ldo, out)
            tr.transpose(a, out, m=m, n=n, ldi=ldi, ldo=ldo, threads=threads, target=target, streaming=True,
                         tile_m=tile_m)
            np.testing.assert_array_equal(out, ref)
