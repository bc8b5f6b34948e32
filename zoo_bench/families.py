"""Named architectures every part of zoo-bench agrees on (the Small CNN Zoo net, CNN-s, ViTs,
SIRENs, ...)."""

from __future__ import annotations

from zoo_bench.arch import TOKEN_POOLS, Architecture, LayerSpec
from zoo_bench.errors import ZooFormatError


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


def vit(
    depth: int,
    width: int,
    heads: int,
    patch: int = 4,
    size: int = 16,
    in_channels: int = 1,
    n_classes: int = 10,
    pool: str = "cls",
    mlp_ratio: int = 2,
) -> Architecture:
    """A small pre-norm Vision Transformer (family "vit"): `patch`x`patch` patch embedding to
    `width`, `depth` blocks of `heads`-head self-attention and an MLP of `mlp_ratio` x `width`
    hidden units, a final layer norm, then the class token (`pool="cls"`) or the token mean
    (`"mean"`) into a linear head. Layout and shapes: `zoo_bench.arch`."""
    if depth < 1 or width < 1 or heads < 1 or patch < 1 or mlp_ratio < 1:
        raise ZooFormatError(
            f"vit needs depth, width, heads, patch and mlp_ratio >= 1, got depth={depth}, "
            f"width={width}, heads={heads}, patch={patch}, mlp_ratio={mlp_ratio}"
        )
    if width % heads:
        raise ZooFormatError(f"vit: {heads} heads do not divide width {width}; pick a divisor")
    if size % patch:
        raise ZooFormatError(f"vit: {size}x{size} images do not split into {patch}x{patch} patches")
    if pool not in TOKEN_POOLS:
        raise ZooFormatError(f"vit: pool must be one of {TOKEN_POOLS}, got {pool!r}")
    d, m = width, mlp_ratio * width
    tokens = (size // patch) ** 2 + (pool == "cls")
    block = (
        LayerSpec("layernorm", (d,), (d,)),
        LayerSpec("attn_q", (d, d), (d,), heads=heads),
        LayerSpec("attn_k", (d, d), (d,), heads=heads),
        LayerSpec("attn_v", (d, d), (d,), heads=heads),
        LayerSpec("attn_o", (d, d), (d,), heads=heads),
        LayerSpec("layernorm", (d,), (d,)),
        LayerSpec("mlp_in", (m, d), (m,)),
        LayerSpec("mlp_out", (d, m), (d,)),
    )
    layers = (
        LayerSpec("patch_embed", (d, in_channels, patch, patch), (tokens, d), stride=patch),
        *block * depth,
        LayerSpec("layernorm", (d,), (d,), pool=pool),
        LayerSpec("linear", (n_classes, d), (n_classes,)),
    )
    name = f"vit_d{depth}_w{width}_h{heads}_p{patch}_m{mlp_ratio}_{pool}"
    return Architecture(name, layers, (in_channels, size, size), family="vit")


def siren(
    depth: int, width: int, omega_0: float, in_features: int = 1, out_features: int = 1
) -> Architecture:
    """A SIREN (family "inr"): `depth` sine layers sin(omega_0 * (W x + b)) of `width` units,
    then a linear output layer; input (in_features,) coordinates."""
    if depth < 1 or width < 1 or in_features < 1 or out_features < 1:
        raise ZooFormatError(
            f"siren needs depth, width, in_features and out_features >= 1, got depth={depth}, "
            f"width={width}, in_features={in_features}, out_features={out_features}"
        )
    omega = float(omega_0)
    layers = tuple(
        LayerSpec("sine", (width, in_features if i == 0 else width), (width,), omega_0=omega)
        for i in range(depth)
    ) + (LayerSpec("linear", (out_features, width), (out_features,)),)
    return Architecture(f"siren_d{depth}_w{width}_o{omega:g}", layers, (in_features,), family="inr")


def siren_with_omega(arch: Architecture, omega_0: float) -> Architecture:
    """The SIREN `arch` with every sine layer's omega_0 set to `omega_0` (same shapes)."""
    sines = [la for la in arch.layers if la.kind == "sine"]
    if not sines or len(sines) != len(arch.layers) - 1:
        raise ZooFormatError(f"{arch.name} is not a SIREN (sine layers, then one linear layer)")
    return siren(len(sines), sines[0].fan_out, omega_0, in_features=arch.input_shape[0],
                 out_features=arch.layers[-1].fan_out)
