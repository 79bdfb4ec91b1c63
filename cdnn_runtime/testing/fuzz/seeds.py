"""The seed files every case starts from: the golden vectors, and three built here that
reach what they do not (every op of the graph, packed and Huffman streams side by side, a
stream large enough for the parallel Huffman decoder)."""

import numpy as np

from ...huffman import PARALLEL_MIN_SYMBOLS
from ...sparse import csr_from_dense
from ...writer import Writer
from ..craft import vector

VECTOR_NAMES = ("raw_tensors", "sparse_huffman", "sparse_fillers", "chunked_huffman",
                "conv_weight", "tiny_graph")

#: Seed files and how often each is drawn.
SEED_WEIGHTS = {"raw_tensors": 1.0, "sparse_huffman": 1.0, "sparse_fillers": 1.0,
                "chunked_huffman": 1.0, "conv_weight": 1.0, "tiny_graph": 1.5,
                "graph_ops": 2.5, "mixed_streams": 1.5, "big_parallel": 0.4}


def _codes(rng, rows, n_cols, density, k, skew=False):
    """A [rows, n_cols] matrix of codes in 1..k-1 at random positions, 0 elsewhere."""
    mask = rng.random((rows, n_cols)) < density
    vals = rng.integers(1, k, (rows, n_cols))
    if skew:
        vals = np.minimum(vals, rng.integers(1, k, (rows, n_cols)))
    return np.where(mask, vals, 0)


def _add_sparse(w, name, shape, codes2d, codebook, **kw):
    row_ptr, col_idx, codes = csr_from_dense(codes2d)
    w.add_sparse_codebook(name, shape, row_ptr, col_idx, codes, codebook, **kw)


def _node(name, op, inputs, out, params=None, attrs=None):
    n = {"name": name, "op": op, "inputs": inputs, "outputs": [out]}
    if params is not None:
        n["params"] = params
    if attrs is not None:
        n["attrs"] = attrs
    return n


