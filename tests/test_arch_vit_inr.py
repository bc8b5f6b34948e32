"""Vision Transformer and SIREN architectures in the canonical format: they run as `torch.nn`
references built from the same weights do (also batched under vmap), their symmetry
description holds (and breaking it changes the function), bad layouts are named, and format-1
zoos are read exactly as before."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import vmap

from zoo_bench import Architecture, LayerSpec, Zoo, ZooFormatError, ZooWriter, ctc, siren, vit
from zoo_bench.arch import ZooNetwork, functional_forward
from zoo_bench.store import MANIFEST, WEIGHTS, sha256_file

DATA = Path(__file__).parent / "data"
V1_MANIFEST_SHA256 = "a9cc9921e396ff60c69be6393f6adfa9c3e9ffa1821bf79e059627fa2057a25e"
ACTS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}
X = torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(0))
COORDS = torch.linspace(-1, 1, 33).unsqueeze(1)  # (33, 1)


class RefViT(nn.Module):
    """A textbook pre-norm ViT from torch.nn modules: conv patch embedding with bias, class
    token, position embedding, nn.MultiheadAttention, nn.LayerNorm, nn.Linear."""

    def __init__(self, arch: Architecture, activation: str, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        embed, norm, head = arch.layers[0], arch.layers[-2], arch.layers[-1]
        d, p, heads = embed.fan_out, embed.stride, arch.layers[2].heads
        n, t = arch.tokens()
        self.cls = norm.pool == "cls"
        self.conv = nn.Conv2d(embed.fan_in, d, p, stride=p)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d)) if self.cls else None
        self.pos = nn.Parameter(0.5 * torch.randn(1, t, d))
        m = arch.layers[7].fan_out
        self.blocks = nn.ModuleList(
            nn.ModuleDict(dict(
                ln1=nn.LayerNorm(d), attn=nn.MultiheadAttention(d, heads, batch_first=True),
                ln2=nn.LayerNorm(d), fc1=nn.Linear(d, m), act=ACTS[activation](),
                fc2=nn.Linear(m, d),
            ))
            for _ in range((len(arch.layers) - 3) // 8)
        )
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, head.fan_out)
        with torch.no_grad():  # layer norms and attention biases away from their 1 / 0 init
            for mod in self.modules():
                if isinstance(mod, nn.LayerNorm):
                    mod.weight.normal_(1.0, 0.3)
                    mod.bias.normal_(0.0, 0.3)
                if isinstance(mod, nn.MultiheadAttention):
                    mod.in_proj_bias.normal_(0.0, 0.3)
                    mod.out_proj.bias.normal_(0.0, 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)  # (B, N, D)
        if self.cls:
            t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], dim=1)  # (B, T, D)
        t = t + self.pos
        for b in self.blocks:
            h = b["ln1"](t)
            t = t + b["attn"](h, h, h, need_weights=False)[0]
            t = t + b["fc2"](b["act"](b["fc1"](b["ln2"](t))))
        t = self.norm(t)
        return self.head(t[:, 0] if self.cls else t.mean(dim=1))

    def canonical(self, arch: Architecture) -> np.ndarray:
        """This network's flat vector: conv bias, class token and position embedding become
        patch_embed's per-token bias; in_proj splits into q, k, v."""
        tokens = self.pos[0] + torch.cat(
            ([self.cls_token[0]] if self.cls else [])
            + [self.conv.bias.expand(self.pos.shape[1] - self.cls, -1)]
        )
        pairs = [(self.conv.weight, tokens)]
        for b in self.blocks:
            a = b["attn"]
            q, k, v = a.in_proj_weight.chunk(3)
            bq, bk, bv = a.in_proj_bias.chunk(3)
            pairs += [(b["ln1"].weight, b["ln1"].bias), (q, bq), (k, bk), (v, bv),
                      (a.out_proj.weight, a.out_proj.bias), (b["ln2"].weight, b["ln2"].bias),
                      (b["fc1"].weight, b["fc1"].bias), (b["fc2"].weight, b["fc2"].bias)]
        pairs += [(self.norm.weight, self.norm.bias), (self.head.weight, self.head.bias)]
        return arch.flatten([(w.detach(), b.detach()) for w, b in pairs]).numpy()


class Sine(nn.Module):
    def __init__(self, omega_0: float):
        super().__init__()
        self.omega_0 = omega_0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega_0 * x)


