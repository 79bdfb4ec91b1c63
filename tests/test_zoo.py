"""The model zoo: every family converts from a batch-1 example with both presets, keeps at least
90% of its parameters codebook-coded, and runs batches of 1 and 3 like the decompressed
reference; the full-size constructors have the published parameter counts and module names."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cdnn import compress, zoo
from cdnn.models import seeded
from cdnn_runtime import InferenceSession
from cdnn_runtime.constants import ENCODING_SPARSE_CODEBOOK

PRESETS = ("deep-compression", "lossless-ish")

#: Parameter counts of the full-size models: torchvision's exact ones where it has the model;
#: for GhostNet (5.2M in its paper), U-Net (31.0M in its padded PyTorch form) and M5 (0.5M in
#: its paper) those of these definitions.
PUBLISHED_PARAMS = {
    "resnet50": 25_557_032, "mobilenet_v2": 3_504_872, "mobilenet_v3_small": 2_542_856,
    "efficientnet_b0": 5_288_548, "regnet_y": 4_344_144, "convnext": 28_589_128,
    "ghostnet": 5_182_508, "densenet": 7_978_856, "unet": 31_037_633, "m5": 571_939,
}

#: A few module names of each torchvision-named family, as its state dicts spell them.
TORCHVISION_KEYS = {
    "resnet50": ["conv1.weight", "layer1.0.downsample.0.weight", "layer4.2.bn3.running_var",
                 "fc.bias"],
    "mobilenet_v2": ["features.0.0.weight", "features.1.conv.0.0.weight",
                     "features.2.conv.3.running_mean", "features.18.1.weight",
                     "classifier.1.weight"],
    "mobilenet_v3_small": ["features.1.block.1.fc1.weight", "features.4.block.0.0.weight",
                           "features.12.1.bias", "classifier.3.weight"],
    "efficientnet_b0": ["features.1.0.block.1.fc2.weight", "features.6.3.block.3.1.weight",
                        "features.8.0.weight", "classifier.1.weight"],
    "regnet_y": ["stem.0.weight", "trunk_output.block1.block1-0.proj.0.weight",
                 "trunk_output.block4.block4-5.f.se.fc1.bias", "fc.weight"],
    "convnext": ["features.0.1.weight", "features.1.0.block.0.weight",
                 "features.5.8.layer_scale", "features.6.1.weight", "classifier.0.bias"],
    "densenet": ["features.conv0.weight", "features.denseblock1.denselayer1.norm1.weight",
                 "features.transition3.conv.weight", "features.norm5.bias", "classifier.bias"],
}


@torch.no_grad()
def trained(model, seed=0):
    """Give norms and layer scales values away from their initialisation, as training would."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        if isinstance(m, zoo.ConvNeXtBlock):
            m.layer_scale.copy_(torch.rand(m.layer_scale.shape, generator=g) * 0.5 + 0.25)
    return model


def codebook_coded(packed):
    """How many weights the file stores as sparse_codebook tensors (pruned ones included)."""
    return sum(int(np.prod(t.shape)) for t in packed.file.tensors
               if t.encoding == ENCODING_SPARSE_CODEBOOK)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", list(zoo.FAMILIES))
def test_converts_from_batch_one_and_runs_any_batch(name, preset):
    family = zoo.FAMILIES[name]
    model = trained(seeded(family.tiny, 0)).eval()
    total = sum(p.numel() for p in model.parameters())
    example = torch.randn(*family.tiny_shape, generator=torch.Generator().manual_seed(1))
    packed = compress(model, example, preset=preset)
    assert codebook_coded(packed) >= 0.9 * total, (codebook_coded(packed), total)
    sess = InferenceSession(packed.to_bytes())
    assert sess.get_inputs()[0].shape[0] is None  # the batch is free
    reference = packed.reference_model()
    for batch in (1, 3):
        x = torch.randn(batch, *family.tiny_shape[1:],
                        generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = reference(x).numpy()
        y = sess(x.numpy())
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("name", list(zoo.FAMILIES))
def test_full_size_models_have_the_published_parameter_counts_and_names(name):
    family = zoo.FAMILIES[name]
    model = family.full()
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[name]
    state = model.state_dict()
    assert [k for k in TORCHVISION_KEYS.get(name, []) if k not in state] == []


def test_tiny_models_take_their_input_shape_and_are_seeded():
    for name, family in zoo.FAMILIES.items():
        a, b = seeded(family.tiny, 3).eval(), seeded(family.tiny, 3).eval()
        x = torch.randn(*family.tiny_shape)
        with torch.no_grad():
            assert torch.equal(a(x), b(x)), name
    assert not torch.equal(seeded(zoo.m5_tiny, 0).conv1.weight, seeded(zoo.m5_tiny, 1).conv1.weight)


def test_ghost_modules_slice_a_channel_off():
    ghost = zoo.ghostnet_tiny().blocks[0].ghost1
    assert ghost.cout % 2 == 1
    assert ghost(torch.randn(1, 16, 8, 8)).shape[1] == ghost.cout


class _ChannelsLastMlp(nn.Module):
    """Linear layers over the last dim of a 4-D tensor: a ReLU pair (a chain) and a GELU pair."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)
        self.fc3, self.fc4 = nn.Linear(8, 12), nn.Linear(12, 5)

    def forward(self, x):
        y = self.conv(x).permute(0, 2, 3, 1)
        y = self.fc2(torch.relu(self.fc1(y)))
        return self.fc4(F.gelu(self.fc3(y)))


def test_linear_over_the_last_dim_of_a_4d_input():
    model = seeded(_ChannelsLastMlp, 2).eval()
    packed = compress(model, torch.randn(1, 3, 6, 5), preset="lossless-ish")
    sess = InferenceSession(packed.to_bytes())
    for batch in (1, 3):
        x = torch.randn(batch, 3, 6, 5, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = packed.reference_model()(x).numpy()
        y = sess(x.numpy())
        assert y.shape == (batch, 6, 5, 5)
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
