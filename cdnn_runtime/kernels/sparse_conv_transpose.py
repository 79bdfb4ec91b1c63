"""Sparse transposed 2-D convolution (``conv_transpose2d``) from CSR + codebook storage, as a
gather by output phase through the direct sparse convolution of :mod:`.sparse_conv`.

The weight [Cin, Cout/groups, kh, kw] is stored as its 2-D view [Cin, Cout/groups*kh*kw] in
CSR form: row ``ci``, column ``o*kh*kw + ky*kw + kx`` (o within the group of ci). Stored
weight (ci, o, ky, kx) sends input pixel (iy, ix) of channel ci to the output pixel of padded
coordinates ``(iy*sh + ky*dh, ix*sw + kx*dw)`` of channel ``group(ci)*Cout/groups + o``; the
output is that full output with `padding` cropped at both ends and `output_padding` more rows
and columns at the end.

Write ``ky*dh = qy*sh + ry`` (0 <= ry < sh), and likewise for columns: the tap feeds only
output rows of phase ry, where output row ``Q*sh + ry`` reads input row ``Q - qy``. Each of the
sh*sw output phases is therefore a stride-1 convolution of the zero-padded input with the
taps of that phase: the layer re-sorts the stored entries (once, at load) into rows
``slot(ry, rx)*Cout + o``, runs :func:`.sparse_conv.convolve` into phase planes
[B, slots*Cout, Qh, Qw] and interleaves them into the output (for stride 1 the one phase plane
is the output). A phase that no tap feeds (a stride beyond the dilated kernel) has no slot:
its outputs are the bias. Every multiply-add is one the transposed convolution needs; no
dense weight, no zero-stuffed input.
"""

import numpy as np
from numba import njit, prange

from .._jit import jit_cache, threaded_or_serial
from ._common import (
    KernelArgumentError,
    apply_activation,
    as_pair,
    check_csr,
    check_float32,
    elementwise_threaded,
    parse_activation,
)
from .sparse_conv import (
    band_rows,
    check_groups,
    chunk_pointers,
    convolve,
    entry_tap_bits,
    phase_split,
    positive_int,
    runs_threaded,
)

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py


@njit(cache=_CACHE)
def _interleave_plane(planes, slot_of, fill, act, act_param, b, o, n_out, sh, sw, off_y, off_x,
                      out):
    dst = out[b, o]
    empty = apply_activation(fill[o], act, act_param)
    for y in range(dst.shape[0]):
        yy = y + off_y
        i = yy // sh
        ry = yy - i * sh
        for x in range(dst.shape[1]):
            xx = x + off_x
            j = xx // sw
            slot = slot_of[ry * sw + xx - j * sw]
            dst[y, x] = empty if slot < 0 else planes[b, slot * n_out + o, i, j]


@njit(cache=_CACHE, parallel=True)
def interleave_parallel(planes, slot_of, fill, act, act_param, sh, sw, off_y, off_x, out):
    """out[b, o, y, x] = planes[b, slot*Cout + o, i, j] where y + off_y = i*sh + ry,
    x + off_x = j*sw + rx and slot = slot_of[ry*sw + rx]: the phase planes woven into the
    output, cropped; a phase without taps (slot -1) gives act(fill[o]) (the bias)."""
    n_out = out.shape[1]
    for t in prange(out.shape[0] * n_out):
        _interleave_plane(planes, slot_of, fill, act, act_param, t // n_out, t % n_out, n_out,
                          sh, sw, off_y, off_x, out)


@njit(cache=_CACHE)
def interleave_serial(planes, slot_of, fill, act, act_param, sh, sw, off_y, off_x, out):
    """Serial :func:`interleave_parallel`."""
    n_out = out.shape[1]
    for b in range(out.shape[0]):
        for o in range(n_out):
            _interleave_plane(planes, slot_of, fill, act, act_param, b, o, n_out, sh, sw, off_y,
                              off_x, out)


