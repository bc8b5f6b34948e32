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


CTC_WIDTHS = (8, 12, 16, 20, 24)  # the hidden widths a `ctc_widths` run draws from


def ctc_widths(
    units: int, in_channels: int = 1, n_classes: int = 10, size: int = 28
) -> Architecture:
    """A ctc net of `units` hidden channels, of the width-varied family `ctc_widths`: the
    targets on which a model fitted on the fixed-width ctc is tested for transfer to new widths."""
    net = ctc(in_channels=in_channels, units=units, n_classes=n_classes, size=size)
    return Architecture(f"ctc_w{units}", net.layers, net.input_shape, family="ctc_widths")


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


def cnn_small(in_channels: int = 1, n_classes: int = 10, size: int = 16) -> Architecture:
    """A second fixed family sized for 16x16 inputs: conv 8@5x5 - max - conv 6@3x3 - max -
    conv 4@2x2 - flatten - fc 20 - fc 10 (1,056 parameters at 16x16)."""
    side = ((size - 4) // 2 - 2) // 2 - 1
    if side < 1:
        raise ValueError(f"cnn_small needs images of at least 14x14, got {size}x{size}")
    layers = (
        LayerSpec("conv2d", (8, in_channels, 5, 5), (8,), pool="max2"),
        LayerSpec("conv2d", (6, 8, 3, 3), (6,), pool="max2"),
        LayerSpec("conv2d", (4, 6, 2, 2), (4,), pool="flatten"),
        LayerSpec("linear", (20, 4 * side * side), (20,)),
        LayerSpec("linear", (n_classes, 20), (n_classes,)),
    )
    return Architecture("cnn_small", layers, (in_channels, size, size), family="cnn_small")


def mixed(
    depth: int, width: int, in_channels: int = 1, n_classes: int = 10, size: int = 16
) -> Architecture:
    """One member of the mixed family: `depth` x conv `width`@3x3 stride 2 padding 1, GAP, dense."""
    if depth < 1 or width < 1:
        raise ValueError(f"mixed needs depth and width >= 1, got depth={depth}, width={width}")
    convs = tuple(
        LayerSpec(
            "conv2d", (width, in_channels if i == 0 else width, 3, 3), (width,),
            stride=2, padding=1, pool="gap" if i == depth - 1 else None,
        )
        for i in range(depth)
    )
    layers = (*convs, LayerSpec("linear", (n_classes, width), (n_classes,)))
    return Architecture(
        f"mixed_d{depth}_w{width}", layers, (in_channels, size, size), family="mixed"
    )