def seed_graph_ops():
    """A graph touching every op of the format, two inputs, sparse conv and linear weights
    (the linear one with 1,200+ entries in Huffman chunks of 64 symbols)."""
    rng = np.random.default_rng(11)
    w = Writer(metadata={"producer": "cdnn fuzz seeds", "producer_version": "1"})
    cb = np.array([0.0, -0.5, -0.25, -0.125, 0.125, 0.25, 0.5, 1.0], np.float32)
    _add_sparse(w, "c1.weight", (8, 3, 3, 3), _codes(rng, 8, 27, 0.5, 8), cb, gap_bits=2)
    w.add_raw("c1.bias", rng.standard_normal(8).astype(np.float32) / 4)
    w.add_raw("bn1.mean", rng.standard_normal(8).astype(np.float32) / 8)
    w.add_raw("bn1.var", (rng.random(8) + 0.5).astype(np.float32))
    w.add_raw("bn1.weight", (rng.random(8) + 0.5).astype(np.float32))
    w.add_raw("bn1.bias", rng.standard_normal(8).astype(np.float32) / 8)
    w.add_raw("c2.weight", (rng.integers(-4, 5, (8, 4, 3, 3)) / 8).astype(np.float32))
    w.add_raw("prelu.weight", np.linspace(0.05, 0.4, 8).astype(np.float32))
    # ---- normalisation, resizing, pooling (version 3): params without drawing from rng
    w.add_raw("ln.weight", np.linspace(0.5, 1.5, 16).astype(np.float32).reshape(4, 4))
    w.add_raw("gn.weight", np.linspace(1.5, 0.5, 8).astype(np.float32))
    w.add_raw("gn.bias", np.linspace(-0.25, 0.25, 8).astype(np.float32))
    cb2 = np.linspace(-1, 1, 16).astype(np.float32)
    cb2[7] = 0.0625
    _add_sparse(w, "fc1.weight", (64, 32), _codes(rng, 64, 32, 0.6, 16, skew=True), cb2,
                gap_bits=3, coding="huffman", chunk_symbols=64)
    w.add_raw("fc1.bias", rng.standard_normal(64).astype(np.float32) / 8)
    w.add_raw("scale", (rng.random(64) + 0.5).astype(np.float32))
    w.add_raw("fc2.weight", (rng.standard_normal((10, 128)) / 8).astype(np.float32))
    w.add_raw("fc2.bias", np.zeros(10, np.float32))
    # ---- convolutions (version 3): a sparse conv_transpose2d, a raw conv1d
    _add_sparse(w, "ct.weight", (8, 2, 3, 3), _codes(rng, 8, 18, 0.5, 8), cb, gap_bits=2)
    w.add_raw("ct.bias", rng.standard_normal(4).astype(np.float32) / 4)
    w.add_raw("c1d.weight", (rng.integers(-4, 5, (2, 4, 3)) / 8).astype(np.float32))
    # ---- elementwise, activations, reductions (version 3): a param without drawing from rng
    w.add_raw("ew.other", np.linspace(0.5, 1.5, 10).astype(np.float32))
    # ---- attention (version 3): params without drawing from rng
    w.add_raw("att.mask", np.array([[0.0, -np.inf], [0.5, 0.0]], np.float32))
    w.add_raw("att.fill", np.array([[0.0, 1.0], [0.0, 0.0]], np.float32))
    w.add_raw("att.value", np.array([-1.0], np.float32))
    w.add_raw("att.w", np.linspace(-1, 1, 10).astype(np.float32).reshape(2, 5))
    w.add_raw("cst.value", np.linspace(0.5, -0.5, 10).astype(np.float32).reshape(1, 10))
    # ---- token inputs and embeddings (version 3): a sparse table, also a tied linear head
    _add_sparse(w, "emb.weight", (6, 10), _codes(rng, 6, 10, 0.5, 8), cb, gap_bits=2)
    # ---- recurrent layers (version 3): sparse and raw matrices from an rng of their own
    rec = np.random.default_rng(13)
    for name, shape in (("lstm.w_ih", (12, 10)), ("lstm.w_ih_reverse", (12, 10)),
                        ("gru.w_ih", (9, 6)), ("rnn.w_hh", (4, 4))):
        _add_sparse(w, name, shape, _codes(rec, *shape, 0.5, 8), cb, gap_bits=2)
    for name, shape in (("lstm.w_hh", (12, 3)), ("lstm.w_hh_reverse", (12, 3)),
                        ("lstm.b_ih", (12,)), ("lstm.b_ih_reverse", (12,)), ("gru.w_hh", (9, 3)),
                        ("gru.b_hh", (9,)), ("rnn.w_ih", (4, 6)), ("rnn.b_hh", (4,))):
        w.add_raw(name, (rec.standard_normal(shape) / 4).astype(np.float32))
    node = _node
    w.set_graph({
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 3, 8, 8]},
                   {"name": "y", "dtype": "float32", "shape": [None, 10]},
                   {"name": "ids", "dtype": "int64", "shape": [None, 3],
                    "free": [{"dim": 1, "name": "seq", "max": 6}]}],
        "nodes": [
            # ---- token inputs and embeddings (version 3): ids [N, 3] -> [N, 3, 10] -> [N, 3, 6]
            node("emb", "embedding", ["ids"], "emb", {"weight": "emb.weight"}),
            # ---- free sequence dims (version 3): positions over the free seq, [N, seq, 2, 5]
            node("pos", "arange", ["ids"], "pos", attrs={"dim": 1}),
            node("pos_emb", "embedding", ["pos"], "pos_emb", {"weight": "emb.weight"}),
            node("emb_pos", "add", ["emb", "pos_emb"], "emb_pos"),
            node("emb_unf", "unflatten", ["emb_pos"], "emb_unf", attrs={"dim": 2, "sizes": [2, 5]}),
            node("emb_flat", "flatten", ["emb_unf"], "emb_flat", attrs={"start_dim": 2}),
            node("emb_head", "linear", ["emb_flat"], "emb_logits", {"weight": "emb.weight"}),
            # ---- recurrent layers (version 3): emb [N, seq, 10] through a bidirectional lstm,
            # a bidirectional gru from its h_n, an rnn: [N, seq, 4]
            {"name": "rec_lstm", "op": "lstm", "inputs": ["emb"],
             "outputs": ["rec_ly", "rec_lh", "rec_lc"],
             "params": {r: f"lstm.{r}" for r in ("w_ih", "w_hh", "b_ih", "w_ih_reverse",
                                                 "w_hh_reverse", "b_ih_reverse")},
             "attrs": {"hidden_size": 3, "bidirectional": True}},
            {"name": "rec_gru", "op": "gru", "inputs": ["rec_ly", "rec_lh"],
             "outputs": ["rec_gy", "rec_gh"],
             "params": {"w_ih": "gru.w_ih", "w_hh": "gru.w_hh", "b_hh": "gru.b_hh",
                        "w_ih_reverse": "gru.w_ih", "w_hh_reverse": "gru.w_hh",
                        "b_hh_reverse": "gru.b_hh"},
             "attrs": {"hidden_size": 3, "bidirectional": True}},
            {"name": "rec_rnn", "op": "rnn", "inputs": ["rec_gy"], "outputs": ["rec", "rec_rh"],
             "params": {"w_ih": "rnn.w_ih", "w_hh": "rnn.w_hh", "b_hh": "rnn.b_hh"},
             "attrs": {"hidden_size": 4, "nonlinearity": "relu"}},
            node("c1", "conv2d", ["x"], "c1", {"weight": "c1.weight", "bias": "c1.bias"},
                 {"padding": [1, 1]}),
            node("bn1", "batch_norm", ["c1"], "bn1", {"mean": "bn1.mean", "var": "bn1.var",
                                                    "weight": "bn1.weight",
                                                    "bias": "bn1.bias"}, {"eps": 1e-5}),
            node("r1", "relu", ["bn1"], "r1"),
            node("p1", "max_pool2d", ["r1"], "p1", attrs={"kernel_size": [2, 2]}),
            # ---- convolutions (version 3): p1 [N, 8, 4, 4] -> [N, 4, 8, 8] -> [N, 2, 32]
            node("ct", "conv_transpose2d", ["p1"], "ct", {"weight": "ct.weight",
                                                          "bias": "ct.bias"},
                 {"stride": [2, 2], "padding": [1, 1], "output_padding": [1, 1], "groups": 2}),
            node("ct_rs", "reshape", ["ct"], "ct_rs", attrs={"shape": [4, 64]}),
            node("c1d", "conv1d", ["ct_rs"], "c1d", {"weight": "c1d.weight"},
                 {"stride": 2, "padding": [1, 0], "dilation": 2}),
            node("c2", "conv2d", ["p1"], "c2", {"weight": "c2.weight"},
                 {"padding": [1, 1], "groups": 2}),
            node("lr", "leaky_relu", ["c2"], "lr", attrs={"negative_slope": 0.1}),
            node("res", "add", ["p1", "lr"], "res"),
            node("lrn", "local_response_norm", ["res"], "lrn", attrs={"size": 3}),
            # ---- normalisation, resizing, pooling (version 3): from lrn [N, 8, 4, 4] back to
            # that shape
            node("nr_ln", "layer_norm", ["lrn"], "nr_ln", {"weight": "ln.weight"},
                 {"normalized_shape": [4, 4], "eps": 1e-6}),
            node("nr_gn", "group_norm", ["nr_ln"], "nr_gn",
                 {"weight": "gn.weight", "bias": "gn.bias"}, {"num_groups": 4}),
            node("nr_in", "group_norm", ["nr_gn"], "nr_in", attrs={"num_groups": 8}),
            node("nr_up", "interpolate2d", ["nr_in"], "nr_up",
                 attrs={"size": [7, 9], "mode": "bilinear", "align_corners": True}),
            node("nr_dn", "interpolate2d", ["nr_up"], "nr_dn",
                 attrs={"size": [4, 4], "scale_h": 0.5}),
            node("nr_ne", "interpolate2d", ["nr_dn"], "nr_ne",
                 attrs={"size": [4, 4], "mode": "nearest-exact"}),
            node("nr_amp", "adaptive_max_pool2d", ["nr_ne"], "nr_amp",
                 attrs={"output_size": [4, 4]}),
            node("nr_rs", "reshape", ["nr_amp"], "nr_rs", attrs={"shape": [8, 16]}),
            node("nr_mp", "max_pool1d", ["nr_rs"], "nr_mp",
                 attrs={"kernel_size": 3, "stride": 1, "padding": 1}),
            node("nr_ap", "avg_pool1d", ["nr_mp"], "nr_ap", attrs={"kernel_size": 2, "stride": 2}),
            node("nr_aap", "adaptive_avg_pool1d", ["nr_ap"], "nr_aap", attrs={"output_size": 16}),
            node("nr_amx", "adaptive_max_pool1d", ["nr_aap"], "nr_amx",
                 attrs={"output_size": 16}),
            node("nr_back", "reshape", ["nr_amx"], "nr_back", attrs={"shape": [8, 4, 4]}),
            node("ap", "avg_pool2d", ["nr_back"], "ap",
                 attrs={"kernel_size": [2, 2], "stride": [1, 1], "padding": [1, 1],
                        "count_include_pad": False}),
            node("aap", "adaptive_avg_pool2d", ["ap"], "aap", attrs={"output_size": [2, 2]}),
            node("pr", "prelu", ["aap"], "pr", {"weight": "prelu.weight"}),
            node("fl", "flatten", ["pr"], "fl"),
            node("fc1", "linear", ["fl"], "fc1", {"weight": "fc1.weight", "bias": "fc1.bias"}),
            node("g", "gelu", ["fc1"], "g", attrs={"approximate": "tanh"}),
            node("do", "dropout", ["g"], "do0", attrs={"p": 0.2}),
            node("g2", "gelu", ["do0"], "do", attrs={"approximate": "none"}),
            node("scale", "mul", ["do"], "scale", {"other": "scale"}),
            node("rs", "reshape", ["scale"], "rs", attrs={"shape": [4, 16]}),
            node("tp", "transpose", ["rs"], "tp", attrs={"dim0": 1, "dim1": 2}),
            node("pm", "permute", ["tp"], "pm", attrs={"dims": [0, 2, 1]}),
            node("sg", "sigmoid", ["pm"], "sg"),
            node("th", "tanh", ["rs"], "th"),
            node("cat", "cat", ["sg", "th"], "cat", attrs={"dim": 1}),
            {"name": "split", "op": "split", "inputs": ["cat"], "outputs": ["s0", "s1"],
             "attrs": {"sizes": [3, 5], "dim": 1}},
            node("cat2", "cat", ["s1", "s0"], "cat2", attrs={"dim": 1}),
            # ---- shape ops (version 3): from cat2 [N, 8, 16] back to that shape
            node("sh_u1", "unsqueeze", ["cat2"], "sh_u1", attrs={"dim": 1}),
            node("sh_ex", "expand", ["sh_u1"], "sh_ex", attrs={"shape": [4, -1, -1]}),
            node("sh_pu", "pixel_unshuffle", ["sh_ex"], "sh_pu", attrs={"downscale_factor": 2}),
            node("sh_cs", "channel_shuffle", ["sh_pu"], "sh_cs", attrs={"groups": 4}),
            node("sh_ps", "pixel_shuffle", ["sh_cs"], "sh_ps", attrs={"upscale_factor": 2}),
            node("sh_pr", "pad", ["sh_ps"], "sh_pr",
                 attrs={"pads": [1, 1, 1, 1], "mode": "reflect"}),
            node("sh_sl", "slice", ["sh_pr"], "sh_sl", attrs={"dim": 2, "start": 1, "end": 9}),
            node("sh_pc", "pad", ["sh_sl"], "sh_pc", attrs={"pads": [0, 14], "value": 0.5}),
            node("sh_sl2", "slice", ["sh_pc"], "sh_sl2",
                 attrs={"dim": -1, "start": 0, "end": 2**31, "step": 2}),
            node("sh_sel", "select", ["sh_sl2"], "sh_sel", attrs={"dim": 1, "index": -1}),
            {"name": "sh_ub", "op": "unbind", "inputs": ["sh_sl2"],
             "outputs": ["sh_ub0", "sh_ub1", "sh_ub2", "sh_ub3"], "attrs": {"dim": 1}},
            node("sh_u2", "unsqueeze", ["sh_sel"], "sh_u2", attrs={"dim": -1}),
            node("sh_sq", "squeeze", ["sh_u2"], "sh_sq", attrs={"dims": [3]}),
            node("sh_shp", "add", ["sh_sq", "sh_ub2"], "sh_shp"),
            node("fl2", "flatten", ["sh_shp"], "fl2", attrs={"start_dim": 1, "end_dim": -1}),
            node("fc2", "linear", ["fl2"], "fc2", {"weight": "fc2.weight", "bias": "fc2.bias"}),
            node("r6", "relu6", ["fc2"], "r6"),
            # ---- elementwise, activations, reductions (version 3): from r6 [N, 10] to that
            # shape, finite throughout
            node("ew_sub", "sub", ["r6", "fc2"], "ew_sub"),
            node("ew_neg", "neg", ["ew_sub"], "ew_neg"),
            node("ew_abs", "abs", ["ew_neg"], "ew_abs"),
            node("ew_exp", "exp", ["ew_abs"], "ew_exp"),
            node("ew_log", "log", ["ew_exp"], "ew_log"),
            node("ew_sqrt", "sqrt", ["ew_log"], "ew_sqrt"),
            node("ew_rsqrt", "rsqrt", ["ew_exp"], "ew_rsqrt"),
            node("ew_div", "div", ["ew_sqrt", "ew_rsqrt"], "ew_div"),
            node("ew_rdiv", "div", ["ew_exp"], "ew_rdiv", {"other": "ew.other"},
                 {"reverse": True}),
            node("ew_pow", "pow", ["ew_div"], "ew_pow", attrs={"exponent": 1.5}),
            node("ew_erf", "erf", ["ew_pow"], "ew_erf"),
            node("ew_min", "minimum", ["ew_erf", "ew_rdiv"], "ew_min"),
            node("ew_max", "maximum", ["ew_min"], "ew_max", {"other": "fc2.bias"}),
            node("ew_rsub", "sub", ["ew_max"], "ew_rsub", {"other": "ew.other"},
                 {"reverse": True}),
            node("ew_cl", "clamp", ["ew_rsub"], "ew_cl", attrs={"min": -1.0, "max": 2.0}),
            node("ew_clmin", "clamp_min", ["ew_cl"], "ew_clmin", attrs={"min": -0.5}),
            node("ew_clmax", "clamp_max", ["ew_clmin"], "ew_clmax", attrs={"max": 1.5}),
            node("ew_silu", "silu", ["ew_clmax"], "ew_silu"),
            node("ew_hsw", "hardswish", ["ew_silu"], "ew_hsw"),
            node("ew_hsg", "hardsigmoid", ["ew_hsw"], "ew_hsg"),
            node("ew_mish", "mish", ["ew_hsg"], "ew_mish"),
            node("ew_elu", "elu", ["ew_mish"], "ew_elu", attrs={"alpha": 0.5}),
            node("ew_sp", "softplus", ["ew_elu"], "ew_sp", attrs={"beta": 2.0, "threshold": 1.0}),
            node("ew_mean", "mean", ["ew_sp"], "ew_mean", attrs={"dims": [1], "keepdim": True}),
            node("ew_sum", "sum", ["ew_sp"], "ew_sum", attrs={"dims": [1]}),
            node("ew_sum1", "reshape", ["ew_sum"], "ew_sum1", attrs={"shape": [1]}),
            node("ew_amax", "amax", ["ew_sp"], "ew_amax", attrs={"dims": [1], "keepdim": True}),
            node("ew_amin", "amin", ["ew_sp"], "ew_amin", attrs={"dims": [1], "keepdim": True}),
            node("ew_a", "sub", ["ew_sp", "ew_mean"], "ew_a"),
            node("ew_b", "sub", ["ew_a", "ew_sum1"], "ew_b"),
            node("ew_c", "add", ["ew_b", "ew_amax"], "ew_c"),
            node("ew_out", "sub", ["ew_c", "ew_amin"], "ew_out"),
            # ---- attention (version 3): from ew_out [N, 10] as [N, 2, 5] back to [N, 10]
            node("att_rs", "reshape", ["ew_out"], "att_rs", attrs={"shape": [2, 5]}),
            node("att", "attention", ["att_rs", "att_rs", "att_rs"], "att", {"mask": "att.mask"},
                 {"scale": 0.5, "causal": True}),
            node("att_tp", "transpose", ["att"], "att_tp", attrs={"dim0": 1, "dim1": 2}),
            node("att_mm", "matmul", ["att", "att_tp"], "att_mm"),
            node("att_mf", "masked_fill", ["att_mm"], "att_mf",
                 {"mask": "att.fill", "value": "att.value"}),
            node("att_mo", "matmul", ["att_mf"], "att_mo", {"other": "att.w"}),
            node("att_out", "reshape", ["att_mo"], "att_out", attrs={"shape": [10]}),
            # ---- constants over the batch (version 3): [N, 10] from a [1, 10] table row
            node("cst", "constant", ["att_out"], "cst", {"value": "cst.value"}),
            node("cst_add", "add", ["att_out", "cst"], "cst_add"),
            node("id", "identity", ["cst_add"], "id"),
            node("plus", "add", ["id", "y"], "plus"),
            node("sm", "softmax", ["plus"], "probs", attrs={"dim": 1}),
            node("lsm", "log_softmax", ["plus"], "logp", attrs={"dim": -1}),
        ],
        "outputs": [{"name": "probs"}, {"name": "logp"}, {"name": "fc1"},
                    {"name": "emb_logits"}, {"name": "rec"}],  # rec: recurrent layers (v3)
    })
    return w.to_bytes()


