"""Recurrent layers (format version 3): the `lstm`, `gru` and `rnn` ops, one node per layer,
their weight matrices compressed and multiplied from CSR + codebook, against PyTorch."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from cdnn.capture import capture, prepare_for_capture
from cdnn.compress import compress
from cdnn.recipe import PRESETS
from cdnn_runtime import InferenceSession
from cdnn_runtime.errors import CdnnFormatError, CdnnUnsupportedError
from cdnn_runtime.graph import OPS, normalize_attrs
from cdnn_runtime.kernels.recurrent import Recurrent
from cdnn_runtime.reader import read
from cdnn_runtime.report import inspect_report
from cdnn_runtime.writer import Writer
from test_kernels import make_csr
from test_ops_attention import _close, _randn, _run_against_reference

NEW_OPS = ("lstm", "gru", "rnn")
_MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}


def _torch_layer(cell, inputs, hidden, bidirectional, seed=0):
    torch.manual_seed(seed)
    kw = {"nonlinearity": cell[4:]} if cell.startswith("rnn") else {}
    return _MODULES[cell](inputs, hidden, batch_first=True, bidirectional=bidirectional,
                          **kw).eval()


def _directions(m, sparse=False, rng=None):
    """The layer-0 weights of module `m` per direction as the kernel takes them; with
    `sparse`, each matrix replaced (in `m` too) by a random CSR + codebook one."""
    out = []
    for suffix in ("", "_reverse") if m.bidirectional else ("",):
        group = []
        for part in ("ih", "hh"):
            w = getattr(m, f"weight_{part}_l0{suffix}")
            if sparse:
                row_ptr, col_idx, codes, codebook, dense = make_csr(rng, *w.shape, density=0.5,
                                                                    k=8)
                with torch.no_grad():
                    w.copy_(torch.from_numpy(dense))
                w = type("Csr", (), dict(row_ptr=row_ptr, col_idx=col_idx, codes=codes,
                                         codebook=codebook, n_cols=dense.shape[1]))
            else:
                w = w.detach().numpy()
            group.append(w)
        group += [getattr(m, f"bias_{p}_l0{suffix}").detach().numpy() for p in ("ih", "hh")]
        out.append(tuple(group))
    return out


def _torch_run(m, x, h0=None, c0=None):
    """PyTorch's outputs in the op's layout: y, h_n [N, D, H] (and c_n)."""
    state = None if h0 is None else torch.from_numpy(h0).transpose(0, 1).contiguous()
    if c0 is not None:
        state = (state, torch.from_numpy(c0).transpose(0, 1).contiguous())
    with torch.no_grad():
        y, h_n = m(torch.from_numpy(np.ascontiguousarray(x)), state)
    states = h_n if isinstance(h_n, tuple) else (h_n,)
    return [y] + [s.transpose(0, 1) for s in states]


# ---------------------------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", list(_MODULES))
def test_kernel_matches_torch(cell, bidirectional, sparse):
    rng = np.random.default_rng(0)
    m = _torch_layer(cell, 5, 6, bidirectional)
    layer = Recurrent(cell, 6, _directions(m, sparse, rng))
    d = 2 if bidirectional else 1
    x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    h0 = rng.standard_normal((3, d, 6)).astype(np.float32)
    c0 = rng.standard_normal((3, d, 6)).astype(np.float32) if cell == "lstm" else None
    for got, ref in zip(layer(x, h0, c0), _torch_run(m, x, h0, c0)):
        assert got.flags.c_contiguous
        _close(got, ref)
    for got, ref in zip(layer(x), _torch_run(m, x)):  # zeros as the initial states
        _close(got, ref)


def test_kernel_empty_batch_non_contiguous_input_and_one_step():
    rng = np.random.default_rng(1)
    m = _torch_layer("lstm", 4, 3, True)
    layer = Recurrent("lstm", 3, _directions(m))
    outs = layer(np.zeros((0, 5, 4), np.float32))
    assert [o.shape for o in outs] == [(0, 5, 6), (0, 2, 3), (0, 2, 3)]
    wide = rng.standard_normal((2, 6, 8)).astype(np.float32)
    x = wide[:, ::2, 1::2]  # strided in time and features
    assert not x.flags.c_contiguous
    for got, ref in zip(layer(x), _torch_run(m, x)):
        _close(got, ref)
    for got, ref in zip(layer(x[:, :1]), _torch_run(m, x[:, :1])):
        _close(got, ref)


def test_kernel_propagates_nan_and_checks_shapes():
    m = _torch_layer("gru", 4, 3, False)
    layer = Recurrent("gru", 3, _directions(m))
    x = np.ones((2, 3, 4), np.float32)
    x[1, 1, 0] = np.nan
    y, h_n = layer(x)
    assert np.isnan(y[1, 1:]).all() and not np.isnan(y[0]).any() and np.isnan(h_n[1]).all()
    with pytest.raises(ValueError, match=r"x must be \[batch, time, 4\], got shape \[2, 3, 5\]"):
        layer(np.ones((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"h0 must have shape \[2, 1, 3\] \(batch, directions, "
                                         r"hidden\), got \[1, 2, 3\]"):
        layer(x, np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"w_ih has 9 rows and w_hh shape \[9, 3\]; a layer "
                                         "of 3 hidden units takes 12 rows"):
        Recurrent("lstm", 3, _directions(m))


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

def test_the_ops_are_version_3_with_compressible_matrices():
    for op in NEW_OPS:
        assert OPS[op].since == 3
        assert OPS[op].weights == {"w_ih": 2, "w_hh": 2, "w_ih_reverse": 2, "w_hh_reverse": 2}


_SHAPES = {"w4x3": [8, 3], "w4x2": [8, 2], "w3x2": [6, 2], "b8": [8], "w8x5": [8, 5]}


@pytest.mark.parametrize("op, node, attrs, message", [
    ("lstm", {"inputs": ["x", "h0"]}, {"hidden_size": 2},
     r"lstm takes x alone or x, h0 and c0 \(both initial states\)"),
    ("lstm", {"params": {"w_ih_reverse": "w4x3", "w_hh_reverse": "w4x2"}}, {"hidden_size": 2},
     r"lstm has reverse params \['w_hh', 'w_ih'\] but is not bidirectional"),
    ("gru", {"params": {"w_ih": "w3x2", "w_hh": "w3x2", "b_ih": "b8"}},
     {"hidden_size": 2, "bidirectional": True}, r"bidirectional gru's reverse params \[\] "
     r"differ from its forward ones \['b_ih', 'w_hh', 'w_ih'\]"),
    ("lstm", {"params": {"w_ih": "w4x3", "w_hh": "w4x3"}}, {"hidden_size": 2},
     r"lstm w_hh of shape \[8, 3\] is not \[8, 2\] \(hidden_size 2, 4 gates\)"),
    ("gru", {}, {"hidden_size": 2}, r"gru w_ih of shape \[8, 3\] is not \[6, 3\]"),
    ("lstm", {"params": {"w_ih": "w4x3", "w_hh": "w4x2", "b_hh": "w3x2"}}, {"hidden_size": 2},
     r"lstm b_hh of shape \[6, 2\] is not \[8\]"),
    ("rnn", {"params": {"w_ih": "w4x3", "w_hh": "w4x2", "w_ih_reverse": "w8x5",
                        "w_hh_reverse": "w4x2"}}, {"hidden_size": 8, "bidirectional": True},
     r"rnn w_hh of shape \[8, 2\] is not \[8, 8\]"),
    ("lstm", {"params": {"w_ih": "w4x3", "w_hh": "w4x2", "w_ih_reverse": "w8x5",
                         "w_hh_reverse": "w4x2"}}, {"hidden_size": 2, "bidirectional": True},
     r"lstm w_ih_reverse of shape \[8, 5\] is not \[8, 3\]"),
])
def test_the_vocabulary_checks_its_rules(op, node, attrs, message):
    node = {"op": op, "inputs": ["x"], "outputs": ["y", "h"],
            "params": {"w_ih": "w4x3", "w_hh": "w4x2"}, **node}
    attrs = normalize_attrs(op, attrs, "node")
    with pytest.raises(CdnnFormatError, match=message):
        OPS[op].check(node, attrs, {k: {"shape": v} for k, v in _SHAPES.items()}, "node")


def test_a_written_file_with_sparse_matrices_and_initial_states_runs():
    """A bidirectional lstm node with sparse_codebook w_ih, raw w_hh, h0 and c0 as inputs."""
    rng = np.random.default_rng(3)
    m = _torch_layer("lstm", 5, 4, True)
    w = Writer()
    params = {}
    for suffix, (w_ih, w_hh, b_ih, b_hh) in zip(("", "_reverse"), _directions(m, True, rng)):
        w.add_sparse_codebook("w_ih" + suffix, (16, 5), w_ih.row_ptr, w_ih.col_idx,
                              w_ih.codes, w_ih.codebook)
        w.add_raw("w_hh" + suffix, m.state_dict()["weight_hh_l0" + suffix].numpy())
        w.add_raw("b_ih" + suffix, b_ih)
        w.add_raw("b_hh" + suffix, b_hh.astype(np.float16))
        params.update({r + suffix: r + suffix for r in ("w_ih", "w_hh", "b_ih", "b_hh")})
    with torch.no_grad():  # the reference reads the float16 bias as the file stores it
        for suffix in ("", "_reverse"):
            b = getattr(m, "bias_hh_l0" + suffix)
            b.copy_(b.half().float())
    w.set_graph({"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 6, 5]},
                            {"name": "h0", "dtype": "float32", "shape": [None, 2, 4]},
                            {"name": "c0", "dtype": "float32", "shape": [None, 2, 4]}],
                 "nodes": [{"name": "rnn.l0", "op": "lstm", "inputs": ["x", "h0", "c0"],
                            "outputs": ["y", "h_n", "c_n"], "params": params,
                            "attrs": {"hidden_size": 4, "bidirectional": True}}],
                 "outputs": [{"name": "y"}, {"name": "h_n"}, {"name": "c_n"}]})
    data = w.to_bytes()
    assert read(data).version == 3
    sess = InferenceSession(data)
    assert [o.shape for o in sess.get_outputs()] == [[None, 6, 8], [None, 2, 4], [None, 2, 4]]
    feed = {"x": rng.standard_normal((3, 6, 5)).astype(np.float32),
            "h0": rng.standard_normal((3, 2, 4)).astype(np.float32),
            "c0": rng.standard_normal((3, 2, 4)).astype(np.float32)}
    for got, ref in zip(sess.run(None, feed), _torch_run(m, feed["x"], feed["h0"], feed["c0"])):
        _close(got, ref)
    with pytest.raises(ValueError, match=r"input 'h0' has shape \[3, 1, 4\], expected "):
        sess.run(None, {**feed, "h0": feed["h0"][:, :1]})


# ---------------------------------------------------------------------------------------------
# Capture, compress, run
# ---------------------------------------------------------------------------------------------

class _Recurrent(nn.Module):
    """A recurrent module on `[batch, time, features]` (transposed for batch_first=False),
    with an optional initial state input `[batch, layers * directions, hidden]` (the LSTM's
    c0 half of it), returning every output with the batch first where the module has it."""

    def __init__(self, module, state=False):
        super().__init__()
        self.rnn, self.state = module, state
        self.lstm, self.batch_first = isinstance(module, nn.LSTM), module.batch_first

    def forward(self, x, h0=None):
        if not self.batch_first:
            x = x.transpose(0, 1)
        hx = None
        if self.state:
            hx = h0.transpose(0, 1).contiguous()
            hx = (hx, hx * 0.5) if self.lstm else hx
        out, states = self.rnn(x, hx)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return (out, *states) if self.lstm else (out, states)


CASES = {
    "LSTM, 2 layers, batch_first": (lambda: _Recurrent(nn.LSTM(6, 8, 2, batch_first=True)),
                                    [(5, 6)]),
    "LSTM, bidirectional, sequence first": (lambda: _Recurrent(nn.LSTM(6, 8,
                                                                       bidirectional=True)),
                                            [(5, 6)]),
    "GRU, bidirectional, 2 layers, initial state": (
        lambda: _Recurrent(nn.GRU(6, 8, 2, batch_first=True, bidirectional=True), True),
        [(5, 6), (4, 8)]),
    "LSTM, 3 layers, bidirectional, sequence first, initial state": (
        lambda: _Recurrent(nn.LSTM(6, 4, 3, bidirectional=True), True), [(5, 6), (6, 4)]),
    "RNN relu, no bias, 2 layers": (
        lambda: _Recurrent(nn.RNN(6, 8, 2, nonlinearity="relu", bias=False, batch_first=True)),
        [(5, 6)]),
}


def _compress(model, shapes, preset="deep-compression"):
    return compress(model, tuple(_randn(1, *s, seed=7 + i) for i, s in enumerate(shapes)),
                    preset=preset)


def _coded_share(packed):
    """The share of the model's parameters stored sparse_codebook."""
    return sum(math.prod(t.shape) for t in packed.file.tensors
               if t.encoding == "sparse_codebook") / packed.dense_params


