"""Linear layers whose weight is stored raw (small layers): numpy's matmul, then the bias and
the fused activation as in the sparse layers."""

import numpy as np

from ._common import (
    ACT_NONE,
    KernelArgumentError,
    check_float32,
    check_float32_array,
    parse_activation,
)
from .elementwise import activate_flat


def linear_dense(x, weight, bias=None, activation="none"):
    """act(x @ weight.T + bias) with a raw float32 weight [out, in]; x float32 [B, in]."""
    x = check_float32_array("x", x)
    check_float32("weight", weight, ndim=2, contiguous=False)
    if x.ndim != 2:
        raise KernelArgumentError(f"x must be 2-D [B, in_features], got shape {x.shape}")
    if x.shape[1] != weight.shape[1]:
        raise KernelArgumentError(f"x has {x.shape[1]} features, weight expects {weight.shape[1]}")
    if bias is not None:
        check_float32("bias", bias, ndim=1, contiguous=False)
        if bias.shape[0] != weight.shape[0]:
            raise KernelArgumentError(f"bias must have {weight.shape[0]} values, got "
                                      f"{bias.shape[0]}")
    act = parse_activation(activation)
    out = np.matmul(x, weight.T)
    if bias is not None:
        out += bias
    out = np.ascontiguousarray(out)
    if act.code != ACT_NONE and out.size:
        flat = out.reshape(-1)
        activate_flat(flat, act, flat)
    return out