def seed_mixed_streams():
    """Packed and Huffman streams side by side: fillers at gap_bits 1, one-symbol chunks,
    an all-pruned tensor, a rank-3 sparse tensor, empty rows, integer raw tensors."""
    rng = np.random.default_rng(12)
    w = Writer(metadata={"producer": "cdnn fuzz seeds", "recipe": {"prune": 0.9, "bits": 4}})
    cb = np.array([0.0, 0.5, -0.5, 1.5], np.float32)
    codes = _codes(rng, 5, 50, 0.1, 4)
    codes[2] = 0
    _add_sparse(w, "fillers", (5, 50), codes, cb, gap_bits=1, coding="packed")
    _add_sparse(w, "one_symbol_chunks", (4, 3, 5), _codes(rng, 4, 15, 0.5, 4, skew=True),
                cb, gap_bits=2, coding="huffman", chunk_symbols=1)
    _add_sparse(w, "pruned", (3, 7), np.zeros((3, 7), np.int64), cb, gap_bits=3)
    cb2 = np.array([0.25, -1.0], np.float32)
    _add_sparse(w, "no_zero_centroid", (6, 9), _codes(rng, 6, 9, 0.7, 2) * 0 +
                np.where(rng.random((6, 9)) < 0.6, 1, 0), np.array([0.0, 0.25], np.float32),
                gap_bits=4, coding="huffman", chunk_symbols=5)
    _add_sparse(w, "dense_row", (2, 300), np.ones((2, 300), np.int64), cb2[::-1].copy(),
                gap_bits=8, coding="auto")
    w.add_raw("ids", np.arange(-3, 9, dtype=np.int64).reshape(3, 4))
    w.add_raw("bytes", np.arange(256, dtype=np.uint8))
    w.add_raw("half", np.linspace(-2, 2, 7).astype(np.float16))
    return w.to_bytes()