@pytest.mark.parametrize("name", list(CASES))
def test_recurrent_models_capture_from_batch_one_and_run_batches_of_one_and_three(name):
    make, shapes = CASES[name]
    torch.manual_seed(0)
    packed = _compress(make().eval(), shapes)
    ops = [n["op"] for n in packed.file.graph["nodes"]]
    module = make()
    assert sum(op in NEW_OPS for op in ops) == module.rnn.num_layers
    _run_against_reference(packed, shapes)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_both_presets_code_the_matrices_of_an_lstm_model(preset):
    torch.manual_seed(1)
    model = _Recurrent(nn.LSTM(6, 16, 2, batch_first=True)).eval()
    packed = _compress(model, [(5, 6)], preset)
    kinds = {t: kind for t, kind in capture(prepare_for_capture(model),
                                            (torch.randn(1, 5, 6),)).weights.items()}
    assert kinds == {f"rnn.{p}_l{k}.weight": "lstm" for p in ("ih", "hh") for k in (0, 1)}
    assert set(packed.settings) == {f"rnn.{p}_l{k}" for p in ("ih", "hh") for k in (0, 1)}
    assert _coded_share(packed) >= 0.9
    layers = {r["layer"]: r for r in inspect_report(packed.file, packed.nbytes)["layers"]}
    assert layers["rnn.hh_l1"]["op"] == "lstm"
    assert layers["rnn.hh_l1"]["bias_tensor"] == "rnn.hh_l1.bias"
    _run_against_reference(packed, [(5, 6)])


