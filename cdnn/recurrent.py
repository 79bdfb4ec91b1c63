"""nn.LSTM, nn.GRU and nn.RNN rewritten for capture: every weight matrix the `weight` of an
nn.Linear of its own, so that the compressor, which works on modules' `weight`, compresses it.

`CaptureRecurrent` holds, per layer k and direction, `ih_l{k}` (W_ih and b_ih) and `hh_l{k}`
(W_hh and b_hh), with a `_reverse` suffix for the backward direction, and computes the same
function from the same values: through ATen's function (which trains), and while torch.export
traces it through ops `cdnn::lstm`, `cdnn::gru`, `cdnn::rnn_tanh` and `cdnn::rnn_relu` (ATen's
function and arguments, one op that torch.export keeps whole), which capture turns into one
graph node per layer.
"""

import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence

from cdnn_runtime.errors import CdnnUnsupportedError

from .mha import _linear

# torch.export traces ATen's recurrent ops through a decomposition that unrolls the time steps,
# which fixes the sequence length; these ops (ATen's arguments, ATen's function) keep it free.

@torch.library.custom_op("cdnn::lstm", mutates_args=())
def _lstm(x: torch.Tensor, hx: list[torch.Tensor], params: list[torch.Tensor], has_biases: bool,
          num_layers: int, dropout: float, train: bool, bidirectional: bool,
          batch_first: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out, h_n, c_n = torch.lstm(x, hx, params, has_biases, num_layers, dropout, train,
                               bidirectional, batch_first)
    return out, h_n, c_n


def _one_state(function):
    """The custom op of GRU or RNN `function`: one state in, (output, h_n) out."""
    def run(x: torch.Tensor, hx: torch.Tensor, params: list[torch.Tensor], has_biases: bool,
            num_layers: int, dropout: float, train: bool, bidirectional: bool,
            batch_first: bool) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_n = function(x, hx, params, has_biases, num_layers, dropout, train,
                            bidirectional, batch_first)
        return out, h_n
    return run


_gru, _rnn_tanh, _rnn_relu = (
    torch.library.custom_op(f"cdnn::{name}", _one_state(fn), mutates_args=())
    for name, fn in (("gru", torch.gru), ("rnn_tanh", torch.rnn_tanh),
                     ("rnn_relu", torch.rnn_relu)))


def _fake_outputs(x, state, params, bidirectional):
    """Empty tensors of the output's shape [x.shape[0], x.shape[1], D * H] and of a state's
    (symbolic under export)."""
    out = x.new_empty(x.shape[0], x.shape[1], (2 if bidirectional else 1) * params[1].shape[1])
    return out, state.new_empty(state.shape)


@_lstm.register_fake
def _(x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    return (*_fake_outputs(x, hx[0], params, bidirectional), hx[1].new_empty(hx[1].shape))


def _fake_one_state(x, hx, params, has_biases, num_layers, dropout, train, bidirectional,
                    batch_first):
    return _fake_outputs(x, hx, params, bidirectional)


for _op in (_gru, _rnn_tanh, _rnn_relu):
    _op.register_fake(_fake_one_state)

#: nn.RNNBase.mode -> (ATen's function, which trains, and the op that torch.export keeps whole).
_FUNCTIONS = {"LSTM": (torch.lstm, _lstm), "GRU": (torch.gru, _gru),
              "RNN_TANH": (torch.rnn_tanh, _rnn_tanh), "RNN_RELU": (torch.rnn_relu, _rnn_relu)}
#: The custom ops, which capture translates as ATen's: op -> (the format's op, the rnn's
#: nonlinearity).
CUSTOM_OPS = {torch.ops.cdnn.lstm.default: ("lstm", None),
              torch.ops.cdnn.gru.default: ("gru", None),
              torch.ops.cdnn.rnn_tanh.default: ("rnn", "tanh"),
              torch.ops.cdnn.rnn_relu.default: ("rnn", "relu")}


class CaptureRecurrent(nn.Module):
    """The function of an nn.LSTM, nn.GRU or nn.RNN `m` without proj_size: ATen's, which
    trains (with m's dropout between layers in training mode), or while torch.export traces
    it the op of the same function that keeps the sequence length free."""

    def __init__(self, m):
        super().__init__()
        if getattr(m, "proj_size", 0):
            raise CdnnUnsupportedError("nn.LSTM with proj_size > 0 is not supported by "
                                       "cdnn_runtime")
        self.mode, self.hidden_size, self.num_layers = m.mode, m.hidden_size, m.num_layers
        self.bias, self.batch_first, self.dropout = m.bias, m.batch_first, m.dropout
        self.bidirectional = m.bidirectional
        self.parts = []
        for k in range(m.num_layers):
            for suffix in ("", "_reverse") if m.bidirectional else ("",):
                for part in ("ih", "hh"):
                    name = f"{part}_l{k}{suffix}"
                    bias = getattr(m, f"bias_{name}") if m.bias else None
                    self.add_module(name, _linear(getattr(m, f"weight_{name}").detach(),
                                                  None if bias is None else bias.detach()))
                    self.parts.append(name)

    def _flat_weights(self):
        """The weights in nn.RNNBase's order: per layer and direction W_ih, W_hh, b_ih, b_hh."""
        flat = []
        for ih, hh in zip(self.parts[::2], self.parts[1::2]):
            ih, hh = getattr(self, ih), getattr(self, hh)
            flat += [ih.weight, hh.weight] + ([ih.bias, hh.bias] if self.bias else [])
        return flat

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            raise CdnnUnsupportedError(f"nn.{self.mode.split('_')[0]} of a PackedSequence is "
                                       "not supported by cdnn_runtime (pad the batch instead)")
        if input.dim() != 3:
            raise CdnnUnsupportedError(f"nn.{self.mode.split('_')[0]} of an unbatched input "
                                       "is not supported by cdnn_runtime")
        lstm = self.mode == "LSTM"
        if hx is None:
            batch = input.shape[0 if self.batch_first else 1]
            zeros = torch.zeros(self.num_layers * (2 if self.bidirectional else 1), batch,
                                self.hidden_size, dtype=input.dtype, device=input.device)
            hx = (zeros, zeros) if lstm else zeros
        args = (self._flat_weights(), self.bias, self.num_layers,
                self.dropout if self.training else 0.0, self.training, self.bidirectional,
                self.batch_first)
        aten_function, export_op = _FUNCTIONS[self.mode]
        run = export_op if torch.compiler.is_exporting() else aten_function
        if lstm:
            out, h_n, c_n = run(input, list(hx), *args)
            return out, (h_n, c_n)
        out, h_n = run(input, hx, *args)
        return out, h_n
