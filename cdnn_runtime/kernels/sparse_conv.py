"""Direct sparse 2-D convolution from CSR + codebook storage (Park et al., ICLR 2017).

The weight [Cout, Cin/groups, kh, kw] is stored as the 2-D view [Cout, Cin/groups*kh*kw]
in CSR form (column ``c = ci*kh*kw + ky*kw + kx``), entry values ``codebook[codes[k]]``.
Each stored weight (o, ci, ky, kx) adds ``value * shifted input plane ci`` to output plane o;
no dense weight and no im2col is ever built.

How the shifted plane is read: the input is zero-padded and split by stride phase into
``xs[b, p, c, Hq, Wq]`` with ``p = (row % sh) * sw + col % sw`` (for stride 1 this is just the
padded input, and with no padding the input itself is used). Then the input pixel of output
(y, x) for a tap (ky, kx) is ``xs[b, phase, c, y + qy, x + qx]`` with ``ky*dh = qy*sh + py``,
``kx*dw = qx*sw + px``: every tap is a stride-1 shift. Computing the output plane with the row
pitch Wq of the input planes turns it into one contiguous run of ``L = (Ho-1)*Wq + Wo``
multiply-adds per stored weight: ``acc[i] += w * xs_flat[offset + i]``.

The run is summed in registers (:func:`._simd.shifted_sum`): a run of up to SUM_RUN output
floats stays in vector registers while every stored entry of the output channel adds its
weight times its shifted input run, one load and one fused multiply-add per vector; the sums
are written once. The output is computed in bands of rows (BAND_RUN floats of each output
channel), and within a band the input channels in chunks (:func:`chunk_pointers`, CHUNK_BYTES):
every output channel of a group (GROUP_BYTES of sums, in L2) adds one chunk's entries while
that chunk's input rows stay in L1, then the next chunk. Threads take (sample, band, part of
the output channels) tasks. The epilogue adds the bias and the fused activation and drops
the Wq - Wo extra columns per row.

A 1-D convolution (:class:`SparseConv1d`) is this kernel on inputs of height 1; the transposed
convolution (:mod:`.sparse_conv_transpose`) runs :func:`convolve` on its output phases.
"""

import numba
import numpy as np
from numba import njit, prange

from .._jit import jit_cache, threaded_or_serial
from ._common import (
    ACT_NONE,
    FASTMATH,
    KernelArgumentError,
    as_pair,
    bias_activation_rows,
    check_csr,
    check_float32,
    parse_activation,
)
from ._simd import shifted_sum
from .elementwise import activate_flat

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

#: Output floats per channel of one band at most (its rows times the row pitch; at least one
#: row): the sums of a group of output channels over one band stay in L2, and a chunk of input
#: channels over the band's rows is small enough for L1.
BAND_RUN = 1 << 9

#: Bytes of input one chunk of input channels reads over a band's rows (all stride phases, the
#: rows the taps reach below included), at most: they stay in L1 while every output channel of
#: a group adds that chunk's entries (at least one channel per chunk).
CHUNK_BYTES = 24 << 10

#: Bytes of the sums of the output channels a task keeps at once (a group): in L2.
GROUP_BYTES = 128 << 10

#: Floats of the phase-split (padded) input from which the split runs threaded: it is a copy,
#: and a few hundred thousand floats copy in less time than a parallel launch can take.
SPLIT_PARALLEL_MIN = 1 << 20

#: Floats of one group's phase-split input at most for a grouped convolution to run group by
#: group (groups_parallel: a depthwise layer splits each channel in its own task, in cache);
#: above, the whole input is split first, as for groups=1.
GROUP_SPLIT_MAX = 1 << 16

#: Multiply-adds (batch x stored entries x output run length) from which a convolution runs
#: threaded; below, waking a second thread costs more than it saves.
CONV_PARALLEL_MIN_WORK = 1 << 19

# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


@njit(cache=_CACHE)
def _add_rows(acc, pitch, rows):
    """acc[y * pitch + x] += rows[y, x] (a residual added to a band's sums)."""
    width = rows.shape[1]
    for y in range(rows.shape[0]):
        a = acc[y * pitch:y * pitch + width]
        r = rows[y]
        for x in range(width):
            a[x] += r[x]


