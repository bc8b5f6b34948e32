"""Predictors on the ViT and SIREN kinds: every method fits and predicts on tiny random-weight
ViT and SIREN zoos or declines them with its reason, cross-kind predictions run where
`can_predict` says so, the kind-specific pieces (statnn's per-kind statistics, SNE's chunking of
patch embeddings, its type codes and its per-head symmetry sampler) do what they claim, and
every method's predictions on CNN zoos are bit-identical to those of the code before."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.nfn_family import layout_problem, to_wsfeat
from sne.chunking import build_chunks, layout
from sne.encoder import SNEConfig, SNEEncoder
from sne.naive import naive_forward
from sne.symmetry import apply_transform, sample_transform
from zoo_bench import (
    ALL_LAYER_KINDS,
    LAYER_KINDS,
    Budget,
    FitContext,
    PredictorError,
    Zoo,
    ZooWriter,
    ctc,
    get_predictor,
    network_statistics,
    siren,
    statnn_dim,
    statnn_features,
    statnn_kinds,
    tensor_stats,
    vit,
)
from zoo_bench.arch import ZooNetwork
from zoo_bench.evaluator import kendall_tau

HERE = Path(__file__).parent
REFERENCE = HERE / "data" / "cnn_reference.npz"
METHODS = ("statnn", "deepsets", "mlp", "sne", "sne_stats", "nfn_np", "nfn_hnp", "nft")
READ_ANY = ("statnn", "deepsets", "mlp", "sne", "sne_stats")  # every kind, across kinds too
NFN = ("nfn_np", "nfn_hnp", "nft")
SMALL = {"sne": {"li_batch": 2}, "sne_stats": {"li_batch": 2}}
VIT = vit(1, 8, 2)  # 1 block, width 8, 2 heads, 4x4 patches of 16x16: 17 tokens
VIT_MEAN = vit(2, 8, 4, pool="mean", mlp_ratio=1)
SIREN = siren(2, 8, 30.0)
RUNS = 32


def write_zoo(root: Path, arch, activation: str, prop: str, seed: int = 0) -> Zoo:
    """RUNS random-weight networks of a per-network scale; `prop` is a noisy function of the
    scale (so a fit has something to find), every other property a constant."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.05, 0.6, RUNS)
    flats = (rng.normal(0, 1, (RUNS, arch.n_params)) * scale[:, None]).astype(np.float32)
    rows = [dict(run_id=f"r{r}", dataset="toy", epoch=1, hp_activation=activation,
                 test_accuracy=0.5, train_accuracy=0.5, test_loss=1.0, train_loss=1.0)
            for r in range(RUNS)]
    for r, row in enumerate(rows):
        row[prop] = float(scale[r] + rng.normal(0, 0.02))
    out = root / f"{arch.name}-{prop}"
    with ZooWriter(out, out.name, [arch], {"kind": "test"}) as w:
        w.add_many(arch.name, flats, rows)
    return Zoo.open(out)


@pytest.fixture(scope="module")
def zoos(tmp_path_factory) -> dict[str, tuple[Zoo, str]]:
    """name -> (zoo, property): a ViT zoo (test_accuracy), a SIREN zoo (`frequency`, a column
    of its own) and a ctc zoo (test_accuracy)."""
    root = tmp_path_factory.mktemp("kinds")
    return {
        "vit": (write_zoo(root, VIT, "gelu", "test_accuracy", 1), "test_accuracy"),
        "siren": (write_zoo(root, SIREN, "sine", "frequency", 2), "frequency"),
        "ctc": (write_zoo(root, ctc(size=16), "relu", "test_accuracy", 3), "test_accuracy"),
    }


def fit(method: str, zoo: Zoo, prop: str, epochs: int = 2):
    """The method fitted on the zoo's first half, validated on the second."""
    p = get_predictor(method)(**SMALL.get(method, {}))
    half = len(zoo) // 2
    p.fit(zoo.subset(np.arange(half)), zoo.subset(np.arange(half, len(zoo))), prop,
          FitContext(seed=0, device="cpu", budget=Budget(max_epochs=epochs)))
    return p


@pytest.mark.parametrize("kind", ["vit", "siren"])
@pytest.mark.parametrize("method", METHODS)
def test_each_method_fits_and_predicts_the_new_kinds_or_says_why_not(zoos, method, kind):
    zoo, prop = zoos[kind]
    arch = zoo.architecture_of(0)
    p = get_predictor(method)()
    if method in NFN and kind == "vit":
        assert not p.supports(arch)
        assert "layer 0 is a patch_embed layer" in layout_problem(arch)
        assert "not transformers" in p.supports_note
        with pytest.raises(PredictorError, match="not transformers"):
            fit(method, zoo, prop)
        return
    assert p.supports(arch)
    pred = fit(method, zoo, prop).predict(zoo)
    assert pred.shape == (len(zoo),) and np.isfinite(pred).all()


