"""Architectures people deploy, each written after its paper in a few lines per block.

Every family has a full-size constructor (the published widths and depths, 224x224 images or
raw audio) and a tiny one (same blocks at small width and depth) that takes no argument, so
`cdnn compress ckpt.safetensors --model cdnn.zoo:mobilenet_v2_tiny` works and tests stay fast.
ResNet-50, MobileNetV2, MobileNetV3-Small, EfficientNet-B0, RegNetY, ConvNeXt and DenseNet use
torchvision's module names, so its published state dicts load unchanged. `FAMILIES` lists them
with their input shapes; build with `cdnn.models.seeded(factory, seed)` for seeded weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

# ---- shared pieces -----------------------------------------------------------------------------


def make_divisible(v: float, divisor: int = 8) -> int:
    """`v` rounded to a multiple of `divisor`, never below it nor 10% under `v` (MobileNet)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
            act: Callable[[], nn.Module] | None = nn.ReLU, eps: float = 1e-5) -> nn.Sequential:
    """Conv (no bias, "same" padding for odd k), BatchNorm, then `act` unless it is None."""
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=eps)]
    return nn.Sequential(*layers, *([act()] if act is not None else []))


def _relu():
    return nn.ReLU(inplace=True)


def _hardswish():
    return nn.Hardswish(inplace=True)


