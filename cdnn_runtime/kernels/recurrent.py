"""Recurrent layers (LSTM, GRU, Elman RNN): one layer of one or two directions, batch first,
x [B, T, in] -> y [B, T, D * H], h_n [B, D, H] (and the LSTM's c_n [B, D, H]).

Per direction, the input projection of every step at once, ``gx = x @ W_ih^T + b_ih``
([B * T, G * H] for G gates), then per step ``gh = h @ W_hh^T + b_hh`` ([B, G * H]) and the
cell's update in float32, gates in PyTorch's order (``a_k = gx[..., kH:(k+1)H]``, likewise
``b_k`` of gh):

* LSTM (i, f, g, o): ``c' = s(a_1 + b_1) * c + s(a_0 + b_0) * tanh(a_2 + b_2)``,
  ``h' = s(a_3 + b_3) * tanh(c')``;
* GRU (r, z, n): ``n = tanh(a_2 + s(a_0 + b_0) * b_2)``, ``z = s(a_1 + b_1)``,
  ``h' = (1 - z) * n + z * h``;
* RNN: ``h' = tanh(a_0 + b_0)`` (or relu),

with ``s`` the logistic sigmoid. The reverse direction runs t = T-1 .. 0 with its own weights;
y holds the forward direction's h in ``[..., :H]`` and the reverse one's in ``[..., H:]``.
A weight is a raw float32 array or CSR + codebook (the reader's SparseTensor), multiplied
through the sparse linear kernels, never densified.
"""

import numpy as np
from numba import njit

from .._jit import jit_cache
from ._common import KernelArgumentError, check_float32_array
from .dense_linear import linear_dense
from .sparse_linear import prepare_linear

_CACHE = jit_cache(__file__)  # where compiled kernels are kept: cdnn_runtime/_jit.py

#: Cell -> gates per hidden unit (rows of W_ih and W_hh per hidden unit).
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


@njit(cache=_CACHE)
def _sigmoid(v):
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-v))


@njit(cache=_CACHE)
def lstm_step(gx, t, gh, h, c, y, offset):
    """One LSTM step of every sample from gx[b, t] and gh[b] (gates i, f, g, o): c and h
    updated in place, h also written to y[b, t, offset:offset + H]."""
    n_batch, hidden = h.shape
    for b in range(n_batch):
        for j in range(hidden):
            i = _sigmoid(gx[b, t, j] + gh[b, j])
            f = _sigmoid(gx[b, t, hidden + j] + gh[b, hidden + j])
            g = np.tanh(gx[b, t, 2 * hidden + j] + gh[b, 2 * hidden + j])
            o = _sigmoid(gx[b, t, 3 * hidden + j] + gh[b, 3 * hidden + j])
            cell = f * c[b, j] + i * g
            c[b, j] = cell
            h[b, j] = o * np.tanh(cell)
            y[b, t, offset + j] = h[b, j]


@njit(cache=_CACHE)
def gru_step(gx, t, gh, h, y, offset):
    """One GRU step of every sample (gates r, z, n; gh holds b_hh, so that n reads
    r * (W_hn h + b_hn)): h updated in place and written to y[b, t, offset:offset + H]."""
    n_batch, hidden = h.shape
    one = np.float32(1.0)
    for b in range(n_batch):
        for j in range(hidden):
            r = _sigmoid(gx[b, t, j] + gh[b, j])
            z = _sigmoid(gx[b, t, hidden + j] + gh[b, hidden + j])
            n = np.tanh(gx[b, t, 2 * hidden + j] + r * gh[b, 2 * hidden + j])
            h[b, j] = (one - z) * n + z * h[b, j]
            y[b, t, offset + j] = h[b, j]


@njit(cache=_CACHE)
def rnn_step(gx, t, gh, h, y, offset, relu):
    """One Elman RNN step of every sample: h = tanh(gx[b, t] + gh[b]) (relu with `relu`; NaN
    stays NaN), in place and written to y[b, t, offset:offset + H]."""
    n_batch, hidden = h.shape
    for b in range(n_batch):
        for j in range(hidden):
            v = gx[b, t, j] + gh[b, j]
            if relu:
                h[b, j] = np.float32(0.0) if v < 0 else v
            else:
                h[b, j] = np.tanh(v)
            y[b, t, offset + j] = h[b, j]