@pytest.mark.parametrize("method", METHODS)
def test_cross_kind_predictions_run_where_can_predict_says_so(zoos, method):
    """CNN -> ViT and ViT -> CNN (and -> SIREN): the readers of any architecture predict every
    zoo; a fitted nfn model reads only its own layer structure, so it declines and predict
    refuses."""
    fitted = {src: fit(method, *zoos[src]) for src in ("ctc", "vit")
              if get_predictor(method)().supports(zoos[src][0].architecture_of(0))}
    for src, p in fitted.items():
        for dst, (zoo, _) in zoos.items():
            readable = p.can_predict(zoo.architecture_of(0))
            assert readable == (method in READ_ANY or dst == src), (src, dst)
            if readable:
                pred = p.predict(zoo)
                assert pred.shape == (len(zoo),) and np.isfinite(pred).all()
            else:
                with pytest.raises(PredictorError, match="cannot read"):
                    p.predict(zoo)
    assert set(fitted) == ({"ctc", "vit"} if method in READ_ANY else {"ctc"})


@pytest.mark.parametrize("method", NFN)
def test_nfn_encoders_are_invariant_to_siren_unit_permutations(zoos, method):
    """A SIREN's weight space is an MLP's: nfn's pooled embedding does not move when its hidden
    units are permuted (sign flips, a symmetry of sine units too, are not nfn's)."""
    zoo, prop = zoos["siren"]
    p = fit(method, zoo, prop)
    sym, flat = SIREN.symmetry(), zoo.flat(0)
    perms, _ = sym.sample(np.random.default_rng(0), "sine")
    moved = sym.apply(flat, perms, [np.ones(g.units) for g in sym.groups])
    assert not np.array_equal(moved, flat)
    with torch.no_grad():
        emb = [p.model.embed(to_wsfeat(SIREN.unflatten(torch.from_numpy(f[None])), SIREN,
                                       p.model.norm)) for f in (flat, moved)]
    torch.testing.assert_close(emb[1], emb[0], rtol=1e-4, atol=1e-5)


def test_statnn_finds_the_weight_scale_of_vits_and_sirens(zoos):
    """The per-kind statistics carry the scale that the property follows: test tau well above
    chance on 8 held-out networks (a fit on the first 20, validated on the next 4)."""
    for kind in ("vit", "siren"):
        zoo, prop = zoos[kind]
        p = get_predictor("statnn")()
        p.fit(zoo.subset(np.arange(20)), zoo.subset(np.arange(20, 24)), prop,
              FitContext(seed=0, device="cpu", budget=Budget(max_epochs=60)))
        test = zoo.subset(np.arange(24, RUNS))
        assert kendall_tau(test.targets(prop), p.predict(test)) > 0.5, kind


def test_statnn_pools_every_kind_only_for_zoos_that_have_new_kinds(zoos):
    vit_zoo, cnn_zoo = zoos["vit"][0], zoos["ctc"][0]
    assert statnn_kinds([cnn_zoo.architecture_of(0)]) == LAYER_KINDS
    assert statnn_kinds([cnn_zoo.architecture_of(0), VIT]) == ALL_LAYER_KINDS
    assert statnn_dim(3) < statnn_dim(3, ALL_LAYER_KINDS)
    flats = torch.from_numpy(vit_zoo.flat_batch(np.arange(4)))
    feats = network_statistics(VIT, flats, 3, ALL_LAYER_KINDS)
    assert feats.shape == (4, statnn_dim(3, ALL_LAYER_KINDS))
    # the attn_q block of the pooled statistics: the q weights' and biases' own statistics
    q_w, q_b = VIT.unflatten(flats)[2]
    want = torch.cat([tensor_stats(q_w.reshape(4, -1)), tensor_stats(q_b.reshape(4, -1))], 1)
    start = 4 * 14 + ALL_LAYER_KINDS.index("attn_q") * 14
    signed_log = torch.sign(want) * torch.log1p(want.abs())
    torch.testing.assert_close(feats[:, start : start + 14], signed_log)
    # a CNN zoo's features in the wide space: its conv / linear columns as in the narrow one
    narrow = statnn_features(cnn_zoo, k=3)
    wide = statnn_features(cnn_zoo, k=3, kinds=ALL_LAYER_KINDS)
    np.testing.assert_array_equal(wide[:, : 6 * 14], narrow[:, : 6 * 14])
    with pytest.raises(ValueError, match="unknown layer kinds"):
        network_statistics(VIT, flats, 3, ("conv3d",))


def test_a_patch_embedding_unit_is_its_patch_weights_then_its_token_embeddings():
    flat = torch.randn(VIT.n_params)
    lay = layout([(VIT, flat[None])], chunk_size=5)
    ch = build_chunks(lay, 0, int(lay.chunk_start[1]))
    w, b = VIT.unflatten(flat)[0]  # (8, 1, 4, 4), (17, 8)
    want = torch.cat([w.reshape(8, 16), b.T], dim=1)  # (8, 16 + 17)
    got = ch.values.flatten()[ch.mask.flatten()]
    torch.testing.assert_close(got, want.flatten())
    assert ch.is_bias.flatten()[ch.mask.flatten()].tolist() == ([False] * 16 + [True] * 17) * 8
    whole = build_chunks(lay, 0, lay.n_chunks)
    assert int(whole.mask.sum()) == VIT.n_params