def test_a_training_hook_trains_the_swapped_layers():
    """Pruning with retraining and fine-tuning the centroids run through the swapped module
    (ATen's function outside export, which has gradients; dropout between layers)."""
    torch.manual_seed(7)
    model = _Recurrent(nn.LSTM(6, 8, 2, batch_first=True, dropout=0.2)).eval()
    x, target = torch.randn(4, 5, 6), torch.randn(4, 5, 8)
    moved = []

    def train(m):
        before = m.rnn.hh_l1.weight.detach().clone()
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        opt.zero_grad()
        nn.functional.mse_loss(m(x)[0], target).backward()
        opt.step()
        moved.append(not torch.equal(before, m.rnn.hh_l1.weight.detach()))

    packed = compress(model, (x[:1],), train=train, prune_steps=1)
    assert len(moved) == 2 and all(moved)  # a pruning step, the centroids' fine-tuning
    _run_against_reference(packed, [(5, 6)])


def test_a_layer_state_picked_from_h_n_reads_the_layer_output():
    """`h_n[-1]` and `c_n[0]` of a module's states read the layers' own outputs (a select of
    the layer's direction), the stitched [layers * D, N, H] value is not built; the input's
    transpose to sequence first is read through, no node of its own."""

    class LastState(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 6, 2, bidirectional=True)
            self.fc = nn.Linear(12, 3)

        def forward(self, x):
            _, (h, c) = self.rnn(x.transpose(0, 1))
            return self.fc(torch.cat([h[-2], h[-1]], dim=1)) + c[0].sum(1, keepdim=True)

    torch.manual_seed(2)
    packed = _compress(LastState().eval(), [(5, 4)], "lossless-ish")
    ops = [n["op"] for n in packed.file.graph["nodes"]]
    assert ops.count("lstm") == 2 and ops.count("select") == 3 and ops.count("cat") == 1
    assert "transpose" not in ops
    _run_against_reference(packed, [(5, 4)])


