"""Sequence models written after their papers, at full size and tiny (for tests): a GPT-2-style
decoder (Radford et al., 2019: pre-LayerNorm blocks, causal attention, a head tied to the token
embedding), a BERT-style classifier (Devlin et al., 2019: nn.TransformerEncoder over token and
position embeddings, the first token pooled), a ViT (Dosovitskiy et al., 2021: patch
convolution, a class token, learned positions, GELU), a two-layer LSTM keyword spotter (Sainath
and Parada, 2015, over MFCC frames) and a bidirectional GRU tagger.

Positions are `torch.arange` over the input's length, so a sequence length declared free at
capture stays free; the position table bounds it."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused q/k/v projection (GPT-2's c_attn)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).flatten(2))


class GPTBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Token ids [batch, tokens] -> next-token logits [batch, tokens, vocab]."""

    def __init__(self, vocab: int, context: int, width: int, layers: int, heads: int):
        super().__init__()
        self.context = context
        self.wte = nn.Embedding(vocab, width)
        self.wpe = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*[GPTBlock(width, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.wte.weight  # tied, stored once in the file
        self.apply(_gpt_init)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(pos)
        return self.head(self.ln_f(self.blocks(x)))


def _gpt_init(m):
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)


def gpt(vocab: int = 100, context: int = 128) -> GPT:
    """The character-level GPT of the paper figures: 4 layers, width 256, 4 heads."""
    return GPT(vocab, context, 256, 4, 4)


def gpt_tiny(vocab: int = 50, context: int = 16) -> GPT:
    return GPT(vocab, context, 32, 2, 2)


class BERTClassifier(nn.Module):
    """Token ids [batch, tokens] -> class logits, from the first token's final state."""

    def __init__(self, vocab: int, context: int, width: int, layers: int, heads: int,
                 num_classes: int):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.norm = nn.LayerNorm(width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.1,
                                           activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.tok(ids) + self.pos(pos))
        return self.classifier(self.encoder(x)[:, 0])


def bert(vocab: int = 30522, num_classes: int = 2) -> BERTClassifier:
    """BERT-Mini's shape (4 layers, width 256, 4 heads), 512 positions."""
    return BERTClassifier(vocab, 512, 256, 4, 4, num_classes)


def bert_tiny(vocab: int = 60, num_classes: int = 3) -> BERTClassifier:
    return BERTClassifier(vocab, 16, 32, 2, 2, num_classes)


class ViTBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Images [batch, channels, size, size] -> class logits."""

    def __init__(self, image: int, patch: int, channels: int, width: int, layers: int,
                 heads: int, num_classes: int):
        super().__init__()
        self.patch = nn.Conv2d(channels, width, patch, stride=patch)
        tokens = (image // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(width, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def vit_fashion(num_classes: int = 10) -> ViT:
    """The ViT of the paper figures: 28x28 grey images, patch 4, 4 layers, width 128."""
    return ViT(28, 4, 1, 128, 4, 4, num_classes)


def vit_tiny(num_classes: int = 10) -> ViT:
    """ViT-Tiny's shape (width 192, 3 heads, 12 layers), on 32x32 images with patch 4."""
    return ViT(32, 4, 3, 192, 12, 3, num_classes)


def vit_tiny_small(num_classes: int = 10) -> ViT:
    return ViT(16, 4, 3, 32, 2, 2, num_classes)


class LSTMKeywordSpotter(nn.Module):
    """MFCC frames [batch, time, coefficients] -> keyword logits from the last step."""

    def __init__(self, coefficients: int, hidden: int, num_classes: int):
        super().__init__()
        self.lstm = nn.LSTM(coefficients, hidden, num_layers=2, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.classifier(out[:, -1])


def lstm_kws(num_classes: int = 12) -> LSTMKeywordSpotter:
    """49 frames of 10 MFCCs (Speech Commands' one second), two LSTM layers of 118 units."""
    return LSTMKeywordSpotter(10, 118, num_classes)


def lstm_kws_tiny(num_classes: int = 12) -> LSTMKeywordSpotter:
    return LSTMKeywordSpotter(10, 24, num_classes)


class GRUTagger(nn.Module):
    """Token ids [batch, tokens] -> per-token tag logits, through a bidirectional GRU."""

    def __init__(self, vocab: int, width: int, hidden: int, num_tags: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.gru = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.tagger = nn.Linear(2 * hidden, num_tags)

    def forward(self, ids):
        out, _ = self.gru(self.embed(ids))
        return self.tagger(out)


def gru_tagger(num_tags: int = 17) -> GRUTagger:
    """Universal-dependencies POS tagging's shape: 17 tags, a 20k vocabulary."""
    return GRUTagger(20000, 128, 128, num_tags)


def gru_tagger_tiny(num_tags: int = 5) -> GRUTagger:
    return GRUTagger(40, 16, 16, num_tags)


@dataclass(frozen=True)
class SequenceFamily:
    """A sequence-model family: full-size and tiny constructors, their batch-1 input shapes,
    the input's dtype (int64 token ids or float32), and the input dim that may be declared free
    (the sequence; None for a ViT, whose token count the image fixes)."""
    full: Callable[[], nn.Module]
    full_shape: tuple
    tiny: Callable[[], nn.Module]
    tiny_shape: tuple
    dtype: torch.dtype
    seq_dim: int | None
    paper: str

    def example(self, tiny=True, length=None, seed=0):
        """A batch-1 example input (token ids below the tiny model's vocabulary)."""
        shape = list(self.tiny_shape if tiny else self.full_shape)
        if length is not None:
            shape[self.seq_dim] = length
        g = torch.Generator().manual_seed(seed)
        if self.dtype == torch.int64:
            return torch.randint(0, 10, shape, generator=g)
        return torch.randn(shape, generator=g)


SEQUENCE_FAMILIES: dict[str, SequenceFamily] = {
    "gpt": SequenceFamily(gpt, (1, 128), gpt_tiny, (1, 12), torch.int64, 1,
                          "Radford et al. 2019"),
    "bert": SequenceFamily(bert, (1, 128), bert_tiny, (1, 12), torch.int64, 1,
                           "Devlin et al. 2019"),
    "vit": SequenceFamily(vit_tiny, (1, 3, 32, 32), vit_tiny_small, (1, 3, 16, 16),
                          torch.float32, None, "Dosovitskiy et al. 2021"),
    "lstm_kws": SequenceFamily(lstm_kws, (1, 49, 10), lstm_kws_tiny, (1, 20, 10),
                               torch.float32, 1, "Sainath and Parada 2015"),
    "gru_tagger": SequenceFamily(gru_tagger, (1, 32), gru_tagger_tiny, (1, 10), torch.int64,
                                 1, "bidirectional GRU tagger"),
}
