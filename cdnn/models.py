"""Reference architectures of Deep Compression, with the module names checkpoints use.

AlexNet and VGG-16 follow torchvision's layouts and names (``features.0``,
``classifier.1``, ...) so that torchvision state dicts load unchanged.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = [
    "DEEP_COMPRESSION_DENSITY",
    "MODELS",
    "AlexNet",
    "LeNet300100",
    "LeNet5",
    "VGG16",
    "alexnet",
    "lenet_300_100",
    "lenet_5",
    "seeded",
    "vgg16",
]


class LeNet300100(nn.Module):
    """784-300-100-10 fully connected network with ReLU; input [N, 1, 28, 28]."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """Caffe's LeNet-5 (conv 20, pool, conv 50, pool, fc 500, ReLU, fc 10); input [N, 1, 28, 28]."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.conv1(x), 2)
        x = nn.functional.max_pool2d(self.conv2(x), 2)
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


class AlexNet(nn.Module):
    """torchvision's AlexNet (the one-GPU variant); input [N, 3, 224, 224]."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


#: VGG configuration "D" (16 weight layers); "M" is a 2x2 max pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M")


class VGG16(nn.Module):
    """torchvision's VGG-16 without batch norm, with its initialisation; input [N, 3, 224, 224]."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def lenet_300_100(num_classes: int = 10) -> LeNet300100:
    """LeNet-300-100 (266,610 parameters); layers fc1, fc2, fc3."""
    return LeNet300100(num_classes)


def lenet_5(num_classes: int = 10) -> LeNet5:
    """Caffe LeNet-5 (431,080 parameters); layers conv1, conv2, fc1, fc2."""
    return LeNet5(num_classes)


def alexnet(num_classes: int = 1000) -> AlexNet:
    """torchvision-layout AlexNet (61,100,840 parameters at 1000 classes)."""
    return AlexNet(num_classes)


def vgg16(num_classes: int = 1000) -> VGG16:
    """torchvision-layout VGG-16 (138,357,544 parameters at 1000 classes)."""
    return VGG16(num_classes)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet-300-100": lenet_300_100,
    "lenet-5": lenet_5,
    "alexnet": alexnet,
    "vgg16": vgg16,
}

#: Fraction of weights kept per layer in Deep Compression (Han et al. 2016, tables 1-5),
#: by model name and module name.
DEEP_COMPRESSION_DENSITY: dict[str, dict[str, float]] = {
    "lenet-300-100": {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26},
    "lenet-5": {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19},
    "alexnet": {
        "features.0": 0.84,  # conv1
        "features.3": 0.38,  # conv2
        "features.6": 0.35,  # conv3
        "features.8": 0.37,  # conv4
        "features.10": 0.37,  # conv5
        "classifier.1": 0.09,  # fc6
        "classifier.4": 0.09,  # fc7
        "classifier.6": 0.25,  # fc8
    },
    "vgg16": {
        "features.0": 0.58,  # conv1_1
        "features.2": 0.22,  # conv1_2
        "features.5": 0.34,  # conv2_1
        "features.7": 0.36,  # conv2_2
        "features.10": 0.53,  # conv3_1
        "features.12": 0.24,  # conv3_2
        "features.14": 0.42,  # conv3_3
        "features.17": 0.32,  # conv4_1
        "features.19": 0.27,  # conv4_2
        "features.21": 0.34,  # conv4_3
        "features.24": 0.35,  # conv5_1
        "features.26": 0.29,  # conv5_2
        "features.28": 0.36,  # conv5_3
        "classifier.0": 0.04,  # fc6
        "classifier.3": 0.04,  # fc7
        "classifier.6": 0.23,  # fc8
    },
}


def seeded(factory: Callable[..., nn.Module], seed: int, *args, **kwargs) -> nn.Module:
    """Build ``factory(*args, **kwargs)`` with its weights drawn from ``torch.manual_seed(seed)``.

    The caller's global RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(*args, **kwargs)
