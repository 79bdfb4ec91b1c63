"""nn.MultiheadAttention rewritten for capture: the batch kept in dim 0 and every projection an
nn.Linear of its own.

PyTorch's module folds the batch into the heads (`[tokens, batch * heads, head_dim]`), which a
graph with a free batch cannot hold, and keeps its input projection in one `in_proj_weight`
that the compressor, which works on modules' `weight`, would store raw. `CaptureAttention`
computes the same function from the same values as q_proj, k_proj, v_proj and out_proj.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from cdnn_runtime.errors import CdnnUnsupportedError


def _linear(weight, bias):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _additive(mask, dtype):
    """MultiheadAttention's mask as an additive float mask (a boolean one is True where
    attention is not allowed)."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(mask, float("-inf"))


class CaptureAttention(nn.Module):
    """The eval-mode function of an nn.MultiheadAttention `m` without bias_k, bias_v or
    add_zero_attn, through scaled_dot_product_attention (or, for the attention weights, the
    explicit softmax of matmuls)."""

    # TransformerEncoderLayer's fused inference path reads these: they make it step aside
    in_proj_bias = None
    _qkv_same_embed_dim = False

    def __init__(self, m):
        super().__init__()
        if m.bias_k is not None or m.add_zero_attn:
            raise CdnnUnsupportedError("nn.MultiheadAttention with add_bias_kv or add_zero_attn "
                                       "is not supported by cdnn_runtime")
        e = m.embed_dim
        if m._qkv_same_embed_dim:
            weights = m.in_proj_weight.detach().split(e)
        else:
            weights = (m.q_proj_weight.detach(), m.k_proj_weight.detach(),
                       m.v_proj_weight.detach())
        biases = (None,) * 3 if m.in_proj_bias is None else m.in_proj_bias.detach().split(e)
        self.q_proj, self.k_proj, self.v_proj = (_linear(w, b) for w, b in zip(weights, biases))
        self.out_proj = m.out_proj
        self.num_heads, self.batch_first = m.num_heads, m.batch_first
        self.embed_dim = e

    def _heads(self, x):
        """[batch, tokens, heads * d] -> [batch, heads, tokens, d]."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        q = self._heads(self.q_proj(query))
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        mask = _additive(attn_mask, q.dtype)
        if mask is not None and mask.dim() == 3:
            raise CdnnUnsupportedError("nn.MultiheadAttention with a 3-D attn_mask (one per "
                                       "batch and head) is not supported by cdnn_runtime")
        padding = _additive(key_padding_mask, q.dtype)
        if padding is not None:
            padding = padding[:, None, None, :]
            mask = padding if mask is None else mask + padding
        if need_weights:
            scores = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            if mask is not None:
                scores = scores + mask
            weights = scores.softmax(-1)
            out = torch.matmul(weights, v)
            weights = weights.mean(1) if average_attn_weights else weights
        else:
            out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask), None
        out = self.out_proj(out.transpose(1, 2).flatten(2))
        return (out if self.batch_first else out.transpose(0, 1)), weights