@njit(cache=_CACHE, fastmath=FASTMATH)
def _conv_block(xs, xbase, kptr, entry, tap_bits, codes, codebook, tap_off, chan_stride,
                bias, has_bias, res, has_res, act, act_param, out, b, o0, o1, y0, y1, wq, group,
                acc):
    """Output rows y0..y1-1 of output channels o0..o1-1 of sample b, ``group`` output channels
    at a time: for each chunk of input channels (kptr's columns), each channel of the group
    adds that chunk's entries to its sums (acc[i], kept in L2) while the chunk's input rows
    stay in L1; then the residual ``res`` (of out's shape, when has_res), the bias and the
    activation."""
    wo = out.shape[3]
    n = (y1 - 1 - y0) * wq + wo
    base = xbase + y0 * wq
    n_chunks = kptr.shape[1] - 1
    for g0 in range(o0, o1, group):
        g1 = min(g0 + group, o1)
        for c in range(n_chunks):
            for o in range(g0, g1):
                shifted_sum(xs, base, kptr[o, c], kptr[o, c + 1], entry, tap_bits, codes,
                            codebook, tap_off, chan_stride, acc[o - g0], n, c > 0)
        for o in range(g0, g1):
            if has_res:
                _add_rows(acc[o - g0], wq, res[b, o, y0:y1])
            bo = bias[o] if has_bias else np.float32(0.0)
            bias_activation_rows(acc[o - g0], wq, bo, act, act_param, out[b, o, y0:y1])


@njit(cache=_CACHE, parallel=True, fastmath=FASTMATH)
def conv_parallel(xs, kptr, entry, tap_bits, codes, codebook, tap_off, chan_stride,
                  batch_stride, wq, band, group, n_parts, bias, has_bias, res, has_res, act,
                  act_param, out):
    """Direct sparse convolution over tasks (sample, band of ``band`` output rows, part of the
    output channels; ``n_parts`` parts) spread over threads; consecutive tasks share a band.

    xs: flat float32 phase-split padded input; kptr: int64 [Cout, chunks + 1], where each
    output channel's entries of each chunk of input channels start (see chunk_pointers);
    entry: uint32 per stored weight, ``input_channel << tap_bits | tap``; tap_off: int64 offset
    of each tap inside a channel block; group: output channels whose sums are kept at once;
    res: float32 of out's shape added before the bias and activation when has_res (else any
    4-D array); out: float32 [B, Cout, Ho, Wo].
    """
    n_batch = out.shape[0]
    n_out = out.shape[1]
    ho = out.shape[2]
    n_bands = (ho + band - 1) // band
    part = (n_out + n_parts - 1) // n_parts
    for t in prange(n_batch * n_bands * n_parts):
        c = t % n_parts
        rest = t // n_parts
        bd = rest % n_bands
        b = rest // n_bands
        y0 = bd * band
        y1 = min(y0 + band, ho)
        o0 = c * part
        o1 = min(o0 + part, n_out)
        acc = np.empty((min(group, part), band * wq), np.float32)
        _conv_block(xs, b * batch_stride, kptr, entry, tap_bits, codes, codebook, tap_off,
                    chan_stride, bias, has_bias, res, has_res, act, act_param, out, b, o0, o1,
                    y0, y1, wq, group, acc)


@njit(cache=_CACHE, fastmath=FASTMATH)
def conv_serial(xs, kptr, entry, tap_bits, codes, codebook, tap_off, chan_stride,
                batch_stride, wq, band, group, n_parts, bias, has_bias, res, has_res, act,
                act_param, out):
    """Serial :func:`conv_parallel` (every output channel of a band, band after band)."""
    n_batch = out.shape[0]
    n_out = out.shape[1]
    ho = out.shape[2]
    acc = np.empty((min(group, n_out), band * wq), np.float32)
    for b in range(n_batch):
        for y0 in range(0, ho, band):
            _conv_block(xs, b * batch_stride, kptr, entry, tap_bits, codes, codebook, tap_off,
                        chan_stride, bias, has_bias, res, has_res, act, act_param, out, b, 0,
                        n_out, y0, min(y0 + band, ho), wq, group, acc)