def _phase_slots(kernel_size, stride, dilation):
    """The output phases some tap feeds, numbered: int64[sh*sw] of slot numbers, -1 for a
    phase no tap feeds (when the stride exceeds the dilated kernel), and their count."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    fed = np.zeros(sh * sw, bool)
    ry = np.arange(kh, dtype=np.int64) * dh % sh
    rx = np.arange(kw, dtype=np.int64) * dw % sw
    fed[(ry[:, None] * sw + rx[None, :]).reshape(-1)] = True
    slot_of = np.full(sh * sw, -1, np.int64)
    slot_of[fed] = np.arange(int(fed.sum()))
    return slot_of, int(fed.sum())


def _phase_rows(row_ptr, col_idx, khw, kw, cin_g, cout_g, n_out, slot_of, stride, dilation):
    """For each stored entry: its input channel, its tap, and its row of the phase-sorted
    layout, ``slot(ry, rx)*Cout + o`` with o the absolute output channel (int64 arrays)."""
    in_ch = np.repeat(np.arange(row_ptr.shape[0] - 1, dtype=np.int64), np.diff(row_ptr))
    col = col_idx.astype(np.int64)
    tap = col % khw
    out_ch = (in_ch // cin_g) * cout_g + col // khw
    ry = (tap // kw) * dilation[0] % stride[0]
    rx = (tap % kw) * dilation[1] % stride[1]
    return in_ch, tap, slot_of[ry * stride[1] + rx] * n_out + out_ch


class SparseConvTranspose2d:
    """A sparse transposed convolution layer checked and prepared once, run many times.

    Built by :func:`prepare_conv_transpose`. Holds, sorted by phase row (see the module
    docstring), one uint32 ``entry = in_ch << tap_bits | tap`` and one code per stored weight,
    the codebook and the bias repeated per phase. ``layer(x, activation="none")`` maps float32
    [B, in_channels, H, W] to float32 [B, out_channels, Ho, Wo] with
    ``Ho = (H-1)*sh - 2*ph + dh*(kh-1) + oph + 1``.
    """

    def __init__(self, row_ptr, col_idx, codes, codebook, bias, out_channels, kernel_size, stride,
                 padding, output_padding, dilation, groups, check_values=True):
        if not isinstance(row_ptr, np.ndarray) or row_ptr.ndim != 1 or row_ptr.shape[0] < 1:
            raise KernelArgumentError("row_ptr must be a 1-D numpy array of in_channels+1 entries")
        self.kernel_size = as_pair("kernel_size", kernel_size, 1)
        self.stride = as_pair("stride", stride, 1)
        self.padding = as_pair("padding", padding, 0)
        self.output_padding = as_pair("output_padding", output_padding, 0)
        self.dilation = as_pair("dilation", dilation, 1)
        self.groups = positive_int("groups", groups)
        self.out_channels = positive_int("out_channels", out_channels)
        self.in_channels = row_ptr.shape[0] - 1
        check_groups(self.in_channels, self.out_channels, self.groups)
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride,
                                                    self.dilation)):
            raise KernelArgumentError(
                f"output_padding {self.output_padding} must be smaller than the stride "
                f"{self.stride} or the dilation {self.dilation}")
        kh, kw = self.kernel_size
        khw = kh * kw
        cout_g = self.out_channels // self.groups
        check_csr(row_ptr, col_idx, codes, codebook, self.in_channels, cout_g * khw,
                  full=check_values)
        if bias is not None:
            check_float32("bias", bias, ndim=1)
            if bias.shape[0] != self.out_channels:
                raise KernelArgumentError(f"bias must have {self.out_channels} entries, got "
                                          f"{bias.shape[0]}")
        self.bias = bias
        self.codebook = codebook
        self.tap_bits = entry_tap_bits(self.in_channels, khw)
        self.slot_of, self.n_slots = _phase_slots(self.kernel_size, self.stride, self.dilation)
        in_ch, tap, rows = _phase_rows(row_ptr, col_idx, khw, kw, self.in_channels // self.groups,
                                       cout_g, self.out_channels, self.slot_of, self.stride,
                                       self.dilation)
        order = np.argsort(rows, kind="stable")  # within a row: by input channel, then tap
        n_rows = self.n_slots * self.out_channels
        self.row_ptr = np.zeros(n_rows + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=self.row_ptr[1:])
        self.entry = ((in_ch[order] << self.tap_bits) | tap[order]).astype(np.uint32)
        self.codes = np.ascontiguousarray(codes[order])
        self.phase_bias = None if bias is None else np.tile(bias, self.n_slots)
        self._fill = bias if bias is not None else np.zeros(self.out_channels, np.float32)
        self._geometry = {}

    @property
    def nnz(self):
        return self.entry.shape[0]

    def output_size(self, h, w):
        """(Ho, Wo) for an input of h x w (raises when the padding crops everything)."""
        sizes = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in zip(
            (h, w), self.stride, self.padding, self.dilation, self.kernel_size,
            self.output_padding)]
        if min(sizes) < 1:
            raise KernelArgumentError(f"input {h}x{w} gives an empty output: padding "
                                      f"{self.padding} crops all of it")
        return tuple(sizes)

    def _geometry_for(self, h, w):
        """Per input size: output size, phase-plane size (Qh, Qw) and the padded input's
        (Hq, Wq) and padding, the offset of each tap into a padded channel, the crop offsets
        of the output within the woven planes, and the band."""
        geo = self._geometry.get((h, w))
        if geo is not None:
            return geo
        ho, wo = self.output_size(h, w)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        ph, pw = self.padding
        # phase-plane rows Q0 .. Q0+Qh-1 cover padded output rows ph .. ph+Ho-1
        q0, x0 = ph // sh, pw // sw
        qh, qw = -(-(ph + ho) // sh) - q0, -(-(pw + wo) // sw) - x0
        qy = np.repeat(np.arange(kh, dtype=np.int64) * dh // sh, kw)
        qx = np.tile(np.arange(kw, dtype=np.int64) * dw // sw, kh)
        pad_t, pad_l = max(0, int(qy.max()) - q0), max(0, int(qx.max()) - x0)
        hq, wq = qh + q0 + pad_t, qw + x0 + pad_l
        tap_off = np.ascontiguousarray((q0 + pad_t - qy) * wq + (x0 + pad_l - qx))
        direct = pad_t == 0 and pad_l == 0 and hq == h and wq == w
        batch_stride = self.in_channels * hq * wq
        band = band_rows(wq, qh)
        kptr = chunk_pointers(self.row_ptr, self.entry, self.tap_bits, self.in_channels,
                              band + int(q0 + pad_t), wq, 1)
        geo = (ho, wo, qh, qw, hq, wq, pad_t, pad_l, direct, tap_off, batch_stride, band, kptr,
               ph - q0 * sh, pw - x0 * sw)
        if len(self._geometry) >= 8:
            self._geometry.clear()
        self._geometry[(h, w)] = geo
        return geo

    def __call__(self, x, activation="none", *, parallel=None):
        check_float32("x", x, ndim=4, contiguous=False)
        x = np.ascontiguousarray(x)
        n_batch, cin, h, w = x.shape
        if cin != self.in_channels:
            raise KernelArgumentError(f"x has {cin} channels, the layer expects {self.in_channels}")
        act = parse_activation(activation)
        ho, wo, qh, qw, hq, wq, pad_t, pad_l, direct, tap_off, batch_stride, band, kptr, off_y, \
            off_x = self._geometry_for(h, w)
        sh, sw = self.stride
        planes = np.empty((n_batch, self.n_slots * self.out_channels, qh, qw), np.float32)
        if planes.size == 0:
            return np.empty((n_batch, self.out_channels, ho, wo), np.float32)
        parallel = runs_threaded(parallel, self.nnz, wq, planes)
        xs = x if direct else phase_split(x, 1, 1, pad_t, pad_l, hq, wq, parallel)
        convolve(xs, kptr, self.entry, self.tap_bits, self.codes, self.codebook, tap_off,
                 hq * wq, batch_stride, wq, band, self.phase_bias, act, planes, parallel)
        if (sh, sw) == (1, 1):
            return planes  # stride 1: the one phase plane is the output
        out = np.empty((n_batch, self.out_channels, ho, wo), np.float32)
        weave = threaded_or_serial(interleave_parallel, interleave_serial,
                                   parallel and elementwise_threaded(out.size))
        weave(planes, self.slot_of, self._fill, act.code, act.param, sh, sw, off_y, off_x, out)
        return out


def prepare_conv_transpose(row_ptr, col_idx, codes, codebook, bias=None, *, out_channels,
                           kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                           groups=1, check_values=True):
    """Check a sparse transposed conv layer once (every CSR value unless ``check_values`` is
    False) and sort its entries by output phase; returns a :class:`SparseConvTranspose2d`.

    row_ptr: int64[Cin+1]; col_idx: uint16 or int32, column ``o*kh*kw + ky*kw + kx`` with o
    the output channel within the group; codes: uint8; codebook: float32; bias: float32[Cout]
    or None. kernel_size, stride, padding, output_padding, dilation: int or (h, w).
    """
    return SparseConvTranspose2d(row_ptr, col_idx, codes, codebook, bias, out_channels,
                                 kernel_size, stride, padding, output_padding, dilation, groups,
                                 check_values)


def conv_transpose2d(x, row_ptr, col_idx, codes, codebook, bias=None, *, out_channels,
                     kernel_size, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                     activation="none", parallel=None):
    """``act(conv_transpose2d(x, W) + bias)`` in one call (prepare + run); x: float32
    [B, Cin, H, W]. See :func:`prepare_conv_transpose`."""
    layer = SparseConvTranspose2d(row_ptr, col_idx, codes, codebook, bias, out_channels,
                                  kernel_size, stride, padding, output_padding, dilation, groups)
    return layer(x, activation, parallel=parallel)
