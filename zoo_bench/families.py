"""Named architectures every part of zoo-bench agrees on (the Small CNN Zoo net, CNN-s, ...)."""

from __future__ import annotations

from zoo_bench.arch import Architecture, LayerSpec


def ctc(in_channels: int = 1, units: int = 16, n_classes: int = 10, size: int = 28) -> Architecture:
    """Unterthiner et al.'s Small CNN Zoo net: 3 x conv 3x3 stride 2 valid, GAP, dense logits."""
    layers = (
        LayerSpec("conv2d", (units, in_channels, 3, 3), (units,), stride=2),
        LayerSpec("conv2d", (units, units, 3, 3), (units,), stride=2),
        LayerSpec("conv2d", (units, units, 3, 3), (units,), stride=2, pool="gap"),
        LayerSpec("linear", (n_classes, units), (n_classes,)),
    )
    return Architecture("ctc", layers, (in_channels, size, size), family="ctc")


def cnn_s(in_channels: int = 1, n_classes: int = 10) -> Architecture:
    """Schürholt et al.'s CNN-s on 28x28: conv 8@5, conv 6@5 (each max-pooled before its
    activation, as in their code), conv 4@2, fc 20, fc 10: 2,464 parameters with one channel."""
    layers = (
        LayerSpec("conv2d", (8, in_channels, 5, 5), (8,), pool="max2", pool_first=True),
        LayerSpec("conv2d", (6, 8, 5, 5), (6,), pool="max2", pool_first=True),
        LayerSpec("conv2d", (4, 6, 2, 2), (4,), pool="flatten"),
        LayerSpec("linear", (20, 36), (20,)),
        LayerSpec("linear", (n_classes, 20), (n_classes,)),
    )
    return Architecture("cnn_s", layers, (in_channels, 28, 28), family="cnn_s")