def ref_siren(arch: Architecture, seed: int) -> tuple[nn.Sequential, np.ndarray]:
    """Sitzmann et al.'s SIREN (their initialisation) from nn.Linear, and its flat vector."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for i, la in enumerate(arch.layers):
        lin = nn.Linear(la.fan_in, la.fan_out)
        omega = arch.layers[0].omega_0
        bound = 1 / la.fan_in if i == 0 else math.sqrt(6 / la.fan_in) / omega
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound)
        mods += [lin, Sine(la.omega_0)] if la.kind == "sine" else [lin]
    ref = nn.Sequential(*mods)
    lins = [m for m in ref if isinstance(m, nn.Linear)]
    flat = arch.flatten([(m.weight.detach(), m.bias.detach()) for m in lins]).numpy()
    return ref, flat


def write_zoo(path: Path, arch: Architecture, flats: np.ndarray, activation: str) -> Zoo:
    rows = [dict(run_id=f"r{i}", dataset="toy", epoch=0, hp_activation=activation,
                 test_accuracy=0.5, train_accuracy=0.5, test_loss=1.0, train_loss=1.0)
            for i in range(len(flats))]
    with ZooWriter(path, path.name, [arch], {"kind": "test"}) as w:
        w.add_many(arch.name, flats, rows)
    return Zoo.open(path, verify=True)


VITS = {"cls": vit(2, 8, 2), "mean": vit(1, 12, 3, pool="mean", mlp_ratio=3)}


# --- forward: equal to torch.nn references -------------------------------------------------
@pytest.mark.parametrize("activation", ["gelu", "tanh"])
@pytest.mark.parametrize("pool", list(VITS))
def test_vit_runs_as_a_torch_nn_vit_with_the_same_weights(tmp_path, pool, activation):
    arch = VITS[pool]
    refs = [RefViT(arch, activation, seed).eval() for seed in range(3)]
    flats = np.stack([r.canonical(arch) for r in refs])
    zoo = write_zoo(tmp_path / "vit", arch, flats, activation)
    assert zoo.manifest["format_version"] == 2 and zoo.architectures[arch.name] == arch
    for i, ref in enumerate(refs):
        with torch.no_grad():
            torch.testing.assert_close(zoo.module(i)(X), ref(X), rtol=1e-4, atol=1e-5)


def test_siren_runs_as_a_torch_nn_siren_with_the_same_weights(tmp_path):
    arch = siren(3, 16, 30.0)
    assert [la.kind for la in arch.layers] == ["sine", "sine", "sine", "linear"]
    refs = [ref_siren(arch, seed) for seed in range(3)]
    zoo = write_zoo(tmp_path / "inr", arch, np.stack([f for _, f in refs]), "sine")
    assert zoo.manifest["format_version"] == 2 and zoo.architectures[arch.name] == arch
    for i, (ref, _) in enumerate(refs):
        with torch.no_grad():
            torch.testing.assert_close(zoo.module(i)(COORDS), ref(COORDS), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["vit_cls", "vit_mean", "siren"])
def test_functional_forward_runs_a_batch_of_networks_under_vmap(name):
    if name == "siren":
        arch, x, act = siren(2, 8, 10.0, in_features=2, out_features=3), COORDS.repeat(1, 2), "sine"
        flats = np.stack([ref_siren(arch, s)[1] for s in range(4)])
    else:
        arch, x, act = VITS[name[4:]], X, "gelu"
        flats = np.stack([RefViT(arch, act, s).canonical(arch) for s in range(4)])
    params = arch.unflatten(torch.from_numpy(flats))  # [(W (4, ...), b (4, ...)), ...]
    out = vmap(lambda p: functional_forward(arch, p, x, act))(params)  # (4, B, outputs)
    assert out.shape == (4, len(x), arch.n_outputs)
    xs = torch.stack([x.roll(i, dims=0) for i in range(4)])  # (4, B, ...): one batch each
    own = vmap(lambda p, xb: functional_forward(arch, p, xb, act))(params, xs)
    with torch.no_grad():
        for i, flat in enumerate(flats):
            net = ZooNetwork(arch, flat, act)
            torch.testing.assert_close(out[i], net(x), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(own[i], net(xs[i]), rtol=1e-5, atol=1e-6)


# --- symmetry ------------------------------------------------------------------------------
def outputs(arch: Architecture, flat: np.ndarray, activation: str) -> torch.Tensor:
    x = COORDS if arch.family == "inr" else X
    with torch.no_grad():
        return ZooNetwork(arch, flat.astype(np.float32), activation)(x)


def flats_of(arch: Architecture, activation: str) -> np.ndarray:
    if arch.family == "inr":
        return np.stack([ref_siren(arch, s)[1] for s in range(2)])
    return np.stack([RefViT(arch, activation, s).canonical(arch) for s in range(2)])


CASES = [("cls", "gelu"), ("cls", "tanh"), ("mean", "relu"), ("siren", "sine")]


def case_arch(name: str) -> Architecture:
    return siren(3, 6, 20.0) if name == "siren" else VITS[name]


@pytest.mark.parametrize(("name", "activation"), CASES)
def test_every_sampled_transformation_keeps_the_networks_function(name, activation):
    arch = case_arch(name)
    sym = arch.symmetry()
    rng = np.random.default_rng(1)
    for flat in flats_of(arch, activation):
        for _ in range(3):
            perms, signs = sym.sample(rng, activation)
            moved = sym.apply(flat, perms, signs)
            assert not np.array_equal(moved, flat)
            torch.testing.assert_close(outputs(arch, moved, activation),
                                       outputs(arch, flat, activation), rtol=1e-4, atol=1e-5)
    flips = sym.sign_flips(activation)
    if name == "siren":  # sin is odd: its units flip sign whatever the network's activation
        assert all(flips) and all(sym.sign_flips("relu"))
    else:  # q/k and v/o dimensions always flip; MLP units only for an odd activation
        for g, flip in zip(sym.groups, flips, strict=True):
            assert flip == (g.within is not None or (activation == "tanh" and g.odd_sign_flip))


def test_one_within_head_permutation_shared_by_all_heads_is_a_symmetry_too():
    """What a reader that ignores `within` draws: one (e,) permutation for every head."""
    arch = VITS["cls"]
    sym, flat = arch.symmetry(), flats_of(arch, "gelu")[0]
    perms, signs = sym.sample(np.random.default_rng(2), "gelu")
    for k, g in enumerate(sym.groups):
        if g.within is not None:
            assert perms[k].shape == (sym.groups[g.within].units, g.units)
            perms[k], signs[k] = np.roll(np.arange(g.units), 1), -np.ones(g.units)
    torch.testing.assert_close(outputs(arch, sym.apply(flat, perms, signs), "gelu"),
                               outputs(arch, flat, "gelu"), rtol=1e-4, atol=1e-5)


def test_the_vit_description_names_residual_heads_and_within_head_groups():
    arch = vit(2, 8, 2)  # layers: embed, 2 x 8 block layers, layernorm, head
    sym = arch.symmetry()
    assert [(g.layer, g.units, g.within) for g in sym.groups] == [
        (0, 8, None),  # residual stream
        (2, 2, None), (2, 4, 1), (4, 4, 1), (7, 16, None),  # block 1: heads, qk, vo, MLP
        (10, 2, None), (10, 4, 5), (12, 4, 5), (15, 16, None),  # block 2
    ]
    by = {(t.layer, t.param): t for t in sym.tensors}
    assert by[0, "bias"].view_shape == (17, 8) and by[0, "bias"].axes == (None, 0)
    assert by[2, "weight"].view_shape == (2, 4, 8) and by[2, "weight"].axes == (1, 2, 0)
    assert by[3, "weight"].axes == (1, 2, 0)  # k: the same groups as q
    assert by[5, "weight"].view_shape == (8, 2, 4) and by[5, "weight"].axes == (0, 1, 3)
    assert by[18, "weight"].axes == (None, 0) and by[18, "bias"].axes == (None,)  # logits fixed
    assert [t.param for t in sym.tensors] == ["weight", "bias"] * len(arch.layers)
    assert sum(math.prod(t.view_shape) for t in sym.tensors) == arch.n_params


def one_sided(sym, k: int, layers: set[int]):
    """The description with group k no longer acting on the tensors of `layers`."""
    return dataclasses.replace(sym, tensors=tuple(
        dataclasses.replace(t, axes=tuple(None if (a == k and t.layer in layers) else a
                                          for a in t.axes))
        for t in sym.tensors
    ))


# vit(1, ...): 0 embed, 1 ln, 2 q, 3 k, 4 v, 5 o, 6 ln, 7 mlp_in, 8 mlp_out, 9 ln, 10 head;
# groups 0 residual, 1 heads, 2 q/k, 3 v/o, 4 MLP units
BROKEN = {
    "q without k": (2, {3}),
    "v without o": (3, {5}),
    "heads of q, k, v without o": (1, {5}),
    "mlp_in without mlp_out": (4, {8}),
    "residual without the final layer norm": (0, {9}),
    "residual without the head": (0, {10}),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_one_sided_transformation_changes_the_vit(case):
    arch = vit(1, 8, 2, pool="mean")
    sym, flat = arch.symmetry(), flats_of(arch, "gelu")[0]
    k, layers = BROKEN[case]
    perms = [np.arange(g.units) if g.within is None
             else np.tile(np.arange(g.units), (sym.groups[g.within].units, 1)) for g in sym.groups]
    perms[k] = np.roll(perms[k], 1, axis=-1)
    signs = [np.ones(p.shape) for p in perms]
    before = outputs(arch, flat, "gelu")
    broken = one_sided(sym, k, layers).apply(flat, perms, signs)
    assert not torch.allclose(outputs(arch, broken, "gelu"), before, rtol=1e-4, atol=1e-5)
    whole = sym.apply(flat, perms, signs)  # the same permutation on every side
    torch.testing.assert_close(outputs(arch, whole, "gelu"), before, rtol=1e-4, atol=1e-5)


def test_a_sign_flip_of_the_residual_stream_or_of_relu_units_is_not_a_symmetry():
    arch = vit(1, 8, 2)
    sym, flat = arch.symmetry(), flats_of(arch, "relu")[0]
    before = outputs(arch, flat, "relu")
    for k in (0, 4):  # residual stream (layer norms are not odd per coordinate), MLP units
        perms = [np.arange(g.units) for g in sym.groups]
        signs = [np.ones(g.units) for g in sym.groups]
        signs[k][0] = -1.0
        flipped = sym.apply(flat, perms, signs)
        assert not torch.allclose(outputs(arch, flipped, "relu"), before, rtol=1e-4, atol=1e-5)


def test_permuting_siren_units_without_the_next_layers_inputs_changes_the_function():
    arch = siren(3, 6, 20.0)
    sym, flat = arch.symmetry(), flats_of(arch, "sine")[0]
    before = outputs(arch, flat, "sine")
    for k, g in enumerate(sym.groups):
        perms = [np.arange(h.units) for h in sym.groups]
        perms[k] = np.roll(perms[k], 1)
        signs = [np.ones(h.units) for h in sym.groups]
        broken = one_sided(sym, k, {k + 1}).apply(flat, perms, signs)
        assert not torch.allclose(outputs(arch, broken, "sine"), before, rtol=1e-4, atol=1e-5)
        assert g.always_sign_flip and g.block == 1


# --- errors ---------------------------------------------------------------------------------
def test_bad_layers_and_layouts_are_named():
    with pytest.raises(ZooFormatError, match="3 heads do not divide its 8 attention units"):
        LayerSpec("attn_q", (8, 8), (8,), heads=3)
    with pytest.raises(ZooFormatError, match="3 heads do not divide width 8"):
        vit(1, 8, 3)
    with pytest.raises(ZooFormatError, match="unknown layer kind 'attention'"):
        LayerSpec("attention", (8, 8), (8,))
    with pytest.raises(ZooFormatError, match="heads is set exactly on attention layers"):
        LayerSpec("linear", (8, 8), (8,), heads=2)
    with pytest.raises(ZooFormatError, match="omega_0 must be a positive number"):
        LayerSpec("sine", (8, 1), (8,), omega_0=0.0)
    with pytest.raises(ZooFormatError, match="layernorm weight shape .* must have 1 dimensions"):
        LayerSpec("layernorm", (8, 8), (8,))
    with pytest.raises(ZooFormatError, match="stride = patch size"):
        LayerSpec("patch_embed", (8, 1, 4, 4), (17, 8), stride=2)
    with pytest.raises(ZooFormatError, match="do not split into 3x3 patches"):
        vit(1, 8, 2, patch=3)
    with pytest.raises(ZooFormatError, match="end an INR with a linear layer"):
        Architecture("bad", (LayerSpec("sine", (4, 1), (4,), omega_0=30.0),), (1,))


def test_bad_transformer_layouts_say_which_layer_and_what_it_needs():
    good = vit(1, 8, 2)
    layers = list(good.layers)
    with pytest.raises(ZooFormatError, match=r"layer 3 is attn_v, expected attn_k"):
        Architecture("bad", (*layers[:3], *layers[4:]), good.input_shape)
    wrong_o = dataclasses.replace(layers[5], weight_shape=(8, 4))
    with pytest.raises(ZooFormatError, match=r"layer 5 \(attn_o\) has weight \(8, 4\)"):
        Architecture("bad", (*layers[:5], wrong_o, *layers[6:]), good.input_shape)
    with pytest.raises(ZooFormatError, match=r"patch_embed bias \(17, 8\) must be \(16, 8\)"):
        Architecture("bad", (*layers[:-2], dataclasses.replace(layers[-2], pool="mean"),
                             layers[-1]), good.input_shape)
    with pytest.raises(ZooFormatError, match="disagree on heads"):
        v4 = dataclasses.replace(layers[4], heads=4)
        Architecture("bad", (*layers[:4], v4, *layers[5:]), good.input_shape)
    with pytest.raises(ZooFormatError, match="a transformer starts|expected patch_embed"):
        Architecture("bad", (LayerSpec("conv2d", (8, 1, 3, 3), (8,), pool="gap"), layers[1],
                             LayerSpec("linear", (10, 8), (10,))), (1, 16, 16))


def edit(folder: Path, change) -> None:
    import json

    m = json.loads((folder / MANIFEST).read_text())
    change(m)
    (folder / MANIFEST).write_text(json.dumps(m))


def test_a_manifest_with_an_unknown_kind_or_a_version_too_old_for_its_kinds_is_refused(tmp_path):
    arch = vit(1, 8, 2)
    flats = np.stack([RefViT(arch, "gelu", 0).canonical(arch)])
    write_zoo(tmp_path / "z", arch, flats, "gelu")
    edit(tmp_path / "z", lambda m: m.update(format_version=1))
    with pytest.raises(ZooFormatError, match=r"version 1 cannot hold layer kinds \['attn_k'"):
        Zoo.open(tmp_path / "z")

    def rename(m):
        m["format_version"] = 2
        m["architectures"][arch.name]["layers"][2]["kind"] = "attention"

    edit(tmp_path / "z", rename)
    with pytest.raises(ZooFormatError, match=f"architecture {arch.name}: unknown layer kind"):
        Zoo.open(tmp_path / "z")

    def drop_shape(m):
        del m["architectures"][arch.name]["layers"][2]["weight_shape"]

    edit(tmp_path / "z", drop_shape)
    with pytest.raises(ZooFormatError, match="is malformed .* it needs kind, weight_shape"):
        Zoo.open(tmp_path / "z")


# --- format 1 zoos: unchanged -----------------------------------------------------------
def test_a_format_1_zoo_still_opens_verifies_hashes_and_runs_as_before(tmp_path):
    """tests/data/zoo_v1 was written by the code before format 2 (tests/data/make_zoo_v1.py)."""
    zoo = Zoo.open(DATA / "zoo_v1", verify=True)
    assert zoo.manifest["format_version"] == 1
    assert zoo.manifest_sha256 == V1_MANIFEST_SHA256
    for name, arch in zoo.architectures.items():  # the JSON a writer would give it is the same
        assert arch.to_dict() == zoo.manifest["architectures"][name]
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))  # as then
    with torch.no_grad():
        out = np.stack([zoo.module(i)(x).numpy() for i in range(len(zoo))])  # (3, 2, 3)
    np.testing.assert_allclose(out, np.load(DATA / "zoo_v1_outputs.npy"), rtol=1e-5, atol=1e-6)
    arch = next(iter(zoo.architectures.values()))
    rows = zoo.table.drop(columns=["network_id", "architecture", "weight_offset", "n_params",
                                   "nonfinite", "generalization_gap"])
    with ZooWriter(tmp_path / "again", "zoo_v1", [arch], zoo.manifest["source"]) as w:
        w.add_many(arch.name, zoo.flat_batch(np.arange(len(zoo))), rows)
    again = Zoo.open(tmp_path / "again", verify=True)
    assert again.manifest["format_version"] == 1
    assert again.manifest["architectures"] == zoo.manifest["architectures"]
    assert sha256_file(tmp_path / "again" / WEIGHTS) == sha256_file(DATA / "zoo_v1" / WEIGHTS)


def test_cnn_zoos_are_still_written_as_format_1(tmp_path):
    arch = ctc(size=16)
    flats = np.random.default_rng(0).normal(size=(2, arch.n_params)).astype(np.float32)
    zoo = write_zoo(tmp_path / "cnn", arch, flats, "relu")
    assert zoo.manifest["format_version"] == 1
    assert set(zoo.manifest["architectures"]["ctc"]["layers"][0]) == {
        "kind", "weight_shape", "bias_shape", "stride", "padding", "pool"}


def test_conv_shapes_are_empty_for_networks_without_a_leading_conv():
    assert siren(3, 16, 30.0).conv_shapes() == [] and vit(2, 8, 2).conv_shapes() == []
    assert [c for c, _, _ in ctc().conv_shapes()] == [16, 16, 16]