class _Steps(nn.Module):
    """The last step of a recurrent module's output through a linear head, and the output
    itself, batch first; the module sequence first or, transposed the other way, batch first
    (then the output is returned sequence first)."""

    def __init__(self, batch_first):
        super().__init__()
        self.rnn = nn.GRU(4, 6, 2, batch_first=batch_first, bidirectional=True)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        if self.rnn.batch_first:
            out, _ = self.rnn(x)
            return self.fc(out[:, -1]), out.transpose(0, 1)
        out, _ = self.rnn(x.transpose(0, 1))
        return self.fc(out[-1]), out.transpose(0, 1)


@pytest.mark.parametrize("batch_first", [False, True])
def test_a_sequence_first_output_is_read_batch_first(batch_first):
    """Of a sequence-first module, `out[-1]` is a step of the layer's batch-first output and
    `out.transpose(0, 1)` that output itself, no transposes; a batch-first module's output
    transposed to sequence first is a transpose."""
    torch.manual_seed(6)
    packed = _compress(_Steps(batch_first).eval(), [(5, 4)], "lossless-ish")
    ops = [n["op"] for n in packed.file.graph["nodes"]]
    assert ops.count("gru") == 2 and ops.count("transpose") == (1 if batch_first else 0)
    _run_against_reference(packed, [(5, 4)])