@pytest.mark.parametrize("new_kinds", [False, True])
@pytest.mark.parametrize("config", [{}, {"hierarchy": False}, {"chunk_size": 7}])
def test_batched_encoder_equals_the_naive_loop_on_vits_and_sirens(config, new_kinds):
    torch.manual_seed(0)
    m = SNEEncoder(SNEConfig(**config), new_kinds=new_kinds).eval()
    if new_kinds:  # trained codes are not zero: give them values to carry
        with torch.no_grad():
            for p in (m.element_extra, m.chunk_extra, m.layer_extra):
                if p is not None:
                    p.normal_()
    gen = torch.Generator().manual_seed(1)
    groups = [(a, 0.3 * torch.randn(2, a.n_params, generator=gen))
              for a in (VIT, SIREN, VIT_MEAN, ctc(size=16))]
    with torch.no_grad():
        torch.testing.assert_close(m(groups), naive_forward(m, groups), rtol=1e-5, atol=1e-6)


def test_new_kind_codes_exist_only_when_asked_and_learn_from_new_kinds_only():
    torch.manual_seed(0)
    plain = SNEEncoder(SNEConfig())
    torch.manual_seed(0)
    wide = SNEEncoder(SNEConfig(), new_kinds=True)
    extra = {"element_extra", "chunk_extra", "layer_extra"}
    assert extra.isdisjoint(dict(plain.named_parameters()))
    assert set(dict(wide.named_parameters())) - set(dict(plain.named_parameters())) == extra
    for name, p in plain.named_parameters():  # the same draws: no RNG spent on the codes
        assert torch.equal(p, dict(wide.named_parameters())[name])
    cnn = ctc(size=16)
    wide([(cnn, torch.randn(2, cnn.n_params))]).sum().backward()
    assert all(not bool(getattr(wide, n).grad.any()) for n in extra)
    wide([(VIT, torch.randn(2, VIT.n_params))]).sum().backward()
    assert all(bool(getattr(wide, n).grad.any()) for n in extra)
    with torch.no_grad():  # a CNN reads the same with or without the (untrained) codes
        x = torch.randn(3, cnn.n_params)
        torch.testing.assert_close(plain.eval()([(cnn, x)]), wide.eval()([(cnn, x)]))


@pytest.mark.parametrize(("arch", "activation"),
                         [(VIT, "gelu"), (VIT_MEAN, "tanh"), (SIREN, "sine"), (SIREN, "relu")])
def test_sne_symmetry_sampler_keeps_vit_and_siren_functions(arch, activation):
    """Per-head q/k and v/o permutations and sign flips (`within`), sine sign flips whatever
    the activation (`always_sign_flip`): every sampled g.w computes what w computes."""
    gen = torch.Generator().manual_seed(0)
    flats = 0.3 * torch.randn(3, arch.n_params, generator=gen)
    g = sample_transform(arch, [activation] * 3, gen)
    moved = apply_transform(arch, flats, g)
    x = torch.randn(6, *arch.input_shape, generator=gen)
    sym = arch.symmetry()
    for k, group in enumerate(sym.groups):
        if group.within is not None:  # one permutation per head, not one for all heads
            assert g.perms[k].shape == (3, sym.groups[group.within].units, group.units)
        if group.always_sign_flip:
            assert bool((g.signs[k] < 0).any())
    with torch.no_grad():
        for i in range(3):
            assert not torch.equal(moved[i], flats[i])
            want = ZooNetwork(arch, flats[i].numpy(), activation)(x)
            got = ZooNetwork(arch, moved[i].numpy(), activation)(x)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
            numpy_g = sym.apply(flats[i].numpy(), [p[i].numpy() for p in g.perms],
                                [s[i].numpy() for s in g.signs])
            np.testing.assert_allclose(moved[i].numpy(), numpy_g, rtol=0, atol=0)


def test_cnn_predictions_are_bit_identical_to_the_code_before_the_new_kinds(tmp_path):
    """Every method fitted on tiny ctc / cnn_small zoos with the same seed gives the same bits
    as the reference recorded before this change (`tests/cnn_reference.py`, pinned x86-64
    kernels, so any x86-64 CPU computes the same; another torch build or CPU family skips)."""
    from zoo_bench.generate.population import PINNED_ENV

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the reference was recorded with x86-64 kernels")
    ref = np.load(REFERENCE)
    if str(ref["torch_version"]) != torch.__version__:
        pytest.skip(f"reference made with torch {ref['torch_version']}, "
                    f"this is {torch.__version__}")
    out = tmp_path / "now.npz"
    subprocess.run([sys.executable, str(HERE / "cnn_reference.py"), str(out)], check=True,
                   env={**os.environ, **PINNED_ENV}, capture_output=True)
    now = np.load(out)
    keys = sorted(k for k in ref.files if k != "torch_version")
    assert keys == sorted(k for k in now.files if k != "torch_version")
    assert {k.split("/")[0] for k in keys} == set(METHODS)
    changed = [k for k in keys if not np.array_equal(ref[k], now[k])]
    assert not changed, f"predictions on CNN zoos changed: {changed}"
