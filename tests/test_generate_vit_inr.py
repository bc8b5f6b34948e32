"""Generating ViT and INR zoos: the batched ViT forward is `functional_forward`, per-kind
initialisation, SIREN fits to sine waves, tiny zoos that open, verify and carry the documented
columns, equal architectures in one group, recorded metrics equal to what `Zoo.module(i)`
computes, and the same seed giving the same bytes."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from zoo_bench import Zoo
from zoo_bench.arch import functional_forward
from zoo_bench.families import siren, vit
from zoo_bench.generate import PresetError, ZooConfig, generate_preset, load_dataset
from zoo_bench.generate.datasets import load_signal
from zoo_bench.generate.hyper import InrRunSpec, SearchSpace, sample_runs
from zoo_bench.generate.inr import (
    checkpoint_steps,
    fit_mse,
    predict_all,
    sine_wave,
    siren_init,
    train_inr_group,
)
from zoo_bench.generate.population import plan_groups, zoo_runs
from zoo_bench.generate.report import accuracy_spread
from zoo_bench.generate.trainer import (
    PopulationOptimizer,
    TransformerPopulation,
    accuracy,
    init_flat,
)

VIT_TINY = {"datasets": ["digits"], "runs": 6, "epochs": 1, "checkpoints": [0, 1]}
INR_TINY = {"runs": 6, "epochs": 2, "checkpoints": [0, 1, 2]}
# small SIRENs and short fits, so that a tiny zoo takes a second
INR_SPACE = {"inr_depths": [1, 2], "inr_widths": [8], "inr_omegas": [10.0], "inr_steps": [20, 40]}


def weights_sha(path) -> str:
    return json.loads((path / "manifest.json").read_text())["files"]["weights.f32"]


def vit_zoo(tmp_path, name="a", **kw):
    kw.setdefault("workers", 1)
    paths = generate_preset("vit", out_dir=tmp_path / name, progress=False,
                            overrides={**VIT_TINY, **kw.pop("overrides", {})}, **kw)
    return paths["vit-digits-vit"]


def inr_zoo(tmp_path, name="a", **kw):
    kw.setdefault("workers", 1)
    overrides = {**INR_TINY, "space": INR_SPACE, **kw.pop("overrides", {})}
    paths = generate_preset("inr", out_dir=tmp_path / name, progress=False, overrides=overrides,
                            **kw)
    return paths["inr-sines-inr"]


def vit_runs(arch, n=4, **fixed):
    runs = sample_runs(n, "vit", "digits", 3, 1, 16)
    return [dataclasses.replace(r, arch=arch, index=i, **fixed) for i, r in enumerate(runs)]


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_batched_vit_forward_is_functional_forward_per_network(pool):
    arch = vit(2, 8, 2, pool=pool)
    runs = vit_runs(arch, 4, activation="relu")
    runs[1] = dataclasses.replace(runs[1], activation="tanh")
    flat = torch.stack([init_flat(arch, "glorot_normal", 0.1, torch.Generator().manual_seed(i))
                        for i in range(4)])
    flat += 0.1 * torch.randn(flat.shape, generator=torch.Generator().manual_seed(9))
    pop = TransformerPopulation(arch, runs, flat)
    x = torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    shared = pop.forward(x, per_network=False)  # (N, B, 10)
    own = pop.forward(x.permute(0, 2, 3, 1)[:, None].expand(5, 4, 16, 16, 1), per_network=True)
    for j, r in enumerate(runs):
        want = functional_forward(arch, arch.unflatten(flat[j]), x, r.activation)
        torch.testing.assert_close(shared[j], want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(own[j], want, rtol=1e-5, atol=1e-5)


def test_vit_dropout_drops_the_runs_own_fraction_of_mlp_units():
    arch = vit(1, 16, 1)
    runs = vit_runs(arch, 2, activation="relu", dropout=0.0)
    runs[1] = dataclasses.replace(runs[1], dropout=0.5)
    flat = torch.stack([init_flat(arch, "he_normal", 0.1, torch.Generator().manual_seed(i))
                        for i in range(2)])
    pop = TransformerPopulation(arch, runs, flat)
    m = torch.ones(2, 64, 17, 32)
    out = pop._activate(m, training=True, gen=torch.Generator().manual_seed(0))
    assert torch.equal(out[0], m[0])  # no dropout: untouched
    kept = (out[1] != 0).float().mean().item()
    assert abs(kept - 0.5) < 0.02 and torch.allclose(out[1][out[1] != 0], torch.tensor(2.0))


def test_vit_initialisation_per_kind_and_no_l2_on_layer_norm_gains():
    arch = vit(2, 16, 2)
    flat = init_flat(arch, "he_normal", 0.1, torch.Generator().manual_seed(0))
    params = arch.unflatten(flat)
    for la, (w, b) in zip(arch.layers, params, strict=True):
        if la.kind == "layernorm":
            assert torch.equal(w, torch.ones_like(w)) and torch.equal(b, torch.zeros_like(b))
        elif la.kind == "patch_embed":  # token embeddings: small, nonzero, all different
            assert 0.01 < b.std().item() < 0.03 and len(torch.unique(b)) == b.numel()
        else:
            assert torch.equal(b, torch.zeros_like(b)) and w.std() > 0
    opt = PopulationOptimizer(vit_runs(arch, 2), arch, torch.device("cpu"))
    for la, (s, w_end, end) in zip(arch.layers, arch.offsets(), strict=True):
        assert (opt.l2[:, w_end:end] == 0).all()
        assert bool((opt.l2[:, s:w_end] > 0).all()) == (la.kind != "layernorm")


def test_vit_runs_draw_depth_width_and_dividing_heads_and_group_by_architecture():
    config = ZooConfig("z", "digits", "vit", runs=60, epochs=1, checkpoints=(0, 1), group_size=4)
    runs = zoo_runs(config)
    names = {r.arch.name for r in runs}
    assert len(names) > 4
    for r in runs:
        hp = r.hp_columns()
        assert hp["hp_depth"] in (1, 2) and hp["hp_width"] in (8, 12, 16)
        assert hp["hp_heads"] in (1, 2) and hp["hp_width"] % hp["hp_heads"] == 0
    groups = plan_groups(config, runs)
    assert sorted(i for g in groups for i in g) == list(range(60))
    for g in groups:
        assert len({runs[i].arch.name for i in g}) == 1 and len(g) <= 4
        assert len({runs[i].train_fraction for i in g}) == 1


def test_tiny_vit_zoo_generates_opens_and_records_what_the_modules_compute(tmp_path):
    path = vit_zoo(tmp_path, isolate=False)  # this process's kernels, as the modules below
    zoo = Zoo.open(path, verify=True)
    t = zoo.table
    assert len(t) == 6 * 2 and t["run_id"].nunique() == 6
    assert zoo.manifest["format_version"] == 2
    assert all(a.family == "vit" and a.transformer for a in zoo.architectures.values())
    for col in ("hp_depth", "hp_width", "hp_heads", "hp_optimizer", "hp_w_init", "hp_dropout",
                "test_accuracy", "train_accuracy", "test_loss", "train_loss"):
        assert t[col].notna().all(), col
    data = load_dataset("digits")
    x = torch.from_numpy(np.array(data.x_test))
    for i in range(len(zoo)):
        with torch.no_grad():
            logits = zoo.module(i)(x)
        assert accuracy(logits, data.y_test) == t["test_accuracy"].iat[i]
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(np.array(data.y_test)))
        assert math.isclose(loss.item(), t["test_loss"].iat[i], rel_tol=1e-5)
    assert accuracy_spread(zoo)["property"] == "test_accuracy"


def test_vit_zoo_same_seed_same_bytes_in_pinned_workers(tmp_path):
    a, b = vit_zoo(tmp_path, "a"), vit_zoo(tmp_path, "b")
    assert weights_sha(a) == weights_sha(b)
    assert weights_sha(a) != weights_sha(vit_zoo(tmp_path, "c", overrides={"seed": 1}))
    assert Zoo.open(a).manifest["source"]["kernels"] is not None


def test_sine_runs_draw_frequency_and_phase_from_their_seed():
    config = ZooConfig("z", "sines", "inr", runs=40, epochs=1, checkpoints=(0, 1))
    runs = zoo_runs(config)
    again = zoo_runs(dataclasses.replace(config, runs=10))
    assert runs[:10] == again  # a run does not depend on the zoo's size
    signal = load_signal("sines")
    for r in runs:
        assert isinstance(r, InrRunSpec)
        assert signal.frequency[0] <= r.frequency <= signal.frequency[1]
        assert 0 <= r.phase < 2 * math.pi
    assert len({r.frequency for r in runs}) == 40
    assert signal.x_train.min() == -1 and signal.x_train.max() == 1
    assert not set(signal.x_test.ravel()) & set(signal.x_train.ravel())  # held out


def test_siren_fits_get_better_and_batched_equals_one_at_a_time():
    arch = siren(2, 16, 1.0)  # stored with omega_0 = 1; trained with 10
    base = InrRunSpec(0, arch, 3e-3, 60, 1.0, 0.5, seed=1, omega_0=10.0)
    runs = [dataclasses.replace(base, index=i, seed=i, frequency=0.5 + i, steps=30 + 30 * i)
            for i in range(3)]
    signal = load_signal("sines")
    together = train_inr_group(arch, runs, signal, epochs=2, checkpoints=(0, 1, 2))
    assert (together.metrics["train_loss"][-1] < together.metrics["train_loss"][0]).all()
    for j, r in enumerate(runs):
        alone = train_inr_group(arch, [r], signal, epochs=2, checkpoints=(0, 1, 2))
        np.testing.assert_allclose(alone.flats[:, 0], together.flats[:, j], rtol=1e-4, atol=1e-5)
    assert checkpoint_steps(runs, 2, (0, 1, 2)).tolist() == [[0, 0, 0], [15, 30, 45],
                                                            [30, 60, 90]]
    # a run's last checkpoint is its final weights: it stopped when its own steps were done
    np.testing.assert_array_equal(together.flats[-1], together.final)


def test_stored_weights_hold_omega_0_and_compute_the_trained_function():
    """A run trained with omega_0 = 10 is stored as a SIREN with omega_0 = 1 whose sine layers'
    weights and biases are 10x those trained: the same network, read from its weights alone."""
    run = InrRunSpec(0, siren(2, 8, 10.0), 3e-3, 20, 1.5, 0.3, seed=4, omega_0=10.0)
    signal = load_signal("sines")
    trained = train_inr_group(run.arch, [run], signal, epochs=1, checkpoints=(1,))  # as trained
    stored_arch = siren(2, 8, 1.0)
    stored = train_inr_group(stored_arch, [dataclasses.replace(run, arch=stored_arch)], signal,
                             epochs=1, checkpoints=(1,))
    (w0, b0), (w1, b1), (w2, b2) = stored_arch.unflatten(torch.from_numpy(stored.flats[0, 0]))
    (v0, c0), (v1, c1), (v2, c2) = run.arch.unflatten(torch.from_numpy(trained.flats[0, 0]))
    for got, want in ((w0, v0), (b0, c0), (w1, v1), (b1, c1)):
        torch.testing.assert_close(got, 10 * want)
    torch.testing.assert_close(w2, v2)
    torch.testing.assert_close(b2, c2)
    x = torch.from_numpy(np.array(signal.x_test))
    torch.testing.assert_close(
        functional_forward(stored_arch, stored_arch.unflatten(torch.from_numpy(stored.flats[0, 0])),
                           x, "sine"),
        functional_forward(run.arch, run.arch.unflatten(torch.from_numpy(trained.flats[0, 0])),
                           x, "sine"), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="one group trains one omega_0"):
        train_inr_group(stored_arch, [run, dataclasses.replace(run, omega_0=5.0)], signal, 1, ())


def test_vmapped_siren_is_functional_forward_and_init_follows_siren():
    arch = siren(3, 8, 20.0)
    flat = torch.stack([siren_init(arch, torch.Generator().manual_seed(i)) for i in range(3)])
    (w0, _), (w1, _) = arch.unflatten(flat[0])[:2]
    assert w0.abs().max() <= 1.0 and w1.abs().max() <= math.sqrt(6 / 8) / 20
    x = torch.linspace(-1, 1, 9)[:, None]
    out = predict_all(arch, flat, x)
    for j in range(3):
        torch.testing.assert_close(out[j], functional_forward(arch, arch.unflatten(flat[j]), x,
                                                              "sine"))


def test_tiny_inr_zoo_generates_opens_and_records_what_the_modules_compute(tmp_path):
    path = inr_zoo(tmp_path, isolate=False)
    zoo = Zoo.open(path, verify=True)
    t = zoo.table
    assert len(t) == 6 * 3 and zoo.manifest["format_version"] == 2
    assert "test_accuracy" not in t.columns and zoo.datasets == ["sines"]
    for col in ("frequency", "phase", "train_loss", "test_loss", "hp_omega_0", "hp_width",
                "hp_depth", "hp_learning_rate", "hp_steps"):
        assert t[col].notna().all(), col
    assert (t["hp_activation"] == "sine").all() and (t["hp_optimizer"] == "adam").all()
    # stored with omega_0 folded into the weights; the run's omega_0 is a hyperparameter column
    assert {la.omega_0 for a in zoo.architectures.values() for la in a.layers
            if la.kind == "sine"} == {1.0}
    assert (t["hp_omega_0"] == 10.0).all()
    # every checkpoint of a run has the run's target
    assert (t.groupby("run_id")["frequency"].nunique() == 1).all()
    np.testing.assert_allclose(zoo.targets("frequency"), t["frequency"])
    assert zoo.properties == ["test_loss", "train_loss", "frequency", "phase"]
    with pytest.raises(KeyError, match="no property 'test_accuracy'; it has .*'frequency'"):
        zoo.targets("test_accuracy")
    signal = load_signal("sines")
    for i in range(len(zoo)):
        f, ph = t["frequency"].iat[i], t["phase"].iat[i]
        for split, x in (("train", signal.x_train), ("test", signal.x_test)):
            x = torch.from_numpy(np.array(x))
            with torch.no_grad():
                got = fit_mse(zoo.module(i)(x), sine_wave(x, f, ph))
            assert got == t[f"{split}_loss"].iat[i]
    final = t[t["epoch"] == 2]
    assert (final["train_loss"].to_numpy() < t[t["epoch"] == 0]["train_loss"].to_numpy()).all()
    spread = accuracy_spread(zoo)
    assert spread["property"] == "test_loss" and spread["runs"] == 6


def test_inr_zoo_same_seed_same_bytes_in_pinned_workers(tmp_path):
    a, b = inr_zoo(tmp_path, "a"), inr_zoo(tmp_path, "b")
    assert weights_sha(a) == weights_sha(b)
    assert weights_sha(a) != weights_sha(inr_zoo(tmp_path, "c", overrides={"seed": 1}))


def test_families_and_datasets_must_match_and_old_hashes_stay():
    with pytest.raises(PresetError, match="family 'inr' cannot train on dataset 'digits'"):
        ZooConfig("z", "digits", "inr", runs=1, epochs=1, checkpoints=(0, 1))
    with pytest.raises(PresetError, match="family 'vit' cannot train on dataset 'sines'"):
        ZooConfig("z", "sines", "vit", runs=1, epochs=1, checkpoints=(0, 1))
    # the new search-space keys enter a configuration (and its hash) only when set
    plain = ZooConfig("z", "digits", "ctc", runs=1, epochs=1, checkpoints=(0, 1))
    assert not any(k.startswith(("vit_", "inr_")) for k in plain.to_dict()["space"])
    other = dataclasses.replace(plain, space=SearchSpace.from_dict({"vit_depths": [3]}))
    assert other.to_dict()["space"]["vit_depths"] == (3,) and other.sha256() != plain.sha256()
    assert ZooConfig.from_dict(other.to_dict()) == other
    # an INR zoo's configuration always names its inr_* fields: an inr zoo made with other
    # defaults (or before omega_0 was folded into the weights) never passes for this one
    inr = ZooConfig("z", "sines", "inr", runs=1, epochs=1, checkpoints=(0, 1))
    assert inr.to_dict()["space"]["inr_depths"] == (2, 3)
    assert not any(k.startswith("vit_") for k in inr.to_dict()["space"])
    assert ZooConfig.from_dict(inr.to_dict()) == inr
