"""Shape ops of format version 3 (unsqueeze, squeeze, expand, slice, select, unbind, pad, pixel
and channel shuffles): the kernels against PyTorch, their run-time checks, and models using
them captured from a batch-1 example and run at batch 1 and 3 against the reference."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from cdnn import compress  # noqa: E402
from cdnn.capture import capture  # noqa: E402
from cdnn_runtime import CdnnFormatError, CdnnUnsupportedError, InferenceSession  # noqa: E402
from cdnn_runtime.kernels import shape  # noqa: E402
from cdnn_runtime.reader import read  # noqa: E402
from cdnn_runtime.writer import Writer  # noqa: E402


def _data(*dims, seed=0):
    """Seeded float32 data with a NaN, an inf and a -inf among the values (shape ops move
    values, so every value must come out where torch puts it)."""
    x = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    flat = x.reshape(-1)
    flat[:3] = [np.nan, np.inf, -np.inf][:flat.size]
    return x


def _layouts(x):
    """x as given, as a non-contiguous view of the same values, and with an empty batch."""
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), np.float32)
    wide[..., ::2] = x
    return [x, wide[..., ::2], x[:0]]


# (kernel call, torch reference) on a [2, 4, 6, 8] input
KERNELS = {
    "unsqueeze": (lambda x: shape.unsqueeze(x, 2), lambda t: t.unsqueeze(2)),
    "unsqueeze last": (lambda x: shape.unsqueeze(x, -1), lambda t: t.unsqueeze(-1)),
    "squeeze": (lambda x: shape.squeeze(x[:, :, :1, :1], [2, -1]),
                lambda t: t[:, :, :1, :1].squeeze((2, 3))),
    "expand": (lambda x: shape.expand(x[:, :1, :, :1], [5, -1, 3]),
               lambda t: t[:, :1, :, :1].expand(-1, 5, -1, 3)),
    "slice with a step": (lambda x: shape.slice_axis(x, 3, 1, 2**31, 3),
                          lambda t: t[:, :, :, 1::3]),
    "slice with negative bounds": (lambda x: shape.slice_axis(x, -2, -4, -1, 2),
                                   lambda t: t[:, :, -4:-1:2]),
    "select": (lambda x: shape.select(x, 1, 2), lambda t: t[:, 2]),
    "select from the end": (lambda x: shape.select(x, -1, -1), lambda t: t[..., -1]),
    "pad constant": (lambda x: shape.pad(x, [1, 2, 0, 3], "constant", -1.5),
                     lambda t: F.pad(t, (1, 2, 0, 3), value=-1.5)),
    "pad reflect": (lambda x: shape.pad(x, [3, 1, 5, 2], "reflect"),
                    lambda t: F.pad(t, (3, 1, 5, 2), mode="reflect")),
    "pad replicate": (lambda x: shape.pad(x, [2, 0, 1, 4], "replicate"),
                      lambda t: F.pad(t, (2, 0, 1, 4), mode="replicate")),
    "pad three dims": (lambda x: shape.pad(x, [1, 1, 0, 2, 3, 0], "constant"),
                       lambda t: F.pad(t, (1, 1, 0, 2, 3, 0))),
    "pixel_shuffle": (lambda x: shape.pixel_shuffle(x, 2), lambda t: F.pixel_shuffle(t, 2)),
    "pixel_unshuffle": (lambda x: shape.pixel_unshuffle(x, 2),
                        lambda t: F.pixel_unshuffle(t, 2)),
    "channel_shuffle": (lambda x: shape.channel_shuffle(x, 2),
                        lambda t: F.channel_shuffle(t, 2)),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_matches_torch(name):
    fn, ref = KERNELS[name]
    for x in _layouts(_data(2, 4, 6, 8)):
        y = fn(x)
        # torch's pixel_unshuffle keeps an empty batch's shape: the reference of a batch of 0
        # is that of a batch of 1, cut
        expected = ref(torch.from_numpy(np.ascontiguousarray(x) if len(x) else
                                        np.zeros((1,) + x.shape[1:], np.float32)))[:len(x)]
        expected = expected.numpy()
        assert y.dtype == np.float32 and y.flags.c_contiguous
        np.testing.assert_array_equal(y, expected)


def test_unbind_matches_torch():
    for x in _layouts(_data(2, 3, 5)):
        ys = shape.unbind(x, 1)
        refs = torch.from_numpy(np.ascontiguousarray(x)).unbind(1)
        assert len(ys) == 3
        for y, ref in zip(ys, refs):
            assert y.flags.c_contiguous
            np.testing.assert_array_equal(y, ref.numpy())


def test_pixel_shuffle_with_more_leading_dims():
    x = _data(2, 3, 8, 2, 3)
    np.testing.assert_array_equal(shape.pixel_shuffle(x, 2),
                                  F.pixel_shuffle(torch.from_numpy(x), 2).numpy())


BAD_CALLS = {
    "unsqueeze before the batch": (lambda x: shape.unsqueeze(x, -5),
                                   "unsqueeze along dim 0, the batch dimension"),
    "unsqueeze out of range": (lambda x: shape.unsqueeze(x, 5), "unsqueeze dim 5 is out of range"),
    "squeeze of a wide dim": (lambda x: shape.squeeze(x, [2]),
                              r"squeeze of dims \[2\] of shape \[2, 4, 6, 8\], which are not 1"),
    "squeeze of the batch": (lambda x: shape.squeeze(x, [-4]), "squeeze along dim 0"),
    "squeeze twice": (lambda x: shape.squeeze(x[:, :1], [1, -3]), "name an axis twice"),
    "expand a wide dim": (lambda x: shape.expand(x, [4, 7, 8]),
                          r"cannot expand shape \[2, 4, 6, 8\] to \[4, 7, 8\]"),
    "expand to more dims": (lambda x: shape.expand(x, [1, 4, 6, 8]),
                            "expand to 4 dims after the batch"),
    "slice of the batch": (lambda x: shape.slice_axis(x, 0, 0, 1, 1), "slice along dim 0"),
    "slice step 0": (lambda x: shape.slice_axis(x, 1, 0, 1, 0), "slice step 0 is not positive"),
    "select past the end": (lambda x: shape.select(x, 2, 6),
                            r"select index 6 is out of range for dim 2 of shape \[2, 4, 6, 8\]"),
    "select before the start": (lambda x: shape.select(x, 1, -5), "select index -5"),
    "select dim out of range": (lambda x: shape.select(x, 4, 0), "select dim 4 is out of range"),
    "unbind of the batch": (lambda x: shape.unbind(x, -4), "unbind along dim 0"),
    "pad of the batch": (lambda x: shape.pad(x, [0] * 8), "not pairs >= 0 for dims after the "
                                                          "batch"),
    "pad odd": (lambda x: shape.pad(x, [1, 1, 1]), r"pads \[1, 1, 1\] are not pairs"),
    "pad negative": (lambda x: shape.pad(x, [1, -1]), "not pairs >= 0"),
    "pad mode": (lambda x: shape.pad(x, [1, 1], "circular"), "pad mode 'circular'"),
    "reflect beyond the dim": (lambda x: shape.pad(x, [0, 0, 6, 0], "reflect"),
                               r"reflect padding \[6, 0\] of dim 2 needs a size above"),
    "replicate of an empty dim": (lambda x: shape.pad(x[:, :, :0], [0, 0, 1, 0], "replicate"),
                                  "replicate padding of dim 2, which is empty"),
    "pixel_shuffle of too few channels": (lambda x: shape.pixel_shuffle(x, 3),
                                          "pixel_shuffle by 3 of 4 channels"),
    "pixel_shuffle of rank 3": (lambda x: shape.pixel_shuffle(x[0], 2), r"needs \[N, \.\.\., C"),
    "pixel_unshuffle of an odd image": (lambda x: shape.pixel_unshuffle(x[:, :, :5], 2),
                                        "a 5x8 image, not multiples of 2"),
    "channel_shuffle into uneven groups": (lambda x: shape.channel_shuffle(x, 3),
                                           "4 channels into 3 groups"),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_attrs_that_do_not_fit_the_input_are_a_value_error(name):
    fn, message = BAD_CALLS[name]
    with pytest.raises(ValueError, match=message):
        fn(np.zeros((2, 4, 6, 8), np.float32))


def _one_node_file(op, attrs, in_shape, n_outputs=1):
    """A file of one `op` node on input x; its outputs are the graph's."""
    w = Writer()
    outs = [f"y{k}" for k in range(n_outputs)]
    w.set_graph({"inputs": [{"name": "x", "dtype": "float32", "shape": [None, *in_shape]}],
                 "nodes": [{"name": "node", "op": op, "inputs": ["x"], "outputs": outs,
                            "attrs": attrs}],
                 "outputs": [{"name": v} for v in outs]})
    return w.to_bytes()


