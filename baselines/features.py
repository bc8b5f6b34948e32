"""Per-element features of the set baselines (DeepSets): element context and sampling.

The per-tensor statistics (StatNN's features) live in the core, `zoo_bench.features`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from zoo_bench import ALL_LAYER_KINDS, LAYER_KINDS, Architecture, layer_slot

NEW_KINDS = tuple(k for k in ALL_LAYER_KINDS if k not in LAYER_KINDS)  # sine, transformer kinds


def meta_width(k: int, new_kinds: bool = False) -> int:
    """Columns of `element_layout`'s meta for `k` slots (and the new-kind one-hot)."""
    return 4 + k + 1 + (len(NEW_KINDS) if new_kinds else 0)


def element_layout(
    arch: Architecture, k: int, new_kinds: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """Per-element context for set methods: (meta (P, meta_width(k, new_kinds)), scale (P,),
    tensor spans).

    meta columns: is_bias, is_conv (a patch embedding is a convolution too), relative depth,
    log fan-in, then a one-hot of the layer's slot, and with `new_kinds` a one-hot of the
    layer's kind among `NEW_KINDS` (all zero for conv2d / linear). `scale` is sqrt(fan_in),
    which brings weights of every layer to a common size (a layer norm's fan-in is 1; a patch
    embedding's token embeddings take its patch weights' fan-in). `spans` are the (start, end)
    of each weight and bias tensor in the flat vector.
    """
    n_layers = len(arch.layers)
    meta = torch.zeros(arch.n_params, meta_width(k, new_kinds))
    scale = torch.ones(arch.n_params)
    spans = []
    for i, (layer, (s, w, e)) in enumerate(zip(arch.layers, arch.offsets(), strict=True)):
        fan_in = float(np.prod(layer.weight_shape[1:]))
        for start, end, is_bias in ((s, w, 0.0), (w, e, 1.0)):
            meta[start:end, 0] = is_bias
            meta[start:end, 1] = float(layer.kind in ("conv2d", "patch_embed"))
            meta[start:end, 2] = i / max(n_layers - 1, 1)
            meta[start:end, 3] = np.log(fan_in) / 5.0
            slot = layer_slot(arch, i, k)
            if slot is not None:
                meta[start:end, 4 + slot] = 1.0
            if new_kinds and layer.kind in NEW_KINDS:
                meta[start:end, 5 + k + NEW_KINDS.index(layer.kind)] = 1.0
            scale[start:end] = np.sqrt(fan_in)
            spans.append((start, end))
    return meta, scale, spans


def stratified_indices(
    spans: Sequence[tuple[int, int]], per_tensor: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`per_tensor` flat indices drawn (with replacement) from every tensor's span."""
    parts = [
        start + torch.randint(0, end - start, (per_tensor,), generator=generator)
        for start, end in spans
    ]
    return torch.cat(parts)