@njit(cache=_CACHE)
def _phase_plane(x, b, c, py, px, sh, sw, pad_t, pad_l, dst):
    """dst[i, j] = x[b, c, i*sh+py-pad_t, j*sw+px-pad_l], zero outside x: per row the zeros
    of the left and right padding, then the copy (contiguous for stride 1), with no test
    per element."""
    h = x.shape[2]
    w = x.shape[3]
    hq = dst.shape[0]
    wq = dst.shape[1]
    src = x[b, c]
    off = px - pad_l
    j_lo = min(0 if off >= 0 else (sw - 1 - off) // sw, wq)  # first j with j*sw+off >= 0
    j_hi = min(max((w - off + sw - 1) // sw, j_lo), wq)  # first j with j*sw+off >= w
    for i in range(hq):
        drow = dst[i]
        iy = i * sh + py - pad_t
        if iy < 0 or iy >= h:
            for j in range(wq):
                drow[j] = 0.0
            continue
        srow = src[iy]
        for j in range(j_lo):
            drow[j] = 0.0
        for j in range(j_lo, j_hi):  # unsigned: no negative-index wrap-around per element
            drow[np.uint64(j)] = srow[np.uint64(j * sw + off)]
        for j in range(j_hi, wq):
            drow[j] = 0.0


@njit(cache=_CACHE, parallel=True)
def phase_split_parallel(x, sh, sw, pad_t, pad_l, xs):
    """xs[b, py*sw+px, c, i, j] = x[b, c, i*sh+py-pad_t, j*sw+px-pad_l] (zero outside x)."""
    n_batch = xs.shape[0]
    n_phase = xs.shape[1]
    n_ch = xs.shape[2]
    for t in prange(n_batch * n_phase * n_ch):
        b = t // (n_phase * n_ch)
        r = t - b * (n_phase * n_ch)
        p = r // n_ch
        c = r - p * n_ch
        _phase_plane(x, b, c, p // sw, p % sw, sh, sw, pad_t, pad_l, xs[b, p, c])


@njit(cache=_CACHE)
def phase_split_serial(x, sh, sw, pad_t, pad_l, xs):
    """Serial :func:`phase_split_parallel`."""
    for b in range(xs.shape[0]):
        for p in range(xs.shape[1]):
            for c in range(xs.shape[2]):
                _phase_plane(x, b, c, p // sw, p % sw, sh, sw, pad_t, pad_l, xs[b, p, c])


@njit(cache=_CACHE, fastmath=FASTMATH)
def _groups_block(x, b, g0, g1, cin_g, out_g, sh, sw, pad_t, pad_l, row_ptr, entry, tap_bits,
                  codes, codebook, tap_off, bias, has_bias, act, act_param, xs, acc, out):
    """Groups g0..g1-1 of sample b, one after the other: the group's input channels split
    into xs ([phases, cin_g, hq, wq], this task's own, in cache), then each of its output
    channels over the whole plane."""
    n_phase = xs.shape[0]
    hq = xs.shape[2]
    wq = xs.shape[3]
    chan_stride = hq * wq
    ho = out.shape[2]
    wo = out.shape[3]
    n = (ho - 1) * wq + wo
    flat = xs.reshape(-1)
    for g in range(g0, g1):
        for p in range(n_phase):
            for c in range(cin_g):
                _phase_plane(x, b, g * cin_g + c, p // sw, p % sw, sh, sw, pad_t, pad_l,
                             xs[p, c])
        base = -g * cin_g * chan_stride  # entries name absolute input channels
        for o in range(g * out_g, (g + 1) * out_g):
            shifted_sum(flat, base, row_ptr[o], row_ptr[o + 1], entry, tap_bits, codes,
                        codebook, tap_off, chan_stride, acc, n, False)
            bo = bias[o] if has_bias else np.float32(0.0)
            bias_activation_rows(acc, wq, bo, act, act_param, out[b, o])


@njit(cache=_CACHE, parallel=True, fastmath=FASTMATH)
def groups_parallel(x, groups, sh, sw, pad_t, pad_l, hq, wq, row_ptr, entry, tap_bits, codes,
                    codebook, tap_off, bias, has_bias, act, act_param, n_chunks, out):
    """A grouped convolution with few input channels per group (depthwise: one), group by
    group: tasks (sample, chunk of groups) spread over threads, each splitting only its own
    groups' input planes (no phase split of the whole input). tap_off: per tap, its offset in
    one group's split block [phases, cin_g, hq, wq]."""
    n_batch = out.shape[0]
    cin_g = x.shape[1] // groups
    out_g = out.shape[1] // groups
    chunk = (groups + n_chunks - 1) // n_chunks
    for t in prange(n_batch * n_chunks):
        b = t // n_chunks
        g0 = (t % n_chunks) * chunk
        g1 = min(g0 + chunk, groups)
        xs = np.empty((sh * sw, cin_g, hq, wq), np.float32)
        acc = np.empty(out.shape[2] * wq, np.float32)
        _groups_block(x, b, g0, g1, cin_g, out_g, sh, sw, pad_t, pad_l, row_ptr, entry,
                      tap_bits, codes, codebook, tap_off, bias, has_bias, act, act_param, xs,
                      acc, out)


@njit(cache=_CACHE, fastmath=FASTMATH)
def groups_serial(x, groups, sh, sw, pad_t, pad_l, hq, wq, row_ptr, entry, tap_bits, codes,
                  codebook, tap_off, bias, has_bias, act, act_param, n_chunks, out):
    """Serial :func:`groups_parallel`."""
    cin_g = x.shape[1] // groups
    out_g = out.shape[1] // groups
    xs = np.empty((sh * sw, cin_g, hq, wq), np.float32)
    acc = np.empty(out.shape[2] * wq, np.float32)
    for b in range(out.shape[0]):
        _groups_block(x, b, 0, groups, cin_g, out_g, sh, sw, pad_t, pad_l, row_ptr, entry,
                      tap_bits, codes, codebook, tap_off, bias, has_bias, act, act_param, xs,
                      acc, out)


@njit(cache=_CACHE)
def _pack_entries(row_ptr, col_idx, khw, cin_g, out_per_group, tap_bits, entry):
    for o in range(row_ptr.shape[0] - 1):
        base = (o // out_per_group) * cin_g
        # unsigned: no wrap-around check
        for k in range(np.uint64(row_ptr[o]), np.uint64(row_ptr[o + 1])):
            c = np.int64(col_idx[k])
            ci = c // khw
            entry[k] = ((base + ci) << tap_bits) | (c - ci * khw)


# ---------------------------------------------------------------------------------------------
# Python side
# ---------------------------------------------------------------------------------------------

_NO_BIAS = np.zeros(1, np.float32)
_NO_RESIDUAL = np.zeros((1, 1, 1, 1), np.float32)


def positive_int(name, v):
    """`v` as a Python int >= 1 (KernelArgumentError otherwise)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise KernelArgumentError(f"{name} must be an int >= 1, got {v!r}")
    return int(v)


def check_groups(in_channels, out_channels, groups):
    """Both channel counts split into `groups` (KernelArgumentError otherwise)."""
    if in_channels % groups or out_channels % groups:
        raise KernelArgumentError(f"in_channels ({in_channels}) and out_channels "
                                  f"({out_channels}) must both be divisible by groups ({groups})")


def entry_tap_bits(in_channels, khw):
    """Bits of the tap in an entry ``in_ch << tap_bits | tap`` (a uint32) for kh*kw taps."""
    tap_bits = max(khw - 1, 0).bit_length()
    if in_channels << tap_bits > 2**32:
        raise KernelArgumentError(f"layer too large: in_channels ({in_channels}) * 2**{tap_bits} "
                                  "must not exceed 2**32")
    return tap_bits


def band_rows(wq, ho):
    """Output rows per band: BAND_RUN // wq (at least 1, at most ``ho``)."""
    return min(max(1, BAND_RUN // wq), ho)


def chunk_pointers(row_ptr, entry, tap_bits, n_in, rows_read, wq, n_phase):
    """Where each row's entries of each chunk of input channels start: int64
    [rows, chunks + 1], row o's entries of chunk c at ``kptr[o, c]:kptr[o, c + 1]``.

    A chunk holds as many input channels as keep their ``n_phase`` phase planes' ``rows_read``
    rows of pitch ``wq`` within CHUNK_BYTES (at least one). It needs each row's entries in
    order of input channel (a layer's CSR columns are, ``c = ci*kh*kw + tap``); a layer whose
    rows are not gets one chunk."""
    n_rows = row_ptr.shape[0] - 1
    per_chunk = max(1, CHUNK_BYTES // (4 * n_phase * rows_read * wq))
    n_chunks = -(-n_in // per_chunk)
    kptr = np.empty((n_rows, max(n_chunks, 1) + 1), np.int64)
    kptr[:, 0] = row_ptr[:-1]
    kptr[:, -1] = row_ptr[1:]
    if n_chunks <= 1 or n_rows == 0:
        return kptr
    # key = row * n_chunks + chunk, non-decreasing over all entries when every row is in order;
    # then the start of (row, chunk) is the first entry whose key reaches it
    kind = np.int32 if n_rows * n_chunks < 2**31 else np.int64
    key = np.repeat(np.arange(n_rows, dtype=kind) * kind(n_chunks), np.diff(row_ptr))
    key += ((entry >> np.uint32(tap_bits)) // np.uint32(per_chunk)).astype(kind)
    if key.shape[0] > 1 and not bool((key[1:] >= key[:-1]).all()):
        return np.ascontiguousarray(kptr[:, [0, -1]])
    starts = np.searchsorted(key, np.arange(n_rows * n_chunks, dtype=kind))
    kptr[:, :-1] = starts.reshape(n_rows, n_chunks)
    return kptr


def runs_threaded(parallel, nnz, wq, out):
    """Whether a convolution into `out` [B, rows, Ho, Wo] from `nnz` stored entries over input
    rows of pitch `wq` runs threaded: `parallel` when given, else by its work."""
    if parallel is not None:
        return bool(parallel)
    n_batch, n_rows, ho, wo = out.shape
    length = (ho - 1) * wq + wo
    return n_batch * (nnz * length + n_rows * ho * wo) >= CONV_PARALLEL_MIN_WORK


def phase_split(x, sh, sw, pad_t, pad_l, hq, wq, parallel):
    """x [B, C, H, W] zero-padded and split by stride phase: float32 [B, sh*sw, C, hq, wq]
    (see phase_split_parallel)."""
    xs = np.empty((x.shape[0], sh * sw, x.shape[1], hq, wq), np.float32)
    split = threaded_or_serial(phase_split_parallel, phase_split_serial,
                               parallel and xs.size >= SPLIT_PARALLEL_MIN)
    split(x, sh, sw, pad_t, pad_l, xs)
    return xs


def convolve(xs, kptr, entry, tap_bits, codes, codebook, tap_off, chan_stride, batch_stride,
             wq, band, bias, act, out, parallel, residual=None):
    """Run conv_parallel or conv_serial into `out` [B, rows, Ho, Wo] (kptr from
    :func:`chunk_pointers`); the threaded one with enough parts of the rows per band for every
    thread to have about eight tasks."""
    n_batch, n_rows, ho, _ = out.shape
    n_parts = 1
    if parallel:
        tasks = n_batch * -(-ho // band)
        n_parts = max(1, min(n_rows, -(-8 * numba.get_num_threads() // tasks)))
    group = max(1, GROUP_BYTES // (4 * band * wq))
    has_bias = bias is not None
    kern = threaded_or_serial(conv_parallel, conv_serial, parallel)
    has_res = residual is not None
    kern(xs.reshape(-1), kptr, entry, tap_bits, codes, codebook, tap_off, chan_stride,
         batch_stride, wq, band, group, n_parts, bias if has_bias else _NO_BIAS, has_bias,
         residual if has_res else _NO_RESIDUAL, has_res, act.code, act.param, out)


def _padding4(padding, kernel_size, stride, dilation):
    """Padding spec -> (top, left, bottom, right)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            if stride != (1, 1):
                raise KernelArgumentError("padding='same' needs stride 1")
            th = dilation[0] * (kernel_size[0] - 1)
            tw = dilation[1] * (kernel_size[1] - 1)
            return (th // 2, tw // 2, th - th // 2, tw - tw // 2)
        raise KernelArgumentError(f"padding string must be 'valid' or 'same', got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        if not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in padding):
            raise KernelArgumentError(f"padding must hold ints, got {padding!r}")
        pads = tuple(int(p) for p in padding)
        if min(pads) < 0:
            raise KernelArgumentError(f"padding must be >= 0, got {padding!r}")
        return pads
    ph, pw = as_pair("padding", padding, 0)
    return (ph, pw, ph, pw)


class SparseConv2d:
    """A sparse convolution layer checked and prepared once, run many times.

    Built by :func:`prepare_conv`. Holds row_ptr, codes, codebook and bias, and instead of the
    columns one uint32 per stored entry, ``entry = in_ch << tap_bits | tap``: the absolute
    input channel ``in_ch = group * Cin/groups + c // (kh*kw)`` and the kernel tap
    ``tap = c % (kh*kw) = ky*kw + kx``, ``tap_bits`` the bits needed for kh*kw - 1. Per input
    size it keeps the tap offset table (kh*kw int64: phase block, row and column shift).
    ``layer(x, activation="none")`` maps float32 [B, in_channels, H, W] to
    float32 [B, out_channels, Ho, Wo].
    """

    def __init__(self, row_ptr, col_idx, codes, codebook, bias, in_channels, kernel_size, stride,
                 padding, dilation, groups, check_values=True):
        if not isinstance(row_ptr, np.ndarray) or row_ptr.ndim != 1 or row_ptr.shape[0] < 1:
            raise KernelArgumentError("row_ptr must be a 1-D numpy array of out_channels+1 entries")
        self.kernel_size = as_pair("kernel_size", kernel_size, 1)
        self.stride = as_pair("stride", stride, 1)
        self.dilation = as_pair("dilation", dilation, 1)
        self.padding = _padding4(padding, self.kernel_size, self.stride, self.dilation)
        self.groups = positive_int("groups", groups)
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = row_ptr.shape[0] - 1
        check_groups(self.in_channels, self.out_channels, self.groups)
        kh, kw = self.kernel_size
        khw = kh * kw
        cin_g = self.in_channels // self.groups
        check_csr(row_ptr, col_idx, codes, codebook, self.out_channels, cin_g * khw, bias=bias,
                  full=check_values)
        self.row_ptr = row_ptr
        self.codes = codes
        self.codebook = codebook
        self.bias = bias
        n = col_idx.shape[0]
        self.tap_bits = entry_tap_bits(self.in_channels, khw)
        self.entry = np.empty(n, np.uint32)
        _pack_entries(row_ptr, col_idx, khw, cin_g, max(self.out_channels // self.groups, 1),
                      self.tap_bits, self.entry)
        self._geometry = {}

    @property
    def nnz(self):
        return self.entry.shape[0]

    @property
    def in_ch(self):
        """Absolute input channel of each stored entry (int64, computed on demand)."""
        return self.entry.astype(np.int64) >> self.tap_bits

    @property
    def tap(self):
        """Kernel tap ky*kw + kx of each stored entry (int64, computed on demand)."""
        return self.entry.astype(np.int64) & ((1 << self.tap_bits) - 1)

    def output_size(self, h, w):
        """(Ho, Wo) for an input of h x w (raises when the input is too small)."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        pt, pl, pb, pr = self.padding
        ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
        if ho < 1 or wo < 1:
            raise KernelArgumentError(
                f"input {h}x{w} is smaller than the dilated kernel "
                f"({dh * (kh - 1) + 1}x{dw * (kw - 1) + 1}) after padding {self.padding}"
            )
        return ho, wo

    def _geometry_for(self, h, w):
        key = (h, w)
        geo = self._geometry.get(key)
        if geo is not None:
            return geo
        ho, wo = self.output_size(h, w)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        # with one output row (column) the stride is never stepped: use at most the kernel's
        # span, so that a huge stride (up to 2**20 in a file) does not ask for that many phases
        sh = min(sh, dh * (kh - 1) + 1) if ho == 1 else sh
        sw = min(sw, dw * (kw - 1) + 1) if wo == 1 else sw
        pt, pl = self.padding[0], self.padding[1]
        hq = -(-((ho - 1) * sh + dh * (kh - 1) + 1) // sh)
        wq = -(-((wo - 1) * sw + dw * (kw - 1) + 1) // sw)
        direct = (sh, sw) == (1, 1) and pt == 0 and pl == 0 and hq == h and wq == w
        chan_stride = hq * wq
        block = self.in_channels * chan_stride
        ty = np.repeat(np.arange(kh, dtype=np.int64) * dh, kw)
        tx = np.tile(np.arange(kw, dtype=np.int64) * dw, kh)
        qy, py = np.divmod(ty, sh)
        qx, px = np.divmod(tx, sw)
        tap_off = np.ascontiguousarray((py * sw + px) * block + qy * wq + qx)
        batch_stride = sh * sw * block
        band = band_rows(wq, ho)
        cin_g = self.in_channels // self.groups
        if self.groups > 1 and sh * sw * cin_g * chan_stride <= GROUP_SPLIT_MAX:
            # group by group (groups_parallel): offsets within one group's split block
            tap_off = np.ascontiguousarray((py * sw + px) * cin_g * chan_stride + qy * wq + qx)
            band, kptr = 0, None
        else:
            kptr = chunk_pointers(self.row_ptr, self.entry, self.tap_bits, self.in_channels,
                                  band + int(qy.max()), wq, sh * sw)
        geo = (ho, wo, hq, wq, direct, chan_stride, batch_stride, tap_off, (sh, sw), band, kptr)
        if len(self._geometry) >= 8:
            self._geometry.clear()
        self._geometry[key] = geo
        return geo

    def __call__(self, x, activation="none", *, parallel=None, residual=None):
        """act(conv(x) + bias), or with ``residual`` (float32 of the output's shape)
        act(conv(x) + bias + residual): a residual connection added in the epilogue."""
        check_float32("x", x, ndim=4)
        n_batch, cin, h, w = x.shape
        if cin != self.in_channels:
            raise KernelArgumentError(f"x has {cin} channels, the layer expects {self.in_channels}")
        act = parse_activation(activation)
        ho, wo, hq, wq, direct, chan_stride, batch_stride, tap_off, (sh, sw), band, kptr = \
            self._geometry_for(h, w)
        out = np.empty((n_batch, self.out_channels, ho, wo), np.float32)
        if residual is not None:
            check_float32("residual", residual, ndim=4, contiguous=False)
            if residual.shape != out.shape:
                raise KernelArgumentError(f"residual has shape {list(residual.shape)}, the "
                                          f"output {list(out.shape)}")
            residual = np.ascontiguousarray(residual)
            if band == 0 and out.size:  # group by group: the residual added after
                y = self(x, "none", parallel=parallel)
                y += residual
                if act.code != ACT_NONE:
                    activate_flat(y.reshape(-1), act, y.reshape(-1))
                return y
        if out.size == 0:
            return out
        parallel = runs_threaded(parallel, self.nnz, wq, out)
        if band == 0:
            n_chunks = 1
            if parallel:
                n_chunks = max(1, min(self.groups, -(-8 * numba.get_num_threads() // n_batch)))
            kern = threaded_or_serial(groups_parallel, groups_serial, parallel)
            has_bias = self.bias is not None
            kern(x, self.groups, sh, sw, self.padding[0], self.padding[1], hq, wq, self.row_ptr,
                 self.entry, self.tap_bits, self.codes, self.codebook, tap_off,
                 self.bias if has_bias else _NO_BIAS, has_bias, act.code, act.param, n_chunks,
                 out)
            return out
        if direct:
            xs = x
        else:
            xs = phase_split(x, sh, sw, self.padding[0], self.padding[1], hq, wq, parallel)
        convolve(xs, kptr, self.entry, self.tap_bits, self.codes, self.codebook, tap_off,
                 chan_stride, batch_stride, wq, band, self.bias, act, out, parallel, residual)
        return out


def prepare_conv(row_ptr, col_idx, codes, codebook, bias=None, *, in_channels, kernel_size,
                 stride=1, padding=0, dilation=1, groups=1, check_values=True):
    """Check a sparse conv layer once (every CSR value) and precompute, per stored entry, its
    input channel and kernel tap packed in one uint32; returns a :class:`SparseConv2d`.

    row_ptr: int64[Cout+1]; col_idx: uint16 (when Cin/groups*kh*kw <= MAX_UINT16_COLUMNS) or
    int32, column ``ci*kh*kw + ky*kw + kx`` within the group; codes: uint8; codebook:
    float32[1..MAX_CODEBOOK_SIZE];
    bias: float32[Cout] or None. kernel_size, stride, dilation: int or (h, w).
    padding: int, (h, w), (top, left, bottom, right), "valid" or "same" (stride 1).
    ``check_values=False`` checks shapes and dtypes only, for values already known good (see
    :func:`prepare_linear`).
    """
    return SparseConv2d(row_ptr, col_idx, codes, codebook, bias, in_channels, kernel_size, stride,
                        padding, dilation, groups, check_values)


def conv2d(x, row_ptr, col_idx, codes, codebook, bias=None, kernel_size=None, stride=1, padding=0,
           dilation=1, groups=1, activation="none", *, parallel=None):
    """Direct sparse convolution ``act(conv2d(x, W) + bias)`` in one call (prepare + run).

    x: float32 [B, Cin, H, W], C-contiguous. The other arguments are those of
    :func:`prepare_conv` (``in_channels`` taken from x) plus the fused ``activation``.
    A layer run more than once should be prepared once with :func:`prepare_conv`.
    Returns float32 [B, Cout, Ho, Wo].
    """
    if kernel_size is None:
        raise KernelArgumentError("conv2d needs kernel_size")
    check_float32("x", x, ndim=4)
    layer = SparseConv2d(row_ptr, col_idx, codes, codebook, bias, x.shape[1], kernel_size, stride,
                         padding, dilation, groups)
    return layer(x, activation, parallel=parallel)


# ---------------------------------------------------------------------------------------------
# 1-D convolution: the 2-D kernel on inputs of height 1
# ---------------------------------------------------------------------------------------------


def _one_d(name, v, minimum):
    """An int (or a 1-sequence of one) >= minimum, as a Python int."""
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise KernelArgumentError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def _padding_1d(padding):
    """A 1-D padding spec (int, (left, right), "valid", "same") as the 2-D layer's."""
    if isinstance(padding, str):
        return padding
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        left, right = (_one_d("padding", p, 0) for p in padding)
        return (0, left, 0, right)
    p = _one_d("padding", padding, 0)
    return (0, p, 0, p)


class SparseConv1d:
    """A sparse 1-D convolution: the 2-D layer (:class:`SparseConv2d`) with a kernel, stride,
    padding and dilation of height 1, run on the input seen as [B, C, 1, L] (a view, no copy).

    The weight [Cout, Cin/groups, k] is stored as [Cout, Cin/groups*k] in CSR form (column
    ``ci*k + kx``), which is the 2-D layer's layout for kh = 1. ``layer(x, activation)`` maps
    float32 [B, in_channels, L] to float32 [B, out_channels, Lout].
    """

    def __init__(self, row_ptr, col_idx, codes, codebook, bias, in_channels, kernel_size, stride,
                 padding, dilation, groups, check_values=True):
        self.kernel_size = _one_d("kernel_size", kernel_size, 1)
        self.stride = _one_d("stride", stride, 1)
        self.dilation = _one_d("dilation", dilation, 1)
        self.conv = SparseConv2d(row_ptr, col_idx, codes, codebook, bias, in_channels,
                                 (1, self.kernel_size), (1, self.stride),
                                 _padding_1d(padding), (1, self.dilation), groups, check_values)
        self.padding = (self.conv.padding[1], self.conv.padding[3])  # (left, right)

    in_channels = property(lambda self: self.conv.in_channels)
    out_channels = property(lambda self: self.conv.out_channels)
    groups = property(lambda self: self.conv.groups)
    nnz = property(lambda self: self.conv.nnz)

    def output_size(self, length):
        """Lout for an input of `length` (raises when the input is too short)."""
        return self.conv.output_size(1, length)[1]

    def __call__(self, x, activation="none", *, parallel=None):
        check_float32("x", x, ndim=3, contiguous=False)
        x = np.ascontiguousarray(x)
        n_batch, cin, length = x.shape
        y = self.conv(x.reshape(n_batch, cin, 1, length), activation, parallel=parallel)
        return y.reshape(n_batch, y.shape[1], y.shape[3])


def prepare_conv1d(row_ptr, col_idx, codes, codebook, bias=None, *, in_channels, kernel_size,
                   stride=1, padding=0, dilation=1, groups=1, check_values=True):
    """Check a sparse 1-D conv layer once and prepare it; returns a :class:`SparseConv1d`.

    The arguments are those of :func:`prepare_conv` for a weight [Cout, Cin/groups, k], with
    ints for kernel_size, stride and dilation, and padding an int, (left, right), "valid" or
    "same" (stride 1; an odd total puts the extra zero on the right, as PyTorch does).
    """
    return SparseConv1d(row_ptr, col_idx, codes, codebook, bias, in_channels, kernel_size,
                        stride, padding, dilation, groups, check_values)


def conv1d(x, row_ptr, col_idx, codes, codebook, bias=None, kernel_size=None, stride=1, padding=0,
           dilation=1, groups=1, activation="none", *, parallel=None):
    """Direct sparse 1-D convolution ``act(conv1d(x, W) + bias)`` in one call (prepare + run);
    x: float32 [B, Cin, L]. See :func:`prepare_conv1d`."""
    if kernel_size is None:
        raise KernelArgumentError("conv1d needs kernel_size")
    check_float32("x", x, ndim=3, contiguous=False)
    layer = SparseConv1d(row_ptr, col_idx, codes, codebook, bias, x.shape[1], kernel_size,
                         stride, padding, dilation, groups)
    return layer(x, activation, parallel=parallel)
