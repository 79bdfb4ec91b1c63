"""Graph ops other than sparse layers: each builds, once at load, a function of its inputs."""

from .errors import CdnnUnsupportedError
from .kernels import dense_ops as D


def _reshape(shape):
    """Reshape the dims after the batch dim; a -1 is inferred per sample (so batch 0 works)."""
    shape = list(shape)

    def fn(x):
        dims = list(shape)
        if -1 in dims:
            per_sample = 1
            for d in x.shape[1:]:
                per_sample *= d
            known = 1
            for d in dims:
                known *= d if d != -1 else 1
            if known == 0 or per_sample % known:
                raise ValueError(f"cannot reshape samples of shape {list(x.shape[1:])} "
                                 f"to {shape}")
            dims[dims.index(-1)] = per_sample // known
        return D.reshape(x, [x.shape[0]] + dims)
    return fn


def _transpose(d0, d1):
    def fn(x):
        perm = list(range(x.ndim))
        a, b = d0 % x.ndim, d1 % x.ndim
        perm[a], perm[b] = perm[b], perm[a]
        return D.permute(x, perm)
    return fn


def _binary(fn, other):
    if other is None:
        return fn
    return lambda x: fn(x, other)


def build_op(op, a, p):
    """A callable for one dense op; `a` its normalized attributes, `p` its raw params."""
    if op == "max_pool2d":
        return D.MaxPool2d(a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                           a["ceil_mode"])
    if op == "avg_pool2d":
        return lambda x: D.avg_pool2d(x, a["kernel_size"], a["stride"], a["padding"],
                                      a["ceil_mode"], a["count_include_pad"])
    if op == "adaptive_avg_pool2d":
        return lambda x: D.adaptive_avg_pool2d(x, tuple(a["output_size"]))
    if op in ("relu", "relu6", "sigmoid", "tanh"):
        return getattr(D, op)
    if op == "leaky_relu":
        return lambda x: D.leaky_relu(x, a["negative_slope"])
    if op == "prelu":
        return lambda x: D.prelu(x, p["weight"])
    if op == "gelu":
        return lambda x: D.gelu(x, a["approximate"])
    if op == "softmax":
        return lambda x: D.softmax(x, a["dim"])
    if op == "log_softmax":
        return lambda x: D.log_softmax(x, a["dim"])
    if op == "flatten":
        return lambda x: D.flatten(x, a["start_dim"], a["end_dim"])
    if op == "reshape":
        return _reshape(a["shape"])
    if op == "permute":
        return lambda x: D.permute(x, a["dims"])
    if op == "transpose":
        return _transpose(a["dim0"], a["dim1"])
    if op in ("add", "mul"):
        return _binary(getattr(D, op), p.get("other"))
    if op == "cat":
        return lambda *xs: D.cat(list(xs), a["dim"])
    if op == "batch_norm":
        return lambda x: D.batch_norm(x, p["mean"], p["var"], p.get("weight"), p.get("bias"),
                                      a["eps"])
    if op == "local_response_norm":
        return lambda x: D.local_response_norm(x, a["size"], a["alpha"], a["beta"], a["k"])
    if op in ("dropout", "identity"):
        return lambda x: x
    raise CdnnUnsupportedError(f"op {op!r} has no runtime implementation")
