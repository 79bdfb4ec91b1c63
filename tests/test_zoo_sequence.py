"""The sequence zoo (cdnn/zoo_sequence.py): a BERT-style classifier, a GPT-2-style decoder with a
tied head, a ViT, a two-layer LSTM keyword spotter and a bidirectional GRU tagger. Each converts
from a batch-1 example with both presets, keeps at least 90% of its parameters codebook-coded,
and runs like the decompressed reference at batches 1 and 3 and, where the sequence is
declared free, at two lengths."""

import numpy as np
import pytest
import torch

from cdnn import compress
from cdnn.models import seeded
from cdnn.zoo_sequence import SEQUENCE_FAMILIES
from cdnn_runtime import InferenceSession
from test_zoo import PRESETS, codebook_coded, trained


def _inputs(family, batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    shape = [batch, *family.tiny_shape[1:]]
    if length is not None:
        shape[family.seq_dim] = length
    if family.dtype == torch.int64:
        return torch.randint(0, 10, shape, generator=g)
    return torch.randn(shape, generator=g)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", list(SEQUENCE_FAMILIES))
def test_converts_from_batch_one_and_runs_any_batch_and_length(name, preset):
    family = SEQUENCE_FAMILIES[name]
    model = trained(seeded(family.tiny, 0)).eval()
    total = sum(p.numel() for p in model.parameters())  # a tied table counts once
    free = None if family.seq_dim is None else {0: {family.seq_dim: "seq"}}
    packed = compress(model, (family.example(),), preset=preset, dynamic_dims=free)
    assert codebook_coded(packed) >= 0.9 * total, (codebook_coded(packed), total)
    sess = InferenceSession(packed.to_bytes())
    spec = sess.get_inputs()[0]
    assert spec.shape[0] is None
    if free:
        assert spec.shape[family.seq_dim] == "seq"
    reference = packed.reference_model().eval()
    traced = family.tiny_shape[family.seq_dim] if free else None
    lengths = (traced,) if not free else (3, traced + 2 if name not in ("gpt", "bert")
                                              else traced + 4)
    for batch in (1, 3):
        for length in lengths:
            x = _inputs(family, batch, length, seed=batch * 100 + (length or 0))
            with torch.no_grad():
                ref = reference(x).numpy()
            y = sess(x.numpy())
            assert y.shape == ref.shape
            np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_the_gpt_head_is_its_token_table_stored_once():
    family = SEQUENCE_FAMILIES["gpt"]
    packed = compress(seeded(family.tiny, 0).eval(), (family.example(),))
    tables = {n["params"]["weight"] for n in packed.file.graph["nodes"]
              if n["op"] in ("embedding", "linear") and n["params"]["weight"].startswith(
                  ("head", "wte"))}
    assert len(tables) == 1


def test_full_size_models_have_their_shapes():
    counts = {name: sum(p.numel() for p in f.full().parameters())
              for name, f in SEQUENCE_FAMILIES.items()}
    # GPT: 4 blocks of 12 * 256^2 + biases and norms, a 100 x 256 table tied to the head and
    # 128 positions; ViT-Tiny: 5.5M at 12 layers of width 192 (the paper's 5.7M at 224 pixels
    # has 196 patches of 16, which change only the position table and the patch convolution)
    assert 3_100_000 < counts["gpt"] < 3_300_000
    assert 5_300_000 < counts["vit"] < 5_600_000
    assert counts["bert"] > 10_000_000  # BERT-Mini's 11.2M with its 30,522-token vocabulary