def seed_big_parallel():
    """A 1350 x 280 sparse weight with ~300,000 entries (rows of fewer than 256, so that
    row counts Huffman-code too) in chunks of 8,192 symbols: its streams take the parallel
    decoder; a graph runs it as a linear layer (large enough for the threaded kernels)."""
    rng = np.random.default_rng(13)
    w = Writer(metadata={"producer": "cdnn fuzz seeds"})
    cb = np.array([0.0, 0.1, -0.1, 0.2, -0.2, 0.4, -0.4, 0.8], np.float32)
    codes = _codes(rng, 1350, 280, 0.8, 8, skew=True)
    assert np.count_nonzero(codes) > PARALLEL_MIN_SYMBOLS
    assert np.count_nonzero(codes, axis=1).max() < 250
    _add_sparse(w, "big.weight", (1350, 280), codes, cb, gap_bits=2, coding="huffman",
                chunk_symbols=8192)
    w.add_raw("big.bias", np.linspace(-1, 1, 1350).astype(np.float32))
    w.set_graph({
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 280]}],
        "nodes": [{"name": "big", "op": "linear", "inputs": ["x"], "outputs": ["h"],
                   "params": {"weight": "big.weight", "bias": "big.bias"}},
                  {"name": "act", "op": "tanh", "inputs": ["h"], "outputs": ["out"]}],
        "outputs": [{"name": "out"}],
    })
    return w.to_bytes()


def build_seeds():
    """{name: bytes} of every seed file: the golden vectors and three built here."""
    seeds = {name: vector(name) for name in VECTOR_NAMES}
    seeds["graph_ops"] = seed_graph_ops()
    seeds["mixed_streams"] = seed_mixed_streams()
    seeds["big_parallel"] = seed_big_parallel()
    return seeds