def _silu():
    return nn.SiLU(inplace=True)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): x * gate(fc2(act(fc1(pool(x))))), 1x1 convs.

    `pool="adaptive"` pools with adaptive_avg_pool2d, `"mean"` with x.mean((2, 3)) as the
    TensorFlow EfficientNet does."""

    def __init__(self, channels: int, squeeze: int, act=nn.ReLU, gate=nn.Sigmoid,
                 pool: str = "adaptive"):
        super().__init__()
        self.pool = pool
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True) if self.pool == "mean" else F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


def init_weights(model: nn.Module, linear_std: float | None = 0.01) -> nn.Module:
    """The papers' initialisation: convs He-normal (fan out), norms 1 and 0, linears N(0, std)
    (left at PyTorch's default when `linear_std` is None)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
    return model


# ---- ResNet-50 (He et al. 2016), bottleneck blocks, stride in the 3x3 (torchvision's v1.5) --


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (stride here), 1x1 expand x4; the shortcut projects when shapes change."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = 4 * width
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


class ResNet(nn.Module):
    """7x7 stem and max pool, four stages of bottlenecks (widths w, 2w, 4w, 8w), pool, fc."""

    def __init__(self, depths=(3, 4, 6, 3), width: int = 64, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i, depth in enumerate(depths):
            blocks = []
            for j in range(depth):
                blocks.append(Bottleneck(cin, width << i, 2 if i > 0 and j == 0 else 1))
                cin = 4 * (width << i)
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.n_stages = len(depths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50: bottleneck stages of 3, 4, 6, 3 blocks; 25,557,032 parameters."""
    return ResNet((3, 4, 6, 3), 64, num_classes)


def resnet50_tiny(num_classes: int = 10) -> ResNet:
    """ResNet-50's blocks at width 8, one bottleneck per stage; input [N, 3, 32, 32]."""
    return ResNet((1, 1, 1, 1), 8, num_classes)


# ---- MobileNetV2 (Sandler et al. 2018), inverted residuals with linear bottlenecks ------------

#: expansion t, output channels c, repeats n, first stride s (the paper's table 2)
MOBILENET_V2_CFG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                    (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear projection; residual at stride 1."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """Stem 3x3/2, the inverted-residual table scaled by `width`, a 1x1 conv to `last`, fc."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, repeats=None,
                 last: int | None = None):
        super().__init__()
        cin = make_divisible(32 * width)
        last = last or make_divisible(1280 * max(1.0, width))
        layers = [conv_bn(3, cin, 3, 2, act=nn.ReLU6)]
        for i, (t, c, n, s) in enumerate(MOBILENET_V2_CFG):
            cout = make_divisible(c * width)
            for j in range(n if repeats is None else repeats[i]):
                layers.append(InvertedResidual(cin, cout, s if j == 0 else 1, t))
                cin = cout
        layers.append(conv_bn(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(num_classes: int = 1000) -> MobileNetV2:
    """MobileNetV2 at width 1.0: 3,504,872 parameters."""
    return MobileNetV2(1.0, num_classes)


def mobilenet_v2_tiny(num_classes: int = 10) -> MobileNetV2:
    """MobileNetV2's table at width 0.25, one block per row, a 64-channel head; [N, 3, 32, 32]."""
    return MobileNetV2(0.25, num_classes, repeats=(1,) * 7, last=64)


# ---- MobileNetV3-Small (Howard et al. 2019), Hardswish and Hardsigmoid squeeze-excitation ---

#: kernel, expanded channels, output channels, squeeze-excitation, activation, stride (table 2)
MOBILENET_V3_SMALL_CFG = (
    (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1))


class MobileNetV3Block(nn.Module):
    """1x1 expand, kxk depthwise, optional SE (ReLU, Hardsigmoid), 1x1 linear projection."""

    def __init__(self, cin: int, k: int, hidden: int, cout: int, se: bool, act: str,
                 stride: int):
        super().__init__()
        act_layer = _hardswish if act == "HS" else _relu
        self.use_residual = stride == 1 and cin == cout
        layers = [conv_bn(cin, hidden, 1, act=act_layer, eps=1e-3)] if hidden != cin else []
        layers.append(conv_bn(hidden, hidden, k, stride, hidden, act=act_layer, eps=1e-3))
        if se:
            layers.append(SqueezeExcite(hidden, make_divisible(hidden // 4), gate=nn.Hardsigmoid))
        layers.append(conv_bn(hidden, cout, 1, act=None, eps=1e-3))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV3Small(nn.Module):
    """Stem 3x3/2 Hardswish, the table's blocks scaled by `width`, 1x1 conv, pool, two fc."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, blocks: int | None = None,
                 last: int = 1024):
        super().__init__()
        cin = make_divisible(16 * width)
        layers = [conv_bn(3, cin, 3, 2, act=_hardswish, eps=1e-3)]
        for k, exp, c, se, act, s in MOBILENET_V3_SMALL_CFG[:blocks]:
            cout = make_divisible(c * width)
            layers.append(MobileNetV3Block(cin, k, make_divisible(exp * width), cout, se, act, s))
            cin = cout
        layers.append(conv_bn(cin, 6 * cin, 1, act=_hardswish, eps=1e-3))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * cin, last), nn.Hardswish(inplace=True),
                                        nn.Dropout(0.2), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v3_small(num_classes: int = 1000) -> MobileNetV3Small:
    """MobileNetV3-Small at width 1.0: 2,542,856 parameters."""
    return MobileNetV3Small(1.0, num_classes)


def mobilenet_v3_small_tiny(num_classes: int = 10) -> MobileNetV3Small:
    """MobileNetV3-Small's first six blocks at width 0.25, a 64-wide fc; [N, 3, 32, 32]."""
    return MobileNetV3Small(0.25, num_classes, blocks=6, last=64)


# ---- EfficientNet-B0 (Tan and Le 2019), MBConv with SiLU and squeeze-excitation by mean -----

#: expansion, kernel, stride, input channels, output channels, layers (the paper's table 1)
EFFICIENTNET_B0_CFG = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
                       (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
                       (6, 3, 1, 192, 320, 1))


class MBConv(nn.Module):
    """1x1 expand (SiLU), kxk depthwise (SiLU), SE on a quarter of the input width, 1x1 project."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers = [conv_bn(cin, hidden, 1, act=_silu, eps=1e-3)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, k, stride, hidden, act=_silu, eps=1e-3),
                   SqueezeExcite(hidden, max(1, cin // 4), act=nn.SiLU, pool="mean"),
                   conv_bn(hidden, cout, 1, act=None, eps=1e-3)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class EfficientNet(nn.Module):
    """Stem 3x3/2, seven MBConv stages scaled by `width` and `depth`, 1x1 conv, pool, fc."""

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000,
                 last: int | None = None):
        super().__init__()
        cin = make_divisible(32 * width)
        layers = [conv_bn(3, cin, 3, 2, act=_silu, eps=1e-3)]
        for t, k, s, _, c, n in EFFICIENTNET_B0_CFG:
            cout = make_divisible(c * width)
            layers.append(nn.Sequential(*[MBConv(cin if j == 0 else cout, cout, k,
                                                 s if j == 0 else 1, t)
                                          for j in range(math.ceil(n * depth))]))
            cin = cout
        last = last or 4 * cin
        layers.append(conv_bn(cin, last, 1, act=_silu, eps=1e-3))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def efficientnet_b0(num_classes: int = 1000) -> EfficientNet:
    """EfficientNet-B0: 5,288,548 parameters."""
    return EfficientNet(1.0, 1.0, num_classes)


def efficientnet_b0_tiny(num_classes: int = 10) -> EfficientNet:
    """EfficientNet-B0's stages at width 0.25, one block each, a 64-channel head; [N, 3, 32, 32]."""
    return EfficientNet(0.25, 0.25, num_classes, last=64)


# ---- RegNetY (Radosavovic et al. 2020), X blocks with group convs plus squeeze-excitation ----


class RegNetYBlock(nn.Module):
    """1x1, 3x3 group conv (groups of `group_width` channels), SE on a quarter of the input
    width, 1x1; the shortcut projects when shapes change; ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int):
        super().__init__()
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = conv_bn(cin, cout, 1, stride, act=None)
        self.f = nn.Sequential()
        self.f.add_module("a", conv_bn(cin, cout, 1))
        self.f.add_module("b", conv_bn(cout, cout, 3, stride, cout // group_width))
        self.f.add_module("se", SqueezeExcite(cout, int(round(0.25 * cin))))
        self.f.add_module("c", conv_bn(cout, cout, 1, act=None))
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return self.activation(shortcut + self.f(x))


class RegNetY(nn.Module):
    """Stem 3x3/2 to 32, stages of RegNetY blocks (first of each at stride 2), pool, fc."""

    def __init__(self, depths, widths, group_width: int, num_classes: int = 1000,
                 stem: int = 32):
        super().__init__()
        self.stem = conv_bn(3, stem, 3, 2)
        self.trunk_output = nn.Sequential()
        cin = stem
        for i, (depth, width) in enumerate(zip(depths, widths)):
            stage = nn.Sequential()
            for j in range(depth):
                stage.add_module(f"block{i + 1}-{j}",
                                 RegNetYBlock(cin, width, 2 if j == 0 else 1, group_width))
                cin = width
            self.trunk_output.add_module(f"block{i + 1}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.trunk_output(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def regnet_y_400mf(num_classes: int = 1000) -> RegNetY:
    """RegNetY-400MF (depths 1, 3, 6, 6; widths 48, 104, 208, 440; groups of 8): 4,344,144
    parameters."""
    return RegNetY((1, 3, 6, 6), (48, 104, 208, 440), 8, num_classes)


def regnet_y_tiny(num_classes: int = 10) -> RegNetY:
    """RegNetY blocks at widths 8, 16, 24, 32 (one per stage, groups of 8); [N, 3, 32, 32]."""
    return RegNetY((1, 1, 1, 1), (8, 16, 24, 32), 8, num_classes, stem=8)


# ---- ConvNeXt (Liu et al. 2022): 7x7 depthwise, LayerNorm channels-last, layer scale --------


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor: permute to NHWC, normalise, permute back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise, channels-last LayerNorm, Linear 4x, GELU, Linear back, layer scale."""

    def __init__(self, dim: int, layer_scale: float = 1e-6):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute(0, 2, 3, 1),
            nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(),
            nn.Linear(4 * dim, dim), Permute(0, 3, 1, 2))
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer_scale * self.block(x)


class ConvNeXt(nn.Module):
    """4x4/4 patchify stem with LayerNorm, stages of blocks joined by LayerNorm and a 2x2/2
    conv, pooled LayerNorm and fc head."""

    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), num_classes: int = 1000,
                 layer_scale: float = 1e-6):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            layers.append(nn.Sequential(*[ConvNeXtBlock(dim, layer_scale) for _ in range(depth)]))
            if i + 1 < len(dims):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6),
                                            nn.Conv2d(dim, dims[i + 1], 2, 2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1),
                                        nn.Linear(dims[-1], num_classes))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def convnext_tiny(num_classes: int = 1000) -> ConvNeXt:
    """ConvNeXt-T (depths 3, 3, 9, 3; dims 96 to 768): 28,589,128 parameters."""
    return ConvNeXt((3, 3, 9, 3), (96, 192, 384, 768), num_classes)


def convnext_stage_tiny(num_classes: int = 10) -> ConvNeXt:
    """Two ConvNeXt stages of one block at dims 16 and 32, layer scale 0.5; [N, 3, 32, 32]."""
    return ConvNeXt((1, 1), (16, 32), num_classes, layer_scale=0.5)


# ---- GhostNet (Han et al. 2020): ghost modules (cat and slice), ghost bottlenecks ----------


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """GhostNet's gate: relu6(x + 3) / 6."""
    return F.relu6(x + 3.0) / 6.0


class HardSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hard_sigmoid(x)


class GhostModule(nn.Module):
    """A 1x1 conv makes ceil(cout / ratio) channels, a cheap depthwise conv the rest; the two
    are concatenated and sliced to `cout`."""

    def __init__(self, cin: int, cout: int, relu: bool = True, ratio: int = 2):
        super().__init__()
        self.cout = cout
        init = math.ceil(cout / ratio)
        act = _relu if relu else None
        self.primary_conv = conv_bn(cin, init, 1, act=act)
        self.cheap_operation = conv_bn(init, init * (ratio - 1), 3, groups=init, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        out = torch.cat([x1, self.cheap_operation(x1)], dim=1)
        return out[:, :self.cout]


class GhostBottleneck(nn.Module):
    """Ghost module, depthwise conv at stride 2, optional SE, ghost module without ReLU."""

    def __init__(self, cin: int, k: int, hidden: int, cout: int, se: bool, stride: int):
        super().__init__()
        self.ghost1 = GhostModule(cin, hidden)
        self.conv_dw = None
        if stride > 1:
            self.conv_dw = conv_bn(hidden, hidden, k, stride, hidden, act=None)
        self.se = SqueezeExcite(hidden, make_divisible(hidden // 4, 4), gate=HardSigmoid) \
            if se else None
        self.ghost2 = GhostModule(hidden, cout, relu=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv_bn(cin, cin, k, stride, cin, act=None),
                                          conv_bn(cin, cout, 1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ghost1(x)
        if self.conv_dw is not None:
            y = self.conv_dw(y)
        if self.se is not None:
            y = self.se(y)
        return self.ghost2(y) + (x if self.shortcut is None else self.shortcut(x))


#: kernel, hidden channels, output channels, SE, stride (the paper's table 7)
GHOSTNET_CFG = ((3, 16, 16, False, 1), (3, 48, 24, False, 2), (3, 72, 24, False, 1),
                (5, 72, 40, True, 2), (5, 120, 40, True, 1), (3, 240, 80, False, 2),
                (3, 200, 80, False, 1), (3, 184, 80, False, 1), (3, 184, 80, False, 1),
                (3, 480, 112, True, 1), (3, 672, 112, True, 1), (5, 672, 160, True, 2),
                (5, 960, 160, False, 1), (5, 960, 160, True, 1), (5, 960, 160, False, 1),
                (5, 960, 160, True, 1))


class GhostNet(nn.Module):
    """Stem 3x3/2, ghost bottlenecks scaled by `width`, 1x1 conv, pool, 1x1 head conv, fc."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, cfg=GHOSTNET_CFG,
                 head: int = 1280, divisor: int = 4):
        super().__init__()
        cin = make_divisible(16 * width, divisor)
        self.conv_stem = conv_bn(3, cin, 3, 2)
        blocks = []
        for k, hidden, c, se, s in cfg:
            cout = make_divisible(c * width, divisor)
            blocks.append(GhostBottleneck(cin, k, make_divisible(hidden * width, divisor), cout,
                                          se, s))
            cin = cout
        last = make_divisible(cfg[-1][1] * width, divisor)
        blocks.append(conv_bn(cin, last, 1))
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = nn.Conv2d(last, head, 1)
        self.classifier = nn.Linear(head, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.blocks(self.conv_stem(x)), 1)
        x = F.relu(self.conv_head(x))
        return self.classifier(torch.flatten(x, 1))


def ghostnet(num_classes: int = 1000) -> GhostNet:
    """GhostNet 1.0x (16 ghost bottlenecks)."""
    return GhostNet(1.0, num_classes)


def ghostnet_tiny(num_classes: int = 10) -> GhostNet:
    """Three ghost bottlenecks (stride 2, then stride 2 and stride 1 with SE) of odd widths, so
    that each ghost module's slice drops a channel; a 64-channel head; [N, 3, 32, 32]."""
    cfg = ((3, 23, 13, False, 2), (5, 37, 21, True, 2), (5, 45, 21, True, 1))
    return GhostNet(1.0, num_classes, cfg=cfg, head=64, divisor=1)


# ---- DenseNet (Huang et al. 2017), DenseNet-BC: dense blocks joined by transitions -----------


class DenseLayer(nn.Module):
    """BN, ReLU, 1x1 conv to bn_size * growth; BN, ReLU, 3x3 conv to growth (pre-activation)."""

    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """Each layer sees the concatenation of the block input and every earlier layer's output."""

    def __init__(self, n_layers: int, cin: int, growth: int, bn_size: int):
        super().__init__()
        for i in range(n_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth, growth, bn_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN, ReLU, 1x1 conv halving the channels, 2x2 average pool."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(cin))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(cin, cout, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(2, 2))


class DenseNet(nn.Module):
    """7x7/2 stem and max pool, dense blocks with transitions, BN, ReLU, pool, fc."""

    def __init__(self, growth: int = 32, blocks=(6, 12, 24, 16), init: int = 64,
                 bn_size: int = 4, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(init))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        c = init
        for i, n in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i + 1 < len(blocks):
                self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(F.relu(self.features(x)), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def densenet121(num_classes: int = 1000) -> DenseNet:
    """DenseNet-121 (growth 32; blocks of 6, 12, 24, 16): 7,978,856 parameters."""
    return DenseNet(32, (6, 12, 24, 16), 64, 4, num_classes)


def densenet_tiny(num_classes: int = 10) -> DenseNet:
    """Two dense blocks of two layers at growth 8 and a transition; [N, 3, 32, 32]."""
    return DenseNet(8, (2, 2), 16, 4, num_classes)


# ---- U-Net (Ronneberger et al. 2015): contracting path, up path with skip concatenations -----


class DoubleConv(nn.Sequential):
    """(3x3 conv, BN, ReLU) twice."""

    def __init__(self, cin: int, cout: int):
        super().__init__(*conv_bn(cin, cout, 3, act=_relu), *conv_bn(cout, cout, 3, act=_relu))


class Up(nn.Module):
    """Upsample x2 halving the channels (a 2x2 transposed conv, or bilinear then a 1x1 conv),
    concatenate the skip connection, double conv."""

    def __init__(self, cin: int, cout: int, mode: str = "transpose"):
        super().__init__()
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        else:
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear",
                                                align_corners=True),
                                    nn.Conv2d(cin, cin // 2, 1))
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """Double convs with 2x2 max pools down, `Up` blocks back with skips, 1x1 conv, sigmoid.

    `modes` gives each up step's upsampling, deepest first ("transpose" as in the paper, or
    "bilinear")."""

    def __init__(self, in_channels: int = 1, n_classes: int = 1, base: int = 64,
                 modes=("transpose",) * 4):
        super().__init__()
        widths = [base << i for i in range(len(modes) + 1)]
        self.inc = DoubleConv(in_channels, base)
        self.down = nn.ModuleList(DoubleConv(a, b) for a, b in zip(widths, widths[1:]))
        self.up = nn.ModuleList(Up(b, a, mode) for a, b, mode
                                in zip(widths[-2::-1], widths[:0:-1], modes))
        self.outc = nn.Conv2d(base, n_classes, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return torch.sigmoid(self.outc(x))


def unet(n_classes: int = 1) -> UNet:
    """The paper's U-Net widths (64 to 1024) on 3-channel images, up-convolutions throughout."""
    return UNet(3, n_classes, 64)


def unet_tiny(n_classes: int = 1) -> UNet:
    """Three levels from 8 channels, one transposed-conv up step and two bilinear ones;
    input [N, 3, 32, 32]."""
    return UNet(3, n_classes, 8, modes=("transpose", "bilinear", "bilinear"))


# ---- M5 (Dai et al. 2017): a raw-waveform classifier of 1-D convolutions ---------------------


class M5(nn.Module):
    """Conv1d 80/4, then three 3-wide Conv1d, each with BatchNorm1d, ReLU and a 4x max pool;
    the mean over time, fc, log_softmax."""

    def __init__(self, channels: int = 128, num_classes: int = 35):
        super().__init__()
        widths = (channels, channels, 2 * channels, 4 * channels)
        self.conv1 = nn.Conv1d(1, widths[0], 80, stride=4)
        self.bn1 = nn.BatchNorm1d(widths[0])
        self.conv2 = nn.Conv1d(widths[0], widths[1], 3)
        self.bn2 = nn.BatchNorm1d(widths[1])
        self.conv3 = nn.Conv1d(widths[1], widths[2], 3)
        self.bn3 = nn.BatchNorm1d(widths[2])
        self.conv4 = nn.Conv1d(widths[2], widths[3], 3)
        self.bn4 = nn.BatchNorm1d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 5):
            bn, conv = getattr(self, f"bn{i}"), getattr(self, f"conv{i}")
            x = F.max_pool1d(F.relu(bn(conv(x))), 4)
        return F.log_softmax(self.fc(x.mean(-1)), dim=-1)


def m5(num_classes: int = 35) -> M5:
    """M5 as published (128, 128, 256, 512 channels) on 1 s of 16 kHz audio."""
    return M5(128, num_classes)


def m5_tiny(num_classes: int = 10) -> M5:
    """M5 at 8 base channels; input [N, 1, 4000]."""
    return M5(8, num_classes)


# ---- the families, for tests, benchmarks and docs --------------------------------------------


@dataclass(frozen=True)
class Family:
    """A model family: its full-size and tiny constructors and their input shapes (batch 1)."""
    full: Callable[[], nn.Module]
    full_shape: tuple
    tiny: Callable[[], nn.Module]
    tiny_shape: tuple
    paper: str


_IMAGE = (1, 3, 224, 224)
_SMALL_IMAGE = (1, 3, 32, 32)

FAMILIES: dict[str, Family] = {
    "resnet50": Family(resnet50, _IMAGE, resnet50_tiny, _SMALL_IMAGE, "He et al. 2016"),
    "mobilenet_v2": Family(mobilenet_v2, _IMAGE, mobilenet_v2_tiny, _SMALL_IMAGE,
                           "Sandler et al. 2018"),
    "mobilenet_v3_small": Family(mobilenet_v3_small, _IMAGE, mobilenet_v3_small_tiny,
                                 _SMALL_IMAGE, "Howard et al. 2019"),
    "efficientnet_b0": Family(efficientnet_b0, _IMAGE, efficientnet_b0_tiny, _SMALL_IMAGE,
                              "Tan and Le 2019"),
    "regnet_y": Family(regnet_y_400mf, _IMAGE, regnet_y_tiny, _SMALL_IMAGE,
                       "Radosavovic et al. 2020"),
    "convnext": Family(convnext_tiny, _IMAGE, convnext_stage_tiny, _SMALL_IMAGE,
                       "Liu et al. 2022"),
    "ghostnet": Family(ghostnet, _IMAGE, ghostnet_tiny, _SMALL_IMAGE, "Han et al. 2020"),
    "densenet": Family(densenet121, _IMAGE, densenet_tiny, _SMALL_IMAGE, "Huang et al. 2017"),
    "unet": Family(unet, (1, 3, 256, 256), unet_tiny, _SMALL_IMAGE, "Ronneberger et al. 2015"),
    "m5": Family(m5, (1, 1, 16000), m5_tiny, (1, 1, 4000), "Dai et al. 2017"),
}