def test_the_zoo_keyword_spotter_captures_and_runs():
    """The two-layer LSTM keyword spotter of cdnn.zoo_sequence on 49 MFCC frames of 10."""
    from cdnn import zoo_sequence
    torch.manual_seed(3)
    kws = _compress(zoo_sequence.lstm_kws_tiny().eval(), [(49, 10)])
    assert [n["op"] for n in kws.file.graph["nodes"]].count("lstm") == 2
    assert _coded_share(kws) >= 0.9
    _run_against_reference(kws, [(49, 10)])


def test_the_zoo_gru_tagger_captures_and_runs():
    """The bidirectional GRU tagger of cdnn.zoo_sequence: token ids -> embedding -> GRU ->
    linear per token."""
    from cdnn import zoo_sequence
    torch.manual_seed(4)
    tagger = compress(zoo_sequence.gru_tagger_tiny().eval(), torch.randint(0, 40, (1, 10)))
    assert {"embedding", "gru", "linear"} <= {n["op"] for n in tagger.file.graph["nodes"]}
    assert _coded_share(tagger) >= 0.9
    sess = InferenceSession(tagger.to_bytes())
    for batch in (1, 3):
        ids = torch.randint(0, 40, (batch, 10), generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = tagger.reference_model()(ids)
        _close(sess.run(None, {"ids": ids.numpy()})[0], ref, rtol=1e-4)


def test_a_free_sequence_length_runs_at_other_lengths():
    """cdnn.recurrent's ops keep the sequence length free under torch.export (ATen's lstm
    unrolls the steps); a GRU with an initial state runs at lengths 2 and 9."""
    torch.manual_seed(5)
    model = _Recurrent(nn.GRU(6, 8, 2, batch_first=True, bidirectional=True), True).eval()
    packed = compress(model, (_randn(1, 5, 6), _randn(1, 4, 8)),
                      dynamic_dims={0: {1: "seq"}})
    sess = InferenceSession(packed.to_bytes())
    assert sess.get_inputs()[0].shape == [None, "seq", 6]
    for batch, length in ((1, 2), (3, 9)):
        xs = (_randn(batch, length, 6, seed=length), _randn(batch, 4, 8, seed=batch))
        with torch.no_grad():
            refs = packed.reference_model()(*xs)
        for y, ref in zip(sess.run(None, {"x": xs[0].numpy(), "h0": xs[1].numpy()}), refs):
            _close(y, ref, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:The tensor attributes self.rnn._flat_weights")
def test_capture_of_the_module_itself_reads_aten_ops_and_keeps_its_weights_raw():
    """Without prepare_for_capture, nn.LSTM exports as aten.lstm.input: the same nodes, its
    weights (not modules' `weight`) stored raw with a warning."""
    model = _Recurrent(nn.LSTM(6, 8, batch_first=True, bidirectional=True)).eval()
    with pytest.warns(UserWarning, match=r"rnn.weight_(ih|hh)_l0(_reverse)?' is the weight of "
                                         "a lstm but not a module's `weight`"):
        cap = capture(model, (torch.randn(1, 5, 6),))
    lstm = [n for n in cap.nodes if n["op"] == "lstm"]
    assert len(lstm) == 1 and lstm[0]["params"]["w_hh_reverse"] == "rnn.weight_hh_l0_reverse"
    assert cap.weights == {}


@pytest.mark.parametrize("make, why", [
    (lambda: _Recurrent(nn.LSTM(6, 8, proj_size=4, batch_first=True)), "proj_size > 0"),
])
def test_unsupported_forms_are_named(make, why):
    with pytest.raises(CdnnUnsupportedError, match=why):
        _compress(make().eval(), [(5, 6)])


def test_zeros_of_the_batch_other_than_a_state_are_refused():
    class Zeros(nn.Module):
        def forward(self, x):
            return x + torch.zeros(x.shape[0], 3)

    with pytest.raises(CdnnUnsupportedError, match=r"zeros of a size known only at run time "
                                                   r"\(the batch's\), other than a recurrent "
                                                   "layer's initial state"):
        capture(Zeros(), (torch.randn(1, 3),))