def _projection(weight, bias, role):
    """(x [n, in] -> x @ weight.T + bias [n, out], out, in) of a raw float32 weight or a CSR +
    codebook one (row_ptr, col_idx, codes, codebook, n_cols: as the reader checked it)."""
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=np.float32)
    if isinstance(weight, np.ndarray):
        if weight.ndim != 2:
            raise KernelArgumentError(f"{role} must be 2-D, has shape {list(weight.shape)}")
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        return (lambda x: linear_dense(x, weight, bias)), weight.shape[0], weight.shape[1]
    layer = prepare_linear(np.ascontiguousarray(weight.row_ptr, dtype=np.int64),
                           weight.col_idx, weight.codes,
                           np.ascontiguousarray(weight.codebook, dtype=np.float32), bias,
                           in_features=weight.n_cols, check_values=False)
    return layer, layer.out_features, layer.in_features


class _Direction:
    """One direction's input projection (W_ih, b_ih) and recurrent one (W_hh, b_hh)."""

    def __init__(self, rows, hidden, w_ih, w_hh, b_ih=None, b_hh=None):
        self.input_proj, out_ih, self.in_features = _projection(w_ih, b_ih, "w_ih")
        self.hidden_proj, out_hh, in_hh = _projection(w_hh, b_hh, "w_hh")
        if out_ih != rows or (out_hh, in_hh) != (rows, hidden):
            raise KernelArgumentError(f"w_ih has {out_ih} rows and w_hh shape [{out_hh}, "
                                      f"{in_hh}]; a layer of {hidden} hidden units takes "
                                      f"{rows} rows and w_hh [{rows}, {hidden}]")
        for role, b in (("b_ih", b_ih), ("b_hh", b_hh)):
            if b is not None and np.shape(b) != (rows,):
                raise KernelArgumentError(f"{role} must have shape [{rows}], has "
                                          f"{list(np.shape(b))}")


class Recurrent:
    """One recurrent layer ready to run: ``layer(x, h0=None, c0=None)`` returns [y, h_n] (GRU,
    RNN) or [y, h_n, c_n] (LSTM) for float32 x [B, T, in] of any layout and optional initial
    states [B, D, H] (zeros when absent).

    ``cell`` is "lstm", "gru", "rnn_tanh" or "rnn_relu"; ``directions`` one or two tuples
    (w_ih, w_hh, b_ih, b_hh), the second the reverse direction; biases may be None.
    """

    def __init__(self, cell, hidden_size, directions):
        if cell not in GATES:
            raise KernelArgumentError(f"unknown recurrent cell {cell!r}")
        if not 1 <= len(directions) <= 2:
            raise KernelArgumentError("a recurrent layer has one or two directions")
        self.cell, self.hidden = cell, int(hidden_size)
        rows = GATES[cell] * self.hidden
        self.directions = [_Direction(rows, self.hidden, *d) for d in directions]
        if len({d.in_features for d in self.directions}) != 1:
            raise KernelArgumentError("the two directions' w_ih differ in their input features")
        self.in_features = self.directions[0].in_features

    def _state(self, s, role, n_batch):
        """Initial state `s` [B, D, H] as a fresh contiguous float32 array, zeros for None."""
        shape = (n_batch, len(self.directions), self.hidden)
        if s is None:
            return np.zeros(shape, np.float32)
        s = check_float32_array(role, s)
        if s.shape != shape:
            raise KernelArgumentError(f"{role} must have shape {list(shape)} (batch, "
                                      f"directions, hidden), got {list(s.shape)}")
        return np.array(s, dtype=np.float32, order="C")

    def __call__(self, x, h0=None, c0=None):
        x = check_float32_array("x", x)
        if x.ndim != 3 or x.shape[2] != self.in_features:
            raise KernelArgumentError(f"x must be [batch, time, {self.in_features}], got shape "
                                      f"{list(x.shape)}")
        n_batch, steps, _ = x.shape
        hidden, lstm = self.hidden, self.cell == "lstm"
        h_n = self._state(h0, "h0", n_batch)
        c_n = self._state(c0, "c0", n_batch) if lstm else None
        y = np.empty((n_batch, steps, len(self.directions) * hidden), np.float32)
        flat = np.ascontiguousarray(x).reshape(n_batch * steps, self.in_features)
        for d, direction in enumerate(self.directions):
            if n_batch == 0 or steps == 0:
                continue
            gx = direction.input_proj(flat).reshape(n_batch, steps, -1)
            h = np.ascontiguousarray(h_n[:, d])
            c = np.ascontiguousarray(c_n[:, d]) if lstm else None
            for t in (range(steps) if d == 0 else range(steps - 1, -1, -1)):
                gh = direction.hidden_proj(h)
                if lstm:
                    lstm_step(gx, t, gh, h, c, y, d * hidden)
                elif self.cell == "gru":
                    gru_step(gx, t, gh, h, y, d * hidden)
                else:
                    rnn_step(gx, t, gh, h, y, d * hidden, self.cell == "rnn_relu")
            h_n[:, d] = h
            if lstm:
                c_n[:, d] = c
        return [y, h_n, c_n] if lstm else [y, h_n]