def test_attrs_that_do_not_fit_the_declared_input_are_refused_at_load():
    """The session runs the graph on an empty batch of the declared shapes when it loads."""
    with pytest.raises(CdnnFormatError, match=r"node 'node' \(select\): select index 4 is out "
                                              r"of range for dim 2 of shape \[0, 3, 4\]"):
        InferenceSession(_one_node_file("select", {"dim": 2, "index": 4}, [3, 4]))
    with pytest.raises(CdnnFormatError, match=r"node 'node' \(unbind\): computed 3 values for 2 "
                                              "outputs"):
        InferenceSession(_one_node_file("unbind", {"dim": 1}, [3, 4], n_outputs=2))


def test_a_version_3_file_of_one_shape_op_runs():
    data = _one_node_file("unbind", {"dim": -1}, [3, 2], n_outputs=2)
    assert read(data).version == 3
    sess = InferenceSession(data)
    x = _data(2, 3, 2)
    for y, ref in zip(sess.run(None, {"x": x}), torch.from_numpy(x).unbind(-1)):
        np.testing.assert_array_equal(y, ref.numpy())


# ---- capture and run ------------------------------------------------------------------------

class _Indexing(nn.Module):
    """A conv, then the indexing ops: slices with steps and from the end, select, unbind,
    unsqueeze, squeeze, expand (to literal sizes and with expand_as), narrow, x[0:]."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)[0:]
        a = y[:, 1::2, ::3]                            # [N, 2, 8, 3]
        b = y[:, :, -3:, 1:-1:2].narrow(1, 1, 2)       # [N, 2, 3, 3]
        c = y[:, :, :1].expand(-1, -1, 8, -1)          # [N, 4, 8, 8]
        d = y.unsqueeze(2).squeeze(2)[:, None]         # [N, 1, 4, 8, 8]
        e = y[:, 2] + y.select(-1, -1)[:, 1].unsqueeze(-1)  # [N, 8, 8]
        u = torch.unbind(y, dim=1)
        f = y[:, :1, :1, :1].expand(y.size(0), 4, 8, 8) + y[:, :, :1, :1].expand_as(y)
        return a.flatten(1), b.flatten(1), c + d.squeeze(1), e * u[3], f + u[0].unsqueeze(1)


class _Pads(nn.Module):
    """A conv between pads of each mode, by F.pad and by the padding modules, and a 1-D pad."""

    def __init__(self):
        super().__init__()
        self.zero = nn.ZeroPad2d((1, 0, 2, 1))
        self.reflect = nn.ReflectionPad2d(2)
        self.conv = nn.Conv2d(3, 4, 3)
        self.replicate = nn.ReplicationPad2d((0, 1, 1, 0))

    def forward(self, x):
        y = self.conv(self.reflect(self.zero(x)))
        z = F.pad(y, (1, 1, 1, 1), value=0.25) + 1
        w = F.pad(y.flatten(2), (3, 2), mode="reflect")
        return self.replicate(z), F.pad(w, (1, 0), mode="replicate"), F.pad(y, (0, 0, 0, 0))


class _Shuffles(nn.Module):
    """ShuffleNet's channel shuffle written as view + transpose + view (batch from `how`), then
    nn.ChannelShuffle, pixel_unshuffle and pixel_shuffle (sub-pixel convolution)."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.shuffle = nn.ChannelShuffle(4)
        self.up = nn.Conv2d(32, 12, 1)

    def forward(self, x):
        y = self.conv(x)
        g = 2
        if self.how == "size":
            n, c, h, w = y.size()
            y = y.view(n, g, c // g, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        elif self.how == "shape":
            y = y.view(y.shape[0], g, -1, 8, 8).transpose(1, 2).reshape(y.shape[0], -1, 8, 8)
        else:  # -1 for the batch
            y = y.view(-1, g, 4, 8, 8).transpose(1, 2).contiguous().view(-1, 8, 8, 8)
        y = self.shuffle(y)
        y = F.pixel_shuffle(self.up(F.pixel_unshuffle(y, 2)), 2)
        return y


class _Reshapes(nn.Module):
    """x.view(-1, c*h*w) into a linear layer, and x.reshape(b, c, -1) then a strided slice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        y = self.conv(x)
        b, c = y.shape[:2]
        return self.fc(y.view(-1, 4 * 8 * 8)), y.reshape(b, c, -1)[..., ::4].flatten(1)


class _OtherForms(nn.Module):
    """The other ATen forms: in-place unsqueeze_ and squeeze_, narrow from the end, unflatten,
    3-D padding modules, F.channel_shuffle."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.reflect = nn.ReflectionPad3d((1, 0, 2, 1, 0, 1))
        self.constant = nn.ConstantPad1d((2, 1), 3.5)

    def forward(self, x):
        y = self.conv(x)
        a = (y * 2).unsqueeze_(1).squeeze_(1).narrow(2, -3, 2)
        b = y.unflatten(1, (2, 2)).transpose(1, 2).flatten(1, 2)
        return a, self.reflect(b.unsqueeze(1)), self.constant(F.channel_shuffle(y, 2).flatten(2))


_SHUFFLE_OPS = {"reshape", "transpose", "channel_shuffle", "pixel_shuffle", "pixel_unshuffle"}
#: name -> (model, the graph ops its capture must hold)
MODELS = {"indexing": (_Indexing, {"slice", "select", "unbind", "unsqueeze", "squeeze",
                                   "expand"}),
          "pads": (_Pads, {"pad"}),
          "shuffle by size": (lambda: _Shuffles("size"), _SHUFFLE_OPS),
          "shuffle by shape": (lambda: _Shuffles("shape"), _SHUFFLE_OPS),
          "shuffle by -1": (lambda: _Shuffles("minus one"), _SHUFFLE_OPS),
          "reshapes": (_Reshapes, {"reshape", "slice"}),
          "other forms": (_OtherForms, {"unsqueeze", "squeeze", "slice", "reshape", "pad",
                                        "channel_shuffle"})}


def _outputs(y):
    return [v.numpy() for v in y] if isinstance(y, (tuple, list)) else [y.numpy()]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_batch_one_example_captures_and_runs_any_batch(name):
    torch.manual_seed(0)
    make, ops = MODELS[name]
    packed = compress(make().eval(), torch.randn(1, 3, 8, 8), preset="lossless-ish")
    assert packed.file.graph["inputs"][0]["shape"][0] is None
    assert ops <= {n["op"] for n in packed.file.graph["nodes"]}
    assert packed.file.version == 3
    sess = InferenceSession(packed.to_bytes())
    for batch in (1, 3):
        x = torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            refs = _outputs(packed.reference_model()(x))
        ys = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        assert len(ys) == len(refs)
        for y, ref in zip(ys, refs):
            assert y.shape == ref.shape
            np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_ops_that_change_nothing_are_left_out():
    class Noop(nn.Module):
        def forward(self, x):
            return F.pad(x[:, :, :], (0, 0, 0, 0)).squeeze(1) * 2

    ops = [n["op"] for n in capture(Noop(), torch.randn(1, 3, 8)).nodes]
    assert ops == ["mul"]


def test_squeeze_of_every_dim_keeps_the_free_batch():
    """x.squeeze() as torch.export traces it: the batch stays, even at batch 1."""
    class Head(nn.Module):
        def forward(self, x):
            return F.adaptive_avg_pool2d(x, 1).squeeze()

    cap = capture(Head(), torch.randn(1, 3, 4, 4))
    assert [(n["op"], n["attrs"]) for n in cap.nodes][-1] == ("squeeze", {"dims": [2, 3]})
    packed = compress(nn.Sequential(nn.Conv2d(3, 4, 1), Head()).eval(), torch.randn(1, 3, 4, 4),
                      preset="lossless-ish")
    sess = InferenceSession(packed.to_bytes())
    assert sess(np.zeros((1, 3, 4, 4), np.float32)).shape == (1, 4)


def test_expand_keeps_the_batch_free():
    class Expand(nn.Module):
        def forward(self, x):
            return x[:, :, :1].expand(x.size(0), 3, 5) + x[:, :, :1].expand(-1, -1, 5)

    nodes = capture(Expand(), torch.randn(1, 3, 5)).nodes
    assert [n["attrs"]["shape"] for n in nodes if n["op"] == "expand"] == [[-1, 5], [-1, 5]]


REFUSED = {
    "a slice of the batch": (lambda x: x[1:], r"aten\.slice\.Tensor.*a slice of the batch"),
    "a squeeze of a batch fixed at 1": (lambda x: x.view(1, 3, 8).squeeze(0),
                                        "a squeeze of the batch dimension, fixed at 1"),
    "a new dim before the batch": (lambda x: x.unsqueeze(0),
                                   r"aten\.unsqueeze\.default.*before the batch"),
    "a select of the batch": (lambda x: x[0], r"aten\.select\.int.*batch dimension"),
    "an unbind of the batch": (lambda x: torch.unbind(x)[0], r"aten\.unbind\.int.*batch"),
    "circular padding": (lambda x: F.pad(x, (1, 1), mode="circular"), "padding mode 'circular'"),
    "negative padding": (lambda x: F.pad(x, (-1, 0)), r"negative padding \(a crop"),
    "a slice that selects nothing": (lambda x: x[:, 5:2], "a slice that selects nothing"),
}


@pytest.mark.filterwarnings("ignore::cdnn.capture.FixedBatchWarning")  # x[1:], x[0] fix it
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_forms_name_the_op_and_line(name):
    fn, message = REFUSED[name]

    class Model(nn.Module):
        def forward(self, x):
            return fn(x) * 2

    with pytest.raises(CdnnUnsupportedError, match=message + r".*test_ops_shape\.py"):
        capture(Model(), torch.randn(1, 3, 8))


@pytest.mark.parametrize("dims", [(64, 64), (17, 300), (3, 5, 33, 129), (2, 1, 4096), (4096, 1)])
def test_swap_last_axes_in_blocks(dims, monkeypatch):
    """The blocked transpose (batched linear layers, permute of the last two axes) against
    numpy, around the 16-element blocks, above and below the size from which it is used."""
    rng = np.random.default_rng(len(dims))
    x = rng.standard_normal(dims).astype(np.float32)
    x.reshape(-1)[:2] = [np.nan, -np.inf]
    want = np.swapaxes(x, -1, -2)
    for blocked_min in (0, 1 << 30):
        monkeypatch.setattr(shape, "SWAP_BLOCKED_MIN", blocked_min)
        got = shape.swap_last_axes(x)
        assert got.flags.c_contiguous and got.shape == want.shape
        assert np.array_equal(got, want, equal_nan=True)
        perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
        assert np.array_equal(shape.permute(x, perm), want, equal_nan=True)
    with pytest.raises(shape.KernelArgumentError, match="2 dims"):
        shape.swap_last_axes(x.reshape(-1))
